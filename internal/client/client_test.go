package client_test

import (
	"context"
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"go.uber.org/goleak"

	"parley/internal/client"
	"parley/internal/protocol"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestParseURL(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ in, want, err string }{
		{"", "ws://127.0.0.1:8080", ""},
		{"ws://h:1/x", "ws://h:1/x", ""},
		{"wss://h/", "wss://h/", ""},
		{"http://h:2", "ws://h:2", ""},
		{"HTTPS://h", "wss://h", ""},
		{"127.0.0.1:9", "ws://127.0.0.1:9", ""},
		{"ftp://h", "", `unsupported URL scheme "ftp" in "ftp://h": use ws://, wss://, http:// or https://`},
		{"ws://", "", "no host"},
	} {
		u, err := client.ParseURL(tc.in)
		if tc.err != "" {
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Errorf("ParseURL(%q) = %v, %v; want error containing %q", tc.in, u, err, tc.err)
			}
			continue
		}
		if err != nil || u.String() != tc.want {
			t.Errorf("ParseURL(%q) = %v, %v; want %s", tc.in, u, err, tc.want)
		}
	}
}

func TestDialBadScheme(t *testing.T) {
	t.Parallel()
	_, err := client.Dial(ctxT(t), "gopher://127.0.0.1:1", client.Options{})
	if err == nil || !strings.Contains(err.Error(), `"gopher"`) {
		t.Fatalf("err = %v, want one naming the scheme", err)
	}
}

func TestDialBadNames(t *testing.T) {
	t.Parallel()
	_, err := client.Dial(ctxT(t), "ws://127.0.0.1:1", client.Options{Nick: "no spaces"})
	if !errors.Is(err, client.ErrBadNick) {
		t.Fatalf("bad nick: err = %v", err)
	}
	_, err = client.Dial(ctxT(t), "ws://127.0.0.1:1", client.Options{Rooms: []string{"ok", "#bad"}})
	if !errors.Is(err, client.ErrBadRoom) || !strings.Contains(err.Error(), `"#bad"`) {
		t.Fatalf("bad room: err = %v", err)
	}
}

// closedPort returns a loopback address on which nothing listens.
func closedPort(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

func TestDialRefused(t *testing.T) {
	t.Parallel()
	addr := closedPort(t)
	_, err := client.Dial(ctxT(t), "ws://"+addr, client.Options{})
	want := "cannot connect to ws://" + addr + `: connection refused (is "parley serve" running?)`
	if err == nil || err.Error() != want {
		t.Fatalf("err = %v\nwant %s", err, want)
	}
	if !errors.Is(err, client.ErrRefused) {
		t.Fatalf("errors.Is(err, ErrRefused) = false for %#v", err)
	}
}

func TestDialNotWebSocket(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("hello, I am a web page"))
	}))
	defer srv.Close()
	_, err := client.Dial(ctxT(t), srv.URL, client.Options{})
	u := "ws" + strings.TrimPrefix(srv.URL, "http")
	want := "the server at " + u + " answered HTTP 200 instead of upgrading to WebSocket: it is not a parley server, or the path or port is wrong"
	if err == nil || err.Error() != want {
		t.Fatalf("err = %v\nwant %s", err, want)
	}
	var he *client.HandshakeError
	if !errors.As(err, &he) || he.StatusCode != 200 {
		t.Fatalf("err is not a *HandshakeError with 200: %#v", err)
	}
}

func TestDialTLSUnknownAuthority(t *testing.T) {
	t.Parallel()
	srv := httptest.NewUnstartedServer(http.NotFoundHandler())
	srv.Config.ErrorLog = log.New(io.Discard, "", 0) // the refused handshake
	srv.StartTLS()
	defer srv.Close()
	_, err := client.Dial(ctxT(t), srv.URL, client.Options{})
	var ce *client.ConnectError
	if !errors.As(err, &ce) || !strings.Contains(err.Error(), "TLS handshake failed: the certificate is signed by an unknown authority") {
		t.Fatalf("err = %v", err)
	}
}

func TestDialTLSToPlainServer(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.NotFoundHandler())
	defer srv.Close()
	_, err := client.Dial(ctxT(t), "wss://"+srv.Listener.Addr().String(), client.Options{})
	if err == nil || !strings.Contains(err.Error(), "the server does not speak TLS (try ws:// or http://)") {
		t.Fatalf("err = %v", err)
	}
}

func TestConnectErrorDNS(t *testing.T) {
	t.Parallel()
	err := &client.ConnectError{URL: "ws://nosuch.invalid", Err: &net.DNSError{Err: "no such host", Name: "nosuch.invalid", IsNotFound: true}}
	if got, want := err.Error(), `cannot connect to ws://nosuch.invalid: no such host "nosuch.invalid"`; got != want {
		t.Fatalf("got %s, want %s", got, want)
	}
}

// wsServer runs a real WebSocket server on 127.0.0.1 that hands each
// connection to handle, and waits for the handlers at cleanup.
func wsServer(t *testing.T, opts *websocket.AcceptOptions, handle func(ctx context.Context, c *websocket.Conn)) *httptest.Server {
	t.Helper()
	var wg sync.WaitGroup
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := websocket.Accept(w, r, opts)
		if err != nil {
			return
		}
		wg.Add(1)
		defer wg.Done()
		defer c.CloseNow()
		handle(r.Context(), c)
	}))
	t.Cleanup(func() {
		srv.CloseClientConnections()
		srv.Close()
		wg.Wait()
	})
	return srv
}

func TestDialNotParley(t *testing.T) {
	t.Parallel()
	srv := wsServer(t, nil, func(ctx context.Context, c *websocket.Conn) {
		c.Read(ctx)
	})
	_, err := client.Dial(ctxT(t), srv.URL, client.Options{})
	if !errors.Is(err, client.ErrNotParley) || !strings.Contains(err.Error(), "did not accept the parley.v1 subprotocol") {
		t.Fatalf("err = %v", err)
	}
}

type websocketConn = websocket.Conn

func closeStatus(err error) websocket.StatusCode { return websocket.CloseStatus(err) }

// parleyish accepts parley.v1, sends a welcome, then runs then.
func parleyish(t *testing.T, then func(ctx context.Context, c *websocket.Conn)) *httptest.Server {
	return wsServer(t, &websocket.AcceptOptions{Subprotocols: []string{protocol.Subprotocol}}, func(ctx context.Context, c *websocket.Conn) {
		c.Write(ctx, websocket.MessageText, []byte(`{"type":"welcome","nick":"guest-1","epoch":"e1","server":"parley","limits":{"max_message_bytes":8192,"rate":10,"burst":20,"history":50}}`))
		then(ctx, c)
	})
}

func TestServerCloseCodes(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		code   websocket.StatusCode
		reason string
		want   string
	}{
		{1001, "", "the server closed the connection: the server is shutting down (1001)"},
		{1008, "slow consumer", "the server closed the connection: policy violation (1008): slow consumer"},
		{1009, "", "the server closed the connection: message too big (1009)"},
	} {
		srv := parleyish(t, func(ctx context.Context, c *websocket.Conn) {
			c.Close(tc.code, tc.reason)
		})
		c, err := client.Dial(ctxT(t), srv.URL, client.Options{})
		if err != nil {
			t.Fatal(err)
		}
		var last client.Event
		for ev := range c.Events() {
			last = ev
		}
		if last.Type != client.EvState || last.State != client.StateClosed || last.Err == nil || last.Err.Error() != tc.want {
			t.Errorf("last event = %+v, want closed with %q", last, tc.want)
		}
		if err := c.Err(); err == nil || err.Error() != tc.want {
			t.Errorf("Err() = %v, want %q", err, tc.want)
		}
		var ce *client.CloseError
		if !errors.As(c.Err(), &ce) || ce.Code != int(tc.code) {
			t.Errorf("Err() is not a *CloseError %d: %#v", tc.code, c.Err())
		}
		if _, err := c.Send(ctxT(t), "lobby", "hi", false); err == nil {
			t.Errorf("Send after the end: no error")
		}
		c.Close()
	}
}

// broadcastServer is the original exercise: every text frame goes to every
// connection, the sender included.
func broadcastServer(t *testing.T) *httptest.Server {
	var mu sync.Mutex
	conns := map[*websocket.Conn]bool{}
	return wsServer(t, nil, func(ctx context.Context, c *websocket.Conn) {
		mu.Lock()
		conns[c] = true
		mu.Unlock()
		defer func() {
			mu.Lock()
			delete(conns, c)
			mu.Unlock()
		}()
		for {
			_, b, err := c.Read(ctx)
			if err != nil {
				return
			}
			mu.Lock()
			for o := range conns {
				o.Write(ctx, websocket.MessageText, b)
			}
			mu.Unlock()
		}
	})
}

func TestRawBroadcast(t *testing.T) {
	t.Parallel()
	srv := broadcastServer(t)
	ctx := ctxT(t)
	a, err := client.Dial(ctx, srv.URL, client.Options{Raw: true})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	b, err := client.Dial(ctx, srv.URL, client.Options{Raw: true})
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	lines := []string{"hello", "/not a command", "multi\nline"}
	for _, l := range lines {
		if err := a.PostText(ctx, l); err != nil {
			t.Fatal(err)
		}
	}
	if err := a.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	for _, c := range []*client.Client{a, b} {
		var got []string
		for len(got) < len(lines) {
			select {
			case ev := <-c.Events():
				if ev.Type == client.EvLine {
					got = append(got, ev.Text)
				}
			case <-ctx.Done():
				t.Fatalf("got %q before timeout", got)
			}
		}
		if strings.Join(got, "|") != strings.Join(lines, "|") {
			t.Errorf("got %q, want %q", got, lines)
		}
	}
}

func TestNoReconnectAfterOwnFault(t *testing.T) {
	t.Parallel()
	srv := parleyish(t, func(ctx context.Context, c *websocket.Conn) {
		c.Close(websocket.StatusMessageTooBig, "")
	})
	c, err := client.Dial(ctxT(t), srv.URL, client.Options{Reconnect: true, BackoffMin: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for ev := range c.Events() {
		if ev.State == client.StateReconnecting {
			t.Fatalf("reconnecting after a 1009 close, which would send the same frames again: %v", ev.Err)
		}
	}
	if ce := new(client.CloseError); !errors.As(c.Err(), &ce) || ce.Code != 1009 {
		t.Fatalf("Err = %v", c.Err())
	}
}

func TestIdleTimeout(t *testing.T) {
	t.Parallel()
	// A server that welcomes, then neither sends nor pings.
	srv := parleyish(t, func(ctx context.Context, c *websocket.Conn) {
		c.Read(ctx)
	})
	c, err := client.Dial(ctxT(t), srv.URL, client.Options{IdleTimeout: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for range c.Events() {
	}
	if !errors.Is(c.Err(), client.ErrIdle) || !strings.Contains(c.Err().Error(), "no data or ping from the server for 200ms") {
		t.Fatalf("Err = %v", c.Err())
	}
}

// TestWSS: wss:// with the caller's HTTP client (its TLS roots), and the
// caller's handshake headers.
func TestWSS(t *testing.T) {
	t.Parallel()
	gotHeader := make(chan string, 1)
	var wg sync.WaitGroup
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		gotHeader <- r.Header.Get("X-Token")
		c, err := websocket.Accept(w, r, &websocket.AcceptOptions{Subprotocols: []string{protocol.Subprotocol}})
		if err != nil {
			return
		}
		wg.Add(1)
		defer wg.Done()
		defer c.CloseNow()
		c.Write(r.Context(), websocket.MessageText, []byte(`{"type":"welcome","nick":"alice","epoch":"e"}`))
		c.Read(r.Context())
	}))
	srv.StartTLS()
	t.Cleanup(func() {
		srv.CloseClientConnections()
		srv.Close()
		wg.Wait()
	})
	u := "wss://" + srv.Listener.Addr().String() + "/ws"
	c, err := client.Dial(ctxT(t), u, client.Options{Nick: "alice", HTTPClient: srv.Client(), HTTPHeader: http.Header{"X-Token": {"t1"}}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if h := <-gotHeader; h != "t1" {
		t.Fatalf("header = %q", h)
	}
	if st := c.Status(); st.Nick != "alice" || st.State != client.StateConnected || st.URL != u {
		t.Fatalf("status = %+v", st)
	}
}
