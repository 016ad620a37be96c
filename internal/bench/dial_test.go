package bench

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
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
	defer d.close()
	for i := range 2 {
		c, err := d.dial(context.Background(), i, "", "")
		if err != nil {
			t.Fatal(err)
		}
		c.CloseNow()
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
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("hello")) }))
	defer srv.Close()
	d, err := newDialer(srv.URL, false, 1, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer d.close()
	if _, err := d.dial(context.Background(), 0, "", ""); err == nil || !strings.Contains(err.Error(), "HTTP 200") {
		t.Errorf("dialing a server that does not upgrade: %v", err)
	}
	// A WebSocket server that does not speak parley.v1.
	ws := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if c, err := websocket.Accept(w, r, nil); err == nil {
			// Hold it until the client hangs up.
			<-c.CloseRead(context.Background()).Done()
			c.CloseNow()
		}
	}))
	defer ws.Close()
	d2, err := newDialer(ws.URL, false, 1, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer d2.close()
	if _, err := d2.dial(context.Background(), 0, "", ""); err == nil || !strings.Contains(err.Error(), "--text") {
		t.Errorf("dialing a server without parley.v1: %v", err)
	}
}
