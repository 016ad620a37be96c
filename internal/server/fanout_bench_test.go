package server_test

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"fmt"
	"io"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"parley/internal/hub"
	"parley/internal/parleytest"
	"parley/internal/server"
)

// countFrames reads server frames from br until it has seen want text
// frames that start with prefix, or the connection ends. It calls ready
// once it has read a frame equal to readyLine.
func countFrames(br *bufio.Reader, readyLine string, ready func(), prefix []byte, want int64, got *atomic.Int64) error {
	var hdr [8]byte
	buf := make([]byte, 0, 512)
	for got.Load() < want {
		if _, err := io.ReadFull(br, hdr[:2]); err != nil {
			return err
		}
		n := int64(hdr[1] & 0x7f)
		switch n {
		case 126:
			if _, err := io.ReadFull(br, hdr[:2]); err != nil {
				return err
			}
			n = int64(binary.BigEndian.Uint16(hdr[:2]))
		case 127:
			if _, err := io.ReadFull(br, hdr[:8]); err != nil {
				return err
			}
			n = int64(binary.BigEndian.Uint64(hdr[:8]))
		}
		if int64(cap(buf)) < n {
			buf = make([]byte, n)
		}
		p := buf[:n]
		if _, err := io.ReadFull(br, p); err != nil {
			return err
		}
		if bytes.HasPrefix(p, prefix) {
			got.Add(1)
		} else if ready != nil && string(p) == readyLine {
			ready()
			ready = nil
		}
	}
	return nil
}

// BenchmarkFanout measures the server's whole path, socket to socket:
// publishers send text-format messages, 1,000 subscribers on real
// loopback connections read them. One op is one message, delivered to
// every subscriber; ns/delivery divides by the subscribers.
//
//	go test -run '^$' -bench Fanout -benchtime 2000x -cpuprofile cpu.out ./internal/server
func BenchmarkFanout(b *testing.B) {
	const subs, pubs = 1000, 4
	n := parleytest.Start(b,
		parleytest.WithConfig(func(c *server.Config) {
			c.Rate = 1e9
			c.Burst = 1 << 20
			c.MaxConnections = subs + pubs + 10
		}),
		parleytest.WithHub(func(c *hub.Config) { c.NoticeThreshold = -1 }),
		parleytest.WithDB(":memory:"),
	)
	payload := strings.Repeat("x", 64)
	var wg sync.WaitGroup
	counts := make([]atomic.Int64, subs)
	want := int64(b.N)
	prefix := []byte("pub")
	var joined sync.WaitGroup
	for i := range subs {
		c := rawDial(b, n.Addr, fmt.Sprintf("/?nick=sub%d&room=bench", i), "")
		wg.Add(1)
		joined.Add(1)
		go func() {
			defer wg.Done()
			if err := countFrames(c.br, fmt.Sprintf("* sub%d joined #bench", i), joined.Done, prefix, want, &counts[i]); err != nil {
				b.Errorf("subscriber %d: %v after %d messages", i, err, counts[i].Load())
			}
		}()
	}
	var ps []*rawConn
	for i := range pubs {
		ps = append(ps, rawDial(b, n.Addr, fmt.Sprintf("/?nick=pub%d&room=bench", i), ""))
	}
	for _, p := range ps {
		go func() { io.Copy(io.Discard, p.br) }()
	}
	// Every subscriber is a member before the first message.
	joined.Wait()
	b.ResetTimer()
	start := time.Now()
	var pw sync.WaitGroup
	for i, p := range ps {
		pw.Add(1)
		go func() {
			defer pw.Done()
			for j := i; j < b.N; j += pubs {
				if err := p.tryWriteFrame(true, 0, opText, true, []byte(payload)); err != nil {
					b.Errorf("publisher %d: %v", i, err)
					return
				}
			}
		}()
	}
	pw.Wait()
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(2 * time.Minute):
		b.Fatalf("not every subscriber got %d messages within 2 minutes", b.N)
	}
	elapsed := time.Since(start)
	b.StopTimer()
	deliveries := float64(b.N) * subs
	b.ReportMetric(float64(elapsed.Nanoseconds())/deliveries, "ns/delivery")
	b.ReportMetric(deliveries/elapsed.Seconds(), "deliveries/s")
	for _, p := range ps {
		p.conn.Close()
	}
}
