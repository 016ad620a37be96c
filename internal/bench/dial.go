package bench

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/coder/websocket"
)

// connsPerSource is how many connections share one source address. Linux
// gives a bound socket an ephemeral port unique per source address (about
// 28,000 with the default ip_local_port_range), so 10,000+ connections to
// one loopback port from 127.0.0.1 alone can run out, mostly when earlier
// runs left ports in TIME_WAIT.
const connsPerSource = 5000

// dialer opens benchmark connections to one server.
type dialer struct {
	url     *url.URL
	text    bool
	timeout time.Duration
	// clients has one HTTP client per source address (immutable after
	// newDialer). Their transports only ever carry handshakes: a
	// connection that switched protocols leaves the transport's pool.
	clients []*http.Client
}

func newDialer(rawURL string, text bool, conns int, timeout time.Duration) (*dialer, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("bad URL %q: %w", rawURL, err)
	}
	switch u.Scheme {
	case "ws", "http":
		u.Scheme = "ws"
	case "wss", "https":
		u.Scheme = "wss"
	default:
		return nil, fmt.Errorf("bad URL %q: the scheme must be ws, wss, http or https", rawURL)
	}
	if u.Host == "" {
		return nil, fmt.Errorf("bad URL %q: no host", rawURL)
	}
	if u.Path == "" {
		u.Path = "/"
	}
	d := &dialer{url: u, text: text, timeout: timeout}
	for _, src := range sourceAddrs(u.Hostname(), conns) {
		nd := &net.Dialer{Timeout: timeout}
		if src != nil {
			nd.LocalAddr = &net.TCPAddr{IP: src}
		}
		d.clients = append(d.clients, &http.Client{Transport: &http.Transport{
			DialContext:        nd.DialContext,
			Proxy:              nil, // a benchmark of a local server must not go through $HTTP_PROXY
			DisableCompression: true,
			// Handshakes only: small buffers keep 10,000 connections cheap
			// in the load generator.
			ReadBufferSize:  1024,
			WriteBufferSize: 1024,
		}})
	}
	return d, nil
}

// sourceAddrs returns the local addresses to spread conns connections to
// host over: nil (let the kernel choose) unless host is an IPv4 loopback
// address and there are more connections than one source should carry.
func sourceAddrs(host string, conns int) []net.IP {
	if host == "localhost" {
		host = "127.0.0.1"
	}
	ip := net.ParseIP(host)
	n := (conns + connsPerSource - 1) / connsPerSource
	if ip == nil || ip.To4() == nil || !ip.IsLoopback() || n <= 1 {
		return []net.IP{nil}
	}
	n = min(n, 254)
	addrs := make([]net.IP, n)
	for i := range addrs {
		addrs[i] = net.IPv4(127, 0, 0, byte(i+1))
	}
	return addrs
}

// dial opens connection number i with the given nick and room.
func (d *dialer) dial(ctx context.Context, i int, nick, room string) (*websocket.Conn, error) {
	u := *d.url
	q := u.Query()
	if nick != "" {
		q.Set("nick", nick)
	}
	if room != "" {
		q.Set("room", room)
	}
	u.RawQuery = q.Encode()
	opts := &websocket.DialOptions{HTTPClient: d.clients[i%len(d.clients)]}
	if !d.text {
		opts.Subprotocols = []string{"parley.v1"}
	}
	ctx, cancel := context.WithTimeout(ctx, d.timeout)
	defer cancel()
	c, resp, err := websocket.Dial(ctx, u.String(), opts)
	if err != nil {
		if resp != nil && resp.StatusCode != http.StatusSwitchingProtocols {
			return nil, fmt.Errorf("connect %s: the server answered HTTP %d instead of upgrading", d.url.Redacted(), resp.StatusCode)
		}
		return nil, fmt.Errorf("connect %s: %w", d.url.Redacted(), unwrapDial(err))
	}
	if !d.text && c.Subprotocol() != "parley.v1" {
		c.CloseNow()
		return nil, fmt.Errorf("connect %s: the server does not speak parley.v1 (use --text for other servers)", d.url.Redacted())
	}
	// History pages and batched text frames can exceed the 32 KiB default.
	c.SetReadLimit(1 << 20)
	return c, nil
}

// unwrapDial drops coder/websocket's "failed to WebSocket dial:" prefixes,
// which say nothing the caller's context does not.
func unwrapDial(err error) error {
	s := err.Error()
	for {
		t := strings.TrimPrefix(s, "failed to WebSocket dial: ")
		t = strings.TrimPrefix(t, "failed to send handshake request: ")
		if t == s {
			break
		}
		s = t
	}
	if s == err.Error() {
		return err
	}
	return fmt.Errorf("%s", s)
}

func (d *dialer) close() {
	for _, c := range d.clients {
		c.CloseIdleConnections()
	}
}
