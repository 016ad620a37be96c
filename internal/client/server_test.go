package client_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/time/rate"

	"parley/internal/broker"
	"parley/internal/client"
	"parley/internal/parleytest"
	"parley/internal/protocol"
	"parley/internal/server"
)

// fast is a node whose rate limit does not slow tests that send a lot.
func fast(c *server.Config) {
	c.Rate = 2000
	c.Burst = 200
}

func dial(t *testing.T, url string, o client.Options) *client.Client {
	t.Helper()
	if o.BackoffMin == 0 {
		o.BackoffMin, o.BackoffMax = 20*time.Millisecond, 200*time.Millisecond
	}
	c, err := client.Dial(ctxT(t), url, o)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// recorder drains a client's events in a goroutine it owns, so commands
// that wait for answers work, and lets a test wait for conditions.
type recorder struct {
	mu     sync.Mutex
	events []client.Event
	change chan struct{}
	done   chan struct{}
}

func record(t *testing.T, c *client.Client) *recorder {
	r := &recorder{change: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(r.done)
		for ev := range c.Events() {
			r.mu.Lock()
			r.events = append(r.events, ev)
			close(r.change)
			r.change = make(chan struct{})
			r.mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		c.Close()
		<-r.done
	})
	return r
}

// wait waits until cond holds for the events so far.
func (r *recorder) wait(t *testing.T, what string, cond func([]client.Event) bool) []client.Event {
	t.Helper()
	deadline := time.After(20 * time.Second)
	for {
		r.mu.Lock()
		evs := append([]client.Event(nil), r.events...)
		ch := r.change
		r.mu.Unlock()
		if cond(evs) {
			return evs
		}
		select {
		case <-ch:
		case <-deadline:
			t.Fatalf("timed out waiting for %s; events:\n%s", what, dump(evs))
		}
	}
}

func dump(evs []client.Event) string {
	var b strings.Builder
	for _, ev := range evs {
		if ev.Type == client.EvState {
			fmt.Fprintf(&b, "  state %v attempt=%d err=%v\n", ev.State, ev.Attempt, ev.Err)
			continue
		}
		fmt.Fprintf(&b, "  %s\n", ev.Raw)
	}
	return b.String()
}

// texts returns the texts of the live and history messages of room, in
// the order delivered.
func texts(evs []client.Event, room string) []string {
	var out []string
	for _, ev := range evs {
		if ev.Type == protocol.EvMessage && ev.Room == room {
			out = append(out, ev.Text)
		}
	}
	return out
}

func hasN(room string, n int) func([]client.Event) bool {
	return func(evs []client.Event) bool { return len(texts(evs, room)) >= n }
}

func numbered(prefix string, from, to int) []string {
	var out []string
	for i := from; i <= to; i++ {
		out = append(out, fmt.Sprintf("%s%03d", prefix, i))
	}
	return out
}

func sendAll(t *testing.T, c *client.Client, room string, lines []string) {
	t.Helper()
	for _, l := range lines {
		if _, err := c.Send(ctxT(t), room, l, false); err != nil {
			t.Fatal(err)
		}
	}
}

func TestSendAckReceive(t *testing.T) {
	t.Parallel()
	n := parleytest.Start(t, parleytest.WithConfig(fast))
	ctx := ctxT(t)
	alice := dial(t, n.URL, client.Options{Nick: "alice", Rooms: []string{"lobby"}})
	bob := dial(t, n.URL, client.Options{Nick: "bob", Rooms: []string{"lobby"}})
	ra, rb := record(t, alice), record(t, bob)
	rb.wait(t, "bob's join ack", func(evs []client.Event) bool {
		for _, ev := range evs {
			if ev.Type == protocol.EvAck {
				return true
			}
		}
		return false
	})
	want := numbered("m", 1, 50)
	sendAll(t, alice, "lobby", want)
	if _, err := alice.Send(ctx, "lobby", "waves", true); err != nil {
		t.Fatal(err)
	}
	if err := alice.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	want = append(want, "waves")
	for name, r := range map[string]*recorder{"alice": ra, "bob": rb} {
		evs := r.wait(t, name+" gets every message", hasN("lobby", len(want)))
		if got := texts(evs, "lobby"); strings.Join(got, ",") != strings.Join(want, ",") {
			t.Errorf("%s got %q", name, got)
		}
		last := evs[len(evs)-1]
		for _, ev := range evs {
			if ev.Type == protocol.EvMessage && ev.Text == "waves" {
				last = ev
			}
		}
		if !last.Action || last.From != "alice" {
			t.Errorf("%s: the action arrived as %s", name, last.Raw)
		}
	}
	// Every send was acked with the id its message carries.
	evs := ra.wait(t, "alice's acks", func(evs []client.Event) bool {
		acks := 0
		for _, ev := range evs {
			if ev.Type == protocol.EvAck && ev.ID != 0 {
				acks++
			}
		}
		return acks == len(want)
	})
	ids := map[string]uint64{}
	for _, ev := range evs {
		if ev.Type == protocol.EvMessage {
			ids[fmt.Sprint(ev.ID)] = ev.ID
		}
	}
	for _, ev := range evs {
		if ev.Type == protocol.EvAck && ev.ID != 0 && ids[fmt.Sprint(ev.ID)] == 0 {
			t.Errorf("ack %s has no message with its id", ev.Raw)
		}
	}
	if st := alice.Status(); st.Pending != 0 || st.Nick != "alice" || len(st.Rooms) != 1 || st.Rooms[0].LastID != uint64(len(want)) {
		t.Errorf("status = %+v", st)
	}
}

func TestCommands(t *testing.T) {
	t.Parallel()
	n := parleytest.Start(t)
	ctx := ctxT(t)
	alice := dial(t, n.URL, client.Options{Nick: "alice", Rooms: []string{"lobby"}})
	record(t, alice)
	if err := alice.Flush(ctx); err != nil { // her join is acked
		t.Fatal(err)
	}
	bob := dial(t, n.URL, client.Options{Nick: "bob"})
	record(t, bob)
	if err := bob.Join(ctx, "lobby", nil); err != nil {
		t.Fatal(err)
	}
	members, err := bob.Who(ctx, "lobby")
	if err != nil || strings.Join(members, ",") != "alice,bob" {
		t.Fatalf("Who = %q, %v", members, err)
	}
	sendAll(t, alice, "lobby", numbered("h", 1, 5))
	if err := alice.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	h, err := bob.History(ctx, "lobby", 5, 2)
	if err != nil || len(h.Messages) != 2 || h.Messages[0].Text != "h003" || h.Messages[1].Text != "h004" || !h.More {
		t.Fatalf("History = %+v, %v", h, err)
	}
	if err := bob.Nick(ctx, "ALICE"); !errors.Is(err, client.ErrNickTaken) {
		t.Fatalf("Nick(ALICE) = %v, want ErrNickTaken", err)
	}
	if err := bob.Nick(ctx, "robert"); err != nil {
		t.Fatal(err)
	}
	if got := bob.Status().Nick; got != "robert" {
		t.Fatalf("nick after Nick = %q", got)
	}
	if err := bob.Join(ctx, "dev", nil); err != nil {
		t.Fatal(err)
	}
	rooms, err := bob.Rooms(ctx)
	if err != nil || len(rooms) != 2 {
		t.Fatalf("Rooms = %+v, %v", rooms, err)
	}
	if err := bob.Leave(ctx, "dev"); err != nil {
		t.Fatal(err)
	}
	if st := bob.Status(); len(st.Rooms) != 1 || st.Rooms[0].Name != "lobby" {
		t.Fatalf("rooms after Leave = %+v", st.Rooms)
	}
	if _, err := bob.Send(ctx, "lobby", strings.Repeat("x", 9000), false); !errors.Is(err, client.ErrTooLong) {
		t.Fatalf("Send(9000 bytes) = %v, want ErrTooLong", err)
	}
	if _, err := bob.Send(ctx, "no such", "x", false); !errors.Is(err, client.ErrBadRoom) {
		t.Fatalf("Send to a bad room = %v", err)
	}
	var se *client.ServerError
	if _, err := bob.Do(ctx, protocol.Command{Type: protocol.CmdSend, Room: "dev", Text: "x"}); !errors.As(err, &se) || se.Code != protocol.CodeNotInRoom {
		t.Fatalf("send to a room not joined = %v", err)
	}
}

func TestDialNickTaken(t *testing.T) {
	t.Parallel()
	n := parleytest.Start(t)
	record(t, dial(t, n.URL, client.Options{Nick: "alice"}))
	_, err := client.Dial(ctxT(t), n.URL, client.Options{Nick: "Alice"})
	if !errors.Is(err, client.ErrNickTaken) {
		t.Fatalf("err = %v, want ErrNickTaken", err)
	}
	if err.Error() != `nick "Alice" is taken` {
		t.Fatalf("err = %q, want one naming the nick", err)
	}
}

// TestPacing: a client sending far more than the burst is paced to the
// server's rate instead of being refused. Pipelined sends may be stored out
// of order when one is refused anyway and resent (the window has room for
// a scheduler stall of only 50 ms here); with MaxInFlight 1 the order holds
// even then.
func TestPacing(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name     string
		inFlight int
		burst    int
	}{
		{"pipelined", 0, 10},
		{"one in flight, tight burst", 1, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			n := parleytest.Start(t, parleytest.WithConfig(func(c *server.Config) {
				c.Rate = 100
				c.Burst = tc.burst
			}))
			ctx := ctxT(t)
			c := dial(t, n.URL, client.Options{Rooms: []string{"lobby"}, MaxInFlight: tc.inFlight})
			r := record(t, c)
			want := numbered("p", 1, 150)
			start := time.Now()
			sendAll(t, c, "lobby", want)
			if err := c.Flush(ctx); err != nil {
				t.Fatal(err)
			}
			t.Logf("150 sends at 100/s (burst %d) acked in %v", tc.burst, time.Since(start).Round(time.Millisecond))
			evs := r.wait(t, "every message", hasN("lobby", len(want)))
			got := texts(evs, "lobby")
			if tc.inFlight == 1 {
				if strings.Join(got, ",") != strings.Join(want, ",") {
					t.Errorf("got %q", got)
				}
			} else {
				sorted := slices.Sorted(slices.Values(got))
				if strings.Join(sorted, ",") != strings.Join(want, ",") {
					t.Errorf("got %q", got)
				}
			}
			for _, ev := range evs {
				if ev.Type == protocol.EvError {
					t.Errorf("error: %s", ev.Raw)
				}
			}
		})
	}
}

// TestReconnectResume: a reader survives two restarts of the server and
// gets every message exactly once, in order; a sender's messages sent while
// the server is down go out once it is back.
func TestReconnectResume(t *testing.T) {
	t.Parallel()
	n := parleytest.Start(t, parleytest.WithConfig(fast))
	ctx := ctxT(t)
	// The reader is a guest: it keeps its guest nick across reconnects.
	reader := dial(t, n.URL, client.Options{Rooms: []string{"lobby"}, Reconnect: true})
	guest := reader.Status().Nick
	sender := dial(t, n.URL, client.Options{Nick: "sender", Rooms: []string{"lobby"}, Reconnect: true})
	rr := record(t, reader)
	rs := record(t, sender)
	var want []string
	for round := 1; round <= 3; round++ {
		batch := numbered(fmt.Sprintf("r%d-", round), 1, 40)
		want = append(want, batch...)
		sendAll(t, sender, "lobby", batch[:20])
		if round < 3 {
			n.Stop()
			// Sent while the server is down: queued, resent after reconnecting.
			sendAll(t, sender, "lobby", batch[20:])
			n.Restart()
		} else {
			sendAll(t, sender, "lobby", batch[20:])
		}
		if err := sender.Flush(ctx); err != nil {
			t.Fatal(err)
		}
	}
	evs := rr.wait(t, "every message", hasN("lobby", len(want)))
	got := texts(evs, "lobby")
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("reader got %d messages:\n%q\nwant %d:\n%q", len(got), got, len(want), want)
	}
	reconnects := 0
	for _, ev := range evs {
		if ev.Type == client.EvState && ev.State == client.StateReconnecting {
			if ev.Err == nil {
				t.Errorf("reconnecting event without a cause")
			}
			if ev.Attempt == 1 && !strings.Contains(ev.Err.Error(), "shutting down (1001)") {
				t.Errorf("first reconnect cause = %v, want the 1001 close", ev.Err)
			}
		}
		if ev.Type == client.EvState && ev.State == client.StateConnected && ev.Attempt > 0 {
			reconnects++
		}
	}
	if reconnects != 2 {
		t.Errorf("reconnected %d times, want 2", reconnects)
	}
	if nick := reader.Status().Nick; nick != guest {
		t.Errorf("the reader came back as %q, want its guest nick %q", nick, guest)
	}
	if d := reader.Status().Duplicates; d != 0 {
		t.Errorf("the server resent %d messages already delivered", d)
	}
	// The sender got each message once as well.
	sevs := rs.wait(t, "sender's echoes", hasN("lobby", len(want)))
	if got := texts(sevs, "lobby"); strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("sender got %q", got)
	}
	// And the log holds each once.
	page, err := n.Broker().Read(ctx, broker.Query{Room: "lobby", Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Messages) != len(want) {
		t.Errorf("the log holds %d messages, want %d", len(page.Messages), len(want))
	}
}

// TestResendUnackedRef: the server stores a send but its ack is lost with
// the connection; the client resends it with the same ref after
// reconnecting, and the message exists once.
func TestResendUnackedRef(t *testing.T) {
	t.Parallel()
	n := parleytest.Start(t)
	ctx := ctxT(t)
	p := newProxy(t, n.Addr)
	watcher := dial(t, n.URL, client.Options{Nick: "watcher", Rooms: []string{"lobby"}})
	rw := record(t, watcher)
	c := dial(t, "ws://"+p.addr(), client.Options{Nick: "alice", Rooms: []string{"lobby"}, Reconnect: true})
	rc := record(t, c)
	rc.wait(t, "the join ack", func(evs []client.Event) bool {
		for _, ev := range evs {
			if ev.Type == protocol.EvAck {
				return true
			}
		}
		return false
	})
	p.freeze() // nothing more reaches alice
	ref, err := c.Send(ctx, "lobby", "once", false)
	if err != nil {
		t.Fatal(err)
	}
	rw.wait(t, "the message to be stored and broadcast", hasN("lobby", 1))
	if st := c.Status(); st.Pending != 1 {
		t.Fatalf("pending = %d before the cut, want 1 (the ack is held back)", st.Pending)
	}
	p.cut()
	if err := c.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	evs := rc.wait(t, "the ack of the resend", func(evs []client.Event) bool {
		for _, ev := range evs {
			if ev.Type == protocol.EvAck && ev.Ref == ref {
				return true
			}
		}
		return false
	})
	var ackID uint64
	for _, ev := range evs {
		if ev.Type == protocol.EvAck && ev.Ref == ref {
			ackID = ev.ID
		}
	}
	page, err := n.Broker().Read(ctx, broker.Query{Room: "lobby", Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Messages) != 1 || page.Messages[0].ID != ackID {
		t.Fatalf("log = %+v, ack id %d: want the message once, with the acked id", page.Messages, ackID)
	}
	// Alice resumed lobby after the message: she sees it once (from the
	// resume), the watcher once.
	sendAll(t, c, "lobby", []string{"after"})
	if err := c.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	got := texts(rc.wait(t, "after", hasN("lobby", 2)), "lobby")
	if strings.Join(got, ",") != "once,after" {
		t.Errorf("alice got %q", got)
	}
	got = texts(rw.wait(t, "after", hasN("lobby", 2)), "lobby")
	if strings.Join(got, ",") != "once,after" {
		t.Errorf("watcher got %q", got)
	}
}

// TestResetOnNewLog: the server comes back with another log (another
// epoch); the client resumes with its old epoch, gets a reset, and shows
// the new log's messages even though their ids are lower.
func TestResetOnNewLog(t *testing.T) {
	t.Parallel()
	n := parleytest.Start(t, parleytest.WithConfig(fast))
	ctx := ctxT(t)
	c := dial(t, n.URL, client.Options{Nick: "alice", Rooms: []string{"lobby"}, Reconnect: true})
	r := record(t, c)
	sendAll(t, c, "lobby", numbered("old", 1, 5))
	if err := c.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	r.wait(t, "old messages", hasN("lobby", 5))
	epoch := c.Status().Epoch
	addr := n.Addr
	n.Stop()
	n2 := parleytest.Start(t, parleytest.WithAddr(addr))
	sendAll(t, c, "lobby", []string{"new001"})
	if err := c.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	evs := r.wait(t, "the new message", hasN("lobby", 6))
	var reset bool
	for _, ev := range evs {
		if ev.Type == protocol.EvReset && ev.Room == "lobby" {
			reset = true
		}
	}
	if !reset {
		t.Errorf("no reset event:\n%s", dump(evs))
	}
	if st := c.Status(); st.Epoch == epoch || st.Rooms[0].LastID != 1 {
		t.Errorf("status after reset = %+v (old epoch %s)", st, epoch)
	}
	_ = n2
}

// TestCloseSendsNormalClosure: Close is a 1000 close, and Events ends.
func TestCloseSendsNormalClosure(t *testing.T) {
	t.Parallel()
	got := make(chan error, 1)
	srv := parleyish(t, func(ctx context.Context, c *websocketConn) {
		_, _, err := c.Read(ctx)
		got <- err
	})
	c, err := client.Dial(ctxT(t), srv.URL, client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if code := closeStatus(<-got); code != 1000 {
		t.Fatalf("the server saw close code %d, want 1000", code)
	}
	var last client.Event
	for ev := range c.Events() {
		last = ev
	}
	if last.State != client.StateClosed || last.Err != nil || c.Err() != nil {
		t.Fatalf("last event %+v, Err %v", last, c.Err())
	}
	if _, err := c.Send(ctxT(t), "lobby", "x", false); !errors.Is(err, client.ErrClosed) {
		t.Fatalf("Send after Close = %v", err)
	}
}

// proxy is a TCP proxy on 127.0.0.1 that can hold back what the server
// sends and cut every connection: a network that loses an ack.
type proxy struct {
	ln       net.Listener
	upstream string
	mu       sync.Mutex
	frozen   bool
	thaw     chan struct{}
	conns    []net.Conn
	wg       sync.WaitGroup
}

func newProxy(t *testing.T, upstream string) *proxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &proxy{ln: ln, upstream: upstream, thaw: make(chan struct{})}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(func() {
		ln.Close()
		p.cut()
		p.wg.Wait()
	})
	return p
}

func (p *proxy) addr() string { return p.ln.Addr().String() }

func (p *proxy) accept() {
	defer p.wg.Done()
	for {
		down, err := p.ln.Accept()
		if err != nil {
			return
		}
		up, err := net.Dial("tcp", p.upstream)
		if err != nil {
			down.Close()
			continue
		}
		p.mu.Lock()
		p.conns = append(p.conns, down, up)
		p.mu.Unlock()
		p.wg.Add(2)
		go func() {
			defer p.wg.Done()
			io.Copy(up, down)
			up.Close()
		}()
		go func() {
			defer p.wg.Done()
			p.copyDown(down, up)
			down.Close()
		}()
	}
}

// copyDown copies server to client, holding bytes back while frozen.
func (p *proxy) copyDown(down, up net.Conn) {
	buf := make([]byte, 32<<10)
	for {
		n, err := up.Read(buf)
		if n > 0 {
			p.mu.Lock()
			frozen, thaw := p.frozen, p.thaw
			p.mu.Unlock()
			if frozen {
				<-thaw // dropped: cut closes the connections
				return
			}
			if _, err := down.Write(buf[:n]); err != nil {
				return
			}
		}
		if err != nil {
			return
		}
	}
}

func (p *proxy) freeze() {
	p.mu.Lock()
	p.frozen = true
	p.mu.Unlock()
}

// cut closes every proxied connection and lets new ones through.
func (p *proxy) cut() {
	p.mu.Lock()
	conns := p.conns
	p.conns = nil
	if p.frozen {
		p.frozen = false
		close(p.thaw)
		p.thaw = make(chan struct{})
	}
	p.mu.Unlock()
	for _, c := range conns {
		c.Close()
	}
}

// TestCloseWhileReconnecting: Close ends a client that waits for a server
// that is gone; what it had not sent fails with ErrClosed.
func TestCloseWhileReconnecting(t *testing.T) {
	t.Parallel()
	n := parleytest.Start(t)
	c := dial(t, n.URL, client.Options{Rooms: []string{"lobby"}, Reconnect: true})
	r := record(t, c)
	n.Stop()
	r.wait(t, "two reconnect attempts", func(evs []client.Event) bool {
		k := 0
		for _, ev := range evs {
			if ev.State == client.StateReconnecting {
				k++
			}
		}
		return k >= 2
	})
	if st := c.Status().State; st != client.StateReconnecting {
		t.Fatalf("state = %v", st)
	}
	ctx := ctxT(t)
	if _, err := c.Send(ctx, "lobby", "queued", false); err != nil {
		t.Fatalf("Send while reconnecting: %v (it should queue)", err)
	}
	flushed := make(chan error, 1)
	go func() { flushed <- c.Flush(ctx) }()
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if err := <-flushed; !errors.Is(err, client.ErrClosed) {
		t.Fatalf("Flush = %v, want ErrClosed", err)
	}
	evs := r.wait(t, "closed", func(evs []client.Event) bool {
		return len(evs) > 0 && evs[len(evs)-1].State == client.StateClosed
	})
	if last := evs[len(evs)-1]; last.Err != nil || c.Err() != nil {
		t.Fatalf("closed with %v / %v, want nil after Close", last.Err, c.Err())
	}
}

// BenchmarkSend measures sends acknowledged per second on one connection
// to a local node without a rate limit: pipelined (the default window) and
// one at a time (what parley chat does, for strict order).
func BenchmarkSend(b *testing.B) {
	for _, inFlight := range []int{1, 256} {
		b.Run(fmt.Sprintf("inflight=%d", inFlight), func(b *testing.B) {
			n := parleytest.Start(b, parleytest.WithConfig(func(c *server.Config) {
				c.Rate = rate.Inf
			}))
			ctx := context.Background()
			c, err := client.Dial(ctx, n.URL, client.Options{Rooms: []string{"lobby"}, MaxInFlight: inFlight, EventBuffer: 1 << 16})
			if err != nil {
				b.Fatal(err)
			}
			done := make(chan struct{})
			go func() {
				defer close(done)
				for range c.Events() {
				}
			}()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				if _, err := c.Send(ctx, "lobby", "benchmark message", false); err != nil {
					b.Fatal(err)
				}
			}
			if err := c.Flush(ctx); err != nil {
				b.Fatal(err)
			}
			b.StopTimer()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "acked/s")
			c.Close()
			<-done
		})
	}
}

// TestSyncResume: Dial with Since replays only later messages, and Sync
// returns once they are on Events; its barrier is not delivered.
func TestSyncResume(t *testing.T) {
	t.Parallel()
	n := parleytest.Start(t, parleytest.WithConfig(fast))
	ctx := ctxT(t)
	alice := dial(t, n.URL, client.Options{Nick: "alice", Rooms: []string{"lobby"}})
	record(t, alice)
	sendAll(t, alice, "lobby", numbered("s", 1, 5))
	if err := alice.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	bob := dial(t, n.URL, client.Options{Nick: "bob", Rooms: []string{"LOBBY"}, Since: map[string]uint64{"lobby": 3}})
	if err := bob.Sync(ctx); err != nil {
		t.Fatal(err)
	}
	var evs []client.Event
	for len(bob.Events()) > 0 {
		evs = append(evs, <-bob.Events())
	}
	if got := texts(evs, "lobby"); strings.Join(got, ",") != "s004,s005" {
		t.Fatalf("after Sync, Events holds %q; events:\n%s", got, dump(evs))
	}
	for _, ev := range evs {
		if ev.Type == protocol.EvRooms {
			t.Errorf("the barrier's answer was delivered: %s", ev.Raw)
		}
		if ev.Type == protocol.EvMessage && !ev.History {
			t.Errorf("replayed message without history: %s", ev.Raw)
		}
	}
	bob.Close()
	for range bob.Events() {
	}
}
