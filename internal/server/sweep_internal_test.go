package server

import (
	"context"
	"io"
	"net"
	"testing"
	"time"

	"parley/internal/broker/local"
	"parley/internal/hub"
)

func TestUnwritten(t *testing.T) {
	bufs := net.Buffers{[]byte("abc"), []byte("de"), []byte("fghi")}
	cases := []struct {
		n    int
		want string
	}{
		{0, "abcdefghi"}, {2, "cdefghi"}, {3, "defghi"}, {4, "efghi"}, {5, "fghi"}, {8, "i"}, {9, ""},
	}
	for _, tc := range cases {
		got := unwritten(bufs, tc.n)
		if string(got) != tc.want || (tc.want == "" && got != nil) {
			t.Errorf("unwritten after %d bytes: %q, want %q", tc.n, got, tc.want)
		}
	}
}

// A session whose queue drains in a sweep is idle and has caught up: it
// holds no queue, and its behind-since time is cleared, or a client that fell behind once would, on falling
// behind again later, count as behind since the first time and be closed
// at once as a slow consumer.
func TestSweepClearsBehindSince(t *testing.T) {
	lb, err := local.Open(context.Background(), local.Config{Path: ":memory:"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer lb.Close()
	h := hub.New(hub.Config{Encode: Encode})
	srv := New(Config{}, h, lb, nil)
	defer srv.Close()

	conn, client := tcpPair(t)

	s := &session{srv: srv, conn: conn, raw: parker(conn)}
	s.setCursor("lobby", &roomCursor{display: "lobby"})
	f := &hub.Frame{Room: "lobby", ID: 1}
	f.Data[hub.VariantJSON] = []byte("frame")
	s.mu.Lock()
	s.behindSince = time.Now().Add(-time.Hour) // caught up from the log since
	s.writing, s.swept = true, true
	s.queue = []item{{f: f, v: hub.VariantJSON}}
	s.live = 1
	s.mu.Unlock()

	// A worker that has swept before: its scratch queue becomes the
	// session's, which must let it go.
	sc := sweepScratch{batch: make([]item, 0, 8)}
	s.sweep(&sc)

	s.mu.Lock()
	behind, writing, queue := s.behindSince, s.writing, s.queue
	s.mu.Unlock()
	if !behind.IsZero() || writing || queue != nil {
		t.Fatalf("after a sweep drained the queue: behindSince %v, writing %v, queue cap %d; want zero, false, none",
			behind, writing, cap(queue))
	}
	buf := make([]byte, 5)
	client.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := io.ReadFull(client, buf); err != nil || string(buf) != "frame" {
		t.Fatalf("client read %q, %v; want the swept frame", buf, err)
	}
}

// tcpPair returns the two ends of a loopback TCP connection, closed at
// the end of the test.
func tcpPair(t *testing.T) (server, client net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	client, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	server, err = ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { server.Close() })
	return server, client
}
