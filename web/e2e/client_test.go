package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"

	"parley/internal/protocol"
)

// wsClient is a Go WebSocket client (coder/websocket, not the server's
// code): in the text format it is what a terminal user types and reads;
// in the JSON format it seeds history. One goroutine reads; the test writes.
type wsClient struct {
	t    *testing.T
	conn *websocket.Conn
	done chan struct{}

	mu      sync.Mutex
	changed chan struct{} // closed and replaced when frames arrive; guarded by mu
	frames  []string      // every frame received; guarded by mu
}

func dialWS(t *testing.T, wsURL, nick string, subprotocols ...string) *wsClient {
	t.Helper()
	u := wsURL + "?" + url.Values{"nick": {nick}}.Encode()
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	conn, _, err := websocket.Dial(ctx, u, &websocket.DialOptions{Subprotocols: subprotocols})
	if err != nil {
		t.Fatalf("dial %s: %v", u, err)
	}
	conn.SetReadLimit(1 << 20)
	c := &wsClient{t: t, conn: conn, done: make(chan struct{}), changed: make(chan struct{})}
	go c.read()
	t.Cleanup(func() {
		conn.CloseNow()
		<-c.done
	})
	return c
}

func (c *wsClient) read() {
	defer close(c.done)
	for {
		_, b, err := c.conn.Read(context.Background())
		if err != nil {
			return
		}
		c.mu.Lock()
		c.frames = append(c.frames, string(b))
		close(c.changed)
		c.changed = make(chan struct{})
		c.mu.Unlock()
	}
}

func (c *wsClient) write(s string) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	if err := c.conn.Write(ctx, websocket.MessageText, []byte(s)); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

// waitFrames waits until done(frames) is true, for at most waitFor.
func (c *wsClient) waitFrames(what string, done func(frames []string) bool) []string {
	c.t.Helper()
	deadline := time.NewTimer(waitFor)
	defer deadline.Stop()
	for {
		c.mu.Lock()
		frames, changed := c.frames, c.changed
		c.mu.Unlock()
		if done(frames) {
			return frames
		}
		select {
		case <-changed:
		case <-c.done:
			c.t.Fatalf("waiting for %s: connection closed", what)
		case <-deadline.C:
			c.t.Fatalf("waiting for %s: timed out; last frames: %q", what, tail(frames, 5))
		}
	}
}

func tail(s []string, n int) []string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// chatLines returns the text-format lines that are messages or actions of
// the given nicks ("ann: hi", "* ann waves"), in the order received.
func chatLines(frames []string, nicks ...string) []string {
	var out []string
	for _, f := range frames {
		for _, line := range strings.Split(f, "\n") {
			for _, n := range nicks {
				if strings.HasPrefix(line, n+": ") || strings.HasPrefix(line, "* "+n+" ") &&
					!strings.HasPrefix(line, "* "+n+" joined") && !strings.HasPrefix(line, "* "+n+" left") &&
					!strings.HasPrefix(line, "* "+n+" is now known") {
					out = append(out, line)
					break
				}
			}
		}
	}
	return out
}

// seed sends n messages "<prefix>NNN" to room over the JSON format and
// waits until all are acknowledged.
func seed(t *testing.T, wsURL, nick, room, prefix string, n int) {
	t.Helper()
	c := dialWS(t, wsURL, nick, protocol.Subprotocol)
	c.write(fmt.Sprintf(`{"type":"join","room":%q,"ref":"j"}`, room))
	for i := 1; i <= n; i++ {
		cmd, err := json.Marshal(protocol.Command{
			Type: protocol.CmdSend, Room: room, Text: fmt.Sprintf("%s%03d", prefix, i), Ref: fmt.Sprintf("s%d", i),
		})
		if err != nil {
			t.Fatal(err)
		}
		c.write(string(cmd))
	}
	c.waitFrames(fmt.Sprintf("%d acks", n), func(frames []string) bool {
		acks := 0
		for _, f := range frames {
			var ev protocol.Event
			if json.Unmarshal([]byte(f), &ev) != nil {
				continue
			}
			if ev.Type == protocol.EvError {
				t.Fatalf("seeding: %s", f)
			}
			if ev.Type == protocol.EvAck && strings.HasPrefix(ev.Ref, "s") {
				acks++
			}
		}
		return acks == n
	})
	c.conn.Close(websocket.StatusNormalClosure, "")
}
