package bench

import (
	"bytes"
	"context"
	"sync"
	"sync/atomic"
	"time"
)

// connectEach runs connect(i) for every i in [0, n), concurrency at a
// time on as many goroutines. Reusing a goroutine for many dials grows its
// stack once: a goroutine per dial grew a new stack each time, a tenth of
// the load generator's CPU while connecting. It starts no more after the
// first error or once ctx ends, and returns the first error.
func connectEach(ctx context.Context, n, concurrency int, connect func(i int) error) error {
	var next atomic.Int64
	var failed atomic.Pointer[error]
	var wg sync.WaitGroup
	for range min(max(concurrency, 1), n) {
		wg.Go(func() {
			for failed.Load() == nil && ctx.Err() == nil {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				if err := connect(i); err != nil {
					failed.CompareAndSwap(nil, &err)
					return
				}
			}
		})
	}
	wg.Wait()
	if p := failed.Load(); p != nil {
		return *p
	}
	return ctx.Err()
}

// readLoop reads c until it fails or is closed, handing each message to
// onFrame; the bytes are only valid during the call. It owns the socket:
// it closes it when reading ends. It returns nil when the connection was
// closed by us (closing is set), else why it ended.
func readLoop(c *wsConn, closing func() bool, onFrame func([]byte)) error {
	defer c.closeNow()
	for {
		msg, err := c.readMessage()
		if err != nil {
			if closing() {
				return nil
			}
			return err
		}
		onFrame(msg)
	}
}

// lines calls f for each line of a text frame: servers may batch several
// messages into one frame, separated by newlines (gorilla's chat example).
func lines(frame []byte, f func([]byte)) {
	for len(frame) > 0 {
		i := bytes.IndexByte(frame, '\n')
		if i < 0 {
			f(frame)
			return
		}
		f(frame[:i])
		frame = frame[i+1:]
	}
}

var (
	jsonError  = []byte(`"type":"error"`)
	jsonReplay = []byte(`"history":true`)
	textError  = []byte("! ")
)

// serverError returns the error event or line in frame (for the report), or
// nil when it is none.
func serverError(text bool, frame []byte) []byte {
	if text {
		if bytes.HasPrefix(frame, textError) {
			return frame
		}
		return nil
	}
	if bytes.Contains(frame, jsonError) {
		return frame
	}
	return nil
}

// closeAll starts a normal close of every connection. Each one's reader
// ends when the server answers, or closeWait from now at the latest, and
// closes the socket; the caller waits for the readers.
func closeAll(conns []*wsConn) {
	deadline := time.Now().Add(closeWait)
	for _, c := range conns {
		if c != nil {
			c.close(closeNormal, deadline)
		}
	}
}

// errorLog keeps the first few distinct errors of a run and counts them all.
type errorLog struct {
	mu    sync.Mutex
	n     int      // guarded by mu
	first []string // guarded by mu
}

const keepErrors = 5

func (l *errorLog) add(s string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.n++
	if len(l.first) < keepErrors {
		for _, f := range l.first {
			if f == s {
				return
			}
		}
		l.first = append(l.first, s)
	}
}

func (l *errorLog) snapshot() (int, []string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.n, append([]string(nil), l.first...)
}
