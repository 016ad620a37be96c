package protocol

import (
	"strings"
	"testing"
)

// text64 is a typical chat line: 64 bytes, one quote to escape.
var text64 = `see "this": ` + strings.Repeat("x", 52)

func benchMessage() Event {
	return Event{Type: EvMessage, Room: "lobby", ID: 123456, From: "alice", Text: text64, TS: ts0}
}

// The hub encodes each message once per format into a reused buffer.
func BenchmarkAppendJSONMessage(b *testing.B) {
	if len(text64) != 64 {
		b.Fatalf("text is %d bytes", len(text64))
	}
	ev := benchMessage()
	buf := AppendJSON(nil, &ev)
	b.SetBytes(int64(len(buf)))
	b.ReportAllocs()
	for b.Loop() {
		buf = AppendJSON(buf[:0], &ev)
	}
}

func BenchmarkAppendTextMessage(b *testing.B) {
	ev := benchMessage()
	buf := AppendText(nil, &ev, "lobby")
	b.SetBytes(int64(len(buf)))
	b.ReportAllocs()
	for b.Loop() {
		buf = AppendText(buf[:0], &ev, "lobby")
	}
}

func BenchmarkDecodeJSONSend(b *testing.B) {
	frame := []byte(`{"type":"send","room":"lobby","text":` + string(appendString(nil, text64)) + `,"ref":"c-000001"}`)
	if _, err := DecodeJSON(frame); err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(frame)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := DecodeJSON(frame); err != nil {
			b.Fatal(err)
		}
	}
}
