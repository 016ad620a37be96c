package server

import (
	"container/heap"
	"net"
	"runtime"
	"sync"
	"time"
)

// The sweeper writes coalesced live frames. A busy connection's live
// frames wait out a coalescing window (Config.WriteCoalesce) so that they
// go out in one write; rather than a goroutine and a timer per connection
// and window, the connection is put on the sweeper's schedule, and when
// the window has passed one of a few long-lived workers writes its batch
// with a single non-blocking writev. A worker never waits on a socket:
// what a full socket buffer does not take goes back to the head of the
// queue, and the connection's own flusher writes it, blocking, as before.
// Everything that must not wait (answers, closes, catch-up, a queue half
// full) takes the flusher at once. At 200 messages/s to 1,000
// subscribers, the timers, selects and goroutine switches of one flusher
// per window were a quarter of the server's CPU.

// sweeper schedules connections whose live frames wait out a window.
type sweeper struct {
	mu    sync.Mutex
	due   dueHeap       // guarded by mu
	kick  chan struct{} // a new earliest entry, for the scheduler
	ready chan *session // due connections, for the workers
	stop  chan struct{}
	done  sync.WaitGroup
}

type dueEntry struct {
	at time.Time
	s  *session
}

type dueHeap []dueEntry

func (h dueHeap) Len() int           { return len(h) }
func (h dueHeap) Less(i, j int) bool { return h[i].at.Before(h[j].at) }
func (h dueHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *dueHeap) Push(x any)        { *h = append(*h, x.(dueEntry)) }
func (h *dueHeap) Pop() any {
	old := *h
	e := old[len(old)-1]
	old[len(old)-1] = dueEntry{}
	*h = old[:len(old)-1]
	return e
}

// sweepWorkers is how many connections are written at once.
func sweepWorkers() int { return max(2, runtime.GOMAXPROCS(0)) }

func newSweeper() *sweeper {
	w := &sweeper{
		kick:  make(chan struct{}, 1),
		ready: make(chan *session, 1024),
		stop:  make(chan struct{}),
	}
	w.done.Add(1)
	go w.schedule()
	for range sweepWorkers() {
		w.done.Add(1)
		go w.work()
	}
	return w
}

// close stops the sweeper and waits for its goroutines. Connections still
// scheduled are not written: by then every session has ended.
func (w *sweeper) close() {
	close(w.stop)
	w.done.Wait()
}

// add schedules s to be written at at. Called with s.mu held.
func (w *sweeper) add(s *session, at time.Time) {
	w.mu.Lock()
	heap.Push(&w.due, dueEntry{at: at, s: s})
	first := w.due[0].s == s
	w.mu.Unlock()
	if first {
		select {
		case w.kick <- struct{}{}:
		default:
		}
	}
}

// schedule hands each connection to the workers when its time comes.
func (w *sweeper) schedule() {
	defer w.done.Done()
	t := time.NewTimer(time.Hour)
	defer t.Stop()
	var batch []*session
	for {
		w.mu.Lock()
		now := time.Now()
		for len(w.due) > 0 && !w.due[0].at.After(now) {
			batch = append(batch, heap.Pop(&w.due).(dueEntry).s)
		}
		wait := time.Hour
		if len(w.due) > 0 {
			wait = w.due[0].at.Sub(now)
		}
		w.mu.Unlock()
		for i, s := range batch {
			select {
			case w.ready <- s:
			case <-w.stop:
				return
			}
			batch[i] = nil
		}
		batch = batch[:0]
		t.Reset(wait)
		select {
		case <-t.C:
		case <-w.kick:
		case <-w.stop:
			return
		}
	}
}

func (w *sweeper) work() {
	defer w.done.Done()
	var sc sweepScratch
	for {
		select {
		case s := <-w.ready:
			s.sweep(&sc)
		case <-w.stop:
			return
		}
	}
}

// sweepScratch is a worker's reusable buffers.
type sweepScratch struct {
	batch []item
	bufs  net.Buffers
	iov   iovecs
}

// sweep writes what s has queued, if it is still the sweeper's to write.
func (s *session) sweep(sc *sweepScratch) {
	s.mu.Lock()
	if !s.swept || s.dead {
		// A flusher took over (something urgent came), or it ended.
		s.mu.Unlock()
		return
	}
	s.swept = false
	if len(s.queue) == 0 {
		s.idleLocked()
		s.mu.Unlock()
		return
	}
	sc.batch, s.queue = s.queue, sc.batch[:0]
	s.lastWrite = time.Now()
	s.lastBatch = s.live
	s.live = 0
	s.writers.Add(1)
	s.mu.Unlock()
	defer s.writers.Done()

	bufs, delivered := s.collectLive(sc.bufs[:0], sc.batch)
	clear(sc.batch)
	sc.batch = sc.batch[:0]
	n, err := sc.iov.writev(s.raw, bufs)
	s.srv.metrics.writes.Inc()
	s.srv.metrics.bytesWritten.Add(float64(n))
	s.srv.metrics.delivered.Add(float64(delivered))
	if err != nil {
		clear(bufs)
		sc.bufs = bufs[:0]
		s.writeFailed(err)
		s.mu.Lock()
		s.writing = false
		s.mu.Unlock()
		return
	}
	rest := unwritten(bufs, n)
	clear(bufs)
	sc.bufs = bufs[:0]

	s.mu.Lock()
	defer s.mu.Unlock()
	if s.dead {
		s.writing = false
		return
	}
	if rest != nil {
		// The socket buffer is full: the flusher writes the rest first,
		// and waits for the socket as it does.
		s.queue = append(s.queue, item{})
		copy(s.queue[1:], s.queue)
		s.queue[0] = item{data: rest}
		s.writers.Add(1)
		go s.flush()
		return
	}
	if len(s.queue) == 0 {
		s.idleLocked()
		return
	}
	s.scheduleLocked()
}

// idleLocked records that everything queued is written: nobody writes, a
// session that had fallen behind has caught up, and an idle connection
// holds no queue.
func (s *session) idleLocked() {
	s.writing = false
	s.behindSince = time.Time{}
	s.srv.putItems(s.queue)
	s.queue = nil
}

// scheduleLocked decides who writes what is queued, s.writing being set:
// the sweeper after the coalescing window, or a flusher now.
func (s *session) scheduleLocked() {
	if wait := s.coalesceLocked(); wait > 0 && s.raw != nil {
		s.sweepLaterLocked(wait)
		return
	}
	s.writers.Add(1)
	go s.flush()
}

// sweepLaterLocked puts s on the sweeper's schedule, wait from now.
func (s *session) sweepLaterLocked(wait time.Duration) {
	s.swept = true
	s.srv.sweeper.add(s, time.Now().Add(wait))
}

// collectLive appends the bytes of batch's live frames that are due (see
// writeBatch) to bufs, and counts the deliveries.
func (s *session) collectLive(bufs net.Buffers, batch []item) (net.Buffers, int) {
	var lc liveCursor
	delivered := 0
	for _, it := range batch {
		if it.f == nil {
			// Only live frames are swept; anything else made the queue
			// urgent and went to the flusher.
			bufs = append(bufs, it.data)
			continue
		}
		if b, counted := s.live1(&lc, it); b != nil {
			bufs = append(bufs, b)
			if counted {
				delivered++
			}
		}
	}
	return bufs, delivered
}

// liveCursor caches the room cursor of a run of live frames: batches are
// mostly one room's frames.
type liveCursor struct {
	cur  *roomCursor
	room string
	have bool
}

// live1 returns the bytes to write for live frame it, or nil when it is
// not due: its room is not caught up yet (the catch-up job will read it
// from the log) or it was written already. counted says it is a message
// delivery (not a notice).
func (s *session) live1(lc *liveCursor, it item) (b []byte, counted bool) {
	if it.f.Room != lc.room || !lc.have {
		lc.cur, lc.room, lc.have = s.cursors[it.f.Room], it.f.Room, true
	}
	c := lc.cur
	if it.f.ID != 0 {
		if c == nil || it.f.ID <= c.last {
			return nil, false
		}
		c.last = it.f.ID
		return it.f.Data[it.v], true
	}
	if c == nil {
		return nil, false
	}
	return it.f.Data[it.v], false
}

// unwritten returns a copy of what of bufs lies past the first n bytes,
// or nil if everything was written.
func unwritten(bufs net.Buffers, n int) []byte {
	var rest []byte
	for _, b := range bufs {
		switch {
		case n >= len(b):
			n -= len(b)
		default:
			rest = append(rest, b[n:]...)
			n = 0
		}
	}
	return rest
}
