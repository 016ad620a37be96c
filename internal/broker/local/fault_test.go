package local

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"parley/internal/broker"
	"parley/internal/chat"
)

// TestLockedDatabase: another connection holds the write lock (BEGIN
// EXCLUSIVE) for longer than the busy timeout. Appends fail with
// ErrNotStored, nothing is delivered, Ready reports it; once the lock is
// released, appends work again and ids continue without a hole.
func TestLockedDatabase(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	path := dbPath(t)
	rec := &recorder{}
	b := open(t, Config{Path: path, BusyTimeout: 50e6}, rec.deliver) // 50ms
	appendT(t, b, "lobby", "alice", "before", "")

	other, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	conn, err := other.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, "BEGIN EXCLUSIVE"); err != nil {
		t.Fatal(err)
	}

	for i := 0; i < 3; i++ {
		_, err = b.Append(ctx, chat.Message{Room: "lobby", From: "alice", Text: "locked out", Ref: "r-locked"})
		if !errors.Is(err, broker.ErrNotStored) {
			t.Fatalf("Append while locked = %v, want ErrNotStored", err)
		}
	}
	if err := b.Ready(ctx); err == nil {
		t.Fatal("Ready = nil while the database is locked")
	}
	if got := rec.get(); len(got) != 1 {
		t.Fatalf("delivered %d messages while locked, want only the first", len(got))
	}
	// Readers are not blocked by the writer's lock (WAL).
	if p := readAll(t, b, "lobby"); len(p.Messages) != 1 {
		t.Fatalf("Read while locked = %d messages, want 1", len(p.Messages))
	}
	if st := b.Stats(); st.Failures != 3 {
		t.Fatalf("Stats.Failures = %d, want 3", st.Failures)
	}

	if _, err := conn.ExecContext(ctx, "ROLLBACK"); err != nil {
		t.Fatal(err)
	}
	if err := b.Ready(ctx); err != nil {
		t.Fatalf("Ready after the lock was released = %v", err)
	}
	// The failed send is retried with its ref: it is stored now, once.
	m := appendT(t, b, "lobby", "alice", "locked out", "r-locked")
	if m.ID != 2 {
		t.Fatalf("first append after the fault got id %d, want 2 (no hole)", m.ID)
	}
	if m := appendT(t, b, "lobby", "alice", "after", ""); m.ID != 3 {
		t.Fatalf("next append got id %d, want 3", m.ID)
	}
	if got := rec.get(); !equalIDs(ids(got), seq(1, 3)) {
		t.Fatalf("delivered ids %v, want 1..3", ids(got))
	}
	if p := readAll(t, b, "lobby"); !equalIDs(ids(p.Messages), seq(1, 3)) {
		t.Fatalf("stored ids %v, want 1..3", ids(p.Messages))
	}
}

// TestReadOnlyDatabase: the tests run as root, which ignores file
// permissions, so a chmod would not make writes fail. Instead the database
// is reopened through SQLite's read-only URI parameter (mode=ro): SQLite
// itself refuses every write with SQLITE_READONLY, the same error a
// read-only file gives an ordinary user.
func TestReadOnlyDatabase(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	path := dbPath(t)
	b, err := Open(ctx, Config{Path: path}, nil)
	if err != nil {
		t.Fatal(err)
	}
	first := appendT(t, b, "lobby", "alice", "stored", "")
	epoch := b.Epoch()
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}

	rec := &recorder{}
	ro := open(t, Config{Path: "file:" + path + "?mode=ro"}, rec.deliver)
	if ro.Epoch() != epoch {
		t.Fatalf("read-only epoch %q, want %q", ro.Epoch(), epoch)
	}
	if err := ro.Ready(ctx); err != nil {
		t.Fatalf("Ready before any write = %v", err)
	}
	_, err = ro.Append(ctx, chat.Message{Room: "lobby", From: "alice", Text: "refused"})
	if !errors.Is(err, broker.ErrNotStored) {
		t.Fatalf("Append to a read-only database = %v, want ErrNotStored", err)
	}
	t.Logf("Append error: %v", err)
	if err := ro.Ready(ctx); err == nil {
		t.Fatal("Ready = nil on a read-only database after a failed append")
	}
	if got := rec.get(); len(got) != 0 {
		t.Fatalf("delivered %+v from a read-only database", got)
	}
	p := readAll(t, ro, "lobby")
	if len(p.Messages) != 1 || p.Messages[0] != first {
		t.Fatalf("Read from read-only database = %+v, want [%+v]", p.Messages, first)
	}
}

// TestDiskFull: the write connection's max_page_count is set to the
// database's current size, so SQLite's pager answers the next growth with
// SQLITE_FULL ("database or disk is full"), the error a full disk gives.
// The batch fails as a whole, uses no id, delivers nothing; once there is
// room again the broker continues.
func TestDiskFull(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	rec := &recorder{}
	b := open(t, Config{Path: dbPath(t)}, rec.deliver)
	appendT(t, b, "lobby", "alice", "fits", "")

	var pages int
	if err := b.wdb.QueryRowContext(ctx, "PRAGMA page_count").Scan(&pages); err != nil {
		t.Fatal(err)
	}
	if _, err := b.wdb.ExecContext(ctx, fmt.Sprintf("PRAGMA max_page_count = %d", pages)); err != nil {
		t.Fatal(err)
	}
	big := strings.Repeat("x", 16<<10) // needs new pages
	_, err := b.Append(ctx, chat.Message{Room: "lobby", From: "alice", Text: big, Ref: "big"})
	if !errors.Is(err, broker.ErrNotStored) || !strings.Contains(err.Error(), "full") {
		t.Fatalf("Append to a full database = %v, want ErrNotStored saying it is full", err)
	}
	if err := b.Ready(ctx); err == nil {
		t.Fatal("Ready = nil on a full database")
	}
	if got := rec.get(); len(got) != 1 {
		t.Fatalf("delivered %d messages, want only the first", len(got))
	}

	if _, err := b.wdb.ExecContext(ctx, "PRAGMA max_page_count = 1073741823"); err != nil {
		t.Fatal(err)
	}
	if m := appendT(t, b, "lobby", "alice", big, "big"); m.ID != 2 {
		t.Fatalf("append after the disk had room again got id %d, want 2", m.ID)
	}
	if err := b.Ready(ctx); err != nil {
		t.Fatalf("Ready after recovery = %v", err)
	}
}

// TestReadsDoNotWaitForTheCommitter: while the committer is stuck waiting
// for a lock another connection holds, reads still answer at once.
func TestReadsDoNotWaitForTheCommitter(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	path := dbPath(t)
	b := open(t, Config{Path: path, BusyTimeout: time.Minute}, nil)
	appendT(t, b, "lobby", "alice", "before", "")

	other, err := sql.Open("sqlite", path)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	conn, err := other.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	if _, err := conn.ExecContext(ctx, "BEGIN EXCLUSIVE"); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() {
		_, err := b.Append(ctx, chat.Message{Room: "lobby", From: "alice", Text: "waits for the lock"})
		done <- err
	}()
	// Wait until the committer holds the batch (the queue is empty again).
	deadline := time.Now().Add(10 * time.Second)
	for {
		b.mu.Lock()
		queued := len(b.queue)
		b.mu.Unlock()
		if queued == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the committer did not take the append within 10s")
		}
		time.Sleep(time.Millisecond)
	}
	for i := 0; i < 20; i++ {
		rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		p, err := b.Read(rctx, broker.Query{Room: "lobby"})
		cancel()
		if err != nil || len(p.Messages) != 1 {
			t.Fatalf("Read while the committer waits = %d messages, %v", len(p.Messages), err)
		}
		if _, err := b.Rooms(ctx); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case err := <-done:
		t.Fatalf("Append returned while the lock was held: %v", err)
	default:
	}
	if _, err := conn.ExecContext(ctx, "ROLLBACK"); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatalf("Append after the lock was released: %v", err)
	}
}

// TestPathWithURICharacters: '?', '#' and '%' in a file name are part of
// the name, not URI syntax.
func TestPathWithURICharacters(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	path := filepath.Join(dir, "odd?name#1%41.db")
	b := open(t, Config{Path: path}, nil)
	appendT(t, b, "lobby", "alice", "hi", "")
	if _, err := os.Stat(path); err != nil {
		t.Fatalf("database not at %q: %v", path, err)
	}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		if !strings.HasPrefix(e.Name(), "odd?name#1%41.db") {
			t.Errorf("unexpected file %q in the directory", e.Name())
		}
	}
}
