package bench

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/textproto"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
)

func TestSourceAddrs(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		host  string
		conns int
		want  string
	}{
		{"127.0.0.1", 1000, "[<nil>]"},
		{"127.0.0.1", 12000, "[127.0.0.1 127.0.0.2 127.0.0.3]"},
		{"localhost", 5001, "[127.0.0.1 127.0.0.2]"},
		{"::1", 12000, "[<nil>]"},         // IPv6 loopback is one address
		{"example.com", 12000, "[<nil>]"}, // not ours to spread
		{"10.0.0.1", 12000, "[<nil>]"},    // a real interface: the kernel chooses
		{"127.0.0.1", 10_000_000, "254 addresses"},
	} {
		got := sourceAddrs(tc.host, tc.conns)
		s := strings.TrimSpace(fmtIPs(got))
		if tc.want == "254 addresses" {
			if len(got) != 254 || !got[253].Equal(net.IPv4(127, 0, 0, 254)) {
				t.Errorf("sourceAddrs(%s, %d): %d addresses, last %v", tc.host, tc.conns, len(got), got[len(got)-1])
			}
			continue
		}
		if "["+s+"]" != tc.want {
			t.Errorf("sourceAddrs(%s, %d) = [%s], want %s", tc.host, tc.conns, s, tc.want)
		}
	}
}

func fmtIPs(ips []net.IP) string {
	var b strings.Builder
	for _, ip := range ips {
		if ip == nil {
			b.WriteString("<nil> ")
		} else {
			b.WriteString(ip.String() + " ")
		}
	}
	return b.String()
}

// TestDialSpreadsSourceAddresses checks that connections really leave from
// the bound addresses (a server sees them as the remote address).
func TestDialSpreadsSourceAddresses(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	seen := map[string]bool{}
	var handlers sync.WaitGroup
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		handlers.Add(1)
		defer handlers.Done()
		host, _, _ := net.SplitHostPort(r.RemoteAddr)
		mu.Lock()
		seen[host] = true
		mu.Unlock()
		c, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		c.CloseRead(context.Background())
		c.Close(websocket.StatusNormalClosure, "")
	}))
	defer func() { srv.Close(); handlers.Wait() }()

	d, err := newDialer(srv.URL, true, 2*connsPerSource, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 2 {
		c, err := d.dial(context.Background(), i, "", "")
		if err != nil {
			t.Fatal(err)
		}
		c.closeNow()
	}
	mu.Lock()
	defer mu.Unlock()
	if !seen["127.0.0.1"] || !seen["127.0.0.2"] || len(seen) != 2 {
		t.Errorf("the server saw connections from %v, want 127.0.0.1 and 127.0.0.2", seen)
	}
}

func TestDialErrors(t *testing.T) {
	t.Parallel()
	for _, u := range []string{"ftp://127.0.0.1/", "ws://", "::"} {
		if _, err := newDialer(u, false, 1, time.Second); err == nil {
			t.Errorf("newDialer(%q): no error", u)
		}
	}
	// A plain HTTP server that does not upgrade.
	plain := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("hello")) }))
	t.Cleanup(plain.Close) // subtests run in parallel, after this function returns
	// A WebSocket server that does not speak parley.v1.
	var handlers sync.WaitGroup
	noProto := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		handlers.Add(1)
		defer handlers.Done()
		if c, err := websocket.Accept(w, r, nil); err == nil {
			// Hold it until the client hangs up.
			<-c.CloseRead(context.Background()).Done()
			c.CloseNow()
		}
	}))
	t.Cleanup(func() { noProto.Close(); handlers.Wait() })
	raw := func(answer func(h textproto.MIMEHeader) string) string {
		return startRawServer(t, func(c net.Conn, br *bufio.Reader, h textproto.MIMEHeader) {
			if a := answer(h); a != "" {
				c.Write([]byte(a))
				io.Copy(io.Discard, br) // until the client hangs up
			}
		})
	}
	hang := startRawServer(t, func(c net.Conn, br *bufio.Reader, h textproto.MIMEHeader) {
		io.Copy(io.Discard, br)
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	refused := "ws://" + ln.Addr().String() + "/"
	ln.Close()

	for _, tc := range []struct {
		name, url string
		text      bool
		want      string
	}{
		{"HTTP 200", plain.URL, false, "the server answered HTTP 200 instead of upgrading"},
		{"HTTP 200, text", plain.URL, true, "the server answered HTTP 200 instead of upgrading"},
		{"no subprotocol", noProto.URL, false, "does not speak parley.v1 (use --text for other servers)"},
		{"wrong accept key", raw(func(h textproto.MIMEHeader) string {
			h.Set("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==")
			return response101(h)
		}), true, "Sec-WebSocket-Accept does not match"},
		{"no upgrade header", raw(func(h textproto.MIMEHeader) string {
			return strings.Replace(response101(h), "Upgrade: websocket\r\n", "", 1)
		}), true, "lacks Upgrade"},
		{"not HTTP", raw(func(textproto.MIMEHeader) string { return "SSH-2.0-OpenSSH_9.6\r\n\r\n" }), true, "no HTTP response"},
		{"hang up", raw(func(textproto.MIMEHeader) string { return "" }), true, "closed the connection during the handshake"},
		{"no answer", hang, true, "no handshake answer within 300ms"},
		{"refused", refused, true, "connection refused"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			d, err := newDialer(tc.url, tc.text, 1, 300*time.Millisecond)
			if err != nil {
				t.Fatal(err)
			}
			c, err := d.dial(context.Background(), 0, "", "")
			if err == nil {
				c.closeNow()
				t.Fatalf("no error")
			}
			if !strings.Contains(err.Error(), tc.want) || !strings.HasPrefix(err.Error(), "connect ws://127.0.0.1:") {
				t.Errorf("error %q, want one that starts with the URL and says %q", err, tc.want)
			}
		})
	}

	t.Run("text mode needs no subprotocol", func(t *testing.T) {
		t.Parallel()
		d, err := newDialer(noProto.URL, true, 1, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		c, err := d.dial(context.Background(), 0, "", "")
		if err != nil {
			t.Fatal(err)
		}
		c.closeNow()
	})

	t.Run("cancelled", func(t *testing.T) {
		t.Parallel()
		d, err := newDialer(hang, true, 1, 10*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		defer cancel()
		start := time.Now()
		if _, err := d.dial(ctx, 0, "", ""); !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > 5*time.Second {
			t.Errorf("dial with a context that ends: %v after %v", err, time.Since(start))
		}
	})
}

// TestHandshakeRequest checks what the client asks for.
func TestHandshakeRequest(t *testing.T) {
	t.Parallel()
	for _, text := range []bool{false, true} {
		got := make(chan string, 1)
		url := startRawServer(t, func(c net.Conn, br *bufio.Reader, h textproto.MIMEHeader) {
			got <- fmt.Sprintf("Host=%s Upgrade=%s Connection=%s Version=%s Protocol=%s KeyLen=%d",
				h.Get("Host"), h.Get("Upgrade"), h.Get("Connection"), h.Get("Sec-WebSocket-Version"),
				h.Get("Sec-WebSocket-Protocol"), len(h.Get("Sec-WebSocket-Key")))
			c.Write([]byte(response101(h)))
			io.Copy(io.Discard, br)
		})
		d, err := newDialer(url, text, 1, 5*time.Second)
		if err != nil {
			t.Fatal(err)
		}
		c, err := d.dial(context.Background(), 0, "al ice", "r&d")
		if err != nil {
			t.Fatal(err)
		}
		c.closeNow()
		proto := "parley.v1"
		if text {
			proto = ""
		}
		want := fmt.Sprintf("Host=%s Upgrade=websocket Connection=Upgrade Version=13 Protocol=%s KeyLen=24", strings.TrimSuffix(strings.TrimPrefix(url, "ws://"), "/"), proto)
		if g := <-got; g != want {
			t.Errorf("text %v: request %s, want %s", text, g, want)
		}
	}
}

func TestAppendRequestQuery(t *testing.T) {
	t.Parallel()
	d, err := newDialer("ws://127.0.0.1:9/chat?x=1", true, 1, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	req := string(d.appendRequest(nil, []byte("k"), "al ice", "r&d"))
	if line, _, _ := strings.Cut(req, "\r\n"); line != "GET /chat?x=1&nick=al+ice&room=r%26d HTTP/1.1" {
		t.Errorf("request line %q", line)
	}
}
