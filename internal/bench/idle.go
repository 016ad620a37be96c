package bench

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"
)

// RunIdle opens cfg.Idle connections that send nothing, ConnectConcurrency
// at a time, holds them for Duration, and reports the connect time and,
// with ServerPID, the server's memory per connection and CPU while idle.
// Connections join no room in the JSON format (a room would make every
// join a notice to every member: quadratic work that is not idling); in
// the text format they are where the server puts them.
//
// A connection the server drops while held fails the run.
func RunIdle(ctx context.Context, cfg Config) (*Result, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	if cfg.Idle <= 0 {
		return nil, fmt.Errorf("an idle run needs connections")
	}
	d, err := newDialer(cfg.URL, cfg.Text, cfg.Idle, cfg.ConnectTimeout)
	if err != nil {
		return nil, err
	}

	var before procSample
	if cfg.ServerPID > 0 {
		if before, err = readProc(cfg.ServerPID); err != nil {
			return nil, err
		}
	}

	run := fmt.Sprintf("%06x", rand.Uint32()&0xffffff)
	conns := make([]*wsConn, cfg.Idle)
	var (
		closing   atomic.Bool
		dropped   atomic.Int32
		errs      errorLog
		readers   sync.WaitGroup
		histMu    sync.Mutex
		hist      histogram
		connected atomic.Int32
	)
	shutdown := sync.OnceFunc(func() {
		closing.Store(true)
		closeAll(conns)
		readers.Wait()
	})
	defer shutdown()

	progress := newProgress(cfg.Progress, cfg.ProgressLines)
	defer progress.stop()
	start, cpu0 := time.Now(), selfCPU()
	err = connectEach(ctx, cfg.Idle, cfg.ConnectConcurrency, func(i int) error {
		t := time.Now()
		c, err := d.dial(ctx, i, fmt.Sprintf("i%s-%d", run, i), "")
		if err != nil {
			return err
		}
		took := time.Since(t)
		histMu.Lock()
		hist.record(took)
		histMu.Unlock()
		conns[i] = c
		readers.Go(func() {
			// Reading answers the server's pings; an idle client
			// gets a welcome and nothing else it needs.
			err := readLoop(c, closing.Load, func([]byte) {})
			if err != nil {
				dropped.Add(1)
				errs.add(fmt.Sprintf("connection %d dropped: %v", i, err))
			}
		})
		progress.connecting(int(connected.Add(1)), cfg.Idle)
		return nil
	})
	connectTime, connectCPU := time.Since(start), selfCPU()-cpu0
	if err != nil {
		return nil, fmt.Errorf("%w (after %d of %d connections)", err, connected.Load(), cfg.Idle)
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	progress.stop()

	var held0 procSample
	if cfg.ServerPID > 0 {
		if held0, err = readProc(cfg.ServerPID); err != nil {
			return nil, err
		}
	}
	holdStart := time.Now()
	hold := time.NewTimer(cfg.Duration)
	select {
	case <-hold.C:
	case <-ctx.Done():
		hold.Stop()
	}
	held := time.Since(holdStart)
	var after procSample
	if cfg.ServerPID > 0 {
		if after, err = readProc(cfg.ServerPID); err != nil {
			return nil, err
		}
	}
	shutdown()

	res := &Result{
		Mode: "idle", URL: cfg.URL, Format: formatName(cfg.Text), Idle: cfg.Idle,
		Held:         held.Seconds(),
		Connect:      connectStats(cfg.Idle, connectTime, &hist),
		Disconnected: int(dropped.Load()),
	}
	res.ErrorCount, res.Errors = errs.snapshot()
	res.Connect.BenchCPUSeconds = connectCPU.Seconds()
	if cfg.ServerPID > 0 {
		res.Connect.ServerCPUSeconds = (held0.cpu - before.cpu).Seconds()
		res.Server = &Server{
			PID:           cfg.ServerPID,
			CPUSeconds:    (after.cpu - held0.cpu).Seconds(),
			RSSBeforeKiB:  before.rssKiB,
			RSSAfterKiB:   after.rssKiB,
			RSSPerConnKiB: float64(after.rssKiB-before.rssKiB) / float64(cfg.Idle),
		}
	}
	res.verify()
	return res, ctx.Err()
}
