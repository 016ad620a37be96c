package bench

import (
	"fmt"
	"io"
	"sync"
	"time"
)

// progress prints one live status line, rewritten in place with \r. All
// methods are safe on a progress with no writer, and after stop.
type progress struct {
	w     io.Writer
	lines bool // one line per update instead of \r

	mu        sync.Mutex
	printed   bool      // guarded by mu: a line is on screen
	stopped   bool      // guarded by mu
	lastPrint time.Time // guarded by mu
	inFlight  int64     // guarded by mu: set while draining

	quit chan struct{}
	wg   sync.WaitGroup // the ticker goroutine, if any
}

func newProgress(w io.Writer, lines bool) *progress {
	return &progress{w: w, lines: lines, quit: make(chan struct{})}
}

func (p *progress) line(force bool, format string, args ...any) {
	if p.w == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.stopped || !force && time.Since(p.lastPrint) < p.every() {
		return
	}
	p.lastPrint = time.Now()
	if p.lines {
		fmt.Fprintf(p.w, format+"\n", args...)
		return
	}
	p.printed = true
	fmt.Fprintf(p.w, "\r%-78s", fmt.Sprintf(format, args...))
}

// connecting is called once per connection: it formats nothing unless a
// line is due.
func (p *progress) connecting(n, total int) {
	if p.w == nil {
		return
	}
	p.mu.Lock()
	due := n == total || time.Since(p.lastPrint) >= p.every()
	p.mu.Unlock()
	if due {
		p.line(n == total, "connecting %s/%s", count(int64(n)), count(int64(total)))
	}
}

// every is how often a line may be printed.
func (p *progress) every() time.Duration {
	if p.lines {
		return time.Second
	}
	return 200 * time.Millisecond
}

func (p *progress) draining(left int64) {
	p.mu.Lock()
	p.inFlight = left
	p.mu.Unlock()
}

// measure prints rates every second until stop.
func (p *progress) measure(r *run, t0 int64) {
	if p.w == nil {
		return
	}
	p.wg.Go(func() {
		tick := time.NewTicker(time.Second)
		defer tick.Stop()
		var lastSent, lastGot int64
		lastT := t0
		for {
			select {
			case <-p.quit:
				return
			case <-tick.C:
			}
			var sent, got int64
			for _, pub := range r.pubs {
				sent += int64(pub.sent.Load())
			}
			live := 0
			for _, s := range r.subs {
				got += s.unique.Load()
			}
			for _, rm := range r.rooms {
				live += int(rm.live.Load())
			}
			now := r.now()
			dt := time.Duration(now - lastT).Seconds()
			n, _ := r.errs.snapshot()
			p.mu.Lock()
			left := p.inFlight
			p.mu.Unlock()
			status := fmt.Sprintf("%4.0fs  sent %s/s  delivered %s/s  subs %d", time.Duration(now-t0).Seconds(),
				count(int64(float64(sent-lastSent)/dt)), count(int64(float64(got-lastGot)/dt)), live)
			if left > 0 {
				status += fmt.Sprintf("  draining %s", count(left))
			}
			if n > 0 {
				status += fmt.Sprintf("  errors %d", n)
			}
			p.line(true, "%s", status)
			lastSent, lastGot, lastT = sent, got, now
		}
	})
}

// stop ends the line (and the ticker); later calls do nothing.
func (p *progress) stop() {
	p.mu.Lock()
	if p.stopped {
		p.mu.Unlock()
		return
	}
	p.stopped = true
	printed := p.printed
	p.mu.Unlock()
	close(p.quit)
	p.wg.Wait()
	if printed {
		fmt.Fprintln(p.w)
	}
}
