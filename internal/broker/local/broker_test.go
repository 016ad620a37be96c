package local

import (
	"context"
	"database/sql"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"go.uber.org/goleak"

	"parley/internal/broker"
	"parley/internal/chat"
)

func TestMain(m *testing.M) {
	flag.Parse()
	// Each rapid check opens a real database and fsyncs every append;
	// rapid's default of 100 checks takes minutes under -race on a busy
	// machine. 25 unless asked otherwise (-rapid.checks=1000 or
	// RAPID_CHECKS for a deeper run).
	explicit := false
	flag.Visit(func(f *flag.Flag) { explicit = explicit || f.Name == "rapid.checks" })
	if _, env := os.LookupEnv("RAPID_CHECKS"); !explicit && !env {
		flag.Set("rapid.checks", "25")
	}
	goleak.VerifyTestMain(m)
}

// recorder collects delivered messages.
type recorder struct {
	mu   sync.Mutex
	msgs []chat.Message
}

func (r *recorder) deliver(m chat.Message) {
	r.mu.Lock()
	r.msgs = append(r.msgs, m)
	r.mu.Unlock()
}

func (r *recorder) get() []chat.Message {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]chat.Message(nil), r.msgs...)
}

func dbPath(t testing.TB) string {
	return filepath.Join(t.TempDir(), "parley.db")
}

func open(t testing.TB, cfg Config, deliver broker.DeliverFunc) *Broker {
	t.Helper()
	b, err := Open(context.Background(), cfg, deliver)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() {
		if err := b.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return b
}

func appendT(t testing.TB, b *Broker, room, from, text, ref string) chat.Message {
	t.Helper()
	m, err := b.Append(context.Background(), chat.Message{Room: room, From: from, Text: text, Ref: ref})
	if err != nil {
		t.Fatalf("Append(%s, %s, %q): %v", room, from, text, err)
	}
	return m
}

func readAll(t testing.TB, b *Broker, room string) broker.Page {
	t.Helper()
	p, err := b.Read(context.Background(), broker.Query{Room: room})
	if err != nil {
		t.Fatalf("Read(%s): %v", room, err)
	}
	return p
}

func ids(msgs []chat.Message) []uint64 {
	out := make([]uint64, len(msgs))
	for i, m := range msgs {
		out[i] = m.ID
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

func equalIDs(a, b []uint64) bool {
	return fmt.Sprint(a) == fmt.Sprint(b)
}

var epochRE = regexp.MustCompile(`^[0-9a-f]{16}$`)

func TestIDsAndEpochSurviveReopen(t *testing.T) {
	t.Parallel()
	path := dbPath(t)
	b, err := Open(context.Background(), Config{Path: path}, nil)
	if err != nil {
		t.Fatal(err)
	}
	epoch := b.Epoch()
	if !epochRE.MatchString(epoch) {
		t.Fatalf("epoch %q is not 16 hex digits", epoch)
	}
	for i := 1; i <= 3; i++ {
		if m := appendT(t, b, "lobby", "alice", "hi", ""); m.ID != uint64(i) {
			t.Fatalf("lobby message %d got id %d", i, m.ID)
		}
	}
	for i := 1; i <= 2; i++ {
		if m := appendT(t, b, "dev", "bob", "yo", ""); m.ID != uint64(i) {
			t.Fatalf("dev message %d got id %d", i, m.ID)
		}
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}

	rec := &recorder{}
	b = open(t, Config{Path: path}, rec.deliver)
	if b.Epoch() != epoch {
		t.Fatalf("epoch after reopen = %q, want %q", b.Epoch(), epoch)
	}
	if m := appendT(t, b, "lobby", "alice", "again", ""); m.ID != 4 {
		t.Fatalf("after reopen lobby id = %d, want 4", m.ID)
	}
	if m := appendT(t, b, "dev", "bob", "again", ""); m.ID != 3 {
		t.Fatalf("after reopen dev id = %d, want 3", m.ID)
	}
	p := readAll(t, b, "lobby")
	if !equalIDs(ids(p.Messages), seq(1, 4)) || p.First != 1 || p.Last != 4 {
		t.Fatalf("lobby page = %v first %d last %d", ids(p.Messages), p.First, p.Last)
	}

	other := open(t, Config{Path: dbPath(t)}, nil)
	if other.Epoch() == epoch || !epochRE.MatchString(other.Epoch()) {
		t.Fatalf("new database epoch %q (old %q)", other.Epoch(), epoch)
	}
}

func TestAppendReturnsStoredMessage(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 11, 25, 19, 40, 9, 123456789, time.FixedZone("X", 3600))
	rec := &recorder{}
	b := open(t, Config{Path: dbPath(t), Now: func() time.Time { return now }}, rec.deliver)
	m, err := b.Append(context.Background(), chat.Message{Room: "Lobby", From: "Alice", Text: "waves", Kind: chat.KindAction, Ref: "c1"})
	if err != nil {
		t.Fatal(err)
	}
	want := chat.Message{Room: "Lobby", ID: 1, From: "Alice", Text: "waves", Kind: chat.KindAction,
		Time: time.Date(2026, 11, 25, 18, 40, 9, 123000000, time.UTC), Ref: "c1"}
	if m != want {
		t.Fatalf("Append = %+v, want %+v", m, want)
	}
	if got := rec.get(); len(got) != 1 || got[0] != want {
		t.Fatalf("delivered %+v, want [%+v]", got, want)
	}
	p := readAll(t, b, "lobby")
	if len(p.Messages) != 1 || p.Messages[0] != want {
		t.Fatalf("Read = %+v, want [%+v]", p.Messages, want)
	}
}

func TestRoomsAreCaseInsensitive(t *testing.T) {
	t.Parallel()
	b := open(t, Config{Path: dbPath(t)}, nil)
	appendT(t, b, "DevOps", "alice", "one", "")
	m := appendT(t, b, "devops", "bob", "two", "")
	if m.ID != 2 || m.Room != "DevOps" {
		t.Fatalf("second message = %+v, want id 2 in DevOps", m)
	}
	p := readAll(t, b, "DEVOPS")
	if !equalIDs(ids(p.Messages), []uint64{1, 2}) {
		t.Fatalf("Read DEVOPS = %v", ids(p.Messages))
	}
	for _, msg := range p.Messages {
		if msg.Room != "DevOps" {
			t.Fatalf("read message room %q, want the first spelling DevOps", msg.Room)
		}
	}
}

func TestMemory(t *testing.T) {
	t.Parallel()
	a := open(t, Config{}, nil)
	b := open(t, Config{Path: ":memory:"}, nil)
	appendT(t, a, "lobby", "alice", "in a", "")
	appendT(t, a, "lobby", "alice", "in a", "")
	if m := appendT(t, b, "lobby", "bob", "in b", ""); m.ID != 1 {
		t.Fatalf("second memory broker shares the first one's log: id %d", m.ID)
	}
	if p := readAll(t, a, "lobby"); !equalIDs(ids(p.Messages), []uint64{1, 2}) {
		t.Fatalf("memory read = %v", ids(p.Messages))
	}
	if a.Epoch() == b.Epoch() {
		t.Fatalf("two memory brokers share epoch %q", a.Epoch())
	}
}

func TestRead(t *testing.T) {
	t.Parallel()
	b := open(t, Config{Path: dbPath(t)}, nil)
	for i := 0; i < 10; i++ {
		appendT(t, b, "lobby", "alice", fmt.Sprint(i), "")
	}
	appendT(t, b, "dev", "bob", "other room", "")
	tests := []struct {
		q    broker.Query
		want []uint64
	}{
		{broker.Query{}, seq(1, 10)},
		{broker.Query{Limit: 3}, seq(1, 3)},
		{broker.Query{After: 4, Limit: 3}, seq(5, 7)},
		{broker.Query{After: 8, Limit: 5}, seq(9, 10)},
		{broker.Query{After: 10}, nil},
		{broker.Query{After: 1 << 63}, nil},
		{broker.Query{Backward: true, Limit: 3}, seq(8, 10)},
		{broker.Query{Backward: true, Before: 5, Limit: 3}, seq(2, 4)},
		{broker.Query{Backward: true, Before: 3, Limit: 5}, seq(1, 2)},
		{broker.Query{Backward: true, Before: 1, Limit: 5}, nil},
		{broker.Query{Backward: true}, seq(1, 10)},
		{broker.Query{Backward: true, Before: 100, Limit: 2}, seq(9, 10)},
	}
	for _, tt := range tests {
		tt.q.Room = "LOBBY"
		p, err := b.Read(context.Background(), tt.q)
		if err != nil {
			t.Fatalf("Read(%+v): %v", tt.q, err)
		}
		if !equalIDs(ids(p.Messages), tt.want) || p.First != 1 || p.Last != 10 {
			t.Errorf("Read(%+v) = %v first %d last %d, want %v first 1 last 10", tt.q, ids(p.Messages), p.First, p.Last, tt.want)
		}
		for _, m := range p.Messages {
			if m.Text != fmt.Sprint(m.ID-1) || m.Room != "lobby" || m.From != "alice" {
				t.Errorf("Read(%+v): message %+v", tt.q, m)
			}
		}
	}
	p, err := b.Read(context.Background(), broker.Query{Room: "nowhere"})
	if err != nil || len(p.Messages) != 0 || p.First != 0 || p.Last != 0 {
		t.Fatalf("Read of an unknown room = %+v, %v", p, err)
	}
}

func TestRooms(t *testing.T) {
	t.Parallel()
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	var mu sync.Mutex
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	b := open(t, Config{Path: dbPath(t), Now: clock, RetainMessages: 2}, nil)
	for i := 0; i < 3; i++ {
		appendT(t, b, "Lobby", "alice", "x", "")
	}
	mu.Lock()
	now = now.Add(time.Minute)
	mu.Unlock()
	appendT(t, b, "dev", "bob", "x", "")
	if err := b.trim(context.Background()); err != nil {
		t.Fatal(err)
	}
	rooms, err := b.Rooms(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	want := []broker.RoomInfo{
		{Name: "dev", Messages: 1, LastID: 1, LastActivity: now},
		{Name: "Lobby", Messages: 2, LastID: 3, LastActivity: now.Add(-time.Minute)},
	}
	if fmt.Sprint(rooms) != fmt.Sprint(want) {
		t.Fatalf("Rooms = %+v, want %+v", rooms, want)
	}
}

func TestOpenMissingDirectory(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "no", "such", "dir", "parley.db")
	b, err := Open(context.Background(), Config{Path: path}, nil)
	if err == nil {
		b.Close()
		t.Fatal("Open in a missing directory succeeded")
	}
	if !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), "does not exist") {
		t.Fatalf("Open error %q does not name the path and the cause", err)
	}
}

func TestOpenNewerSchema(t *testing.T) {
	t.Parallel()
	path := dbPath(t)
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec("PRAGMA user_version = 99"); err != nil {
		t.Fatal(err)
	}
	db.Close()
	b, err := Open(context.Background(), Config{Path: path}, nil)
	if err == nil {
		b.Close()
		t.Fatal("Open of a newer schema succeeded")
	}
	if !strings.Contains(err.Error(), "schema version 99") {
		t.Fatalf("Open error %q does not say why", err)
	}
}

func TestHumanReadableSchema(t *testing.T) {
	t.Parallel()
	path := dbPath(t)
	now := time.Date(2026, 11, 25, 19, 40, 9, 123000000, time.UTC)
	b := open(t, Config{Path: path, Now: func() time.Time { return now }}, nil)
	appendT(t, b, "Lobby", "alice", "hi", "c1")
	db, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var room, sender, text, kind, ts, ref string
	var id int
	if err := db.QueryRow("SELECT room, id, sender, text, kind, time, ref FROM history").Scan(&room, &id, &sender, &text, &kind, &ts, &ref); err != nil {
		t.Fatal(err)
	}
	got := fmt.Sprint(room, id, sender, text, kind, ts, ref)
	if want := fmt.Sprint("Lobby", 1, "alice", "hi", "text", "2026-11-25T19:40:09.123Z", "c1"); got != want {
		t.Fatalf("history view row = %s, want %s", got, want)
	}
	var epoch string
	if err := db.QueryRow("SELECT value FROM meta WHERE key = 'epoch'").Scan(&epoch); err != nil || epoch != b.Epoch() {
		t.Fatalf("meta epoch = %q, %v; want %q", epoch, err, b.Epoch())
	}
}

func TestClose(t *testing.T) {
	t.Parallel()
	b, err := Open(context.Background(), Config{Path: dbPath(t)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	appendT(t, b, "lobby", "alice", "hi", "")
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	if err := b.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	_, err = b.Append(context.Background(), chat.Message{Room: "lobby", From: "alice", Text: "late"})
	if !errors.Is(err, broker.ErrClosed) || !errors.Is(err, broker.ErrNotStored) {
		t.Fatalf("Append after Close = %v, want ErrClosed and ErrNotStored", err)
	}
	if _, err := b.Read(context.Background(), broker.Query{Room: "lobby"}); !errors.Is(err, broker.ErrClosed) {
		t.Fatalf("Read after Close = %v, want ErrClosed", err)
	}
	if err := b.Ready(context.Background()); !errors.Is(err, broker.ErrClosed) {
		t.Fatalf("Ready after Close = %v, want ErrClosed", err)
	}
}

func TestAppendRejectsBadRoom(t *testing.T) {
	t.Parallel()
	b := open(t, Config{}, nil)
	for _, room := range []string{"", "has space", strings.Repeat("x", 33)} {
		if _, err := b.Append(context.Background(), chat.Message{Room: room, From: "a", Text: "x"}); !errors.Is(err, broker.ErrNotStored) {
			t.Errorf("Append to room %q = %v, want ErrNotStored", room, err)
		}
	}
}
