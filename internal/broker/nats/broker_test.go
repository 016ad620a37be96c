package nats

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	"go.uber.org/goleak"

	"parley/internal/broker"
	"parley/internal/broker/nats/natstest"
	"parley/internal/chat"
)

func TestMain(m *testing.M) {
	// No ignores: the embedded servers and the clients stop every
	// goroutine they start once Shutdown and Close return.
	goleak.VerifyTestMain(m)
}

// collector is a DeliverFunc that records what it is given.
type collector struct {
	mu   sync.Mutex
	msgs []chat.Message
}

func (c *collector) deliver(m chat.Message) {
	c.mu.Lock()
	c.msgs = append(c.msgs, m)
	c.mu.Unlock()
}

func (c *collector) all() []chat.Message {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.msgs)
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func open(t *testing.T, cfg Config, deliver broker.DeliverFunc) *Broker {
	t.Helper()
	if cfg.Node == "" {
		cfg.Node = "test-" + randomHex(3)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	b, err := Open(ctx, cfg, deliver)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

func ctxT(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

func send(t *testing.T, b *Broker, room, from, text, ref string) chat.Message {
	t.Helper()
	m, err := b.Append(ctxT(t, 5*time.Second), chat.Message{Room: room, From: from, Text: text, Ref: ref})
	if err != nil {
		t.Fatalf("Append(%s %q): %v", room, text, err)
	}
	return m
}

func ids(ms []chat.Message) []uint64 {
	out := make([]uint64, len(ms))
	for i, m := range ms {
		out[i] = m.ID
	}
	return out
}

func TestAppendReadDedupe(t *testing.T) {
	t.Parallel()
	srv := natstest.Start(t)
	var got collector
	b := open(t, Config{URL: srv.URL()}, got.deliver)

	var lobby, dev []chat.Message
	for i := range 6 {
		lobby = append(lobby, send(t, b, "Lobby", "alice", fmt.Sprintf("l%d", i), ""))
		if i%2 == 0 {
			dev = append(dev, send(t, b, "dev", "bob", fmt.Sprintf("d%d", i), ""))
		}
	}
	for _, room := range [][]chat.Message{lobby, dev} {
		for i := 1; i < len(room); i++ {
			if room[i].ID <= room[i-1].ID {
				t.Fatalf("ids not growing: %v", ids(room))
			}
		}
	}
	m := lobby[0]
	if m.Time.IsZero() || m.Time.Location() != time.UTC || m.Time.Nanosecond()%int(time.Millisecond) != 0 {
		t.Errorf("time %v: want UTC milliseconds", m.Time)
	}

	ctx := ctxT(t, 10*time.Second)
	// Room names are case-insensitive.
	p, err := b.Read(ctx, broker.Query{Room: "lobby", Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(ids(p.Messages), ids(lobby)) || p.First != lobby[0].ID || p.Last != lobby[5].ID {
		t.Fatalf("forward all: got %v first %d last %d, want %v", ids(p.Messages), p.First, p.Last, ids(lobby))
	}
	if p.Messages[2].Text != "l2" || p.Messages[2].From != "alice" || p.Messages[2].Room != "Lobby" || !p.Messages[2].Time.Equal(lobby[2].Time) {
		t.Errorf("read back %+v, appended %+v", p.Messages[2], lobby[2])
	}
	p, _ = b.Read(ctx, broker.Query{Room: "lobby", After: lobby[1].ID, Limit: 2})
	if !slices.Equal(ids(p.Messages), ids(lobby[2:4])) {
		t.Errorf("forward after %d limit 2: %v, want %v", lobby[1].ID, ids(p.Messages), ids(lobby[2:4]))
	}
	p, _ = b.Read(ctx, broker.Query{Room: "lobby", Backward: true, Limit: 2})
	if !slices.Equal(ids(p.Messages), ids(lobby[4:])) {
		t.Errorf("backward newest 2: %v, want %v", ids(p.Messages), ids(lobby[4:]))
	}
	p, _ = b.Read(ctx, broker.Query{Room: "lobby", Backward: true, Before: lobby[3].ID, Limit: 10})
	if !slices.Equal(ids(p.Messages), ids(lobby[:3])) {
		t.Errorf("backward before %d: %v, want %v", lobby[3].ID, ids(p.Messages), ids(lobby[:3]))
	}
	p, _ = b.Read(ctx, broker.Query{Room: "empty", Limit: 10})
	if len(p.Messages) != 0 || p.First != 0 || p.Last != lobby[5].ID {
		t.Errorf("empty room: %+v, want no messages, First 0, Last the stream's last id %d", p, lobby[5].ID)
	}

	// Dedupe: the same (nick, ref) twice is stored once, with one id.
	a1 := send(t, b, "lobby", "carol", "once", "r1")
	a2 := send(t, b, "lobby", "Carol", "once again", "r1")
	if a1.ID != a2.ID || a2.Text != "once" || a2.Ref != "r1" {
		t.Fatalf("retried ref: first %+v, second %+v", a1, a2)
	}
	other := send(t, b, "lobby", "dave", "mine", "r1")
	if other.ID == a1.ID {
		t.Fatal("another nick's ref was deduplicated")
	}
	p, _ = b.Read(ctx, broker.Query{Room: "lobby", After: lobby[5].ID})
	if !slices.Equal(ids(p.Messages), []uint64{a1.ID, other.ID}) {
		t.Fatalf("after dedupe: %v", ids(p.Messages))
	}

	// Delivery: every stored message once, in stream order.
	want := len(lobby) + len(dev) + 2
	waitFor(t, 5*time.Second, "delivery", func() bool { return len(got.all()) >= want })
	d := got.all()
	if len(d) != want {
		t.Fatalf("delivered %d, want %d", len(d), want)
	}
	for i := 1; i < len(d); i++ {
		if d[i].ID <= d[i-1].ID {
			t.Fatalf("delivery out of order: %v", ids(d))
		}
	}

	rooms, err := b.Rooms(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(rooms) != 2 || rooms[0].Name != "dev" || rooms[0].Messages != 3 || rooms[1].Messages != 8 ||
		rooms[1].LastID != other.ID || rooms[1].LastActivity.IsZero() {
		t.Errorf("rooms: %+v", rooms)
	}
	if err := b.Ready(ctx); err != nil {
		t.Errorf("Ready: %v", err)
	}
}

func TestEpoch(t *testing.T) {
	t.Parallel()
	srv := natstest.Start(t)
	b1 := open(t, Config{URL: srv.URL()}, nil)
	b2 := open(t, Config{URL: srv.URL(), Replicas: 1, RetainMessages: 10}, nil) // updates limits
	if b1.Epoch() == "" || b1.Epoch() != b2.Epoch() {
		t.Fatalf("epochs %q and %q: want one, non-empty", b1.Epoch(), b2.Epoch())
	}
	js, _ := jetstream.New(b1.Conn())
	if err := js.DeleteStream(ctxT(t, 5*time.Second), "PARLEY"); err != nil {
		t.Fatal(err)
	}
	b3 := open(t, Config{URL: srv.URL()}, nil)
	if b3.Epoch() == b1.Epoch() {
		t.Fatal("a recreated stream kept its epoch")
	}
}

func TestGap(t *testing.T) {
	t.Parallel()
	srv := natstest.Start(t)
	b := open(t, Config{URL: srv.URL(), RetainMessages: 3}, nil)
	ctx := ctxT(t, 10*time.Second)

	// Another room's messages between two of ours are not a gap: the
	// client saw a1, and a1 is still held, so First <= a1.
	a1 := send(t, b, "a", "x", "a1", "")
	send(t, b, "b", "x", "b1", "")
	send(t, b, "b", "x", "b2", "")
	a2 := send(t, b, "a", "x", "a2", "")
	p, err := b.Read(ctx, broker.Query{Room: "a", After: a1.ID})
	if err != nil {
		t.Fatal(err)
	}
	if a1.ID+1 < p.First || !slices.Equal(ids(p.Messages), []uint64{a2.ID}) {
		t.Fatalf("no loss, yet gap: after %d first %d msgs %v", a1.ID, p.First, ids(p.Messages))
	}

	// Three more: the room keeps 3, so a1 and a2 are gone and a client
	// that saw a1 has missed a2.
	var rest []chat.Message
	for i := range 3 {
		rest = append(rest, send(t, b, "a", "x", fmt.Sprint("a", i+3), ""))
	}
	p, err = b.Read(ctx, broker.Query{Room: "a", After: a1.ID})
	if err != nil {
		t.Fatal(err)
	}
	if !(a1.ID+1 < p.First) || p.First != rest[0].ID || p.Last != rest[2].ID {
		t.Fatalf("lost a2 but no gap: after %d first %d last %d", a1.ID, p.First, p.Last)
	}
	if !slices.Equal(ids(p.Messages), ids(rest)) {
		t.Fatalf("after the gap: %v, want %v", ids(p.Messages), ids(rest))
	}
}

// TestBackwardSparse reads a quiet room's history among a busy room's
// messages, across several windows.
func TestBackwardSparse(t *testing.T) {
	t.Parallel()
	srv := natstest.Start(t)
	b := open(t, Config{URL: srv.URL()}, nil)
	var quiet []chat.Message
	for i := range 600 {
		if i%40 == 0 {
			quiet = append(quiet, send(t, b, "quiet", "q", fmt.Sprint(i), ""))
		}
		send(t, b, "busy", "b", fmt.Sprint(i), "")
	}
	ctx := ctxT(t, 10*time.Second)
	p, err := b.Read(ctx, broker.Query{Room: "quiet", Backward: true, Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(ids(p.Messages), ids(quiet[len(quiet)-10:])) {
		t.Fatalf("backward: %v, want %v", ids(p.Messages), ids(quiet[len(quiet)-10:]))
	}
	p, _ = b.Read(ctx, broker.Query{Room: "quiet", Backward: true, Before: quiet[3].ID, Limit: 10})
	if !slices.Equal(ids(p.Messages), ids(quiet[:3])) {
		t.Fatalf("backward before: %v, want %v", ids(p.Messages), ids(quiet[:3]))
	}
	p, _ = b.Read(ctx, broker.Query{Room: "busy", Backward: true, Limit: 300})
	if len(p.Messages) != 300 || p.Messages[299].ID != p.Last {
		t.Fatalf("busy backward: %d messages, last %d of %d", len(p.Messages), p.Messages[len(p.Messages)-1].ID, p.Last)
	}
	p, _ = b.Read(ctx, broker.Query{Room: "busy", Limit: 1000})
	if len(p.Messages) != 600 {
		t.Fatalf("busy forward: %d messages, want 600", len(p.Messages))
	}
}

// TestThreeNodes runs three brokers on one NATS: each node delivers every
// message once, and all nodes see each room in the same order.
func TestThreeNodes(t *testing.T) {
	t.Parallel()
	srv := natstest.Start(t)
	var got [3]collector
	var nodes [3]*Broker
	for i := range nodes {
		nodes[i] = open(t, Config{URL: srv.URL(), Node: fmt.Sprint("node", i)}, got[i].deliver)
	}
	const perNode = 100
	rooms := []string{"r1", "r2"}
	var wg sync.WaitGroup
	errs := make(chan error, len(nodes))
	for i, b := range nodes {
		wg.Go(func() {
			for j := range perNode {
				_, err := b.Append(context.Background(), chat.Message{Room: rooms[j%2], From: fmt.Sprint("u", i), Text: fmt.Sprint(j)})
				if err != nil {
					errs <- err
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	total := perNode * len(nodes)
	for i := range got {
		waitFor(t, 10*time.Second, fmt.Sprint("node ", i, " delivery"), func() bool { return len(got[i].all()) >= total })
	}
	byRoom := func(ms []chat.Message, room string) []uint64 {
		var out []uint64
		for _, m := range ms {
			if m.Room == room {
				out = append(out, m.ID)
			}
		}
		return out
	}
	first := got[0].all()
	if len(first) != total {
		t.Fatalf("node 0 delivered %d, want %d", len(first), total)
	}
	for _, room := range rooms {
		want := byRoom(first, room)
		if len(want) != total/2 || !slices.IsSorted(want) {
			t.Fatalf("room %s on node 0: %d messages, sorted %v", room, len(want), slices.IsSorted(want))
		}
		for i := 1; i < len(got); i++ {
			all := got[i].all()
			if len(all) != total {
				t.Fatalf("node %d delivered %d, want %d", i, len(all), total)
			}
			if g := byRoom(all, room); !slices.Equal(g, want) {
				t.Fatalf("room %s: node %d order differs from node 0", room, i)
			}
		}
	}
}

// TestNATSRestart stops the NATS server under a broker: appends fail with
// ErrNotStored, Ready says why; after the restart delivery resumes with
// every acknowledged message once.
func TestNATSRestart(t *testing.T) {
	t.Parallel()
	srv := natstest.Start(t)
	var got collector
	b := open(t, Config{URL: srv.URL()}, got.deliver)
	var acked []uint64
	for i := range 5 {
		acked = append(acked, send(t, b, "lobby", "a", fmt.Sprint("before ", i), "").ID)
	}
	waitFor(t, 5*time.Second, "delivery before the outage", func() bool { return len(got.all()) == 5 })

	srv.Stop()
	waitFor(t, 5*time.Second, "disconnect", func() bool { return b.Conn().Status() != nats.CONNECTED })
	ctx := ctxT(t, 5*time.Second)
	if err := b.Ready(ctx); err == nil {
		t.Fatal("Ready: nil while NATS is down")
	}
	for i := range 3 {
		actx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
		_, err := b.Append(actx, chat.Message{Room: "lobby", From: "a", Text: fmt.Sprint("during ", i)})
		cancel()
		if !errors.Is(err, broker.ErrNotStored) {
			t.Fatalf("append during outage: %v, want ErrNotStored", err)
		}
	}

	srv.Restart()
	waitFor(t, 15*time.Second, "ready after restart", func() bool { return b.Ready(ctx) == nil })
	for i := range 5 {
		// Right after the reconnect the stream may still be recovering:
		// retry with the same ref, which dedupe makes safe.
		ref := fmt.Sprint("after-", i)
		var m chat.Message
		waitFor(t, 10*time.Second, "append after restart", func() bool {
			var err error
			m, err = b.Append(ctxT(t, 2*time.Second), chat.Message{Room: "lobby", From: "a", Text: ref, Ref: ref})
			return err == nil
		})
		acked = append(acked, m.ID)
	}
	waitFor(t, 20*time.Second, "delivery after restart", func() bool { return len(got.all()) >= len(acked) })
	if d := ids(got.all()); !slices.Equal(d, acked) {
		t.Fatalf("delivered %v, acked %v", d, acked)
	}
}

// TestClusterFailover runs the stream with three replicas on three NATS
// servers and shuts down the stream leader mid-stream.
func TestClusterFailover(t *testing.T) {
	t.Parallel()
	servers := natstest.StartCluster(t, 3)
	var got [2]collector
	// The client picks a server of the list at random.
	urls := natstest.URLs(servers)
	b0 := open(t, Config{URL: urls, Replicas: 3, Node: "a"}, got[0].deliver)
	b1 := open(t, Config{URL: urls, Replicas: 3, Node: "b"}, got[1].deliver)

	var acked []uint64
	appendRetry := func(b *Broker, i int) {
		ref := fmt.Sprint("m", i)
		var m chat.Message
		waitFor(t, 20*time.Second, "append "+ref, func() bool {
			var err error
			m, err = b.Append(ctxT(t, 2*time.Second), chat.Message{Room: "lobby", From: "x", Text: ref, Ref: ref})
			return err == nil
		})
		acked = append(acked, m.ID)
	}
	for i := range 20 {
		appendRetry([]*Broker{b0, b1}[i%2], i)
	}
	// Read-your-writes across nodes: a message acknowledged to one node is
	// in the very next read on another, whichever replica answers it.
	for i := range 30 {
		m := send(t, b1, "rw", "x", fmt.Sprint(i), "")
		p, err := b0.Read(ctxT(t, 5*time.Second), broker.Query{Room: "rw", After: m.ID - 1, Limit: 10})
		if err != nil {
			t.Fatal(err)
		}
		if p.Last != m.ID || len(p.Messages) != 1 || p.Messages[0].ID != m.ID {
			t.Fatalf("read right after append %d: last %d, messages %v", m.ID, p.Last, ids(p.Messages))
		}
		p, err = b0.Read(ctxT(t, 5*time.Second), broker.Query{Room: "rw", Backward: true, Limit: 1})
		if err != nil || len(p.Messages) != 1 || p.Messages[0].ID != m.ID {
			t.Fatalf("backward read right after append %d: %v %v", m.ID, ids(p.Messages), err)
		}
	}
	info, err := b0.stream.Info(ctxT(t, 5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if info.Cluster == nil || len(info.Cluster.Replicas) != 2 {
		t.Fatalf("stream not replicated: %+v", info.Cluster)
	}
	leader := info.Cluster.Leader
	for _, s := range servers {
		if s.Name() == leader {
			s.Stop()
		}
	}
	stopped := time.Now()
	for i := 20; i < 40; i++ {
		appendRetry([]*Broker{b0, b1}[i%2], i)
		if i == 20 {
			t.Logf("first append after the leader stopped: %v", time.Since(stopped).Round(time.Millisecond))
		}
	}
	if !slices.IsSorted(acked) {
		t.Fatalf("acked ids not growing: %v", acked)
	}
	lobby := func(ms []chat.Message) []uint64 {
		var out []uint64
		for _, m := range ms {
			if m.Room == "lobby" {
				out = append(out, m.ID)
			}
		}
		return out
	}
	for i := range got {
		waitFor(t, 30*time.Second, fmt.Sprint("node ", i, " delivery"), func() bool { return len(lobby(got[i].all())) >= len(acked) })
		t.Logf("node %d delivered everything %v after the leader stopped", i, time.Since(stopped).Round(time.Millisecond))
		if d := lobby(got[i].all()); !slices.Equal(d, acked) {
			t.Fatalf("node %d delivered %v, acked %v", i, d, acked)
		}
		if n := len(got[i].all()); n != len(acked)+30 {
			t.Fatalf("node %d delivered %d messages, want %d", i, n, len(acked)+30)
		}
	}
	p, err := b1.Read(ctxT(t, 10*time.Second), broker.Query{Room: "lobby", Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(ids(p.Messages), acked) {
		t.Fatalf("read after failover: %v, acked %v", ids(p.Messages), acked)
	}
}

// TestWait opens a broker before its NATS server is up: with Wait it keeps
// trying and opens once the server starts; without, it fails at once.
func TestWait(t *testing.T) {
	t.Parallel()
	srv := natstest.Start(t)
	srv.Stop()
	if _, err := Open(ctxT(t, 5*time.Second), Config{URL: srv.URL(), Node: "nowait"}, nil); err == nil {
		t.Fatal("Open without Wait succeeded with NATS down")
	}
	type result struct {
		b   *Broker
		err error
	}
	done := make(chan result, 1)
	go func() {
		b, err := Open(ctxT(t, 20*time.Second), Config{URL: srv.URL(), Node: "waiter", Wait: true}, nil)
		done <- result{b, err}
	}()
	select {
	case r := <-done:
		t.Fatalf("Open with Wait returned while NATS was down: %v", r.err)
	case <-time.After(300 * time.Millisecond):
		// Still waiting, as it should: this bounds the check, it does not
		// let anything settle.
	}
	srv.Restart()
	r := <-done
	if r.err != nil {
		t.Fatalf("Open with Wait: %v", r.err)
	}
	defer r.b.Close()
	if err := r.b.Ready(ctxT(t, 5*time.Second)); err != nil {
		t.Fatalf("Ready: %v", err)
	}
}
