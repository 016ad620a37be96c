package tui

import (
	"bytes"
	"encoding/binary"
	"io"
	"net"
	"sync"
	"testing"
)

// gate is a TCP forwarder on 127.0.0.1 in front of a server: while it is
// shut, it closes the connections it accepts, so a client stays
// disconnected for as long as a test needs, whatever its backoff. Every
// goroutine is waited for at cleanup.
type gate struct {
	ln     net.Listener
	target string
	wg     sync.WaitGroup

	mu    sync.Mutex
	shut  bool
	conns map[net.Conn]struct{}
	sent  []*lockedBuffer // what each client sent, in the order they came
}

// lockedBuffer is a bytes.Buffer that a pipe writes while a test reads.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) bytes() []byte {
	l.mu.Lock()
	defer l.mu.Unlock()
	return bytes.Clone(l.b.Bytes())
}

func newGate(t *testing.T, target string) *gate {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	g := &gate{ln: ln, target: target, conns: make(map[net.Conn]struct{})}
	g.wg.Add(1)
	go g.accept()
	t.Cleanup(func() {
		ln.Close()
		g.mu.Lock()
		for c := range g.conns {
			c.Close()
		}
		g.mu.Unlock()
		g.wg.Wait()
	})
	return g
}

// URL is the WebSocket URL through the gate.
func (g *gate) URL() string { return "ws://" + g.ln.Addr().String() + "/" }

// setShut shuts or opens the gate for new connections.
func (g *gate) setShut(shut bool) {
	g.mu.Lock()
	g.shut = shut
	g.mu.Unlock()
}

func (g *gate) accept() {
	defer g.wg.Done()
	for {
		c, err := g.ln.Accept()
		if err != nil {
			return
		}
		g.mu.Lock()
		shut := g.shut
		g.mu.Unlock()
		if shut {
			c.Close()
			continue
		}
		up, err := net.Dial("tcp", g.target)
		if err != nil {
			c.Close()
			continue
		}
		sent := &lockedBuffer{}
		g.mu.Lock()
		g.conns[c], g.conns[up] = struct{}{}, struct{}{}
		g.sent = append(g.sent, sent)
		g.mu.Unlock()
		g.wg.Add(2)
		go g.pipe(c, up, nil)
		go g.pipe(up, c, sent)
	}
}

// pipe copies one way, keeping a copy in tee if not nil; when either side
// ends, both close.
func (g *gate) pipe(dst, src net.Conn, tee io.Writer) {
	defer g.wg.Done()
	var r io.Reader = src
	if tee != nil {
		r = io.TeeReader(src, tee)
	}
	io.Copy(dst, r)
	dst.Close()
	src.Close()
	g.mu.Lock()
	delete(g.conns, dst)
	delete(g.conns, src)
	g.mu.Unlock()
}

// lastCloseCode reads the WebSocket frames the last client sent (after its
// HTTP upgrade request) and returns the code of its close frame: -1 when it
// sent none, 0 when the close frame had no code.
func (g *gate) lastCloseCode(t *testing.T) int {
	t.Helper()
	g.mu.Lock()
	if len(g.sent) == 0 {
		g.mu.Unlock()
		return -1
	}
	b := g.sent[len(g.sent)-1].bytes()
	g.mu.Unlock()
	end := bytes.Index(b, []byte("\r\n\r\n"))
	if end < 0 {
		t.Fatalf("no upgrade request in %q", b)
	}
	b = b[end+4:]
	for len(b) >= 2 {
		opcode, masked, n := b[0]&0x0f, b[1]&0x80 != 0, uint64(b[1]&0x7f)
		b = b[2:]
		switch n {
		case 126:
			n, b = uint64(binary.BigEndian.Uint16(b)), b[2:]
		case 127:
			n, b = binary.BigEndian.Uint64(b), b[8:]
		}
		var key []byte
		if masked {
			key, b = b[:4], b[4:]
		}
		if uint64(len(b)) < n {
			t.Fatalf("a frame of %d bytes is cut at %d", n, len(b))
		}
		payload := bytes.Clone(b[:n])
		b = b[n:]
		for i := range payload {
			payload[i] ^= key[i%4]
		}
		if opcode == 0x8 {
			if len(payload) < 2 {
				return 0
			}
			return int(binary.BigEndian.Uint16(payload))
		}
	}
	return -1
}
