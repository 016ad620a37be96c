package client

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"log/slog"
	mrand "math/rand/v2"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"parley/internal/chat"
	"parley/internal/protocol"
)

// Options configure a Client. The zero value works: a guest nick, the JSON
// format, no rooms, no reconnect.
type Options struct {
	// Nick to ask for. Empty: the server picks a guest nick. If the nick is
	// taken, Dial fails with an error that matches ErrNickTaken.
	Nick string
	// Rooms to join on connect, in order. With Text, the server's default
	// (lobby) when empty.
	Rooms []string
	// Since resumes rooms: Since[room] is the last id already seen in room;
	// only later messages are replayed. Epoch is the epoch those ids belong
	// to (from an earlier welcome); a mismatch gets a reset event.
	Since map[string]uint64
	Epoch string

	// Text selects the text format (no subprotocol: one line per event)
	// instead of JSON (parley.v1). Events are then EvLine events.
	Text bool
	// Raw (implies Text) dials the URL exactly as given, adding no nick or
	// room parameters, and delivers each frame whole as an EvLine event: for
	// any text WebSocket server, not only parley.
	Raw bool

	// Reconnect after the connection drops (not after Close), with
	// exponential backoff and full jitter, resuming where it left off.
	Reconnect bool
	// BackoffMin and BackoffMax bound the reconnect delay: attempt n waits a
	// random time in [0, min(BackoffMax, BackoffMin*2^(n-1))). Defaults
	// 500ms and 30s.
	BackoffMin, BackoffMax time.Duration

	// HTTPHeader is sent with the WebSocket handshake (cookies, auth).
	HTTPHeader http.Header
	// HTTPClient makes the handshake (TLS settings, proxies). Default
	// http.DefaultClient.
	HTTPClient *http.Client

	// DialTimeout bounds each connection attempt, handshake and welcome
	// included. Default 10s.
	DialTimeout time.Duration
	// WriteTimeout bounds each frame write. Default 10s.
	WriteTimeout time.Duration
	// IdleTimeout: with JSON, a connection on which nothing (not even the
	// server's ping, every 20s) arrives for this long is dropped (and
	// reconnected). Default 60s; negative disables. Text: disabled.
	IdleTimeout time.Duration
	// MaxInFlight bounds unacknowledged sends: Send waits beyond it.
	// Default 256 (the server remembers each nick's last 1,000 refs).
	// Sends are paced to the server's rate limit, but a send refused as
	// rate_limited anyway (a stall longer than the server's spare burst) is
	// resent after the ones behind it: set 1 to keep a strict order at the
	// cost of a round trip per send (what parley chat does).
	MaxInFlight int
	// EventBuffer is the capacity of the Events channel. Default 1024.
	EventBuffer int

	// Logger gets debug and warning records. Default: discard.
	Logger *slog.Logger
}

func (o *Options) setDefaults() {
	if o.Raw {
		o.Text = true
	}
	if o.BackoffMin <= 0 {
		o.BackoffMin = 500 * time.Millisecond
	}
	if o.BackoffMax <= 0 {
		o.BackoffMax = 30 * time.Second
	}
	if o.HTTPClient == nil {
		o.HTTPClient = http.DefaultClient
	}
	if o.DialTimeout <= 0 {
		o.DialTimeout = 10 * time.Second
	}
	if o.WriteTimeout <= 0 {
		o.WriteTimeout = 10 * time.Second
	}
	if o.IdleTimeout == 0 {
		o.IdleTimeout = 60 * time.Second
	}
	if o.Text {
		o.IdleTimeout = -1
	}
	if o.MaxInFlight <= 0 {
		o.MaxInFlight = 256
	}
	if o.EventBuffer <= 0 {
		o.EventBuffer = 1024
	}
	o.EventBuffer = max(o.EventBuffer, 16)
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
}

// Client is a connection to a parley server that survives reconnects (see
// the package comment).
type Client struct {
	// Immutable after Dial.
	opts      Options
	url       *url.URL // the server URL as given (normalised), without our parameters
	urlText   string   // url, for messages
	log       *slog.Logger
	refPrefix string
	events    chan Event // sent to by run's goroutine and Dial; closed by finish

	ctx    context.Context // cancelled by Close: stops dialing, backoff and blocked deliveries
	cancel context.CancelFunc
	done   chan struct{} // closed when run returns

	mu       sync.Mutex // guards everything below; never held while doing I/O
	closed   bool       // Close was called
	ended    bool       // run finished: no more connections
	endErr   error      // why it ended (nil after Close)
	conn     *conn      // the current connection; nil while reconnecting
	state    State
	nick     string
	epoch    string
	limits   protocol.Limits
	textRoom string       // Text: the server's current room for our lines
	rooms    []*roomState // joined rooms (JSON), in join order
	pending  []*request   // unanswered commands, in the order they were made
	byRef    map[string]*request
	seq      uint64
	changed  chan struct{} // closed and replaced whenever pending shrinks or the client ends
	dups     int
}

// textLimits are parley's default limits, used to pace the text format.
func textLimits() protocol.Limits { return protocol.Limits{Rate: 10, Burst: 20} }

// roomState is what the client remembers of a joined room to resume it.
type roomState struct {
	name   string
	synced bool   // the join was acked: lastID covers everything since
	lastID uint64 // the last message id delivered
	epoch  string // the epoch lastID belongs to
}

// Dial connects to the server at rawURL (ws://, wss://, http://, https://;
// empty means DefaultURL), waits for its welcome (JSON), and joins
// opts.Rooms. Its errors are worded for people and typed: *ConnectError
// (ErrRefused, DNS, TLS, timeout), *HandshakeError (HTTP answer without an
// upgrade), *NotParleyError, or a *ServerError for a nick that is taken
// (errors.Is(err, ErrNickTaken)). The first attempt is never retried, even
// with Reconnect: a script should hear at once that nothing is listening.
func Dial(ctx context.Context, rawURL string, opts Options) (*Client, error) {
	u, err := ParseURL(rawURL)
	if err != nil {
		return nil, err
	}
	opts.setDefaults()
	if opts.Nick != "" {
		if err := chat.ValidName(opts.Nick); err != nil {
			return nil, badNick(opts.Nick, err)
		}
	}
	for _, r := range opts.Rooms {
		if err := chat.ValidName(r); err != nil {
			return nil, badRoom(r, err)
		}
	}
	c := &Client{
		opts:      opts,
		url:       u,
		urlText:   u.String(),
		log:       opts.Logger,
		refPrefix: newRefPrefix(),
		events:    make(chan Event, opts.EventBuffer),
		done:      make(chan struct{}),
		nick:      opts.Nick,
		byRef:     make(map[string]*request),
		changed:   make(chan struct{}),
	}
	if opts.Text {
		c.textRoom = chat.DefaultRoom
		if len(opts.Rooms) > 0 {
			c.textRoom = opts.Rooms[0]
		}
	}
	cn, welcome, err := c.connect(ctx, true)
	if err != nil {
		return nil, err
	}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	c.mu.Lock()
	c.installLocked(cn, welcome, false)
	if !opts.Text {
		for _, room := range opts.Rooms {
			cmd := protocol.Command{Type: protocol.CmdJoin, Room: room}
			if id, ok := lookupSince(opts.Since, room); ok {
				cmd.Since = &id
				cmd.Epoch = opts.Epoch
			}
			if _, err := c.postLocked(cmd); err != nil {
				c.mu.Unlock()
				cn.ws.CloseNow()
				return nil, err
			}
		}
	}
	c.mu.Unlock()
	c.events <- Event{Event: protocol.Event{Type: EvState}, State: StateConnected}
	if welcome.Type != "" {
		c.events <- Event{Event: welcome.Event, Raw: welcome.raw}
	}
	go c.run(cn)
	return c, nil
}

func lookupSince(m map[string]uint64, room string) (uint64, bool) {
	if id, ok := m[room]; ok {
		return id, true
	}
	for k, id := range m {
		if strings.EqualFold(k, room) {
			return id, true
		}
	}
	return 0, false
}

func newRefPrefix() string {
	var b [4]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// Events delivers the server's events and the client's state changes, in
// order. It is closed after the StateClosed event (after Close, or when the
// connection ended for good).
func (c *Client) Events() <-chan Event { return c.events }

// Done is closed when the client has ended: after Close, or when the
// connection ended for good (then Err says why).
func (c *Client) Done() <-chan struct{} { return c.done }

// Close closes the connection with 1000 (normal close), stops reconnecting
// and waits for the client's goroutines. Unanswered commands fail with
// ErrClosed; call Flush first to wait for them. Close is idempotent.
func (c *Client) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		<-c.done
		return nil
	}
	c.closed = true
	cn := c.conn
	c.mu.Unlock()
	c.cancel()
	if cn != nil {
		// The writer stops first, so the close frame is the only write.
		cn.stopWriter()
		<-cn.writerDone
		cn.ws.Close(1000, "")
	}
	<-c.done
	return nil
}

// Err reports why the client ended on its own (the connection dropped and
// could not, or was not to, be resumed). Nil while it runs and after Close.
func (c *Client) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.endErr
}

// Status is a snapshot of the client's state, for display.
type Status struct {
	URL     string
	State   State
	Nick    string // our nick, as the server knows it
	Epoch   string // the log's epoch (JSON)
	Limits  protocol.Limits
	Rooms   []RoomStatus // joined rooms (JSON), in join order, joins not yet acked included
	Room    string       // Text: the current room for our lines
	Pending int          // unanswered commands
	// Duplicates counts messages dropped because their id was not above
	// the last one delivered for their room (should stay 0).
	Duplicates int
}

// RoomStatus is one joined room in Status.
type RoomStatus struct {
	Name   string
	LastID uint64 // the last message id delivered
}

// Status returns a snapshot of the client's state.
func (c *Client) Status() Status {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := Status{URL: c.urlText, State: c.state, Nick: c.nick, Epoch: c.epoch, Limits: c.limits,
		Room: c.textRoom, Pending: len(c.pending), Duplicates: c.dups}
	for _, r := range c.rooms {
		s.Rooms = append(s.Rooms, RoomStatus{Name: r.name, LastID: r.lastID})
	}
	return s
}

// run owns the connections: it reads each one until it ends, then
// reconnects or finishes. Close waits for it.
func (c *Client) run(cn *conn) {
	defer close(c.done)
	var err error
	for {
		err = c.serve(cn)
		c.mu.Lock()
		c.conn = nil
		closed := c.closed
		c.mu.Unlock()
		if closed {
			err = nil
			break
		}
		c.log.Debug("connection ended", "url", c.urlText, "err", err)
		if !c.opts.Reconnect || !retryable(err) {
			break
		}
		if cn = c.reconnect(err); cn == nil {
			err = nil
			break
		}
	}
	c.finish(err)
}

func retryable(err error) bool {
	if ce, ok := err.(*CloseError); ok {
		return ce.Retryable()
	}
	return true
}

// reconnect dials until it succeeds (returning the installed connection)
// or Close is called (nil).
func (c *Client) reconnect(cause error) *conn {
	for attempt := 1; ; attempt++ {
		delay := c.backoff(attempt)
		c.mu.Lock()
		c.state = StateReconnecting
		c.mu.Unlock()
		c.deliver(Event{Event: protocol.Event{Type: EvState}, State: StateReconnecting, Attempt: attempt, Delay: delay, Err: cause})
		t := time.NewTimer(delay)
		select {
		case <-c.ctx.Done():
			t.Stop()
			return nil
		case <-t.C:
		}
		cn, welcome, err := c.connect(c.ctx, false)
		if err != nil {
			if c.ctx.Err() != nil {
				return nil
			}
			c.log.Debug("reconnect failed", "attempt", attempt, "err", err)
			cause = err
			continue
		}
		c.mu.Lock()
		if c.closed {
			c.mu.Unlock()
			cn.ws.Close(1000, "")
			return nil
		}
		c.installLocked(cn, welcome, true)
		c.mu.Unlock()
		c.deliver(Event{Event: protocol.Event{Type: EvState}, State: StateConnected, Attempt: attempt})
		if welcome.Type != "" {
			c.deliver(Event{Event: welcome.Event, Raw: welcome.raw})
		}
		return cn
	}
}

// backoff is exponential with full jitter.
func (c *Client) backoff(attempt int) time.Duration {
	ceil := c.opts.BackoffMax
	if attempt < 30 {
		if d := c.opts.BackoffMin << (attempt - 1); d > 0 && d < ceil {
			ceil = d
		}
	}
	return mrand.N(ceil) + 1
}

// installLocked makes cn the current connection. With resume, it queues the
// rejoins (since = the last id seen, with the epoch it belongs to) and every
// unanswered command, in their original order and with their refs.
func (c *Client) installLocked(cn *conn, welcome welcomeEvent, resume bool) {
	c.conn = cn
	c.state = StateConnected
	if welcome.Type != "" {
		if welcome.Nick != "" {
			c.nick = welcome.Nick
		}
		oldEpoch := c.epoch
		c.epoch = welcome.Epoch
		for _, r := range c.rooms {
			if r.epoch == "" {
				r.epoch = oldEpoch
			}
		}
		if welcome.Limits != nil {
			c.limits = *welcome.Limits
		}
		cn.limiter = newLimiter(c.limits)
	}
	if c.opts.Text && !c.opts.Raw {
		// The text format does not say the server's limits: pace lines to
		// parley's defaults.
		cn.limiter = newLimiter(textLimits())
	}
	if !resume {
		return
	}
	if c.opts.Text {
		for _, r := range c.pending {
			cn.queue = append(cn.queue, r)
		}
		cn.wakeWriter()
		return
	}
	old := slices.Clone(c.pending)
	joinOf := make(map[string]*request)
	for _, r := range old {
		if r.cmd.Type == protocol.CmdJoin {
			joinOf[chat.FoldName(r.cmd.Room)] = r
		}
	}
	for _, rs := range c.rooms {
		cmd := protocol.Command{Type: protocol.CmdJoin, Room: rs.name}
		r := joinOf[chat.FoldName(rs.name)]
		switch {
		case rs.synced:
			id := rs.lastID
			cmd.Since, cmd.Epoch = &id, rs.epoch
		case r != nil:
			cmd.Since, cmd.Epoch = r.cmd.Since, r.cmd.Epoch
		}
		if r != nil {
			cmd.Ref = r.ref
			r.cmd = cmd
			r.frame = encodeCommand(&cmd)
			cn.queue = append(cn.queue, r)
			continue
		}
		if r, err := c.postLocked(cmd); err == nil {
			r.internal = true // the UI asked for none of these acks
		}
	}
	for _, r := range old {
		switch r.cmd.Type {
		case protocol.CmdJoin:
			if _, ok := c.roomLocked(r.cmd.Room); !ok {
				c.resolveLocked(r, protocol.Event{Type: protocol.EvAck, Ref: r.ref}, nil)
			}
		case protocol.CmdLeave:
			// Not rejoined on the new connection: it is left.
			c.resolveLocked(r, protocol.Event{Type: protocol.EvAck, Ref: r.ref}, nil)
		default:
			cn.queue = append(cn.queue, r)
		}
	}
	cn.wakeWriter()
}

// finish ends the client: unanswered commands fail, StateClosed is the last
// event, Events is closed.
func (c *Client) finish(err error) {
	c.mu.Lock()
	c.ended = true
	c.endErr = err
	c.state = StateClosed
	fail := err
	if fail == nil {
		fail = ErrClosed
	}
	for len(c.pending) > 0 {
		c.resolveLocked(c.pending[0], protocol.Event{}, fail)
	}
	c.signalLocked()
	c.mu.Unlock()
	c.deliver(Event{Event: protocol.Event{Type: EvState}, State: StateClosed, Err: err})
	close(c.events)
}

// deliver hands ev to the Events reader. It blocks while the reader is
// behind, unless the client is closing: then it keeps what fits and drops
// the rest, so Close never waits for a reader that has stopped.
func (c *Client) deliver(ev Event) {
	select {
	case c.events <- ev:
		return
	case <-c.ctx.Done():
	}
	select {
	case c.events <- ev:
	default:
	}
}

func (c *Client) roomLocked(name string) (*roomState, bool) {
	for _, r := range c.rooms {
		if strings.EqualFold(r.name, name) {
			return r, true
		}
	}
	return nil, false
}

func (c *Client) removeRoomLocked(name string) {
	for i, r := range c.rooms {
		if strings.EqualFold(r.name, name) {
			c.rooms = append(c.rooms[:i], c.rooms[i+1:]...)
			return
		}
	}
}

// signalLocked wakes everyone waiting for pending to change.
func (c *Client) signalLocked() {
	close(c.changed)
	c.changed = make(chan struct{})
}
