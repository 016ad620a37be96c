package server_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"

	"parley/internal/parleytest"
	"parley/internal/protocol"
	"parley/internal/server"
)

// dialStalled dials a JSON client whose socket has a tiny receive buffer,
// so that when it stops reading the server's writes block soon (after the
// server's own send buffer fills) instead of after megabytes of kernel
// buffering. It reads nothing until the test calls read.
func dialStalled(t testing.TB, url string) *wsClient {
	t.Helper()
	d := &net.Dialer{Control: func(network, address string, c syscall.RawConn) error {
		var serr error
		if err := c.Control(func(fd uintptr) {
			serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 128<<10)
		}); err != nil {
			return err
		}
		return serr
	}}
	tr := &http.Transport{DialContext: d.DialContext}
	t.Cleanup(tr.CloseIdleConnections)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c, resp, err := websocket.Dial(ctx, url, &websocket.DialOptions{
		Subprotocols: []string{protocol.Subprotocol},
		HTTPClient:   &http.Client{Transport: tr},
	})
	if resp != nil && resp.Body != nil {
		resp.Body.Close()
	}
	if err != nil {
		t.Fatalf("dial %s: %v", url, err)
	}
	c.SetReadLimit(1 << 20)
	t.Cleanup(func() { c.CloseNow() })
	return &wsClient{t: t, conn: c}
}

// senderPool is a group of JSON clients sending to one room at once, each
// from its own goroutine, each reading its own answers and echoes so that
// it never falls behind itself. Several senders at once let the broker's
// group commit share one fsync among many messages.
type senderPool struct {
	wg    sync.WaitGroup
	errs  chan error
	acked atomic.Int64
	sent  atomic.Int64
}

// startSenders starts senders clients sending per messages each (or until
// stop is closed), with refs. Pools that run one after another need
// different tags: a nick's refs are remembered, and a repeated ref is a
// retry that stores nothing.
func startSenders(t testing.TB, n *parleytest.Node, room, tag string, senders, per int, text string, stop <-chan struct{}) *senderPool {
	t.Helper()
	p := &senderPool{errs: make(chan error, senders)}
	for s := range senders {
		c, err := tryDial(n.URL+fmt.Sprintf("?nick=%s-w%d&room=%s", tag, s, room), true)
		if err != nil {
			t.Fatalf("dial sender: %v", err)
		}
		p.wg.Add(1)
		go func() {
			defer p.wg.Done()
			defer c.CloseNow()
			p.errs <- p.run(c, room, s, per, text, stop)
		}()
	}
	return p
}

// wait returns the first sender's error, once all are done.
func (p *senderPool) wait() error {
	p.wg.Wait()
	close(p.errs)
	var first error
	for err := range p.errs {
		if err != nil && first == nil {
			first = err
		}
	}
	return first
}

// senderWindow bounds a pool sender's unanswered sends.
const senderWindow = 8

func (p *senderPool) run(c *websocket.Conn, room string, s, per int, text string, stop <-chan struct{}) error {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	var acks atomic.Int64
	var readErr atomic.Pointer[error]
	tick := make(chan struct{}, 1)
	readerDone := make(chan struct{})
	go func() {
		defer close(readerDone)
		for {
			_, b, err := c.Read(ctx)
			if err != nil {
				readErr.CompareAndSwap(nil, &err)
				select {
				case tick <- struct{}{}:
				default:
				}
				return
			}
			var ev protocol.Event
			if err := json.Unmarshal(b, &ev); err != nil {
				readErr.CompareAndSwap(nil, &err)
				continue
			}
			switch ev.Type {
			case protocol.EvAck:
				acks.Add(1)
				p.acked.Add(1)
			case protocol.EvError:
				e := fmt.Errorf("sender %d: %+v", s, ev)
				readErr.CompareAndSwap(nil, &e)
			default:
				continue
			}
			select {
			case tick <- struct{}{}:
			default:
			}
		}
	}()
	written := int64(0)
write:
	for i := 1; i <= per; i++ {
		select {
		case <-stop:
			break write
		default:
		}
		// At most window sends unanswered: a sender whose socket to the
		// server is full cannot answer the server's pings (coder/websocket
		// gives a pong 5 s to get the write lock).
		for written-acks.Load() >= senderWindow && readErr.Load() == nil {
			<-tick
		}
		if e := readErr.Load(); e != nil {
			break
		}
		b, _ := json.Marshal(map[string]any{"type": "send", "room": room, "text": text, "ref": fmt.Sprint("s", i)})
		if err := c.Write(ctx, websocket.MessageText, b); err != nil {
			c.CloseNow()
			<-readerDone
			return fmt.Errorf("sender %d: write %d: %w", s, i, err)
		}
		written++
		p.sent.Add(1)
	}
	for acks.Load() < written {
		if e := readErr.Load(); e != nil {
			break
		}
		<-tick
	}
	c.CloseNow()
	<-readerDone
	if acks.Load() < written {
		return fmt.Errorf("sender %d: %d of %d acks: %v", s, acks.Load(), written, *readErr.Load())
	}
	return nil
}

// tcpWmemMax is the most a TCP socket's send buffer may grow to.
func tcpWmemMax(t testing.TB) int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/tcp_wmem")
	if f := strings.Fields(string(b)); err == nil && len(f) == 3 {
		if n, err := strconv.Atoi(f[2]); err == nil {
			return n
		}
	}
	t.Logf("cannot read tcp_wmem (%v): assuming 8 MB", err)
	return 8 << 20
}

// roomReader reads a client's message events in a goroutine until told
// to stop, keeping their ids and history flags.
type roomReader struct {
	cancel context.CancelFunc
	done   chan struct{}
	count  atomic.Int64

	mu   sync.Mutex
	msgs []protocol.Event // guarded by mu; Text dropped to keep memory small
	err  error            // guarded by mu: why reading stopped
}

func startReader(c *wsClient) *roomReader {
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	r := &roomReader{cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(r.done)
		for {
			_, b, err := c.conn.Read(ctx)
			if err != nil {
				r.mu.Lock()
				r.err = err
				r.mu.Unlock()
				return
			}
			var ev protocol.Event
			if json.Unmarshal(b, &ev) != nil || ev.Type != protocol.EvMessage {
				continue
			}
			ev.Text = ""
			r.mu.Lock()
			r.msgs = append(r.msgs, ev)
			r.mu.Unlock()
			r.count.Add(1)
		}
	}()
	return r
}

// waitN waits up to d for n messages, then stops the reader (which closes
// its connection) and returns what it read.
func (r *roomReader) waitN(t testing.TB, who string, n int, d time.Duration) []protocol.Event {
	t.Helper()
	deadline := time.Now().Add(d)
	for r.count.Load() < int64(n) && time.Now().Before(deadline) {
		select {
		case <-r.done:
			deadline = time.Now()
		case <-time.After(10 * time.Millisecond):
		}
	}
	r.cancel()
	<-r.done
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.msgs) < n {
		t.Fatalf("%s got %d of %d messages within %v (reading ended with %v)", who, len(r.msgs), n, d, r.err)
	}
	return r.msgs
}

// checkOnceInOrder checks that msgs are ids 1..n, each once, and returns
// how many were replayed (history: true).
func checkOnceInOrder(t testing.TB, who string, msgs []protocol.Event, n int) int {
	t.Helper()
	if len(msgs) != n {
		t.Fatalf("%s got %d messages, want %d", who, len(msgs), n)
	}
	hist := 0
	for i, m := range msgs {
		if m.ID != uint64(i+1) {
			t.Fatalf("%s: message %d has id %d, want %d (every id once, in order)", who, i, m.ID, i+1)
		}
		if m.History {
			hist++
		}
	}
	return hist
}

// A client that stops reading while others send far more than its queue
// holds is resynced from the log: when it reads again it gets every
// message once, in order; meanwhile a fast client in the same room got
// everything without waiting for it.
func TestSlowConsumerResync(t *testing.T) {
	t.Parallel()
	n := parleytest.Start(t, parleytest.WithConfig(func(c *server.Config) {
		noRateLimit(c)
		c.SendQueue = 16
		c.MaxMessageBytes = 128 << 10
		// Under -race on a loaded machine the sending can take longer
		// than the default pong timeout (40 s) and max lag (60 s), and a
		// client that neither reads nor pongs for that long is rightly
		// closed. This test is about a client that stalls for a while.
		c.PongTimeout = 10 * time.Minute
		c.MaxLag = 10 * time.Minute
	}))
	slow := dialStalled(t, n.URL+"?nick=slow&room=lobby")
	// Read up to slow's own join notice: from then on it is a member.
	slow.readUntil(func(s string) bool {
		ev := decodeEvent(t, s)
		return ev.Type == protocol.EvJoin && ev.Nick == "slow"
	})
	fast := dial(t, n.URL+"?nick=fast&room=lobby", true)
	fast.readUntil(func(s string) bool { return decodeEvent(t, s).Type == protocol.EvJoin })
	fastReader := startReader(fast)

	// Rounds of 20 messages of 60 KB from 4 senders at once. The server's
	// writes to slow block once its socket's send buffer (at most
	// tcp_wmem's max) and slow's small receive window are full; after 16
	// more messages slow's queue overflows. So send half as much again
	// as the kernel can buffer, and go on until the server has counted a
	// resync. (The counter alone does not say whose: a sender reading its
	// echoes may overflow too.) Big messages get there in few rounds,
	// which matters under -race, where SQLite is slow.
	text := strings.Repeat("x", 60000)
	need := (tcpWmemMax(t)*3/2)/len(text) + 16
	total := 0
	deadline := time.Now().Add(120 * time.Second)
	for round := 0; total < need || metric(t, n, `parley_slow_consumer_total{action="resync"}`) < 1; round++ {
		if round == 100 || time.Now().After(deadline) {
			t.Fatalf("no resync after %d messages of %d bytes", total, len(text))
		}
		pool := startSenders(t, n, "lobby", fmt.Sprint("r", round), 4, 5, text, nil)
		if err := pool.wait(); err != nil {
			t.Fatal(err)
		}
		total += int(pool.sent.Load())
	}
	t.Logf("slow fell behind: %d messages sent", total)

	// The fast client gets everything while slow still reads nothing.
	fastHist := checkOnceInOrder(t, "fast client", fastReader.waitN(t, "fast client", total, 60*time.Second), total)
	// With a queue of 16 even a reading client may briefly fall behind a
	// burst of group-committed messages; it is then caught up like any
	// other, which is fine as long as it never waits for the slow one.
	t.Logf("fast client: %d of %d messages replayed from the log", fastHist, total)

	// Now slow reads: every message once, in order, some replayed.
	hist := checkOnceInOrder(t, "slow client", startReader(slow).waitN(t, "slow client", total, 60*time.Second), total)
	if hist == 0 {
		t.Fatalf("slow client: no message marked history, though it was resynced")
	}
	t.Logf("slow client: %d of %d messages replayed from the log", hist, total)
	if v := metric(t, n, `parley_slow_consumer_total{action="disconnect"}`); v != 0 {
		t.Errorf("disconnects = %v, want 0: nobody stayed behind past --max-lag", v)
	}
}

// A client that never reads is cut off after MaxLag, counted as a
// disconnect, while the sender carries on.
func TestMaxLagDisconnects(t *testing.T) {
	t.Parallel()
	n := parleytest.Start(t, parleytest.WithConfig(func(c *server.Config) {
		noRateLimit(c)
		c.SendQueue = 16
		c.MaxLag = 500 * time.Millisecond
		c.MaxMessageBytes = 128 << 10
		// The sender gets no echoes of its big messages: only the stuck
		// client is a consumer that can fall behind, so the disconnect
		// counted is its own (a loaded machine under -race can leave a
		// reading client 500 ms behind too).
		c.NoEcho = true
	}))
	stuck := dialStalled(t, n.URL+"?nick=stuck&room=lobby")
	stuck.readUntil(func(s string) bool {
		ev := decodeEvent(t, s)
		return ev.Type == protocol.EvJoin && ev.Nick == "stuck"
	})

	text := strings.Repeat("y", 60000)
	stop := make(chan struct{})
	pool := startSenders(t, n, "lobby", "a", 1, 2000, text, stop)
	waitFor(t, 90*time.Second, "a slow-consumer disconnect", func() bool {
		return metric(t, n, `parley_slow_consumer_total{action="disconnect"}`) >= 1
	})
	close(stop)
	if err := pool.wait(); err != nil {
		t.Fatal(err)
	}
	t.Logf("disconnected after %d messages were sent", pool.sent.Load())

	// The stuck client's connection is over: what was buffered can be
	// read, then the close (1008 if its frame got through) or EOF.
	rctx, rcancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer rcancel()
	var err error
	for err == nil {
		_, _, err = stuck.conn.Read(rctx)
	}
	if rctx.Err() != nil {
		t.Fatalf("the stuck client's connection is still open: %v", err)
	}
	var ce websocket.CloseError
	if errors.As(err, &ce) && ce.Code != websocket.StatusPolicyViolation {
		t.Fatalf("stuck client closed with %d, want 1008 or a dropped connection", ce.Code)
	}
	t.Logf("stuck client's connection ended with: %v", err)

	// The room is still served. (A new member's join replays 50 big
	// messages first, slow under -race: the pool waits longer for its ack
	// than the 5 s of the read helpers.)
	if err := startSenders(t, n, "lobby", "after", 1, 1, "still here", nil).wait(); err != nil {
		t.Fatal(err)
	}
}
