package protocol

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

// Seeds shared by the code and testdata/fuzz: the spec's examples and the
// inputs that found bugs.
var jsonSeeds = []string{
	`{"type":"send","room":"lobby","text":"hi","ref":"c1"}`,
	`{"type":"send","room":"lobby","text":"waves","action":true,"ref":"c2"}`,
	`{"type":"join","room":"dev","since":41,"epoch":"3f9c0a12d4e5b6a7","ref":"c4"}`,
	`{"type":"leave","room":"dev","ref":"c5"}`,
	`{"type":"nick","nick":"alice","ref":"c6"}`,
	`{"type":"who","room":"lobby","ref":"c7"}`,
	`{"type":"rooms","ref":"c8"}`,
	`{"type":"history","room":"lobby","before":120,"limit":50,"ref":"c9"}`,
	`{"type":"rooms","ref":"c1"}]`,
	`{"type":"send","ref":"c1","room":"lo`,
	`{"type":"join","room":5,"ref":"c1"}`,
	`{"type":"join","room":"dev","since":-1}`,
	`{"REF":"a","ref":7,"Type":"rooms"}`,
	`[1]`,
	``,
}

// FuzzDecodeJSON: DecodeJSON never panics; an accepted frame is one JSON
// object and a command that re-validates (and survives a round trip through
// encoding/json); an error is well-formed and carries the ref whenever the
// frame is valid JSON with a string ref within the limit.
func FuzzDecodeJSON(f *testing.F) {
	for _, s := range jsonSeeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c, e := DecodeJSON(data)
		if e != nil {
			if err := checkError(e); err != nil {
				t.Fatalf("DecodeJSON(%q): %v", data, err)
			}
			if !reflect.DeepEqual(c, Command{}) {
				t.Fatalf("DecodeJSON(%q) returned %s with error %v", data, fmtCommand(c), e)
			}
			var probe struct {
				Ref *string `json:"ref"`
			}
			if json.Unmarshal(data, &probe) == nil {
				want := ""
				if probe.Ref != nil && len(*probe.Ref) <= MaxRefBytes {
					want = *probe.Ref
				}
				if e.Ref != want {
					t.Fatalf("DecodeJSON(%q) error %v carries ref %q, want %q", data, e, e.Ref, want)
				}
			}
			return
		}
		if !json.Valid(data) || bytes.TrimLeft(data, " \t\r\n")[0] != '{' {
			t.Fatalf("DecodeJSON(%q) accepted a frame that is not one JSON object: %s", data, fmtCommand(c))
		}
		if err := checkCommand(c, JSON); err != nil {
			t.Fatalf("DecodeJSON(%q) accepted an invalid command %s: %v", data, fmtCommand(c), err)
		}
		again, err := json.Marshal(c)
		if err != nil {
			t.Fatal(err)
		}
		c2, e := DecodeJSON(again)
		if e != nil || !reflect.DeepEqual(c, c2) {
			t.Fatalf("DecodeJSON(%q) = %s; its re-encoding %s decodes to %s, %v", data, fmtCommand(c), again, fmtCommand(c2), e)
		}
	})
}

var textSeeds = []string{
	"hi", "hi\r\n", "//x", "", "   ",
	"/nick alice", "/join #dev", "/join #", "/leave", "/who #lobby", "/rooms", "/me waves", "/help",
	"/shout", "/" + strings.Repeat("z", 31) + "é",
}

// FuzzDecodeText: DecodeText never panics; an accepted line is a command
// that re-validates (names valid, text not empty, no ref); an error is
// well-formed, and for a valid UTF-8 line (the server closes with 1007 on
// any other) its message is valid UTF-8.
func FuzzDecodeText(f *testing.F) {
	for _, s := range textSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		c, e := DecodeText(line)
		if e != nil {
			if utf8.ValidString(line) {
				if err := checkError(e); err != nil {
					t.Fatalf("DecodeText(%q): %v", line, err)
				}
			} else if !knownCodes[e.Code] || len(e.Message) > maxErrorMessage {
				t.Fatalf("DecodeText(%q) error %s of %d bytes", line, e.Code, len(e.Message))
			}
			if e.Ref != "" || e.Room != "" {
				t.Fatalf("DecodeText(%q) error %v with ref %q room %q", line, e, e.Ref, e.Room)
			}
			if !reflect.DeepEqual(c, Command{}) {
				t.Fatalf("DecodeText(%q) returned %s with error %v", line, fmtCommand(c), e)
			}
			return
		}
		if err := checkCommand(c, Text); err != nil {
			t.Fatalf("DecodeText(%q) accepted an invalid command %s: %v", line, fmtCommand(c), err)
		}
		if c.Type == CmdSend && strings.TrimSpace(c.Text) == "" {
			t.Fatalf("DecodeText(%q) accepted a blank message %q", line, c.Text)
		}
	})
}

// FuzzAppendJSON: for arbitrary strings in every string field the output
// is valid JSON, with no raw control characters or U+2028/2029, appended
// after the buffer's contents, and decodes back to the same event, each
// invalid UTF-8 byte read as U+FFFD.
func FuzzAppendJSON(f *testing.F) {
	f.Add("message", "c1", "lobby", "alice", "hi", "bob", "guest-1", uint64(7), int64(1795376409123), true, false)
	f.Add("history", "", "dev", "a\"b", "line\nbreak\u2028", "\\", "\x00", uint64(0), int64(0), false, true)
	f.Add("who", "\xff", "\xed\xa0\x80", "é", "🙂", "\x7f", "\u2029", uint64(1<<64-1), int64(-62135596800000), false, false)
	f.Add("gap", "a\xc3", "\xc0\xaf", "<>&", "\t\r", "\x1f", "", uint64(5), int64(253402300799999), true, true)
	f.Fuzz(func(t *testing.T, typ, ref, room, from, text, nick, old string, id uint64, ms int64, action, history bool) {
		ts := wireTime(ms)
		msg := Event{Type: EvMessage, Room: room, ID: id, From: from, Text: text, TS: ts, Action: action, History: true}
		ev := Event{
			Type: typ, Ref: ref, Room: room, ID: id, From: from, Text: text, TS: ts, Action: action, History: history,
			Nick: nick, Old: old, Epoch: ref, Server: from, Version: text, Node: nick,
			Limits:   &Limits{MaxMessageBytes: int(id % 1e6), Rate: float64(ms%1000) / 8, Burst: int(id % 100), History: int(id % 500)},
			Members:  []string{nick, old, text},
			Rooms:    []RoomInfo{{Name: room, Members: int(id % 1000)}, {Name: old}},
			Messages: []Event{msg, msg},
			More:     action, First: id, Last: id / 2,
			Code: old, Message: text,
		}
		prefix := []byte("prefix")
		out := AppendJSON(bytes.Clone(prefix), &ev)
		if !bytes.HasPrefix(out, prefix) {
			t.Fatalf("AppendJSON overwrote the buffer's prefix: %q", out)
		}
		out = out[len(prefix):]
		if err := checkJSONBytes(out); err != nil {
			t.Fatalf("AppendJSON: %v: %q", err, out)
		}
		var got Event
		if err := json.Unmarshal(out, &got); err != nil {
			t.Fatalf("AppendJSON output %q does not decode: %v", out, err)
		}
		if want := validEvent(ev); !reflect.DeepEqual(got, want) {
			t.Fatalf("AppendJSON output %q\ndecodes to %+v\n      want %+v", out, got, want)
		}
	})
}

// wireTime maps ms onto a time that RFC 3339 can hold (years 1-9999), in
// milliseconds since the Unix epoch.
func wireTime(ms int64) time.Time {
	const first, end = -62135596800000, 253402300800000 // 0001-01-01, 10000-01-01
	const span = end - first
	m := ms % span
	if m < 0 {
		m += span
	}
	return time.UnixMilli(m + first).UTC()
}

// validEvent returns ev with each string as it decodes from JSON: every
// invalid UTF-8 byte is U+FFFD.
func validEvent(ev Event) Event {
	fix := func(s string) string { return string([]rune(s)) }
	ev.Type, ev.Ref, ev.Room, ev.From, ev.Text = fix(ev.Type), fix(ev.Ref), fix(ev.Room), fix(ev.From), fix(ev.Text)
	ev.Nick, ev.Old, ev.Epoch, ev.Server, ev.Version, ev.Node = fix(ev.Nick), fix(ev.Old), fix(ev.Epoch), fix(ev.Server), fix(ev.Version), fix(ev.Node)
	ev.Code, ev.Message = fix(ev.Code), fix(ev.Message)
	if ev.Members != nil {
		ms := make([]string, len(ev.Members))
		for i, m := range ev.Members {
			ms[i] = fix(m)
		}
		ev.Members = ms
	}
	if ev.Rooms != nil {
		rs := make([]RoomInfo, len(ev.Rooms))
		for i, r := range ev.Rooms {
			rs[i] = RoomInfo{Name: fix(r.Name), Members: r.Members}
		}
		ev.Rooms = rs
	}
	if ev.Messages != nil {
		ms := make([]Event, len(ev.Messages))
		for i, m := range ev.Messages {
			ms[i] = validEvent(m)
		}
		ev.Messages = ms
	}
	return ev
}
