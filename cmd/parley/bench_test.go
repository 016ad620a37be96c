package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"regexp"
	"strings"
	"testing"

	"golang.org/x/time/rate"

	"parley/internal/bench/benchtest"
	"parley/internal/parleytest"
	"parley/internal/server"
)

func TestBenchTextServerNoLoss(t *testing.T) {
	t.Parallel()
	url := benchtest.StartTextServer(t, 0)
	var stdout, stderr bytes.Buffer
	err := runBench(context.Background(), []string{"--text", "--subs", "4", "--pubs", "2", "--duration", "300ms", url}, &stdout, &stderr)
	if err != nil {
		t.Fatalf("runBench: %v\nstdout:\n%s\nstderr:\n%s", err, &stdout, &stderr)
	}
	for _, want := range []string{`delivered +[0-9,]+ msgs`, `lost +0\n`, `latency p99.9 +[0-9]+ µs`, `connect +6 conns`, `verdict +ok\n`} {
		if !regexp.MustCompile(want).MatchString(stdout.String()) {
			t.Errorf("the table has no %q:\n%s", want, &stdout)
		}
	}
	if !strings.Contains(stderr.String(), "connecting 6/6") {
		t.Errorf("no progress on stderr: %q", &stderr)
	}
}

func TestBenchLossFailsWithJSON(t *testing.T) {
	t.Parallel()
	url := benchtest.StartTextServer(t, 10)
	var stdout, stderr bytes.Buffer
	// The URL first, flags after it: both orders work.
	err := runBench(context.Background(), []string{url, "--text", "--json", "--quiet", "--subs", "3", "--pubs", "1",
		"--rate", "200", "--duration", "500ms", "--drain", "300ms"}, &stdout, &stderr)
	if err == nil || !strings.Contains(err.Error(), "lost") {
		t.Fatalf("a server that drops every 10th message: err = %v, want one that says what was lost", err)
	}
	var res struct {
		OK       bool  `json:"ok"`
		Lost     int64 `json:"lost"`
		Sent     int64 `json:"sent"`
		Expected int64 `json:"expected"`
	}
	if strings.Count(stdout.String(), "\n") != 1 {
		t.Errorf("--json printed %q, want one line", &stdout)
	}
	if err := json.Unmarshal(stdout.Bytes(), &res); err != nil {
		t.Fatalf("--json output %q: %v", &stdout, err)
	}
	if res.OK || res.Lost == 0 || res.Expected != 3*res.Sent {
		t.Errorf("result %+v: want not ok, some loss, 3 subscribers' worth expected", res)
	}
	if stderr.Len() != 0 {
		t.Errorf("--quiet wrote to stderr: %q", &stderr)
	}
}

func TestBenchUsage(t *testing.T) {
	t.Parallel()
	var stdout, stderr bytes.Buffer
	if err := runBench(context.Background(), []string{"--help"}, &stdout, &stderr); !errors.Is(err, flag.ErrHelp) {
		t.Errorf("--help: %v", err)
	}
	if !strings.Contains(stderr.String(), "--server-pid") && !strings.Contains(stderr.String(), "-server-pid") {
		t.Errorf("--help does not list the flags: %s", &stderr)
	}
	if err := runBench(context.Background(), []string{"--subs", "x"}, &stdout, &stderr); !errors.Is(err, errUsage) {
		t.Errorf("a bad flag: %v, want errUsage", err)
	}
	if err := runBench(context.Background(), []string{"ws://a", "ws://b"}, &stdout, &stderr); !errors.Is(err, errUsage) {
		t.Errorf("two URLs: %v, want errUsage", err)
	}
	if err := runBench(context.Background(), []string{"--size", "8", "--quiet"}, &stdout, &stderr); err == nil || !strings.Contains(err.Error(), "size") {
		t.Errorf("--size 8: %v, want an error about the size", err)
	}
}

func TestBenchParleyExitsZero(t *testing.T) {
	t.Parallel()
	n := parleytest.Start(t, parleytest.WithConfig(func(c *server.Config) { c.Rate = rate.Inf }))
	var stdout, stderr bytes.Buffer
	err := runBench(context.Background(), []string{"--subs", "5", "--pubs", "2", "--duration", "300ms", "--json", n.URL}, &stdout, &stderr)
	if err != nil {
		t.Fatalf("runBench: %v\n%s", err, &stderr)
	}
	var res struct {
		OK        bool  `json:"ok"`
		Sent      int64 `json:"sent"`
		Delivered int64 `json:"delivered"`
		Lost      int64 `json:"lost"`
	}
	if err := json.Unmarshal(stdout.Bytes(), &res); err != nil {
		t.Fatalf("--json output %q: %v", &stdout, err)
	}
	if !res.OK || res.Lost != 0 || res.Sent == 0 || res.Delivered != 5*res.Sent {
		t.Errorf("result %+v: want every message delivered to 5 subscribers", res)
	}
}
