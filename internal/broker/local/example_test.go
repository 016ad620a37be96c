package local_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"

	"parley/internal/broker"
	"parley/internal/broker/local"
	"parley/internal/chat"
)

func Example() {
	dir, _ := os.MkdirTemp("", "parley-example")
	defer os.RemoveAll(dir)
	ctx := context.Background()

	deliver := func(m chat.Message) { fmt.Printf("deliver #%s %d %s: %s\n", m.Room, m.ID, m.From, m.Text) }
	b, err := local.Open(ctx, local.Config{Path: filepath.Join(dir, "parley.db")}, deliver)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer b.Close()

	m, _ := b.Append(ctx, chat.Message{Room: "lobby", From: "alice", Text: "hi", Ref: "c1"})
	fmt.Println("ack", m.ID)
	// A retry with the same ref is stored once: same id, no second delivery.
	m, _ = b.Append(ctx, chat.Message{Room: "lobby", From: "alice", Text: "hi", Ref: "c1"})
	fmt.Println("ack", m.ID)
	b.Append(ctx, chat.Message{Room: "Lobby", From: "bob", Text: "hello"})

	page, _ := b.Read(ctx, broker.Query{Room: "LOBBY", Backward: true, Limit: 50})
	for _, m := range page.Messages {
		fmt.Printf("history %d %s: %s\n", m.ID, m.From, m.Text)
	}
	fmt.Println("first", page.First, "last", page.Last)
	// Output:
	// deliver #lobby 1 alice: hi
	// ack 1
	// ack 1
	// deliver #lobby 2 bob: hello
	// history 1 alice: hi
	// history 2 bob: hello
	// first 1 last 2
}

func ExampleOpen_missingDirectory() {
	_, err := local.Open(context.Background(), local.Config{Path: "/nonexistent/dir/parley.db"}, nil)
	fmt.Println(err)
	// Output:
	// local broker: open /nonexistent/dir/parley.db: directory /nonexistent/dir does not exist
}
