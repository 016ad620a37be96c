package main

import (
	"context"
	"errors"
	"io"
)

// runChat is being written (issue 4); this placeholder keeps the build whole.
func runChat(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	return errors.New("not built yet")
}
