// Package server is parley's network edge: HTTP on one port, WebSocket
// upgrades, one session per connection (nick, rooms, limits, its queue and
// writer), the history API, health, readiness and metrics, and shutdown.
//
// Concurrency: each connection has a reader goroutine that owns it (the
// HTTP handler that upgraded it) and at most one writer goroutine, started
// on demand when there is something to write (see writer.go). The Server
// tracks every session so that Shutdown can close them with 1001 and wait
// for them; net/http does not track hijacked connections.
package server

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gobwas/ws"

	"parley/internal/broker"
	"parley/internal/chat"
	"parley/internal/hub"
)

// Broker is the room log the server stores messages in and replays them
// from. broker/local and broker/nats implement it.
type Broker interface {
	// Append stores m and returns it with its id and time. A repeated
	// (From, Ref) returns the original. Errors wrap broker.ErrNotStored.
	Append(ctx context.Context, m chat.Message) (chat.Message, error)
	// Read returns a page of a room's log.
	Read(ctx context.Context, q broker.Query) (broker.Page, error)
	// Epoch identifies the log: ids of another epoch mean nothing here.
	Epoch() string
}

// asyncAppender is a Broker that can keep several appends in flight,
// answered in order (broker/local).
type asyncAppender interface {
	AppendAsync(m chat.Message, then func(chat.Message, error))
}

// readier is a Broker that can tell whether it can store messages now.
type readier interface {
	Ready(ctx context.Context) error
}

// roomLister is a Broker that can list its rooms, for the history API.
type roomLister interface {
	Rooms(ctx context.Context) ([]broker.RoomInfo, error)
}

// Server is a parley server. Make it with New; serve with Serve or
// ServeTLS; stop with Shutdown.
type Server struct {
	cfg     Config // immutable after New
	hub     *hub.Hub
	broker  Broker
	async   asyncAppender // the broker, when it can pipeline appends; else nil
	log     *slog.Logger
	metrics *metrics
	http    *http.Server
	mux     *http.ServeMux

	baseCtx context.Context // canceled by Shutdown once sessions are gone
	cancel  context.CancelFunc

	conns  atomic.Int64  // open WebSocket connections
	nextID atomic.Uint64 // session ids
	roster roster        // immutable after New

	mu       sync.Mutex
	sessions map[*session]struct{} // guarded by mu
	sniffing map[net.Conn]struct{} // guarded by mu: connections whose request is being read
	stopping bool                  // guarded by mu

	sweeper *sweeper  // writes busy connections' coalesced live frames
	items   sync.Pool // *[]item: sessions' queues while they have something to write
	bufs    sync.Pool // *net.Buffers: the flushers' write vectors

	handlers   sync.WaitGroup // sessions' run
	pingerStop chan struct{}
	pingerDone chan struct{}
	stopOnce   sync.Once
}

// pingFrame is the server's ping; shared by every connection.
var pingFrame = appendFrame(nil, ws.OpPing, nil)

// New makes a server that fans out through h and stores in b. It starts
// the pinger, which Shutdown stops.
func New(cfg Config, h *hub.Hub, b Broker, log *slog.Logger) *Server {
	cfg = cfg.withDefaults()
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Server{
		cfg: cfg, hub: h, broker: b, log: log,
		sessions:   make(map[*session]struct{}),
		sniffing:   make(map[net.Conn]struct{}),
		pingerStop: make(chan struct{}),
		pingerDone: make(chan struct{}),
	}
	s.baseCtx, s.cancel = context.WithCancel(context.Background())
	s.async, _ = b.(asyncAppender)
	s.roster = localRoster{hub: h}
	if cfg.Presence != nil {
		s.roster = clusterRoster{p: cfg.Presence, srv: s}
	}
	s.metrics = newMetrics(func() float64 { return float64(h.RoomCount()) })
	s.mux = s.routes()
	s.http = &http.Server{
		Handler:           s.mux,
		ReadHeaderTimeout: cfg.HandshakeTimeout,
		IdleTimeout:       2 * time.Minute,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelDebug),
	}
	s.sweeper = newSweeper()
	go s.pinger()
	return s
}

// Handler returns the server's HTTP handler: WebSocket at / and /ws, the
// page, the API, health and metrics.
func (s *Server) Handler() http.Handler { return s.mux }

// Listen opens the TCP listener for addr that Serve expects. Accepted
// connections get no kernel keepalive: parley pings every client and drops
// one that stops answering (Config.PongTimeout), which keeps idle paths
// through NATs and load balancers open as well, and saves four setsockopt
// calls on every connection.
func Listen(ctx context.Context, addr string) (net.Listener, error) {
	lc := net.ListenConfig{KeepAlive: -1}
	return lc.Listen(ctx, "tcp", addr)
}

// Serve accepts connections on ln until Shutdown. It returns nil after a
// Shutdown.
func (s *Server) Serve(ln net.Listener) error {
	err := s.http.Serve(s.sniffer(ln))
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// ServeTLS is Serve with TLS: wss:// and https:// on the same port.
func (s *Server) ServeTLS(ln net.Listener, certFile, keyFile string) error {
	err := s.http.ServeTLS(ln, certFile, keyFile)
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// Shutdown stops accepting, closes every WebSocket with 1001 (going away),
// and waits for the sessions to end or ctx to expire, in which case the
// remaining connections are closed at once. The broker is the caller's to
// close, after Shutdown.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	s.stopping = true
	sessions := make([]*session, 0, len(s.sessions))
	for ss := range s.sessions {
		sessions = append(sessions, ss)
	}
	for c := range s.sniffing {
		c.Close() // a request not read yet: the client can try again
	}
	s.mu.Unlock()

	httpDone := make(chan error, 1)
	go func() { httpDone <- s.http.Shutdown(ctx) }()
	for _, ss := range sessions {
		ss.sendClose(closeGoingAway, "server shutting down")
	}
	done := make(chan struct{})
	go func() { s.handlers.Wait(); close(done) }()
	var err error
	select {
	case <-done:
	case <-ctx.Done():
		err = ctx.Err()
		s.mu.Lock()
		for ss := range s.sessions {
			ss.conn.Close()
		}
		s.mu.Unlock()
		<-done
	}
	if herr := <-httpDone; err == nil && herr != nil && !errors.Is(herr, context.DeadlineExceeded) {
		err = herr
	}
	s.stopOnce.Do(func() {
		close(s.pingerStop)
		<-s.pingerDone
		s.sweeper.close()
	})
	s.cancel()
	return err
}

// Close stops everything at once, without the 1001 handshake.
func (s *Server) Close() error {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	s.http.Close()
	_ = s.Shutdown(ctx)
	return nil
}

func (s *Server) pinger() {
	defer close(s.pingerDone)
	t := time.NewTicker(s.cfg.PingInterval)
	defer t.Stop()
	var batch []*session
	for {
		select {
		case <-s.pingerStop:
			return
		case <-t.C:
		}
		batch = batch[:0]
		s.mu.Lock()
		for ss := range s.sessions {
			batch = append(batch, ss)
		}
		s.mu.Unlock()
		for _, ss := range batch {
			ss.enqueue(pingFrame)
		}
		clear(batch)
	}
}

func (s *Server) addSession(ss *session) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.stopping {
		return false
	}
	s.sessions[ss] = struct{}{}
	s.handlers.Add(1)
	return true
}

func (s *Server) removeSession(ss *session) {
	s.mu.Lock()
	delete(s.sessions, ss)
	s.mu.Unlock()
	s.conns.Add(-1)
	s.metrics.connections.Dec()
}

func (s *Server) reject(reason string) {
	s.metrics.rejected.WithLabelValues(reason).Inc()
}

// Ready reports whether the server can take messages: it is not shutting
// down, and the broker can store.
func (s *Server) Ready(ctx context.Context) error {
	s.mu.Lock()
	stopping := s.stopping
	s.mu.Unlock()
	if stopping {
		return errors.New("shutting down")
	}
	if r, ok := s.broker.(readier); ok {
		return r.Ready(ctx)
	}
	return nil
}
