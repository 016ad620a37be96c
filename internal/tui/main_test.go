package tui

import (
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"parley/internal/client"
)

// The tmux tests run this test binary again as the chat: with
// PARLEY_TUI_CHILD=1 in its environment, TestMain calls Run, on the
// terminal tmux gives it, and exits with 0 after a normal quit. This tests
// Run itself, without depending on how cmd/parley calls it.
func TestMain(m *testing.M) {
	if os.Getenv("PARLEY_TUI_CHILD") == "1" {
		os.Exit(child())
	}
	goleak.VerifyTestMain(m)
}

func child() int {
	opts := Options{Nick: os.Getenv("PARLEY_TUI_NICK")}
	if rooms := os.Getenv("PARLEY_TUI_ROOMS"); rooms != "" {
		opts.Rooms = strings.Split(rooms, ",")
	}
	// Quick retries keep the restart test short.
	opts.Client = client.Options{BackoffMin: 200 * time.Millisecond, BackoffMax: time.Second}
	if err := Run(context.Background(), os.Getenv("PARLEY_TUI_URL"), opts); err != nil {
		fmt.Fprintf(os.Stderr, "chat: %v\n", err)
		return 1
	}
	return 0
}
