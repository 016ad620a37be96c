package main

import (
	"context"
	"errors"
	"io"
)

// runBench is being written (issue 7); this placeholder keeps the build whole.
func runBench(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return errors.New("not built yet")
}
