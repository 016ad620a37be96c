package protocol

import "time"

// Format is a wire format, chosen in the WebSocket handshake.
type Format uint8

const (
	// Text is the plain format: one line per event, frames are messages
	// or /commands. It is what a client gets without a subprotocol.
	Text Format = iota
	// JSON is the parley.v1 subprotocol: one JSON object per frame.
	JSON
	numFormats
)

// NumFormats is the number of formats, for arrays indexed by Format.
const NumFormats = int(numFormats)

// Subprotocol is the WebSocket subprotocol that selects the JSON format.
const Subprotocol = "parley.v1"

func (f Format) String() string {
	switch f {
	case Text:
		return "text"
	case JSON:
		return "json"
	}
	return "unknown"
}

// Command types a client sends. Wire values only ever grow at the end.
const (
	CmdSend    = "send"
	CmdJoin    = "join"
	CmdLeave   = "leave"
	CmdNick    = "nick"
	CmdWho     = "who"
	CmdRooms   = "rooms"
	CmdHistory = "history"
	CmdHelp    = "help" // text format only
)

// Command is one decoded client command, in either format. Fields a command
// does not use are zero.
type Command struct {
	Type   string  `json:"type"`
	Ref    string  `json:"ref,omitempty"`
	Room   string  `json:"room,omitempty"`
	Text   string  `json:"text,omitempty"`
	Action bool    `json:"action,omitempty"`
	Nick   string  `json:"nick,omitempty"`
	Since  *uint64 `json:"since,omitempty"`
	Epoch  string  `json:"epoch,omitempty"`
	Before uint64  `json:"before,omitempty"`
	Limit  int     `json:"limit,omitempty"`
}

// Event types the server sends. Wire values only ever grow at the end.
const (
	EvWelcome = "welcome"
	EvAck     = "ack"
	EvMessage = "message"
	EvJoin    = "join"
	EvLeave   = "leave"
	EvNick    = "nick"
	EvWho     = "who"
	EvRooms   = "rooms"
	EvHistory = "history"
	EvGap     = "gap"
	EvReset   = "reset"
	EvError   = "error"
	EvHelp    = "help" // text format only: the /help text
)

// Event is one server event. Encoders write only the fields its type uses.
// It doubles as the client's decoded form of an event.
type Event struct {
	Type string `json:"type"`
	Ref  string `json:"ref,omitempty"`
	Room string `json:"room,omitempty"`

	// message
	ID      uint64    `json:"id,omitempty"`
	From    string    `json:"from,omitempty"`
	Text    string    `json:"text,omitempty"`
	TS      time.Time `json:"ts,omitzero"`
	Action  bool      `json:"action,omitempty"`
	History bool      `json:"history,omitempty"`

	// welcome, join, leave, nick
	Nick    string  `json:"nick,omitempty"`
	Old     string  `json:"old,omitempty"`
	Epoch   string  `json:"epoch,omitempty"`
	Server  string  `json:"server,omitempty"`
	Version string  `json:"version,omitempty"`
	Node    string  `json:"node,omitempty"`
	Limits  *Limits `json:"limits,omitempty"`

	// who, rooms, history
	Members  []string   `json:"members,omitempty"`
	Rooms    []RoomInfo `json:"rooms,omitempty"`
	Messages []Event    `json:"messages,omitempty"`
	More     bool       `json:"more,omitempty"`

	// gap
	First uint64 `json:"first,omitempty"`
	Last  uint64 `json:"last,omitempty"`

	// error
	Code    string `json:"code,omitempty"`
	Message string `json:"message,omitempty"`
}

// Limits are the server's limits, sent in welcome.
type Limits struct {
	MaxMessageBytes int     `json:"max_message_bytes"`
	Rate            float64 `json:"rate"`
	Burst           int     `json:"burst"`
	History         int     `json:"history"`
}

// RoomInfo is one entry of a rooms event.
type RoomInfo struct {
	Name    string `json:"name"`
	Members int    `json:"members"`
}
