package local

import (
	"context"
	"sync"
	"testing"
	"time"

	"parley/internal/broker"
)

func TestRetainMessages(t *testing.T) {
	t.Parallel()
	b := open(t, Config{Path: dbPath(t), RetainMessages: 3}, nil)
	for i := 0; i < 10; i++ {
		appendT(t, b, "lobby", "alice", "x", "")
	}
	appendT(t, b, "dev", "bob", "x", "")
	if err := b.trim(context.Background()); err != nil {
		t.Fatal(err)
	}
	p := readAll(t, b, "lobby")
	if !equalIDs(ids(p.Messages), seq(8, 10)) || p.First != 8 || p.Last != 10 {
		t.Fatalf("after trim: %v first %d last %d, want 8..10", ids(p.Messages), p.First, p.Last)
	}
	// A reader resuming after id 2 sees the gap: After+1 < First.
	p, err := b.Read(context.Background(), broker.Query{Room: "lobby", After: 2, Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	if p.First != 8 || !equalIDs(ids(p.Messages), seq(8, 10)) {
		t.Fatalf("resume after 2: %v first %d, want 8..10 and first 8", ids(p.Messages), p.First)
	}
	if p := readAll(t, b, "dev"); len(p.Messages) != 1 {
		t.Fatalf("dev lost messages: %v", ids(p.Messages))
	}
	if st := b.Stats(); st.Trimmed != 7 {
		t.Fatalf("Stats.Trimmed = %d, want 7", st.Trimmed)
	}
	if m := appendT(t, b, "lobby", "alice", "x", ""); m.ID != 11 {
		t.Fatalf("append after trim got id %d, want 11", m.ID)
	}
}

// TestRetainManyChunks trims more than one chunk's worth of messages.
func TestRetainManyChunks(t *testing.T) {
	t.Parallel()
	b := open(t, Config{Path: dbPath(t), RetainMessages: 10}, nil)
	const n = 2*trimChunk + 37
	var wg sync.WaitGroup
	for i := 0; i < 50; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := i; j < n; j += 50 {
				appendT(t, b, "lobby", "alice", "x", "")
			}
		}()
	}
	wg.Wait()
	if err := b.trim(context.Background()); err != nil {
		t.Fatal(err)
	}
	p := readAll(t, b, "lobby")
	if !equalIDs(ids(p.Messages), seq(n-9, n)) {
		t.Fatalf("after trim: %v, want %d..%d", ids(p.Messages), n-9, n)
	}
}

func TestRetainAge(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	b := open(t, Config{Path: dbPath(t), RetainAge: time.Hour, Now: clock}, nil)

	for i := 0; i < 3; i++ {
		appendT(t, b, "lobby", "alice", "old", "")
	}
	advance(2 * time.Hour)
	appendT(t, b, "lobby", "alice", "new", "")
	appendT(t, b, "lobby", "alice", "new", "")
	if err := b.trim(context.Background()); err != nil {
		t.Fatal(err)
	}
	p := readAll(t, b, "lobby")
	if !equalIDs(ids(p.Messages), seq(4, 5)) || p.First != 4 || p.Last != 5 {
		t.Fatalf("after age trim: %v first %d last %d, want 4..5", ids(p.Messages), p.First, p.Last)
	}

	// Everything ages out: the room holds nothing, but ids are not reused.
	advance(10 * time.Hour)
	if err := b.trim(context.Background()); err != nil {
		t.Fatal(err)
	}
	p = readAll(t, b, "lobby")
	// First 0 (nothing held), Last the room's newest id: a reader resuming
	// after id 2 learns of a gap up to 5, not of another log.
	if len(p.Messages) != 0 || p.First != 0 || p.Last != 5 {
		t.Fatalf("after everything aged out: %v first %d last %d, want none, first 0, last 5", ids(p.Messages), p.First, p.Last)
	}
	rooms, err := b.Rooms(context.Background())
	if err != nil || len(rooms) != 1 || rooms[0].Messages != 0 || rooms[0].LastID != 5 {
		t.Fatalf("Rooms = %+v, %v; want lobby with 0 messages and last id 5", rooms, err)
	}
	if m := appendT(t, b, "lobby", "alice", "x", ""); m.ID != 6 {
		t.Fatalf("append after a full trim got id %d, want 6", m.ID)
	}
}

// TestClockStepsBack: message times never go backwards within a room, so
// an age trim cannot punch a hole into the log.
func TestClockStepsBack(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	b := open(t, Config{Path: dbPath(t), RetainAge: time.Hour, Now: clock}, nil)

	a := appendT(t, b, "lobby", "alice", "1", "")
	advance(-2 * time.Hour)
	c := appendT(t, b, "lobby", "alice", "2", "")
	if c.Time.Before(a.Time) {
		t.Fatalf("time went backwards: %v then %v", a.Time, c.Time)
	}
}

func TestUnlimitedRetention(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	b := open(t, Config{Path: dbPath(t), RetainMessages: -1, RetainAge: -1, Now: clock}, nil)
	for i := 0; i < 5; i++ {
		appendT(t, b, "lobby", "alice", "x", "")
	}
	mu.Lock()
	now = now.Add(10 * 365 * 24 * time.Hour)
	mu.Unlock()
	if err := b.trim(context.Background()); err != nil {
		t.Fatal(err)
	}
	if p := readAll(t, b, "lobby"); len(p.Messages) != 5 {
		t.Fatalf("unlimited retention kept %d of 5", len(p.Messages))
	}
}

// TestRetentionRunsInBackground: the broker's own goroutine trims.
func TestRetentionRunsInBackground(t *testing.T) {
	t.Parallel()
	b := open(t, Config{Path: dbPath(t), RetainMessages: 2, TrimInterval: 10 * time.Millisecond}, nil)
	for i := 0; i < 5; i++ {
		appendT(t, b, "lobby", "alice", "x", "")
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		p := readAll(t, b, "lobby")
		if p.First == 4 {
			if !equalIDs(ids(p.Messages), seq(4, 5)) {
				t.Fatalf("after background trim: %v", ids(p.Messages))
			}
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("retention did not run within 10s: first %d", p.First)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
