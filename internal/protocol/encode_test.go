package protocol

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"parley/internal/chat"
)

// ts0 is the time of the spec's examples.
var ts0 = time.Date(2026, 11, 25, 19, 40, 9, 123_000_000, time.UTC)

func TestAppendJSON(t *testing.T) {
	t.Parallel()
	msg := Event{Type: EvMessage, Room: "lobby", ID: 1, From: "bob", Text: "first", TS: ts0}
	tests := []struct {
		name string
		ev   Event
		want string // compared as JSON values: field order is free
		// back is what the output decodes to, when it is not ev (an
		// always-present list decodes as empty, not nil).
		back *Event
	}{
		{name: "welcome", ev: Event{Type: EvWelcome, Nick: "alice", Epoch: "3f9c0a12d4e5b6a7", Server: "parley", Version: "0.1.0", Node: "host-1",
			Limits: &Limits{MaxMessageBytes: 8192, Rate: 10, Burst: 20, History: 50}},
			want: `{"type":"welcome","nick":"alice","epoch":"3f9c0a12d4e5b6a7","server":"parley","version":"0.1.0","node":"host-1","limits":{"max_message_bytes":8192,"rate":10,"burst":20,"history":50}}`},
		{name: "welcome fractional rate", ev: Event{Type: EvWelcome, Nick: "bob", Epoch: "e", Server: "parley", Version: "0.1.0", Node: "n",
			Limits: &Limits{MaxMessageBytes: 1024, Rate: 0.5, Burst: 1, History: 0}},
			want: `{"type":"welcome","nick":"bob","epoch":"e","server":"parley","version":"0.1.0","node":"n","limits":{"max_message_bytes":1024,"rate":0.5,"burst":1,"history":0}}`},
		{name: "ack of a send", ev: Event{Type: EvAck, Ref: "c1", Room: "lobby", ID: 7},
			want: `{"type":"ack","ref":"c1","room":"lobby","id":7}`},
		{name: "ack of a join", ev: Event{Type: EvAck, Ref: "c3"},
			want: `{"type":"ack","ref":"c3"}`},
		{name: "message", ev: Event{Type: EvMessage, Room: "lobby", ID: 7, From: "alice", Text: "hi", TS: ts0},
			want: `{"type":"message","room":"lobby","id":7,"from":"alice","text":"hi","ts":"2026-11-25T19:40:09.123Z"}`},
		{name: "message action", ev: Event{Type: EvMessage, Room: "lobby", ID: 8, From: "alice", Text: "waves", Action: true, TS: time.Date(2026, 11, 25, 19, 40, 10, 1_000_000, time.UTC)},
			want: `{"type":"message","room":"lobby","id":8,"from":"alice","text":"waves","action":true,"ts":"2026-11-25T19:40:10.001Z"}`},
		{name: "message history", ev: Event{Type: EvMessage, Room: "lobby", ID: 3, From: "bob", Text: "earlier", History: true, TS: time.Date(2026, 11, 25, 19, 30, 0, 0, time.UTC)},
			want: `{"type":"message","room":"lobby","id":3,"from":"bob","text":"earlier","ts":"2026-11-25T19:30:00.000Z","history":true}`},
		{name: "message with empty text keeps text", ev: Event{Type: EvMessage, Room: "lobby", ID: 9, From: "bob", TS: ts0},
			want: `{"type":"message","room":"lobby","id":9,"from":"bob","text":"","ts":"2026-11-25T19:40:09.123Z"}`},
		{name: "join", ev: Event{Type: EvJoin, Room: "lobby", Nick: "bob", TS: time.Date(2026, 11, 25, 19, 40, 11, 0, time.UTC)},
			want: `{"type":"join","room":"lobby","nick":"bob","ts":"2026-11-25T19:40:11.000Z"}`},
		{name: "leave", ev: Event{Type: EvLeave, Room: "lobby", Nick: "bob", TS: time.Date(2026, 11, 25, 19, 41, 0, 0, time.UTC)},
			want: `{"type":"leave","room":"lobby","nick":"bob","ts":"2026-11-25T19:41:00.000Z"}`},
		{name: "nick", ev: Event{Type: EvNick, Room: "lobby", Old: "guest-0042", Nick: "carol", TS: time.Date(2026, 11, 25, 19, 41, 5, 0, time.UTC)},
			want: `{"type":"nick","room":"lobby","old":"guest-0042","nick":"carol","ts":"2026-11-25T19:41:05.000Z"}`},
		{name: "who", ev: Event{Type: EvWho, Room: "lobby", Members: []string{"alice", "carol"}, Ref: "c7"},
			want: `{"type":"who","room":"lobby","members":["alice","carol"],"ref":"c7"}`},
		{name: "who of an empty room", ev: Event{Type: EvWho, Room: "void"},
			want: `{"type":"who","room":"void","members":[]}`,
			back: &Event{Type: EvWho, Room: "void", Members: []string{}}},
		{name: "rooms", ev: Event{Type: EvRooms, Rooms: []RoomInfo{{Name: "lobby", Members: 2}, {Name: "dev", Members: 1}}, Ref: "c8"},
			want: `{"type":"rooms","rooms":[{"name":"lobby","members":2},{"name":"dev","members":1}],"ref":"c8"}`},
		{name: "rooms none", ev: Event{Type: EvRooms},
			want: `{"type":"rooms","rooms":[]}`,
			back: &Event{Type: EvRooms, Rooms: []RoomInfo{}}},
		// Nested messages carry their "type" too: one encoder for both, and
		// unknown fields are ignored by clients.
		{name: "history", ev: Event{Type: EvHistory, Room: "lobby", Messages: []Event{msg}, Ref: "c9"},
			want: `{"type":"history","room":"lobby","messages":[{"type":"message","room":"lobby","id":1,"from":"bob","text":"first","ts":"2026-11-25T19:40:09.123Z"}],"more":false,"ref":"c9"}`},
		{name: "history more", ev: Event{Type: EvHistory, Room: "lobby", Messages: []Event{msg, {Type: EvMessage, Room: "lobby", ID: 2, From: "al", Text: "x", TS: ts0, Action: true}}, More: true},
			want: `{"type":"history","room":"lobby","messages":[{"type":"message","room":"lobby","id":1,"from":"bob","text":"first","ts":"2026-11-25T19:40:09.123Z"},{"type":"message","room":"lobby","id":2,"from":"al","text":"x","ts":"2026-11-25T19:40:09.123Z","action":true}],"more":true}`},
		{name: "history empty", ev: Event{Type: EvHistory, Room: "lobby", Ref: "c9"},
			want: `{"type":"history","room":"lobby","messages":[],"more":false,"ref":"c9"}`,
			back: &Event{Type: EvHistory, Room: "lobby", Messages: []Event{}, Ref: "c9"}},
		{name: "gap", ev: Event{Type: EvGap, Room: "lobby", First: 5, Last: 9},
			want: `{"type":"gap","room":"lobby","first":5,"last":9}`},
		{name: "reset", ev: Event{Type: EvReset, Room: "lobby", Epoch: "77ab01c3e9f24d10"},
			want: `{"type":"reset","room":"lobby","epoch":"77ab01c3e9f24d10"}`},
		{name: "error", ev: Event{Type: EvError, Code: CodeNickTaken, Message: `nick "alice" is taken`, Ref: "c6"},
			want: `{"type":"error","code":"nick_taken","message":"nick \"alice\" is taken","ref":"c6"}`},
		{name: "error about a room", ev: (&Error{Code: CodeNotInRoom, Message: "you are not in #dev", Room: "dev"}).Event(),
			want: `{"type":"error","room":"dev","code":"not_in_room","message":"you are not in #dev"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			prefix := []byte("frame:")
			out := AppendJSON(bytes.Clone(prefix), &tt.ev)
			if !bytes.HasPrefix(out, prefix) {
				t.Fatalf("AppendJSON overwrote the buffer's prefix: %q", out)
			}
			out = out[len(prefix):]
			if !json.Valid(out) {
				t.Fatalf("AppendJSON = %s: not valid JSON", out)
			}
			var got, want any
			if err := json.Unmarshal(out, &got); err != nil {
				t.Fatal(err)
			}
			if err := json.Unmarshal([]byte(tt.want), &want); err != nil {
				t.Fatalf("bad want: %v", err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("AppendJSON\n got %s\nwant %s", out, tt.want)
			}
			back := tt.ev
			if tt.back != nil {
				back = *tt.back
			}
			var ev Event
			if err := json.Unmarshal(out, &ev); err != nil {
				t.Fatalf("output does not decode into Event: %v", err)
			}
			if !reflect.DeepEqual(ev, back) {
				t.Errorf("round trip through Event\n got %+v\nwant %+v", ev, back)
			}
		})
	}
}

// TestAppendJSONStrings checks the escaping of strings, in every string
// field: the output is valid JSON, safe to embed in JavaScript (no raw
// U+2028/U+2029) and decodes back to the input, with each invalid byte
// replaced by U+FFFD.
func TestAppendJSONStrings(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, in, lit string
	}{
		{"plain", "hi", `"hi"`},
		{"empty", "", `""`},
		{"quote", `a"b`, `"a\"b"`},
		{"backslash", `a\b`, `"a\\b"`},
		{"escape lookalike", `\n\u0000`, `"\\n\\u0000"`},
		{"newline tab return", "a\nb\tc\rd", `"a\nb\tc\rd"`},
		{"NUL", "\x00", `"\u0000"`},
		{"controls", "\x01\x08\x0b\x0c\x1b\x1f", `"\u0001\u0008\u000b\u000c\u001b\u001f"`},
		{"DEL stays", "\x7f", "\"\x7f\""},
		{"space and printable ASCII stay", " ~<>&'/", `" ~<>&'/"`},
		{"U+2028 and U+2029", "a\u2028b\u2029c", `"a\u2028b\u2029c"`},
		{"neighbours of U+2028 stay", "\u2027\u202a", "\"\u2027\u202a\""},
		{"multibyte stays", "é日本🙂", `"é日本🙂"`},
		{"U+FFFD stays", "\ufffd", "\"\ufffd\""},
		{"invalid byte", "a\xffb", `"a\ufffdb"`},
		{"truncated rune", "a\xc3", `"a\ufffd"`},
		{"two invalid bytes", "\xc3\x28", `"\ufffd("`},
		{"surrogate half", "\xed\xa0\x80", `"\ufffd\ufffd\ufffd"`},
		{"overlong slash", "\xc0\xaf", `"\ufffd\ufffd"`},
		{"invalid between escapes", "\"\xfe\n", `"\"\ufffd\n"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := string(appendString(nil, tt.in)); got != tt.lit {
				t.Errorf("appendString(%q) = %s, want %s", tt.in, got, tt.lit)
			}
			want := string([]rune(tt.in)) // each invalid byte becomes U+FFFD
			ev := Event{Type: tt.in, Ref: tt.in, Room: tt.in, From: tt.in, Text: tt.in, Old: tt.in, Nick: tt.in,
				Epoch: tt.in, Server: tt.in, Version: tt.in, Node: tt.in, Members: []string{tt.in},
				Rooms: []RoomInfo{{Name: tt.in}}, Code: tt.in, Message: tt.in}
			out := AppendJSON(nil, &ev)
			if err := checkJSONBytes(out); err != nil {
				t.Fatalf("AppendJSON: %v in %q", err, out)
			}
			var got Event
			if err := json.Unmarshal(out, &got); err != nil {
				t.Fatalf("AppendJSON output %q: %v", out, err)
			}
			for _, s := range []string{got.Type, got.Ref, got.Room, got.From, got.Text, got.Old, got.Nick,
				got.Epoch, got.Server, got.Version, got.Node, got.Members[0], got.Rooms[0].Name, got.Code, got.Message} {
				if s != want {
					t.Fatalf("a field decoded to %q, want %q (output %q)", s, want, out)
				}
			}
		})
	}
}

// checkJSONBytes checks what every encoded event must be: valid UTF-8 and
// valid JSON, with no raw control characters or U+2028/U+2029.
func checkJSONBytes(b []byte) error {
	if !utf8.Valid(b) {
		return errorf("invalid UTF-8")
	}
	if !json.Valid(b) {
		return errorf("invalid JSON")
	}
	for i, c := range b {
		if c < 0x20 {
			return errorf("raw control byte %#x at %d", c, i)
		}
	}
	if bytes.ContainsRune(b, '\u2028') || bytes.ContainsRune(b, '\u2029') {
		return errorf("raw U+2028 or U+2029")
	}
	return nil
}

func TestAppendJSONTime(t *testing.T) {
	t.Parallel()
	cet := time.FixedZone("CET", 3600)
	ny := time.FixedZone("EST", -5*3600)
	tests := []struct {
		ts   time.Time
		want string
	}{
		{ts0, "2026-11-25T19:40:09.123Z"},
		{time.Date(2026, 11, 25, 19, 40, 9, 0, time.UTC), "2026-11-25T19:40:09.000Z"},
		{time.Date(2026, 11, 25, 19, 40, 9, 1_000_000, time.UTC), "2026-11-25T19:40:09.001Z"},
		// Sub-millisecond digits are cut, not rounded: a message's time
		// never moves past the next one's.
		{time.Date(2026, 11, 25, 19, 40, 9, 999_999_999, time.UTC), "2026-11-25T19:40:09.999Z"},
		{time.Date(2026, 11, 25, 19, 40, 9, 123_456_789, time.UTC), "2026-11-25T19:40:09.123Z"},
		// Other zones are converted to UTC.
		{time.Date(2026, 11, 25, 20, 40, 9, 123_000_000, cet), "2026-11-25T19:40:09.123Z"},
		{time.Date(2026, 11, 25, 23, 59, 59, 500_000_000, ny), "2026-11-26T04:59:59.500Z"},
		{time.Date(2026, 1, 1, 0, 30, 0, 0, cet), "2025-12-31T23:30:00.000Z"},
		{time.Unix(1_795_376_409, 123_000_000).In(cet), "2026-11-22T19:40:09.123Z"},
		{time.Date(1, 1, 1, 0, 0, 0, 1_000_000, time.UTC), "0001-01-01T00:00:00.001Z"},
		{time.Date(9999, 12, 31, 23, 59, 59, 999_000_000, time.UTC), "9999-12-31T23:59:59.999Z"},
	}
	for _, tt := range tests {
		out := AppendJSON(nil, &Event{Type: EvJoin, Room: "lobby", Nick: "bob", TS: tt.ts})
		want := `{"type":"join","room":"lobby","ts":"` + tt.want + `","nick":"bob"}`
		if string(out) != want {
			t.Errorf("AppendJSON with ts %v\n got %s\nwant %s", tt.ts, out, want)
			continue
		}
		parsed, err := time.Parse(time.RFC3339, tt.want)
		if err != nil {
			t.Errorf("ts %q is not RFC 3339: %v", tt.want, err)
			continue
		}
		if !parsed.Equal(tt.ts.Truncate(time.Millisecond)) {
			t.Errorf("ts %q parses to %v, want %v", tt.want, parsed, tt.ts.Truncate(time.Millisecond))
		}
	}
	// Now is at wire precision, so that an event's time survives a round trip.
	now := Now()
	if now.Location() != time.UTC || now.Nanosecond()%1_000_000 != 0 {
		t.Errorf("Now() = %v, want UTC at millisecond precision", now)
	}
}

func TestMessageEvent(t *testing.T) {
	t.Parallel()
	m := chat.Message{Room: "lobby", ID: 7, From: "alice", Text: "waves", Kind: chat.KindAction, Time: ts0, Ref: "secret"}
	got := MessageEvent(&m, true)
	want := Event{Type: EvMessage, Room: "lobby", ID: 7, From: "alice", Text: "waves", TS: ts0, Action: true, History: true}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("MessageEvent = %+v, want %+v", got, want)
	}
	m.Kind = chat.KindText
	if got := MessageEvent(&m, false); got.Action || got.History || got.Ref != "" {
		t.Errorf("MessageEvent of a text message = %+v, want no action, no history and no ref", got)
	}
}

func TestAppendText(t *testing.T) {
	t.Parallel()
	hist := []Event{
		{Type: EvMessage, Room: "lobby", ID: 1, From: "bob", Text: "first", TS: ts0},
		{Type: EvMessage, Room: "lobby", ID: 2, From: "bob", Text: "waves", Action: true, TS: ts0},
	}
	tests := []struct {
		name    string
		ev      Event
		current string
		want    string
	}{
		{"welcome", Event{Type: EvWelcome, Nick: "alice", Room: "lobby", Epoch: "e"}, "lobby",
			"* welcome to parley, alice; you are in #lobby (type /help for commands)"},
		{"welcome without a room", Event{Type: EvWelcome, Nick: "alice"}, "",
			"* welcome to parley, alice (type /help for commands)"},
		{"message", Event{Type: EvMessage, Room: "lobby", ID: 7, From: "alice", Text: "hi", TS: ts0}, "lobby",
			"alice: hi"},
		{"message current room in other case", Event{Type: EvMessage, Room: "Lobby", From: "alice", Text: "hi"}, "lobby",
			"alice: hi"},
		{"action", Event{Type: EvMessage, Room: "lobby", From: "alice", Text: "waves", Action: true}, "lobby",
			"* alice waves"},
		{"other room", Event{Type: EvMessage, Room: "dev", From: "bob", Text: "a message in a joined room that is not the current one"}, "lobby",
			"#dev bob: a message in a joined room that is not the current one"},
		{"other room action", Event{Type: EvMessage, Room: "dev", From: "bob", Text: "waves", Action: true}, "lobby",
			"#dev * bob waves"},
		{"history", Event{Type: EvMessage, Room: "lobby", From: "bob", Text: "an earlier message, replayed on join", History: true}, "lobby",
			"[history] bob: an earlier message, replayed on join"},
		{"history other room", Event{Type: EvMessage, Room: "dev", From: "bob", Text: "old", History: true}, "lobby",
			"[history] #dev bob: old"},
		{"history action", Event{Type: EvMessage, Room: "lobby", From: "bob", Text: "waved", Action: true, History: true}, "lobby",
			"[history] * bob waved"},
		{"message with no current room", Event{Type: EvMessage, Room: "lobby", From: "bob", Text: "hi"}, "",
			"#lobby bob: hi"},
		{"text kept as is", Event{Type: EvMessage, Room: "lobby", From: "bob", Text: `a "b" \c é`}, "lobby",
			`bob: a "b" \c é`},
		{"join", Event{Type: EvJoin, Room: "lobby", Nick: "bob", TS: ts0}, "lobby", "* bob joined #lobby"},
		{"join other room", Event{Type: EvJoin, Room: "dev", Nick: "bob"}, "lobby", "* bob joined #dev"},
		{"leave", Event{Type: EvLeave, Room: "lobby", Nick: "bob"}, "lobby", "* bob left #lobby"},
		{"nick", Event{Type: EvNick, Room: "lobby", Old: "guest-0042", Nick: "carol"}, "lobby",
			"* guest-0042 is now known as carol"},
		{"who", Event{Type: EvWho, Room: "lobby", Members: []string{"alice", "carol"}}, "lobby",
			"* in #lobby (2): alice, carol"},
		{"who one", Event{Type: EvWho, Room: "dev", Members: []string{"bob"}}, "lobby", "* in #dev (1): bob"},
		{"rooms", Event{Type: EvRooms, Rooms: []RoomInfo{{Name: "lobby", Members: 2}, {Name: "dev", Members: 1}}}, "lobby",
			"* rooms: #lobby (2), #dev (1)"},
		{"rooms none", Event{Type: EvRooms}, "lobby", "* rooms: none"},
		{"history event", Event{Type: EvHistory, Room: "lobby", Messages: hist}, "lobby",
			"[history] bob: first\n[history] * bob waves"},
		{"history event of another room", Event{Type: EvHistory, Room: "lobby", Messages: hist[:1]}, "dev",
			"[history] #lobby bob: first"},
		{"gap", Event{Type: EvGap, Room: "lobby", First: 5, Last: 9}, "lobby",
			"! gap: messages 5-9 of #lobby are no longer in the history"},
		{"reset", Event{Type: EvReset, Room: "lobby", Epoch: "77ab01c3e9f24d10"}, "lobby",
			"! reset: the history of #lobby was reset; the latest messages follow"},
		{"error", Event{Type: EvError, Code: CodeNickTaken, Message: `nick "alice" is taken`, Ref: "c6"}, "lobby",
			`! error: nick "alice" is taken`},
		{"help", Event{Type: EvHelp}, "lobby", HelpText},
		{"ack shows nothing", Event{Type: EvAck, Ref: "c1", Room: "lobby", ID: 7}, "lobby", ""},
		{"unknown type shows nothing", Event{Type: "future", Room: "lobby"}, "lobby", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			prefix := []byte("frame:")
			out := AppendText(bytes.Clone(prefix), &tt.ev, tt.current)
			if !bytes.HasPrefix(out, prefix) {
				t.Fatalf("AppendText overwrote the buffer's prefix: %q", out)
			}
			if got := string(out[len(prefix):]); got != tt.want {
				t.Errorf("AppendText\n got %q\nwant %q", got, tt.want)
			}
		})
	}
	// The history event must not mark the caller's messages.
	if hist[0].History || hist[1].History {
		t.Error("AppendText of a history event changed its messages")
	}
}

func TestHelpTextListsEveryCommand(t *testing.T) {
	t.Parallel()
	for _, cmd := range []string{"/nick NAME", "/join ROOM", "/leave [ROOM]", "/who [ROOM]", "/rooms", "/me ACTION", "/help", "//"} {
		if !strings.Contains(HelpText, cmd) {
			t.Errorf("HelpText does not mention %q", cmd)
		}
	}
	for _, line := range strings.Split(HelpText, "\n") {
		if !strings.HasPrefix(line, "* ") {
			t.Errorf("help line %q does not start with \"* \"", line)
		}
	}
}
