// Command parley is a real-time chat server and its clients in one binary.
//
//	parley serve   run the server
//	parley chat    chat from a terminal, or script a bot
//	parley bench   measure a server
//	parley version print the version
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"
)

// version is the release this binary was built from.
const version = "0.1.0"

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(exitCode(err, os.Args[1:], os.Stderr))
}

const usage = `parley: a real-time chat server and its clients

usage:
  parley serve [flags]        run the server (parley serve --help lists flags)
  parley chat [flags] [URL]   chat from a terminal or a script (default ws://127.0.0.1:8080)
  parley bench [flags] [URL]  measure a server's fan-out
  parley version              print the version
`

// run dispatches to a subcommand. It is main without the process: tests
// call it directly.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, usage)
		return errUsage
	}
	cmd, rest := args[0], args[1:]
	switch cmd {
	case "serve":
		return runServe(ctx, rest, stdout, stderr)
	case "chat":
		return runChat(ctx, rest, stdin, stdout, stderr)
	case "bench":
		return runBench(ctx, rest, stdout, stderr)
	case "version", "--version", "-version":
		fmt.Fprintf(stdout, "parley %s\n", version)
		return nil
	case "help", "--help", "-help", "-h":
		fmt.Fprint(stdout, usage)
		return nil
	}
	fmt.Fprintf(stderr, "parley: unknown command %q\n\n%s", cmd, usage)
	return errUsage
}

// errUsage means the usage was already printed: exit 2 with nothing more.
var errUsage = errors.New("usage")

// exitCode prints err as one line and maps it to the process's exit code.
func exitCode(err error, args []string, stderr io.Writer) int {
	switch {
	case err == nil, errors.Is(err, flag.ErrHelp):
		return 0
	case errors.Is(err, errUsage):
		return 2
	}
	name := "parley"
	if len(args) > 0 {
		name += " " + args[0]
	}
	fmt.Fprintf(stderr, "%s: %v\n", name, err)
	return 1
}
