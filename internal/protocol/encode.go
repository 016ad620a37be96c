package protocol

import (
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"parley/internal/chat"
)

// TimeFormat is how times go on the wire: RFC 3339, UTC, milliseconds.
const TimeFormat = "2006-01-02T15:04:05.000Z07:00"

// MessageEvent returns the message event for a stored message.
func MessageEvent(m *chat.Message, history bool) Event {
	return Event{
		Type: EvMessage, Room: m.Room, ID: m.ID, From: m.From, Text: m.Text,
		TS: m.Time, Action: m.Kind == chat.KindAction, History: history,
	}
}

// AppendJSON appends ev as one JSON object. Fields are written in a fixed
// order and only when set, except the lists of who, rooms and history,
// which are always present.
func AppendJSON(b []byte, ev *Event) []byte {
	b = append(b, `{"type":`...)
	b = appendString(b, ev.Type)
	if ev.Ref != "" {
		b = append(b, `,"ref":`...)
		b = appendString(b, ev.Ref)
	}
	if ev.Room != "" {
		b = append(b, `,"room":`...)
		b = appendString(b, ev.Room)
	}
	if ev.ID != 0 {
		b = append(b, `,"id":`...)
		b = strconv.AppendUint(b, ev.ID, 10)
	}
	if ev.From != "" {
		b = append(b, `,"from":`...)
		b = appendString(b, ev.From)
	}
	if ev.Text != "" || ev.Type == EvMessage {
		b = append(b, `,"text":`...)
		b = appendString(b, ev.Text)
	}
	if !ev.TS.IsZero() {
		b = append(b, `,"ts":"`...)
		b = ev.TS.UTC().AppendFormat(b, TimeFormat)
		b = append(b, '"')
	}
	if ev.Action {
		b = append(b, `,"action":true`...)
	}
	if ev.History {
		b = append(b, `,"history":true`...)
	}
	if ev.Old != "" {
		b = append(b, `,"old":`...)
		b = appendString(b, ev.Old)
	}
	if ev.Nick != "" {
		b = append(b, `,"nick":`...)
		b = appendString(b, ev.Nick)
	}
	if ev.Epoch != "" {
		b = append(b, `,"epoch":`...)
		b = appendString(b, ev.Epoch)
	}
	if ev.Server != "" {
		b = append(b, `,"server":`...)
		b = appendString(b, ev.Server)
	}
	if ev.Version != "" {
		b = append(b, `,"version":`...)
		b = appendString(b, ev.Version)
	}
	if ev.Node != "" {
		b = append(b, `,"node":`...)
		b = appendString(b, ev.Node)
	}
	if l := ev.Limits; l != nil {
		b = append(b, `,"limits":{"max_message_bytes":`...)
		b = strconv.AppendInt(b, int64(l.MaxMessageBytes), 10)
		b = append(b, `,"rate":`...)
		b = strconv.AppendFloat(b, l.Rate, 'f', -1, 64)
		b = append(b, `,"burst":`...)
		b = strconv.AppendInt(b, int64(l.Burst), 10)
		b = append(b, `,"history":`...)
		b = strconv.AppendInt(b, int64(l.History), 10)
		b = append(b, '}')
	}
	if ev.Members != nil || ev.Type == EvWho {
		b = append(b, `,"members":[`...)
		for i, m := range ev.Members {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendString(b, m)
		}
		b = append(b, ']')
	}
	if ev.Rooms != nil || ev.Type == EvRooms {
		b = append(b, `,"rooms":[`...)
		for i, r := range ev.Rooms {
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, `{"name":`...)
			b = appendString(b, r.Name)
			b = append(b, `,"members":`...)
			b = strconv.AppendInt(b, int64(r.Members), 10)
			b = append(b, '}')
		}
		b = append(b, ']')
	}
	if ev.Messages != nil || ev.Type == EvHistory {
		b = append(b, `,"messages":[`...)
		for i := range ev.Messages {
			if i > 0 {
				b = append(b, ',')
			}
			b = AppendJSON(b, &ev.Messages[i])
		}
		b = append(b, ']')
	}
	if ev.More || ev.Type == EvHistory {
		b = append(b, `,"more":`...)
		b = strconv.AppendBool(b, ev.More)
	}
	if ev.First != 0 || ev.Type == EvGap {
		b = append(b, `,"first":`...)
		b = strconv.AppendUint(b, ev.First, 10)
	}
	if ev.Last != 0 || ev.Type == EvGap {
		b = append(b, `,"last":`...)
		b = strconv.AppendUint(b, ev.Last, 10)
	}
	if ev.Code != "" {
		b = append(b, `,"code":`...)
		b = appendString(b, ev.Code)
	}
	if ev.Message != "" {
		b = append(b, `,"message":`...)
		b = appendString(b, ev.Message)
	}
	return append(b, '}')
}

const hex = "0123456789abcdef"

// appendString appends s as a JSON string. Invalid UTF-8 (which the server
// never lets in) becomes U+FFFD; U+2028 and U+2029 are escaped so that the
// output is also safe to embed in JavaScript.
func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hex[c>>4], hex[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hex[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// AppendText appends ev as the text format's line(s). current is the
// recipient's current room: messages of other rooms carry a "#room " prefix.
// It appends nothing for events the text format does not show (acks).
func AppendText(b []byte, ev *Event, current string) []byte {
	switch ev.Type {
	case EvMessage:
		if ev.History {
			b = append(b, "[history] "...)
		}
		if !strings.EqualFold(ev.Room, current) {
			b = append(b, '#')
			b = append(b, ev.Room...)
			b = append(b, ' ')
		}
		if ev.Action {
			b = append(b, "* "...)
			b = append(b, ev.From...)
			b = append(b, ' ')
		} else {
			b = append(b, ev.From...)
			b = append(b, ": "...)
		}
		return appendLineText(b, ev.Text)
	case EvWelcome:
		b = append(b, "* welcome to parley, "...)
		b = append(b, ev.Nick...)
		if ev.Room != "" {
			b = append(b, "; you are in #"...)
			b = append(b, ev.Room...)
		}
		return append(b, " (type /help for commands)"...)
	case EvJoin:
		return append(append(append(append(b, "* "...), ev.Nick...), " joined #"...), ev.Room...)
	case EvLeave:
		return append(append(append(append(b, "* "...), ev.Nick...), " left #"...), ev.Room...)
	case EvNick:
		return append(append(append(append(b, "* "...), ev.Old...), " is now known as "...), ev.Nick...)
	case EvWho:
		b = append(b, "* in #"...)
		b = append(b, ev.Room...)
		b = append(b, " ("...)
		b = strconv.AppendInt(b, int64(len(ev.Members)), 10)
		b = append(b, "): "...)
		return append(b, strings.Join(ev.Members, ", ")...)
	case EvRooms:
		if len(ev.Rooms) == 0 {
			return append(b, "* rooms: none"...)
		}
		b = append(b, "* rooms: "...)
		for i, r := range ev.Rooms {
			if i > 0 {
				b = append(b, ", "...)
			}
			b = append(b, '#')
			b = append(b, r.Name...)
			b = append(b, " ("...)
			b = strconv.AppendInt(b, int64(r.Members), 10)
			b = append(b, ')')
		}
		return b
	case EvHistory:
		for i := range ev.Messages {
			if i > 0 {
				b = append(b, '\n')
			}
			m := ev.Messages[i]
			m.History = true
			b = AppendText(b, &m, current)
		}
		return b
	case EvGap:
		b = append(b, "! gap: messages "...)
		b = strconv.AppendUint(b, ev.First, 10)
		b = append(b, '-')
		b = strconv.AppendUint(b, ev.Last, 10)
		b = append(b, " of #"...)
		b = append(b, ev.Room...)
		return append(b, " are no longer in the history"...)
	case EvReset:
		b = append(b, "! reset: the history of #"...)
		b = append(b, ev.Room...)
		return append(b, " was reset; the latest messages follow"...)
	case EvError:
		return append(append(b, "! error: "...), ev.Message...)
	case EvHelp:
		return append(b, HelpText...)
	}
	return b
}

// appendLineText appends a message's text for the text format, where one
// event is one line: each line after the first is indented, so that a
// message cannot pass for another event ("alice: hi\n* bob joined"), and
// control characters (terminal escapes among them) become U+FFFD.
func appendLineText(b []byte, text string) []byte {
	for _, r := range text {
		switch {
		case r == '\n':
			b = append(b, "\n    "...)
		case r == '\t':
			b = append(b, '\t')
		case r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0):
			b = utf8.AppendRune(b, utf8.RuneError)
		default:
			b = utf8.AppendRune(b, r)
		}
	}
	return b
}

// HelpText is the text format's answer to /help.
const HelpText = `* commands:
*   /nick NAME     change your nick
*   /join ROOM     join ROOM and make it the current room
*   /leave [ROOM]  leave ROOM (default: the current room)
*   /who [ROOM]    list who is in ROOM (default: the current room)
*   /rooms         list rooms with members
*   /me ACTION     send an action ("* alice waves")
*   /help          this list
* any other line is a message to the current room; start it with // to send a leading /`

// Now returns the current time at wire precision, for events.
func Now() time.Time { return time.Now().UTC().Truncate(time.Millisecond) }
