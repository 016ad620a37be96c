package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime/pprof"
	"time"

	"parley/internal/bench"
)

const benchUsage = `usage: parley bench [flags] [URL]

Connects subscribers and publishers to a chat server (default
ws://127.0.0.1:8080/), sends numbered messages for --duration, and prints
what was sent and delivered per second, loss, duplicates, out-of-order
deliveries, latency percentiles and connect time. Any loss, duplicate,
reordering, dropped connection or error from the server makes it exit 1.
Run parley with --rate-limit 0 to measure it: its default per-connection
limit (10 messages/s) rejects a load generator's sends.

  parley bench --subs 1000 --pubs 4 --rate 0 --size 64 --duration 10s
  parley bench --rate 200 --server-pid $(pgrep -f 'parley serve')
  parley bench --idle 10000 --duration 30s --server-pid PID
  parley bench --text ws://127.0.0.1:8081/ws     any plain-text broadcast server

flags:
`

// runBench is `parley bench`: flags to a bench.Config, nothing else.
func runBench(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("parley bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, benchUsage)
		fs.PrintDefaults()
	}
	var cfg bench.Config
	fs.IntVar(&cfg.Subs, "subs", 1000, "subscribers")
	fs.IntVar(&cfg.Pubs, "pubs", 4, "publishers")
	fs.IntVar(&cfg.Rooms, "rooms", 1, "rooms bench-0 ... bench-N-1; subscribers and publishers are spread round-robin")
	fs.Float64Var(&cfg.Rate, "rate", 0, "total messages/s over all publishers; 0: as fast as delivery allows (see --window)")
	fs.IntVar(&cfg.Window, "window", 16, "at --rate 0, messages per publisher sent and not yet delivered to every subscriber")
	fs.IntVar(&cfg.Size, "size", 64, fmt.Sprintf("payload bytes (at least %d)", bench.MinSize))
	fs.DurationVar(&cfg.Duration, "duration", 10*time.Second, "how long to send, or to hold idle connections")
	fs.DurationVar(&cfg.Drain, "drain", 5*time.Second, "after the last send, how long deliveries may stall before the rest counts as lost")
	fs.BoolVar(&cfg.Text, "text", false, "plain text frames (parley's text format, or any broadcast server such as gorilla's chat example at ws://HOST:PORT/ws)")
	fs.IntVar(&cfg.Idle, "idle", 0, "open N idle connections instead, hold them for --duration, and report connect time and server memory")
	fs.IntVar(&cfg.ConnectConcurrency, "connect-concurrency", 100, "connections being opened at once")
	fs.DurationVar(&cfg.ConnectTimeout, "connect-timeout", 30*time.Second, "bound on each connection's handshake, and on waiting for every subscriber to be reached")
	fs.IntVar(&cfg.ServerPID, "server-pid", 0, "the server's process id: report its CPU time and memory (from /proc)")
	asJSON := fs.Bool("json", false, "print the result as one line of JSON")
	quiet := fs.Bool("quiet", false, "no progress line on stderr")
	cpuProfile := fs.String("cpuprofile", "", "write the load generator's own CPU profile to this file (go tool pprof)")

	// Flags may come before or after the URL.
	rest := args
	for {
		if err := fs.Parse(rest); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return err
			}
			return errUsage
		}
		rest = fs.Args()
		if len(rest) == 0 {
			break
		}
		if cfg.URL != "" {
			fmt.Fprintf(stderr, "parley bench: one URL only, got %q and %q\n", cfg.URL, rest[0])
			return errUsage
		}
		cfg.URL, rest = rest[0], rest[1:]
	}
	if !*quiet {
		cfg.Progress = stderr
		cfg.ProgressLines = !rewritable(stderr)
	}

	if *cpuProfile != "" {
		f, err := os.Create(*cpuProfile)
		if err != nil {
			return err
		}
		defer f.Close()
		if err := pprof.StartCPUProfile(f); err != nil {
			return err
		}
		defer pprof.StopCPUProfile()
	}

	res, err := bench.Run(ctx, cfg)
	if res != nil {
		var werr error
		if *asJSON {
			werr = res.WriteJSON(stdout)
		} else {
			werr = res.WriteTable(stdout)
		}
		if err == nil {
			err = werr
		}
	}
	if err != nil {
		return err
	}
	if !res.OK {
		return fmt.Errorf("the server broke the promise: %s", res.Failure())
	}
	return nil
}

// rewritable reports whether w is a terminal (a character device), where a
// progress line can be rewritten in place.
func rewritable(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
