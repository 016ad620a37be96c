// Package natstest runs real NATS servers with JetStream inside a test
// process: one server, or a cluster of three routed on 127.0.0.1. Stores
// live in t.TempDir(); every server is shut down at test cleanup. A server
// can be stopped and started again on the same port and store, to test what
// clients do while NATS is away.
package natstest

import (
	"fmt"
	"net"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats-server/v2/server"
)

// Server is one embedded nats-server.
type Server struct {
	t    testing.TB
	opts server.Options // ports fixed at first start, so restarts keep them

	mu  sync.Mutex // guards srv
	srv *server.Server
}

// Start runs a single JetStream server on 127.0.0.1 (a free port) with its
// store in t.TempDir().
func Start(t testing.TB) *Server {
	t.Helper()
	s := &Server{t: t, opts: baseOptions(t, "n1")}
	s.opts.Port = freePort(t)
	s.start()
	t.Cleanup(s.Stop)
	return s
}

// StartCluster runs n JetStream servers routed to each other as one
// cluster and waits until JetStream has a meta leader that sees them all.
func StartCluster(t testing.TB, n int) []*Server {
	t.Helper()
	clusterPorts := make([]int, n)
	var routes []*url.URL
	for i := range clusterPorts {
		clusterPorts[i] = freePort(t)
		routes = append(routes, &url.URL{Scheme: "nats-route", Host: fmt.Sprintf("127.0.0.1:%d", clusterPorts[i])})
	}
	servers := make([]*Server, n)
	for i := range servers {
		s := &Server{t: t, opts: baseOptions(t, fmt.Sprintf("n%d", i+1))}
		s.opts.Port = freePort(t)
		s.opts.Cluster = server.ClusterOpts{Name: "parley-test", Host: "127.0.0.1", Port: clusterPorts[i]}
		s.opts.Routes = routes
		servers[i] = s
	}
	// Start them side by side: JetStream in each waits for its peers.
	var wg sync.WaitGroup
	for _, s := range servers {
		wg.Go(s.start)
	}
	wg.Wait()
	for _, s := range servers {
		t.Cleanup(s.Stop)
	}
	deadline := time.Now().Add(20 * time.Second)
	for !clusterReady(servers) {
		if time.Now().After(deadline) {
			t.Fatal("natstest: JetStream cluster not formed after 20s")
		}
		time.Sleep(20 * time.Millisecond)
	}
	return servers
}

// clusterReady reports whether JetStream has a meta leader that sees every
// server online: before that, placing a stream with replicas = n fails
// with "no suitable peers".
func clusterReady(servers []*Server) bool {
	for _, s := range servers {
		if srv := s.server(); srv != nil && srv.JetStreamIsLeader() {
			return len(srv.JetStreamClusterPeers()) == len(servers)
		}
	}
	return false
}

func baseOptions(t testing.TB, name string) server.Options {
	return server.Options{
		ServerName: name,
		Host:       "127.0.0.1",
		JetStream:  true,
		StoreDir:   t.TempDir(),
		NoLog:      true,
		NoSigs:     true,
		// Small limits keep test servers light on the shared machine.
		JetStreamMaxMemory: 64 << 20,
		JetStreamMaxStore:  256 << 20,
	}
}

func (s *Server) start() {
	s.t.Helper()
	opts := s.opts // NewServer keeps a pointer; give each run its own copy
	srv, err := server.NewServer(&opts)
	if err != nil {
		s.t.Errorf("natstest: %v", err)
		return
	}
	srv.Start()
	if !srv.ReadyForConnections(10 * time.Second) {
		srv.Shutdown()
		srv.WaitForShutdown()
		s.t.Errorf("natstest: server %s not ready", s.opts.ServerName)
		return
	}
	s.mu.Lock()
	s.srv = srv
	s.mu.Unlock()
}

func (s *Server) server() *server.Server {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.srv
}

// URL is the server's client URL, stable across restarts.
func (s *Server) URL() string { return fmt.Sprintf("nats://127.0.0.1:%d", s.opts.Port) }

// Name is the server's name (n1, n2, ...).
func (s *Server) Name() string { return s.opts.ServerName }

// Running reports whether the server is up.
func (s *Server) Running() bool { return s.server() != nil }

// Stop shuts the server down and waits for it. Stopping a stopped server
// does nothing.
func (s *Server) Stop() {
	s.mu.Lock()
	srv := s.srv
	s.srv = nil
	s.mu.Unlock()
	if srv != nil {
		srv.Shutdown()
		srv.WaitForShutdown()
	}
}

// Restart starts a stopped server again with the same port and store.
func (s *Server) Restart() {
	s.t.Helper()
	if s.Running() {
		s.t.Fatal("natstest: Restart of a running server")
	}
	s.start()
}

// URLs joins the servers' client URLs with commas, as nats.Connect takes.
func URLs(servers []*Server) string {
	urls := make([]string, len(servers))
	for i, s := range servers {
		urls[i] = s.URL()
	}
	return strings.Join(urls, ",")
}

// freePort finds a free TCP port on 127.0.0.1. Another process could take
// it before the server binds it; on a test machine that is rare enough.
func freePort(t testing.TB) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("natstest: %v", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}
