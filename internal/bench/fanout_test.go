package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"testing"
	"time"

	"parley/internal/bench/benchtest"
)

func TestTextRunAgainstBroadcastServer(t *testing.T) {
	t.Parallel()
	url := benchtest.StartTextServer(t, 0)
	var progress bytes.Buffer
	res, err := Run(context.Background(), Config{
		URL: url, Text: true, Subs: 5, Pubs: 2, Duration: 300 * time.Millisecond,
		Progress: &progress,
	})
	if err != nil {
		t.Fatal(err)
	}
	if !res.OK || res.Lost != 0 || res.Duplicates != 0 || res.OutOfOrder != 0 {
		t.Fatalf("healthy server: %s\n%+v", res.Failure(), res)
	}
	if res.Sent == 0 || res.Delivered != res.Sent*5 || res.Expected != res.Delivered {
		t.Errorf("sent %d, delivered %d, expected %d: want every message to each of 5 subscribers", res.Sent, res.Delivered, res.Expected)
	}
	if res.Latency.P50 <= 0 || res.Latency.Max < res.Latency.P99 || res.Connect.Conns != 7 {
		t.Errorf("latency %+v, connect %+v", res.Latency, res.Connect)
	}
	if !bytes.Contains(progress.Bytes(), []byte("connecting 7/7")) {
		t.Errorf("progress %q does not show the connections", progress.String())
	}
}

func TestRateIsTotalOverPublishers(t *testing.T) {
	t.Parallel()
	url := benchtest.StartTextServer(t, 0)
	res, err := Run(context.Background(), Config{
		URL: url, Text: true, Subs: 2, Pubs: 4, Rate: 200, Duration: time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	if !res.OK {
		t.Fatalf("healthy server: %s", res.Failure())
	}
	// 200/s for 1 s over 4 publishers: 50 each, give or take the edges.
	if res.Sent < 190 || res.Sent > 204 {
		t.Errorf("sent %d messages at --rate 200 for 1s, want about 200", res.Sent)
	}
}

func TestLossIsReported(t *testing.T) {
	t.Parallel()
	url := benchtest.StartTextServer(t, 10) // drops every 10th message
	res, err := Run(context.Background(), Config{
		URL: url, Text: true, Subs: 3, Pubs: 1, Rate: 200, Duration: 500 * time.Millisecond,
		Drain: 300 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	if res.OK || res.Lost == 0 {
		t.Fatalf("a server that drops every 10th message: ok %v, lost %d", res.OK, res.Lost)
	}
	// The server drops one frame in ten, the same for every subscriber.
	if res.Lost%3 != 0 || res.Lost/3 < res.Sent/10-2 || res.Lost/3 > res.Sent/10+1 {
		t.Errorf("sent %d, lost %d over 3 subscribers: want about a tenth each", res.Sent, res.Lost)
	}
	var out bytes.Buffer
	if err := res.WriteJSON(&out); err != nil {
		t.Fatal(err)
	}
	var back map[string]any
	if err := json.Unmarshal(out.Bytes(), &back); err != nil || back["ok"] != false || back["lost"] != float64(res.Lost) {
		t.Errorf("JSON %s: %v", out.Bytes(), err)
	}
}

func TestConnectFailureIsAnError(t *testing.T) {
	t.Parallel()
	_, err := Run(context.Background(), Config{URL: "ws://127.0.0.1:1/", Subs: 1, Pubs: 1, ConnectTimeout: time.Second})
	if err == nil {
		t.Fatal("no error connecting to a closed port")
	}
	t.Log(err)
}
