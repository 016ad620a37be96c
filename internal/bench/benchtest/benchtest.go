// Package benchtest has a plain text broadcast server for tests of the load
// generator: the original broadcast-chat exercise, optionally broken.
package benchtest

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/coder/websocket"
)

// textServer is the broadcast behind StartTextServer.
type textServer struct {
	dropEvery int

	mu      sync.Mutex
	clients map[chan []byte]bool // guarded by mu
	n       int                  // guarded by mu: frames received
	wg      sync.WaitGroup       // handlers and their writers
}

// StartTextServer serves a broadcast on 127.0.0.1 and returns its URL,
// ws://127.0.0.1:PORT/ws; it stops when the test ends. Every text frame a
// client sends goes to every client, the sender included; dropEvery > 0
// makes it skip every dropEvery-th frame it receives.
func StartTextServer(t testing.TB, dropEvery int) string {
	s := &textServer{dropEvery: dropEvery, clients: make(map[chan []byte]bool)}
	srv := httptest.NewServer(http.HandlerFunc(s.serve))
	t.Cleanup(func() {
		srv.Close()
		s.wg.Wait()
	})
	return "ws" + strings.TrimPrefix(srv.URL, "http") + "/ws"
}

func (s *textServer) serve(w http.ResponseWriter, r *http.Request) {
	s.wg.Add(1)
	defer s.wg.Done()
	c, err := websocket.Accept(w, r, nil)
	if err != nil {
		return
	}
	defer c.CloseNow()
	// Big enough that the bounded test runs never fill it: a full queue
	// would be the server's loss, and this server is meant to lose only
	// what dropEvery says.
	q := make(chan []byte, 1<<16)
	s.mu.Lock()
	s.clients[q] = true
	s.mu.Unlock()
	ctx, cancel := context.WithCancel(r.Context())
	var writer sync.WaitGroup
	writer.Go(func() {
		for {
			select {
			case <-ctx.Done():
				return
			case b := <-q:
				if c.Write(ctx, websocket.MessageText, b) != nil {
					return
				}
			}
		}
	})
	defer func() {
		s.mu.Lock()
		delete(s.clients, q)
		s.mu.Unlock()
		cancel()
		writer.Wait()
	}()
	for {
		_, b, err := c.Read(ctx)
		if err != nil {
			return
		}
		s.mu.Lock()
		s.n++
		if s.dropEvery == 0 || s.n%s.dropEvery != 0 {
			for q := range s.clients {
				select {
				case q <- b:
				default:
				}
			}
		}
		s.mu.Unlock()
	}
}
