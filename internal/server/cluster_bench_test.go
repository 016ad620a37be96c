package server_test

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"

	"parley/internal/broker/nats/natstest"
	"parley/internal/parleytest"
)

// BenchmarkClusterFanout compares fan-out of 64-byte messages from 4
// publishers to 200 subscribers of one room, socket to socket, on (a) one
// node with the local broker (a SQLite file), (b) one node on NATS
// JetStream, (c) three nodes on one NATS with subscribers and publishers
// spread over them. It reports deliveries per second (to the
// subscribers, from the first send to the last delivery) and the p99 and
// p50 latency from send to receive. Nodes, NATS and clients share this
// process and its cores. Run:
//
//	go test -run '^$' -bench BenchmarkClusterFanout -benchtime 2000x -count 5 ./internal/server/
//
// A fixed count (Nx) keeps runs comparable: b.Loop cannot size a run whose
// iterations only hand a token to the publishers.
func BenchmarkClusterFanout(b *testing.B) {
	const subs = 200
	b.Run("local", func(b *testing.B) {
		n := parleytest.Start(b, parleytest.WithConfig(noRateLimit))
		benchClusterFanout(b, []string{n.URL}, subs)
	})
	b.Run("nats-1node", func(b *testing.B) {
		ns := natstest.Start(b)
		nodes := clStartNodes(b, ns.URL(), "node-a")
		benchClusterFanout(b, []string{nodes[0].URL}, subs)
	})
	b.Run("nats-3nodes", func(b *testing.B) {
		ns := natstest.Start(b)
		nodes := clStartNodes(b, ns.URL(), "node-a", "node-b", "node-c")
		benchClusterFanout(b, []string{nodes[0].URL, nodes[1].URL, nodes[2].URL}, subs)
	})
}

const (
	cbRoom    = "bench"
	cbPubs    = 4
	cbWindow  = 2 // sends a publisher keeps unanswered: the server appends one connection's sends one at a time, so more would only queue
	cbMsgSize = 64
)

// cbSub is one subscriber: its reader records the latency of each message.
type cbSub struct {
	conn *websocket.Conn
	done chan struct{}
	got  atomic.Int64 // messages with a send time
	warm atomic.Bool  // saw the warm-up message
	lat  []int64      // owned by the reader until done: ns send to receive
	err  error        // owned by the reader until done
}

var cbStamp = []byte(`"text":"t=`)

func (s *cbSub) read() {
	defer close(s.done)
	for {
		_, p, err := s.conn.Read(context.Background())
		if err != nil {
			s.err = err
			return
		}
		now := time.Now().UnixNano()
		i := bytes.Index(p, cbStamp)
		if i < 0 {
			if bytes.Contains(p, []byte(`"text":"warmup"`)) {
				s.warm.Store(true)
			}
			continue
		}
		i += len(cbStamp)
		sent, err := strconv.ParseInt(string(p[i:i+19]), 10, 64)
		if err != nil {
			s.err = fmt.Errorf("bad stamp in %q: %w", p, err)
			return
		}
		s.lat = append(s.lat, now-sent)
		s.got.Add(1)
	}
}

// cbPub is one publisher: a writer fed by tokens, and a reader that frees
// a window slot per answer.
type cbPub struct {
	conn   *websocket.Conn
	slots  chan struct{} // a slot per unanswered send
	sent   atomic.Int64
	failed atomic.Int64 // answered with an error
}

func (p *cbPub) readAnswers(done chan<- struct{}) {
	defer close(done)
	for {
		_, f, err := p.conn.Read(context.Background())
		if err != nil {
			return
		}
		if bytes.Contains(f, []byte(`"type":"ack"`)) && bytes.Contains(f, []byte(`"ref":"m`)) {
			<-p.slots
		} else if bytes.Contains(f, []byte(`"type":"error"`)) && bytes.Contains(f, []byte(`"ref":"m`)) {
			p.failed.Add(1)
			<-p.slots
		}
	}
}

func (p *cbPub) write(tokens <-chan struct{}) error {
	msg := make([]byte, 0, 160)
	pad := bytes.Repeat([]byte("x"), cbMsgSize-22)
	for range tokens {
		p.slots <- struct{}{}
		n := p.sent.Add(1)
		msg = msg[:0]
		msg = append(msg, `{"type":"send","room":"`+cbRoom+`","ref":"m`...)
		msg = strconv.AppendInt(msg, n, 10)
		msg = append(msg, `","text":"t=`...)
		msg = fmt.Appendf(msg, "%019d ", time.Now().UnixNano())
		msg = append(msg, pad...)
		msg = append(msg, `"}`...)
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err := p.conn.Write(ctx, websocket.MessageText, msg)
		cancel()
		if err != nil {
			return err
		}
	}
	return nil
}

func cbDial(b *testing.B, u string) *websocket.Conn {
	b.Helper()
	c, err := tryDial(u, true)
	if err != nil {
		b.Fatalf("dial %s: %v", u, err)
	}
	return c
}

func cbWrite(b *testing.B, c *websocket.Conn, s string) {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := c.Write(ctx, websocket.MessageText, []byte(s)); err != nil {
		b.Fatal(err)
	}
}

func benchClusterFanout(b *testing.B, urls []string, nSubs int) {
	// The room holds a message before anyone joins, so every subscriber's
	// join replays it as history: once all have it, all are subscribed.
	warm := cbDial(b, urls[0]+"?nick=warm&room="+cbRoom)
	defer warm.CloseNow()
	cbWrite(b, warm, `{"type":"send","room":"`+cbRoom+`","text":"warmup","ref":"w"}`)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		_, f, err := warm.Read(ctx)
		cancel()
		if err != nil {
			b.Fatalf("warm-up send: %v", err)
		}
		if bytes.Contains(f, []byte(`"ref":"w"`)) {
			if !bytes.Contains(f, []byte(`"type":"ack"`)) {
				b.Fatalf("warm-up send: %s", f)
			}
			break
		}
	}

	subs := make([]*cbSub, nSubs)
	for i := range subs {
		s := &cbSub{conn: cbDial(b, urls[i%len(urls)]+"?room="+cbRoom), done: make(chan struct{})}
		s.conn.SetReadLimit(1 << 20)
		subs[i] = s
		go s.read()
	}
	defer func() {
		for _, s := range subs {
			s.conn.CloseNow()
			<-s.done
		}
	}()
	cbWaitAll(b, subs, 60*time.Second, "warm-up", func(s *cbSub) bool { return s.warm.Load() })

	pubs := make([]*cbPub, cbPubs)
	pubDone := make([]chan struct{}, cbPubs)
	for i := range pubs {
		p := &cbPub{conn: cbDial(b, fmt.Sprintf("%s?nick=pub%d&room=%s", urls[i%len(urls)], i, cbRoom)), slots: make(chan struct{}, cbWindow)}
		pubs[i], pubDone[i] = p, make(chan struct{})
		go p.readAnswers(pubDone[i])
	}
	defer func() {
		for i, p := range pubs {
			p.conn.CloseNow()
			<-pubDone[i]
		}
	}()

	tokens := make(chan struct{}, cbPubs*cbWindow)
	var wg sync.WaitGroup
	errs := make(chan error, cbPubs)
	var start time.Time
	started := false
	for b.Loop() {
		if !started {
			started = true
			start = time.Now()
			for _, p := range pubs {
				wg.Go(func() { errs <- p.write(tokens) })
			}
		}
		tokens <- struct{}{}
	}
	close(tokens)
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			b.Fatal(err)
		}
	}
	var sent, failed int64
	for _, p := range pubs {
		sent += p.sent.Load()
		failed += p.failed.Load()
	}
	if failed > 0 {
		b.Fatalf("%d of %d sends refused", failed, sent)
	}
	cbWaitAll(b, subs, 120*time.Second, "every message", func(s *cbSub) bool { return s.got.Load() >= sent })
	elapsed := time.Since(start)
	for _, s := range subs {
		s.conn.CloseNow()
		<-s.done
	}
	var lat []int64
	for _, s := range subs {
		if s.got.Load() != sent {
			b.Fatalf("a subscriber got %d messages, want %d", s.got.Load(), sent)
		}
		lat = append(lat, s.lat...)
	}
	slices.Sort(lat)
	deliveries := float64(sent) * float64(nSubs)
	b.ReportMetric(deliveries/elapsed.Seconds(), "deliveries/s")
	b.ReportMetric(float64(lat[len(lat)*99/100])/1e6, "p99-ms")
	b.ReportMetric(float64(lat[len(lat)/2])/1e6, "p50-ms")
	b.ReportMetric(float64(sent)/elapsed.Seconds(), "msgs/s")
}

// cbWaitAll waits until ok holds for every subscriber.
func cbWaitAll(b *testing.B, subs []*cbSub, within time.Duration, what string, ok func(*cbSub) bool) {
	b.Helper()
	deadline := time.Now().Add(within)
	for {
		n := 0
		for _, s := range subs {
			if ok(s) {
				n++
			}
		}
		if n == len(subs) {
			return
		}
		if time.Now().After(deadline) {
			b.Fatalf("%s: %d of %d subscribers after %v", what, n, len(subs), within)
		}
		time.Sleep(10 * time.Millisecond) // polling interval
	}
}
