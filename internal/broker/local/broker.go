package local

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"parley/internal/broker"
	"parley/internal/chat"

	_ "modernc.org/sqlite" // registers the "sqlite" driver
)

// Defaults for the zero Config.
const (
	DefaultRetainMessages = 100000
	DefaultRetainAge      = 30 * 24 * time.Hour
	DefaultTrimInterval   = time.Minute
	DefaultRefWindow      = 1000
	DefaultRefAge         = 24 * time.Hour
	DefaultBusyTimeout    = 5 * time.Second
)

// Config configures a Broker. The zero value is an in-memory broker with the
// defaults below.
type Config struct {
	// Path is the database file. ":memory:" (the default when empty) keeps
	// nothing. A "file:" URI is passed to SQLite as a URI, so its
	// parameters (e.g. mode=ro) apply. Missing directories are not created.
	Path string
	// RetainMessages is how many messages each room keeps. Default 100000;
	// <0 means unlimited.
	RetainMessages int
	// RetainAge is how long messages are kept. Default 30 days; <0 means
	// unlimited.
	RetainAge time.Duration
	// TrimInterval is how often retention runs. Default 1 minute.
	TrimInterval time.Duration
	// RefWindow is how many refs are remembered per nick for retry-safe
	// sends. Default 1000.
	RefWindow int
	// RefAge is how long a ref is remembered. Default 24h.
	RefAge time.Duration
	// BusyTimeout is how long a write waits for a lock held by another
	// connection before it fails. Default 5s.
	BusyTimeout time.Duration
	// Logger receives operational logs. Default: discard.
	Logger *slog.Logger
	// Now is the clock. Default time.Now.
	Now func() time.Time
}

func (c Config) withDefaults() Config {
	if c.Path == "" {
		c.Path = ":memory:"
	}
	if c.RetainMessages == 0 {
		c.RetainMessages = DefaultRetainMessages
	}
	if c.RetainAge == 0 {
		c.RetainAge = DefaultRetainAge
	}
	if c.TrimInterval <= 0 {
		c.TrimInterval = DefaultTrimInterval
	}
	if c.RefWindow <= 0 {
		c.RefWindow = DefaultRefWindow
	}
	if c.RefAge <= 0 {
		c.RefAge = DefaultRefAge
	}
	if c.BusyTimeout <= 0 {
		c.BusyTimeout = DefaultBusyTimeout
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Now == nil {
		c.Now = time.Now
	}
	return c
}

// Stats are the broker's counters since Open.
type Stats struct {
	Appends    int64 // messages stored
	Batches    int64 // append transactions committed
	Duplicates int64 // appends answered with an earlier message (same nick and ref)
	Trimmed    int64 // messages removed by retention
	Failures   int64 // appends that returned ErrNotStored
}

// Broker is a room log in SQLite. Make one with Open.
type Broker struct {
	// Immutable after Open.
	cfg      Config
	deliver  broker.DeliverFunc
	log      *slog.Logger
	wdb      *sql.DB // the one write connection (committer, trimmer, probes)
	rdb      *sql.DB // read pool; == wdb for an in-memory database
	epoch    string
	stmts    writeStmts
	reads    readStmts
	quit     chan struct{} // closed by Close: the committer drains and stops
	stopTrim context.CancelFunc
	wake     chan struct{} // cap 1: work was queued for the committer
	stopped  sync.WaitGroup

	mu     sync.Mutex
	closed bool       // guarded by mu
	queue  []*request // guarded by mu: appends waiting for the committer

	// lastErr holds the error of the last failed write (nil after a write
	// succeeds), for Ready.
	lastErr atomic.Pointer[error]

	appends, batches, duplicates, trimmed, failures atomic.Int64
}

// Open opens (creating if needed) the database at cfg.Path, migrates its
// schema and starts the committer and the retention goroutine. deliver is
// called for every stored message (see the package comment); nil delivers
// nowhere.
func Open(ctx context.Context, cfg Config, deliver broker.DeliverFunc) (*Broker, error) {
	cfg = cfg.withDefaults()
	if deliver == nil {
		deliver = func(chat.Message) {}
	}
	b := &Broker{
		cfg:     cfg,
		deliver: deliver,
		log:     cfg.Logger,
		quit:    make(chan struct{}),
		wake:    make(chan struct{}, 1),
	}
	if err := b.open(ctx); err != nil {
		b.closeDBs()
		return nil, fmt.Errorf("local broker: open %s: %w", cfg.Path, err)
	}
	trimCtx, stopTrim := context.WithCancel(context.Background())
	b.stopTrim = stopTrim
	b.stopped.Add(2)
	go b.commitLoop()
	go b.trimLoop(trimCtx)
	b.log.Info("local broker open", "path", cfg.Path, "epoch", b.epoch)
	return b, nil
}

func (b *Broker) open(ctx context.Context) error {
	if err := checkDir(b.cfg.Path); err != nil {
		return err
	}
	var err error
	mem := isMemory(b.cfg.Path)
	b.wdb, err = sql.Open("sqlite", dsn(b.cfg.Path, b.cfg.BusyTimeout, true))
	if err != nil {
		return err
	}
	// One write connection: SQLite has one writer anyway, and the committer
	// and the trimmer then queue for it in database/sql instead of spinning
	// on SQLITE_BUSY.
	b.wdb.SetMaxOpenConns(1)
	b.wdb.SetMaxIdleConns(1)
	b.wdb.SetConnMaxLifetime(0)
	b.wdb.SetConnMaxIdleTime(0)
	if err := b.wdb.PingContext(ctx); err != nil {
		return err
	}
	if err := setJournalMode(ctx, b.wdb, mem, b.log); err != nil {
		return err
	}
	if b.epoch, err = migrate(ctx, b.wdb, b.cfg.Now()); err != nil {
		return err
	}
	if mem {
		b.rdb = b.wdb
	} else {
		b.rdb, err = sql.Open("sqlite", dsn(b.cfg.Path, b.cfg.BusyTimeout, false))
		if err != nil {
			return err
		}
		// A few readers in parallel: WAL lets them run beside the
		// writer; more than the cores buys nothing.
		b.rdb.SetMaxOpenConns(4)
		b.rdb.SetMaxIdleConns(4)
		if err := b.rdb.PingContext(ctx); err != nil {
			return err
		}
	}
	if err := b.reads.prepare(ctx, b.rdb); err != nil {
		return err
	}
	return b.stmts.prepare(ctx, b.wdb)
}

func (b *Broker) closeDBs() error {
	var errs []error
	errs = append(errs, b.stmts.close(), b.reads.close())
	if b.rdb != nil && b.rdb != b.wdb {
		errs = append(errs, b.rdb.Close())
	}
	if b.wdb != nil {
		errs = append(errs, b.wdb.Close())
	}
	return errors.Join(errs...)
}

// Epoch returns the log's identity: 16 hex digits made when the database was
// created, the same after every reopen.
func (b *Broker) Epoch() string { return b.epoch }

// Stats returns the counters.
func (b *Broker) Stats() Stats {
	return Stats{
		Appends:    b.appends.Load(),
		Batches:    b.batches.Load(),
		Duplicates: b.duplicates.Load(),
		Trimmed:    b.trimmed.Load(),
		Failures:   b.failures.Load(),
	}
}

// Ready returns nil when the last write worked. After a failed write it
// probes whether a message of the largest size could be stored now, and
// returns the reason if not.
func (b *Broker) Ready(ctx context.Context) error {
	if b.isClosed() {
		return broker.ErrClosed
	}
	p := b.lastErr.Load()
	if p == nil {
		return nil
	}
	if err := b.probe(ctx); err != nil {
		return fmt.Errorf("local broker: writes fail: %w (last append: %v)", err, *p)
	}
	b.lastErr.CompareAndSwap(p, nil)
	return nil
}

// probe checks that the database could store a message of the largest
// size now: it writes and removes a row that size in one transaction (a
// tiny write could still fit into a full database's free space).
func (b *Broker) probe(ctx context.Context) error {
	tx, err := b.wdb.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx,
		`INSERT OR REPLACE INTO meta(key, value) VALUES ('probe', zeroblob(?))`, chat.MaxTextBytes); err != nil {
		return err
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM meta WHERE key = 'probe'`); err != nil {
		return err
	}
	return tx.Commit()
}

func (b *Broker) setWriteErr(err error) {
	if err == nil {
		b.lastErr.Store(nil)
		return
	}
	b.lastErr.Store(&err)
}

func (b *Broker) isClosed() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.closed
}

// Close stops accepting appends (they return broker.ErrClosed), lets the
// committer store what was already queued, stops retention and closes the
// database. It is safe to call more than once.
func (b *Broker) Close() error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return nil
	}
	b.closed = true
	b.mu.Unlock()
	close(b.quit)
	b.stopTrim()
	b.stopped.Wait()
	err := b.closeDBs()
	b.log.Info("local broker closed", "path", b.cfg.Path)
	return err
}
