package server

import (
	"context"
	"errors"
	"net"
	"time"

	"parley/internal/broker"
	"parley/internal/chat"
	"parley/internal/hub"
	"parley/internal/protocol"
)

// The connection's writer. One goroutine at a time writes a connection:
// the flusher, started when the queue goes from empty to not empty and
// gone when it is drained, or, for live frames waiting out a coalescing
// window, a sweeper worker (sweep.go); session.writing says one of them
// owns the socket. An idle connection has no writer goroutine and no write
// buffers. Rules, in the spirit of a socket contract:
//
//  1. Enqueueing never blocks and never does I/O (the hub calls Deliver
//     holding a room's lock).
//  2. Frames are written in queue order; live frames of a room are written
//     in id order, each id at most once (lastSent).
//  3. Live frames only count against Config.SendQueue. When that overflows,
//     the live frames are dropped and the flusher catches up from the log
//     (a resync); private frames (acks, errors, replies) are never dropped.
//  4. Everything queued is written with one vectored write (net.Buffers).

// item is one queued thing for the flusher.
type item struct {
	f    *hub.Frame  // a shared live frame, written as f.Data[v]
	v    hub.Variant //
	data []byte      // a private frame (when f is nil and job is nil)
	job  *catchup    // a join's history replay, or a room forgotten on leave
}

// catchup replays a room from its log, then lets its live frames through.
type catchup struct {
	room   string  // display name
	key    string  // folded
	since  *uint64 // resume after this id; nil: the last History messages
	epoch  string  // the epoch since belongs to ("" if unknown)
	forget bool    // the room was left: drop its state
}

// roomCursor is the flusher's state for a room it delivers.
type roomCursor struct {
	display string
	last    uint64 // the last id written
}

// Deliver queues a live frame. It is called by the hub and must not block.
func (s *session) Deliver(f *hub.Frame, v hub.Variant) {
	if s.srv.cfg.NoEcho && f.ID != 0 && f.From == s.nickKey.Load().(string) {
		return
	}
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		return
	}
	if s.behind {
		s.mu.Unlock()
		return
	}
	if s.live >= s.srv.cfg.SendQueue {
		s.overflowLocked()
		s.mu.Unlock()
		return
	}
	if s.queue == nil {
		s.queue = s.srv.getItems()
	}
	s.queue = append(s.queue, item{f: f, v: v})
	s.live++
	s.kickLocked()
	s.mu.Unlock()
}

// overflowLocked drops the queued live frames and marks the session
// behind: the flusher will catch up from the log.
func (s *session) overflowLocked() {
	s.behind = true
	if s.behindSince.IsZero() {
		s.behindSince = time.Now()
		// A client that is behind may not read, and so not answer pings,
		// until it catches up: it is judged by --max-lag, not by the pong
		// timeout, which would otherwise cut it off first.
		s.conn.SetReadDeadline(s.behindSince.Add(s.srv.cfg.MaxLag + s.srv.cfg.PongTimeout))
	}
	kept := s.queue[:0]
	for _, it := range s.queue {
		if it.f == nil {
			kept = append(kept, it)
		}
	}
	clear(s.queue[len(kept):])
	s.queue = kept
	s.live = 0
	s.srv.metrics.slow.WithLabelValues("resync").Inc()
	s.kickLocked()
}

// enqueue queues a private frame (an answer to this client). It reports
// false if the connection is closing or the client has stopped reading
// its own answers.
func (s *session) enqueue(data []byte) bool {
	return s.push(item{data: data})
}

func (s *session) push(it item) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		return false
	}
	if len(s.queue)-s.live > 4*s.srv.cfg.SendQueue {
		// A client that sends commands but reads none of the answers.
		return false
	}
	if s.queue == nil {
		s.queue = s.srv.getItems()
	}
	s.queue = append(s.queue, it)
	s.kickLocked()
	return true
}

// kickLocked starts the flusher if it is not running, and wakes it if it
// is waiting out a coalescing window but what was just queued must not
// wait (an answer, a close). Checked on every delivery, so it reads no
// clock.
func (s *session) kickLocked() {
	if !s.writing {
		s.writing = true
		s.scheduleLocked()
		return
	}
	if !s.swept && !s.waiting || !s.urgentLocked() {
		return
	}
	if s.swept {
		// Take it back from the sweeper (which skips it now).
		s.swept = false
		s.writers.Add(1)
		go s.flush()
		return
	}
	s.wakeLocked()
}

// wakeLocked ends the flusher's wait, if it waits.
func (s *session) wakeLocked() {
	if s.wake != nil {
		select {
		case s.wake <- struct{}{}:
		default: // already woken
		}
	}
}

// coalesceLocked says how long the flusher should wait before writing, so
// that a busy connection gets its messages in fewer, larger writes: at
// most one write per Config.WriteCoalesce while only live frames are
// waiting. A connection that has been quiet writes at once, and answers
// (acks, errors, pongs), a close or a filling queue are never held back.
func (s *session) coalesceLocked() time.Duration {
	w := s.srv.cfg.WriteCoalesce
	if w <= 0 || s.urgentLocked() {
		return 0
	}
	if s.lastBatch >= busyBatch {
		// The last write carried many messages: the connection is under
		// sustained load, where latency is already queueing and a longer
		// window saves most.
		w *= 2
	}
	return w - time.Since(s.lastWrite)
}

// urgentLocked reports whether what is queued must be written without
// waiting for a coalescing window: a resync, a close, an answer to the
// client, or a queue half full.
func (s *session) urgentLocked() bool {
	return s.behind || s.closing || len(s.queue) != s.live || s.live >= s.srv.cfg.SendQueue/2
}

// busyBatch is the batch size from which a connection counts as busy.
const busyBatch = 16

// flush is the writer goroutine: it drains the queue in batches until it
// is empty and a coalescing window has passed without anything new, then
// exits. Between batches it waits out the window on its own timer: a busy
// connection keeps one flusher, instead of a timer and a new goroutine
// (whose stack grows again on every write) per batch.
func (s *session) flush() {
	defer s.writers.Done()
	var batch []item
	for {
		s.mu.Lock()
		if s.dead {
			s.writing = false
			s.wake = nil
			clear(s.queue)
			s.queue = s.queue[:0]
			s.mu.Unlock()
			return
		}
		if wait := s.coalesceLocked(); wait > 0 && len(s.queue) > 0 && s.raw != nil {
			// The sweeper writes it when the window has passed (see
			// sweep.go); the queue keeps filling meanwhile.
			s.sweepLaterLocked(wait)
			s.mu.Unlock()
			s.srv.putItems(batch)
			return
		} else if wait > 0 && s.raw == nil {
			// No sweeping (TLS): wait out the window here. The queue
			// keeps filling meanwhile and goes out in one write. An
			// empty queue waits too: a connection that just wrote is
			// likely to have more within the window.
			if s.wake == nil {
				s.wake = make(chan struct{}, 1)
			}
			wake := s.wake
			s.waiting = true
			s.mu.Unlock()
			s.sleep(wait, wake)
			s.mu.Lock()
			s.waiting = false
			s.mu.Unlock()
			continue
		}
		resync := s.behind
		s.behind = false
		if resync && time.Since(s.behindSince) > s.srv.cfg.MaxLag {
			// Behind for too long: the close frame is all that is left.
			resync = false
			clear(s.queue)
			s.queue = append(s.queue[:0], item{data: closeFrame(closePolicy, "slow consumer")})
			s.live = 0
			s.closing = true
			s.closeCode = closePolicy
			s.closeSent = make(chan struct{})
			if s.endReason == "" {
				s.endReason = "slow consumer: behind for longer than --max-lag"
			}
			s.srv.metrics.slow.WithLabelValues("disconnect").Inc()
		}
		if len(s.queue) == 0 && !resync {
			s.idleLocked()
			// Nor buffers, nor a timer.
			s.wake, s.sleeper = nil, nil
			s.srv.putItems(batch)
			s.srv.putBufs(s.bufs)
			s.bufs = nil
			closing := s.closing
			s.mu.Unlock()
			if closing {
				s.closeWritten()
			}
			return
		}
		batch, s.queue = s.queue, batch[:0]
		s.lastWrite = time.Now()
		s.lastBatch = s.live
		s.live = 0
		s.mu.Unlock()

		if resync {
			if err := s.resync(); err != nil {
				s.writeFailed(err)
				continue
			}
		}
		if err := s.writeBatch(batch); err != nil {
			s.writeFailed(err)
		}
		clear(batch)
	}
}

// sleep waits for d, or until woken. Only the flusher calls it.
func (s *session) sleep(d time.Duration, wake <-chan struct{}) {
	if s.sleeper == nil {
		s.sleeper = time.NewTimer(d)
	} else {
		s.sleeper.Reset(d)
	}
	select {
	case <-s.sleeper.C:
	case <-wake:
		s.sleeper.Stop()
	}
}

// writeFailed ends the session after a failed write: the socket is gone or
// stuck, so nothing more can be written.
func (s *session) writeFailed(err error) {
	s.mu.Lock()
	s.dead = true
	s.mu.Unlock()
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		s.srv.metrics.slow.WithLabelValues("disconnect").Inc()
		s.setEnd("slow consumer: write blocked past --max-lag")
	} else {
		s.setEnd("write failed: " + err.Error())
	}
	s.conn.Close()
}

// writeBatch writes a batch with one vectored write, running catch-up jobs
// in order.
func (s *session) writeBatch(batch []item) error {
	if s.bufs == nil {
		s.bufs = s.srv.getBufs()
	}
	bufs := s.bufs[:0]
	delivered := 0
	var lc liveCursor
	flushBufs := func() error {
		if len(bufs) == 0 {
			return nil
		}
		n, err := s.writeBuffers(bufs)
		s.srv.metrics.bytesWritten.Add(float64(n))
		s.srv.metrics.delivered.Add(float64(delivered))
		delivered = 0
		clear(bufs)
		bufs = bufs[:0]
		return err
	}
	for _, it := range batch {
		switch {
		case it.job != nil:
			if err := flushBufs(); err != nil {
				return err
			}
			if err := s.runJob(it.job); err != nil {
				return err
			}
			lc.have = false // the job may have added or dropped a cursor
		case it.f != nil:
			if b, counted := s.live1(&lc, it); b != nil {
				bufs = append(bufs, b)
				if counted {
					delivered++
				}
			}
		default:
			bufs = append(bufs, it.data)
		}
	}
	err := flushBufs()
	s.bufs = bufs[:0]
	return err
}

func (s *session) writeBuffers(bufs net.Buffers) (int64, error) {
	s.conn.SetWriteDeadline(time.Now().Add(s.srv.cfg.MaxLag))
	n, err := bufs.WriteTo(s.conn)
	s.srv.metrics.writes.Inc()
	return n, err
}

// runJob replays one room's history, or forgets a room that was left.
func (s *session) runJob(j *catchup) error {
	if j.forget {
		delete(s.cursors, j.key)
		return nil
	}
	c := &roomCursor{display: j.room}
	var pre []protocol.Event
	since := j.since
	if since != nil && j.epoch != "" && j.epoch != s.srv.broker.Epoch() {
		pre = append(pre, protocol.Event{Type: protocol.EvReset, Room: j.room, Epoch: s.srv.broker.Epoch()})
		since = nil
	}
	ctx, cancel := context.WithTimeout(s.srv.baseCtx, 30*time.Second)
	defer cancel()
	if since == nil {
		page, err := s.srv.broker.Read(ctx, broker.Query{Room: j.room, Backward: true, Limit: s.srv.cfg.History})
		if err != nil {
			// Live messages still flow; the client is told the
			// history could not be read.
			s.setCursor(j.key, c)
			return s.jobError(j, err)
		}
		// The cursor starts after the last message written, never at
		// page.Last: on a cluster an empty room's Last is the stream's
		// newest id, which the room's first messages may not exceed.
		c.last = 0
		if n := len(page.Messages); n > 0 {
			c.last = page.Messages[n-1].ID
		}
		if err := s.writeHistory(j, pre, page.Messages); err != nil {
			return err
		}
		s.setCursor(j.key, c)
		return nil
	}
	c.last = *since
	first := true
	for {
		page, err := s.srv.broker.Read(ctx, broker.Query{Room: j.room, After: c.last, Limit: protocol.MaxHistoryLimit})
		if err != nil {
			// Live messages still flow; the client is told the
			// history could not be read.
			s.setCursor(j.key, c)
			return s.jobError(j, err)
		}
		if first {
			first = false
			switch {
			case page.Last < c.last:
				// Ids this log never gave: the client's since belongs to
				// another log. Start again from the latest history.
				j2 := *j
				j2.since = nil
				j2.epoch = ""
				if err := s.writeEvents([]protocol.Event{{Type: protocol.EvReset, Room: j.room, Epoch: s.srv.broker.Epoch()}}, j); err != nil {
					return err
				}
				return s.runJob(&j2)
			case page.First > c.last+1:
				pre = append(pre, protocol.Event{Type: protocol.EvGap, Room: j.room, First: c.last + 1, Last: page.First - 1})
			case page.First == 0 && page.Last > c.last:
				pre = append(pre, protocol.Event{Type: protocol.EvGap, Room: j.room, First: c.last + 1, Last: page.Last})
			}
		}
		if err := s.writeHistory(j, pre, page.Messages); err != nil {
			return err
		}
		pre = nil
		if n := len(page.Messages); n > 0 {
			c.last = page.Messages[n-1].ID
		}
		if len(page.Messages) < protocol.MaxHistoryLimit {
			break
		}
	}
	s.setCursor(j.key, c)
	return nil
}

func (s *session) setCursor(key string, c *roomCursor) {
	if s.cursors == nil {
		s.cursors = make(map[string]*roomCursor)
	}
	s.cursors[key] = c
}

// resync catches every delivered room up from the log after an overflow.
func (s *session) resync() error {
	for key, c := range s.cursors {
		last := c.last
		j := &catchup{room: c.display, key: key, since: &last}
		if err := s.runJob(j); err != nil {
			return err
		}
	}
	return nil
}

func (s *session) jobError(j *catchup, err error) error {
	s.srv.log.Warn("history read failed", "room", j.room, "err", err)
	ev := (&protocol.Error{Code: protocol.CodeInternal, Message: "could not read the history of #" + j.room + ": " + err.Error(), Room: j.room}).Event()
	return s.writeEvents([]protocol.Event{ev}, j)
}

// writeHistory writes pre events, then messages marked as history.
func (s *session) writeHistory(j *catchup, pre []protocol.Event, msgs []chat.Message) error {
	evs := pre
	for i := range msgs {
		m := &msgs[i]
		ev := protocol.MessageEvent(m, true)
		ev.Room = j.room
		evs = append(evs, ev)
	}
	if err := s.writeEvents(evs, j); err != nil {
		return err
	}
	return nil
}

// writeEvents encodes events for this session and writes them at once.
func (s *session) writeEvents(evs []protocol.Event, j *catchup) error {
	if len(evs) == 0 {
		return nil
	}
	// The variant is taken now, not when the join was queued: a text
	// client may have switched its current room meanwhile.
	v := s.variant(j.room)
	var buf []byte
	delivered := 0
	for i := range evs {
		if evs[i].Type == protocol.EvMessage {
			delivered++
		}
		buf = append(buf, Encode(&evs[i], v)...)
	}
	n, err := s.writeBuffers(net.Buffers{buf})
	s.srv.metrics.bytesWritten.Add(float64(n))
	s.srv.metrics.delivered.Add(float64(delivered))
	return err
}

// Encode encodes an event for a variant as a complete text frame. It is
// the hub's Encoder.
func Encode(ev *protocol.Event, v hub.Variant) []byte {
	return textFrame(func(b []byte) []byte {
		switch v {
		case hub.VariantJSON:
			return protocol.AppendJSON(b, ev)
		case hub.VariantText:
			return protocol.AppendText(b, ev, ev.Room)
		default:
			return protocol.AppendText(b, ev, "")
		}
	})
}

var _ hub.Encoder = Encode

// closeWritten is called by the flusher when the queue drained while the
// session was closing: the close frame (queued last) is out.
func (s *session) closeWritten() {
	s.mu.Lock()
	sent := s.closeSent
	s.mu.Unlock()
	if sent != nil {
		s.closeOnce.Do(func() { close(sent) })
	}
	// The reader may be blocked on a client that sends nothing: give it
	// a moment to read the client's close reply, then end.
	s.conn.SetReadDeadline(time.Now().Add(closeGrace))
}

// closeGrace is how long the server waits for a client's close reply.
const closeGrace = 2 * time.Second

// sendClose queues a close frame as the last thing to write and stops
// taking more. It reports whether this call started the close.
func (s *session) sendClose(code int, reason string) bool {
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		return false
	}
	if code != closeGoingAway && code != closeNormal {
		// Fail fast: what was queued no longer matters.
		clear(s.queue)
		s.queue = s.queue[:0]
		s.live = 0
	}
	s.queue = append(s.queue, item{data: closeFrame(code, reason)})
	s.closing = true
	s.closeCode = code
	s.closeSent = make(chan struct{})
	s.kickLocked()
	s.mu.Unlock()
	return true
}

// Queues and write buffers are pooled: a connection holds them only while
// it has something to write, and busy connections do not grow new ones on
// every wake-up.

const pooledCap = 64

func (srv *Server) getItems() []item {
	if p, ok := srv.items.Get().(*[]item); ok {
		return (*p)[:0]
	}
	return make([]item, 0, pooledCap)
}

func (srv *Server) putItems(q []item) {
	if q == nil || cap(q) > 4*pooledCap {
		return
	}
	clear(q[:cap(q)])
	q = q[:0]
	srv.items.Put(&q)
}

func (srv *Server) getBufs() net.Buffers {
	if p, ok := srv.bufs.Get().(*net.Buffers); ok {
		return (*p)[:0]
	}
	return make(net.Buffers, 0, pooledCap)
}

func (srv *Server) putBufs(b net.Buffers) {
	if b == nil || cap(b) > 4*pooledCap {
		return
	}
	clear(b[:cap(b)])
	b = b[:0]
	srv.bufs.Put(&b)
}
