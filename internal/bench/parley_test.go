package bench

import (
	"bytes"
	"context"
	"os"
	"testing"
	"time"

	"golang.org/x/time/rate"

	"parley/internal/parleytest"
	"parley/internal/server"
)

// startParley runs a real parley node without its per-connection rate
// limit, which a load generator exists to exceed.
func startParley(t *testing.T) *parleytest.Node {
	return parleytest.Start(t, parleytest.WithConfig(func(c *server.Config) { c.Rate = rate.Inf }))
}

func TestParleyJSONNoLoss(t *testing.T) {
	t.Parallel()
	n := startParley(t)
	res, err := Run(context.Background(), Config{
		URL: n.URL, Subs: 6, Pubs: 2, Rooms: 2, Duration: 400 * time.Millisecond,
		ServerPID: os.Getpid(), // the node runs in this process
	})
	if err != nil {
		t.Fatal(err)
	}
	if !res.OK {
		t.Fatalf("parley broke the promise: %s %v", res.Failure(), res.Errors)
	}
	// Two rooms, one publisher and three subscribers each.
	if res.Sent == 0 || res.Delivered != 3*res.Sent || res.Foreign != 0 {
		t.Errorf("sent %d, delivered %d: want each message to the 3 subscribers of its room", res.Sent, res.Delivered)
	}
	if s := res.Server; s == nil || s.CPUSeconds <= 0 || s.DeliveriesPerCPUSecond <= 0 || s.RSSAfterKiB <= 0 {
		t.Errorf("server stats %+v", s)
	}
}

func TestParleyTextFormat(t *testing.T) {
	t.Parallel()
	n := startParley(t)
	res, err := Run(context.Background(), Config{URL: n.URL, Text: true, Subs: 3, Pubs: 2, Rate: 100, Duration: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if !res.OK || res.Sent == 0 || res.Delivered != 3*res.Sent {
		t.Fatalf("text format: %s; sent %d, delivered %d %v", res.Failure(), res.Sent, res.Delivered, res.Errors)
	}
}

func TestParleyRateLimitIsReported(t *testing.T) {
	t.Parallel()
	n := parleytest.Start(t, parleytest.WithConfig(func(c *server.Config) { c.Rate, c.Burst = 5, 5 }))
	res, err := Run(context.Background(), Config{URL: n.URL, Subs: 2, Pubs: 1, Rate: 100, Duration: 300 * time.Millisecond, Drain: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if res.OK || res.Lost == 0 || res.ErrorCount == 0 || !bytes.Contains([]byte(res.Errors[0]), []byte("rate_limited")) {
		t.Errorf("sends over the server's rate limit: ok %v, lost %d, errors %v: want them reported", res.OK, res.Lost, res.Errors)
	}
}

func TestIdleHoldsConnections(t *testing.T) {
	t.Parallel()
	n := startParley(t)
	res, err := Run(context.Background(), Config{URL: n.URL, Idle: 50, ConnectConcurrency: 10, Duration: 200 * time.Millisecond, ServerPID: os.Getpid()})
	if err != nil {
		t.Fatal(err)
	}
	if !res.OK || res.Mode != "idle" || res.Connect.Conns != 50 || res.Held < 0.2 {
		t.Fatalf("idle run: %+v", res)
	}
	if res.Server == nil || res.Server.RSSBeforeKiB <= 0 {
		t.Errorf("server stats %+v", res.Server)
	}
}
