package bench

import (
	"fmt"
	"io"
	"time"
)

// Config describes one benchmark run. The zero value is a fan-out run with
// the defaults given on each field.
type Config struct {
	// URL is the server's WebSocket URL (ws://, or http:// mapped to ws://).
	// Default ws://127.0.0.1:8080/.
	URL string
	// Text drives the server in plain text: each publisher frame is a
	// payload, each line a subscriber receives may hold one (parley's text
	// format "NICK: TEXT", or any server that broadcasts what it gets, such
	// as gorilla's chat example). Default: parley's JSON format.
	Text bool

	// Subs is the number of subscribers. Default 1000.
	Subs int
	// Pubs is the number of publishers. Default 4.
	Pubs int
	// Rooms spreads subscribers and publishers over rooms bench-0 ...
	// bench-(Rooms-1), round-robin. Default 1.
	Rooms int
	// Rate is the total number of messages per second over all
	// publishers. 0 (the default) sends as fast as delivery allows, with
	// at most Window messages per publisher in flight.
	Rate float64
	// Window bounds, when Rate is 0, how many of a publisher's messages
	// may be sent and not yet delivered to every subscriber of its room.
	// Default 16.
	Window int
	// Size is each payload's size in bytes, at least MinSize. Default 64.
	Size int
	// Duration is how long publishers send, or idle connections are
	// held. Default 10s.
	Duration time.Duration
	// Drain is how long to keep waiting for deliveries after the last
	// send while they still make progress; whatever has not arrived by then
	// is lost. Default 5s.
	Drain time.Duration

	// Idle, when positive, selects the idle workload: open Idle
	// connections that send nothing and hold them for Duration.
	Idle int
	// ConnectConcurrency is how many connections are being opened at
	// once. Default 100.
	ConnectConcurrency int
	// ConnectTimeout bounds each connection's dial and handshake, and the
	// wait for every subscriber to receive from every publisher before
	// the measurement starts. Default 30s.
	ConnectTimeout time.Duration

	// ServerPID, when positive, is the server's process id on this
	// machine: the result then reports its CPU time and memory.
	ServerPID int

	// Progress receives a live progress line every second, rewritten in
	// place with \r. Nil: no progress.
	Progress io.Writer
	// ProgressLines writes each progress update on a line of its own
	// instead, for a Progress that is a log file rather than a terminal.
	ProgressLines bool
}

func (c Config) withDefaults() (Config, error) {
	if c.URL == "" {
		c.URL = "ws://127.0.0.1:8080/"
	}
	def := func(p *int, v int) {
		if *p == 0 {
			*p = v
		}
	}
	def(&c.Subs, 1000)
	def(&c.Pubs, 4)
	def(&c.Rooms, 1)
	def(&c.Window, 16)
	def(&c.Size, 64)
	def(&c.ConnectConcurrency, 100)
	if c.Duration == 0 {
		c.Duration = 10 * time.Second
	}
	if c.Drain == 0 {
		c.Drain = 5 * time.Second
	}
	if c.ConnectTimeout == 0 {
		c.ConnectTimeout = 30 * time.Second
	}
	switch {
	case c.Subs < 0, c.Pubs < 0, c.Rooms < 0, c.Window < 0, c.Idle < 0, c.ConnectConcurrency < 0:
		return c, fmt.Errorf("counts must not be negative")
	case c.Rate < 0:
		return c, fmt.Errorf("rate must not be negative")
	case c.Duration < 0 || c.Drain < 0 || c.ConnectTimeout < 0:
		return c, fmt.Errorf("durations must not be negative")
	case c.Size < MinSize:
		return c, fmt.Errorf("size %d is too small: a payload needs at least %d bytes", c.Size, MinSize)
	case c.Pubs >= maxPubs:
		return c, fmt.Errorf("at most %d publishers", maxPubs-1)
	case c.Text && c.Rooms > 1:
		// Parley's text format could join rooms with ?room=, but servers
		// such as gorilla's example have one room; keep --text honest.
		return c, fmt.Errorf("--text supports one room")
	}
	return c, nil
}
