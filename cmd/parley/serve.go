package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"time"

	"golang.org/x/time/rate"

	"parley/internal/broker/local"
	natsbroker "parley/internal/broker/nats"
	"parley/internal/hub"
	"parley/internal/presence"
	"parley/internal/server"
	"parley/web"
)

// serveOptions are parley serve's flags.
type serveOptions struct {
	addr            string
	db              string
	tlsCert, tlsKey string
	logLevel        string
	logFormat       string
	shutdownTimeout time.Duration
	rate            float64
	retainMessages  int
	retainAge       time.Duration
	noticeThreshold int
	nats            natsbroker.Config
	cfg             server.Config
}

func serveFlags(stderr io.Writer) (*flag.FlagSet, *serveOptions) {
	o := &serveOptions{}
	fs := flag.NewFlagSet("parley serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.addr, "addr", "127.0.0.1:8080", "address to listen on (host:port; port 0 picks a free one)")
	fs.StringVar(&o.db, "db", "parley.db", "SQLite database file for the history (\":memory:\" keeps nothing)")
	fs.BoolVar(&o.cfg.NoEcho, "no-echo", false, "leave the sender out of its own broadcast")
	fs.IntVar(&o.cfg.MaxMessageBytes, "max-message-bytes", 8<<10, "largest message a client may send; larger ones close with 1009")
	fs.Float64Var(&o.rate, "rate-limit", 10, "messages per second one connection may send (0: no limit)")
	fs.IntVar(&o.cfg.Burst, "rate-burst", 20, "messages a connection may send at once above --rate-limit")
	fs.IntVar(&o.cfg.MaxConnections, "max-connections", 10000, "most open WebSocket connections; past it upgrades get HTTP 503")
	fs.DurationVar(&o.cfg.HandshakeTimeout, "handshake-timeout", 5*time.Second, "time allowed for a request's headers and the WebSocket handshake")
	fs.Var((*listFlag)(&o.cfg.AllowedOrigins), "allowed-origins", "web origins allowed to connect besides the server's own (comma-separated, \"*\" for any)")
	fs.IntVar(&o.cfg.SendQueue, "send-queue", 256, "messages queued per connection before it is resynced from the history")
	fs.DurationVar(&o.cfg.WriteCoalesce, "write-coalesce", 20*time.Millisecond, "shortest time between two writes to a busy connection; messages arriving sooner go out together (negative: off)")
	fs.DurationVar(&o.cfg.MaxLag, "max-lag", 60*time.Second, "how long a connection may stay behind before it is closed with 1008")
	fs.DurationVar(&o.cfg.PingInterval, "ping-interval", 20*time.Second, "how often to ping each connection")
	fs.DurationVar(&o.cfg.PongTimeout, "pong-timeout", 40*time.Second, "close a connection silent for this long")
	fs.IntVar(&o.cfg.History, "history", 50, "messages a join replays")
	fs.IntVar(&o.retainMessages, "retain-messages", 100000, "messages kept per room")
	fs.DurationVar(&o.retainAge, "retain-age", 30*24*time.Hour, "how long messages are kept")
	fs.IntVar(&o.noticeThreshold, "notice-threshold", 100, "room size above which join and leave notices are not broadcast")
	fs.StringVar(&o.cfg.Node, "node", "", "this node's name, sent in welcome (default the host name)")
	fs.StringVar(&o.nats.URL, "nats", "", "run as one node of a cluster on this NATS server (nats://host:4222, comma-separated for several); default: the embedded store")
	fs.StringVar(&o.nats.Stream, "nats-stream", "PARLEY", "JetStream stream that holds every room's log")
	fs.IntVar(&o.nats.Replicas, "nats-replicas", 1, "replicas of the stream and the presence bucket (1, 3 or 5 on a NATS cluster)")
	fs.DurationVar(&o.nats.DedupeWindow, "nats-dedupe-window", 2*time.Minute, "how long a send retried with the same ref is stored once")
	fs.BoolVar(&o.nats.Wait, "nats-wait", false, "keep retrying until NATS is reachable at start, instead of failing")
	fs.StringVar(&o.tlsCert, "tls-cert", "", "TLS certificate file (PEM): serve wss:// and https://")
	fs.StringVar(&o.tlsKey, "tls-key", "", "TLS private key file (PEM)")
	fs.DurationVar(&o.shutdownTimeout, "shutdown-timeout", 10*time.Second, "time allowed for a graceful shutdown")
	fs.StringVar(&o.logLevel, "log-level", "info", "log level: debug, info, warn or error (debug logs every message)")
	fs.StringVar(&o.logFormat, "log-format", "text", "log format: text or json")
	fs.Usage = usageWithEnv(fs, stderr, "usage: parley serve [flags]\n\nRuns the parley chat server.\n\nflags (each may also be set by the environment variable in brackets):\n")
	return fs, o
}

func newLogger(w io.Writer, level, format string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level %q: want debug, info, warn or error", level)
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("--log-format %q: want text or json", format)
}

func runServe(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs, o := serveFlags(stderr)
	if err := parseFlags(fs, args, os.Getenv); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return errUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "parley serve: unexpected argument %q\n", fs.Arg(0))
		return errUsage
	}
	if (o.tlsCert == "") != (o.tlsKey == "") {
		return errors.New("--tls-cert and --tls-key go together")
	}
	log, err := newLogger(stderr, o.logLevel, o.logFormat)
	if err != nil {
		return err
	}
	if math.IsNaN(o.rate) || math.IsInf(o.rate, 0) || o.rate < 0 {
		return fmt.Errorf("--rate-limit %v: want a number of messages per second, 0 for no limit", o.rate)
	}
	o.cfg.Rate = rate.Limit(o.rate)
	if o.rate <= 0 {
		o.cfg.Rate = rate.Inf
	}
	o.cfg.Version = version
	o.cfg.Page = web.Handler()

	h := hub.New(hub.Config{Encode: server.Encode, NoticeThreshold: o.noticeThreshold, Logger: log})
	var b server.Broker
	store := o.db
	if o.nats.URL == "" {
		lb, err := local.Open(ctx, local.Config{
			Path: o.db, RetainMessages: o.retainMessages, RetainAge: o.retainAge, Logger: log,
		}, h.Deliver)
		if err != nil {
			return fmt.Errorf("cannot open the database: %w", err)
		}
		defer lb.Close()
		b = lb
	} else {
		nb, p, err := openCluster(ctx, o, h, log)
		if err != nil {
			return err
		}
		defer nb.Close()
		defer p.Close() // before the broker: it uses the broker's connection
		b, store = nb, o.nats.URL
		o.cfg.Presence = p
		o.cfg.Node = nb.Node()
	}

	ln, err := server.Listen(ctx, o.addr)
	if err != nil {
		return fmt.Errorf("cannot listen: %w", err)
	}
	srv := server.New(o.cfg, h, b, log)
	scheme := "ws"
	if o.tlsCert != "" {
		scheme = "wss"
	}
	addr := ln.Addr().String()
	log.Info("parley listening", "addr", addr, "url", scheme+"://"+addr+"/", "store", store,
		"connect", fmt.Sprintf("websocat %s://%s/  or  parley chat %s://%s/", scheme, addr, scheme, addr))

	serveErr := make(chan error, 1)
	go func() {
		if o.tlsCert != "" {
			serveErr <- srv.ServeTLS(ln, o.tlsCert, o.tlsKey)
		} else {
			serveErr <- srv.Serve(ln)
		}
	}()
	select {
	case err := <-serveErr:
		srv.Close()
		return err
	case <-ctx.Done():
	}
	log.Info("shutting down", "timeout", o.shutdownTimeout)
	sctx, cancel := context.WithTimeout(context.Background(), o.shutdownTimeout)
	defer cancel()
	err = srv.Shutdown(sctx)
	<-serveErr
	if err != nil {
		log.Warn("shutdown did not finish in time; remaining connections were closed", "err", err)
	}
	log.Info("stopped")
	return nil
}

// openCluster connects this node to a NATS cluster: the room log and the
// presence shared with the other nodes.
func openCluster(ctx context.Context, o *serveOptions, h *hub.Hub, log *slog.Logger) (*natsbroker.Broker, *presence.Presence, error) {
	cfg := o.nats
	cfg.RetainMessages, cfg.RetainAge, cfg.Node, cfg.Logger = o.retainMessages, o.retainAge, o.cfg.Node, log
	if cfg.Node != "" {
		if err := natsbroker.ValidNode(cfg.Node); err != nil {
			return nil, nil, fmt.Errorf("--node %q: %w", cfg.Node, err)
		}
	}
	nb, err := natsbroker.Open(ctx, cfg, h.Deliver)
	if err != nil {
		return nil, nil, fmt.Errorf("cannot use NATS at %s: %w", cfg.URL, err)
	}
	p, err := presence.Open(ctx, presence.Config{
		Conn: nb.Conn(), Node: nb.Node(), Bucket: cfg.Stream + "_presence", Replicas: cfg.Replicas, Logger: log,
	}, server.PresenceEvent(h))
	if err != nil {
		nb.Close()
		return nil, nil, fmt.Errorf("cannot set up presence on NATS: %w", err)
	}
	return nb, p, nil
}
