package bench

import (
	"bytes"
	"errors"
	"fmt"
)

// A payload is the text of one benchmark message, exactly Config.Size bytes:
//
//	~RRRRRRPPPPSSSSSSSSTTTTTTTTTTTT~xxxxxxxx...
//
// R is the run id (6 hex digits, so messages of an earlier run in the same
// room are ignored), P the publisher (4 hex digits), S its sequence number
// (8 hex digits; 0 is a probe sent before the measurement starts), T the
// send time in nanoseconds since the run started (12 hex digits, 78 hours),
// and x pads to the size. Every byte is printable ASCII that needs no JSON
// escaping and contains no space or newline, so servers that trim or split
// lines (gorilla's chat example) pass it through unchanged, and a receiver
// finds it in a JSON event or a text line with one bytes.Index.
const (
	runDigits  = 6
	pubDigits  = 4
	seqDigits  = 8
	timeDigits = 12

	// MinSize is the smallest payload: the header without padding.
	MinSize = 1 + runDigits + pubDigits + seqDigits + timeDigits + 1

	maxPubs = 1 << (4 * pubDigits)
	maxSeq  = 1<<(4*seqDigits) - 1
)

// payload is one decoded benchmark message.
type payload struct {
	pub  int
	seq  uint64
	sent int64 // ns since the run started
}

// marker is what starts every payload of one run: '~' and the run id.
type marker [1 + runDigits]byte

func newMarker(run uint32) marker {
	var m marker
	m[0] = '~'
	putHex(m[1:], uint64(run))
	return m
}

// encodePayload fills b (len(b) is the size) with the payload for p.
func encodePayload(b []byte, m marker, p payload) {
	n := copy(b, m[:])
	putHex(b[n:n+pubDigits], uint64(p.pub))
	n += pubDigits
	putHex(b[n:n+seqDigits], p.seq)
	n += seqDigits
	putHex(b[n:n+timeDigits], uint64(p.sent))
	n += timeDigits
	b[n] = '~'
	for i := n + 1; i < len(b); i++ {
		b[i] = 'x'
	}
}

var errNoPayload = errors.New("no payload of this run")

// findPayload finds and decodes the first payload of run m in b (a JSON
// event or a text line). It does not allocate.
func findPayload(b []byte, m marker) (payload, error) {
	i := bytes.Index(b, m[:])
	if i < 0 {
		return payload{}, errNoPayload
	}
	b = b[i+len(m):]
	if len(b) < MinSize-len(m) || b[MinSize-len(m)-1] != '~' {
		return payload{}, fmt.Errorf("truncated payload %q", b)
	}
	pub, ok1 := getHex(b[:pubDigits])
	seq, ok2 := getHex(b[pubDigits : pubDigits+seqDigits])
	sent, ok3 := getHex(b[pubDigits+seqDigits : pubDigits+seqDigits+timeDigits])
	if !ok1 || !ok2 || !ok3 {
		return payload{}, fmt.Errorf("malformed payload %q", b[:MinSize-len(m)])
	}
	return payload{pub: int(pub), seq: seq, sent: int64(sent)}, nil
}

const hexDigits = "0123456789abcdef"

// putHex writes v into b as len(b) lowercase hex digits (the low ones).
func putHex(b []byte, v uint64) {
	for i := len(b) - 1; i >= 0; i-- {
		b[i] = hexDigits[v&0xf]
		v >>= 4
	}
}

func getHex(b []byte) (uint64, bool) {
	var v uint64
	for _, c := range b {
		switch {
		case c >= '0' && c <= '9':
			v = v<<4 | uint64(c-'0')
		case c >= 'a' && c <= 'f':
			v = v<<4 | uint64(c-'a'+10)
		default:
			return 0, false
		}
	}
	return v, true
}
