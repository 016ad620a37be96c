package server

import (
	"net/http"
	"os"
	"time"

	"golang.org/x/time/rate"
)

// Config configures a Server. The zero value works: each field's comment
// gives its default. It is read once, in New, and never changes after.
type Config struct {
	// NoEcho leaves the sender out of its own broadcast.
	NoEcho bool
	// MaxMessageBytes is the largest message a client may send; larger ones
	// close the connection with 1009. Default 8 KiB.
	MaxMessageBytes int
	// Rate and Burst limit the frames a connection may send (messages and
	// commands). Default 10 per second, burst 20.
	Rate  rate.Limit
	Burst int
	// MaxRejections closes a connection with 1008 after this many
	// rate-limited frames in a row. Default 100.
	MaxRejections int
	// MaxConnections is the most open WebSocket connections; past it,
	// upgrades get HTTP 503. Default 10000.
	MaxConnections int
	// HandshakeTimeout bounds reading a request's headers, and with it the
	// WebSocket handshake. Default 5 s.
	HandshakeTimeout time.Duration
	// AllowedOrigins lists the web origins (scheme://host[:port]) whose
	// pages may connect, besides the server's own host. Clients that send
	// no Origin (terminal clients) are always allowed. "*" allows any.
	AllowedOrigins []string
	// SendQueue bounds the messages queued for one connection. When it
	// overflows the connection is resynced from the log. Default 256.
	SendQueue int
	// WriteCoalesce is the shortest time between two writes to a busy
	// connection: messages that arrive sooner wait and go out together in
	// one write (one syscall), which is most of the cost of a delivery. A
	// connection that has been quiet for this long writes at once; one
	// under sustained load (its last write carried 16 messages or more)
	// waits twice as long. Default 20 ms; negative disables it.
	WriteCoalesce time.Duration
	// MaxLag is how long a connection may stay behind (resyncing, or with a
	// write blocked) before it is closed with 1008. Default 60 s.
	MaxLag time.Duration
	// PingInterval is how often the server pings each connection. Default 20 s.
	PingInterval time.Duration
	// PongTimeout closes a connection that sent nothing (no pong, no
	// frame) for this long. Default 40 s.
	PongTimeout time.Duration
	// History is how many messages a join replays. Default 50.
	History int
	// MaxRooms is how many rooms one connection may join. Default 100.
	MaxRooms int
	// Node names this server in welcome events. Default the host name.
	Node string
	// Version is sent in welcome events.
	Version string
	// Presence shares nicks, members and notices with the other nodes of
	// a cluster. Default nil: this node alone.
	Presence Presence
	// Page serves GET requests that are not WebSocket upgrades at "/" and
	// every path the server does not own. Default: a short page that says
	// how to connect.
	Page http.Handler
}

func (c Config) withDefaults() Config {
	if c.MaxMessageBytes <= 0 {
		c.MaxMessageBytes = 8 << 10
	}
	if c.Rate == 0 {
		c.Rate = 10
	}
	if c.Burst <= 0 {
		c.Burst = 20
	}
	if c.MaxRejections <= 0 {
		c.MaxRejections = 100
	}
	if c.MaxConnections <= 0 {
		c.MaxConnections = 10000
	}
	if c.HandshakeTimeout <= 0 {
		c.HandshakeTimeout = 5 * time.Second
	}
	if c.SendQueue <= 0 {
		c.SendQueue = 256
	}
	if c.WriteCoalesce == 0 {
		c.WriteCoalesce = 20 * time.Millisecond
	}
	if c.MaxLag <= 0 {
		c.MaxLag = 60 * time.Second
	}
	if c.PingInterval <= 0 {
		c.PingInterval = 20 * time.Second
	}
	if c.PongTimeout <= 0 {
		c.PongTimeout = 40 * time.Second
	}
	if c.History <= 0 {
		c.History = 50
	}
	if c.MaxRooms <= 0 {
		c.MaxRooms = 100
	}
	if c.Node == "" {
		c.Node, _ = os.Hostname()
	}
	return c
}
