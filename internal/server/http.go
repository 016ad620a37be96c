package server

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"html"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/gobwas/ws"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"golang.org/x/time/rate"

	"parley/internal/broker"
	"parley/internal/chat"
	"parley/internal/protocol"
)

func (s *Server) routes() *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /readyz", s.handleReady)
	mux.Handle("GET /metrics", promhttp.HandlerFor(s.metrics.reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /api/rooms", s.handleAPIRooms)
	mux.HandleFunc("GET /api/rooms/{room}/messages", s.handleAPIMessages)
	mux.HandleFunc("/ws", s.handleRoot)
	mux.HandleFunc("/", s.handleRoot)
	return mux
}

// handleRoot upgrades WebSocket requests and serves the page otherwise.
func (s *Server) handleRoot(w http.ResponseWriter, r *http.Request) {
	if isUpgrade(r) && (r.URL.Path == "/" || r.URL.Path == "/ws") {
		s.handleWS(w, r)
		return
	}
	if r.URL.Path == "/ws" {
		w.Header().Set("Upgrade", "websocket")
		http.Error(w, "this is parley's WebSocket endpoint: connect with a WebSocket client", http.StatusUpgradeRequired)
		return
	}
	if s.cfg.Page != nil {
		s.cfg.Page.ServeHTTP(w, r)
		return
	}
	if r.URL.Path != "/" {
		http.NotFound(w, r)
		return
	}
	s.defaultPage(w, r)
}

func isUpgrade(r *http.Request) bool {
	return headerHas(r.Header, "Connection", "upgrade") && strings.EqualFold(r.Header.Get("Upgrade"), "websocket")
}

func headerHas(h http.Header, name, token string) bool {
	for _, v := range h.Values(name) {
		for _, t := range strings.Split(v, ",") {
			if strings.EqualFold(strings.TrimSpace(t), token) {
				return true
			}
		}
	}
	return false
}

func (s *Server) defaultPage(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	host := html.EscapeString(r.Host)
	fmt.Fprintf(w, `<!doctype html>
<html><head><meta charset="utf-8"><title>parley</title>
<style>body{font:16px/1.5 system-ui,sans-serif;max-width:40em;margin:2em auto;padding:0 1em}code{background:#8882;padding:0 .2em}</style>
</head><body>
<h1>parley</h1>
<p>This is a parley chat server. Connect with any WebSocket client:</p>
<pre><code>websocat ws://%[1]s/
parley chat ws://%[1]s/</code></pre>
<p>Each line you send goes to everyone in your room (<code>lobby</code> at first). Lines starting with <code>/</code> are commands: <code>/nick</code>, <code>/join</code>, <code>/leave</code>, <code>/who</code>, <code>/rooms</code>, <code>/me</code>, <code>/help</code>.</p>
<p>Programs can use the JSON format with the subprotocol <code>parley.v1</code>. Health: <a href="/healthz">/healthz</a>, <a href="/readyz">/readyz</a>, metrics: <a href="/metrics">/metrics</a>, history: <a href="/api/rooms">/api/rooms</a>.</p>
</body></html>
`, host)
}

// originAllowed reports whether a browser page from the request's Origin
// may connect.
func (s *Server) originAllowed(r *http.Request) bool {
	return s.originOK(r.Header.Get("Origin"), r.Host)
}

// originOK reports whether a page from origin may connect to host: no
// Origin (not a browser), the server's own host, or one of
// Config.AllowedOrigins.
func (s *Server) originOK(origin, host string) bool {
	if origin == "" {
		return true
	}
	u, err := url.Parse(origin)
	if err != nil || u.Host == "" {
		return false
	}
	if strings.EqualFold(u.Host, host) {
		return true
	}
	for _, o := range s.cfg.AllowedOrigins {
		if o == "*" || strings.EqualFold(strings.TrimSuffix(o, "/"), origin) {
			return true
		}
	}
	return false
}

func (s *Server) handleWS(w http.ResponseWriter, r *http.Request) {
	if !s.originAllowed(r) {
		s.reject(rejectOrigin)
		s.log.Info("origin refused", "remote", r.RemoteAddr, "origin", r.Header.Get("Origin"))
		http.Error(w, "origin not allowed: start the server with --allowed-origins "+r.Header.Get("Origin"), http.StatusForbidden)
		return
	}
	response, subprotocol, ok := checkHandshake(w, r)
	if !ok {
		return
	}
	if n := s.conns.Add(1); n > int64(s.cfg.MaxConnections) {
		s.conns.Add(-1)
		s.reject(rejectOverCapacity)
		w.Header().Set("Retry-After", "5")
		http.Error(w, "too many connections: try again later", http.StatusServiceUnavailable)
		return
	}
	opts, err := parseConnectOptions(r.URL.Query())
	if err != nil {
		s.conns.Add(-1)
		s.reject(rejectBadCommand)
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	conn, rw, err := http.NewResponseController(w).Hijack()
	if err != nil {
		s.conns.Add(-1)
		s.log.Error("upgrade failed", "remote", r.RemoteAddr, "err", err)
		http.Error(w, "cannot upgrade this connection", http.StatusInternalServerError)
		return
	}
	// net/http's read deadlines are for the request; the session sets
	// its own.
	conn.SetDeadline(time.Time{})
	var pre []byte
	if n := rw.Reader.Buffered(); n > 0 {
		p, _ := rw.Reader.Peek(n)
		pre = bytes.Clone(p)
	}
	s.startSession(conn, pre, r.RemoteAddr, subprotocol, response, opts)
}

// startSession serves an upgraded connection: pre is what was read past
// the handshake, response the 101 still to write. It returns when the
// session ends or parks.
func (s *Server) startSession(conn net.Conn, pre []byte, remote, subprotocol string, response []byte, opts connectOptions) {
	format := protocol.Text
	if subprotocol == protocol.Subprotocol {
		format = protocol.JSON
	}
	ss := &session{
		srv: s, id: sessionID(s.nextID.Add(1)), conn: conn, format: format, remote: remote,
		sends: rate.NewLimiter(s.cfg.Rate, s.cfg.Burst),
		cmds:  rate.NewLimiter(s.cfg.Rate*5, max(s.cfg.Burst*5, s.cfg.MaxRooms)),
	}
	ss.raw = parker(conn)
	ss.fr = frameReader{r: &connReader{conn: conn, pre: pre}, max: s.cfg.MaxMessageBytes, onPing: ss.pong, onFrame: ss.alive}
	empty := ""
	ss.nickShown.Store(&empty)
	ss.nickKey.Store("")
	// The 101 response is the first thing the flusher writes, with the
	// welcome that run queues next.
	ss.queue = append(s.getItems(), item{data: response})
	if !s.addSession(ss) {
		s.conns.Add(-1)
		conn.SetWriteDeadline(time.Now().Add(s.cfg.HandshakeTimeout))
		conn.Write(append(response, closeFrame(closeGoingAway, "server shutting down")...))
		conn.Close()
		return
	}
	s.metrics.connections.Inc()
	s.metrics.connectionsTotal.WithLabelValues(format.String()).Inc()
	// The welcome runs on the goroutine that read the handshake, whose
	// stack has already grown to what it needs. When the client has
	// nothing more to say the session parks on a goroutine of its own and
	// this one returns.
	ss.run(opts) // it calls s.handlers.Done when the session ends
}

// pong answers a ping with the same payload. Pings cost a command token:
// past the limit they go unanswered.
func (ss *session) pong(payload []byte) {
	if ss.cmds.Allow() {
		ss.enqueue(appendFrame(nil, ws.OpPong, payload))
	}
}

// alive pushes the pong timeout back: any frame, a pong included, shows
// the peer is there. A closing connection keeps its short close deadline.
func (ss *session) alive() {
	ss.mu.Lock()
	closing, behindSince := ss.closing, ss.behindSince
	ss.mu.Unlock()
	if closing {
		return
	}
	deadline := time.Now().Add(ss.srv.cfg.PongTimeout)
	if !behindSince.IsZero() {
		// Behind: --max-lag decides (see overflowLocked).
		deadline = later(deadline, behindSince.Add(ss.srv.cfg.MaxLag+ss.srv.cfg.PongTimeout))
	}
	ss.conn.SetReadDeadline(deadline)
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

// logConnect is called once the nick is known.
func (ss *session) logConnect() {
	ss.srv.log.Info("connection", "remote", ss.remote, "nick", ss.nick, "format", ss.format.String())
}

func parseConnectOptions(q url.Values) (connectOptions, error) {
	o := connectOptions{nick: q.Get("nick"), epoch: q.Get("epoch")}
	for _, r := range q["room"] {
		for _, part := range strings.Split(r, ",") {
			if part = strings.TrimPrefix(strings.TrimSpace(part), "#"); part != "" {
				o.rooms = append(o.rooms, part)
			}
		}
	}
	if v := q.Get("since"); v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			return o, fmt.Errorf("since must be a message id (a whole number), not %q", v)
		}
		o.since = &n
	}
	return o, nil
}

func (s *Server) handleReady(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	if err := s.Ready(ctx); err != nil {
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprintf(w, "not ready: %v\n", err)
		return
	}
	fmt.Fprintln(w, "ready")
}

// apiError is the history API's error body.
type apiError struct {
	Error struct {
		Code    string `json:"code"`
		Message string `json:"message"`
	} `json:"error"`
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	json.NewEncoder(w).Encode(v)
}

func badParam(w http.ResponseWriter, format string, args ...any) {
	var e apiError
	e.Error.Code = "bad_param"
	e.Error.Message = fmt.Sprintf(format, args...)
	writeJSON(w, http.StatusBadRequest, e)
}

func (s *Server) handleAPIRooms(w http.ResponseWriter, r *http.Request) {
	rl, ok := s.broker.(roomLister)
	rooms := []broker.RoomInfo{}
	if ok {
		var err error
		if rooms, err = rl.Rooms(r.Context()); err != nil {
			var e apiError
			e.Error.Code = "internal"
			e.Error.Message = err.Error()
			writeJSON(w, http.StatusInternalServerError, e)
			return
		}
	}
	if rooms == nil {
		rooms = []broker.RoomInfo{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"rooms": rooms})
}

// apiMessage is a message in the history API: the message event's fields.
type apiMessage struct {
	Room   string `json:"room"`
	ID     uint64 `json:"id"`
	From   string `json:"from"`
	Text   string `json:"text"`
	TS     string `json:"ts"`
	Action bool   `json:"action,omitempty"`
}

func (s *Server) handleAPIMessages(w http.ResponseWriter, r *http.Request) {
	room := r.PathValue("room")
	if err := chat.ValidName(room); err != nil {
		badParam(w, "room name %q is invalid: it %v", room, err)
		return
	}
	q := r.URL.Query()
	var before uint64
	if v := q.Get("before"); v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil || n == 0 {
			badParam(w, "before must be a message id (a whole number above 0), not %q", v)
			return
		}
		before = n
	}
	limit := protocol.DefaultHistoryLimit
	if v := q.Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > protocol.MaxHistoryLimit {
			badParam(w, "limit must be 1-%d, not %q", protocol.MaxHistoryLimit, v)
			return
		}
		limit = n
	}
	for k := range q {
		if k != "before" && k != "limit" {
			badParam(w, "unknown parameter %q (use before and limit)", k)
			return
		}
	}
	page, err := s.broker.Read(r.Context(), broker.Query{Room: room, Backward: true, Before: before, Limit: limit})
	if err != nil {
		var e apiError
		e.Error.Code = "internal"
		e.Error.Message = err.Error()
		writeJSON(w, http.StatusInternalServerError, e)
		return
	}
	msgs := make([]apiMessage, 0, len(page.Messages))
	for _, m := range slices.Backward(page.Messages) {
		msgs = append(msgs, apiMessage{Room: m.Room, ID: m.ID, From: m.From, Text: m.Text,
			TS: m.Time.UTC().Format(protocol.TimeFormat), Action: m.Kind == chat.KindAction})
	}
	more := len(page.Messages) > 0 && page.Messages[0].ID > page.First
	writeJSON(w, http.StatusOK, map[string]any{"room": room, "messages": msgs, "more": more})
}
