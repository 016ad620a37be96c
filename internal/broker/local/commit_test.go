package local

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"testing"
	"time"

	"parley/internal/broker"
	"parley/internal/chat"
)

func TestGroupCommit(t *testing.T) {
	t.Parallel()
	const (
		senders = 256
		each    = 4
	)
	rooms := []string{"r0", "r1", "r2", "r3"}
	rec := &recorder{}
	b := open(t, Config{Path: dbPath(t)}, rec.deliver)

	var (
		mu    sync.Mutex
		acked = map[string][]chat.Message{} // by room
		wg    sync.WaitGroup
		start = make(chan struct{})
	)
	errs := make(chan error, senders*each)
	for s := 0; s < senders; s++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			for i := 0; i < each; i++ {
				room := rooms[(s+i)%len(rooms)]
				m, err := b.Append(context.Background(), chat.Message{Room: room, From: fmt.Sprint("u", s), Text: fmt.Sprint(s, "/", i)})
				if err != nil {
					errs <- err
					return
				}
				mu.Lock()
				acked[room] = append(acked[room], m)
				mu.Unlock()
			}
		}()
	}
	close(start)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatalf("Append: %v", err)
	}

	st := b.Stats()
	if st.Appends != senders*each {
		t.Fatalf("Stats.Appends = %d, want %d", st.Appends, senders*each)
	}
	if st.Batches >= st.Appends {
		t.Fatalf("no group commit: %d transactions for %d appends", st.Batches, st.Appends)
	}
	t.Logf("%d appends in %d transactions", st.Appends, st.Batches)

	// Deliveries: per room, exactly the acknowledged messages, in id order,
	// ids 1..n.
	delivered := map[string][]chat.Message{}
	for _, m := range rec.get() {
		delivered[m.Room] = append(delivered[m.Room], m)
	}
	for _, room := range rooms {
		got := delivered[room]
		for i, m := range got {
			if m.ID != uint64(i+1) {
				t.Fatalf("room %s: delivery %d has id %d, want %d", room, i, m.ID, i+1)
			}
		}
		want := acked[room]
		sort.Slice(want, func(i, j int) bool { return want[i].ID < want[j].ID })
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("room %s: delivered %d messages, acknowledged %d; they differ", room, len(got), len(want))
		}
		p := readAll(t, b, room)
		if fmt.Sprint(p.Messages) != fmt.Sprint(want) {
			t.Fatalf("room %s: Read differs from the acknowledged messages", room)
		}
	}
}

// TestDeliverBeforeAck checks that a message is delivered before its Append
// returns.
func TestDeliverBeforeAck(t *testing.T) {
	t.Parallel()
	rec := &recorder{}
	b := open(t, Config{}, rec.deliver)
	for i := 0; i < 20; i++ {
		m := appendT(t, b, "lobby", "alice", "x", "")
		got := rec.get()
		if len(got) != i+1 || got[i] != m {
			t.Fatalf("after Append %d returned, delivered %d messages (last %+v)", m.ID, len(got), got[len(got)-1])
		}
	}
}

func TestRefsAreRetrySafe(t *testing.T) {
	t.Parallel()
	path := dbPath(t)
	rec := &recorder{}
	b, err := Open(context.Background(), Config{Path: path}, rec.deliver)
	if err != nil {
		t.Fatal(err)
	}
	first := appendT(t, b, "lobby", "alice", "hi", "c1")
	again := appendT(t, b, "lobby", "Alice", "hi", "c1") // nicks compare folded
	if again != first {
		t.Fatalf("retry = %+v, want the original %+v", again, first)
	}
	bob := appendT(t, b, "lobby", "bob", "hi", "c1")
	if bob.ID != 2 {
		t.Fatalf("another nick's same ref got id %d, want a new message 2", bob.ID)
	}
	// A retry into another room is still the same send.
	if m := appendT(t, b, "dev", "alice", "hi", "c1"); m != first {
		t.Fatalf("retry in another room = %+v, want %+v", m, first)
	}
	if st := b.Stats(); st.Duplicates != 2 || st.Appends != 2 {
		t.Fatalf("Stats = %+v, want 2 appends and 2 duplicates", st)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}

	b = open(t, Config{Path: path}, rec.deliver)
	if m := appendT(t, b, "lobby", "alice", "hi", "c1"); m != first {
		t.Fatalf("retry after reopen = %+v, want %+v", m, first)
	}
	if p := readAll(t, b, "lobby"); len(p.Messages) != 2 {
		t.Fatalf("lobby holds %d messages, want 2", len(p.Messages))
	}
	if got := rec.get(); len(got) != 2 || got[0] != first || got[1] != bob {
		t.Fatalf("delivered %+v, want the two stored messages once", got)
	}
}

func TestRefsInOneBatch(t *testing.T) {
	t.Parallel()
	rec := &recorder{}
	b := open(t, Config{Path: dbPath(t)}, rec.deliver)
	const n = 32
	var wg sync.WaitGroup
	got := make([]chat.Message, n)
	start := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			m, err := b.Append(context.Background(), chat.Message{Room: "lobby", From: "alice", Text: "once", Ref: "same"})
			if err != nil {
				t.Error(err)
			}
			got[i] = m
		}()
	}
	close(start)
	wg.Wait()
	for _, m := range got {
		if m.ID != 1 {
			t.Fatalf("a retry got id %d, want 1", m.ID)
		}
	}
	if d := rec.get(); len(d) != 1 {
		t.Fatalf("delivered %d messages, want 1", len(d))
	}
	if p := readAll(t, b, "lobby"); len(p.Messages) != 1 {
		t.Fatalf("stored %d messages, want 1", len(p.Messages))
	}
}

func TestRefWindowAndAge(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	now := time.Date(2026, 11, 25, 0, 0, 0, 0, time.UTC)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	b := open(t, Config{Path: dbPath(t), RefWindow: 3, RefAge: time.Hour, Now: clock}, nil)

	for i := 1; i <= 5; i++ {
		appendT(t, b, "lobby", "alice", "x", fmt.Sprint("r", i))
		advance(time.Millisecond)
	}
	if err := b.trim(context.Background()); err != nil {
		t.Fatal(err)
	}
	// r3..r5 are the newest three: still remembered. r1 was forgotten.
	if m := appendT(t, b, "lobby", "alice", "x", "r3"); m.ID != 3 {
		t.Fatalf("r3 retry got id %d, want the original 3", m.ID)
	}
	if m := appendT(t, b, "lobby", "alice", "x", "r1"); m.ID != 6 {
		t.Fatalf("r1 beyond the window got id %d, want a new message 6", m.ID)
	}

	// Past RefAge a ref is forgotten even before retention runs.
	advance(time.Hour + time.Second)
	if m := appendT(t, b, "lobby", "alice", "x", "r5"); m.ID != 7 {
		t.Fatalf("r5 past RefAge got id %d, want a new message 7", m.ID)
	}
	// And the new r5 is remembered.
	if m := appendT(t, b, "lobby", "alice", "x", "r5"); m.ID != 7 {
		t.Fatalf("r5 retry got id %d, want 7", m.ID)
	}
}

// TestRefOfTrimmedMessage: a retry whose original was removed by retention
// still gets the original id, not a new message.
func TestRefOfTrimmedMessage(t *testing.T) {
	t.Parallel()
	b := open(t, Config{Path: dbPath(t), RetainMessages: 1}, nil)
	first := appendT(t, b, "lobby", "alice", "hi", "c1")
	appendT(t, b, "lobby", "alice", "later", "c2")
	if err := b.trim(context.Background()); err != nil {
		t.Fatal(err)
	}
	if m := appendT(t, b, "lobby", "alice", "hi", "c1"); m != first {
		t.Fatalf("retry of a trimmed message = %+v, want %+v", m, first)
	}
}

// TestCloseWhileAppending: appends racing with Close either are stored
// (acknowledged, delivered, and there after a reopen) or fail with
// ErrClosed; none hangs and none is lost.
func TestCloseWhileAppending(t *testing.T) {
	t.Parallel()
	path := dbPath(t)
	rec := &recorder{}
	b, err := Open(context.Background(), Config{Path: path}, rec.deliver)
	if err != nil {
		t.Fatal(err)
	}
	const senders = 32
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		acked   []chat.Message
		started = make(chan struct{}, senders)
	)
	for s := 0; s < senders; s++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; i < 1000; i++ { // bounded; Close ends it much sooner
				m, err := b.Append(context.Background(), chat.Message{Room: "lobby", From: fmt.Sprint("u", s), Text: "x"})
				if i == 0 {
					started <- struct{}{}
				}
				if err != nil {
					if !errors.Is(err, broker.ErrClosed) || !errors.Is(err, broker.ErrNotStored) {
						t.Errorf("Append during Close = %v, want ErrClosed", err)
					}
					return
				}
				mu.Lock()
				acked = append(acked, m)
				mu.Unlock()
			}
		}()
	}
	for s := 0; s < senders; s++ {
		<-started
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	wg.Wait()

	sort.Slice(acked, func(i, j int) bool { return acked[i].ID < acked[j].ID })
	if got := rec.get(); fmt.Sprint(got) != fmt.Sprint(acked) {
		t.Fatalf("delivered %d messages, acknowledged %d", len(got), len(acked))
	}
	b = open(t, Config{Path: path}, nil)
	p := readAll(t, b, "lobby")
	if fmt.Sprint(p.Messages) != fmt.Sprint(acked) {
		t.Fatalf("after reopen the log holds %d messages, %d were acknowledged", len(p.Messages), len(acked))
	}
	t.Logf("%d appends acknowledged before Close", len(acked))
}
