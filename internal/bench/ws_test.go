package bench

import (
	"bufio"
	"bytes"
	"context"
	"crypto/x509"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/textproto"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
)

// testPayload is n deterministic bytes, different for every size.
func testPayload(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte('a' + (i*7+n)%26)
	}
	return b
}

// TestAgainstCoderServer drives the client against an independent
// implementation of the protocol, coder/websocket's server side: a
// fragmented message, a ping whose pong the server waits for, messages
// with 16- and 64-bit lengths both ways, and a close with a code that the
// client must echo.
func TestAgainstCoderServer(t *testing.T) {
	t.Parallel()
	sizes := []int{0, 5, 125, 126, 200, 65535, 65536, 300 << 10}
	serverErr := make(chan error, 1)
	var handlers sync.WaitGroup
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		handlers.Add(1)
		defer handlers.Done()
		serverErr <- func() error {
			c, err := websocket.Accept(w, r, &websocket.AcceptOptions{Subprotocols: []string{"parley.v1"}})
			if err != nil {
				return err
			}
			defer c.CloseNow()
			c.SetReadLimit(1 << 20)
			ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
			defer cancel()
			// A message in three frames.
			mw, err := c.Writer(ctx, websocket.MessageText)
			if err != nil {
				return err
			}
			for _, part := range []string{"frag", "ment", "ed"} {
				if _, err := mw.Write([]byte(part)); err != nil {
					return err
				}
			}
			if err := mw.Close(); err != nil {
				return err
			}
			// A ping: Ping returns once the pong arrived, which needs a
			// read in progress; the client answers it, is told so, and
			// only then sends the messages this read waits for.
			pinged := make(chan error, 1)
			var pinger sync.WaitGroup
			pinger.Go(func() {
				err := c.Ping(ctx)
				if err == nil {
					err = c.Write(ctx, websocket.MessageText, []byte("pong received"))
				}
				pinged <- err
			})
			for _, n := range sizes {
				typ, b, err := c.Read(ctx)
				if err != nil {
					pinger.Wait()
					return fmt.Errorf("read the client's %d-byte message: %w", n, err)
				}
				if typ != websocket.MessageText || !bytes.Equal(b, testPayload(n)) {
					pinger.Wait()
					return fmt.Errorf("the client's %d-byte message arrived as %v of %d bytes, not the bytes sent", n, typ, len(b))
				}
			}
			pinger.Wait()
			if err := <-pinged; err != nil {
				return fmt.Errorf("ping: %w", err)
			}
			if err := c.Write(ctx, websocket.MessageBinary, testPayload(700<<10)); err != nil {
				return err
			}
			// Close returns nil only if the client echoes the code.
			if err := c.Close(4001, "done"); err != nil {
				return fmt.Errorf("close: %w", err)
			}
			return nil
		}()
	}))
	defer func() { srv.Close(); handlers.Wait() }()

	d, err := newDialer(srv.URL, false, 1, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	c, err := d.dial(context.Background(), 0, "n", "r")
	if err != nil {
		t.Fatal(err)
	}
	defer c.closeNow()
	c.nc.SetDeadline(time.Now().Add(10 * time.Second))
	read := func() string {
		t.Helper()
		b, err := c.readMessage()
		if err != nil {
			t.Fatalf("read: %v (server: %v)", err, <-serverErr)
		}
		return string(b)
	}
	if got := read(); got != "fragmented" {
		t.Errorf("a fragmented message read as %q", got)
	}
	if got := read(); got != "pong received" {
		t.Errorf("after the ping: %q, want the server's word that the pong arrived", got)
	}
	for _, n := range sizes {
		if err := c.writeText(testPayload(n)); err != nil {
			t.Fatalf("write %d bytes: %v", n, err)
		}
	}
	if got := read(); got != string(testPayload(700<<10)) {
		t.Errorf("a 700 KiB message read as %d bytes, not the bytes sent", len(got))
	}
	_, err = c.readMessage()
	var ce *closeError
	if !errors.As(err, &ce) || ce.code != 4001 || ce.reason != "done" {
		t.Errorf("after the server's close: %v, want a close error with 4001 and its reason", err)
	}
	if err := <-serverErr; err != nil {
		t.Errorf("server: %v", err)
	}
}

// TestWSS dials wss:// with TLS.
func TestWSS(t *testing.T) {
	t.Parallel()
	serverErr := make(chan error, 1)
	var handlers sync.WaitGroup
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		handlers.Add(1)
		defer handlers.Done()
		serverErr <- func() error {
			c, err := websocket.Accept(w, r, &websocket.AcceptOptions{Subprotocols: []string{"parley.v1"}})
			if err != nil {
				return err
			}
			defer c.CloseNow()
			ctx, cancel := context.WithTimeout(r.Context(), 10*time.Second)
			defer cancel()
			if err := c.Write(ctx, websocket.MessageText, []byte("over tls")); err != nil {
				return err
			}
			if _, b, err := c.Read(ctx); err != nil || string(b) != "back" {
				return fmt.Errorf("read %q, %v", b, err)
			}
			return c.Close(websocket.StatusNormalClosure, "")
		}()
	}))
	defer func() { srv.Close(); handlers.Wait() }()

	d, err := newDialer(strings.Replace(srv.URL, "https", "wss", 1), false, 1, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	d.tls.RootCAs = x509.NewCertPool()
	d.tls.RootCAs.AddCert(srv.Certificate())
	c, err := d.dial(context.Background(), 0, "", "")
	if err != nil {
		t.Fatal(err)
	}
	defer c.closeNow()
	c.nc.SetDeadline(time.Now().Add(10 * time.Second))
	if b, err := c.readMessage(); err != nil || string(b) != "over tls" {
		t.Fatalf("read %q, %v", b, err)
	}
	if err := c.writeText([]byte("back")); err != nil {
		t.Fatal(err)
	}
	var ce *closeError
	if _, err := c.readMessage(); !errors.As(err, &ce) || ce.code != closeNormal {
		t.Errorf("after the server's close: %v", err)
	}
	if err := <-serverErr; err != nil {
		t.Errorf("server: %v", err)
	}
}

// TestFrames feeds the client frames from a hand-written server.
func TestFrames(t *testing.T) {
	t.Parallel()
	closeFrame := func(code uint16, reason string) []byte {
		return serverFrame(true, opClose, append(binary.BigEndian.AppendUint16(nil, code), reason...))
	}
	// expectClose reads frames from the client until a close, and checks
	// its code (-1: an empty close).
	expectClose := func(br *bufio.Reader, code int) error {
		for {
			_, op, p, err := readClientFrame(br)
			if err != nil {
				return fmt.Errorf("waiting for the client's close: %w", err)
			}
			if op != opClose {
				continue
			}
			switch {
			case code < 0 && len(p) == 0:
				return nil
			case len(p) >= 2 && int(binary.BigEndian.Uint16(p)) == code:
				return nil
			}
			return fmt.Errorf("the client closed with %x, want code %d", p, code)
		}
	}
	big := testPayload(600 << 10)
	for _, tc := range []struct {
		name    string
		serve   func(w io.Writer, br *bufio.Reader) error
		want    []string
		wantErr string
	}{{
		name: "101 and first frame in one write",
		serve: func(w io.Writer, br *bufio.Reader) error {
			w.Write(serverFrame(true, opText, []byte("welcome")))
			w.Write(closeFrame(1000, ""))
			return expectClose(br, 1000)
		},
		want: []string{"welcome"}, wantErr: "1000 (normal)",
	}, {
		name: "ping between fragments",
		serve: func(w io.Writer, br *bufio.Reader) error {
			w.Write(serverFrame(false, opText, []byte("ab")))
			w.Write(serverFrame(true, opPing, []byte("x")))
			w.Write(serverFrame(false, opContinuation, []byte("cd")))
			w.Write(serverFrame(true, opContinuation, []byte("ef")))
			fin, op, p, err := readClientFrame(br)
			if err != nil || !fin || op != opPong || string(p) != "x" {
				return fmt.Errorf("the client answered a ping with %v %x %q, %v", fin, op, p, err)
			}
			w.Write(serverFrame(true, opBinary, []byte("bin")))
			w.Write(closeFrame(1001, "bye"))
			return expectClose(br, 1001)
		},
		want: []string{"abcdef", "bin"}, wantErr: `1001 (going away) "bye"`,
	}, {
		name: "sizes and a pong",
		serve: func(w io.Writer, br *bufio.Reader) error {
			w.Write(serverFrame(true, opPong, nil))
			for _, n := range []int{125, 126, 65535, 65536, 1 << 20} {
				w.Write(serverFrame(true, opText, testPayload(n)))
			}
			w.Write(serverFrame(true, opClose, nil))
			return expectClose(br, -1)
		},
		want:    []string{string(testPayload(125)), string(testPayload(126)), string(testPayload(65535)), string(testPayload(65536)), string(testPayload(1 << 20))},
		wantErr: "1005 (no status)",
	}, {
		name: "masked server frame",
		serve: func(w io.Writer, br *bufio.Reader) error {
			w.Write([]byte{0x81, 0x81, 1, 2, 3, 4, 'a'})
			return expectClose(br, closeProtocol)
		},
		wantErr: "masked",
	}, {
		name: "reserved bits",
		serve: func(w io.Writer, br *bufio.Reader) error {
			w.Write([]byte{0xc1, 1, 'a'})
			return expectClose(br, closeProtocol)
		},
		wantErr: "reserved",
	}, {
		name: "frame over the limit",
		serve: func(w io.Writer, br *bufio.Reader) error {
			w.Write(binary.BigEndian.AppendUint64([]byte{0x82, 127}, 2<<20))
			return expectClose(br, closeTooBig)
		},
		wantErr: "limit",
	}, {
		name: "fragments over the limit",
		serve: func(w io.Writer, br *bufio.Reader) error {
			w.Write(serverFrame(false, opText, big))
			w.Write(serverFrame(true, opContinuation, big))
			return expectClose(br, closeTooBig)
		},
		wantErr: "limit",
	}, {
		name: "continuation outside a message",
		serve: func(w io.Writer, br *bufio.Reader) error {
			w.Write(serverFrame(true, opContinuation, []byte("x")))
			return expectClose(br, closeProtocol)
		},
		wantErr: "continuation",
	}, {
		name: "message inside a fragmented one",
		serve: func(w io.Writer, br *bufio.Reader) error {
			w.Write(serverFrame(false, opText, []byte("x")))
			w.Write(serverFrame(true, opText, []byte("y")))
			return expectClose(br, closeProtocol)
		},
		wantErr: "inside",
	}, {
		name: "fragmented ping",
		serve: func(w io.Writer, br *bufio.Reader) error {
			w.Write(serverFrame(false, opPing, []byte("x")))
			return expectClose(br, closeProtocol)
		},
		wantErr: "control",
	}, {
		name: "unknown opcode",
		serve: func(w io.Writer, br *bufio.Reader) error {
			w.Write(serverFrame(true, 0x3, nil))
			return expectClose(br, closeProtocol)
		},
		wantErr: "opcode",
	}, {
		name: "end of stream inside a frame",
		serve: func(w io.Writer, br *bufio.Reader) error {
			w.Write([]byte{0x81, 10, 'a', 'b'})
			return nil // and hang up
		},
		wantErr: io.ErrUnexpectedEOF.Error(),
	}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			serverErr := make(chan error, 1)
			url := startRawServer(t, func(c net.Conn, br *bufio.Reader, h textproto.MIMEHeader) {
				c.SetDeadline(time.Now().Add(10 * time.Second))
				bw := bufio.NewWriter(c)
				bw.WriteString(response101(h))
				// Everything serve writes before it reads goes out in one
				// write: the first frames arrive with the 101.
				err := tc.serve(bw, bufio.NewReader(flushingReader{bw, br}))
				if ferr := bw.Flush(); err == nil {
					err = ferr
				}
				serverErr <- err
			})
			d, err := newDialer(url, true, 1, 5*time.Second)
			if err != nil {
				t.Fatal(err)
			}
			c, err := d.dial(context.Background(), 0, "", "")
			if err != nil {
				t.Fatal(err)
			}
			c.nc.SetDeadline(time.Now().Add(10 * time.Second))
			var got []string
			for {
				b, err := c.readMessage()
				if err != nil {
					if !strings.Contains(err.Error(), tc.wantErr) {
						t.Errorf("read error %q, want one with %q", err, tc.wantErr)
					}
					break
				}
				got = append(got, string(b))
			}
			c.closeNow()
			if len(got) != len(tc.want) {
				t.Errorf("got %d messages, want %d", len(got), len(tc.want))
			}
			for i := range min(len(got), len(tc.want)) {
				if got[i] != tc.want[i] {
					t.Errorf("message %d: %.40q (%d bytes), want %.40q (%d bytes)", i, got[i], len(got[i]), tc.want[i], len(tc.want[i]))
				}
			}
			if err := <-serverErr; err != nil {
				t.Errorf("server: %v", err)
			}
		})
	}
}

// flushingReader flushes a raw server's buffered writes before it reads.
type flushingReader struct {
	bw *bufio.Writer
	r  io.Reader
}

func (f flushingReader) Read(p []byte) (int, error) {
	if err := f.bw.Flush(); err != nil {
		return 0, err
	}
	return f.r.Read(p)
}

// TestReadWriteDoNotAllocate checks the steady state: a subscriber reading
// small frames and a publisher writing them allocate nothing.
func TestReadWriteDoNotAllocate(t *testing.T) {
	const frames = 3000
	msg := testPayload(150)
	url := startRawServer(t, func(c net.Conn, br *bufio.Reader, h textproto.MIMEHeader) {
		var out bytes.Buffer
		out.WriteString(response101(h))
		for range frames {
			out.Write(serverFrame(true, opText, msg))
		}
		c.Write(out.Bytes())
		io.Copy(io.Discard, br)
	})
	d, err := newDialer(url, true, 1, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	c, err := d.dial(context.Background(), 0, "", "")
	if err != nil {
		t.Fatal(err)
	}
	defer c.closeNow()
	c.nc.SetDeadline(time.Now().Add(10 * time.Second))
	var readErr error
	allocs := testing.AllocsPerRun(frames-1, func() {
		b, err := c.readMessage()
		if err == nil && !bytes.Equal(b, msg) {
			err = fmt.Errorf("read %q", b)
		}
		if err != nil && readErr == nil {
			readErr = err
		}
	})
	if readErr != nil {
		t.Fatal(readErr)
	}
	if allocs != 0 {
		t.Errorf("%v allocations per message read, want 0", allocs)
	}
	if len(c.buf) > readBatch {
		t.Errorf("the read buffer grew to %d bytes for 150-byte frames", len(c.buf))
	}
	if allocs := testing.AllocsPerRun(1000, func() { c.writeText(msg) }); allocs != 0 {
		t.Errorf("%v allocations per message written, want 0", allocs)
	}
}

func TestMask(t *testing.T) {
	t.Parallel()
	for n := range 20 {
		b := testPayload(n)
		key := uint32(0x04030201)
		mask(b, key)
		for i := range b {
			if want := testPayload(n)[i] ^ byte(i%4+1); b[i] != want {
				t.Fatalf("mask of %d bytes: byte %d is %x, want %x", n, i, b[i], want)
			}
		}
	}
}

// BenchmarkReadMessage reads 150-byte frames that a server writes in
// batches of 64, over a real loopback socket: the client's cost per
// message, system calls included.
func BenchmarkReadMessage(b *testing.B) {
	msg := testPayload(150)
	var batch []byte
	for range 64 {
		batch = append(batch, serverFrame(true, opText, msg)...)
	}
	url := startRawServer(b, func(c net.Conn, br *bufio.Reader, h textproto.MIMEHeader) {
		if _, err := c.Write([]byte(response101(h))); err != nil {
			return
		}
		for {
			if _, err := c.Write(batch); err != nil {
				return
			}
		}
	})
	d, err := newDialer(url, true, 1, 5*time.Second)
	if err != nil {
		b.Fatal(err)
	}
	c, err := d.dial(context.Background(), 0, "", "")
	if err != nil {
		b.Fatal(err)
	}
	defer c.closeNow()
	b.ReportAllocs()
	b.SetBytes(int64(len(msg)))
	for b.Loop() {
		if _, err := c.readMessage(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkWriteText writes 150-byte text frames to a server that
// discards them.
func BenchmarkWriteText(b *testing.B) {
	url := startRawServer(b, func(c net.Conn, br *bufio.Reader, h textproto.MIMEHeader) {
		c.Write([]byte(response101(h)))
		io.Copy(io.Discard, br)
	})
	d, err := newDialer(url, true, 1, 5*time.Second)
	if err != nil {
		b.Fatal(err)
	}
	c, err := d.dial(context.Background(), 0, "", "")
	if err != nil {
		b.Fatal(err)
	}
	defer c.closeNow()
	msg := testPayload(150)
	b.ReportAllocs()
	b.SetBytes(int64(len(msg)))
	for b.Loop() {
		if err := c.writeText(msg); err != nil {
			b.Fatal(err)
		}
	}
}
