package nats

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/nats-io/nats.go"

	"parley/internal/chat"
)

// A stored message: the text is the payload (so `nats stream view` shows
// it), everything else is in headers. The id is the stream sequence and is
// not stored.
const (
	hdrRoom = "Parley-Room" // the room as the sender spelled it
	hdrFrom = "Parley-From"
	hdrKind = "Parley-Kind" // decimal chat.Kind, absent for text
	hdrTime = "Parley-Time" // unix milliseconds, set by the appending node
	hdrRef  = "Parley-Ref"  // the sender's ref, absent when none

	// Headers the server adds to direct-get answers.
	hdrSeq     = "Nats-Sequence"
	hdrSubject = "Nats-Subject"
	hdrStamp   = "Nats-Time-Stamp"
	hdrPending = "Nats-Num-Pending"
	hdrStatus  = "Status"
)

// msgID is the deduplication id of a message with a ref: the folded nick
// and the ref. Nicks cannot contain ':', so the pair is unambiguous.
func msgID(m chat.Message) string {
	return chat.FoldName(m.From) + ":" + m.Ref
}

// encode builds the NATS message for m on subject.
func encode(subject string, m chat.Message) *nats.Msg {
	msg := nats.NewMsg(subject)
	msg.Data = []byte(m.Text)
	h := msg.Header
	h.Set(hdrRoom, m.Room)
	h.Set(hdrFrom, m.From)
	if m.Kind != chat.KindText {
		h.Set(hdrKind, strconv.Itoa(int(m.Kind)))
	}
	h.Set(hdrTime, strconv.FormatInt(m.Time.UnixMilli(), 10))
	if m.Ref != "" {
		h.Set(hdrRef, m.Ref)
		h.Set(nats.MsgIdHdr, msgID(m))
	}
	return msg
}

var errNotParley = errors.New("not a parley message")

// decode rebuilds a message from its stored form. stamp is the stream's
// timestamp, used when the time header is missing.
func decode(prefix, subject string, seq uint64, h nats.Header, data []byte, stamp time.Time) (chat.Message, error) {
	room, ok := strings.CutPrefix(subject, prefix)
	if !ok || h.Get(hdrFrom) == "" {
		return chat.Message{}, fmt.Errorf("seq %d on %q: %w", seq, subject, errNotParley)
	}
	if r := h.Get(hdrRoom); r != "" {
		room = r
	}
	m := chat.Message{
		Room: room,
		ID:   seq,
		From: h.Get(hdrFrom),
		Text: string(data),
		Ref:  h.Get(hdrRef),
		Time: stamp.UTC().Truncate(time.Millisecond),
	}
	if k := h.Get(hdrKind); k != "" {
		n, err := strconv.ParseUint(k, 10, 8)
		if err != nil {
			return chat.Message{}, fmt.Errorf("seq %d: bad kind %q", seq, k)
		}
		m.Kind = chat.Kind(n)
	}
	if t := h.Get(hdrTime); t != "" {
		ms, err := strconv.ParseInt(t, 10, 64)
		if err != nil {
			return chat.Message{}, fmt.Errorf("seq %d: bad time %q", seq, t)
		}
		m.Time = time.UnixMilli(ms).UTC()
	}
	return m, nil
}

// decodeDirect decodes a direct-get answer, whose subject, sequence and
// timestamp are in headers.
func decodeDirect(prefix string, msg *nats.Msg) (chat.Message, error) {
	seq, err := strconv.ParseUint(msg.Header.Get(hdrSeq), 10, 64)
	if err != nil {
		return chat.Message{}, fmt.Errorf("direct get: bad sequence %q", msg.Header.Get(hdrSeq))
	}
	stamp, _ := time.Parse(time.RFC3339Nano, msg.Header.Get(hdrStamp))
	return decode(prefix, msg.Header.Get(hdrSubject), seq, msg.Header, msg.Data, stamp)
}
