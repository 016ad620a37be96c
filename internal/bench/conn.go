package bench

import (
	"bytes"
	"context"
	"errors"
	"io"
	"sync"

	"github.com/coder/websocket"
)

// readLoop reads conn until it fails or is closed, handing each data
// frame to onFrame. The frame's bytes are only valid during the call: one
// buffer is reused for every frame, so a reader costs no allocation per
// message beyond coder/websocket's own. It returns nil when the
// connection was closed by us (closing is set), else why it ended.
func readLoop(conn *websocket.Conn, closing func() bool, onFrame func([]byte)) error {
	buf := make([]byte, 0, 1024)
	for {
		// A background context makes coder/websocket skip setting up a
		// read timeout for every frame; Close unblocks the reader.
		_, r, err := conn.Reader(context.Background())
		if err == nil {
			buf, err = readAll(r, buf[:0])
		}
		if err != nil {
			if closing() {
				return nil
			}
			return err
		}
		onFrame(buf)
	}
}

// readAll is io.ReadAll into buf's storage.
func readAll(r io.Reader, buf []byte) ([]byte, error) {
	for {
		if len(buf) == cap(buf) {
			buf = append(buf, 0)[:len(buf)]
		}
		n, err := r.Read(buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+n]
		if errors.Is(err, io.EOF) {
			return buf, nil
		}
		if err != nil {
			return buf, err
		}
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

// closeAll closes conns with a normal close, concurrency at a time, and
// returns when all are closed.
func closeAll(conns []*websocket.Conn, concurrency int) {
	var wg sync.WaitGroup
	sem := make(chan struct{}, max(concurrency, 1))
	for _, c := range conns {
		if c == nil {
			continue
		}
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			c.Close(websocket.StatusNormalClosure, "")
		})
	}
	wg.Wait()
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
