package client

import (
	"time"

	"parley/internal/protocol"
)

// Event types the client makes itself. They are never sent by a server;
// every other Type is a server event (protocol.Ev*).
const (
	// EvState: the connection's state changed; see Event.State.
	EvState = "state"
	// EvLine: a text-format frame (Options.Format is protocol.Text): one
	// line in Text, or with Options.Raw the whole frame, unchanged.
	EvLine = "line"
)

// State is the state of a client's connection.
type State uint8

const (
	// StateConnected: connected, welcomed (JSON) and rooms being rejoined.
	StateConnected State = iota + 1
	// StateReconnecting: the connection dropped; the next attempt is in
	// Event.Delay (Event.Attempt counts from 1, Event.Err says why).
	StateReconnecting
	// StateClosed: the client is done (Close was called, or the connection
	// ended for good: Event.Err says why, nil after Close). It is the last
	// event before Events is closed.
	StateClosed
)

func (s State) String() string {
	switch s {
	case StateConnected:
		return "connected"
	case StateReconnecting:
		return "reconnecting"
	case StateClosed:
		return "closed"
	}
	return "unknown"
}

// Event is what Events delivers: a server event decoded from JSON (its
// fields are protocol.Event's), a text-format line, or a state change.
type Event struct {
	protocol.Event

	// Raw is the frame as received, unchanged (nil for EvState). For --json
	// style tools that pass events through.
	Raw []byte

	// For EvState:
	State   State
	Attempt int           // StateReconnecting: 1, 2, ...
	Delay   time.Duration // StateReconnecting: the wait before the attempt
	Err     error         // why the connection ended, or why it failed
}
