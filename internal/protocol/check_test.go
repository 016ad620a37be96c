package protocol

import (
	"fmt"
	"unicode/utf8"

	"parley/internal/chat"
)

// maxErrorMessage bounds an error's message: it is for humans, and must not
// echo a whole frame back. A bad name is quoted in at most 40 bytes, which
// %q can grow four-fold (\x01).
const maxErrorMessage = 256

// fmtCommand shows a command with the value behind Since.
func fmtCommand(c Command) string {
	since := "nil"
	if c.Since != nil {
		since = fmt.Sprint(*c.Since)
	}
	return fmt.Sprintf("{Type:%q Ref:%q Room:%q Text:%.60q Action:%v Nick:%q Since:%s Epoch:%q Before:%d Limit:%d}",
		c.Type, c.Ref, c.Room, c.Text, c.Action, c.Nick, since, c.Epoch, c.Before, c.Limit)
}

var knownCodes = map[string]bool{
	CodeBadJSON: true, CodeUnknownType: true, CodeBadField: true, CodeEmptyMessage: true,
	CodeTooLong: true, CodeBadNick: true, CodeNickTaken: true, CodeBadRoom: true,
	CodeNotInRoom: true, CodeRateLimited: true, CodeNotStored: true, CodeUnknownCommand: true,
	CodeBinaryUnsupported: true, CodeTooManyRooms: true, CodeInternal: true,
}

// checkError checks what every decoder error must be: a known code, a
// short message in valid UTF-8 (the text format sends it as is), a ref that
// fits the limit.
func checkError(e *Error) error {
	switch {
	case !knownCodes[e.Code]:
		return fmt.Errorf("unknown error code %q", e.Code)
	case e.Message == "":
		return fmt.Errorf("error %s without a message", e.Code)
	case len(e.Message) > maxErrorMessage:
		return fmt.Errorf("error message of %d bytes: %.80q...", len(e.Message), e.Message)
	case !utf8.ValidString(e.Message):
		return fmt.Errorf("error message is not valid UTF-8: %q", e.Message)
	case len(e.Ref) > MaxRefBytes:
		return fmt.Errorf("error ref of %d bytes", len(e.Ref))
	case e.Room != "" && chat.ValidName(e.Room) != nil:
		return fmt.Errorf("error about an invalid room %q", e.Room)
	}
	return nil
}

// checkCommand re-validates an accepted command by the rules of
// docs/protocol.md, independently of the decoder. format says which decoder
// made it: the text format leaves out the current room and has no refs.
func checkCommand(c Command, format Format) error {
	if len(c.Ref) > MaxRefBytes {
		return fmt.Errorf("ref of %d bytes", len(c.Ref))
	}
	if format == Text && c.Ref != "" {
		return fmt.Errorf("text command with ref %q", c.Ref)
	}
	room := func(optional bool) error {
		if c.Room == "" && optional {
			return nil
		}
		if err := chat.ValidName(c.Room); err != nil {
			return fmt.Errorf("%s with room %q: %v", c.Type, c.Room, err)
		}
		return nil
	}
	switch c.Type {
	case CmdSend:
		if c.Text == "" {
			return fmt.Errorf("send with empty text")
		}
		if len(c.Text) > chat.MaxTextBytes {
			return fmt.Errorf("send with %d bytes of text", len(c.Text))
		}
		if format == Text {
			if c.Room != "" {
				return fmt.Errorf("text send with room %q", c.Room)
			}
			return nil
		}
		return room(false)
	case CmdJoin:
		return room(false)
	case CmdLeave, CmdWho:
		return room(format == Text)
	case CmdHistory:
		if c.Limit < 1 || c.Limit > MaxHistoryLimit {
			return fmt.Errorf("history with limit %d", c.Limit)
		}
		return room(false)
	case CmdNick:
		if err := chat.ValidName(c.Nick); err != nil {
			return fmt.Errorf("nick %q: %v", c.Nick, err)
		}
	case CmdRooms:
	case CmdHelp:
		if format != Text {
			return fmt.Errorf("help command in the %s format", format)
		}
	default:
		return fmt.Errorf("unknown command type %q", c.Type)
	}
	return nil
}

func errorf(format string, args ...any) error { return fmt.Errorf(format, args...) }
