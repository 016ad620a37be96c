package server_test

import (
	"bufio"
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
	"golang.org/x/time/rate"
	"pgregory.net/rapid"

	"parley/internal/broker"
	"parley/internal/broker/local"
	"parley/internal/parleytest"
	"parley/internal/protocol"
	"parley/internal/server"

	_ "modernc.org/sqlite"
)

// noRateLimit lets tests send as fast as they can.
func noRateLimit(c *server.Config) { c.Rate = rate.Inf }

// sendAck sends text to room with ref and returns the ack's id, skipping
// other events; it fails on an error event.
func (c *wsClient) sendAck(room, text, ref string) uint64 {
	c.t.Helper()
	c.writeJSON(map[string]any{"type": "send", "room": room, "text": text, "ref": ref})
	return c.ackFor(ref)
}

// ackFor reads until the ack (or error) answering ref.
func (c *wsClient) ackFor(ref string) uint64 {
	c.t.Helper()
	var ev protocol.Event
	c.readUntil(func(s string) bool {
		ev = decodeEvent(c.t, s)
		return ev.Ref == ref && (ev.Type == protocol.EvAck || ev.Type == protocol.EvError)
	})
	if ev.Type != protocol.EvAck || ev.ID == 0 {
		c.t.Fatalf("answer to %s = %+v, want an ack with an id", ref, ev)
	}
	return ev.ID
}

// join joins room (with since and epoch unless nil/"") and reads its ack.
func (c *wsClient) join(room string, since *uint64, epoch string) {
	c.t.Helper()
	cmd := map[string]any{"type": "join", "room": room, "ref": "join-" + room}
	if since != nil {
		cmd["since"] = *since
	}
	if epoch != "" {
		cmd["epoch"] = epoch
	}
	c.writeJSON(cmd)
	// The history comes before the ack: keep it for the test to read.
	var kept []string
	for {
		s := c.read()
		if ev := decodeEvent(c.t, s); ev.Type == protocol.EvAck {
			if ev.Ref != "join-"+room {
				c.t.Fatalf("join ack = %+v", ev)
			}
			break
		}
		kept = append(kept, s)
	}
	c.pending = append(kept, c.pending...)
}

func decodeEvent(t testing.TB, s string) protocol.Event {
	t.Helper()
	var ev protocol.Event
	if err := json.Unmarshal([]byte(s), &ev); err != nil {
		t.Fatalf("bad JSON from server: %q: %v", s, err)
	}
	return ev
}

// collect reads events up to and including the message with id last,
// returning the message events and the other events of types in keep.
func (c *wsClient) collect(last uint64, keep ...string) (msgs, others []protocol.Event) {
	c.t.Helper()
	c.readUntil(func(s string) bool {
		ev := decodeEvent(c.t, s)
		if ev.Type == protocol.EvMessage {
			msgs = append(msgs, ev)
			return ev.ID >= last
		}
		if slices.Contains(keep, ev.Type) {
			others = append(others, ev)
		}
		return false
	})
	return msgs, others
}

func ids(evs []protocol.Event) []uint64 {
	out := make([]uint64, len(evs))
	for i, e := range evs {
		out[i] = e.ID
	}
	return out
}

func seq(from, to uint64) []uint64 {
	var out []uint64
	for i := from; i <= to; i++ {
		out = append(out, i)
	}
	return out
}

func ptr(v uint64) *uint64 { return &v }

// metric reads one sample of the node's /metrics, e.g.
// `parley_slow_consumer_total{action="resync"}`.
func metric(t testing.TB, n *parleytest.Node, sample string) float64 {
	t.Helper()
	resp, err := http.Get(n.HTTP + "/metrics")
	if err != nil {
		t.Fatalf("GET /metrics: %v", err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if rest, ok := strings.CutPrefix(line, sample+" "); ok {
			v, err := strconv.ParseFloat(strings.TrimSpace(rest), 64)
			if err != nil {
				t.Fatalf("metric %s: %q: %v", sample, line, err)
			}
			return v
		}
	}
	t.Fatalf("no metric %s in /metrics", sample)
	return 0
}

// waitFor polls cond until it holds or d passes.
func waitFor(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for wait := time.Millisecond; !cond(); wait = min(2*wait, 50*time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(wait)
	}
}

// fill sends n messages "m1".."mn" to room from c and returns the last id.
func fill(c *wsClient, room string, n int) uint64 {
	c.t.Helper()
	for i := 1; i <= n; i++ {
		c.writeJSON(map[string]any{"type": "send", "room": room, "text": fmt.Sprint("m", i), "ref": fmt.Sprint("f", i)})
	}
	var last uint64
	for i := 1; i <= n; i++ {
		last = max(last, c.ackFor(fmt.Sprint("f", i)))
	}
	return last
}

func TestJoinSinceThenLive(t *testing.T) {
	t.Parallel()
	n := parleytest.Start(t, parleytest.WithConfig(noRateLimit))
	a := dial(t, n.URL+"?nick=alice&room=lobby", true)
	last := fill(a, "lobby", 30)
	if last != 30 {
		t.Fatalf("last id = %d, want 30 on a fresh log", last)
	}
	for _, since := range []uint64{0, 1, 17, 29, 30} {
		b := dial(t, n.URL+fmt.Sprintf("?nick=b%d", since), true)
		b.join("lobby", &since, "")
		// Live messages after the join continue the history seamlessly.
		live := a.sendAck("lobby", fmt.Sprint("live after ", since), fmt.Sprint("live", since))
		msgs, _ := b.collect(live)
		wantIDs := seq(since+1, live)
		if got := ids(msgs); !slices.Equal(got, wantIDs) {
			t.Fatalf("since %d: ids %v, want %v", since, got, wantIDs)
		}
		for _, m := range msgs {
			if m.ID <= 30 && !m.History {
				t.Fatalf("since %d: message %d history=%v, want true", since, m.ID, m.History)
			}
			if m.ID <= 30 && m.Text != fmt.Sprint("m", m.ID) {
				t.Fatalf("since %d: message %d text %q", since, m.ID, m.Text)
			}
		}
		if m := msgs[len(msgs)-1]; m.History || m.Text != fmt.Sprint("live after ", since) {
			t.Fatalf("since %d: live message = %+v", since, m)
		}
		b.conn.CloseNow()
	}
	// The connect URL's since works the same way.
	c := dial(t, n.URL+"?nick=carol&room=lobby&since=25", true)
	msgs, _ := c.collect(30)
	if got := ids(msgs); !slices.Equal(got, seq(26, 30)) {
		t.Fatalf("?since=25: ids %v", got)
	}
}

// progress counts acknowledged sends and lets goroutines wait for a count.
type progress struct {
	mu      sync.Mutex
	n       int
	done    bool
	waiters []waiter
}

type waiter struct {
	at int
	ch chan struct{}
}

func (p *progress) add() {
	p.mu.Lock()
	p.n++
	p.waiters = slices.DeleteFunc(p.waiters, func(w waiter) bool {
		if w.at <= p.n {
			close(w.ch)
			return true
		}
		return false
	})
	p.mu.Unlock()
}

// finish releases every waiter (the senders are done or failed).
func (p *progress) finish() {
	p.mu.Lock()
	p.done = true
	for _, w := range p.waiters {
		close(w.ch)
	}
	p.waiters = nil
	p.mu.Unlock()
}

func (p *progress) reached(at int) <-chan struct{} {
	ch := make(chan struct{})
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.done || p.n >= at {
		close(ch)
		return ch
	}
	p.waiters = append(p.waiters, waiter{at, ch})
	return ch
}

// The history/live seam under concurrent senders: joiners join with random
// since values at random points of the sending; each sees every id from
// since+1 to the last one sent, once, in order.
func TestJoinSinceSeamProperty(t *testing.T) {
	t.Parallel()
	n := parleytest.Start(t, parleytest.WithConfig(noRateLimit))
	var iter atomic.Int64
	rapid.Check(t, func(rt *rapid.T) {
		room := fmt.Sprintf("seam%d", iter.Add(1))
		senders := rapid.IntRange(1, 3).Draw(rt, "senders")
		per := rapid.IntRange(1, 20).Draw(rt, "perSender")
		total := senders * per
		type plan struct{ at, since int }
		joiners := rapid.SliceOfN(rapid.Custom(func(rt *rapid.T) plan {
			at := rapid.IntRange(0, total).Draw(rt, "at")
			return plan{at: at, since: rapid.IntRange(0, at).Draw(rt, "since")}
		}), 1, 3).Draw(rt, "joiners")

		var p progress
		var wg sync.WaitGroup
		errs := make(chan error, senders+len(joiners))
		for s := range senders {
			c, err := tryDial(n.URL+fmt.Sprintf("?nick=%s-s%d&room=%s", room, s, room), true)
			if err != nil {
				rt.Fatalf("dial: %v", err)
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				defer c.CloseNow()
				errs <- sendAll(c, room, s, per, &p)
			}()
		}
		for j, pl := range joiners {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-p.reached(pl.at)
				errs <- joinAndCheck(n.URL, room, j, uint64(pl.since), uint64(total))
			}()
		}
		var failed error
		for range senders + len(joiners) {
			if err := <-errs; err != nil && failed == nil {
				failed = err
				p.finish()
			}
		}
		wg.Wait()
		if failed != nil {
			rt.Fatal(failed)
		}
	})
}

// sendAll sends per messages with refs and waits for their acks, counting
// each in p. It reads (and drops) the room's messages meanwhile.
func sendAll(c *websocket.Conn, room string, s, per int, p *progress) error {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	for i := range per {
		b, _ := json.Marshal(map[string]any{"type": "send", "room": room, "text": fmt.Sprintf("s%d-%d", s, i), "ref": fmt.Sprint("r", i)})
		if err := c.Write(ctx, websocket.MessageText, b); err != nil {
			return fmt.Errorf("sender %d: write: %w", s, err)
		}
	}
	for acked := 0; acked < per; {
		_, b, err := c.Read(ctx)
		if err != nil {
			return fmt.Errorf("sender %d: read after %d acks: %w", s, acked, err)
		}
		var ev protocol.Event
		if err := json.Unmarshal(b, &ev); err != nil {
			return err
		}
		switch ev.Type {
		case protocol.EvAck:
			if ev.Ref != "join-"+room && ev.Ref != "" {
				acked++
				p.add()
			}
		case protocol.EvError:
			return fmt.Errorf("sender %d: %+v", s, ev)
		}
	}
	return nil
}

func joinAndCheck(url, room string, j int, since, last uint64) error {
	c, err := tryDial(url+fmt.Sprintf("?nick=%s-j%d", room, j), true)
	if err != nil {
		return err
	}
	defer c.CloseNow()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	b, _ := json.Marshal(map[string]any{"type": "join", "room": room, "since": since})
	if err := c.Write(ctx, websocket.MessageText, b); err != nil {
		return err
	}
	want := since + 1
	for want <= last {
		_, b, err := c.Read(ctx)
		if err != nil {
			return fmt.Errorf("joiner %d (since %d): waiting for id %d of %d: %w", j, since, want, last, err)
		}
		var ev protocol.Event
		if err := json.Unmarshal(b, &ev); err != nil {
			return err
		}
		switch ev.Type {
		case protocol.EvMessage:
			if ev.ID != want {
				return fmt.Errorf("joiner %d (since %d): got id %d, want %d (history=%v)", j, since, ev.ID, want, ev.History)
			}
			want++
		case protocol.EvGap, protocol.EvReset, protocol.EvError:
			return fmt.Errorf("joiner %d (since %d): unexpected %+v", j, since, ev)
		}
	}
	return nil
}

func TestGapWhenSinceIsOlderThanTheLog(t *testing.T) {
	t.Parallel()
	n := parleytest.Start(t, parleytest.WithConfig(noRateLimit), parleytest.WithLocal(func(c *local.Config) {
		c.RetainMessages = 5
		c.TrimInterval = 20 * time.Millisecond
	}))
	a := dial(t, n.URL+"?nick=alice&room=lobby", true)
	fill(a, "lobby", 20)
	waitFor(t, 10*time.Second, "retention to keep only 16-20", func() bool {
		p, err := n.Broker().Read(context.Background(), broker.Query{Room: "lobby", Limit: 1})
		return err == nil && p.First == 16
	})
	for _, tc := range []struct {
		name string
		url  string
		join *uint64
		gap  [2]uint64
	}{
		{"join since 2", "?nick=b", ptr(2), [2]uint64{3, 15}},
		{"join since 0", "?nick=c", ptr(0), [2]uint64{1, 15}},
		{"connect since 9", "?nick=d&room=lobby&since=9", nil, [2]uint64{10, 15}},
	} {
		b := dial(t, n.URL+tc.url, true)
		if tc.join != nil {
			b.join("lobby", tc.join, "")
		}
		var seen []protocol.Event
		b.readUntil(func(s string) bool {
			ev := decodeEvent(t, s)
			if ev.Type == protocol.EvGap || ev.Type == protocol.EvMessage {
				seen = append(seen, ev)
			}
			return ev.Type == protocol.EvMessage && ev.ID == 20
		})
		if g := seen[0]; g.Type != protocol.EvGap || g.Room != "lobby" || g.First != tc.gap[0] || g.Last != tc.gap[1] {
			t.Fatalf("%s: first event = %+v, want gap %v", tc.name, g, tc.gap)
		}
		if got := ids(seen[1:]); !slices.Equal(got, seq(16, 20)) {
			t.Fatalf("%s: after the gap ids %v, want 16-20", tc.name, got)
		}
		b.conn.CloseNow()
	}
}

func TestEpochResetAndTextSince(t *testing.T) {
	t.Parallel()
	n := parleytest.Start(t, parleytest.WithConfig(func(c *server.Config) {
		noRateLimit(c)
		c.History = 4
	}))
	a := dial(t, n.URL+"?nick=alice&room=lobby", true)
	epoch := a.event(protocol.EvWelcome).Epoch
	if len(epoch) != 16 {
		t.Fatalf("epoch %q", epoch)
	}
	fill(a, "lobby", 10)

	// Another epoch's since: reset, then the latest History messages.
	b := dial(t, n.URL+"?nick=bob", true)
	b.join("lobby", ptr(3), "0123456789abcdef")
	msgs, others := b.collect(10, protocol.EvReset, protocol.EvGap)
	if len(others) != 1 || others[0].Type != protocol.EvReset || others[0].Epoch != epoch || others[0].Room != "lobby" {
		t.Fatalf("events before history = %+v, want one reset with epoch %s", others, epoch)
	}
	if got := ids(msgs); !slices.Equal(got, seq(7, 10)) {
		t.Fatalf("after reset ids %v, want the last 4 (7-10)", got)
	}
	for _, m := range msgs {
		if !m.History {
			t.Fatalf("replayed message %d not marked history", m.ID)
		}
	}
	// The same since with the right epoch resumes.
	c := dial(t, n.URL+"?nick=carol", true)
	c.join("lobby", ptr(3), epoch)
	msgs, others = c.collect(10, protocol.EvReset, protocol.EvGap)
	if len(others) != 0 || !slices.Equal(ids(msgs), seq(4, 10)) {
		t.Fatalf("right epoch: events %+v, ids %v", others, ids(msgs))
	}
	// Reset by the connect URL too.
	d := dial(t, n.URL+"?nick=dave&room=lobby&since=3&epoch=ffffffffffffffff", true)
	msgs, others = d.collect(10, protocol.EvReset)
	if len(others) != 1 || !slices.Equal(ids(msgs), seq(7, 10)) {
		t.Fatalf("connect with another epoch: events %+v, ids %v", others, ids(msgs))
	}

	// The text format's ?since=ID.
	tc := dial(t, n.URL+"?nick=txt&since=7", false)
	if w := tc.read(); !strings.HasPrefix(w, "* welcome to parley, txt") {
		t.Fatalf("welcome = %q", w)
	}
	for i := 8; i <= 10; i++ {
		if got, want := tc.read(), fmt.Sprintf("[history] alice: m%d", i); got != want {
			t.Fatalf("text since=7: got %q, want %q", got, want)
		}
	}
	if got := tc.read(); got != "* txt joined #lobby" {
		t.Fatalf("after history: %q", got)
	}
	a.sendAck("lobby", "live", "live1")
	tc.readLine("alice: live")
	// A text client resuming with another epoch is told so.
	tr := dial(t, n.URL+"?nick=txt2&since=7&epoch=ffffffffffffffff", false)
	tr.read() // welcome
	if got := tr.read(); got != "! reset: the history of #lobby was reset; the latest messages follow" {
		t.Fatalf("text reset line = %q", got)
	}
	for i := 8; i <= 11; i++ {
		want := fmt.Sprintf("[history] alice: m%d", i)
		if i == 11 {
			want = "[history] alice: live"
		}
		if got := tr.read(); got != want {
			t.Fatalf("text after reset: got %q, want %q", got, want)
		}
	}
}

func TestRetrySafeSend(t *testing.T) {
	t.Parallel()
	n := parleytest.Start(t, parleytest.WithConfig(noRateLimit))
	watcher := dial(t, n.URL+"?nick=watcher&room=lobby", true)
	watcher.event(protocol.EvWelcome)
	a := dial(t, n.URL+"?nick=alice&room=lobby", true)

	// The same ref twice in a row: one message, both acks with its id.
	a.writeJSON(map[string]any{"type": "send", "room": "lobby", "text": "once", "ref": "r1"})
	a.writeJSON(map[string]any{"type": "send", "room": "lobby", "text": "once", "ref": "r1"})
	var acks []uint64
	a.readUntil(func(s string) bool {
		ev := decodeEvent(t, s)
		if ev.Type == protocol.EvError {
			t.Fatalf("error: %+v", ev)
		}
		if ev.Type == protocol.EvAck && ev.Ref == "r1" {
			acks = append(acks, ev.ID)
		}
		return len(acks) == 2
	})
	if acks[0] == 0 || acks[0] != acks[1] {
		t.Fatalf("acks %v, want two with the same id", acks)
	}
	id := acks[0]

	// Across a reconnect: the same nick resends r1 with its original ref.
	a.conn.Close(websocket.StatusNormalClosure, "")
	var a2 *wsClient
	waitFor(t, 10*time.Second, "alice's nick to be free again", func() bool {
		c := dial(t, n.URL+"?nick=alice&room=lobby", true)
		if c.event(protocol.EvWelcome).Nick == "alice" {
			a2 = c
			return true
		}
		c.conn.CloseNow()
		return false
	})
	if got := a2.sendAck("lobby", "once", "r1"); got != id {
		t.Fatalf("ack after reconnect = %d, want the original %d", got, id)
	}
	marker := a2.sendAck("lobby", "marker", "r2")
	if marker != id+1 {
		t.Fatalf("marker id %d, want %d: a retry used up an id", marker, id+1)
	}

	// The watcher saw "once" exactly once before the marker.
	msgs, _ := watcher.collect(marker)
	if got := ids(msgs); !slices.Equal(got, []uint64{id, marker}) {
		t.Fatalf("watcher got ids %v, want [%d %d]", got, id, marker)
	}
	// And the log holds it once.
	resp, body := httpGet(t, n.HTTP+"/api/rooms/lobby/messages")
	if resp.StatusCode != 200 || strings.Count(body, `"text":"once"`) != 1 {
		t.Fatalf("history: %d %s", resp.StatusCode, body)
	}
}

// Another SQLite connection holds the write lock: sends get not_stored,
// nothing is broadcast, /readyz says 503; after the lock is released a
// retry with the same ref works and /readyz says 200.
func TestStoreLockedNotStored(t *testing.T) {
	t.Parallel()
	n := parleytest.Start(t, parleytest.WithConfig(noRateLimit), parleytest.WithLocal(func(c *local.Config) {
		c.BusyTimeout = 200 * time.Millisecond
	}))
	watcher := dial(t, n.URL+"?nick=watcher&room=lobby", true)
	watcher.event(protocol.EvWelcome)
	a := dial(t, n.URL+"?nick=alice&room=lobby", true)
	a.event(protocol.EvWelcome)
	if resp, _ := httpGet(t, n.HTTP+"/readyz"); resp.StatusCode != 200 {
		t.Fatalf("/readyz before the lock: %d", resp.StatusCode)
	}

	ctx := context.Background()
	db, err := sql.Open("sqlite", "file:"+n.DB+"?_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	conn, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, "BEGIN EXCLUSIVE"); err != nil {
		t.Fatalf("BEGIN EXCLUSIVE: %v", err)
	}
	locked := true
	defer func() {
		if locked {
			conn.ExecContext(ctx, "ROLLBACK")
		}
	}()

	a.writeJSON(map[string]any{"type": "send", "room": "lobby", "text": "while locked", "ref": "x1"})
	var e protocol.Event
	a.readUntil(func(s string) bool {
		e = decodeEvent(t, s)
		return e.Ref == "x1"
	})
	if e.Type != protocol.EvError || e.Code != protocol.CodeNotStored {
		t.Fatalf("send while locked = %+v, want error not_stored", e)
	}
	if resp, body := httpGet(t, n.HTTP+"/readyz"); resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("/readyz while locked: %d %q, want 503", resp.StatusCode, body)
	}

	if _, err := conn.ExecContext(ctx, "ROLLBACK"); err != nil {
		t.Fatal(err)
	}
	locked = false
	id := a.sendAck("lobby", "after the lock", "x1")
	if id != 1 {
		t.Fatalf("first stored id = %d, want 1: the failed send used up an id", id)
	}
	if resp, body := httpGet(t, n.HTTP+"/readyz"); resp.StatusCode != 200 {
		t.Fatalf("/readyz after the lock: %d %q", resp.StatusCode, body)
	}
	// The watcher's first message is the one stored after the lock: the
	// failed send was never broadcast.
	msgs, _ := watcher.collect(id)
	if len(msgs) != 1 || msgs[0].Text != "after the lock" {
		t.Fatalf("watcher got %+v", msgs)
	}
}
