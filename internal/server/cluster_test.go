package server_test

// End-to-end tests of parley nodes sharing a real NATS JetStream server (or
// a cluster of three), driven by real WebSocket clients: one order per room
// across nodes, failover when a node dies, NATS going away and coming back,
// a NATS server lost under a replicated stream, and cluster presence.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
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

// clPeer is a JSON client whose own goroutine reads every event into a
// log, so that several goroutines may send on it while a test waits for
// conditions on what arrived.
type clPeer struct {
	conn *websocket.Conn
	done chan struct{} // closed when the reader stops

	mu   sync.Mutex
	evs  []protocol.Event // guarded by mu
	wake chan struct{}    // guarded by mu; closed and replaced on each change
	err  error            // guarded by mu; why the reader stopped
}

// clDial connects in the JSON format; the caller closes the peer.
func clDial(rawURL string) (*clPeer, error) {
	c, err := tryDial(rawURL, true)
	if err != nil {
		return nil, err
	}
	p := &clPeer{conn: c, done: make(chan struct{}), wake: make(chan struct{})}
	go p.read()
	return p, nil
}

// clMustDial connects and closes the peer at test cleanup.
func clMustDial(t testing.TB, rawURL string) *clPeer {
	t.Helper()
	p, err := clDial(rawURL)
	if err != nil {
		t.Fatalf("dial %s: %v", rawURL, err)
	}
	t.Cleanup(p.close)
	return p
}

func (p *clPeer) read() {
	defer close(p.done)
	for {
		_, b, err := p.conn.Read(context.Background())
		var ev protocol.Event
		if err == nil {
			if e := json.Unmarshal(b, &ev); e != nil {
				err = fmt.Errorf("bad JSON from server %q: %w", b, e)
			}
		}
		p.mu.Lock()
		if err != nil {
			p.err = err
		} else {
			p.evs = append(p.evs, ev)
		}
		close(p.wake)
		p.wake = make(chan struct{})
		p.mu.Unlock()
		if err != nil {
			return
		}
	}
}

func (p *clPeer) close() {
	p.conn.CloseNow()
	<-p.done
}

func (p *clPeer) write(v any) error {
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return p.conn.Write(ctx, websocket.MessageText, b)
}

// next waits up to d for events past index i and returns them, with
// whether the reader has stopped (then no more will come).
func (p *clPeer) next(i int, d time.Duration) ([]protocol.Event, bool) {
	timer := time.NewTimer(d)
	defer timer.Stop()
	for {
		p.mu.Lock()
		evs, dead, wake := slices.Clone(p.evs[min(i, len(p.evs)):]), p.err != nil, p.wake
		p.mu.Unlock()
		if len(evs) > 0 || dead {
			return evs, dead
		}
		select {
		case <-wake:
		case <-timer.C:
			return nil, false
		}
	}
}

// wait reports whether ok came to hold for the events so far within d.
func (p *clPeer) wait(d time.Duration, ok func([]protocol.Event) bool) bool {
	timer := time.NewTimer(d)
	defer timer.Stop()
	for {
		p.mu.Lock()
		good, dead, wake := ok(p.evs), p.err != nil, p.wake
		p.mu.Unlock()
		if good {
			return true
		}
		if dead {
			return false
		}
		select {
		case <-wake:
		case <-timer.C:
			return false
		}
	}
}

func (p *clPeer) events() []protocol.Event {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.evs)
}

// mustWait fails the test unless ok holds within d.
func (p *clPeer) mustWait(t testing.TB, d time.Duration, what string, ok func([]protocol.Event) bool) {
	t.Helper()
	if !p.wait(d, ok) {
		p.mu.Lock()
		err := p.err
		p.mu.Unlock()
		t.Fatalf("not within %v: %s (reader: %v)", d, what, err)
	}
}

// welcome waits for the welcome event.
func (p *clPeer) welcome(t testing.TB) protocol.Event {
	t.Helper()
	p.mustWait(t, 10*time.Second, "welcome", func(evs []protocol.Event) bool { return len(evs) > 0 })
	ev := p.events()[0]
	if ev.Type != protocol.EvWelcome {
		t.Fatalf("first event %+v, want welcome", ev)
	}
	return ev
}

// do sends cmd (which must carry a ref) and returns the ack or error that
// answers it.
func (p *clPeer) do(t testing.TB, cmd map[string]any) protocol.Event {
	t.Helper()
	ref, _ := cmd["ref"].(string)
	if ref == "" {
		t.Fatalf("do %v: no ref", cmd)
	}
	if err := p.write(cmd); err != nil {
		t.Fatalf("write %v: %v", cmd, err)
	}
	var ans protocol.Event
	p.mustWait(t, 10*time.Second, "answer to "+ref, func(evs []protocol.Event) bool {
		for _, ev := range evs {
			if ev.Ref == ref && ev.Type != protocol.EvJoin && ev.Type != protocol.EvLeave {
				ans = ev
				return true
			}
		}
		return false
	})
	return ans
}

func (p *clPeer) join(t testing.TB, room string, since *uint64) {
	t.Helper()
	cmd := map[string]any{"type": "join", "room": room, "ref": "join-" + room}
	if since != nil {
		cmd["since"] = *since
		cmd["ref"] = "join-since-" + room
	}
	if ev := p.do(t, cmd); ev.Type != protocol.EvAck {
		t.Fatalf("join %s: %+v", room, ev)
	}
}

func (p *clPeer) who(t testing.TB, room string, ref string) []string {
	t.Helper()
	ev := p.do(t, map[string]any{"type": "who", "room": room, "ref": ref})
	if ev.Type != protocol.EvWho {
		t.Fatalf("who %s: %+v", room, ev)
	}
	return ev.Members
}

// clMessages returns the message events of room, in arrival order.
func clMessages(evs []protocol.Event, room string) []protocol.Event {
	var out []protocol.Event
	for _, ev := range evs {
		if ev.Type == protocol.EvMessage && ev.Room == room {
			out = append(out, ev)
		}
	}
	return out
}

func clCount(evs []protocol.Event, typ, room, nick string) int {
	n := 0
	for _, ev := range evs {
		if ev.Type == typ && ev.Room == room && ev.Nick == nick {
			n++
		}
	}
	return n
}

func clIDs(msgs []protocol.Event) []uint64 {
	out := make([]uint64, len(msgs))
	for i, m := range msgs {
		out[i] = m.ID
	}
	return out
}

// clStored reads a room's whole log through a node's history API, oldest
// first.
func clStored(t testing.TB, httpBase, room string) []protocol.Event {
	t.Helper()
	var all []protocol.Event
	before := uint64(0)
	for range 100 {
		u := httpBase + "/api/rooms/" + room + "/messages?limit=500"
		if before > 0 {
			u += "&before=" + strconv.FormatUint(before, 10)
		}
		resp, body := httpGet(t, u)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("GET %s: %d %s", u, resp.StatusCode, body)
		}
		var page struct {
			Messages []protocol.Event `json:"messages"`
			More     bool             `json:"more"`
		}
		if err := json.Unmarshal([]byte(body), &page); err != nil {
			t.Fatalf("GET %s: %v", u, err)
		}
		all = append(all, page.Messages...)
		if !page.More || len(page.Messages) == 0 {
			slices.Reverse(all)
			return all
		}
		before = page.Messages[len(page.Messages)-1].ID
	}
	t.Fatalf("history of %s: more than 100 pages", room)
	return nil
}

// clReady polls a node's /readyz until it answers want, and returns how
// long that took.
func clReady(t testing.TB, httpBase string, want int, within time.Duration) time.Duration {
	t.Helper()
	start := time.Now()
	client := &http.Client{Timeout: 5 * time.Second}
	last := ""
	for time.Since(start) < within {
		resp, err := client.Get(httpBase + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == want {
				return time.Since(start)
			}
			last = resp.Status
		} else {
			last = err.Error()
		}
		time.Sleep(20 * time.Millisecond) // polling interval, not a settle delay
	}
	t.Fatalf("%s/readyz did not answer %d within %v (last: %s)", httpBase, want, within, last)
	return 0
}

// clSender sends n messages to room as nick over the first node of urls
// that works, keeping up to window sends unanswered. After a lost
// connection it moves to the next URL, takes its nick back (waiting while
// the cluster still thinks a dead node holds it) and resends every
// unacknowledged send with its original ref; a send answered not_stored is
// resent the same way. It is what a careful client does.
type clSender struct {
	nick, room string
	urls       []string
	n, window  int

	// owned by run until it returns
	acked     map[string]uint64 // ref -> id
	notStored int               // not_stored answers
	failovers int               // connections lost
	resent    int               // sends written again after a lost connection or not_stored
	written   map[string]bool   // refs written at least once
	nickWait  time.Duration     // longest wait to get the nick back
	maxAck    time.Duration     // longest time from a send to its ack
	progress  chan int          // acks so far, sent without blocking (buffered 1)
}

func newClSender(nick, room string, urls []string, n, window int) *clSender {
	return &clSender{nick: nick, room: room, urls: urls, n: n, window: window,
		acked: map[string]uint64{}, written: map[string]bool{}, progress: make(chan int, 1)}
}

func (s *clSender) ref(i int) string { return fmt.Sprintf("%s-%d", s.nick, i) }

func (s *clSender) report(n int) {
	select {
	case <-s.progress:
	default:
	}
	s.progress <- n
}

// run sends until every message is acknowledged or the deadline passes.
func (s *clSender) run(deadline time.Time) error {
	cur := 0
	var lastErr error
	for len(s.acked) < s.n {
		if time.Now().After(deadline) {
			return fmt.Errorf("sender %s: %d of %d acknowledged at the deadline (last error: %v)", s.nick, len(s.acked), s.n, lastErr)
		}
		p, err := s.connect(s.urls[cur], deadline)
		if err != nil {
			lastErr = err
			cur = (cur + 1) % len(s.urls)
			time.Sleep(50 * time.Millisecond) // reconnect backoff
			continue
		}
		err = s.pump(p, deadline)
		p.close()
		if err != nil {
			return err
		}
		if len(s.acked) < s.n {
			s.failovers++
		}
	}
	return nil
}

// connect dials url as s.nick and joins the room, retrying while the nick
// is taken.
func (s *clSender) connect(u string, deadline time.Time) (*clPeer, error) {
	start := time.Now()
	for {
		p, err := clDial(u + "?nick=" + s.nick)
		if err != nil {
			return nil, err
		}
		evs, _ := p.next(0, 10*time.Second)
		if len(evs) == 0 || evs[0].Type != protocol.EvWelcome {
			p.close()
			return nil, fmt.Errorf("no welcome from %s", u)
		}
		if evs[0].Nick == s.nick {
			s.nickWait = max(s.nickWait, time.Since(start))
			if err := p.write(map[string]any{"type": "join", "room": s.room, "ref": "join"}); err != nil {
				p.close()
				return nil, err
			}
			return p, nil
		}
		p.close()
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("nick %s still taken after %v", s.nick, time.Since(start))
		}
		time.Sleep(100 * time.Millisecond) // retry backoff for a taken nick
	}
}

// pump sends what is not acknowledged on p until all is, or p dies.
func (s *clSender) pump(p *clPeer, deadline time.Time) error {
	var todo []int
	for i := range s.n {
		if _, ok := s.acked[s.ref(i)]; !ok {
			todo = append(todo, i)
		}
	}
	sentAt := map[string]time.Time{}
	var retry []int
	joined := false
	seen := 0
	for len(s.acked) < s.n {
		if time.Now().After(deadline) {
			return nil // run reports it
		}
		for joined && len(sentAt) < s.window && len(todo) > 0 {
			i := todo[0]
			todo = todo[1:]
			ref := s.ref(i)
			if s.written[ref] {
				s.resent++
			}
			s.written[ref] = true
			if err := p.write(map[string]any{"type": "send", "room": s.room, "text": ref, "ref": ref}); err != nil {
				return nil // connection lost: run reconnects
			}
			sentAt[ref] = time.Now()
		}
		if len(todo) == 0 && len(sentAt) == 0 && len(retry) > 0 {
			time.Sleep(50 * time.Millisecond) // backoff before resending not_stored sends
			todo, retry = retry, nil
			continue
		}
		evs, dead := p.next(seen, time.Second)
		seen += len(evs)
		for _, ev := range evs {
			switch {
			case ev.Ref == "join" && ev.Type == protocol.EvAck:
				joined = true
			case ev.Ref == "join" && ev.Type == protocol.EvError:
				return fmt.Errorf("sender %s: join: %s %s", s.nick, ev.Code, ev.Message)
			case ev.Type == protocol.EvAck && sentAt[ev.Ref] != (time.Time{}):
				s.maxAck = max(s.maxAck, time.Since(sentAt[ev.Ref]))
				delete(sentAt, ev.Ref)
				s.acked[ev.Ref] = ev.ID
				s.report(len(s.acked))
			case ev.Type == protocol.EvError && sentAt[ev.Ref] != (time.Time{}):
				if ev.Code != protocol.CodeNotStored {
					return fmt.Errorf("sender %s: %s answered %s: %s", s.nick, ev.Ref, ev.Code, ev.Message)
				}
				delete(sentAt, ev.Ref)
				s.notStored++
				i, _ := strconv.Atoi(ev.Ref[len(s.nick)+1:])
				retry = append(retry, i)
			}
		}
		if dead {
			return nil
		}
	}
	return nil
}

// clReader follows one room across connections: after a lost connection
// it dials the next URL with since = the last id it saw and the epoch. It
// records every message id in arrival order, and anything that should not
// come (gap, reset).
type clReader struct {
	room string
	urls []string

	mu        sync.Mutex
	ids       []uint64 // guarded by mu: every message id received, in order
	epoch     string   // guarded by mu
	bad       []string // guarded by mu: unexpected events
	conns     int      // guarded by mu: connections made
	wake      chan struct{}
	ready     chan struct{} // closed once the first connection has joined
	readyOnce sync.Once
}

func newClReader(room string, urls []string) *clReader {
	return &clReader{room: room, urls: urls, wake: make(chan struct{}), ready: make(chan struct{})}
}

// start runs the reader until the test ends.
func (r *clReader) start(t testing.TB) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		r.run(ctx)
	}()
	t.Cleanup(func() { cancel(); <-done })
	select {
	case <-r.ready:
	case <-time.After(20 * time.Second):
		t.Fatalf("reader of %s on %s never joined", r.room, r.urls[0])
	}
}

func (r *clReader) run(ctx context.Context) {
	cur := 0
	for ctx.Err() == nil {
		r.mu.Lock()
		q := url.Values{"room": {r.room}}
		if r.conns > 0 {
			last := uint64(0)
			if len(r.ids) > 0 {
				last = slices.Max(r.ids)
			}
			q.Set("since", strconv.FormatUint(last, 10))
			q.Set("epoch", r.epoch)
		}
		r.mu.Unlock()
		p, err := clDial(r.urls[cur] + "?" + q.Encode())
		if err != nil {
			cur = (cur + 1) % len(r.urls)
			select {
			case <-ctx.Done():
			case <-time.After(50 * time.Millisecond): // reconnect backoff
			}
			continue
		}
		r.follow(ctx, p)
		p.close()
	}
}

func (r *clReader) follow(ctx context.Context, p *clPeer) {
	stop := context.AfterFunc(ctx, func() { p.conn.CloseNow() })
	defer stop()
	seen := 0
	nick := ""
	for {
		evs, dead := p.next(seen, time.Second)
		seen += len(evs)
		r.mu.Lock()
		for _, ev := range evs {
			switch ev.Type {
			case protocol.EvWelcome:
				nick = ev.Nick
				if r.conns == 0 {
					r.epoch = ev.Epoch
				} else if ev.Epoch != r.epoch {
					r.bad = append(r.bad, "epoch changed to "+ev.Epoch)
				}
				r.conns++
			case protocol.EvJoin:
				if ev.Nick == nick && ev.Room == r.room {
					r.readyOnce.Do(func() { close(r.ready) })
				}
			case protocol.EvMessage:
				if ev.Room == r.room {
					r.ids = append(r.ids, ev.ID)
				}
			case protocol.EvGap, protocol.EvReset, protocol.EvError:
				r.bad = append(r.bad, fmt.Sprintf("%+v", ev))
			}
		}
		if len(evs) > 0 {
			close(r.wake)
			r.wake = make(chan struct{})
		}
		r.mu.Unlock()
		if dead || ctx.Err() != nil {
			return
		}
	}
}

// waitIDs waits until the reader has seen id last, then checks that it saw
// exactly want, in order, each once.
func (r *clReader) check(t testing.TB, name string, want []uint64) {
	t.Helper()
	last := want[len(want)-1]
	timer := time.NewTimer(30 * time.Second)
	defer timer.Stop()
	for {
		r.mu.Lock()
		done, wake := slices.Contains(r.ids, last), r.wake
		r.mu.Unlock()
		if done {
			break
		}
		select {
		case <-wake:
		case <-timer.C:
			r.mu.Lock()
			defer r.mu.Unlock()
			t.Fatalf("%s: did not get id %d within 30s; has %d ids", name, last, len(r.ids))
		}
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.bad) > 0 {
		t.Errorf("%s: unexpected events: %v", name, r.bad)
	}
	if !slices.Equal(r.ids, want) {
		t.Errorf("%s: got %d ids, want %d (the stored log), each once in order\n%s", name, len(r.ids), len(want), clDiff(r.ids, want))
	}
}

// clDiff describes how got differs from want: missing, doubled and out of
// order ids.
func clDiff(got, want []uint64) string {
	count := map[uint64]int{}
	for _, id := range got {
		count[id]++
	}
	var missing, doubled, extra []uint64
	for _, id := range want {
		switch count[id] {
		case 0:
			missing = append(missing, id)
		case 1:
		default:
			doubled = append(doubled, id)
		}
	}
	for id := range count {
		if !slices.Contains(want, id) {
			extra = append(extra, id)
		}
	}
	unordered := 0
	for i := 1; i < len(got); i++ {
		if got[i] <= got[i-1] {
			unordered++
		}
	}
	return fmt.Sprintf("missing %v, doubled %v, not in the log %v, %d out of order", missing, doubled, extra, unordered)
}

// clCheckLog checks a room's stored log against the senders' acks: every
// message stored exactly once (by its unique text), with the id its sender
// was given. It returns the stored ids in order.
func clCheckLog(t testing.TB, stored []protocol.Event, senders ...*clSender) []uint64 {
	t.Helper()
	byText := map[string][]uint64{}
	for _, m := range stored {
		byText[m.Text] = append(byText[m.Text], m.ID)
	}
	total := 0
	for _, s := range senders {
		total += s.n
		for i := range s.n {
			ref := s.ref(i)
			ids := byText[ref]
			if len(ids) != 1 {
				t.Errorf("%s stored %d times (ids %v), want once", ref, len(ids), ids)
				continue
			}
			if ids[0] != s.acked[ref] {
				t.Errorf("%s stored as id %d, acknowledged as %d", ref, ids[0], s.acked[ref])
			}
		}
	}
	if len(stored) != total {
		t.Errorf("log holds %d messages, want %d", len(stored), total)
	}
	got := clIDs(stored)
	if !slices.IsSorted(got) {
		t.Errorf("history API ids not in order: %v", got)
	}
	return got
}

// clRunSenders runs the senders side by side; it returns a function that
// waits for them and fails the test on any error.
func clRunSenders(t testing.TB, within time.Duration, senders ...*clSender) func() {
	deadline := time.Now().Add(within)
	errs := make(chan error, len(senders))
	for _, s := range senders {
		go func() { errs <- s.run(deadline) }()
	}
	waited := false
	wait := func() {
		t.Helper()
		if waited {
			return
		}
		waited = true
		for range senders {
			if err := <-errs; err != nil {
				t.Error(err)
			}
		}
		if t.Failed() {
			t.FailNow()
		}
	}
	t.Cleanup(func() {
		if !waited {
			waited = true
			for range senders {
				<-errs
			}
		}
	})
	return wait
}

// waitProgress waits until s has n acks.
func (s *clSender) waitProgress(t testing.TB, n int, within time.Duration) {
	t.Helper()
	timer := time.NewTimer(within)
	defer timer.Stop()
	for {
		select {
		case got := <-s.progress:
			if got >= n {
				return
			}
		case <-timer.C:
			t.Fatalf("sender %s: fewer than %d acks after %v", s.nick, n, within)
		}
	}
}

func clStartNodes(t testing.TB, natsURL string, names ...string) []*parleytest.Node {
	t.Helper()
	nodes := make([]*parleytest.Node, len(names))
	for i, name := range names {
		nodes[i] = parleytest.Start(t, parleytest.WithNATS(natsURL, name), parleytest.WithConfig(noRateLimit))
	}
	return nodes
}

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
