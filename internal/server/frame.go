package server

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"unicode/utf8"

	"github.com/gobwas/ws"
)

// Close codes parley sends (RFC 6455, section 7.4.1).
const (
	closeNormal        = 1000
	closeGoingAway     = 1001
	closeProtocolError = 1002
	closeInvalidData   = 1007
	closePolicy        = 1008
	closeTooBig        = 1009
	closeInternal      = 1011
)

// appendFrame appends a complete, unmasked server frame.
func appendFrame(b []byte, op ws.OpCode, payload []byte) []byte {
	b = append(b, 0x80|byte(op))
	switch n := len(payload); {
	case n < 126:
		b = append(b, byte(n))
	case n <= 0xffff:
		b = append(b, 126, byte(n>>8), byte(n))
	default:
		b = append(b, 127)
		b = binary.BigEndian.AppendUint64(b, uint64(n))
	}
	return append(b, payload...)
}

// textFrame returns a text frame for payload, with room for the header
// reserved up front so that the payload is appended in place.
func textFrame(encode func([]byte) []byte) []byte {
	const reserve = 10 // the longest header of an unmasked frame
	b := make([]byte, reserve, 256)
	b = encode(b)
	n := len(b) - reserve
	var hdr [reserve]byte
	h := appendFrame(hdr[:0], ws.OpText, nil)
	switch {
	case n < 126:
		h[1] = byte(n)
	case n <= 0xffff:
		h = append(h[:1], 126, byte(n>>8), byte(n))
	default:
		h = append(h[:1], 127)
		h = binary.BigEndian.AppendUint64(h, uint64(n))
	}
	start := reserve - len(h)
	copy(b[start:], h)
	return b[start:]
}

// closeFrame returns a close frame with a code and a reason (cut to fit the
// 125-byte limit of control frames, on a rune boundary).
func closeFrame(code int, reason string) []byte {
	if len(reason) > 123 {
		reason = reason[:123]
		for !utf8.ValidString(reason) {
			reason = reason[:len(reason)-1]
		}
	}
	p := make([]byte, 2, 2+len(reason))
	binary.BigEndian.PutUint16(p, uint16(code))
	p = append(p, reason...)
	return appendFrame(nil, ws.OpClose, p)
}

// A protocolError ends a connection with a close code.
type protocolError struct {
	code   int
	reason string
}

func (e *protocolError) Error() string { return fmt.Sprintf("close %d: %s", e.code, e.reason) }

func failf(code int, format string, args ...any) error {
	return &protocolError{code: code, reason: fmt.Sprintf(format, args...)}
}

// validCloseCode reports whether a peer may send code in a close frame.
func validCloseCode(code int) bool {
	switch {
	case code >= 1000 && code <= 1003, code >= 1007 && code <= 1014:
		return true
	case code >= 3000 && code <= 4999:
		return true
	}
	return false
}

// connReader reads an upgraded connection: first what was read past the
// handshake, then the socket itself, with no buffer of its own, so that an
// idle connection holds no read buffer.
type connReader struct {
	conn net.Conn
	pre  []byte // nil once drained
}

// drained reports whether everything read past the handshake was
// consumed.
func (r *connReader) drained() bool { return len(r.pre) == 0 }

func (r *connReader) Read(p []byte) (int, error) {
	if len(r.pre) > 0 {
		n := copy(p, r.pre)
		r.pre = r.pre[n:]
		if len(r.pre) == 0 {
			r.pre = nil
		}
		return n, nil
	}
	return r.conn.Read(p)
}

// message is one complete data message read from a client.
type message struct {
	op   ws.OpCode // ws.OpText or ws.OpBinary
	data []byte
}

// frameReader reads client frames and enforces RFC 6455's rules for a
// server: masked frames, no reserved bits, known opcodes, small unfragmented
// control frames, valid close codes, UTF-8 text, and the size limit.
type frameReader struct {
	r   *connReader
	max int // largest message, in bytes

	buf []byte // the message being assembled; reused
	hdr [ws.MaxHeaderSize]byte

	// onPing is called with each ping's payload. A close frame ends
	// reading with a *peerClosed (after validating it).
	onPing func(payload []byte)
	// onFrame, if set, is called as each frame arrives, control frames
	// (pongs) included: the peer is alive. The session pushes its read
	// deadline (Config.PongTimeout) back from it; without it a client that
	// only answers pings is dropped after PongTimeout, because pings and
	// pongs never end a call to next.
	onFrame func()
}

// peerClosed is returned when the client sent a valid close frame; its
// code is what to echo.
type peerClosed struct{ code int }

func (e *peerClosed) Error() string { return fmt.Sprintf("peer closed with %d", e.code) }

// next returns the next complete data message. The returned data is valid
// until the next call.
func (fr *frameReader) next() (message, error) {
	fr.buf = fr.buf[:0]
	var op ws.OpCode
	fragmented := false
	for {
		h, err := ws.ReadHeaderBuffer(fr.r, fr.hdr[:])
		if err != nil {
			if errors.Is(err, ws.ErrHeaderLengthMSB) || errors.Is(err, ws.ErrHeaderLengthUnexpected) {
				return message{}, failf(closeProtocolError, "bad frame length")
			}
			return message{}, err
		}
		if fr.onFrame != nil {
			fr.onFrame()
		}
		if h.Rsv != 0 {
			return message{}, failf(closeProtocolError, "reserved bits set")
		}
		if !h.Masked {
			return message{}, failf(closeProtocolError, "client frames must be masked")
		}
		if h.OpCode.IsControl() {
			if !h.Fin {
				return message{}, failf(closeProtocolError, "fragmented control frame")
			}
			if h.Length > 125 {
				return message{}, failf(closeProtocolError, "control frame over 125 bytes")
			}
			var p [125]byte
			payload := p[:h.Length]
			if _, err := io.ReadFull(fr.r, payload); err != nil {
				return message{}, err
			}
			ws.Cipher(payload, h.Mask, 0)
			switch h.OpCode {
			case ws.OpPing:
				fr.onPing(payload)
			case ws.OpPong:
			case ws.OpClose:
				return message{}, closeReceived(payload)
			default:
				return message{}, failf(closeProtocolError, "unknown opcode %d", h.OpCode)
			}
			continue
		}
		switch h.OpCode {
		case ws.OpContinuation:
			if !fragmented {
				return message{}, failf(closeProtocolError, "continuation frame without a message to continue")
			}
		case ws.OpText, ws.OpBinary:
			if fragmented {
				return message{}, failf(closeProtocolError, "new message before the fragmented one ended")
			}
			op = h.OpCode
			fragmented = true
		default:
			return message{}, failf(closeProtocolError, "unknown opcode %d", h.OpCode)
		}
		if int64(len(fr.buf))+h.Length > int64(fr.max) {
			return message{}, failf(closeTooBig, "message over %d bytes", fr.max)
		}
		n := int(h.Length)
		start := len(fr.buf)
		fr.buf = grow(fr.buf, n)
		if _, err := io.ReadFull(fr.r, fr.buf[start:start+n]); err != nil {
			return message{}, err
		}
		ws.Cipher(fr.buf[start:start+n], h.Mask, 0)
		if h.Fin {
			if op == ws.OpText && !utf8.Valid(fr.buf) {
				return message{}, failf(closeInvalidData, "invalid UTF-8 in a text message")
			}
			return message{op: op, data: fr.buf}, nil
		}
	}
}

func grow(b []byte, n int) []byte {
	if cap(b)-len(b) < n {
		nb := make([]byte, len(b), len(b)+n+len(b)/2)
		copy(nb, b)
		b = nb
	}
	return b[:len(b)+n]
}

func closeReceived(payload []byte) error {
	switch {
	case len(payload) == 0:
		return &peerClosed{code: closeNormal}
	case len(payload) == 1:
		return failf(closeProtocolError, "close frame with a 1-byte payload")
	}
	code := int(binary.BigEndian.Uint16(payload))
	if !validCloseCode(code) {
		return failf(closeProtocolError, "invalid close code %d", code)
	}
	if !utf8.Valid(payload[2:]) {
		return failf(closeInvalidData, "invalid UTF-8 in the close reason")
	}
	return &peerClosed{code: code}
}
