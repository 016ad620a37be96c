package protocol

import (
	"bytes"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"unicode/utf8"

	"parley/internal/chat"
)

// MaxRefBytes bounds a command's ref.
const MaxRefBytes = 64

// History limits for the history command.
const (
	DefaultHistoryLimit = 50
	MaxHistoryLimit     = 500
)

// DecodeJSON decodes one JSON-format frame into a command and checks its
// fields. Names are checked for shape (chat.ValidName); whether a nick is
// free or a room is joined is the session's business.
func DecodeJSON(b []byte) (Command, *Error) {
	var c Command
	// JSON's own whitespace only: bytes.TrimSpace also drops U+0085 and
	// U+00A0, which JSON does not allow around a value.
	b = bytes.Trim(b, " \t\r\n")
	if len(b) == 0 || b[0] != '{' {
		return c, Errorf(CodeBadJSON, "a command must be a JSON object")
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if err := dec.Decode(&c); err != nil {
		// Recover the ref, so that the client can match the error.
		ref := probeRef(b)
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) {
			e := Errorf(CodeBadField, "field %q must be %s", te.Field, typeName(te.Type.Kind().String()))
			e.Ref = ref
			return Command{}, e
		}
		e := Errorf(CodeBadJSON, "malformed JSON: %s", strings.TrimPrefix(err.Error(), "json: "))
		e.Ref = ref
		return Command{}, e
	}
	// Not dec.More: it reports false before a stray ']' or '}'.
	if dec.InputOffset() != int64(len(b)) {
		e := Errorf(CodeBadJSON, "one JSON object per frame")
		e.Ref = clampRef(c.Ref)
		return Command{}, e
	}
	if len(c.Ref) > MaxRefBytes {
		return Command{}, Errorf(CodeBadField, "field \"ref\" must be at most %d bytes", MaxRefBytes)
	}
	if err := check(&c); err != nil {
		err.Ref = c.Ref
		return Command{}, err
	}
	return c, nil
}

// probeRef reads the ref of a frame that failed to decode, as far as the
// frame can be read: a frame cut short or broken after its ref still gets
// its error matched. Keys match as encoding/json matches them: case-
// insensitively, the last one wins; a ref that is not a string is none.
func probeRef(b []byte) string {
	dec := json.NewDecoder(bytes.NewReader(b))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return ""
	}
	var ref string
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			break
		}
		key, _ := tok.(string)
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			break
		}
		if strings.EqualFold(key, "ref") {
			ref = ""
			_ = json.Unmarshal(v, &ref)
		}
	}
	return clampRef(ref)
}

func clampRef(ref string) string {
	if len(ref) > MaxRefBytes {
		return ""
	}
	return ref
}

func typeName(kind string) string {
	switch kind {
	case "string":
		return "a string"
	case "bool":
		return "true or false"
	case "int", "int64", "uint64":
		return "a whole number, 0 or more"
	}
	return "a " + kind
}

// check validates the fields a command's type needs.
func check(c *Command) *Error {
	switch c.Type {
	case CmdSend:
		if err := needRoom(c); err != nil {
			return err
		}
		if c.Text == "" {
			return &Error{Code: CodeEmptyMessage, Message: "the message is empty", Room: c.Room}
		}
		if len(c.Text) > chat.MaxTextBytes {
			return &Error{Code: CodeTooLong, Message: "the message is too long", Room: c.Room}
		}
	case CmdJoin, CmdLeave, CmdWho:
		return needRoom(c)
	case CmdNick:
		if c.Nick == "" {
			return Errorf(CodeBadField, "field \"nick\" is required")
		}
		if err := chat.ValidName(c.Nick); err != nil {
			return Errorf(CodeBadNick, "nick %s is invalid: it %v", quoteShort(c.Nick), err)
		}
	case CmdRooms:
	case CmdHistory:
		if err := needRoom(c); err != nil {
			return err
		}
		if c.Limit == 0 {
			c.Limit = DefaultHistoryLimit
		}
		if c.Limit < 1 || c.Limit > MaxHistoryLimit {
			return Errorf(CodeBadField, "field \"limit\" must be 1-%d", MaxHistoryLimit)
		}
	case "":
		return Errorf(CodeUnknownType, "field \"type\" is required")
	default:
		if len(c.Type) > 32 {
			return Errorf(CodeUnknownType, "unknown command type")
		}
		return Errorf(CodeUnknownType, "unknown command type %q", c.Type)
	}
	return nil
}

func needRoom(c *Command) *Error {
	if c.Room == "" {
		return Errorf(CodeBadField, "field \"room\" is required")
	}
	if err := chat.ValidName(c.Room); err != nil {
		return &Error{Code: CodeBadRoom, Message: "room name " + quoteShort(c.Room) + " is invalid: it " + err.Error()}
	}
	return nil
}

// quoteShort quotes a name for an error message, as %q does, cut to 40
// bytes. Not json.Marshal: it shows '&', '<' and '>' to a human as \u0026,
// and a name of such characters grew six-fold.
func quoteShort(s string) string {
	return strconv.Quote(cutShort(s, 40))
}

// cutShort cuts s to at most n bytes and marks the cut. It cuts on a rune
// boundary: error messages go out in text frames, which must be valid UTF-8.
func cutShort(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "..."
}

// DecodeText decodes one text-format frame. A plain line is a send to the
// connection's current room, which the caller fills in (Room is empty). A
// line that starts with "/" is a command; "//" escapes a leading slash.
func DecodeText(line string) (Command, *Error) {
	line = strings.TrimSuffix(line, "\n")
	line = strings.TrimSuffix(line, "\r")
	if !strings.HasPrefix(line, "/") || strings.HasPrefix(line, "//") {
		if strings.HasPrefix(line, "//") {
			line = line[1:]
		}
		if strings.TrimSpace(line) == "" {
			return Command{}, Errorf(CodeEmptyMessage, "the message is empty")
		}
		if len(line) > chat.MaxTextBytes {
			return Command{}, Errorf(CodeTooLong, "the message is too long")
		}
		return Command{Type: CmdSend, Text: line}, nil
	}
	name, arg, _ := strings.Cut(line[1:], " ")
	arg = strings.TrimSpace(arg)
	name = strings.ToLower(name)
	var c Command
	named := false // a room was given, if only "#"
	switch name {
	case "nick":
		if arg == "" || strings.ContainsAny(arg, " \t") {
			return c, Errorf(CodeBadField, "usage: /nick NAME")
		}
		c = Command{Type: CmdNick, Nick: arg}
	case "join":
		if arg == "" || strings.ContainsAny(arg, " \t") {
			return c, Errorf(CodeBadField, "usage: /join ROOM")
		}
		c = Command{Type: CmdJoin, Room: strings.TrimPrefix(arg, "#")}
		named = true
	case "leave", "part":
		c = Command{Type: CmdLeave, Room: strings.TrimPrefix(arg, "#")}
		named = arg != ""
	case "who", "names":
		c = Command{Type: CmdWho, Room: strings.TrimPrefix(arg, "#")}
		named = arg != ""
	case "rooms", "list":
		c = Command{Type: CmdRooms}
	case "me":
		if arg == "" {
			return c, Errorf(CodeEmptyMessage, "usage: /me ACTION")
		}
		c = Command{Type: CmdSend, Text: arg, Action: true}
	case "help":
		return Command{Type: CmdHelp}, nil
	default:
		return c, Errorf(CodeUnknownCommand, "unknown command /%s (type /help for the list)", cutShort(name, 32))
	}
	// Rooms may be left out in the text format (the current room); when
	// given they must be valid: "/join #" names the empty room.
	if named {
		if err := chat.ValidName(c.Room); err != nil {
			return Command{}, Errorf(CodeBadRoom, "room name %s is invalid: it %v", quoteShort(c.Room), err)
		}
	}
	if c.Type == CmdNick {
		if err := chat.ValidName(c.Nick); err != nil {
			return Command{}, Errorf(CodeBadNick, "nick %s is invalid: it %v", quoteShort(c.Nick), err)
		}
	}
	if len(c.Text) > chat.MaxTextBytes {
		return Command{}, Errorf(CodeTooLong, "the message is too long")
	}
	return c, nil
}
