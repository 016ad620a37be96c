package server_test

// End-to-end tests of parley nodes sharing a real NATS JetStream server (or
// a cluster of three), driven by real WebSocket clients: one order per room
// across nodes, failover when a node dies, NATS going away and coming back,
// a NATS server lost under a replicated stream, and cluster presence.

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	natsbroker "parley/internal/broker/nats"
	"parley/internal/broker/nats/natstest"
	"parley/internal/hub"
	"parley/internal/parleytest"
	"parley/internal/presence"
	"parley/internal/protocol"
	"parley/internal/server"
	"parley/web"
)

// TestClusterOneOrder: clients spread over three nodes, four senders on
// different nodes sending to two rooms at once. Every client sees every
// message once, in one order per room, with the ids the senders were
// given; history on join and the history API agree on every node.
func TestClusterOneOrder(t *testing.T) {
	t.Parallel()
	ns := natstest.Start(t)
	nodes := clStartNodes(t, ns.URL(), "node-a", "node-b", "node-c")
	rooms := []string{"alpha", "beta"}

	const nClients, perSender = 6, 30
	peers := make([]*clPeer, nClients)
	var epoch string
	for i := range peers {
		nick := fmt.Sprintf("u%d", i)
		peers[i] = clMustDial(t, nodes[i%3].URL+"?nick="+nick)
		w := peers[i].welcome(t)
		if w.Nick != nick {
			t.Fatalf("client %d: welcome nick %q, want %q", i, w.Nick, nick)
		}
		if want := fmt.Sprintf("node-%c", 'a'+i%3); w.Node != want {
			t.Errorf("client %d: welcome node %q, want %q", i, w.Node, want)
		}
		if epoch == "" {
			epoch = w.Epoch
		} else if w.Epoch != epoch {
			t.Errorf("client %d: epoch %q, others have %q: one stream, one epoch", i, w.Epoch, epoch)
		}
		for _, room := range rooms {
			peers[i].join(t, room, nil)
		}
	}

	// Senders u0 (a), u1 (b), u2 (c), u3 (a) write every send at once,
	// without waiting for acks, all at the same time.
	senders := peers[:4]
	type sent struct{ from, room, text string }
	refs := map[string]sent{}
	for s := range senders {
		for i := range perSender {
			ref := fmt.Sprintf("u%d-%d", s, i)
			refs[ref] = sent{fmt.Sprintf("u%d", s), rooms[i%2], "text " + ref}
		}
	}
	var wg sync.WaitGroup
	errs := make(chan error, len(senders))
	for s, p := range senders {
		wg.Go(func() {
			for i := range perSender {
				ref := fmt.Sprintf("u%d-%d", s, i)
				if err := p.write(map[string]any{"type": "send", "room": refs[ref].room, "text": refs[ref].text, "ref": ref}); err != nil {
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

	// Every send acknowledged, with an id unique across senders.
	acked := map[string]uint64{} // ref -> id
	byID := map[uint64]string{}  // id -> ref
	for s, p := range senders {
		prefix := fmt.Sprintf("u%d-", s)
		p.mustWait(t, 20*time.Second, "acks of "+prefix, func(evs []protocol.Event) bool {
			n := 0
			for _, ev := range evs {
				if len(ev.Ref) > len(prefix) && ev.Ref[:len(prefix)] == prefix && (ev.Type == protocol.EvAck || ev.Type == protocol.EvError) {
					n++
				}
			}
			return n == perSender
		})
		for _, ev := range p.events() {
			if _, ok := refs[ev.Ref]; !ok || ev.Ref[:len(prefix)] != prefix {
				continue
			}
			if ev.Type != protocol.EvAck || ev.ID == 0 || ev.Room != refs[ev.Ref].room {
				t.Fatalf("answer to %s: %+v", ev.Ref, ev)
			}
			if other, dup := byID[ev.ID]; dup {
				t.Fatalf("id %d acknowledged for %s and %s", ev.ID, other, ev.Ref)
			}
			acked[ev.Ref], byID[ev.ID] = ev.ID, ev.Ref
		}
	}

	// Every client: every message once, ids ascending (so one order), the
	// same list everywhere, each id carrying what its sender sent.
	want := map[string][]uint64{}
	for ref, id := range acked {
		want[refs[ref].room] = append(want[refs[ref].room], id)
	}
	for _, room := range rooms {
		slices.Sort(want[room])
	}
	// history: every message must be marked as replayed; live clients may
	// get some replayed too (a join's catch-up runs after its ack, and a
	// slow client is resynced), so for them the mark is not checked.
	checkMsgs := func(name, room string, msgs []protocol.Event, history bool) {
		t.Helper()
		if got := clIDs(msgs); !slices.Equal(got, want[room]) {
			t.Errorf("%s #%s: ids differ from the acknowledged ones in id order\n%s", name, room, clDiff(got, want[room]))
		}
		for _, m := range msgs {
			s := refs[byID[m.ID]]
			if m.From != s.from || m.Text != s.text || (history && !m.History) || m.TS.IsZero() {
				t.Errorf("%s #%s: message %d = %+v, want from %s text %q history %v", name, room, m.ID, m, s.from, s.text, history)
			}
		}
	}
	for i, p := range peers {
		for _, room := range rooms {
			if !p.wait(20*time.Second, func(evs []protocol.Event) bool {
				return len(clMessages(evs, room)) >= len(want[room])
			}) {
				t.Fatalf("u%d (node %d) #%s: not every message within 20s: %s", i, i%3, room, clDiff(clIDs(clMessages(p.events(), room)), want[room]))
			}
		}
	}
	// A marker sent after everything, seen by all, shows nothing more
	// (no duplicate) was on its way.
	if ev := peers[5].do(t, map[string]any{"type": "send", "room": "alpha", "text": "marker", "ref": "marker"}); ev.Type != protocol.EvAck {
		t.Fatalf("marker: %+v", ev)
	}
	for i, p := range peers {
		p.mustWait(t, 20*time.Second, fmt.Sprintf("u%d: the marker", i), func(evs []protocol.Event) bool {
			msgs := clMessages(evs, "alpha")
			return len(msgs) > 0 && msgs[len(msgs)-1].Text == "marker"
		})
		for _, room := range rooms {
			msgs := clMessages(p.events(), room)
			if room == "alpha" {
				msgs = msgs[:len(msgs)-1]
			}
			checkMsgs(fmt.Sprintf("u%d (node %d)", i, i%3), room, msgs, false)
		}
	}
	markerID := clMessages(peers[0].events(), "alpha")
	want["alpha"] = append(want["alpha"], markerID[len(markerID)-1].ID)
	refs["marker"] = sent{"u5", "alpha", "marker"}
	byID[markerID[len(markerID)-1].ID] = "marker"

	// History: a new client on each node, joining with since 0 and with
	// since in the middle; and each node's history API.
	for i, n := range nodes {
		for _, room := range rooms {
			p := clMustDial(t, n.URL)
			p.welcome(t)
			zero := uint64(0)
			p.join(t, room, &zero)
			p.mustWait(t, 10*time.Second, "history of "+room, func(evs []protocol.Event) bool {
				return len(clMessages(evs, room)) >= len(want[room])
			})
			checkMsgs(fmt.Sprintf("node %d join since 0", i), room, clMessages(p.events(), room), true)

			mid := want[room][len(want[room])/2]
			q := clMustDial(t, n.URL)
			q.welcome(t)
			q.join(t, room, &mid)
			rest := want[room][len(want[room])/2+1:]
			q.mustWait(t, 10*time.Second, "history since mid", func(evs []protocol.Event) bool {
				return len(clMessages(evs, room)) >= len(rest)
			})
			if got := clIDs(clMessages(q.events(), room)); !slices.Equal(got, rest) {
				t.Errorf("node %d #%s join since %d: %s", i, room, mid, clDiff(got, rest))
			}

			stored := clStored(t, n.HTTP, room)
			checkMsgs(fmt.Sprintf("node %d history API", i), room, stored, false)
		}
	}
}

// TestClusterNodeCrash kills a node while senders send. Its clients
// resume on another node with nothing lost and nothing doubled; its
// sender resends what was not acknowledged there, and nothing is stored
// twice.
func TestClusterNodeCrash(t *testing.T) {
	t.Parallel()
	ns := natstest.Start(t)
	nodes := clStartNodes(t, ns.URL(), "node-a", "node-b", "node-c")
	a, b, c := nodes[0], nodes[1], nodes[2]
	const room, perSender = "live", 150

	readers := map[string]*clReader{
		"reader on a (fails over to b)": newClReader(room, []string{a.URL, b.URL}),
		"reader on b":                   newClReader(room, []string{b.URL}),
		"reader on c":                   newClReader(room, []string{c.URL}),
	}
	for _, r := range readers {
		r.start(t)
	}
	sa := newClSender("sa", room, []string{a.URL, b.URL}, perSender, 8)
	sc := newClSender("sc", room, []string{c.URL}, perSender, 8)
	wait := clRunSenders(t, 90*time.Second, sa, sc)

	sa.waitProgress(t, perSender/4, 30*time.Second)
	a.Crash()
	crashed := time.Now()
	wait()
	t.Logf("after the crash: sa failed over %d time(s), resent %d unacknowledged sends, waited %v for its nick, acks took up to %v; all acknowledged %v after the crash",
		sa.failovers, sa.resent, sa.nickWait.Round(time.Millisecond), sa.maxAck.Round(time.Millisecond), time.Since(crashed).Round(time.Millisecond))
	if sa.failovers == 0 {
		t.Errorf("sender on the crashed node finished before the crash: the test proved nothing")
	}

	want := clCheckLog(t, clStored(t, c.HTTP, room), sa, sc)
	if got := clIDs(clStored(t, b.HTTP, room)); !slices.Equal(got, want) {
		t.Errorf("node b's history API differs from node c's: %s", clDiff(got, want))
	}
	for name, r := range readers {
		r.check(t, name, want)
	}
	r := readers["reader on a (fails over to b)"]
	r.mu.Lock()
	conns := r.conns
	r.mu.Unlock()
	if conns < 2 {
		t.Errorf("the reader on the crashed node connected %d time(s), want a reconnect", conns)
	}
}

// TestClusterNATSRestart stops NATS while senders send and starts it
// again: in between the nodes answer 503 on /readyz and sends get
// not_stored; after, every acknowledged message is there once and live
// delivery resumes.
func TestClusterNATSRestart(t *testing.T) {
	t.Parallel()
	ns := natstest.Start(t)
	nodes := clStartNodes(t, ns.URL(), "node-a", "node-b")
	a, b := nodes[0], nodes[1]
	const room, perSender = "live", 150

	readers := map[string]*clReader{
		"reader on a": newClReader(room, []string{a.URL}),
		"reader on b": newClReader(room, []string{b.URL}),
	}
	for _, r := range readers {
		r.start(t)
	}
	probe := clMustDial(t, a.URL+"?nick=probe")
	probe.welcome(t)
	probe.join(t, "side", nil)

	sa := newClSender("sa", room, []string{a.URL}, perSender, 4)
	sb := newClSender("sb", room, []string{b.URL}, perSender, 4)
	wait := clRunSenders(t, 90*time.Second, sa, sb)
	sa.waitProgress(t, perSender/5, 30*time.Second)

	ns.Stop()
	for _, n := range nodes {
		d := clReady(t, n.HTTP, http.StatusServiceUnavailable, 10*time.Second)
		t.Logf("%s/readyz 503 %v after NATS stopped", n.HTTP, d.Round(time.Millisecond))
	}
	ans := probe.do(t, map[string]any{"type": "send", "room": "side", "text": "while NATS is away", "ref": "p1"})
	if ans.Type != protocol.EvError || ans.Code != protocol.CodeNotStored {
		t.Errorf("send while NATS is stopped: %+v, want error not_stored", ans)
	}

	ns.Restart()
	restarted := time.Now()
	for _, n := range nodes {
		d := clReady(t, n.HTTP, http.StatusOK, 30*time.Second)
		t.Logf("%s/readyz 200 %v after NATS restarted", n.HTTP, d.Round(time.Millisecond))
	}
	// The refused send, retried with its ref, is stored now, once.
	probe.mu.Lock()
	probe.evs = nil // forget the first answer to p1
	probe.mu.Unlock()
	if ans := probe.do(t, map[string]any{"type": "send", "room": "side", "text": "while NATS is away", "ref": "p1"}); ans.Type != protocol.EvAck {
		t.Errorf("retry after restart: %+v, want ack", ans)
	}
	wait()
	t.Logf("not_stored answers: sa %d, sb %d; longest ack: sa %v, sb %v; all acknowledged %v after the restart",
		sa.notStored, sb.notStored, sa.maxAck.Round(time.Millisecond), sb.maxAck.Round(time.Millisecond), time.Since(restarted).Round(time.Millisecond))

	want := clCheckLog(t, clStored(t, a.HTTP, room), sa, sb)
	for name, r := range readers {
		r.check(t, name, want)
	}
	if side := clStored(t, b.HTTP, "side"); len(side) != 1 {
		t.Errorf("#side holds %d messages, want the retried one once", len(side))
	}
}

// clNode is a parley node on NATS built here rather than by parleytest,
// because parleytest.WithNATS cannot set the stream's replicas.
type clNode struct {
	URL, HTTP string
}

func clStartReplicated(t testing.TB, natsURL, name string, replicas int) *clNode {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	h := hub.New(hub.Config{Encode: server.Encode})
	nb, err := natsbroker.Open(ctx, natsbroker.Config{URL: natsURL, Node: name, Replicas: replicas}, h.Deliver)
	if err != nil {
		t.Fatalf("nats broker: %v", err)
	}
	pr, err := presence.Open(ctx, presence.Config{Conn: nb.Conn(), Node: name, Replicas: replicas}, server.PresenceEvent(h))
	if err != nil {
		nb.Close()
		t.Fatalf("presence: %v", err)
	}
	cfg := server.Config{Page: web.Handler(), Version: "test", Node: name, Presence: pr}
	noRateLimit(&cfg)
	srv := server.New(cfg, h, nb, nil)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("shutdown %s: %v", name, err)
		}
		if err := <-done; err != nil && !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("serve %s: %v", name, err)
		}
		pr.Close()
		nb.Close()
	})
	return &clNode{URL: "ws://" + ln.Addr().String() + "/", HTTP: "http://" + ln.Addr().String()}
}

// TestClusterReplicatedNATSServerDown: three NATS servers, the stream and
// the presence bucket at replicas 3, two parley nodes. Stopping the NATS
// server that leads the stream does not stop the service: every send is
// acknowledged (retried when refused during the election), stored once,
// and delivered once in order on both nodes.
func TestClusterReplicatedNATSServerDown(t *testing.T) {
	t.Parallel()
	servers := natstest.StartCluster(t, 3)
	urls := natstest.URLs(servers)
	a := clStartReplicated(t, urls, "node-a", 3)
	b := clStartReplicated(t, urls, "node-b", 3)
	const room, perSender = "live", 150

	readers := map[string]*clReader{
		"reader on a": newClReader(room, []string{a.URL}),
		"reader on b": newClReader(room, []string{b.URL}),
	}
	for _, r := range readers {
		r.start(t)
	}
	sa := newClSender("sa", room, []string{a.URL}, perSender, 4)
	sb := newClSender("sb", room, []string{b.URL}, perSender, 4)
	wait := clRunSenders(t, 90*time.Second, sa, sb)
	sb.waitProgress(t, perSender/5, 30*time.Second)

	leader := clStreamLeader(t, urls)
	var stopped *natstest.Server
	for _, s := range servers {
		if s.Name() == leader {
			stopped = s
		}
	}
	if stopped == nil {
		t.Fatalf("stream leader %q is none of the servers", leader)
	}
	stopped.Stop()
	t.Logf("stopped %s, the stream's leader", leader)
	stoppedAt := time.Now()
	wait()
	if sa.n-len(sa.acked) > 0 || sb.n-len(sb.acked) > 0 {
		t.Fatal("not every send acknowledged")
	}
	t.Logf("all acknowledged %v after the stop; longest ack %v (sa), %v (sb); not_stored: sa %d, sb %d",
		time.Since(stoppedAt).Round(time.Millisecond), sa.maxAck.Round(time.Millisecond), sb.maxAck.Round(time.Millisecond), sa.notStored, sb.notStored)
	for _, n := range []*clNode{a, b} {
		clReady(t, n.HTTP, http.StatusOK, 20*time.Second)
	}
	want := clCheckLog(t, clStored(t, a.HTTP, room), sa, sb)
	if got := clIDs(clStored(t, b.HTTP, room)); !slices.Equal(got, want) {
		t.Errorf("node b's history API differs from node a's: %s", clDiff(got, want))
	}
	for name, r := range readers {
		r.check(t, name, want)
	}
}

// clStreamLeader names the NATS server that leads the PARLEY stream.
func clStreamLeader(t testing.TB, urls string) string {
	t.Helper()
	nc, err := nats.Connect(urls)
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := js.Stream(ctx, "PARLEY")
	if err != nil {
		t.Fatal(err)
	}
	info, err := s.Info(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if info.Config.Replicas != 3 || info.Cluster == nil {
		t.Fatalf("stream has %d replicas, cluster %+v; want 3", info.Config.Replicas, info.Cluster)
	}
	return info.Cluster.Leader
}

// TestClusterPresence: nicks are unique across nodes, who on one node
// lists members of another, join and leave notices come once per user on
// every node, and a crashed node's members leave (one notice each) within
// a bounded time.
func TestClusterPresence(t *testing.T) {
	t.Parallel()
	ns := natstest.Start(t)
	nodes := clStartNodes(t, ns.URL(), "node-a", "node-b", "node-c")
	a, b, c := nodes[0], nodes[1], nodes[2]
	const room = "p"

	enter := func(n *parleytest.Node, nick string) *clPeer {
		t.Helper()
		p := clMustDial(t, n.URL+"?nick="+nick)
		if w := p.welcome(t); w.Nick != nick {
			t.Fatalf("%s: welcome nick %q", nick, w.Nick)
		}
		p.join(t, room, nil)
		return p
	}
	alice := enter(a, "alice")
	wa := enter(a, "wa")
	wb := enter(b, "wb")
	wc1 := enter(c, "wc1")
	wc2 := enter(c, "wc2")
	watchers := map[string]*clPeer{"wa": wa, "wb": wb, "wc1": wc1, "wc2": wc2}
	_ = alice

	// who on C lists alice, who is on A.
	whoHas := func(p *clPeer, nicks []string, present bool, within time.Duration) (time.Duration, []string) {
		t.Helper()
		start := time.Now()
		var m []string
		for i := 0; time.Since(start) < within; i++ {
			m = p.who(t, room, fmt.Sprintf("who-%d-%d", time.Now().UnixNano(), i))
			ok := true
			for _, n := range nicks {
				if slices.Contains(m, n) != present {
					ok = false
				}
			}
			if ok {
				return time.Since(start), m
			}
			time.Sleep(20 * time.Millisecond) // polling interval
		}
		t.Fatalf("who %s on C after %v: %v; want %v present=%v", room, within, m, nicks, present)
		return 0, nil
	}
	_, m := whoHas(wc1, []string{"alice", "wa", "wb", "wc1", "wc2"}, true, 10*time.Second)
	t.Logf("who on C: %v", m)

	// The same nick on B, in any case, is refused.
	for _, nick := range []string{"alice", "ALICE"} {
		p := clMustDial(t, b.URL+"?nick="+nick)
		if w := p.welcome(t); w.Nick == nick || w.Nick == "alice" {
			t.Errorf("second %q on node b got welcome nick %q", nick, w.Nick)
		}
		p.mustWait(t, 5*time.Second, "nick_taken after welcome", func(evs []protocol.Event) bool {
			for _, ev := range evs {
				if ev.Type == protocol.EvError && ev.Code == protocol.CodeNickTaken {
					return true
				}
			}
			return false
		})
		if ev := p.do(t, map[string]any{"type": "nick", "nick": nick, "ref": "n1"}); ev.Type != protocol.EvError || ev.Code != protocol.CodeNickTaken {
			t.Errorf("nick %s on node b: %+v, want nick_taken", nick, ev)
		}
	}

	// dave joins on B, then leaves; a marker joins on A after. Every
	// watcher sees the marker, and exactly one join and one leave of dave.
	dave := enter(b, "dave")
	if ev := dave.do(t, map[string]any{"type": "leave", "room": room, "ref": "l1"}); ev.Type != protocol.EvAck {
		t.Fatalf("dave leave: %+v", ev)
	}
	marker := enter(a, "marker1")
	_ = marker
	for name, w := range watchers {
		w.mustWait(t, 10*time.Second, name+" sees marker1 join", func(evs []protocol.Event) bool {
			return clCount(evs, protocol.EvJoin, room, "marker1") > 0
		})
		evs := w.events()
		if j, l := clCount(evs, protocol.EvJoin, room, "dave"), clCount(evs, protocol.EvLeave, room, "dave"); j != 1 || l != 1 {
			t.Errorf("%s: %d join and %d leave notices for dave, want 1 and 1", name, j, l)
		}
	}

	// Crash A: alice, wa and marker1 leave C's who within ~15 s, and C's
	// and B's clients get one leave notice for each.
	onA := []string{"alice", "wa", "marker1"}
	a.Crash()
	took, m := whoHas(wc1, onA, false, 20*time.Second)
	t.Logf("members of the crashed node gone from who on C after %v: %v", took.Round(time.Millisecond), m)
	if took > 15*time.Second {
		t.Errorf("crashed node's members left who after %v, want within 15s", took)
	}
	if !slices.Contains(m, "wb") || !slices.Contains(m, "wc2") {
		t.Errorf("who on C after the crash %v lost live members", m)
	}
	enter(b, "marker2")
	for _, name := range []string{"wb", "wc1", "wc2"} {
		w := watchers[name]
		w.mustWait(t, 20*time.Second, name+" sees the leaves and marker2's join", func(evs []protocol.Event) bool {
			for _, n := range onA {
				if clCount(evs, protocol.EvLeave, room, n) == 0 {
					return false
				}
			}
			return clCount(evs, protocol.EvJoin, room, "marker2") > 0
		})
		evs := w.events()
		for _, n := range onA {
			if got := clCount(evs, protocol.EvLeave, room, n); got != 1 {
				t.Errorf("%s: %d leave notices for %s (on the crashed node), want 1", name, got, n)
			}
		}
	}
}
