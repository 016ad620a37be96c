package client_test

import (
	"context"
	"fmt"
	"log"
	"net/http"
	"net/http/httptest"
	"time"

	"github.com/coder/websocket"

	"parley/internal/client"
	"parley/internal/protocol"
)

// A chat client: join a room, print what happens, send a line, and leave
// once the server has stored it.
func Example() {
	ctx := context.Background()
	c, err := client.Dial(ctx, "ws://127.0.0.1:8080", client.Options{
		Nick:      "alice",
		Rooms:     []string{"lobby"},
		Reconnect: true,
	})
	if err != nil {
		log.Fatal(err) // e.g. cannot connect to ws://127.0.0.1:8080: connection refused (is "parley serve" running?)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ev := range c.Events() {
			switch ev.Type {
			case protocol.EvMessage:
				fmt.Printf("#%s %s: %s\n", ev.Room, ev.From, ev.Text)
			case client.EvState:
				fmt.Println("connection:", ev.State, ev.Err)
			}
		}
	}()
	if _, err := c.Send(ctx, "lobby", "hi", false); err != nil {
		log.Fatal(err)
	}
	if err := c.Flush(ctx); err != nil { // acknowledged: stored in the room's log
		log.Fatal(err)
	}
	c.Close()
	<-done
}

// Raw mode talks to any text WebSocket server: here an echo server.
func ExampleOptions_raw() {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		conn, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		defer conn.CloseNow()
		for {
			typ, b, err := conn.Read(r.Context())
			if err != nil {
				return
			}
			conn.Write(r.Context(), typ, b)
		}
	}))
	defer srv.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := client.Dial(ctx, srv.URL, client.Options{Raw: true})
	if err != nil {
		log.Fatal(err)
	}
	defer c.Close()
	c.PostText(ctx, "hello")
	for ev := range c.Events() {
		if ev.Type == client.EvLine {
			fmt.Println(ev.Text)
			break
		}
	}
	// Output: hello
}
