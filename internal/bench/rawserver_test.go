package bench

import (
	"bufio"
	"crypto/sha1"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/textproto"
	"strings"
	"sync"
	"testing"
)

// rawServer is a hand-written WebSocket server on a real loopback socket,
// for what a library server will not send: frames of our choosing, bad
// handshakes, a 101 and a first frame in one write.
type rawServer struct {
	ln net.Listener
	wg sync.WaitGroup
}

// startRawServer listens on 127.0.0.1 and runs serve for each connection,
// after reading its request header; it stops at cleanup and waits for
// every serve to return.
func startRawServer(t testing.TB, serve func(c net.Conn, br *bufio.Reader, h textproto.MIMEHeader)) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &rawServer{ln: ln}
	var conns sync.Map
	s.wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns.Store(c, true)
			s.wg.Go(func() {
				defer c.Close()
				br := bufio.NewReader(c)
				tp := textproto.NewReader(br)
				if _, err := tp.ReadLine(); err != nil {
					return
				}
				h, err := tp.ReadMIMEHeader()
				if err != nil {
					return
				}
				serve(c, br, h)
			})
		}
	})
	t.Cleanup(func() {
		ln.Close()
		conns.Range(func(c, _ any) bool { c.(net.Conn).Close(); return true })
		s.wg.Wait()
	})
	return "ws://" + ln.Addr().String() + "/"
}

// acceptKey is Sec-WebSocket-Accept for key, computed independently.
func acceptKey(key string) string {
	h := sha1.New()
	io.WriteString(h, key+wsGUID)
	return base64.StdEncoding.EncodeToString(h.Sum(nil))
}

// response101 is a valid upgrade response to h, choosing parley.v1 when
// the client offered it.
func response101(h textproto.MIMEHeader) string {
	s := "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: " +
		acceptKey(h.Get("Sec-WebSocket-Key")) + "\r\n"
	if strings.Contains(h.Get("Sec-WebSocket-Protocol"), "parley.v1") {
		s += "Sec-WebSocket-Protocol: parley.v1\r\n"
	}
	return s + "\r\n"
}

// serverFrame is an unmasked server frame.
func serverFrame(fin bool, op byte, payload []byte) []byte {
	b0 := op
	if fin {
		b0 |= 0x80
	}
	b := []byte{b0}
	switch n := len(payload); {
	case n < 126:
		b = append(b, byte(n))
	case n <= 0xffff:
		b = append(b, 126)
		b = binary.BigEndian.AppendUint16(b, uint16(n))
	default:
		b = append(b, 127)
		b = binary.BigEndian.AppendUint64(b, uint64(n))
	}
	return append(b, payload...)
}

// readClientFrame reads one frame from the client, which must be masked,
// and returns it unmasked.
func readClientFrame(br *bufio.Reader) (fin bool, op byte, payload []byte, err error) {
	var h [2]byte
	if _, err = io.ReadFull(br, h[:]); err != nil {
		return
	}
	if h[1]&0x80 == 0 {
		return false, 0, nil, fmt.Errorf("an unmasked client frame")
	}
	n := uint64(h[1] & 0x7f)
	switch n {
	case 126:
		var e [2]byte
		if _, err = io.ReadFull(br, e[:]); err != nil {
			return
		}
		n = uint64(binary.BigEndian.Uint16(e[:]))
	case 127:
		var e [8]byte
		if _, err = io.ReadFull(br, e[:]); err != nil {
			return
		}
		n = binary.BigEndian.Uint64(e[:])
	}
	var key [4]byte
	if _, err = io.ReadFull(br, key[:]); err != nil {
		return
	}
	payload = make([]byte, n)
	if _, err = io.ReadFull(br, payload); err != nil {
		return
	}
	for i := range payload {
		payload[i] ^= key[i%4]
	}
	return h[0]&0x80 != 0, h[0] & 0xf, payload, nil
}
