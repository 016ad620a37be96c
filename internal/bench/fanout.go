package bench

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"
)

// room is one benchmark room. live counts its subscribers that are still
// connected: a message is fully delivered once that many received it.
type room struct {
	name string
	live atomic.Int32
	pubs []*publisher // immutable after setup
}

// publisher sends one stream of numbered messages to its room.
type publisher struct {
	id   int // global publisher id, in the payload
	room *room
	conn *wsConn // written only by the publisher's goroutine

	// window has one slot per message that may be in flight, for message
	// seq at slot seq%len: the sequence number in the high 40 bits and how
	// many subscribers received it in the low 24. Subscribers count with
	// a compare-and-swap, so a late message never counts for a newer one.
	window []atomic.Uint64
	// wake is signalled (never blocking) when a message or probe reaches
	// the last subscriber that needed it.
	wake chan struct{}
	// probed counts subscribers that received one of its probes.
	probed atomic.Int32
	// sent is the last sequence number sent.
	sent atomic.Uint64

	stalls int64 // owned by the publisher goroutine until it ends
}

const countBits = 24

func (p *publisher) signal() {
	select {
	case p.wake <- struct{}{}:
	default:
	}
}

// delivered counts one subscriber's first receipt of message seq.
func (p *publisher) delivered(seq uint64) {
	if len(p.window) == 0 {
		return
	}
	slot := &p.window[seq%uint64(len(p.window))]
	for {
		v := slot.Load()
		if v>>countBits != seq {
			return
		}
		if slot.CompareAndSwap(v, v+1) {
			if int32(v+1)&(1<<countBits-1) >= p.room.live.Load() {
				p.signal()
			}
			return
		}
	}
}

// track is what one subscriber knows of one publisher's stream.
type track struct {
	last uint64   // highest sequence number received
	n    uint64   // distinct messages received
	seen []uint64 // bitmap of sequence numbers received
}

// subscriber receives and checks every message of its room.
type subscriber struct {
	id   int
	room *room
	conn *wsConn

	// unique counts distinct measured messages received; the progress
	// line and the drain loop read it while the reader runs.
	unique atomic.Int64

	// Owned by the reader goroutine until Run has waited for it.
	tracks   []track // by the publisher's index in room.pubs
	probed   []bool
	hist     histogram
	dups     int64
	ooo      int64
	resynced int64
	foreign  int64 // payloads of this run from a publisher of another room
	lastAt   int64 // ns since the run started of the last delivery
	err      error // why the connection ended, nil if we closed it
}

// run is the state of one fan-out run.
type run struct {
	cfg    Config
	marker marker
	start  time.Time // monotonic base of every payload's send time
	rooms  []*room
	pubs   []*publisher
	subs   []*subscriber
	dial   *dialer

	closing    atomic.Bool  // set before we close connections
	pubDropped atomic.Int32 // publisher connections that ended before we closed them
	errs       errorLog     // errors the server sent, and failed connections
	connect    histogram    // guarded by connMu
	connMu     sync.Mutex
}

func (r *run) now() int64 { return int64(time.Since(r.start)) }

// Run performs a fan-out benchmark and returns its result. The result is
// returned even when the run finds a broken promise (Result.OK is false);
// the error is for runs that could not be done or were cancelled.
func Run(ctx context.Context, cfg Config) (*Result, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	if cfg.Idle > 0 {
		return RunIdle(ctx, cfg)
	}
	if cfg.Subs == 0 || cfg.Pubs == 0 {
		return nil, errors.New("a fan-out run needs subscribers and publishers")
	}
	var conn0, conn1 procSample
	if cfg.ServerPID > 0 {
		// Find a wrong pid before connecting a thousand clients.
		if conn0, err = readProc(cfg.ServerPID); err != nil {
			return nil, err
		}
	}
	d, err := newDialer(cfg.URL, cfg.Text, cfg.Subs+cfg.Pubs, cfg.ConnectTimeout)
	if err != nil {
		return nil, err
	}
	r := &run{cfg: cfg, dial: d, marker: newMarker(rand.Uint32() & (1<<(4*runDigits) - 1)), start: time.Now()}
	r.setup()

	var readers sync.WaitGroup
	// Whatever happens, close every connection and wait for its reader
	// before returning.
	shutdown := sync.OnceFunc(func() {
		r.closing.Store(true)
		closeAll(r.conns())
		readers.Wait()
	})
	defer shutdown()

	progress := newProgress(cfg.Progress, cfg.ProgressLines)
	defer progress.stop()
	progress.connecting(0, cfg.Subs+cfg.Pubs)
	connectStart, connectCPU0 := time.Now(), selfCPU()
	if err := r.connectAll(ctx, &readers, progress); err != nil {
		return nil, err
	}
	connectTime, connectCPU := time.Since(connectStart), selfCPU()-connectCPU0
	if cfg.ServerPID > 0 {
		if conn1, err = readProc(cfg.ServerPID); err != nil {
			return nil, err
		}
	}

	// Probe: every subscriber must receive from every publisher of its
	// room before the clock starts, so a server that registers
	// subscriptions asynchronously (gorilla's hub) is not charged loss.
	if err := r.probe(ctx); err != nil {
		return nil, err
	}

	// Measure.
	var before procSample
	if cfg.ServerPID > 0 {
		if before, err = readProc(cfg.ServerPID); err != nil {
			return nil, err
		}
	}
	t0 := r.now()
	cpu0 := selfCPU()
	sendCtx, cancelSend := context.WithTimeout(ctx, cfg.Duration+cfg.Drain+cfg.ConnectTimeout)
	defer cancelSend()
	deadline := time.Now().Add(cfg.Duration)
	var pubs sync.WaitGroup
	for _, p := range r.pubs {
		pubs.Go(func() { r.publish(sendCtx, p, deadline) })
	}
	progress.measure(r, t0)
	pubs.Wait()
	sendEnd := r.now()
	r.drain(ctx, progress)
	clientCPU := selfCPU() - cpu0
	var after procSample
	if cfg.ServerPID > 0 {
		if after, err = readProc(cfg.ServerPID); err != nil {
			return nil, err
		}
	}
	progress.stop()
	shutdown()

	res := r.result(t0, sendEnd, connectTime)
	res.ClientCPUSeconds = clientCPU.Seconds()
	res.Connect.BenchCPUSeconds = connectCPU.Seconds()
	if cfg.ServerPID > 0 {
		res.Connect.ServerCPUSeconds = (conn1.cpu - conn0.cpu).Seconds()
		res.Server = serverStats(cfg.ServerPID, before, after, res.Delivered)
	}
	res.verify()
	return res, ctx.Err()
}

// setup makes the rooms, publishers and subscribers (not yet connected).
func (r *run) setup() {
	cfg := r.cfg
	for i := range cfg.Rooms {
		r.rooms = append(r.rooms, &room{name: fmt.Sprintf("bench-%d", i)})
	}
	for i := range cfg.Pubs {
		rm := r.rooms[i%cfg.Rooms]
		p := &publisher{id: i, room: rm, wake: make(chan struct{}, 1)}
		if cfg.Rate == 0 {
			p.window = make([]atomic.Uint64, cfg.Window)
		}
		rm.pubs = append(rm.pubs, p)
		r.pubs = append(r.pubs, p)
	}
	for i := range cfg.Subs {
		rm := r.rooms[i%cfg.Rooms]
		r.subs = append(r.subs, &subscriber{
			id: i, room: rm,
			tracks: make([]track, len(rm.pubs)),
			probed: make([]bool, len(rm.pubs)),
		})
	}
}

func (r *run) conns() []*wsConn {
	var cs []*wsConn
	for _, s := range r.subs {
		cs = append(cs, s.conn)
	}
	for _, p := range r.pubs {
		cs = append(cs, p.conn)
	}
	return cs
}

// connectAll connects subscribers, then publishers, ConnectConcurrency at
// a time, and starts each connection's reader.
func (r *run) connectAll(ctx context.Context, readers *sync.WaitGroup, progress *progress) error {
	n := len(r.subs) + len(r.pubs)
	var connected atomic.Int32
	err := connectEach(ctx, n, r.cfg.ConnectConcurrency, func(i int) error {
		var err error
		if i < len(r.subs) {
			err = r.connectSub(ctx, r.subs[i], readers)
		} else {
			err = r.connectPub(ctx, r.pubs[i-len(r.subs)], readers)
		}
		if err == nil {
			progress.connecting(int(connected.Add(1)), n)
		}
		return err
	})
	if err != nil {
		return fmt.Errorf("%w (after %d of %d connections)", err, connected.Load(), n)
	}
	return nil
}

func (r *run) timedDial(ctx context.Context, i int, nick, room string) (*wsConn, error) {
	t := time.Now()
	c, err := r.dial.dial(ctx, i, nick, room)
	if err == nil {
		r.connMu.Lock()
		r.connect.record(time.Since(t))
		r.connMu.Unlock()
	}
	return c, err
}

func (r *run) nick(kind byte, i int) string {
	return fmt.Sprintf("b%s%c%d", r.marker[1:], kind, i)
}

func (r *run) connectSub(ctx context.Context, s *subscriber, readers *sync.WaitGroup) error {
	c, err := r.timedDial(ctx, s.id, r.nick('s', s.id), s.room.name)
	if err != nil {
		return err
	}
	s.conn = c
	s.room.live.Add(1)
	readers.Go(func() {
		s.err = readLoop(c, r.closing.Load, func(frame []byte) { r.receive(s, frame) })
		s.room.live.Add(-1)
		if s.err != nil {
			r.errs.add(fmt.Sprintf("subscriber %d disconnected: %v", s.id, s.err))
		}
		for _, p := range s.room.pubs {
			p.signal() // it no longer holds back the window
		}
	})
	return nil
}

func (r *run) connectPub(ctx context.Context, p *publisher, readers *sync.WaitGroup) error {
	c, err := r.timedDial(ctx, len(r.subs)+p.id, r.nick('p', p.id), p.room.name)
	if err != nil {
		return err
	}
	p.conn = c
	readers.Go(func() {
		// A publisher reads its room like anyone (the server echoes), but
		// only looks for errors: a rejected send shows up as loss too,
		// and this says why.
		err := readLoop(c, r.closing.Load, func(frame []byte) {
			if r.cfg.Text {
				lines(frame, func(l []byte) {
					if e := serverError(true, l); e != nil {
						r.errs.add(fmt.Sprintf("publisher %d got %q", p.id, e))
					}
				})
			} else if e := serverError(false, frame); e != nil {
				r.errs.add(fmt.Sprintf("publisher %d got %s", p.id, e))
			}
		})
		if err != nil {
			r.pubDropped.Add(1)
			r.errs.add(fmt.Sprintf("publisher %d disconnected: %v", p.id, err))
		}
	})
	return nil
}

// receive handles one frame a subscriber read.
func (r *run) receive(s *subscriber, frame []byte) {
	if r.cfg.Text {
		lines(frame, func(l []byte) { r.receiveOne(s, l, false) })
		return
	}
	r.receiveOne(s, frame, true)
}

func (r *run) receiveOne(s *subscriber, b []byte, isJSON bool) {
	p, err := findPayload(b, r.marker)
	if err != nil {
		if err != errNoPayload {
			r.errs.add(fmt.Sprintf("subscriber %d: %v", s.id, err))
		} else if e := serverError(r.cfg.Text, b); e != nil {
			r.errs.add(fmt.Sprintf("subscriber %d got %q", s.id, e))
		}
		return
	}
	nr := len(r.rooms)
	if p.pub >= len(r.pubs) || r.pubs[p.pub].room != s.room {
		s.foreign++
		return
	}
	idx := p.pub / nr
	pub := r.pubs[p.pub]
	if p.seq == 0 { // a probe
		if !s.probed[idx] {
			s.probed[idx] = true
			if pub.probed.Add(1) >= s.room.live.Load() {
				pub.signal()
			}
		}
		return
	}
	now := r.now()
	t := &s.tracks[idx]
	w, bit := p.seq/64, uint64(1)<<(p.seq%64)
	for uint64(len(t.seen)) <= w {
		t.seen = append(t.seen, 0)
	}
	if t.seen[w]&bit != 0 {
		s.dups++
		return
	}
	t.seen[w] |= bit
	t.n++
	if p.seq < t.last {
		s.ooo++
	} else {
		t.last = p.seq
	}
	if isJSON && bytes.Contains(b, jsonReplay) {
		s.resynced++
	}
	s.hist.record(time.Duration(now - p.sent))
	s.lastAt = now
	s.unique.Add(1)
	pub.delivered(p.seq)
}

// probe has every publisher send probes (sequence number 0) until every
// subscriber of its room received one.
func (r *run) probe(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, r.cfg.ConnectTimeout)
	defer cancel()
	var wg sync.WaitGroup
	errs := make([]error, len(r.pubs))
	for i, p := range r.pubs {
		wg.Go(func() { errs[i] = r.probeOne(ctx, p) })
	}
	wg.Wait()
	return errors.Join(errs...)
}

func (r *run) probeOne(ctx context.Context, p *publisher) error {
	// A write the server does not take must not outlive ctx.
	defer context.AfterFunc(ctx, p.conn.abortWrites)()
	frame := r.newFrame(p)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		if p.probed.Load() >= p.room.live.Load() {
			return nil
		}
		frame.fill(payload{pub: p.id, seq: 0, sent: r.now()})
		if err := p.conn.writeText(frame.b); err != nil {
			return fmt.Errorf("publisher %d: %w", p.id, err)
		}
		select {
		case <-ctx.Done():
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return fmt.Errorf("after %v only %d of %d subscribers of %s received from publisher %d: is the server broadcasting?",
					r.cfg.ConnectTimeout, p.probed.Load(), p.room.live.Load(), p.room.name, p.id)
			}
			return ctx.Err()
		case <-p.wake:
		case <-tick.C:
		}
	}
}

// frame is a publisher's reusable outgoing frame.
type frame struct {
	b       []byte
	payload []byte // the payload's bytes within b
	marker  marker
}

func (r *run) newFrame(p *publisher) *frame {
	var prefix, suffix string
	if !r.cfg.Text {
		prefix = `{"type":"send","room":"` + p.room.name + `","text":"`
		suffix = `"}`
	}
	b := make([]byte, len(prefix)+r.cfg.Size+len(suffix))
	copy(b, prefix)
	copy(b[len(prefix)+r.cfg.Size:], suffix)
	return &frame{b: b, payload: b[len(prefix) : len(prefix)+r.cfg.Size], marker: r.marker}
}

func (f *frame) fill(p payload) { encodePayload(f.payload, f.marker, p) }

// publish sends numbered messages until the deadline: paced at the
// configured rate, or, at rate 0, whenever the window has room.
func (r *run) publish(ctx context.Context, p *publisher, deadline time.Time) {
	defer context.AfterFunc(ctx, p.conn.abortWrites)()
	f := r.newFrame(p)
	var interval time.Duration
	var next time.Time
	if r.cfg.Rate > 0 {
		interval = time.Duration(float64(time.Second) * float64(r.cfg.Pubs) / r.cfg.Rate)
		// Stagger publishers so their sends do not come in bursts.
		next = time.Now().Add(interval * time.Duration(p.id) / time.Duration(r.cfg.Pubs))
	}
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	w := uint64(len(p.window))
	for seq := uint64(1); seq <= maxSeq; seq++ {
		now := time.Now()
		if !now.Before(deadline) {
			return
		}
		if interval > 0 {
			if d := next.Sub(now); d > 0 {
				timer.Reset(d)
				select {
				case <-timer.C:
				case <-ctx.Done():
					return
				}
			}
			next = next.Add(interval)
		}
		if w > 0 {
			slot := &p.window[seq%w]
			if seq > w && !r.waitSlot(ctx, p, slot, timer) {
				return
			}
			slot.Store(seq << countBits)
		}
		f.fill(payload{pub: p.id, seq: seq, sent: r.now()})
		if err := p.conn.writeText(f.b); err != nil {
			if !r.closing.Load() && ctx.Err() == nil {
				r.errs.add(fmt.Sprintf("publisher %d: %v", p.id, err))
			}
			return
		}
		p.sent.Store(seq)
	}
}

// waitSlot waits until the message in slot reached every live subscriber,
// or for Drain: then it lets the publisher send anyway and counts a stall,
// because a lost message must not stop the run (it is reported as loss).
// It reports false when the run is over.
func (r *run) waitSlot(ctx context.Context, p *publisher, slot *atomic.Uint64, timer *time.Timer) bool {
	timedOut := false
	for int32(slot.Load())&(1<<countBits-1) < p.room.live.Load() {
		if timedOut {
			p.stalls++
			return true
		}
		timer.Reset(r.cfg.Drain)
		select {
		case <-p.wake:
			timer.Stop()
		case <-timer.C:
			timedOut = true
		case <-ctx.Done():
			return false
		}
	}
	return true
}

// drain waits after the last send until every subscriber received every
// message, or until deliveries stop making progress for Drain.
func (r *run) drain(ctx context.Context, progress *progress) {
	var expected int64
	for _, s := range r.subs {
		for _, p := range s.room.pubs {
			expected += int64(p.sent.Load())
		}
	}
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	last, lastChange := int64(-1), time.Now()
	for {
		var got int64
		for _, s := range r.subs {
			got += s.unique.Load()
		}
		if got >= expected {
			return
		}
		if got != last {
			last, lastChange = got, time.Now()
		} else if time.Since(lastChange) > r.cfg.Drain {
			return
		}
		progress.draining(expected - got)
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}

// result gathers what the readers recorded; they have all ended.
func (r *run) result(t0, sendEnd int64, connectTime time.Duration) *Result {
	cfg := r.cfg
	res := &Result{
		Mode: "fanout", URL: cfg.URL, Format: formatName(cfg.Text),
		Subs: cfg.Subs, Pubs: cfg.Pubs, Rooms: cfg.Rooms, Size: cfg.Size, Rate: cfg.Rate,
		Connect: connectStats(cfg.Subs+cfg.Pubs, connectTime, &r.connect),
	}
	if cfg.Rate == 0 {
		res.Window = cfg.Window
	}
	for _, p := range r.pubs {
		res.Sent += int64(p.sent.Load())
		res.Stalls += p.stalls
	}
	var hist histogram
	lastAt := sendEnd
	res.Disconnected = int(r.pubDropped.Load())
	for _, s := range r.subs {
		for i, p := range s.room.pubs {
			res.Expected += int64(p.sent.Load())
			res.Delivered += int64(s.tracks[i].n)
		}
		res.Duplicates += s.dups
		res.OutOfOrder += s.ooo
		res.Resynced += s.resynced
		res.Foreign += s.foreign
		if s.err != nil {
			res.Disconnected++
		}
		lastAt = max(lastAt, s.lastAt)
		hist.merge(&s.hist)
	}
	res.Lost = res.Expected - res.Delivered
	res.SendSeconds = time.Duration(sendEnd - t0).Seconds()
	res.Seconds = time.Duration(lastAt - t0).Seconds()
	if res.SendSeconds > 0 {
		res.SentPerSec = float64(res.Sent) / res.SendSeconds
	}
	if res.Seconds > 0 {
		res.DeliveredPerSec = float64(res.Delivered) / res.Seconds
	}
	res.Latency = latencyStats(&hist)
	res.ErrorCount, res.Errors = r.errs.snapshot()
	return res
}
