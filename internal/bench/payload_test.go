package bench

import (
	"strings"
	"testing"
)

func TestPayloadRoundTrip(t *testing.T) {
	t.Parallel()
	m := newMarker(0xabc123)
	for _, size := range []int{MinSize, 64, 512} {
		b := make([]byte, size)
		want := payload{pub: 513, seq: 1<<32 - 2, sent: 123456789012}
		encodePayload(b, m, want)
		if len(b) != size || strings.ContainsAny(string(b), " \n\"\\") {
			t.Fatalf("payload %q: wrong size or a byte that a server may change", b)
		}
		for _, frame := range []string{
			string(b),
			`{"type":"message","room":"bench-0","id":7,"from":"p1","text":"` + string(b) + `","ts":"2026-11-25T19:40:09.123Z"}`,
			"bench-p1: " + string(b),
		} {
			got, err := findPayload([]byte(frame), m)
			if err != nil || got != want {
				t.Errorf("findPayload(%q) = %+v, %v; want %+v", frame, got, err, want)
			}
		}
	}
	if _, err := findPayload([]byte("~abc124000100000001000000000001~"), m); err != errNoPayload {
		t.Errorf("another run's payload: err = %v, want errNoPayload", err)
	}
	if _, err := findPayload([]byte("~abc1230001000000"), m); err == nil || err == errNoPayload {
		t.Errorf("truncated payload: err = %v, want a parse error", err)
	}
}

func TestFindPayloadDoesNotAllocate(t *testing.T) {
	m := newMarker(7)
	b := make([]byte, 64)
	encodePayload(b, m, payload{pub: 1, seq: 2, sent: 3})
	frame := []byte(`{"type":"message","text":"` + string(b) + `"}`)
	if n := testing.AllocsPerRun(100, func() { _, _ = findPayload(frame, m) }); n != 0 {
		t.Errorf("findPayload allocates %v times", n)
	}
}
