package server

import (
	"bytes"
	"errors"
	"net"
	"net/url"
	"strings"
	"sync"
	"time"

	"parley/internal/protocol"
)

// The fast path for WebSocket handshakes on a plain TCP listener. net/http
// costs a connection a goroutine state of its own, a request, header maps,
// two 4 KiB buffers that a hijack throws away, and the garbage collection
// that follows: a third of the server's CPU when 10,000 clients connect.
// Here each accepted connection's request head is read into a pooled
// buffer and, if it is a well-formed WebSocket upgrade that parley would
// accept, served directly. Anything else (a page, the API, metrics, a
// handshake that gets an error) is handed to net/http with the bytes
// already read, and answered there exactly as before, by handleWS for
// upgrades. TLS listeners do not take this path.

// sniffListener is the listener net/http serves: it returns only the
// connections that are not fast-path WebSocket handshakes.
type sniffListener struct {
	net.Listener
	srv *Server

	startOnce sync.Once
	closeOnce sync.Once
	results   chan acceptResult // to Accept: plain HTTP connections, and accept errors
	closed    chan struct{}     // closed by Close
}

type acceptResult struct {
	c   net.Conn
	err error
}

func (s *Server) sniffer(ln net.Listener) *sniffListener {
	return &sniffListener{Listener: ln, srv: s, results: make(chan acceptResult), closed: make(chan struct{})}
}

// Accept returns the next connection for net/http.
func (l *sniffListener) Accept() (net.Conn, error) {
	l.startOnce.Do(func() {
		l.srv.handlers.Add(1)
		go l.acceptLoop()
	})
	select {
	case r := <-l.results:
		return r.c, r.err
	case <-l.closed:
		return nil, net.ErrClosed
	}
}

func (l *sniffListener) Close() error {
	var err error
	l.closeOnce.Do(func() {
		close(l.closed)
		err = l.Listener.Close()
	})
	return err
}

// acceptLoop accepts connections and sniffs each on a goroutine of its
// own. Errors go to Accept, one at a time, so net/http's back-off on
// temporary errors (too many open files) paces this loop too.
func (l *sniffListener) acceptLoop() {
	defer l.srv.handlers.Done()
	for {
		c, err := l.Listener.Accept()
		if err != nil {
			select {
			case l.results <- acceptResult{err: err}:
			case <-l.closed:
				return
			}
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		if !l.srv.startSniff(c) {
			c.Close() // shutting down
			continue
		}
		go l.sniff(c)
	}
}

// startSniff records a connection whose request is being read, so that
// Shutdown can close it; false if the server is shutting down.
func (s *Server) startSniff(c net.Conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopping {
		return false
	}
	s.sniffing[c] = struct{}{}
	s.handlers.Add(1)
	return true
}

func (s *Server) endSniff(c net.Conn) {
	s.mu.Lock()
	delete(s.sniffing, c)
	s.mu.Unlock()
	s.handlers.Done()
}

// maxHead is the largest request head the fast path reads; a longer one
// (large cookies, say) goes to net/http, which allows more.
const maxHead = 4096

var headBufs = sync.Pool{New: func() any { return new([maxHead]byte) }}

// sniff reads c's request head and serves it: a WebSocket session, or
// net/http.
func (l *sniffListener) sniff(c net.Conn) {
	s := l.srv
	defer s.endSniff(c)
	buf := headBufs.Get().(*[maxHead]byte)
	c.SetReadDeadline(time.Now().Add(s.cfg.HandshakeTimeout))
	n := 0
	end := -1
	for end < 0 && n < len(buf) {
		m, err := c.Read(buf[n:])
		n += m
		end = bytes.Index(buf[:n], headEnd)
		if err != nil && end < 0 {
			// Gone, or too slow to send its request: net/http would
			// close it too, after the same timeout.
			headBufs.Put(buf)
			c.Close()
			return
		}
	}
	if end >= 0 {
		head, rest := buf[:end+len(headEnd)], buf[end+len(headEnd):n]
		if h, ok := parseUpgrade(head); ok && len(rest) == 0 {
			if opts, ok := s.admit(h); ok {
				// The buffer goes back before the session starts: it
				// may run on this goroutine for a while.
				headBufs.Put(buf)
				s.mu.Lock()
				delete(s.sniffing, c) // a session now: Shutdown closes it with 1001
				s.mu.Unlock()
				// The handshake's read deadline stays until the session
				// sets its own after the welcome (nothing is read before).
				s.startSession(c, nil, c.RemoteAddr().String(), h.subprotocol, upgradeResponse(h.key, h.subprotocol), opts)
				return
			}
		}
	}
	// Not for the fast path: net/http reads the request again, from
	// these bytes.
	pre := bytes.Clone(buf[:n])
	headBufs.Put(buf)
	c.SetReadDeadline(time.Time{})
	select {
	case l.results <- acceptResult{c: &prefixConn{Conn: c, pre: pre}}:
	case <-l.closed:
		c.Close()
	}
}

var headEnd = []byte("\r\n\r\n")

// prefixConn is a connection whose first bytes were already read.
type prefixConn struct {
	net.Conn
	pre []byte
}

func (c *prefixConn) Read(p []byte) (int, error) {
	if len(c.pre) > 0 {
		n := copy(p, c.pre)
		c.pre = c.pre[n:]
		return n, nil
	}
	return c.Conn.Read(p)
}

// upgradeHead is what the fast path needs of a handshake request.
type upgradeHead struct {
	query       string
	host        string
	origin      string
	key         string
	subprotocol string // protocol.Subprotocol if offered, else ""
}

// parseUpgrade parses a request head and reports whether it is a
// WebSocket handshake the fast path can take: GET / or /ws over HTTP/1.1,
// with every header it needs present once, valid, and no body. Anything
// unusual returns false, and net/http decides.
func parseUpgrade(head []byte) (upgradeHead, bool) {
	var h upgradeHead
	line, rest, _ := bytes.Cut(head, crlf)
	target, ok := bytes.CutPrefix(line, []byte("GET "))
	if !ok {
		return h, false
	}
	target, ok = bytes.CutSuffix(target, []byte(" HTTP/1.1"))
	if !ok {
		return h, false
	}
	path, query, _ := bytes.Cut(target, []byte("?"))
	if string(path) != "/" && string(path) != "/ws" {
		return h, false
	}
	h.query = string(query)
	var upgrade, connection, version, hosts, keys, origins int
	for len(rest) > 2 {
		line, rest, _ = bytes.Cut(rest, crlf)
		name, value, ok := bytes.Cut(line, []byte(":"))
		if !ok || len(name) == 0 || name[len(name)-1] == ' ' || name[len(name)-1] == '\t' {
			return h, false // malformed, or an obsolete line folding
		}
		value = bytes.TrimSpace(value)
		switch {
		case equalFold(name, "Host"):
			hosts++
			h.host = string(value)
		case equalFold(name, "Upgrade"):
			if !equalFold(value, "websocket") {
				return h, false
			}
			upgrade++
		case equalFold(name, "Connection"):
			if hasToken(value, "upgrade") {
				connection++
			}
		case equalFold(name, "Sec-WebSocket-Version"):
			if string(value) != "13" {
				return h, false
			}
			version++
		case equalFold(name, "Sec-WebSocket-Key"):
			keys++
			h.key = string(value)
		case equalFold(name, "Sec-WebSocket-Protocol"):
			if hasToken(value, protocol.Subprotocol) {
				h.subprotocol = protocol.Subprotocol
			}
		case equalFold(name, "Origin"):
			origins++
			h.origin = string(value)
		case equalFold(name, "Content-Length"):
			if string(value) != "0" {
				return h, false
			}
		case equalFold(name, "Transfer-Encoding"), equalFold(name, "Expect"):
			return h, false
		}
	}
	ok = hosts == 1 && upgrade == 1 && connection == 1 && version == 1 &&
		keys == 1 && len(h.key) == 24 && origins <= 1
	return h, ok
}

var crlf = []byte("\r\n")

func equalFold(b []byte, s string) bool { return len(b) == len(s) && strings.EqualFold(string(b), s) }

// hasToken reports whether a comma-separated header value holds token.
func hasToken(v []byte, token string) bool {
	for part := range bytes.SplitSeq(v, []byte(",")) {
		if equalFold(bytes.TrimSpace(part), token) {
			return true
		}
	}
	return false
}

// admit checks what the fast path checks beyond the request's form, and
// takes a connection slot: false when the handshake needs an answer that
// net/http gives (a refused origin, bad options, a full server).
func (s *Server) admit(h upgradeHead) (connectOptions, bool) {
	if !s.originOK(h.origin, h.host) {
		return connectOptions{}, false
	}
	q, err := url.ParseQuery(h.query)
	if err != nil {
		return connectOptions{}, false
	}
	opts, err := parseConnectOptions(q)
	if err != nil {
		return connectOptions{}, false
	}
	if n := s.conns.Add(1); n > int64(s.cfg.MaxConnections) {
		s.conns.Add(-1)
		return connectOptions{}, false
	}
	return opts, true
}
