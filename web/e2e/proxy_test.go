package e2e

import (
	"io"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"testing"

	"parley/internal/parleytest"
)

// relay is a TCP relay on 127.0.0.1 in front of a server. It can stop
// passing the server's bytes to the client (so a send reaches the server
// but its ack never reaches the page) and cut every connection. It is a
// real socket in the path, not a stand-in for the server.
type relay struct {
	ln     net.Listener
	target string
	mute   atomic.Bool // drop server-to-client bytes

	mu    sync.Mutex
	conns []net.Conn // open conns of both sides; guarded by mu
	wg    sync.WaitGroup
}

func startRelay(t *testing.T, target string) *relay {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &relay{ln: ln, target: target}
	r.wg.Add(1)
	go r.accept()
	t.Cleanup(func() {
		ln.Close()
		r.cut()
		r.wg.Wait()
	})
	return r
}

func (r *relay) addr() string { return r.ln.Addr().String() }

func (r *relay) accept() {
	defer r.wg.Done()
	for {
		c, err := r.ln.Accept()
		if err != nil {
			return
		}
		s, err := net.Dial("tcp", r.target)
		if err != nil {
			c.Close()
			continue
		}
		r.mu.Lock()
		r.conns = append(r.conns, c, s)
		r.mu.Unlock()
		r.wg.Add(2)
		go func() { // client to server
			defer r.wg.Done()
			io.Copy(s, c)
			s.Close()
		}()
		go func() { // server to client, unless muted
			defer r.wg.Done()
			buf := make([]byte, 32<<10)
			for {
				n, err := s.Read(buf)
				if n > 0 && !r.mute.Load() {
					if _, werr := c.Write(buf[:n]); werr != nil {
						break
					}
				}
				if err != nil {
					break
				}
			}
			c.Close()
		}()
	}
}

// cut closes every connection through the relay.
func (r *relay) cut() {
	r.mu.Lock()
	conns := r.conns
	r.conns = nil
	r.mu.Unlock()
	for _, c := range conns {
		c.Close() // the copy goroutines see the error and end
	}
}

// A send whose ack is lost is resent after the reconnect with the same ref,
// and the room shows it once: on the page that sent it, and for others.
func TestUnackedSendIsResentOnce(t *testing.T) {
	t.Parallel()
	node := parleytest.Start(t)
	rl := startRelay(t, node.Addr)
	b := startBrowser(t)
	ann := newTab(t, b, "ann")
	ann.open("http://"+rl.addr()+"/", "ann")
	ann.waitOnline()
	tom := dialWS(t, node.URL, "tom") // straight to the server
	ann.wait("tom", `document.querySelectorAll('#member-list li').length === 2`)

	rl.mute.Store(true)
	ann.typeLine("only once")
	tom.waitFrames("the message", func(f []string) bool { return slices.Contains(f, "ann: only once") })
	if n := eval[int](ann, `document.querySelectorAll('.msg.pending:not(.sent)').length`); n != 1 {
		t.Fatalf("%d unacked sends on the page, want 1 (the ack must not have arrived)", n)
	}

	rl.cut()
	rl.mute.Store(false)
	ann.wait("the connection to drop", `document.getElementById('conn').dataset.state !== 'online'`)
	ann.waitOnline()
	ann.wait("the message", `document.querySelectorAll('.msg[data-id]').length >= 1`)
	ann.wait("the ack", `document.querySelectorAll('.msg.pending').length === 0`)

	// Anything stored twice would come before this.
	tom.write("after")
	ann.wait("the last message", `Array.from(document.querySelectorAll('.msg[data-id] .text'), (e) => e.textContent).includes('after')`)
	got := lines(ann.messages("lobby"))
	if want := []string{"ann: only once", "tom: after"}; !slices.Equal(got, want) {
		t.Errorf("the page shows %q, want %q", got, want)
	}
	frames := tom.waitFrames("after", func(f []string) bool { return slices.Contains(f, "tom: after") })
	if got := chatLines(frames, "ann"); !slices.Equal(got, []string{"ann: only once"}) {
		t.Errorf("tom saw %q, want the message once", got)
	}
}
