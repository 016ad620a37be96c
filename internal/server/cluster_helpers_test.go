package server_test

// Helpers of the cluster tests (cluster_test.go): a raw JSON peer, senders
// that fail over between nodes and resend what was not acknowledged,
// readers that resume with since, and checks against the stored log.

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"parley/internal/parleytest"
	"parley/internal/protocol"
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
