package protocol

import (
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"

	"parley/internal/chat"
)

func TestDecodeText(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("a", chat.MaxNameLen+1)
	name32 := strings.Repeat("b", chat.MaxNameLen)
	maxText := strings.Repeat("x", chat.MaxTextBytes)
	tests := []struct {
		name string
		in   string
		want Command
		code string // error code; empty when the line is accepted
		msg  string // substring of the error message
	}{
		// Plain lines: a send to the current room, which the caller fills in.
		{name: "plain", in: "hi", want: Command{Type: CmdSend, Text: "hi"}},
		{name: "trailing LF", in: "hi\n", want: Command{Type: CmdSend, Text: "hi"}},
		{name: "trailing CRLF", in: "hi\r\n", want: Command{Type: CmdSend, Text: "hi"}},
		{name: "inner spaces kept", in: "  hi there  ", want: Command{Type: CmdSend, Text: "  hi there  "}},
		{name: "unicode", in: "héllo 日本 🙂", want: Command{Type: CmdSend, Text: "héllo 日本 🙂"}},
		{name: "slash inside", in: "a/b /c", want: Command{Type: CmdSend, Text: "a/b /c"}},
		{name: "hash first", in: "#dev hi", want: Command{Type: CmdSend, Text: "#dev hi"}},
		{name: "text at the limit", in: maxText, want: Command{Type: CmdSend, Text: maxText}},
		{name: "text at the limit with CRLF", in: maxText + "\r\n", want: Command{Type: CmdSend, Text: maxText}},

		// "//" escapes a leading slash.
		{name: "escaped slash", in: "//x", want: Command{Type: CmdSend, Text: "/x"}},
		{name: "escaped command", in: "//join dev", want: Command{Type: CmdSend, Text: "/join dev"}},
		{name: "escaped slash alone", in: "//", want: Command{Type: CmdSend, Text: "/"}},
		{name: "three slashes", in: "///", want: Command{Type: CmdSend, Text: "//"}},
		{name: "escaped with CRLF", in: "//me\r\n", want: Command{Type: CmdSend, Text: "/me"}},
		{name: "escaped text at the limit", in: "//" + maxText[1:], want: Command{Type: CmdSend, Text: "/" + maxText[1:]}},
		{name: "escaped text over the limit", in: "//" + maxText, code: CodeTooLong, msg: "too long"},

		// Empty and whitespace lines.
		{name: "empty", in: "", code: CodeEmptyMessage, msg: "empty"},
		{name: "LF only", in: "\n", code: CodeEmptyMessage, msg: "empty"},
		{name: "CRLF only", in: "\r\n", code: CodeEmptyMessage, msg: "empty"},
		{name: "spaces", in: "   ", code: CodeEmptyMessage, msg: "empty"},
		{name: "tabs and CRLF", in: "\t \t\r\n", code: CodeEmptyMessage, msg: "empty"},
		{name: "text over the limit", in: maxText + "x", code: CodeTooLong, msg: "too long"},

		// /nick
		{name: "nick", in: "/nick alice", want: Command{Type: CmdNick, Nick: "alice"}},
		{name: "nick CRLF", in: "/nick alice\r\n", want: Command{Type: CmdNick, Nick: "alice"}},
		{name: "nick upper-case command", in: "/NICK Alice", want: Command{Type: CmdNick, Nick: "Alice"}},
		{name: "nick extra spaces", in: "/nick   bob  ", want: Command{Type: CmdNick, Nick: "bob"}},
		{name: "nick 32", in: "/nick " + name32, want: Command{Type: CmdNick, Nick: name32}},
		{name: "nick without name", in: "/nick", code: CodeBadField, msg: "usage: /nick NAME"},
		{name: "nick with blank name", in: "/nick   ", code: CodeBadField, msg: "usage: /nick NAME"},
		{name: "nick with two words", in: "/nick al ice", code: CodeBadField, msg: "usage: /nick NAME"},
		{name: "nick with a tab", in: "/nick al\tice", code: CodeBadField, msg: "usage: /nick NAME"},
		{name: "nick bad characters", in: "/nick al!ce", code: CodeBadNick, msg: `"al!ce"`},
		{name: "nick too long", in: "/nick " + long, code: CodeBadNick, msg: "at most 32"},
		{name: "nick with hash", in: "/nick #alice", code: CodeBadNick, msg: "letters, digits"},

		// /join
		{name: "join", in: "/join dev", want: Command{Type: CmdJoin, Room: "dev"}},
		{name: "join #room", in: "/join #dev", want: Command{Type: CmdJoin, Room: "dev"}},
		{name: "join keeps spelling", in: "/Join #Dev\n", want: Command{Type: CmdJoin, Room: "Dev"}},
		{name: "join without room", in: "/join", code: CodeBadField, msg: "usage: /join ROOM"},
		{name: "join with blank room", in: "/join  ", code: CodeBadField, msg: "usage: /join ROOM"},
		{name: "join two rooms", in: "/join dev ops", code: CodeBadField, msg: "usage: /join ROOM"},
		{name: "join hash only", in: "/join #", code: CodeBadRoom, msg: "empty"},
		{name: "join double hash", in: "/join ##dev", code: CodeBadRoom, msg: `"#dev"`},
		{name: "join bad room", in: "/join d.v", code: CodeBadRoom, msg: `"d.v"`},
		{name: "join room too long", in: "/join #" + long, code: CodeBadRoom, msg: "at most 32"},

		// /leave
		{name: "leave current", in: "/leave", want: Command{Type: CmdLeave}},
		{name: "leave current with spaces", in: "/leave  ", want: Command{Type: CmdLeave}},
		{name: "leave room", in: "/leave dev", want: Command{Type: CmdLeave, Room: "dev"}},
		{name: "leave #room", in: "/leave #dev", want: Command{Type: CmdLeave, Room: "dev"}},
		{name: "leave alias part", in: "/part #dev", want: Command{Type: CmdLeave, Room: "dev"}},
		{name: "leave hash only", in: "/leave #", code: CodeBadRoom, msg: "empty"},
		{name: "leave bad room", in: "/leave dev ops", code: CodeBadRoom, msg: `"dev ops"`},
		{name: "leave room too long", in: "/leave " + long, code: CodeBadRoom, msg: "at most 32"},

		// /who
		{name: "who current", in: "/who", want: Command{Type: CmdWho}},
		{name: "who room", in: "/who lobby", want: Command{Type: CmdWho, Room: "lobby"}},
		{name: "who #room", in: "/who #lobby", want: Command{Type: CmdWho, Room: "lobby"}},
		{name: "who alias names", in: "/names #lobby", want: Command{Type: CmdWho, Room: "lobby"}},
		{name: "who hash only", in: "/who #", code: CodeBadRoom, msg: "empty"},
		{name: "who room of escapes", in: "/who \"" + strings.Repeat("&", 60), code: CodeBadRoom, msg: `"\"` + strings.Repeat("&", 39) + `..."`},
		{name: "room cut inside a rune", in: "/join " + strings.Repeat("a", 39) + "é", code: CodeBadRoom, msg: `"` + strings.Repeat("a", 39) + `..."`},
		{name: "who bad room", in: "/who café", code: CodeBadRoom, msg: "letters, digits"},

		// /rooms
		{name: "rooms", in: "/rooms", want: Command{Type: CmdRooms}},
		{name: "rooms ignores arguments", in: "/rooms all", want: Command{Type: CmdRooms}},
		{name: "rooms alias list", in: "/list\r\n", want: Command{Type: CmdRooms}},

		// /me
		{name: "me", in: "/me waves", want: Command{Type: CmdSend, Text: "waves", Action: true}},
		{name: "me sentence", in: "/me waves at #dev\r\n", want: Command{Type: CmdSend, Text: "waves at #dev", Action: true}},
		{name: "me without action", in: "/me", code: CodeEmptyMessage, msg: "usage: /me ACTION"},
		{name: "me with blank action", in: "/me   ", code: CodeEmptyMessage, msg: "usage: /me ACTION"},
		{name: "me at the limit", in: "/me " + maxText, want: Command{Type: CmdSend, Text: maxText, Action: true}},
		{name: "me over the limit", in: "/me " + maxText + "x", code: CodeTooLong, msg: "too long"},

		// /help
		{name: "help", in: "/help", want: Command{Type: CmdHelp}},
		{name: "help with argument", in: "/help join", want: Command{Type: CmdHelp}},
		{name: "help CRLF", in: "/HELP\r\n", want: Command{Type: CmdHelp}},

		// Unknown commands.
		{name: "unknown", in: "/shout hi", code: CodeUnknownCommand, msg: "unknown command /shout"},
		{name: "unknown is lower-cased", in: "/SHOUT", code: CodeUnknownCommand, msg: "unknown command /shout"},
		{name: "slash alone", in: "/", code: CodeUnknownCommand, msg: "unknown command /"},
		{name: "slash space", in: "/ hi", code: CodeUnknownCommand, msg: "unknown command /"},
		{name: "long unknown is cut", in: "/" + strings.Repeat("z", 100), code: CodeUnknownCommand, msg: "/" + strings.Repeat("z", 32) + "..."},
		{name: "long unknown cut inside a rune", in: "/" + strings.Repeat("z", 31) + "é", code: CodeUnknownCommand, msg: "unknown command /zzz"},
		{name: "unknown points at help", in: "/x", code: CodeUnknownCommand, msg: "/help"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := DecodeText(tt.in)
			if tt.code == "" {
				if err != nil {
					t.Fatalf("DecodeText(%.80q) error %v, want %s", tt.in, err, fmtCommand(tt.want))
				}
				if !reflect.DeepEqual(got, tt.want) {
					t.Fatalf("DecodeText(%.80q)\n got %s\nwant %s", tt.in, fmtCommand(got), fmtCommand(tt.want))
				}
				return
			}
			if err == nil {
				t.Fatalf("DecodeText(%.80q) = %s, want error %s", tt.in, fmtCommand(got), tt.code)
			}
			if err.Code != tt.code || !strings.Contains(err.Message, tt.msg) {
				t.Errorf("DecodeText(%.80q) error %s: %q, want %s: ...%q...", tt.in, err.Code, err.Message, tt.code, tt.msg)
			}
			// The text format sends the message as is in a text frame,
			// which must be valid UTF-8.
			if !utf8.ValidString(err.Message) {
				t.Errorf("DecodeText(%.80q) error message %q is not valid UTF-8", tt.in, err.Message)
			}
			if len(err.Message) > maxErrorMessage {
				t.Errorf("DecodeText(%.80q) error message is %d bytes, want at most %d", tt.in, len(err.Message), maxErrorMessage)
			}
			if err.Ref != "" || err.Room != "" {
				t.Errorf("DecodeText(%.80q) error ref %q room %q, want none", tt.in, err.Ref, err.Room)
			}
			if !reflect.DeepEqual(got, Command{}) {
				t.Errorf("DecodeText(%.80q) returned %s with its error, want the zero command", tt.in, fmtCommand(got))
			}
		})
	}
}
