package server_test

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"

	"parley/internal/protocol"
)

// wsClient is a test client over a real WebSocket connection.
type wsClient struct {
	t    testing.TB
	conn *websocket.Conn
	// pending holds frames already read that a helper set aside for the
	// test to read next (join keeps the history that comes before its ack).
	pending []string
}

func dial(t testing.TB, url string, json bool) *wsClient {
	t.Helper()
	c, err := tryDial(url, json)
	if err != nil {
		t.Fatalf("dial %s: %v", url, err)
	}
	cl := &wsClient{t: t, conn: c}
	t.Cleanup(func() { c.CloseNow() })
	return cl
}

func tryDial(url string, jsonFormat bool) (*websocket.Conn, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	opts := &websocket.DialOptions{}
	if jsonFormat {
		opts.Subprotocols = []string{protocol.Subprotocol}
	}
	c, resp, err := websocket.Dial(ctx, url, opts)
	if resp != nil && resp.Body != nil {
		resp.Body.Close()
	}
	if err != nil {
		return nil, err
	}
	c.SetReadLimit(1 << 20)
	return c, nil
}

// read returns the next frame's text, failing after 5 s.
func (c *wsClient) read() string {
	c.t.Helper()
	s, err := c.tryRead(5 * time.Second)
	if err != nil {
		c.t.Fatalf("read: %v", err)
	}
	return s
}

func (c *wsClient) tryRead(d time.Duration) (string, error) {
	if len(c.pending) > 0 {
		s := c.pending[0]
		c.pending = c.pending[1:]
		return s, nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	_, b, err := c.conn.Read(ctx)
	return string(b), err
}

// readUntil reads frames until one satisfies ok, returning it.
func (c *wsClient) readUntil(ok func(string) bool) string {
	c.t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		s, err := c.tryRead(time.Until(deadline))
		if err != nil {
			c.t.Fatalf("read: %v", err)
		}
		if ok(s) {
			return s
		}
	}
	c.t.Fatalf("no matching frame within 5s")
	return ""
}

func (c *wsClient) readLine(want string) {
	c.t.Helper()
	c.readUntil(func(s string) bool { return s == want })
}

// event reads frames until a JSON event of the given type arrives; with
// typ "" it returns the next event whatever its type.
func (c *wsClient) event(typ string) protocol.Event {
	c.t.Helper()
	var ev protocol.Event
	c.readUntil(func(s string) bool {
		ev = protocol.Event{}
		if err := json.Unmarshal([]byte(s), &ev); err != nil {
			c.t.Fatalf("bad JSON from server: %q: %v", s, err)
		}
		return typ == "" || ev.Type == typ
	})
	return ev
}

func (c *wsClient) write(s string) {
	c.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.conn.Write(ctx, websocket.MessageText, []byte(s)); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

func (c *wsClient) writeJSON(v any) {
	c.t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		c.t.Fatal(err)
	}
	c.write(string(b))
}

// closeStatus reads until the connection ends and returns its close code.
func (c *wsClient) closeStatus() websocket.StatusCode {
	c.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		_, err := c.tryRead(time.Until(deadline))
		if err != nil {
			var ce websocket.CloseError
			if errors.As(err, &ce) {
				return ce.Code
			}
			return -1
		}
	}
	c.t.Fatalf("connection still open after 10s")
	return 0
}

func httpGet(t testing.TB, url string) (*http.Response, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
	defer resp.Body.Close()
	var sb strings.Builder
	buf := make([]byte, 4096)
	for {
		n, err := resp.Body.Read(buf)
		sb.Write(buf[:n])
		if err != nil {
			break
		}
	}
	return resp, sb.String()
}
