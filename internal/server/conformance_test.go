package server_test

// RFC 6455 conformance of the server's frame reader, checked with raw
// frames over a raw TCP connection: the handshake is written by hand and
// every frame is built byte by byte, so that the tests can send what no
// well-behaved client library would.

import (
	"bufio"
	"crypto/sha1"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
	"unicode/utf8"

	"parley/internal/parleytest"
	"parley/internal/protocol"
)

// Opcodes (RFC 6455, section 5.2).
const (
	opCont   byte = 0x0
	opText   byte = 0x1
	opBinary byte = 0x2
	opClose  byte = 0x8
	opPing   byte = 0x9
	opPong   byte = 0xA
)

// Reserved bits, as the rsv argument of writeFrame (RSV1 is the highest).
const (
	rsv1 byte = 4
	rsv2 byte = 2
	rsv3 byte = 1
)

// frame is one frame read from the server.
type frame struct {
	fin     bool
	rsv     byte
	op      byte
	masked  bool
	payload []byte
}

func (f frame) String() string {
	return fmt.Sprintf("frame{fin:%v rsv:%d op:%d masked:%v payload:%.60q}", f.fin, f.rsv, f.op, f.masked, f.payload)
}

// closeCode returns a close frame's code (0 when it has none).
func (f frame) closeCode() int {
	if len(f.payload) < 2 {
		return 0
	}
	return int(binary.BigEndian.Uint16(f.payload))
}

// rawConn is a WebSocket client written by hand over a TCP connection.
type rawConn struct {
	t    testing.TB
	conn net.Conn
	br   *bufio.Reader // holds whatever followed the handshake response

	wmu  sync.Mutex // writes may come from a pump goroutine (pongs) too
	seed uint32     // for mask keys
}

// rawDial opens a TCP connection to addr and completes a WebSocket
// handshake for target (a path and query, like "/?nick=x"), asking for
// subprotocol when it is not empty. extra headers are "Name: value".
func rawDial(t testing.TB, addr, target, subprotocol string, extra ...string) *rawConn {
	t.Helper()
	c := rawTCP(t, addr)
	resp, err := c.handshake(target, subprotocol, extra...)
	if err != nil {
		t.Fatalf("handshake: %v", err)
	}
	if resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("handshake: status %s, want 101", resp.Status)
	}
	if got := resp.Header.Get("Sec-WebSocket-Protocol"); got != subprotocol {
		t.Fatalf("handshake: subprotocol %q, want %q", got, subprotocol)
	}
	return c
}

// rawTCP opens a TCP connection to addr and nothing more.
func rawTCP(t testing.TB, addr string) *rawConn {
	t.Helper()
	conn, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	t.Cleanup(func() { conn.Close() })
	return &rawConn{t: t, conn: conn, br: bufio.NewReader(conn), seed: uint32(time.Now().UnixNano())}
}

const wsKey = "dGhlIHNhbXBsZSBub25jZQ==" // RFC 6455's example key

func acceptKey(key string) string {
	h := sha1.Sum([]byte(key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
	return base64.StdEncoding.EncodeToString(h[:])
}

// handshake writes an upgrade request and reads the response. A 101
// response must carry the right Sec-WebSocket-Accept.
func (c *rawConn) handshake(target, subprotocol string, extra ...string) (*http.Response, error) {
	var b strings.Builder
	fmt.Fprintf(&b, "GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n", target, c.conn.RemoteAddr())
	fmt.Fprintf(&b, "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n", wsKey)
	if subprotocol != "" {
		fmt.Fprintf(&b, "Sec-WebSocket-Protocol: %s\r\n", subprotocol)
	}
	for _, h := range extra {
		b.WriteString(h + "\r\n")
	}
	b.WriteString("\r\n")
	c.conn.SetDeadline(time.Now().Add(5 * time.Second))
	defer c.conn.SetDeadline(time.Time{})
	if _, err := io.WriteString(c.conn, b.String()); err != nil {
		return nil, err
	}
	resp, err := http.ReadResponse(c.br, nil)
	if err != nil {
		return nil, err
	}
	if resp.StatusCode == http.StatusSwitchingProtocols {
		if got := resp.Header.Get("Sec-WebSocket-Accept"); got != acceptKey(wsKey) {
			return resp, fmt.Errorf("Sec-WebSocket-Accept %q, want %q", got, acceptKey(wsKey))
		}
	} else {
		resp.Body.Close()
	}
	return resp, nil
}

// appendRawFrame appends one frame: fin, reserved bits (rsv1|rsv2|rsv3),
// any 4-bit opcode, masked or not, with the shortest length encoding.
func appendRawFrame(b []byte, fin bool, rsv, op byte, mask *[4]byte, payload []byte) []byte {
	b0 := rsv<<4 | op&0x0f
	if fin {
		b0 |= 0x80
	}
	b = append(b, b0)
	var m byte
	if mask != nil {
		m = 0x80
	}
	switch n := len(payload); {
	case n < 126:
		b = append(b, m|byte(n))
	case n <= 0xffff:
		b = append(b, m|126, byte(n>>8), byte(n))
	default:
		b = append(b, m|127)
		b = binary.BigEndian.AppendUint64(b, uint64(n))
	}
	if mask == nil {
		return append(b, payload...)
	}
	b = append(b, mask[:]...)
	for i, p := range payload {
		b = append(b, p^mask[i%4])
	}
	return b
}

func (c *rawConn) nextMask() *[4]byte {
	c.seed = c.seed*1664525 + 1013904223
	var m [4]byte
	binary.BigEndian.PutUint32(m[:], c.seed|0x01010101) // never all zero
	return &m
}

// writeFrame writes one frame and fails the test if it cannot.
func (c *rawConn) writeFrame(fin bool, rsv, op byte, masked bool, payload []byte) {
	c.t.Helper()
	if err := c.tryWriteFrame(fin, rsv, op, masked, payload); err != nil {
		c.t.Fatalf("write frame (op %d): %v", op, err)
	}
}

func (c *rawConn) tryWriteFrame(fin bool, rsv, op byte, masked bool, payload []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	var mask *[4]byte
	if masked {
		mask = c.nextMask()
	}
	return c.writeRaw(appendRawFrame(nil, fin, rsv, op, mask, payload))
}

// writeRaw writes bytes as they are; callers hold wmu or own the conn.
func (c *rawConn) writeRaw(b []byte) error {
	c.conn.SetWriteDeadline(time.Now().Add(5 * time.Second))
	_, err := c.conn.Write(b)
	return err
}

// text sends a complete, masked text frame.
func (c *rawConn) text(s string) { c.t.Helper(); c.writeFrame(true, 0, opText, true, []byte(s)) }

// readFrame reads the next frame, waiting at most d.
func (c *rawConn) readFrame(d time.Duration) (frame, error) {
	c.conn.SetReadDeadline(time.Now().Add(d))
	var f frame
	var hdr [2]byte
	if _, err := io.ReadFull(c.br, hdr[:]); err != nil {
		return f, err
	}
	f.fin = hdr[0]&0x80 != 0
	f.rsv = hdr[0] >> 4 & 7
	f.op = hdr[0] & 0x0f
	f.masked = hdr[1]&0x80 != 0
	n := uint64(hdr[1] & 0x7f)
	switch n {
	case 126:
		var ext [2]byte
		if _, err := io.ReadFull(c.br, ext[:]); err != nil {
			return f, err
		}
		n = uint64(binary.BigEndian.Uint16(ext[:]))
	case 127:
		var ext [8]byte
		if _, err := io.ReadFull(c.br, ext[:]); err != nil {
			return f, err
		}
		n = binary.BigEndian.Uint64(ext[:])
	}
	if n > 1<<20 {
		return f, fmt.Errorf("frame of %d bytes", n)
	}
	var mask [4]byte
	if f.masked {
		if _, err := io.ReadFull(c.br, mask[:]); err != nil {
			return f, err
		}
	}
	f.payload = make([]byte, n)
	if _, err := io.ReadFull(c.br, f.payload); err != nil {
		return f, err
	}
	if f.masked {
		for i := range f.payload {
			f.payload[i] ^= mask[i%4]
		}
	}
	return f, nil
}

// next reads the next frame or fails the test within 5 s.
func (c *rawConn) next() frame {
	c.t.Helper()
	f, err := c.readFrame(5 * time.Second)
	if err != nil {
		c.t.Fatalf("read frame: %v", err)
	}
	return f
}

// nextText reads frames until a text frame, answering nothing; it fails
// on anything but pings and pongs in between.
func (c *rawConn) nextText() string {
	c.t.Helper()
	for range 1000 {
		f := c.next()
		switch f.op {
		case opText:
			if !f.fin {
				c.t.Fatalf("fragmented text frame from the server: %v", f)
			}
			return string(f.payload)
		case opPing, opPong:
			continue
		}
		c.t.Fatalf("want a text frame, got %v", f)
	}
	c.t.Fatalf("no text frame in 1000 frames")
	return ""
}

// readLine reads text frames until one equals want.
func (c *rawConn) readLine(want string) {
	c.t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if c.nextText() == want {
			return
		}
	}
	c.t.Fatalf("no line %q within 5s", want)
}

// isClosed reports whether err means the peer closed the TCP connection
// (a FIN, or a reset when it closed with our bytes still unread).
func isClosed(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE)
}

// expectClose checks that the next frame is a close frame with code and
// that the server then closes the TCP connection without sending more.
// It returns the close reason.
func (c *rawConn) expectClose(code int) string {
	c.t.Helper()
	f, err := c.readFrame(5 * time.Second)
	if err != nil {
		c.t.Fatalf("want a close frame with %d, got error %v", code, err)
	}
	if f.op != opClose || !f.fin || f.rsv != 0 || f.masked {
		c.t.Fatalf("want a close frame with %d, got %v", code, f)
	}
	if got := f.closeCode(); got != code {
		c.t.Fatalf("close code %d (reason %q), want %d", got, f.payload[min(2, len(f.payload)):], code)
	}
	reason := f.payload[2:]
	if !utf8.Valid(reason) {
		c.t.Fatalf("close reason is not UTF-8: %q", reason)
	}
	c.expectEOF(5 * time.Second)
	return string(reason)
}

// expectEOF checks that the server closes the connection within d,
// sending nothing more.
func (c *rawConn) expectEOF(d time.Duration) {
	c.t.Helper()
	f, err := c.readFrame(d)
	if err == nil {
		c.t.Fatalf("want the connection closed, got %v", f)
	}
	if !isClosed(err) {
		c.t.Fatalf("want the connection closed within %v, got %v", d, err)
	}
}

// jsonRaw connects a raw client in the JSON format with no rooms and reads
// its welcome, after which the server sends nothing unasked.
func jsonRaw(t testing.TB, n *parleytest.Node, nick string) *rawConn {
	t.Helper()
	c := rawDial(t, n.Addr, "/?nick="+nick, protocol.Subprotocol)
	if w := c.nextText(); !strings.Contains(w, `"type":"welcome"`) {
		t.Fatalf("want welcome, got %q", w)
	}
	return c
}

func closePayload(code int, reason string) []byte {
	p := binary.BigEndian.AppendUint16(nil, uint16(code))
	return append(p, reason...)
}

// violation is one protocol violation and the close code it must get.
type violation struct {
	name string
	code int
	send func(c *rawConn, nick string) // nick: the connection's
}

func violations() []violation {
	vs := []violation{
		{"continuation without a start", 1002, func(c *rawConn, _ string) {
			c.writeFrame(true, 0, opCont, true, []byte("x"))
		}},
		{"unfinished continuation without a start", 1002, func(c *rawConn, _ string) {
			c.writeFrame(false, 0, opCont, true, []byte("x"))
		}},
		{"text frame inside a fragmented message", 1002, func(c *rawConn, _ string) {
			c.writeFrame(false, 0, opText, true, []byte("a"))
			c.writeFrame(true, 0, opText, true, []byte("b"))
		}},
		{"binary frame inside a fragmented text message", 1002, func(c *rawConn, _ string) {
			c.writeFrame(false, 0, opText, true, []byte("a"))
			c.writeFrame(true, 0, opBinary, true, []byte("b"))
		}},
		{"continuation after the message ended", 1002, func(c *rawConn, nick string) {
			// A whole message that needs no answer: a nick to the
			// current nick, without a ref.
			c.writeFrame(false, 0, opText, true, []byte(`{"type":"nick",`))
			c.writeFrame(true, 0, opCont, true, []byte(`"nick":"`+nick+`"}`))
			c.writeFrame(true, 0, opCont, true, []byte("x"))
		}},
		{"unmasked text frame", 1002, func(c *rawConn, _ string) {
			c.writeFrame(true, 0, opText, false, []byte(`{"type":"rooms"}`))
		}},
		{"unmasked ping", 1002, func(c *rawConn, _ string) {
			c.writeFrame(true, 0, opPing, false, []byte("p"))
		}},
		{"ping of 126 bytes", 1002, func(c *rawConn, _ string) {
			c.writeFrame(true, 0, opPing, true, make([]byte, 126))
		}},
		{"close of 126 bytes", 1002, func(c *rawConn, _ string) {
			c.writeFrame(true, 0, opClose, true, closePayload(1000, strings.Repeat("r", 124)))
		}},
		{"fragmented ping", 1002, func(c *rawConn, _ string) {
			c.writeFrame(false, 0, opPing, true, []byte("p"))
		}},
		{"fragmented close", 1002, func(c *rawConn, _ string) {
			c.writeFrame(false, 0, opClose, true, closePayload(1000, ""))
		}},
		{"close with a 1-byte payload", 1002, func(c *rawConn, _ string) {
			c.writeFrame(true, 0, opClose, true, []byte{0x03})
		}},
		{"64-bit length with the top bit set", 1002, func(c *rawConn, _ string) {
			b := []byte{0x80 | opText, 0x80 | 127, 0x80, 0, 0, 0, 0, 0, 0, 1, 1, 2, 3, 4}
			if err := c.writeRaw(b); err != nil {
				c.t.Fatal(err)
			}
		}},
		{"close reason not UTF-8", 1007, func(c *rawConn, _ string) {
			c.writeFrame(true, 0, opClose, true, closePayload(1000, "bad \xff reason"))
		}},
		{"close reason cut inside a rune", 1007, func(c *rawConn, _ string) {
			c.writeFrame(true, 0, opClose, true, closePayload(1000, "caf\xc3"))
		}},
	}
	for _, r := range []struct {
		name string
		bits byte
	}{{"RSV1", rsv1}, {"RSV2", rsv2}, {"RSV3", rsv3}, {"RSV1+RSV3", rsv1 | rsv3}} {
		vs = append(vs, violation{r.name + " on a text frame", 1002, func(c *rawConn, _ string) {
			c.writeFrame(true, r.bits, opText, true, []byte(`{"type":"rooms"}`))
		}})
	}
	vs = append(vs,
		violation{"RSV1 on a ping", 1002, func(c *rawConn, _ string) { c.writeFrame(true, rsv1, opPing, true, nil) }},
		violation{"RSV2 on a continuation", 1002, func(c *rawConn, _ string) {
			c.writeFrame(false, 0, opText, true, []byte("a"))
			c.writeFrame(true, rsv2, opCont, true, []byte("b"))
		}},
	)
	for _, op := range []byte{3, 4, 5, 6, 7, 11, 12, 13, 14, 15} {
		vs = append(vs, violation{fmt.Sprintf("opcode %d", op), 1002, func(c *rawConn, _ string) {
			c.writeFrame(true, 0, op, true, []byte("x"))
		}})
	}
	vs = append(vs, violation{"opcode 3 inside a fragmented message", 1002, func(c *rawConn, _ string) {
		c.writeFrame(false, 0, opText, true, []byte("a"))
		c.writeFrame(true, 0, 3, true, []byte("b"))
	}})
	for _, code := range []int{0, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535} {
		vs = append(vs, violation{fmt.Sprintf("close code %d", code), 1002, func(c *rawConn, _ string) {
			c.writeFrame(true, 0, opClose, true, closePayload(code, "bye"))
		}})
	}
	return vs
}

// Every protocol violation gets a close frame with 1002 (or 1007 for a
// close reason that is not UTF-8), then the server closes the connection:
// nothing else is sent, and the metrics count each.
func TestProtocolViolations(t *testing.T) {
	t.Parallel()
	n := parleytest.Start(t)
	vs := violations()
	want := map[int]float64{}
	for _, v := range vs {
		want[v.code]++
	}
	t.Run("cases", func(t *testing.T) {
		for i, v := range vs {
			t.Run(v.name, func(t *testing.T) {
				t.Parallel()
				nick := fmt.Sprintf("v%d", i)
				c := jsonRaw(t, n, nick)
				v.send(c, nick)
				c.expectClose(v.code)
			})
		}
	})
	if t.Failed() {
		return
	}
	waitMetric(t, n, "parley_rejected_inputs_total", "protocol_violation", want[1002])
	waitMetric(t, n, "parley_rejected_inputs_total", "bad_utf8", want[1007])
}

// Valid close codes are echoed, and the server then closes the
// connection. A close with no payload is answered with 1000.
func TestCloseEcho(t *testing.T) {
	t.Parallel()
	n := parleytest.Start(t)
	for _, code := range []int{1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 4000, 4999} {
		t.Run(fmt.Sprint(code), func(t *testing.T) {
			t.Parallel()
			c := jsonRaw(t, n, fmt.Sprintf("e%d", code))
			c.writeFrame(true, 0, opClose, true, closePayload(code, "bye now"))
			c.expectClose(code)
		})
	}
	t.Run("empty", func(t *testing.T) {
		t.Parallel()
		c := jsonRaw(t, n, "empty")
		c.writeFrame(true, 0, opClose, true, nil)
		c.expectClose(1000)
	})
	t.Run("reason of 123 bytes", func(t *testing.T) {
		t.Parallel()
		c := jsonRaw(t, n, "long")
		c.writeFrame(true, 0, opClose, true, closePayload(1000, strings.Repeat("é", 61)+"x"))
		c.expectClose(1000)
	})
}

// A fragmented text message with a ping between its fragments is
// delivered whole; the ping is answered with a pong carrying its payload.
func TestFragmentedWithPing(t *testing.T) {
	t.Parallel()
	n := parleytest.Start(t)
	w := dial(t, n.URL+"?nick=witness", false)
	w.readLine("* witness joined #lobby")
	c := rawDial(t, n.Addr, "/?nick=frag", "")
	c.readLine("* frag joined #lobby")
	w.readLine("* frag joined #lobby")

	// "héllo, wörld": the é is split between two fragments.
	msg := []byte("héllo, wörld")
	c.writeFrame(false, 0, opText, true, msg[:2]) // "h" and the first byte of é
	c.writeFrame(true, 0, opPing, true, []byte("ping-1"))
	c.writeFrame(false, 0, opCont, true, msg[2:7])
	c.writeFrame(true, 0, opPing, true, nil)
	c.writeFrame(false, 0, opCont, true, nil) // an empty fragment is fine
	c.writeFrame(true, 0, opCont, true, msg[7:])

	var pongs []string
	got := false
	for i := 0; !got || len(pongs) < 2; i++ {
		if i == 100 {
			t.Fatalf("no message and two pongs in 100 frames; pongs %q", pongs)
		}
		f := c.next()
		switch {
		case f.op == opPong:
			if !f.fin || f.masked || f.rsv != 0 {
				t.Fatalf("bad pong %v", f)
			}
			pongs = append(pongs, string(f.payload))
		case f.op == opText && string(f.payload) == "frag: héllo, wörld":
			got = true
		case f.op == opText:
		default:
			t.Fatalf("want a pong or text, got %v", f)
		}
	}
	if len(pongs) != 2 || pongs[0] != "ping-1" || pongs[1] != "" {
		t.Fatalf("pongs %q, want [\"ping-1\" \"\"] (the ping's payload, in order)", pongs)
	}
	w.readLine("frag: héllo, wörld")
}

// An empty ping gets an empty pong; a ping of 125 bytes gets its payload
// back; unsolicited pongs are ignored.
func TestPingPong(t *testing.T) {
	t.Parallel()
	n := parleytest.Start(t)
	c := jsonRaw(t, n, "pinger")
	c.writeFrame(true, 0, opPing, true, nil)
	if f := c.next(); f.op != opPong || len(f.payload) != 0 || !f.fin || f.masked {
		t.Fatalf("want an empty pong, got %v", f)
	}
	max := []byte(strings.Repeat("p", 125))
	c.writeFrame(true, 0, opPing, true, max)
	if f := c.next(); f.op != opPong || string(f.payload) != string(max) {
		t.Fatalf("want a pong of 125 bytes, got %v", f)
	}
	c.writeFrame(true, 0, opPong, true, []byte("unsolicited"))
	c.text(`{"type":"rooms","ref":"r1"}`)
	if got := c.nextText(); !strings.Contains(got, `"ref":"r1"`) {
		t.Fatalf("want the rooms answer, got %q", got)
	}
}
