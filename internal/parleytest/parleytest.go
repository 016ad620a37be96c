// Package parleytest runs real parley nodes for tests: a hub, a server and
// a local SQLite broker on a file (or, WithNATS, the nats broker and
// cluster presence), listening on 127.0.0.1. Nothing is mocked; a Node is
// what `parley serve` runs, in-process.
package parleytest

import (
	"context"
	"errors"
	"net"
	"net/http"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"parley/internal/broker/local"
	natsbroker "parley/internal/broker/nats"
	"parley/internal/hub"
	"parley/internal/presence"
	"parley/internal/server"
	"parley/web"
)

// Node is a running parley server.
type Node struct {
	// Addr is 127.0.0.1:port; it stays the same across Restart.
	Addr string
	// URL is ws://Addr/.
	URL string
	// HTTP is http://Addr.
	HTTP string
	// DB is the database file.
	DB string

	t    testing.TB
	opts options

	mu       sync.Mutex
	srv      *server.Server
	broker   *local.Broker      // local nodes
	nb       *natsbroker.Broker // cluster nodes
	presence *presence.Presence // cluster nodes
	done     chan error
}

type options struct {
	db     string
	config func(*server.Config)
	local  func(*local.Config)
	hub    func(*hub.Config)
	addr   string
	nats   string
	node   string
}

// Option changes how Start runs a node.
type Option func(*options)

// WithConfig edits the server's Config before the node starts.
func WithConfig(f func(*server.Config)) Option { return func(o *options) { o.config = f } }

// WithLocal edits the local broker's Config before the node starts.
func WithLocal(f func(*local.Config)) Option { return func(o *options) { o.local = f } }

// WithHub edits the hub's Config before the node starts.
func WithHub(f func(*hub.Config)) Option { return func(o *options) { o.hub = f } }

// WithDB sets the database path (default: a file in t.TempDir()).
func WithDB(path string) Option { return func(o *options) { o.db = path } }

// WithNATS makes the node one node of a cluster on the NATS server(s) at
// url, with the nats broker and cluster presence instead of SQLite. name
// is the node's name, unique in the cluster.
func WithNATS(url, name string) Option {
	return func(o *options) { o.nats, o.node = url, name }
}

// WithAddr sets the listen address (default 127.0.0.1:0).
func WithAddr(addr string) Option { return func(o *options) { o.addr = addr } }

// Start runs a node and stops it when the test ends.
func Start(t testing.TB, opts ...Option) *Node {
	t.Helper()
	var o options
	for _, f := range opts {
		f(&o)
	}
	if o.db == "" {
		o.db = filepath.Join(t.TempDir(), "parley.db")
	}
	if o.addr == "" {
		o.addr = "127.0.0.1:0"
	}
	n := &Node{t: t, opts: o, DB: o.db}
	if err := n.start(o.addr); err != nil {
		t.Fatalf("parleytest: start: %v", err)
	}
	t.Cleanup(n.Stop)
	return n
}

func (n *Node) start(addr string) error {
	var ln net.Listener
	var err error
	// The port of a node that just stopped may take a moment to free.
	for i := 0; i < 50; i++ {
		if ln, err = server.Listen(context.Background(), addr); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		return err
	}
	h := hub.New(n.hubConfig())
	cfg := server.Config{Page: web.Handler(), Version: "test", Node: "test"}
	var (
		b  server.Broker
		lb *local.Broker
		nb *natsbroker.Broker
		pr *presence.Presence
	)
	if n.opts.nats == "" {
		lc := local.Config{Path: n.opts.db}
		if n.opts.local != nil {
			n.opts.local(&lc)
		}
		if lb, err = local.Open(context.Background(), lc, h.Deliver); err != nil {
			ln.Close()
			return err
		}
		b = lb
	} else {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		nb, err = natsbroker.Open(ctx, natsbroker.Config{URL: n.opts.nats, Node: n.opts.node}, h.Deliver)
		if err != nil {
			ln.Close()
			return err
		}
		pr, err = presence.Open(ctx, presence.Config{Conn: nb.Conn(), Node: nb.Node()}, server.PresenceEvent(h))
		if err != nil {
			nb.Close()
			ln.Close()
			return err
		}
		b = nb
		cfg.Presence, cfg.Node = pr, nb.Node()
	}
	if n.opts.config != nil {
		n.opts.config(&cfg)
	}
	srv := server.New(cfg, h, b, nil)
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	n.mu.Lock()
	n.srv, n.broker, n.nb, n.presence, n.done = srv, lb, nb, pr, done
	n.Addr = ln.Addr().String()
	n.URL = "ws://" + n.Addr + "/"
	n.HTTP = "http://" + n.Addr
	n.mu.Unlock()
	return nil
}

func (n *Node) hubConfig() hub.Config {
	c := hub.Config{Encode: server.Encode}
	if n.opts.hub != nil {
		n.opts.hub(&c)
	}
	return c
}

// Server returns the running server (nil when stopped).
func (n *Node) Server() *server.Server {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.srv
}

// Broker returns the running node's local broker (nil when stopped or on
// a cluster node).
func (n *Node) Broker() *local.Broker {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.broker
}

// Stop shuts the node down gracefully (clients get 1001). It is safe to
// call more than once.
func (n *Node) Stop() {
	n.stop(false)
}

// Crash stops the node as a killed process would look to others: clients
// lose their connections without a close frame, and a cluster node's
// presence is not cleaned up (the other nodes must notice it is gone).
// Restart brings it back.
func (n *Node) Crash() {
	n.stop(true)
}

func (n *Node) stop(crash bool) {
	n.mu.Lock()
	srv, lb, nb, pr, done := n.srv, n.broker, n.nb, n.presence, n.done
	n.srv, n.broker, n.nb, n.presence = nil, nil, nil, nil
	n.mu.Unlock()
	if srv == nil {
		return
	}
	if crash {
		// Cut NATS first, so that nothing the node does while dying
		// (leaves, releases) reaches the cluster.
		if nb != nil {
			nb.Conn().Close()
		}
		srv.Close()
	} else {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			n.t.Errorf("parleytest: shutdown: %v", err)
		}
	}
	if err := <-done; err != nil && !errors.Is(err, http.ErrServerClosed) {
		n.t.Errorf("parleytest: serve: %v", err)
	}
	if pr != nil {
		if err := pr.Close(); err != nil && !crash {
			n.t.Errorf("parleytest: close presence: %v", err)
		}
	}
	if nb != nil {
		if err := nb.Close(); err != nil && !crash {
			n.t.Errorf("parleytest: close nats broker: %v", err)
		}
	}
	if lb != nil {
		if err := lb.Close(); err != nil {
			n.t.Errorf("parleytest: close broker: %v", err)
		}
	}
}

// Restart stops the node and starts it again on the same address and
// database.
func (n *Node) Restart() {
	n.t.Helper()
	n.Stop()
	if err := n.start(n.Addr); err != nil {
		n.t.Fatalf("parleytest: restart: %v", err)
	}
}
