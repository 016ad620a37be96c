package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
	"golang.org/x/time/rate"

	"parley/internal/protocol"
)

// readLimit bounds one frame from the server: a history event of 500
// messages of 8 KiB fits.
const readLimit = 32 << 20

// conn is one WebSocket connection of a Client.
type conn struct {
	ws *websocket.Conn // immutable after connect

	// limiter paces frames to the server's rate (nil: unlimited). Set by
	// installLocked before the writer starts; used by the writer only.
	limiter *rate.Limiter

	// Guarded by Client.mu.
	queue []*request // frames to write, in order

	wake       chan struct{} // capacity 1: the queue grew
	wctx       context.Context
	stopWriter context.CancelFunc
	writerDone chan struct{} // closed when the writer returns
	writeErr   atomic.Pointer[error]

	readCtx    context.Context
	cancelRead context.CancelFunc
	idle       time.Duration
	idleTimer  *time.Timer // nil when idle is off
	idled      atomic.Bool
}

func newConn() *conn {
	cn := &conn{wake: make(chan struct{}, 1), writerDone: make(chan struct{})}
	cn.wctx, cn.stopWriter = context.WithCancel(context.Background())
	cn.readCtx, cn.cancelRead = context.WithCancel(context.Background())
	return cn
}

func (cn *conn) wakeWriter() {
	select {
	case cn.wake <- struct{}{}:
	default:
	}
}

// touch pushes the idle deadline back: something came from the server.
func (cn *conn) touch() {
	if cn.idleTimer != nil {
		cn.idleTimer.Reset(cn.idle)
	}
}

func newLimiter(l protocol.Limits) *rate.Limiter {
	// A server without a limit may say so with 0 or with a huge rate.
	if l.Rate <= 0 || l.Rate > 1e9 {
		return nil
	}
	// The server limits every frame, commands included. Half its burst:
	// the server's bucket keeps the other half as slack for network jitter,
	// so paced frames are not refused.
	burst := max(1, l.Burst/2)
	return rate.NewLimiter(rate.Limit(l.Rate), burst)
}

type welcomeEvent struct {
	protocol.Event
	raw []byte
}

// dialURL is the URL to dial: the server URL plus nick and rooms.
func (c *Client) dialURL() string {
	if c.opts.Raw {
		return c.urlText
	}
	u := *c.url
	q := u.Query()
	c.mu.Lock()
	nick := c.nick
	c.mu.Unlock()
	if nick != "" {
		q.Set("nick", nick)
	}
	if c.opts.Text {
		for i, r := range c.opts.Rooms {
			q.Add("room", r)
			if i == 0 {
				if id, ok := lookupSince(c.opts.Since, r); ok {
					q.Set("since", fmt.Sprint(id))
					if c.opts.Epoch != "" {
						q.Set("epoch", c.opts.Epoch)
					}
				}
			}
		}
	}
	u.RawQuery = q.Encode()
	return u.String()
}

// connect dials one connection and, with JSON, reads its welcome. first is
// Dial's attempt: a nick that is taken is then reported with the server's
// own words.
func (c *Client) connect(ctx context.Context, first bool) (*conn, welcomeEvent, error) {
	var welcome welcomeEvent
	ctx, cancel := context.WithTimeout(ctx, c.opts.DialTimeout)
	defer cancel()
	cn := newConn()
	dopts := &websocket.DialOptions{
		HTTPClient: c.opts.HTTPClient,
		HTTPHeader: c.opts.HTTPHeader,
		OnPingReceived: func(context.Context, []byte) bool {
			cn.touch()
			return true
		},
	}
	if !c.opts.Text {
		dopts.Subprotocols = []string{protocol.Subprotocol}
	}
	ws, resp, err := websocket.Dial(ctx, c.dialURL(), dopts)
	if err != nil {
		if resp != nil && resp.StatusCode != http.StatusSwitchingProtocols {
			return nil, welcome, &HandshakeError{URL: c.urlText, StatusCode: resp.StatusCode}
		}
		return nil, welcome, connErr(c.urlText, err)
	}
	cn.ws = ws
	ws.SetReadLimit(readLimit)
	if c.opts.Text {
		c.startIdle(cn)
		return cn, welcome, nil
	}
	if ws.Subprotocol() != protocol.Subprotocol {
		ws.Close(1000, "")
		return nil, welcome, &NotParleyError{URL: c.urlText, Reason: "it did not accept the parley.v1 subprotocol"}
	}
	welcome, err = c.readWelcome(ctx, ws)
	if err != nil {
		ws.CloseNow()
		return nil, welcome, err
	}
	if want := c.wantNick(); want != "" && !strings.EqualFold(welcome.Nick, want) {
		err := c.nickRefused(ctx, ws, want, first)
		ws.Close(1000, "")
		return nil, welcome, err
	}
	c.startIdle(cn)
	return cn, welcome, nil
}

func (c *Client) wantNick() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.nick
}

func (c *Client) startIdle(cn *conn) {
	if c.opts.IdleTimeout <= 0 {
		return
	}
	cn.idle = c.opts.IdleTimeout
	cn.idleTimer = time.AfterFunc(cn.idle, func() {
		cn.idled.Store(true)
		cn.cancelRead()
	})
}

func (c *Client) readWelcome(ctx context.Context, ws *websocket.Conn) (welcomeEvent, error) {
	var w welcomeEvent
	_, data, err := ws.Read(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return w, &NotParleyError{URL: c.urlText, Reason: "it sent no welcome"}
		}
		return w, readErr(c.urlText, err)
	}
	if json.Unmarshal(data, &w.Event) != nil || w.Type != protocol.EvWelcome {
		return w, &NotParleyError{URL: c.urlText, Reason: fmt.Sprintf("its first frame is not a welcome: %.60q", data)}
	}
	w.raw = data
	return w, nil
}

// nickRefused reads, after a welcome with another nick, the error that says
// why (a taken or bad nick).
func (c *Client) nickRefused(ctx context.Context, ws *websocket.Conn, want string, first bool) error {
	taken := fmt.Errorf("nick %q is taken: %w", want, ErrNickTaken)
	if !first {
		return taken
	}
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	for {
		_, data, err := ws.Read(ctx)
		if err != nil {
			return taken
		}
		var ev protocol.Event
		if json.Unmarshal(data, &ev) == nil && ev.Type == protocol.EvError && ev.Ref == "" {
			se := serverError(&ev)
			if se.Code == protocol.CodeNickTaken {
				// The server's words go on about the guest nick it gave
				// instead; Dial does not keep that connection.
				se.Message = fmt.Sprintf("nick %q is taken", want)
			}
			return se
		}
	}
}

// serve runs one connection: its writer, and its reader here. It returns
// why the connection ended, once both are done.
func (c *Client) serve(cn *conn) error {
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		c.writeLoop(cn)
	}()
	err := c.readLoop(cn)
	cn.stopWriter()
	wg.Wait()
	if cn.idleTimer != nil {
		cn.idleTimer.Stop()
	}
	cn.cancelRead()
	cn.ws.CloseNow()
	if p := cn.writeErr.Load(); p != nil {
		var ce *CloseError
		if !errors.As(err, &ce) {
			err = &LostError{URL: c.urlText, Err: *p}
		}
	}
	return err
}

func (c *Client) readLoop(cn *conn) error {
	for {
		typ, data, err := cn.ws.Read(cn.readCtx)
		if err != nil {
			if cn.idled.Load() {
				return &LostError{URL: c.urlText, Err: fmt.Errorf("%w for %v", ErrIdle, cn.idle)}
			}
			return readErr(c.urlText, err)
		}
		cn.touch()
		if c.opts.Text || typ == websocket.MessageBinary {
			c.handleText(data)
			continue
		}
		c.handleJSON(cn, data)
	}
}

func (c *Client) handleText(data []byte) {
	if c.opts.Raw {
		c.deliver(Event{Event: protocol.Event{Type: EvLine, Text: string(data)}, Raw: data})
		return
	}
	for line := range bytes.SplitSeq(bytes.TrimRight(data, "\n"), []byte("\n")) {
		c.deliver(Event{Event: protocol.Event{Type: EvLine, Text: string(line)}, Raw: line})
	}
}

// maxRateRetries bounds the resends of one send refused as rate_limited.
const maxRateRetries = 10

func (c *Client) handleJSON(cn *conn, data []byte) {
	ev := Event{Raw: data}
	if err := json.Unmarshal(data, &ev.Event); err != nil || ev.Type == "" {
		c.log.Warn("frame from the server is not a JSON event", "frame", fmt.Sprintf("%.80q", data))
		ev.Type, ev.Text = EvLine, string(data)
		c.deliver(ev)
		return
	}
	c.mu.Lock()
	show := c.applyLocked(cn, &ev.Event)
	c.mu.Unlock()
	if show {
		c.deliver(ev)
	}
}

// applyLocked updates the client's state for one event and reports whether
// to deliver it.
func (c *Client) applyLocked(cn *conn, ev *protocol.Event) bool {
	switch ev.Type {
	case protocol.EvAck, protocol.EvWho, protocol.EvRooms, protocol.EvHistory:
		r := c.byRef[ev.Ref]
		if ev.Ref == "" || r == nil {
			return true
		}
		switch r.cmd.Type {
		case protocol.CmdJoin:
			if rs, ok := c.roomLocked(r.cmd.Room); ok {
				rs.synced = true
				if rs.epoch == "" || r.cmd.Since == nil {
					rs.epoch = c.epoch
				}
			}
		case protocol.CmdNick:
			c.nick = r.cmd.Nick
		}
		c.resolveLocked(r, *ev, nil)
		return !r.internal
	case protocol.EvError:
		r := c.byRef[ev.Ref]
		if ev.Ref == "" || r == nil {
			return true
		}
		if ev.Code == protocol.CodeRateLimited && r.tries < maxRateRetries {
			// Not sent: try again, paced by the limiter.
			r.tries++
			cn.queue = append(cn.queue, r)
			cn.wakeWriter()
			return false
		}
		if r.cmd.Type == protocol.CmdJoin {
			c.removeRoomLocked(r.cmd.Room)
		}
		c.resolveLocked(r, *ev, serverError(ev))
	case protocol.EvMessage:
		if rs, ok := c.roomLocked(ev.Room); ok && ev.ID != 0 {
			if ev.ID <= rs.lastID {
				c.dups++
				return false
			}
			rs.lastID = ev.ID
		}
	case protocol.EvReset:
		if rs, ok := c.roomLocked(ev.Room); ok {
			rs.lastID = 0
			rs.epoch = ev.Epoch
		}
		if ev.Epoch != "" {
			c.epoch = ev.Epoch
		}
	case protocol.EvNick:
		if strings.EqualFold(ev.Old, c.nick) {
			c.nick = ev.Nick
		}
	case protocol.EvWelcome:
		c.nick, c.epoch = ev.Nick, ev.Epoch
		if ev.Limits != nil {
			c.limits = *ev.Limits
		}
	}
	return true
}

// writeLoop is the connection's only writer: it writes the queue in order,
// paced, until stopped or a write fails.
func (c *Client) writeLoop(cn *conn) {
	defer close(cn.writerDone)
	for cn.wctx.Err() == nil {
		c.mu.Lock()
		var r *request
		if len(cn.queue) > 0 {
			r = cn.queue[0]
			cn.queue[0] = nil
			cn.queue = cn.queue[1:]
		}
		c.mu.Unlock()
		if r == nil {
			select {
			case <-cn.wctx.Done():
			case <-cn.wake:
			}
			continue
		}
		if cn.limiter != nil {
			if cn.limiter.Wait(cn.wctx) != nil {
				return
			}
		}
		c.mu.Lock()
		frame, answered := r.frame, r.answered
		c.mu.Unlock()
		if answered {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), c.opts.WriteTimeout)
		err := cn.ws.Write(ctx, websocket.MessageText, frame)
		cancel()
		if err != nil {
			if cn.wctx.Err() == nil {
				cn.writeErr.Store(&err)
			}
			cn.ws.CloseNow()
			return
		}
		if r.ackless {
			c.mu.Lock()
			c.resolveLocked(r, protocol.Event{}, nil)
			c.mu.Unlock()
		}
	}
}
