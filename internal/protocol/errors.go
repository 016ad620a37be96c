package protocol

import "fmt"

// Error codes sent in error events. Stable: clients match on them. Only
// ever add at the end.
const (
	CodeBadJSON           = "bad_json"
	CodeUnknownType       = "unknown_type"
	CodeBadField          = "bad_field"
	CodeEmptyMessage      = "empty_message"
	CodeTooLong           = "too_long"
	CodeBadNick           = "bad_nick"
	CodeNickTaken         = "nick_taken"
	CodeBadRoom           = "bad_room"
	CodeNotInRoom         = "not_in_room"
	CodeRateLimited       = "rate_limited"
	CodeNotStored         = "not_stored"
	CodeUnknownCommand    = "unknown_command"
	CodeBinaryUnsupported = "binary_unsupported"
	CodeTooManyRooms      = "too_many_rooms"
	CodeInternal          = "internal"
)

// Error is a command that cannot be carried out, as sent to the client in
// an error event.
type Error struct {
	Code    string
	Message string
	// Ref is the command's ref when it could be read.
	Ref string
	// Room is the room the error is about, if any.
	Room string
}

func (e *Error) Error() string { return e.Code + ": " + e.Message }

// Errorf makes an *Error with a formatted message.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// Event returns the error event that reports e.
func (e *Error) Event() Event {
	return Event{Type: EvError, Code: e.Code, Message: e.Message, Ref: e.Ref, Room: e.Room}
}
