package server

import (
	"bytes"
	"io"
	"net"
	"testing"
	"time"
)

// A non-blocking writev into a socket that cannot take it all writes a
// part and says how much; the rest, written after it, arrives in order.
func TestWritevPartial(t *testing.T) {
	server, client := tcpPair(t)
	rc := parker(server)

	// 4 MiB: more than loopback socket buffers hold while nobody reads.
	var bufs net.Buffers
	var want []byte
	for i := range 1024 {
		b := make([]byte, 4096)
		for j := range b {
			b[j] = byte(i*7 + j)
		}
		bufs = append(bufs, b)
		want = append(want, b...)
	}
	var v iovecs
	n, err := v.writev(rc, bufs)
	if err != nil {
		t.Fatal(err)
	}
	if n <= 0 || n >= len(want) {
		t.Fatalf("wrote %d of %d bytes at once, want a part", n, len(want))
	}
	rest := unwritten(bufs, n)
	if len(rest) != len(want)-n {
		t.Fatalf("%d bytes left, want %d", len(rest), len(want)-n)
	}
	errc := make(chan error, 1)
	go func() {
		server.SetWriteDeadline(time.Now().Add(10 * time.Second))
		_, err := server.Write(rest)
		server.Close()
		errc <- err
	}()
	client.SetReadDeadline(time.Now().Add(10 * time.Second))
	got, err := io.ReadAll(client)
	if err != nil {
		t.Fatal(err)
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("read %d bytes, not what was written (%d bytes)", len(got), len(want))
	}
}
