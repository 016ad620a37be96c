// Package chat holds parley's domain: messages, and the rules for nicks and
// room names. It does no I/O and is safe for concurrent use (it has no state).
package chat

import (
	"errors"
	"fmt"
	"strings"
	"time"
)

// MaxNameLen is the longest nick or room name, in bytes (names are ASCII).
const MaxNameLen = 32

// DefaultRoom is the room a text-format client starts in.
const DefaultRoom = "lobby"

// Kind says what a message is. Wire values only ever grow at the end.
type Kind uint8

const (
	// KindText is an ordinary message: "alice: hi".
	KindText Kind = iota
	// KindAction is a /me action: "* alice waves".
	KindAction
)

func (k Kind) String() string {
	switch k {
	case KindText:
		return "text"
	case KindAction:
		return "action"
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// Message is one entry of a room's log. ID and Time are assigned by the
// broker when the message is appended; ID grows within a room.
type Message struct {
	Room string
	ID   uint64
	From string
	Text string
	Kind Kind
	Time time.Time
	// Ref is the sender's client reference. A broker stores a message with
	// the same (From, Ref) once; it is never shown to other clients.
	Ref string
}

// Errors returned by ValidNick and ValidRoom. They say why a name is bad.
var (
	ErrNameEmpty   = errors.New("must not be empty")
	ErrNameTooLong = fmt.Errorf("must be at most %d characters", MaxNameLen)
	ErrNameChars   = errors.New("may only contain letters, digits, '-' and '_'")
)

// ValidName reports whether s is a valid nick or room name: 1-32 ASCII
// letters, digits, '-' and '_'.
func ValidName(s string) error {
	if s == "" {
		return ErrNameEmpty
	}
	if len(s) > MaxNameLen {
		return ErrNameTooLong
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return ErrNameChars
		}
	}
	return nil
}

// FoldName returns the form of a name used to compare names: nicks and
// rooms are unique case-insensitively.
func FoldName(s string) string { return strings.ToLower(s) }

// MaxTextBytes bounds a message's text on top of the frame limit, so that a
// stored message always fits in one outgoing frame with its envelope.
const MaxTextBytes = 64 << 10
