package nats

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"parley/internal/broker"
	"parley/internal/chat"
)

// epochKey is the stream metadata key holding the log's epoch. It is set
// when the stream is created, so a recreated stream has a new epoch.
const epochKey = "parley_epoch"

// opTimeout bounds a NATS call made without a deadline in its context.
const opTimeout = 5 * time.Second

// The contract of package broker (the server declares the same methods in
// its own small interfaces).
var _ interface {
	Append(context.Context, chat.Message) (chat.Message, error)
	Read(context.Context, broker.Query) (broker.Page, error)
	Epoch() string
	Rooms(context.Context) ([]broker.RoomInfo, error)
	Ready(context.Context) error
} = (*Broker)(nil)

// Broker is the JetStream room log. See the package comment.
type Broker struct {
	// Immutable after Open.
	cfg     Config
	log     *slog.Logger
	nc      *nats.Conn
	js      jetstream.JetStream
	stream  jetstream.Stream
	epoch   string
	prefix  string // "<stream>.room."
	deliver broker.DeliverFunc

	// seen is the highest sequence this node has delivered or had
	// acknowledged.
	seen atomic.Uint64
	// delivered counts messages handed to deliver; lastDelivered is the
	// last one's sequence.
	delivered     atomic.Uint64
	lastDelivered atomic.Uint64

	mu     sync.Mutex // guards the fields below
	cc     jetstream.ConsumeContext
	closed bool
}

// Open connects to NATS, creates or updates the stream, and starts the
// node's consumer at the stream's current end: deliver is called for every
// message appended from then on (see the package comment).
func Open(ctx context.Context, cfg Config, deliver broker.DeliverFunc) (*Broker, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	if deliver == nil {
		deliver = func(chat.Message) {}
	}
	b := &Broker{
		cfg:     cfg,
		log:     cfg.Logger.With("broker", "nats", "node", cfg.Node),
		prefix:  strings.ToLower(cfg.Stream) + ".room.",
		deliver: deliver,
	}
	if b.nc, err = b.connect(ctx); err != nil {
		return nil, err
	}
	if err := b.start(ctx); err != nil {
		b.nc.Close()
		return nil, err
	}
	return b, nil
}

func (b *Broker) connect(ctx context.Context) (*nats.Conn, error) {
	opts := []nats.Option{
		nats.Name("parley " + b.cfg.Node),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250 * time.Millisecond),
		nats.ReconnectJitter(100*time.Millisecond, time.Second),
		// No reconnect buffer: a publish made while disconnected fails at
		// once instead of being sent later, after Append has reported
		// ErrNotStored.
		nats.ReconnectBufSize(-1),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			b.log.Warn("nats disconnected", "err", err)
		}),
		nats.ReconnectHandler(func(nc *nats.Conn) {
			b.log.Info("nats reconnected", "url", nc.ConnectedUrlRedacted())
		}),
	}
	for wait := 100 * time.Millisecond; ; wait = min(2*wait, 5*time.Second) {
		nc, err := nats.Connect(b.cfg.URL, opts...)
		if err == nil {
			return nc, nil
		}
		if !b.cfg.Wait {
			return nil, fmt.Errorf("nats: connect %s: %w", b.cfg.URL, err)
		}
		b.log.Warn("nats not reachable yet, retrying", "url", b.cfg.URL, "err", err, "in", wait)
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("nats: connect %s: %w (%w)", b.cfg.URL, ctx.Err(), err)
		case <-time.After(wait):
		}
	}
}

// start sets up the stream and the consumer, retrying while JetStream is
// not yet available if Config.Wait is set.
func (b *Broker) start(ctx context.Context) error {
	js, err := jetstream.New(b.nc)
	if err != nil {
		return fmt.Errorf("nats: jetstream: %w", err)
	}
	b.js = js
	for wait := 100 * time.Millisecond; ; wait = min(2*wait, 5*time.Second) {
		err = b.ensureStream(ctx)
		if err == nil {
			break
		}
		if !b.cfg.Wait || ctx.Err() != nil {
			return err
		}
		b.log.Warn("stream not available yet, retrying", "err", err, "in", wait)
		select {
		case <-ctx.Done():
			return fmt.Errorf("%w (%w)", ctx.Err(), err)
		case <-time.After(wait):
		}
	}
	return b.consume(ctx)
}

// ensureStream creates the stream, or updates its limits and replicas,
// keeping its epoch.
func (b *Broker) ensureStream(ctx context.Context) error {
	want := jetstream.StreamConfig{
		Name:              b.cfg.Stream,
		Description:       "parley rooms",
		Subjects:          []string{b.prefix + "*"},
		Retention:         jetstream.LimitsPolicy,
		Discard:           jetstream.DiscardOld,
		MaxMsgsPerSubject: int64(b.cfg.RetainMessages),
		MaxMsgs:           -1,
		MaxBytes:          -1,
		MaxAge:            b.cfg.RetainAge,
		Storage:           jetstream.FileStorage,
		Replicas:          b.cfg.Replicas,
		Duplicates:        b.cfg.DedupeWindow,
		AllowDirect:       true,
	}
	for attempt := 0; attempt < 3; attempt++ {
		cctx, cancel := context.WithTimeout(ctx, opTimeout)
		s, err := b.js.Stream(cctx, b.cfg.Stream)
		cancel()
		if errors.Is(err, jetstream.ErrStreamNotFound) {
			cfg := want
			cfg.Metadata = map[string]string{epochKey: randomHex(8)}
			cctx, cancel := context.WithTimeout(ctx, opTimeout)
			s, err = b.js.CreateStream(cctx, cfg)
			cancel()
			if errors.Is(err, jetstream.ErrStreamNameAlreadyInUse) {
				continue // another node created it first: use theirs
			}
			if err != nil {
				return fmt.Errorf("nats: create stream %s: %w", cfg.Name, err)
			}
			b.stream, b.epoch = s, cfg.Metadata[epochKey]
			b.log.Info("stream created", "stream", cfg.Name, "epoch", b.epoch, "replicas", cfg.Replicas)
			return nil
		}
		if err != nil {
			return fmt.Errorf("nats: stream %s: %w", b.cfg.Stream, err)
		}
		have := s.CachedInfo().Config
		cfg := want
		cfg.Metadata = make(map[string]string, len(have.Metadata)+1)
		for k, v := range have.Metadata {
			cfg.Metadata[k] = v
		}
		if cfg.Metadata[epochKey] == "" {
			cfg.Metadata[epochKey] = randomHex(8)
		}
		if !sameLimits(have, cfg) {
			cctx, cancel := context.WithTimeout(ctx, opTimeout)
			s, err = b.js.UpdateStream(cctx, cfg)
			cancel()
			if err != nil {
				return fmt.Errorf("nats: update stream %s: %w", cfg.Name, err)
			}
			b.log.Info("stream updated", "stream", cfg.Name, "replicas", cfg.Replicas)
		}
		b.stream, b.epoch = s, cfg.Metadata[epochKey]
		return nil
	}
	return fmt.Errorf("nats: stream %s: created and deleted concurrently, giving up", b.cfg.Stream)
}

func sameLimits(have, want jetstream.StreamConfig) bool {
	return len(have.Subjects) == 1 && have.Subjects[0] == want.Subjects[0] &&
		have.MaxMsgsPerSubject == want.MaxMsgsPerSubject && have.MaxAge == want.MaxAge &&
		have.Replicas == want.Replicas && have.Duplicates == want.Duplicates &&
		have.AllowDirect && have.Metadata[epochKey] == want.Metadata[epochKey] &&
		have.Discard == want.Discard && have.MaxMsgs == want.MaxMsgs && have.MaxBytes == want.MaxBytes
}

// consume starts the node's ordered consumer just past the stream's last
// sequence. An explicit start sequence (not DeliverNew) matters: if NATS is
// lost before the first delivery, the consumer is recreated from that
// sequence, not from whatever is newest then.
func (b *Broker) consume(ctx context.Context) error {
	var c jetstream.Consumer
	var err error
	// A stream with replicas that was just created may not have elected
	// its leader yet, and on a busy machine that can take longer than one
	// call's timeout: try again while the caller's context allows.
	for attempt := 1; ; attempt++ {
		if c, err = b.orderedConsumer(ctx); err == nil {
			break
		}
		if ctx.Err() != nil || attempt == consumerAttempts || !leaderless(err) {
			return err
		}
		b.log.Warn("consumer: retrying", "attempt", attempt, "err", err)
	}
	cc, err := c.Consume(b.handle,
		// Pull requests expire every 4 s with heartbeats every 2 s, so a
		// consumer lost with a NATS server is noticed (two missed
		// heartbeats) and recreated within about 4 s.
		jetstream.PullExpiry(4*time.Second),
		jetstream.ConsumeErrHandler(func(_ jetstream.ConsumeContext, err error) {
			b.log.Debug("consumer", "err", err)
		}))
	if err != nil {
		return fmt.Errorf("nats: consume: %w", err)
	}
	b.mu.Lock()
	b.cc = cc
	b.mu.Unlock()
	return nil
}

// leaderless reports whether err is what a stream without a leader
// answers: no answer in time.
func leaderless(err error) bool {
	return errors.Is(err, context.DeadlineExceeded) || errors.Is(err, nats.ErrTimeout) ||
		errors.Is(err, jetstream.ErrNoStreamResponse)
}

// consumerAttempts bounds the tries at making the node's consumer.
const consumerAttempts = 3

func (b *Broker) orderedConsumer(ctx context.Context) (jetstream.Consumer, error) {
	cctx, cancel := context.WithTimeout(ctx, opTimeout)
	defer cancel()
	info, err := b.stream.Info(cctx)
	if err != nil {
		return nil, fmt.Errorf("nats: stream info: %w", err)
	}
	c, err := b.stream.OrderedConsumer(cctx, jetstream.OrderedConsumerConfig{
		FilterSubjects: []string{b.prefix + "*"},
		DeliverPolicy:  jetstream.DeliverByStartSequencePolicy,
		OptStartSeq:    info.State.LastSeq + 1,
	})
	if err != nil {
		return nil, fmt.Errorf("nats: consumer: %w", err)
	}
	return c, nil
}

// handle runs on the consumer's dispatcher goroutine, one message at a
// time in stream order.
func (b *Broker) handle(msg jetstream.Msg) {
	md, err := msg.Metadata()
	if err != nil {
		b.log.Error("consumer: no metadata", "subject", msg.Subject(), "err", err)
		return
	}
	m, err := decode(b.prefix, msg.Subject(), md.Sequence.Stream, msg.Headers(), msg.Data(), md.Timestamp)
	if err != nil {
		b.log.Error("consumer: skipping message", "err", err)
		return
	}
	b.bumpSeen(m.ID)
	b.lastDelivered.Store(m.ID)
	b.delivered.Add(1)
	b.deliver(m)
}

// Stats is a snapshot of the broker's counters, for metrics.
type Stats struct {
	// Connected is true while the NATS connection is up.
	Connected bool
	// Reconnects counts NATS reconnections since Open.
	Reconnects uint64
	// Delivered counts messages passed to Deliver since Open.
	Delivered uint64
	// LastDelivered is the stream sequence of the last one.
	LastDelivered uint64
}

// Stats returns the broker's counters. It makes no network call.
func (b *Broker) Stats() Stats {
	return Stats{
		Connected:     b.nc.Status() == nats.CONNECTED,
		Reconnects:    b.nc.Stats().Reconnects,
		Delivered:     b.delivered.Load(),
		LastDelivered: b.lastDelivered.Load(),
	}
}

func (b *Broker) bumpSeen(seq uint64) {
	for {
		old := b.seen.Load()
		if seq <= old || b.seen.CompareAndSwap(old, seq) {
			return
		}
	}
}

func (b *Broker) subject(room string) string { return b.prefix + chat.FoldName(room) }

func withTimeout(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, opTimeout)
}

func (b *Broker) isClosed() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.closed
}

// Append stores m in its room's log and returns it with its id (the stream
// sequence) and time (the appending node's clock, UTC, milliseconds). A
// message with a Ref already stored within the dedupe window is not stored
// again: the original is returned, with its id. Every failure wraps
// broker.ErrNotStored; when NATS stored the message but its ack was lost,
// a retry with the same Ref returns the stored one.
func (b *Broker) Append(ctx context.Context, m chat.Message) (chat.Message, error) {
	if b.isClosed() {
		return chat.Message{}, fmt.Errorf("nats append: %w: %w", broker.ErrNotStored, broker.ErrClosed)
	}
	if err := chat.ValidName(m.Room); err != nil {
		return chat.Message{}, fmt.Errorf("nats append: %w: room %q %w", broker.ErrNotStored, m.Room, err)
	}
	m.Time = time.Now().UTC().Truncate(time.Millisecond)
	ctx, cancel := withTimeout(ctx)
	defer cancel()
	ack, err := b.js.PublishMsg(ctx, encode(b.subject(m.Room), m))
	if err != nil {
		return chat.Message{}, fmt.Errorf("nats append: %w: %w", broker.ErrNotStored, err)
	}
	b.bumpSeen(ack.Sequence)
	if ack.Duplicate {
		orig, err := b.getLeader(ctx, getRequest{Seq: ack.Sequence})
		if err != nil {
			return chat.Message{}, fmt.Errorf("nats append: duplicate of %d: %w: %w", ack.Sequence, broker.ErrNotStored, err)
		}
		return orig, nil
	}
	m.ID = ack.Sequence
	return m, nil
}

// Epoch identifies the stream: it is created with the stream and kept in
// its metadata, so a deleted and recreated stream has a new one.
func (b *Broker) Epoch() string { return b.epoch }

// Node is this node's name (Config.Node or its default).
func (b *Broker) Node() string { return b.cfg.Node }

// Conn is the broker's NATS connection, for components that share it
// (presence). It is closed by Close.
func (b *Broker) Conn() *nats.Conn { return b.nc }

// Ready returns nil when NATS is connected and the stream answers, else
// the reason.
func (b *Broker) Ready(ctx context.Context) error {
	if b.isClosed() {
		return broker.ErrClosed
	}
	if st := b.nc.Status(); st != nats.CONNECTED {
		return fmt.Errorf("nats: %s", strings.ToLower(st.String()))
	}
	ctx, cancel := withTimeout(ctx)
	defer cancel()
	if _, err := b.stream.Info(ctx); err != nil {
		return fmt.Errorf("nats: stream %s: %w", b.cfg.Stream, err)
	}
	return nil
}

// Rooms summarises every room that has messages, sorted by name.
func (b *Broker) Rooms(ctx context.Context) ([]broker.RoomInfo, error) {
	if b.isClosed() {
		return nil, broker.ErrClosed
	}
	ctx, cancel := withTimeout(ctx)
	defer cancel()
	info, err := b.stream.Info(ctx, jetstream.WithSubjectFilter(b.prefix+"*"))
	if err != nil {
		return nil, fmt.Errorf("nats rooms: %w", err)
	}
	rooms := make([]broker.RoomInfo, 0, len(info.State.Subjects))
	for subj, n := range info.State.Subjects {
		last, err := b.getLeader(ctx, getRequest{LastFor: subj})
		if errors.Is(err, errNotFound) {
			continue // expired since the info
		}
		if err != nil {
			return nil, fmt.Errorf("nats rooms: %w", err)
		}
		rooms = append(rooms, broker.RoomInfo{
			Name:         last.Room,
			Messages:     int64(n),
			LastID:       last.ID,
			LastActivity: last.Time,
		})
	}
	sortRooms(rooms)
	return rooms, nil
}

// Close stops delivery, waits for the consumer to finish, and closes the
// connection. It is safe to call more than once.
func (b *Broker) Close() error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil
	}
	b.closed = true
	cc := b.cc
	b.mu.Unlock()
	if cc != nil {
		cc.Stop()
		select {
		case <-cc.Closed():
		case <-time.After(opTimeout):
			b.log.Warn("consumer did not stop in time")
		}
	}
	b.nc.Close()
	return nil
}
