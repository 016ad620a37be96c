package protocol

import (
	"reflect"
	"strings"
	"testing"

	"parley/internal/chat"
)

func u64(v uint64) *uint64 { return &v }

// jsonCase is one DecodeJSON input and what it must give: a command, or an
// error with a code, a message naming the problem (msg is a substring), the
// ref carried back and the room the error is about.
type jsonCase struct {
	name string
	in   string
	want Command
	code string
	msg  string
	ref  string
	room string
}

func TestDecodeJSONValid(t *testing.T) {
	t.Parallel()
	ref64 := strings.Repeat("r", MaxRefBytes)
	name32 := strings.Repeat("a", chat.MaxNameLen)
	maxText := strings.Repeat("x", chat.MaxTextBytes)
	tests := []jsonCase{
		// The examples of docs/protocol.md.
		{name: "send", in: `{"type":"send","room":"lobby","text":"hi","ref":"c1"}`,
			want: Command{Type: CmdSend, Room: "lobby", Text: "hi", Ref: "c1"}},
		{name: "send action", in: `{"type":"send","room":"lobby","text":"waves","action":true,"ref":"c2"}`,
			want: Command{Type: CmdSend, Room: "lobby", Text: "waves", Action: true, Ref: "c2"}},
		{name: "join", in: `{"type":"join","room":"dev","ref":"c3"}`,
			want: Command{Type: CmdJoin, Room: "dev", Ref: "c3"}},
		{name: "join since epoch", in: `{"type":"join","room":"dev","since":41,"epoch":"3f9c0a12d4e5b6a7","ref":"c4"}`,
			want: Command{Type: CmdJoin, Room: "dev", Since: u64(41), Epoch: "3f9c0a12d4e5b6a7", Ref: "c4"}},
		{name: "leave", in: `{"type":"leave","room":"dev","ref":"c5"}`,
			want: Command{Type: CmdLeave, Room: "dev", Ref: "c5"}},
		{name: "nick", in: `{"type":"nick","nick":"alice","ref":"c6"}`,
			want: Command{Type: CmdNick, Nick: "alice", Ref: "c6"}},
		{name: "who", in: `{"type":"who","room":"lobby","ref":"c7"}`,
			want: Command{Type: CmdWho, Room: "lobby", Ref: "c7"}},
		{name: "rooms", in: `{"type":"rooms","ref":"c8"}`,
			want: Command{Type: CmdRooms, Ref: "c8"}},
		{name: "history", in: `{"type":"history","room":"lobby","before":120,"limit":50,"ref":"c9"}`,
			want: Command{Type: CmdHistory, Room: "lobby", Before: 120, Limit: 50, Ref: "c9"}},

		// Optional fields and edges of the ranges.
		{name: "send without ref", in: `{"type":"send","room":"lobby","text":"hi"}`,
			want: Command{Type: CmdSend, Room: "lobby", Text: "hi"}},
		{name: "send action false", in: `{"type":"send","room":"lobby","text":"hi","action":false}`,
			want: Command{Type: CmdSend, Room: "lobby", Text: "hi"}},
		{name: "send escapes and unicode", in: `{"type":"send","room":"lobby","text":"a\"b\\c\n\u00e9 日本 🙂"}`,
			want: Command{Type: CmdSend, Room: "lobby", Text: "a\"b\\c\né 日本 🙂"}},
		{name: "send text at the limit", in: `{"type":"send","room":"lobby","text":"` + maxText + `"}`,
			want: Command{Type: CmdSend, Room: "lobby", Text: maxText}},
		{name: "join since 0", in: `{"type":"join","room":"dev","since":0}`,
			want: Command{Type: CmdJoin, Room: "dev", Since: u64(0)}},
		{name: "join since max", in: `{"type":"join","room":"dev","since":18446744073709551615}`,
			want: Command{Type: CmdJoin, Room: "dev", Since: u64(1<<64 - 1)}},
		{name: "join since null", in: `{"type":"join","room":"dev","since":null}`,
			want: Command{Type: CmdJoin, Room: "dev"}},
		{name: "room of 32 characters", in: `{"type":"join","room":"` + name32 + `"}`,
			want: Command{Type: CmdJoin, Room: name32}},
		{name: "room with every allowed character", in: `{"type":"who","room":"Az09-_"}`,
			want: Command{Type: CmdWho, Room: "Az09-_"}},
		{name: "nick with dash and underscore", in: `{"type":"nick","nick":"guest-0042_x"}`,
			want: Command{Type: CmdNick, Nick: "guest-0042_x"}},
		{name: "history default limit", in: `{"type":"history","room":"lobby"}`,
			want: Command{Type: CmdHistory, Room: "lobby", Limit: DefaultHistoryLimit}},
		{name: "history limit 0 is the default", in: `{"type":"history","room":"lobby","limit":0}`,
			want: Command{Type: CmdHistory, Room: "lobby", Limit: DefaultHistoryLimit}},
		{name: "history limit 1", in: `{"type":"history","room":"lobby","limit":1}`,
			want: Command{Type: CmdHistory, Room: "lobby", Limit: 1}},
		{name: "history limit 500", in: `{"type":"history","room":"lobby","limit":500}`,
			want: Command{Type: CmdHistory, Room: "lobby", Limit: MaxHistoryLimit}},
		{name: "ref of 64 bytes", in: `{"type":"rooms","ref":"` + ref64 + `"}`,
			want: Command{Type: CmdRooms, Ref: ref64}},
		{name: "ref of 64 bytes in 16 four-byte runes", in: `{"type":"rooms","ref":"` + strings.Repeat("🙂", 16) + `"}`,
			want: Command{Type: CmdRooms, Ref: strings.Repeat("🙂", 16)}},
		{name: "unknown fields are ignored", in: `{"type":"rooms","x":[1,{"y":null}],"z":"w"}`,
			want: Command{Type: CmdRooms}},
		{name: "surrounding whitespace", in: " \t\r\n{\"type\":\"rooms\"} \r\n",
			want: Command{Type: CmdRooms}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := DecodeJSON([]byte(tt.in))
			if err != nil {
				t.Fatalf("DecodeJSON(%.80q) error %v, want %+v", tt.in, err, tt.want)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Fatalf("DecodeJSON(%.80q)\n got %s\nwant %s", tt.in, fmtCommand(got), fmtCommand(tt.want))
			}
		})
	}
}

func TestDecodeJSONErrors(t *testing.T) {
	t.Parallel()
	long := strings.Repeat("a", chat.MaxNameLen+1)
	ref65 := strings.Repeat("r", MaxRefBytes+1)
	tooLong := strings.Repeat("x", chat.MaxTextBytes+1)
	tests := []jsonCase{
		// Not an object.
		{name: "array", in: `[1]`, code: CodeBadJSON, msg: "JSON object"},
		{name: "string", in: `"x"`, code: CodeBadJSON, msg: "JSON object"},
		{name: "null", in: `null`, code: CodeBadJSON, msg: "JSON object"},
		{name: "number", in: `42`, code: CodeBadJSON, msg: "JSON object"},
		{name: "true", in: `true`, code: CodeBadJSON, msg: "JSON object"},
		{name: "empty", in: ``, code: CodeBadJSON, msg: "JSON object"},
		{name: "whitespace", in: " \r\n\t", code: CodeBadJSON, msg: "JSON object"},
		{name: "text line", in: `hello`, code: CodeBadJSON, msg: "JSON object"},

		// Malformed JSON; the ref comes back when it was read before the fault.
		{name: "truncated", in: `{"type":"send","room":"lobby"`, code: CodeBadJSON, msg: "malformed JSON"},
		{name: "only a brace", in: `{`, code: CodeBadJSON, msg: "malformed JSON"},
		{name: "truncated after ref", in: `{"type":"send","ref":"c1","room":"lo`, code: CodeBadJSON, msg: "malformed JSON", ref: "c1"},
		{name: "unescaped quote after ref", in: `{"ref":"c1","type":"send","room":"lobby","text":"a"b"}`, code: CodeBadJSON, msg: "malformed JSON", ref: "c1"},
		{name: "bad value after ref", in: `{"type":"rooms","ref":"c1","x":tru}`, code: CodeBadJSON, msg: "malformed JSON", ref: "c1"},
		{name: "fault before ref", in: `{"type":"rooms",,"ref":"c1"}`, code: CodeBadJSON, msg: "malformed JSON"},
		{name: "single quotes", in: `{'type':'rooms'}`, code: CodeBadJSON, msg: "malformed JSON"},
		{name: "trailing comma", in: `{"type":"rooms","ref":"c1",}`, code: CodeBadJSON, msg: "malformed JSON", ref: "c1"},
		{name: "trailing garbage", in: `{"type":"rooms","ref":"c1"} x`, code: CodeBadJSON, msg: "one JSON object", ref: "c1"},
		{name: "trailing bracket", in: `{"type":"rooms","ref":"c1"}]`, code: CodeBadJSON, msg: "one JSON object", ref: "c1"},
		{name: "trailing brace", in: `{"type":"rooms","ref":"c1"}}`, code: CodeBadJSON, msg: "one JSON object", ref: "c1"},
		{name: "trailing comma after object", in: `{"type":"rooms","ref":"c1"},`, code: CodeBadJSON, msg: "one JSON object", ref: "c1"},
		{name: "two objects", in: `{"type":"rooms","ref":"c1"}{"type":"rooms","ref":"c2"}`, code: CodeBadJSON, msg: "one JSON object", ref: "c1"},
		{name: "two objects on two lines", in: "{\"type\":\"rooms\",\"ref\":\"c1\"}\n{\"type\":\"rooms\"}", code: CodeBadJSON, msg: "one JSON object", ref: "c1"},
		{name: "trailing garbage with a long ref", in: `{"type":"rooms","ref":"` + ref65 + `"} x`, code: CodeBadJSON, msg: "one JSON object"},

		// Type.
		{name: "unknown type", in: `{"type":"shout","ref":"c1"}`, code: CodeUnknownType, msg: `"shout"`, ref: "c1"},
		{name: "help is text only", in: `{"type":"help","ref":"c1"}`, code: CodeUnknownType, msg: `"help"`, ref: "c1"},
		{name: "type is case-sensitive", in: `{"type":"SEND","room":"lobby","text":"hi"}`, code: CodeUnknownType, msg: `"SEND"`},
		{name: "long unknown type is not echoed", in: `{"type":"` + strings.Repeat("t", 200) + `"}`, code: CodeUnknownType, msg: "unknown command type"},
		{name: "missing type", in: `{"room":"lobby","text":"hi","ref":"c1"}`, code: CodeUnknownType, msg: `"type"`, ref: "c1"},
		{name: "empty object", in: `{}`, code: CodeUnknownType, msg: `"type"`},
		{name: "empty type", in: `{"type":"","ref":"c1"}`, code: CodeUnknownType, msg: `"type"`, ref: "c1"},
		{name: "null type", in: `{"type":null,"ref":"c1"}`, code: CodeUnknownType, msg: `"type"`, ref: "c1"},
		{name: "type not a string", in: `{"type":5,"ref":"c1"}`, code: CodeBadField, msg: `"type" must be a string`, ref: "c1"},

		// Missing required fields.
		{name: "send without room", in: `{"type":"send","text":"hi","ref":"c1"}`, code: CodeBadField, msg: `"room"`, ref: "c1"},
		{name: "join without room", in: `{"type":"join","ref":"c1"}`, code: CodeBadField, msg: `"room"`, ref: "c1"},
		{name: "leave without room", in: `{"type":"leave","ref":"c1"}`, code: CodeBadField, msg: `"room"`, ref: "c1"},
		{name: "who without room", in: `{"type":"who","ref":"c1"}`, code: CodeBadField, msg: `"room"`, ref: "c1"},
		{name: "history without room", in: `{"type":"history","ref":"c1"}`, code: CodeBadField, msg: `"room"`, ref: "c1"},
		{name: "room null", in: `{"type":"join","room":null,"ref":"c1"}`, code: CodeBadField, msg: `"room"`, ref: "c1"},
		// A missing text is an empty message: encoding/json cannot tell them apart.
		{name: "send without text", in: `{"type":"send","room":"lobby","ref":"c1"}`, code: CodeEmptyMessage, msg: "empty", ref: "c1", room: "lobby"},
		{name: "nick without nick", in: `{"type":"nick","ref":"c1"}`, code: CodeBadField, msg: `"nick"`, ref: "c1"},

		// Wrong-typed fields; the ref still comes back.
		{name: "room a number", in: `{"type":"join","room":5,"ref":"c1"}`, code: CodeBadField, msg: `"room" must be a string`, ref: "c1"},
		{name: "text a number", in: `{"type":"send","room":"lobby","text":5,"ref":"c1"}`, code: CodeBadField, msg: `"text" must be a string`, ref: "c1"},
		{name: "text an object", in: `{"type":"send","room":"lobby","text":{},"ref":"c1"}`, code: CodeBadField, msg: `"text" must be a string`, ref: "c1"},
		{name: "nick a list", in: `{"type":"nick","nick":["a"],"ref":"c1"}`, code: CodeBadField, msg: `"nick" must be a string`, ref: "c1"},
		{name: "since negative", in: `{"type":"join","room":"dev","since":-1,"ref":"c1"}`, code: CodeBadField, msg: `"since" must be a whole number`, ref: "c1"},
		{name: "since a string", in: `{"type":"join","room":"dev","since":"x","ref":"c1"}`, code: CodeBadField, msg: `"since" must be a whole number`, ref: "c1"},
		{name: "since a fraction", in: `{"type":"join","room":"dev","since":1.5,"ref":"c1"}`, code: CodeBadField, msg: `"since" must be a whole number`, ref: "c1"},
		{name: "since too big", in: `{"type":"join","room":"dev","since":18446744073709551616,"ref":"c1"}`, code: CodeBadField, msg: `"since" must be a whole number`, ref: "c1"},
		{name: "epoch a number", in: `{"type":"join","room":"dev","epoch":1,"ref":"c1"}`, code: CodeBadField, msg: `"epoch" must be a string`, ref: "c1"},
		{name: "action a string", in: `{"type":"send","room":"lobby","text":"hi","action":"yes","ref":"c1"}`, code: CodeBadField, msg: `"action" must be true or false`, ref: "c1"},
		{name: "action a number", in: `{"type":"send","room":"lobby","text":"hi","action":1,"ref":"c1"}`, code: CodeBadField, msg: `"action" must be true or false`, ref: "c1"},
		{name: "before negative", in: `{"type":"history","room":"lobby","before":-1,"ref":"c1"}`, code: CodeBadField, msg: `"before" must be a whole number`, ref: "c1"},
		{name: "limit a string", in: `{"type":"history","room":"lobby","limit":"x","ref":"c1"}`, code: CodeBadField, msg: `"limit"`, ref: "c1"},
		{name: "ref a number", in: `{"type":"rooms","ref":7}`, code: CodeBadField, msg: `"ref" must be a string`},
		{name: "ref an object", in: `{"type":"rooms","ref":{"a":"b"}}`, code: CodeBadField, msg: `"ref" must be a string`},
		{name: "wrong type with a long ref", in: `{"type":"join","room":5,"ref":"` + ref65 + `"}`, code: CodeBadField, msg: `"room" must be a string`},

		// Text.
		{name: "empty text", in: `{"type":"send","room":"lobby","text":"","ref":"c1"}`, code: CodeEmptyMessage, msg: "empty", ref: "c1", room: "lobby"},
		{name: "text over the limit", in: `{"type":"send","room":"lobby","text":"` + tooLong + `","ref":"c1"}`, code: CodeTooLong, msg: "too long", ref: "c1", room: "lobby"},

		// Names.
		{name: "room too long", in: `{"type":"join","room":"` + long + `","ref":"c1"}`, code: CodeBadRoom, msg: "at most 32", ref: "c1"},
		{name: "room with a space", in: `{"type":"join","room":"lob by","ref":"c1"}`, code: CodeBadRoom, msg: "letters, digits", ref: "c1"},
		{name: "room with a hash", in: `{"type":"send","room":"#lobby","text":"hi","ref":"c1"}`, code: CodeBadRoom, msg: `"#lobby"`, ref: "c1"},
		{name: "room not ASCII", in: `{"type":"who","room":"café","ref":"c1"}`, code: CodeBadRoom, msg: "letters, digits", ref: "c1"},
		{name: "room with NUL", in: `{"type":"leave","room":"a\u0000b","ref":"c1"}`, code: CodeBadRoom, msg: "letters, digits", ref: "c1"},
		{name: "room name quoted for humans", in: `{"type":"join","room":"R&D <ops>","ref":"c1"}`, code: CodeBadRoom, msg: `room name "R&D <ops>" is invalid`, ref: "c1"},
		{name: "long room name cut", in: `{"type":"join","room":"` + strings.Repeat("&", 100) + `","ref":"c1"}`, code: CodeBadRoom, msg: `"` + strings.Repeat("&", 40) + `..."`, ref: "c1"},
		{name: "history room bad", in: `{"type":"history","room":"a.b","ref":"c1"}`, code: CodeBadRoom, msg: `"a.b"`, ref: "c1"},
		// An empty name is reported as a missing field.
		{name: "room empty", in: `{"type":"join","room":"","ref":"c1"}`, code: CodeBadField, msg: `"room"`, ref: "c1"},
		{name: "nick too long", in: `{"type":"nick","nick":"` + long + `","ref":"c1"}`, code: CodeBadNick, msg: "at most 32", ref: "c1"},
		{name: "very long nick is not echoed whole", in: `{"type":"nick","nick":"` + strings.Repeat("n", 4000) + `","ref":"c1"}`, code: CodeBadNick, msg: "at most 32", ref: "c1"},
		{name: "nick with bad characters", in: `{"type":"nick","nick":"al!ce","ref":"c1"}`, code: CodeBadNick, msg: `"al!ce"`, ref: "c1"},
		{name: "nick empty", in: `{"type":"nick","nick":"","ref":"c1"}`, code: CodeBadField, msg: `"nick"`, ref: "c1"},

		// Ref.
		{name: "ref over 64 bytes", in: `{"type":"rooms","ref":"` + ref65 + `"}`, code: CodeBadField, msg: `"ref" must be at most 64 bytes`},
		{name: "ref over 64 bytes in runes", in: `{"type":"rooms","ref":"` + strings.Repeat("é", 33) + `"}`, code: CodeBadField, msg: `"ref" must be at most 64 bytes`},

		// History limit.
		{name: "limit 501", in: `{"type":"history","room":"lobby","limit":501,"ref":"c1"}`, code: CodeBadField, msg: `"limit" must be 1-500`, ref: "c1"},
		{name: "limit -1", in: `{"type":"history","room":"lobby","limit":-1,"ref":"c1"}`, code: CodeBadField, msg: `"limit" must be 1-500`, ref: "c1"},
		{name: "limit a fraction", in: `{"type":"history","room":"lobby","limit":1.5,"ref":"c1"}`, code: CodeBadField, msg: `"limit"`, ref: "c1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			got, err := DecodeJSON([]byte(tt.in))
			if err == nil {
				t.Fatalf("DecodeJSON(%.80q) = %s, want error %s", tt.in, fmtCommand(got), tt.code)
			}
			if err.Code != tt.code || !strings.Contains(err.Message, tt.msg) {
				t.Errorf("DecodeJSON(%.80q) error %s: %q, want %s: ...%q...", tt.in, err.Code, err.Message, tt.code, tt.msg)
			}
			if err.Ref != tt.ref {
				t.Errorf("DecodeJSON(%.80q) error ref %q, want %q", tt.in, err.Ref, tt.ref)
			}
			if err.Room != tt.room {
				t.Errorf("DecodeJSON(%.80q) error room %q, want %q", tt.in, err.Room, tt.room)
			}
			if len(err.Message) > maxErrorMessage {
				t.Errorf("DecodeJSON(%.80q) error message is %d bytes, want at most %d", tt.in, len(err.Message), maxErrorMessage)
			}
			if !reflect.DeepEqual(got, Command{}) {
				t.Errorf("DecodeJSON(%.80q) returned %s with its error, want the zero command", tt.in, fmtCommand(got))
			}
		})
	}
}
