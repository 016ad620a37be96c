// Package broker defines what every room-log implementation shares: the
// query and page types, room summaries and the errors a broker returns.
// Implementations live in broker/local (SQLite, one node) and broker/nats
// (JetStream, many nodes). The server declares the small interfaces it uses;
// every implementation satisfies them:
//
//	Append(ctx, chat.Message) (chat.Message, error) // id and time assigned; waits for durability
//	Read(ctx, Query) (Page, error)                  // history and resume
//	Epoch() string                                  // identity of the log
//	Rooms(ctx) ([]RoomInfo, error)                  // the history API
//	Ready(ctx) error                                // /readyz
//
// Delivery: a broker is given a Deliver function when it is made. It calls
// it once for every appended message, on every node, in id order within a
// room, after the message is durable and before Append returns to the
// appender on that node (local broker). Deliver must not block.
package broker

import (
	"errors"
	"time"

	"parley/internal/chat"
)

// Query selects messages from one room's log.
//
// Forward (Backward false): messages with ID > After, oldest first, at most
// Limit. Backward: the newest Limit messages with ID < Before (Before 0
// means no upper bound), still returned oldest first.
type Query struct {
	Room     string
	After    uint64
	Before   uint64
	Backward bool
	Limit    int
}

// Page is the answer to a Query.
type Page struct {
	// Messages, oldest first.
	Messages []chat.Message
	// First is the oldest id the log still holds for the room, 0 if the room
	// has no messages. A reader that asked for After+1 < First missed
	// messages: that is a gap.
	First uint64
	// Last is the newest id in the room's log, 0 if none.
	Last uint64
}

// RoomInfo summarises one room's log for the history API.
type RoomInfo struct {
	Name         string    `json:"name"`
	Messages     int64     `json:"messages"`
	LastID       uint64    `json:"last_id"`
	LastActivity time.Time `json:"last_activity"`
}

// DeliverFunc receives every appended message (see the package comment).
type DeliverFunc func(chat.Message)

// ErrNotStored wraps every append failure: the message was not stored, it
// was not delivered, and it must not be acknowledged. The wrapped error says
// why (read-only database, disk full, NATS unreachable, ...).
var ErrNotStored = errors.New("not stored")

// ErrClosed is returned by a broker's methods after Close.
var ErrClosed = errors.New("broker closed")
