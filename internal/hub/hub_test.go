package hub_test

import (
	"fmt"
	"slices"
	"sync"
	"sync/atomic"
	"testing"

	"go.uber.org/goleak"

	"parley/internal/chat"
	"parley/internal/hub"
	"parley/internal/protocol"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// recorder is a Subscriber that keeps every frame it is given, like a
// session's queue that is always drained.
type recorder struct {
	nick string

	mu     sync.Mutex
	frames []*hub.Frame
	vs     []hub.Variant
}

func (r *recorder) Deliver(f *hub.Frame, v hub.Variant) {
	r.mu.Lock()
	r.frames = append(r.frames, f)
	r.vs = append(r.vs, v)
	r.mu.Unlock()
}

func (r *recorder) Nick() string { return r.nick }

func (r *recorder) got() ([]*hub.Frame, []hub.Variant) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.frames), slices.Clone(r.vs)
}

// ids lists the ids of the message frames received.
func (r *recorder) ids() []uint64 {
	fs, _ := r.got()
	var out []uint64
	for _, f := range fs {
		if f.ID != 0 {
			out = append(out, f.ID)
		}
	}
	return out
}

// stuck is a Subscriber whose queue is bounded and never drained: once
// full, every further frame is dropped, and Deliver still returns at once.
type stuck struct {
	nick    string
	queue   chan *hub.Frame
	dropped atomic.Int64
}

func (s *stuck) Deliver(f *hub.Frame, v hub.Variant) {
	select {
	case s.queue <- f:
	default:
		s.dropped.Add(1)
	}
}

func (s *stuck) Nick() string { return s.nick }

// countingEncoder encodes like the server would, counting calls per variant.
type countingEncoder struct {
	calls [hub.NumVariants]atomic.Int64
}

func (c *countingEncoder) encode(ev *protocol.Event, v hub.Variant) []byte {
	c.calls[v].Add(1)
	if v == hub.VariantJSON {
		return protocol.AppendJSON(nil, ev)
	}
	current := ev.Room
	if v == hub.VariantTextOther {
		current = ""
	}
	return protocol.AppendText(nil, ev, current)
}

func newHub(t testing.TB, cfg hub.Config) (*hub.Hub, *countingEncoder) {
	t.Helper()
	enc := &countingEncoder{}
	cfg.Encode = enc.encode
	return hub.New(cfg), enc
}

func msg(room, from string, id uint64, text string) chat.Message {
	return chat.Message{Room: room, From: from, ID: id, Text: text}
}

func TestFanoutEveryMemberOnceNonMembersNone(t *testing.T) {
	t.Parallel()
	h, enc := newHub(t, hub.Config{})
	a := &recorder{nick: "a"}
	b := &recorder{nick: "b"}
	c := &recorder{nick: "c"}
	other := &recorder{nick: "other"}
	h.Join("lobby", a, hub.VariantJSON)
	h.Join("Lobby", b, hub.VariantJSON)
	h.Join("LOBBY", c, hub.VariantJSON)
	h.Join("dev", other, hub.VariantJSON)

	for id := uint64(1); id <= 10; id++ {
		h.Deliver(msg("lobby", "a", id, fmt.Sprint("m", id)))
	}
	want := []uint64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}
	for _, r := range []*recorder{a, b, c} {
		if got := r.ids(); !slices.Equal(got, want) {
			t.Errorf("%s got ids %v, want %v", r.nick, got, want)
		}
	}
	if fs, _ := other.got(); len(fs) != 0 {
		t.Errorf("a member of another room got %d frames", len(fs))
	}
	// One encoding per message: all members use one variant.
	if n := enc.calls[hub.VariantJSON].Load(); n != 10 {
		t.Errorf("JSON encoded %d times for 10 messages, want 10", n)
	}
	if n := enc.calls[hub.VariantText].Load() + enc.calls[hub.VariantTextOther].Load(); n != 0 {
		t.Errorf("text variants encoded %d times though nobody uses them", n)
	}

	// A room with no members: nothing happens, nothing is encoded.
	h.Deliver(msg("empty", "a", 1, "nobody"))
	if n := enc.calls[hub.VariantJSON].Load(); n != 10 {
		t.Errorf("a message to an empty room was encoded")
	}
}

func TestFanoutEncodesOncePerVariantAndSharesBytes(t *testing.T) {
	t.Parallel()
	h, enc := newHub(t, hub.Config{})
	subs := []*recorder{{nick: "j1"}, {nick: "j2"}, {nick: "t1"}, {nick: "t2"}, {nick: "o1"}, {nick: "o2"}, {nick: "j3"}}
	variants := []hub.Variant{hub.VariantJSON, hub.VariantJSON, hub.VariantText, hub.VariantText, hub.VariantTextOther, hub.VariantTextOther, hub.VariantJSON}
	for i, s := range subs {
		h.Join("lobby", s, variants[i])
	}
	h.Deliver(msg("lobby", "alice", 7, "hi"))

	for v := range hub.NumVariants {
		if n := enc.calls[v].Load(); n != 1 {
			t.Errorf("variant %d encoded %d times, want 1", v, n)
		}
	}
	var first *hub.Frame
	for i, s := range subs {
		fs, vs := s.got()
		if len(fs) != 1 {
			t.Fatalf("%s got %d frames, want 1", s.nick, len(fs))
		}
		if first == nil {
			first = fs[0]
		}
		if fs[0] != first {
			t.Errorf("%s got its own Frame: frames must be shared", s.nick)
		}
		if vs[0] != variants[i] {
			t.Errorf("%s got variant %d, want %d", s.nick, vs[0], variants[i])
		}
	}
	if first.ID != 7 || first.Room != "lobby" || first.From != "alice" {
		t.Errorf("frame = %+v", first)
	}
	want := map[hub.Variant]string{
		hub.VariantJSON:      `"text":"hi"`,
		hub.VariantText:      "alice: hi",
		hub.VariantTextOther: "#lobby alice: hi",
	}
	for v, s := range want {
		if got := string(first.Data[v]); !contains(got, s) {
			t.Errorf("variant %d = %q, want it to contain %q", v, got, s)
		}
	}

	// SetVariant moves a member to another variant; only that variant is
	// encoded for the next message if it is the only one in use.
	h2, enc2 := newHub(t, hub.Config{})
	r := &recorder{nick: "r"}
	h2.Join("dev", r, hub.VariantText)
	h2.SetVariant("DEV", r, hub.VariantTextOther)
	h2.Deliver(msg("dev", "bob", 1, "x"))
	if enc2.calls[hub.VariantTextOther].Load() != 1 || enc2.calls[hub.VariantText].Load() != 0 {
		t.Errorf("after SetVariant: calls text=%d other=%d, want 0 and 1",
			enc2.calls[hub.VariantText].Load(), enc2.calls[hub.VariantTextOther].Load())
	}
	if fs, _ := r.got(); len(fs) != 1 || fs[0].Data[hub.VariantText] != nil {
		t.Errorf("an unused variant was encoded")
	}
}

func contains(s, sub string) bool {
	for i := 0; i+len(sub) <= len(s); i++ {
		if s[i:i+len(sub)] == sub {
			return true
		}
	}
	return false
}

// Several publishers deliver to one room at once: every subscriber sees one
// and the same sequence, with each publisher's messages in its own order.
func TestOneOrderPerRoomUnderConcurrentPublishers(t *testing.T) {
	t.Parallel()
	h, _ := newHub(t, hub.Config{})
	const subsN, pubs, perPub = 8, 6, 500
	subs := make([]*recorder, subsN)
	for i := range subs {
		subs[i] = &recorder{nick: fmt.Sprint("s", i)}
		h.Join("lobby", subs[i], hub.VariantJSON)
	}
	var wg sync.WaitGroup
	for p := range pubs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 1; i <= perPub; i++ {
				h.Deliver(msg("lobby", fmt.Sprint("p", p), uint64(p*1_000_000+i), "x"))
			}
		}()
	}
	// Membership changes while delivering must not disturb the order.
	churn := &recorder{nick: "churn"}
	for range 200 {
		h.Join("lobby", churn, hub.VariantJSON)
		h.Leave("lobby", churn)
	}
	wg.Wait()

	ref := subs[0].ids()
	if len(ref) != pubs*perPub {
		t.Fatalf("s0 got %d messages, want %d", len(ref), pubs*perPub)
	}
	for _, s := range subs[1:] {
		if got := s.ids(); !slices.Equal(got, ref) {
			t.Fatalf("%s saw another order than s0 (%d vs %d messages)", s.nick, len(got), len(ref))
		}
	}
	last := make(map[uint64]uint64)
	for _, id := range ref {
		p := id / 1_000_000
		if id <= last[p] {
			t.Fatalf("publisher %d's id %d after %d", p, id, last[p])
		}
		last[p] = id
	}
}

// A subscriber that never drains its queue costs the others nothing: they
// get every frame, and the stuck one's Deliver keeps returning at once.
func TestStuckSubscriberDoesNotDelayOthers(t *testing.T) {
	t.Parallel()
	h, _ := newHub(t, hub.Config{})
	s := &stuck{nick: "stuck", queue: make(chan *hub.Frame, 16)}
	h.Join("lobby", s, hub.VariantJSON)
	fast := []*recorder{{nick: "f1"}, {nick: "f2"}, {nick: "f3"}}
	for _, f := range fast {
		h.Join("lobby", f, hub.VariantJSON)
	}
	const n = 5000
	done := make(chan struct{})
	go func() {
		defer close(done)
		for id := uint64(1); id <= n; id++ {
			h.Deliver(msg("lobby", "p", id, "x"))
		}
	}()
	<-done
	for _, f := range fast {
		ids := f.ids()
		if len(ids) != n || ids[0] != 1 || ids[n-1] != n {
			t.Errorf("%s got %d messages, want %d", f.nick, len(ids), n)
		}
	}
	if got, want := s.dropped.Load(), int64(n-16); got != want {
		t.Errorf("stuck subscriber dropped %d, want %d", got, want)
	}
}

func TestNickClaims(t *testing.T) {
	t.Parallel()
	h, _ := newHub(t, hub.Config{})
	a := &recorder{nick: "a"}
	b := &recorder{nick: "b"}
	if !h.ClaimNick("Alice", "", a) {
		t.Fatal("a free nick was refused")
	}
	if h.ClaimNick("alice", "", b) || h.ClaimNick("ALICE", "", b) {
		t.Fatal("a nick taken in another case was given to b")
	}
	if !h.ClaimNick("aLiCe", "", a) {
		t.Fatal("a could not claim its own nick in another case")
	}
	// Renaming releases the old nick.
	if !h.ClaimNick("al", "Alice", a) {
		t.Fatal("rename refused")
	}
	if !h.ClaimNick("alice", "", b) {
		t.Fatal("the old nick was not released by the rename")
	}
	// Release by someone who does not hold it does nothing.
	h.ReleaseNick("AL", b)
	if h.ClaimNick("al", "", b) {
		t.Fatal("ReleaseNick by a non-owner freed the nick")
	}
	h.ReleaseNick("AL", a)
	if !h.ClaimNick("al", "alice", b) {
		t.Fatal("a released nick could not be claimed")
	}
	// b renamed from alice to al: alice is free again.
	if !h.ClaimNick("ALICE", "", a) {
		t.Fatal("b's rename did not release alice")
	}
}

func TestJoinLeaveMembersRooms(t *testing.T) {
	t.Parallel()
	h, _ := newHub(t, hub.Config{})
	a := &recorder{nick: "carol"}
	b := &recorder{nick: "Alice"}
	c := &recorder{nick: "bob"}
	if d, already := h.Join("Dev", a, hub.VariantJSON); d != "Dev" || already {
		t.Fatalf("first join = %q, %v", d, already)
	}
	if d, already := h.Join("dev", b, hub.VariantText); d != "Dev" || already {
		t.Fatalf("second join = %q, %v: the first joiner's spelling is kept", d, already)
	}
	if d, already := h.Join("DEV", a, hub.VariantText); d != "Dev" || !already {
		t.Fatalf("join again = %q, %v, want already", d, already)
	}
	h.Join("lobby", c, hub.VariantJSON)
	h.Join("ant", c, hub.VariantJSON)

	if got := h.Members("dEv"); !slices.Equal(got, []string{"Alice", "carol"}) {
		t.Errorf("members = %v", got)
	}
	if got := h.Members("nowhere"); got == nil || len(got) != 0 {
		t.Errorf("members of an unknown room = %#v, want empty and not nil", got)
	}
	if got := h.Size("dev"); got != 2 {
		t.Errorf("size = %d", got)
	}
	want := []protocol.RoomInfo{{Name: "ant", Members: 1}, {Name: "Dev", Members: 2}, {Name: "lobby", Members: 1}}
	if got := h.Rooms(); !slices.Equal(got, want) {
		t.Errorf("rooms = %v, want %v", got, want)
	}
	if h.RoomCount() != 3 {
		t.Errorf("room count = %d", h.RoomCount())
	}
	if h.Display("DEV") != "Dev" || h.Display("unknown") != "unknown" {
		t.Errorf("display: %q %q", h.Display("DEV"), h.Display("unknown"))
	}

	if h.Leave("dev", c) {
		t.Error("Leave of a non-member reported true")
	}
	if !h.Leave("dev", a) || h.Leave("dev", a) {
		t.Error("Leave: want true once, then false")
	}
	h.Deliver(msg("dev", "x", 1, "after a left"))
	if fs, _ := a.got(); len(fs) != 0 {
		t.Error("a left member got a message")
	}
	if ids := b.ids(); !slices.Equal(ids, []uint64{1}) {
		t.Errorf("remaining member got %v", ids)
	}
	h.Leave("DEV", b)
	if h.RoomCount() != 2 || h.Size("dev") != 0 {
		t.Errorf("an empty room is still counted: %d rooms", h.RoomCount())
	}
	// A new first joiner names the room anew.
	if d, _ := h.Join("DEV", a, hub.VariantJSON); d != "DEV" {
		t.Errorf("rejoin of a forgotten room = %q, want DEV", d)
	}
}

func TestNoticeThreshold(t *testing.T) {
	t.Parallel()
	notice := func(typ, room string) protocol.Event {
		return protocol.Event{Type: typ, Room: room, Nick: "x", Old: "y", TS: protocol.Now()}
	}
	count := func(r *recorder) int { fs, _ := r.got(); return len(fs) }

	h, _ := newHub(t, hub.Config{NoticeThreshold: 2})
	subs := []*recorder{{nick: "a"}, {nick: "b"}, {nick: "c"}}
	h.Join("small", subs[0], hub.VariantJSON)
	h.Join("small", subs[1], hub.VariantJSON)
	for _, s := range subs {
		h.Join("big", s, hub.VariantJSON)
	}
	h.Notify(notice(protocol.EvJoin, "small"))
	h.Notify(notice(protocol.EvLeave, "small"))
	if count(subs[0]) != 2 || count(subs[1]) != 2 {
		t.Fatalf("a room at the threshold did not get its notices")
	}
	h.Notify(notice(protocol.EvJoin, "big"))
	h.Notify(notice(protocol.EvLeave, "BIG"))
	if count(subs[2]) != 0 {
		t.Fatalf("a room above the threshold got join/leave notices")
	}
	h.Notify(notice(protocol.EvNick, "big"))
	if count(subs[2]) != 1 {
		t.Fatalf("nick notices must go to rooms of any size")
	}
	fs, _ := subs[2].got()
	if fs[0].ID != 0 || fs[0].Room != "big" || !contains(string(fs[0].Data[hub.VariantJSON]), `"type":"nick"`) {
		t.Errorf("nick notice frame = %+v %q", fs[0], fs[0].Data[hub.VariantJSON])
	}

	// Negative: always send.
	h2, _ := newHub(t, hub.Config{NoticeThreshold: -1})
	many := make([]*recorder, 50)
	for i := range many {
		many[i] = &recorder{nick: fmt.Sprint("m", i)}
		h2.Join("lobby", many[i], hub.VariantJSON)
	}
	h2.Notify(notice(protocol.EvJoin, "lobby"))
	for _, m := range many {
		if count(m) != 1 {
			t.Fatalf("NoticeThreshold -1: %s got %d notices", m.nick, count(m))
		}
	}
	// The default threshold is 100 (docs/protocol.md): a room of 100
	// gets join notices, a room of 101 does not.
	h3, _ := newHub(t, hub.Config{})
	room := make([]*recorder, 101)
	for i := range room {
		room[i] = &recorder{nick: fmt.Sprint("d", i)}
		if i < 100 {
			h3.Join("lobby", room[i], hub.VariantJSON)
		}
	}
	h3.Notify(notice(protocol.EvJoin, "lobby"))
	if count(room[0]) != 1 {
		t.Fatal("default threshold suppressed a notice in a room of 100")
	}
	h3.Join("lobby", room[100], hub.VariantJSON)
	h3.Notify(notice(protocol.EvJoin, "lobby"))
	if count(room[0]) != 1 || count(room[100]) != 0 {
		t.Fatal("default threshold: a join notice went to a room of 101")
	}
}
