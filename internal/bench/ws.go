package bench

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"sync"
	"time"
)

// wsConn is the client side of one WebSocket connection (RFC 6455) on a
// net.Conn: just what a load generator needs, as cheaply as it can be
// done. A library client costs more per connection and per frame than the
// server it measures (coder/websocket over net/http took about 2 CPU
// seconds to open 10,000 connections); the bench shares the cores with
// that server.
//
// One goroutine, the reader, calls readMessage and owns the socket's
// lifetime: readLoop closes it when reading ends. Any goroutine may write
// (writeText, close): the reader answers pings, so writes take mu.
type wsConn struct {
	nc net.Conn

	// Owned by the reader. buf holds what was read and not yet parsed in
	// buf[r:w]. It starts small (an idle connection must stay cheap), and
	// grows when a frame needs it, or up to readBatch when a read fills it
	// (a busy subscriber then gets a coalesced batch of frames in one
	// read system call instead of several).
	buf  []byte
	r, w int
	msg  []byte // a fragmented message being assembled

	mu        sync.Mutex
	wbuf      []byte // guarded by mu: the frame being written
	closeSent bool   // guarded by mu
}

const (
	// readBufSize is a connection's first read buffer: a handshake
	// response and a welcome fit.
	readBufSize = 512
	// readBatch is how far a read buffer grows when reads fill it.
	readBatch = 8 << 10
	// maxMessage bounds a message (history pages and batched text frames
	// can be large; nothing the bench expects comes near it).
	maxMessage = 1 << 20
	// closeWait is how long a closing handshake may take before the
	// socket is closed anyway.
	closeWait = 5 * time.Second
	// maxControl is a control frame's largest payload.
	maxControl = 125
)

// Opcodes.
const (
	opContinuation = 0x0
	opText         = 0x1
	opBinary       = 0x2
	opClose        = 0x8
	opPing         = 0x9
	opPong         = 0xa
)

// Close codes the bench sends or names.
const (
	closeNormal      = 1000
	closeGoingAway   = 1001
	closeProtocol    = 1002
	closeNoStatus    = 1005 // none in the frame; never sent
	closeTooBig      = 1009
	closeInternalErr = 1011
)

// closeError is the close frame the server sent: readMessage returns it
// once it has answered the close.
type closeError struct {
	code   int
	reason string
}

func (e *closeError) Error() string {
	s := fmt.Sprintf("the server closed the connection: %d", e.code)
	if name := closeName(e.code); name != "" {
		s += " " + name
	}
	if e.reason != "" {
		s += fmt.Sprintf(" %q", e.reason)
	}
	return s
}

func closeName(code int) string {
	switch code {
	case closeNormal:
		return "(normal)"
	case closeGoingAway:
		return "(going away)"
	case closeProtocol:
		return "(protocol error)"
	case closeNoStatus:
		return "(no status)"
	case 1008:
		return "(policy violation)"
	case closeTooBig:
		return "(message too big)"
	case closeInternalErr:
		return "(internal error)"
	case 1013:
		return "(try again later)"
	}
	return ""
}

// protocolError is a frame the server should not have sent.
type protocolError string

func (e protocolError) Error() string { return "websocket protocol error: " + string(e) }

// newWSConn wraps a connection whose handshake is done; buf[r:w] are bytes
// read after the handshake response (the start of the first frame).
func newWSConn(nc net.Conn, buf []byte, r, w int) *wsConn {
	return &wsConn{nc: nc, buf: buf, r: r, w: w}
}

// readMessage returns the next text or binary message, answering pings and
// assembling fragments on the way. The bytes are valid until the next call.
// A close from the server is answered and returned as a *closeError. It
// does not allocate once the buffers fit the traffic.
func (c *wsConn) readMessage() ([]byte, error) {
	fragmented := false
	for {
		b0, payload, err := c.readFrame()
		if err != nil {
			return nil, err
		}
		fin := b0&0x80 != 0
		op := b0 & 0xf
		if op >= opClose && (!fin || len(payload) > maxControl) {
			return nil, c.fail(closeProtocol, protocolError("a fragmented or oversized control frame"))
		}
		switch op {
		case opText, opBinary:
			if fragmented {
				return nil, c.fail(closeProtocol, protocolError("a new message inside a fragmented one"))
			}
			if fin {
				return payload, nil // in place: no copy
			}
			c.msg = append(c.msg[:0], payload...)
			fragmented = true
		case opContinuation:
			if !fragmented {
				return nil, c.fail(closeProtocol, protocolError("a continuation frame outside a message"))
			}
			if len(c.msg)+len(payload) > maxMessage {
				return nil, c.fail(closeTooBig, fmt.Errorf("a message over the %d-byte limit", maxMessage))
			}
			c.msg = append(c.msg, payload...)
			if fin {
				return c.msg, nil
			}
		case opPing:
			if err := c.writeControl(opPong, payload); err != nil {
				return nil, fmt.Errorf("answer a ping: %w", err)
			}
		case opPong:
		case opClose:
			return nil, c.answerClose(payload)
		default:
			return nil, c.fail(closeProtocol, protocolError(fmt.Sprintf("unknown opcode %#x", op)))
		}
	}
}

// answerClose echoes the server's close code (unless we sent a close
// first) and returns what the server said.
func (c *wsConn) answerClose(payload []byte) error {
	e := &closeError{code: closeNoStatus}
	switch {
	case len(payload) == 1:
		return c.fail(closeProtocol, protocolError("a 1-byte close frame"))
	case len(payload) >= 2:
		e.code = int(binary.BigEndian.Uint16(payload))
		e.reason = string(payload[2:])
	}
	var echo []byte
	if e.code != closeNoStatus {
		echo = payload[:2]
	}
	c.writeClose(echo) // best effort: the connection is over either way
	return e
}

// fail sends a close with code for a bad frame (best effort) and returns err.
func (c *wsConn) fail(code uint16, err error) error {
	c.writeClose(binary.BigEndian.AppendUint16(nil, code))
	return err
}

// readFrame reads one frame and returns its first byte and its payload,
// in place in buf.
func (c *wsConn) readFrame() (byte, []byte, error) {
	if c.r == c.w {
		c.r, c.w = 0, 0
	}
	if err := c.fill(2); err != nil {
		return 0, nil, err
	}
	b0, b1 := c.buf[c.r], c.buf[c.r+1]
	if b0&0x70 != 0 {
		return 0, nil, c.fail(closeProtocol, protocolError("reserved bits set (no extension was negotiated)"))
	}
	if b1&0x80 != 0 {
		return 0, nil, c.fail(closeProtocol, protocolError("a masked frame from the server"))
	}
	hl, n := 2, uint64(b1&0x7f)
	switch n {
	case 126:
		hl = 4
	case 127:
		hl = 10
	}
	if hl > 2 {
		if err := c.fill(hl); err != nil {
			return 0, nil, err
		}
		if hl == 4 {
			n = uint64(binary.BigEndian.Uint16(c.buf[c.r+2:]))
		} else {
			n = binary.BigEndian.Uint64(c.buf[c.r+2:])
		}
	}
	if n > maxMessage {
		return 0, nil, c.fail(closeTooBig, fmt.Errorf("a %d-byte frame is over the %d-byte limit", n, maxMessage))
	}
	size := hl + int(n)
	if err := c.fill(size); err != nil {
		return 0, nil, err
	}
	payload := c.buf[c.r+hl : c.r+size]
	c.r += size
	return b0, payload, nil
}

// fill reads until buf[r:w] holds at least k bytes, making room first if
// they cannot fit after r.
func (c *wsConn) fill(k int) error {
	for c.w-c.r < k {
		if c.r+k > len(c.buf) {
			c.room(k)
		}
		free := len(c.buf) - c.w
		n, err := c.nc.Read(c.buf[c.w:])
		c.w += n
		if c.w-c.r >= k {
			if n == free && len(c.buf) < readBatch {
				c.room(2 * len(c.buf))
			}
			return nil
		}
		if err != nil {
			if errors.Is(err, io.EOF) && c.w > c.r {
				err = io.ErrUnexpectedEOF
			}
			return err
		}
	}
	return nil
}

// room moves the unread bytes to the front of buf, first growing it to
// size bytes if it is smaller.
func (c *wsConn) room(size int) {
	b := c.buf
	if size > len(b) {
		b = make([]byte, size)
	}
	c.w = copy(b, c.buf[c.r:c.w])
	c.r = 0
	c.buf = b
}

// writeText sends p as one masked text frame, in one write.
func (c *wsConn) writeText(p []byte) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closeSent {
		return net.ErrClosed
	}
	c.wbuf = appendFrame(c.wbuf[:0], opText, p)
	_, err := c.nc.Write(c.wbuf)
	return err
}

// writeControl sends a control frame (payload at most 125 bytes). After
// a close, nothing more is sent.
func (c *wsConn) writeControl(op byte, payload []byte) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closeSent {
		return nil
	}
	if op == opClose {
		c.closeSent = true
	}
	c.wbuf = appendFrame(c.wbuf[:0], op, payload)
	_, err := c.nc.Write(c.wbuf)
	return err
}

// writeClose sends a close frame with payload (a code, or nothing) unless
// one was sent.
func (c *wsConn) writeClose(payload []byte) { c.writeControl(opClose, payload) }

// close starts the closing handshake with code. The server's answer ends
// the reader, which closes the socket; deadline bounds both the write and
// the wait for the answer.
func (c *wsConn) close(code uint16, deadline time.Time) {
	c.nc.SetWriteDeadline(deadline)
	c.writeClose(binary.BigEndian.AppendUint16(nil, code))
	c.nc.SetReadDeadline(deadline)
}

// closeNow closes the socket without a closing handshake.
func (c *wsConn) closeNow() { c.nc.Close() }

// abortWrites makes a blocked or later write fail at once (for a
// publisher whose context ended).
func (c *wsConn) abortWrites() { c.nc.SetWriteDeadline(time.Unix(1, 0)) }

// isTimeout reports whether err is a deadline that passed.
func isTimeout(err error) bool { return errors.Is(err, os.ErrDeadlineExceeded) }

// appendFrame appends a final masked client frame with a random mask.
func appendFrame(b []byte, op byte, payload []byte) []byte {
	n := len(payload)
	b = append(b, 0x80|op)
	switch {
	case n < 126:
		b = append(b, 0x80|byte(n))
	case n <= 0xffff:
		b = append(b, 0x80|126)
		b = binary.BigEndian.AppendUint16(b, uint16(n))
	default:
		b = append(b, 0x80|127)
		b = binary.BigEndian.AppendUint64(b, uint64(n))
	}
	key := rand.Uint32()
	b = binary.LittleEndian.AppendUint32(b, key)
	start := len(b)
	b = append(b, payload...)
	mask(b[start:], key)
	return b
}

// mask XORs b with the masking key, whose first byte is key's low byte
// (the byte order of the key as appended to the frame), 8 bytes at a time.
func mask(b []byte, key uint32) {
	k8 := uint64(key) | uint64(key)<<32
	i := 0
	for ; i+8 <= len(b); i += 8 {
		binary.LittleEndian.PutUint64(b[i:], binary.LittleEndian.Uint64(b[i:])^k8)
	}
	for ; i < len(b); i++ {
		b[i] ^= byte(key >> (8 * (i & 3)))
	}
}
