package local

import (
	"errors"
	"fmt"
	"path/filepath"
	"sync"
	"testing"

	"parley/internal/broker"
	"parley/internal/chat"
)

// Appends queued by one goroutine with AppendAsync are stored, delivered
// and answered in the order queued, each answer once.
func TestAppendAsyncKeepsOrder(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var delivered []uint64
	b := open(t, Config{Path: filepath.Join(t.TempDir(), "p.db")}, func(m chat.Message) {
		mu.Lock()
		delivered = append(delivered, m.ID)
		mu.Unlock()
	})
	const n = 500
	answers := make(chan chat.Message, n)
	for i := range n {
		b.AppendAsync(chat.Message{Room: "lobby", From: "alice", Text: fmt.Sprint(i), Ref: fmt.Sprint("r", i)},
			func(m chat.Message, err error) {
				if err != nil {
					t.Errorf("append %d: %v", i, err)
				}
				answers <- m
			})
	}
	for i := range n {
		m := <-answers
		if m.ID != uint64(i+1) || m.Text != fmt.Sprint(i) {
			t.Fatalf("answer %d: id %d text %q, want id %d text %q", i, m.ID, m.Text, i+1, fmt.Sprint(i))
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if len(delivered) != n {
		t.Fatalf("%d delivered, want %d", len(delivered), n)
	}
	for i, id := range delivered {
		if id != uint64(i+1) {
			t.Fatalf("delivery %d has id %d", i, id)
		}
	}
	// A retry of a ref already stored is answered with the original.
	done := make(chan chat.Message, 1)
	b.AppendAsync(chat.Message{Room: "lobby", From: "alice", Text: "again", Ref: "r7"}, func(m chat.Message, err error) {
		if err != nil {
			t.Errorf("retry: %v", err)
		}
		done <- m
	})
	if m := <-done; m.ID != 8 || m.Text != "7" {
		t.Fatalf("retry of r7 answered %+v, want the original id 8", m)
	}
}

func TestAppendAsyncRefused(t *testing.T) {
	t.Parallel()
	b := open(t, Config{Path: filepath.Join(t.TempDir(), "p.db")}, nil)
	got := make(chan error, 2)
	b.AppendAsync(chat.Message{Room: "bad room", From: "alice", Text: "x"}, func(_ chat.Message, err error) { got <- err })
	if err := <-got; !errors.Is(err, broker.ErrNotStored) {
		t.Fatalf("bad room: %v, want ErrNotStored", err)
	}
	if err := b.Close(); err != nil {
		t.Fatal(err)
	}
	b.AppendAsync(chat.Message{Room: "lobby", From: "alice", Text: "x"}, func(_ chat.Message, err error) { got <- err })
	if err := <-got; !errors.Is(err, broker.ErrClosed) || !errors.Is(err, broker.ErrNotStored) {
		t.Fatalf("after Close: %v, want ErrNotStored and ErrClosed", err)
	}
}
