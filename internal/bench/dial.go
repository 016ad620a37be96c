package bench

import (
	"bytes"
	"context"
	"crypto/sha1"
	"crypto/tls"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/url"
	"time"
)

// connsPerSource is how many connections share one source address. Linux
// gives a bound socket an ephemeral port unique per source address (about
// 28,000 with the default ip_local_port_range), so 10,000+ connections to
// one loopback port from 127.0.0.1 alone can run out, mostly when earlier
// runs left ports in TIME_WAIT.
const connsPerSource = 5000

// maxResponseHeader bounds the handshake response's header.
const maxResponseHeader = 8 << 10

// wsGUID is RFC 6455's constant for Sec-WebSocket-Accept.
const wsGUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

// dialer opens benchmark connections to one server. Immutable after
// newDialer.
type dialer struct {
	url      *url.URL
	text     bool
	timeout  time.Duration
	hostPort string      // what to dial: the URL's host, with the scheme's port if it has none
	tls      *tls.Config // nil for ws://
	dialers  []*net.Dialer
}

func newDialer(rawURL string, text bool, conns int, timeout time.Duration) (*dialer, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		return nil, fmt.Errorf("bad URL %q: %w", rawURL, err)
	}
	port := "80"
	switch u.Scheme {
	case "ws", "http":
		u.Scheme = "ws"
	case "wss", "https":
		u.Scheme, port = "wss", "443"
	default:
		return nil, fmt.Errorf("bad URL %q: the scheme must be ws, wss, http or https", rawURL)
	}
	if u.Host == "" {
		return nil, fmt.Errorf("bad URL %q: no host", rawURL)
	}
	if u.Path == "" {
		u.Path = "/"
	}
	if u.Port() != "" {
		port = u.Port()
	}
	d := &dialer{url: u, text: text, timeout: timeout, hostPort: net.JoinHostPort(u.Hostname(), port)}
	if u.Scheme == "wss" {
		d.tls = &tls.Config{
			ServerName: u.Hostname(),
			NextProtos: []string{"http/1.1"},
			// Thousands of handshakes to one server: resume sessions.
			ClientSessionCache: tls.NewLRUClientSessionCache(0),
		}
	}
	for _, src := range sourceAddrs(u.Hostname(), conns) {
		// No TCP keep-alive: four setsockopt calls per connection for
		// probes that a benchmark's lifetime never sees.
		nd := &net.Dialer{Timeout: timeout, KeepAlive: -1}
		if src != nil {
			nd.LocalAddr = &net.TCPAddr{IP: src}
		}
		d.dialers = append(d.dialers, nd)
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

// dial opens connection number i with the given nick and room: TCP (and
// TLS for wss://), then the handshake, all within the dialer's timeout.
func (d *dialer) dial(ctx context.Context, i int, nick, room string) (*wsConn, error) {
	deadline := time.Now().Add(d.timeout)
	nc, err := d.dialers[i%len(d.dialers)].DialContext(ctx, "tcp", d.hostPort)
	if err != nil {
		return nil, fmt.Errorf("connect %s: %w", d.url.Redacted(), err)
	}
	// The handshake is bounded by the same deadline, and by ctx: a
	// cancelled run must not wait for a server that does not answer.
	nc.SetDeadline(deadline)
	stop := context.AfterFunc(ctx, func() { nc.SetDeadline(time.Unix(1, 0)) })
	c, err := d.handshake(ctx, nc, nick, room)
	if !stop() && err == nil {
		err = ctx.Err() // ended just as the handshake did: the deadline is in the past
	}
	if err != nil {
		nc.Close()
		switch {
		case isTimeout(err) && ctx.Err() != nil:
			err = ctx.Err()
		case isTimeout(err):
			err = fmt.Errorf("no handshake answer within %v", d.timeout)
		}
		return nil, fmt.Errorf("connect %s: %w", d.url.Redacted(), err)
	}
	nc.SetDeadline(time.Time{})
	return c, nil
}

// handshake upgrades nc: one write for the request, and the response read
// into the connection's first read buffer, whose bytes after the header are
// the start of the first frame.
func (d *dialer) handshake(ctx context.Context, nc net.Conn, nick, room string) (*wsConn, error) {
	if d.tls != nil {
		tc := tls.Client(nc, d.tls)
		if err := tc.HandshakeContext(ctx); err != nil {
			return nil, err
		}
		nc = tc
	}
	var raw [16]byte
	binary.LittleEndian.PutUint64(raw[:8], rand.Uint64())
	binary.LittleEndian.PutUint64(raw[8:], rand.Uint64())
	var key [24]byte
	base64.StdEncoding.Encode(key[:], raw[:])

	buf := d.appendRequest(make([]byte, 0, readBufSize), key[:], nick, room)
	if _, err := nc.Write(buf); err != nil {
		return nil, err
	}
	buf = buf[:cap(buf)]
	n, end := 0, -1
	for end < 0 {
		if n == len(buf) {
			if len(buf) >= maxResponseHeader {
				return nil, fmt.Errorf("the handshake response's header is over %d bytes", maxResponseHeader)
			}
			buf = append(buf, make([]byte, len(buf))...)
		}
		m, err := nc.Read(buf[n:])
		n += m
		if end = bytes.Index(buf[:n], []byte("\r\n\r\n")); end >= 0 {
			break
		}
		// Say the status as soon as it is known: a server that does not
		// upgrade may send a large header or none at all.
		if code, ok := statusCode(buf[:n]); ok && code != 101 {
			return nil, fmt.Errorf("the server answered HTTP %d instead of upgrading", code)
		}
		if err != nil {
			if errors.Is(err, io.EOF) {
				return nil, errors.New("the server closed the connection during the handshake")
			}
			return nil, err
		}
	}
	if err := d.checkResponse(buf[:end+2], key[:]); err != nil {
		return nil, err
	}
	return newWSConn(nc, buf, end+4, n), nil
}

// appendRequest appends the handshake request.
func (d *dialer) appendRequest(b, key []byte, nick, room string) []byte {
	b = append(b, "GET "...)
	b = append(b, d.url.EscapedPath()...)
	sep := byte('?')
	if d.url.RawQuery != "" {
		b = append(b, '?')
		b = append(b, d.url.RawQuery...)
		sep = '&'
	}
	for _, kv := range [...][2]string{{"nick", nick}, {"room", room}} {
		if kv[1] != "" {
			b = append(b, sep)
			b = append(b, kv[0]...)
			b = append(b, '=')
			b = append(b, url.QueryEscape(kv[1])...)
			sep = '&'
		}
	}
	b = append(b, " HTTP/1.1\r\nHost: "...)
	b = append(b, d.url.Host...)
	b = append(b, "\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: "...)
	b = append(b, key...)
	b = append(b, "\r\nSec-WebSocket-Version: 13\r\n"...)
	if !d.text {
		b = append(b, "Sec-WebSocket-Protocol: parley.v1\r\n"...)
	}
	return append(b, "\r\n"...)
}

// statusCode parses the status line at the start of b, once it is whole.
func statusCode(b []byte) (int, bool) {
	i := bytes.Index(b, []byte("\r\n"))
	if i < 0 {
		return 0, false
	}
	line := b[:i]
	// HTTP/1.1 101 Switching Protocols
	if len(line) < 12 || !bytes.HasPrefix(line, []byte("HTTP/1.")) || line[8] != ' ' {
		return -1, true
	}
	code := 0
	for _, ch := range line[9:12] {
		if ch < '0' || ch > '9' {
			return -1, true
		}
		code = code*10 + int(ch-'0')
	}
	return code, true
}

// checkResponse checks a handshake response's status line and headers
// (head ends with the last header's CRLF).
func (d *dialer) checkResponse(head, key []byte) error {
	code, _ := statusCode(head)
	if code < 0 {
		return fmt.Errorf("the server sent no HTTP response: %q", head[:min(len(head), 40)])
	}
	if code != 101 {
		return fmt.Errorf("the server answered HTTP %d instead of upgrading", code)
	}
	var want [28]byte
	var in [24 + len(wsGUID)]byte
	copy(in[copy(in[:], key):], wsGUID)
	sum := sha1.Sum(in[:])
	base64.StdEncoding.Encode(want[:], sum[:])

	var upgrade, connection, accept, protocol bool
	for rest := head[bytes.IndexByte(head, '\n')+1:]; len(rest) > 0; {
		i := bytes.IndexByte(rest, '\n')
		line := bytes.TrimRight(rest[:i], "\r")
		rest = rest[i+1:]
		name, value, ok := bytes.Cut(line, []byte(":"))
		if !ok {
			continue
		}
		value = bytes.TrimSpace(value)
		switch {
		case bytes.EqualFold(name, []byte("Upgrade")):
			upgrade = bytes.EqualFold(value, []byte("websocket"))
		case bytes.EqualFold(name, []byte("Connection")):
			connection = hasToken(value, "upgrade")
		case bytes.EqualFold(name, []byte("Sec-WebSocket-Accept")):
			accept = bytes.Equal(value, want[:])
		case bytes.EqualFold(name, []byte("Sec-WebSocket-Protocol")):
			protocol = string(value) == "parley.v1"
		}
	}
	switch {
	case !upgrade || !connection:
		return errors.New("the server's 101 response lacks Upgrade: websocket or Connection: Upgrade")
	case !accept:
		return errors.New("the server's Sec-WebSocket-Accept does not match the key")
	case !d.text && !protocol:
		return errors.New("the server does not speak parley.v1 (use --text for other servers)")
	}
	return nil
}

// hasToken reports whether a comma-separated header value holds token
// (case-insensitive).
func hasToken(value []byte, token string) bool {
	for len(value) > 0 {
		var t []byte
		t, value, _ = bytes.Cut(value, []byte(","))
		if bytes.EqualFold(bytes.TrimSpace(t), []byte(token)) {
			return true
		}
	}
	return false
}
