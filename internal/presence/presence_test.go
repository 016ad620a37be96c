package presence

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"go.uber.org/goleak"

	"parley/internal/broker/nats/natstest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

type events struct {
	mu  sync.Mutex
	all []Event
}

func (e *events) add(ev Event) {
	e.mu.Lock()
	e.all = append(e.all, ev)
	e.mu.Unlock()
}

// count returns how many events match kind, room and nick.
func (e *events) count(kind Kind, room, nick string) int {
	e.mu.Lock()
	defer e.mu.Unlock()
	n := 0
	for _, ev := range e.all {
		if ev.Kind == kind && ev.Room == room && ev.Nick == nick {
			n++
		}
	}
	return n
}

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

type node struct {
	p  *Presence
	nc *nats.Conn
	ev *events
}

// Short timings so a dead node is noticed in under two seconds, yet long
// enough that a live node on a loaded machine is not taken for dead.
const (
	testHeartbeat = 200 * time.Millisecond
	testTTL       = 1500 * time.Millisecond
)

func startNode(t *testing.T, url, name string) *node {
	t.Helper()
	return startNodeTTL(t, url, name, testHeartbeat, testTTL)
}

func startNodeTTL(t *testing.T, url, name string, heartbeat, ttl time.Duration) *node {
	t.Helper()
	nc, err := nats.Connect(url)
	if err != nil {
		t.Fatal(err)
	}
	ev := &events{}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	p, err := Open(ctx, Config{Conn: nc, Node: name, Heartbeat: heartbeat, NodeTTL: ttl}, ev.add)
	if err != nil {
		nc.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		p.Close()
		nc.Close()
	})
	return &node{p: p, nc: nc, ev: ev}
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func members(t *testing.T, n *node, room string) []string {
	t.Helper()
	m, err := n.p.Members(ctxT(t), room)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestAcrossNodes(t *testing.T) {
	t.Parallel()
	srv := natstest.Start(t)
	// A TTL far beyond the test's waits: every leave here comes from a
	// Leave or a Close, never from a sweep.
	start := func(name string) *node { return startNodeTTL(t, srv.URL(), name, time.Second, time.Minute) }
	a, b, c := start("a"), start("b"), start("c")
	ctx := ctxT(t)

	if err := a.p.ClaimNick(ctx, "Alice", "s1"); err != nil {
		t.Fatal(err)
	}
	if err := a.p.ClaimNick(ctx, "Alice", "s1"); err != nil {
		t.Fatalf("claiming one's own nick again: %v", err)
	}
	for _, n := range []*node{a, b, c} {
		if err := n.p.ClaimNick(ctx, "alice", "s2"); !errors.Is(err, ErrNickTaken) {
			t.Fatalf("node %s claimed a taken nick: %v", n.p.cfg.Node, err)
		}
	}
	if err := a.p.Join(ctx, "Lobby", "Alice"); err != nil {
		t.Fatal(err)
	}
	if got := members(t, a, "lobby"); !slices.Equal(got, []string{"Alice"}) {
		t.Fatalf("own join not visible at once: %v", got)
	}
	if err := c.p.ClaimNick(ctx, "bob", "s3"); err != nil {
		t.Fatal(err)
	}
	if err := c.p.Join(ctx, "lobby", "bob"); err != nil {
		t.Fatal(err)
	}
	for _, n := range []*node{a, b, c} {
		waitFor(t, 5*time.Second, "members on "+n.p.cfg.Node, func() bool {
			return slices.Equal(members(t, n, "LOBBY"), []string{"Alice", "bob"})
		})
		waitFor(t, 5*time.Second, "join events", func() bool {
			return n.ev.count(Join, "Lobby", "Alice") == 1 && n.ev.count(Join, "lobby", "bob") == 1
		})
	}
	rooms, _ := b.p.Rooms(ctx)
	if len(rooms) != 1 || rooms[0].Members != 2 {
		t.Fatalf("rooms: %+v", rooms)
	}

	// A rename is one nick event, no leave and no join.
	if err := a.p.ClaimNick(ctx, "carol", "s1"); err != nil {
		t.Fatal(err)
	}
	if err := a.p.Rename(ctx, "Lobby", "Alice", "carol"); err != nil {
		t.Fatal(err)
	}
	if err := a.p.ReleaseNick(ctx, "Alice"); err != nil {
		t.Fatal(err)
	}
	for _, n := range []*node{a, b, c} {
		waitFor(t, 5*time.Second, "rename on "+n.p.cfg.Node, func() bool {
			return slices.Equal(members(t, n, "lobby"), []string{"bob", "carol"}) && n.ev.count(Nick, "Lobby", "carol") == 1
		})
	}
	if err := b.p.ClaimNick(ctx, "ALICE", "s4"); err != nil {
		t.Fatalf("a released nick: %v", err)
	}

	// A leave is one event on every node.
	if err := c.p.Leave(ctx, "lobby", "bob"); err != nil {
		t.Fatal(err)
	}
	for _, n := range []*node{a, b, c} {
		waitFor(t, 5*time.Second, "leave on "+n.p.cfg.Node, func() bool {
			return n.ev.count(Leave, "lobby", "bob") == 1 && slices.Equal(members(t, n, "lobby"), []string{"carol"})
		})
		if n.ev.count(Leave, "Lobby", "Alice") != 0 || n.ev.count(Join, "Lobby", "carol") != 0 {
			t.Fatalf("node %s: a rename made a leave or a join: %+v", n.p.cfg.Node, n.ev.all)
		}
	}

	// A clean Close: the others see its members leave at once.
	if err := a.p.Close(); err != nil {
		t.Fatal(err)
	}
	for _, n := range []*node{b, c} {
		waitFor(t, 5*time.Second, "leave after close", func() bool {
			return n.ev.count(Leave, "Lobby", "carol") == 1 && len(members(t, n, "lobby")) == 0
		})
	}
	if err := c.p.ClaimNick(ctx, "carol", "s5"); err != nil {
		t.Fatalf("nick of a closed node: %v", err)
	}
}

// TestDeadNode kills a node's NATS connection: the others drop its members
// within NodeTTL and a sweep, each emitting one leave per member.
func TestDeadNode(t *testing.T) {
	t.Parallel()
	srv := natstest.Start(t)
	a, b, c := startNode(t, srv.URL(), "a"), startNode(t, srv.URL(), "b"), startNode(t, srv.URL(), "c")
	ctx := ctxT(t)
	if err := a.p.ClaimNick(ctx, "dora", "s1"); err != nil {
		t.Fatal(err)
	}
	for _, room := range []string{"lobby", "dev"} {
		if err := a.p.Join(ctx, room, "dora"); err != nil {
			t.Fatal(err)
		}
	}
	for _, n := range []*node{b, c} {
		waitFor(t, 5*time.Second, "members", func() bool {
			return slices.Equal(members(t, n, "dev"), []string{"dora"}) && slices.Equal(members(t, n, "lobby"), []string{"dora"})
		})
	}

	a.nc.Close() // the process dies: no cleanup
	killed := time.Now()
	for _, n := range []*node{b, c} {
		waitFor(t, 10*time.Second, "dead node dropped on "+n.p.cfg.Node, func() bool {
			return len(members(t, n, "lobby")) == 0 && len(members(t, n, "dev")) == 0
		})
	}
	// NodeTTL, then at most one sweep tick (Heartbeat/2); the second of
	// slack is for a loaded test machine.
	if took, bound := time.Since(killed), testTTL+testHeartbeat/2+time.Second; took > bound {
		t.Errorf("dead node dropped after %v, want within %v", took, bound)
	}
	if err := b.p.ClaimNick(ctx, "DORA", "s2"); err != nil {
		t.Fatalf("nick of a dead node: %v", err)
	}
	// Both survivors swept; wait until the keys are gone from the bucket,
	// then each must have emitted exactly one leave per room.
	waitFor(t, 5*time.Second, "keys deleted", func() bool {
		_, err1 := b.p.kv.Get(ctx, memberKey("lobby", "dora"))
		_, err2 := b.p.kv.Get(ctx, memberKey("dev", "dora"))
		return err1 != nil && err2 != nil
	})
	for _, n := range []*node{b, c} {
		for _, room := range []string{"lobby", "dev"} {
			if got := n.ev.count(Leave, room, "dora"); got != 1 {
				t.Errorf("node %s: %d leaves for dora in %s, want 1", n.p.cfg.Node, got, room)
			}
		}
	}
	// Close with a dead connection skips the deletes and still stops.
	if err := a.p.Close(); err != nil {
		t.Errorf("Close after the connection died: %v", err)
	}
}

// TestRestartSameName: a node that comes back under the same name drops
// the members of its previous life.
func TestRestartSameName(t *testing.T) {
	t.Parallel()
	srv := natstest.Start(t)
	a, b := startNode(t, srv.URL(), "a"), startNode(t, srv.URL(), "b")
	ctx := ctxT(t)
	if err := a.p.ClaimNick(ctx, "erin", "s1"); err != nil {
		t.Fatal(err)
	}
	if err := a.p.Join(ctx, "lobby", "erin"); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "join", func() bool { return b.ev.count(Join, "lobby", "erin") == 1 })
	a.nc.Close()
	a2 := startNode(t, srv.URL(), "a")
	for _, n := range []*node{a2, b} {
		waitFor(t, 2*testTTL, fmt.Sprint("old life dropped on ", n.p.cfg.Node), func() bool {
			return len(members(t, n, "lobby")) == 0
		})
	}
	if err := a2.p.ClaimNick(ctx, "erin", "s9"); err != nil {
		t.Fatal(err)
	}
	if b.ev.count(Leave, "lobby", "erin") != 1 {
		t.Fatalf("leaves on b: %d", b.ev.count(Leave, "lobby", "erin"))
	}
}

// A join and a leave in quick succession are two events on every node,
// even on one whose watcher lags behind: the bucket keeps more than the
// latest revision of a key, so the join is still there to be read when
// the leave has already been written.
func TestQuickJoinLeave(t *testing.T) {
	t.Parallel()
	srv := natstest.Start(t)
	start := func(name string) *node { return startNodeTTL(t, srv.URL(), name, time.Second, time.Minute) }
	a, b := start("a"), start("b")
	ctx := ctxT(t)
	// Writes back to back, as fast as NATS acknowledges them: far faster
	// than a watcher under -race handles each event.
	const n = 300
	for i := range n {
		nick := fmt.Sprint("q", i)
		if err := a.p.Join(ctx, "quick", nick); err != nil {
			t.Fatal(err)
		}
		if err := a.p.Leave(ctx, "quick", nick); err != nil {
			t.Fatal(err)
		}
	}
	for _, nd := range []*node{a, b} {
		waitFor(t, 20*time.Second, "the last leave on node "+nd.p.cfg.Node, func() bool {
			return nd.ev.count(Leave, "quick", fmt.Sprint("q", n-1)) == 1
		})
		for i := range n {
			nick := fmt.Sprint("q", i)
			if j, l := nd.ev.count(Join, "quick", nick), nd.ev.count(Leave, "quick", nick); j != 1 || l != 1 {
				t.Fatalf("node %s: %s joined %d times and left %d times, want once each", nd.p.cfg.Node, nick, j, l)
			}
		}
	}
}
