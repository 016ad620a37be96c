package local

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"parley/internal/broker"
	"parley/internal/chat"
)

// request is one Append waiting for the committer.
type request struct {
	msg  chat.Message
	done chan result               // cap 1; the committer sends exactly one result
	then func(chat.Message, error) // AppendAsync: called instead of done
}

// answer gives r its result, once.
func (r *request) answer(res result) {
	if r.then != nil {
		r.then(res.msg, res.err)
		return
	}
	r.done <- res
}

type result struct {
	msg chat.Message
	err error
}

// Append stores m in its room's log and returns it with its ID and Time
// (UTC, millisecond precision) set. It returns once the transaction holding
// m is committed and m has been delivered. A message whose (From, Ref) was
// stored before (within the ref window) is not stored again: Append returns
// the original message and nil.
//
// Errors wrap broker.ErrNotStored: the message was not stored and not
// delivered. After Close they also wrap broker.ErrClosed. Once queued, an
// Append waits for its transaction even if ctx ends (the wait is bounded by
// the busy timeout), so that its answer is never ambiguous.
func (b *Broker) Append(ctx context.Context, m chat.Message) (chat.Message, error) {
	if err := chat.ValidName(m.Room); err != nil {
		return chat.Message{}, fmt.Errorf("%w: room %q %v", broker.ErrNotStored, m.Room, err)
	}
	if err := ctx.Err(); err != nil {
		return chat.Message{}, fmt.Errorf("%w: %w", broker.ErrNotStored, err)
	}
	r := &request{msg: m, done: make(chan result, 1)}
	if err := b.enqueue(r); err != nil {
		return chat.Message{}, err
	}
	res := <-r.done
	return res.msg, res.err
}

// AppendAsync is Append without the wait, for callers that keep several
// appends in flight: then is called exactly once, with what Append would
// return, after the transaction and the delivery. It is called from the
// committer goroutine (or at once, for an append refused up front), so it
// must not block or call into the broker. Appends queued by one goroutine
// are stored, delivered and answered in the order it queued them.
func (b *Broker) AppendAsync(m chat.Message, then func(chat.Message, error)) {
	if err := chat.ValidName(m.Room); err != nil {
		then(chat.Message{}, fmt.Errorf("%w: room %q %v", broker.ErrNotStored, m.Room, err))
		return
	}
	if err := b.enqueue(&request{msg: m, then: then}); err != nil {
		then(chat.Message{}, err)
	}
}

func (b *Broker) enqueue(r *request) error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return fmt.Errorf("%w: %w", broker.ErrNotStored, broker.ErrClosed)
	}
	b.queue = append(b.queue, r)
	b.mu.Unlock()
	select {
	case b.wake <- struct{}{}:
	default: // the committer is already due to look at the queue
	}
	return nil
}

// commitLoop is the committer. It owns every message write.
func (b *Broker) commitLoop() {
	defer b.stopped.Done()
	var batch []*request
	for {
		quit := false
		select {
		case <-b.wake:
		case <-b.quit:
			quit = true
		}
		// Take everything queued meanwhile, as one batch per transaction,
		// until the queue is empty.
		for {
			b.mu.Lock()
			batch, b.queue = b.queue, batch[:0]
			b.mu.Unlock()
			if len(batch) == 0 {
				break
			}
			b.commit(batch)
			clear(batch)
		}
		if quit {
			// Close set closed before closing quit, so nothing can be
			// queued any more and the queue was just found empty.
			return
		}
	}
}

// outcome is what the committer learned about one request of a batch.
type outcome struct {
	msg chat.Message
	dup bool // an earlier message with the same (From, Ref): store and deliver nothing
}

// commit writes one batch in one transaction, then delivers and answers.
func (b *Broker) commit(batch []*request) {
	out, err := b.writeBatch(batch, b.cfg.Now())
	if err != nil {
		b.failures.Add(int64(len(batch)))
		b.setWriteErr(err)
		b.log.Warn("local broker: append failed", "messages", len(batch), "err", err)
		err = fmt.Errorf("%w: %w", broker.ErrNotStored, err)
		for _, r := range batch {
			r.answer(result{err: err})
		}
		return
	}
	b.batches.Add(1)
	b.setWriteErr(nil)
	stored := int64(0)
	for i := range batch {
		if !out[i].dup {
			b.deliver(out[i].msg)
			stored++
		}
	}
	b.appends.Add(stored)
	b.duplicates.Add(int64(len(batch)) - stored)
	for i, r := range batch {
		r.answer(result{msg: out[i].msg})
	}
}

// roomState is a room's counter during one batch.
type roomState struct {
	name   string
	lastID uint64
	lastTS int64
	dirty  bool
}

type refKey struct{ from, ref string }

// writeBatch stores the batch in one transaction. On error nothing is
// stored: the transaction is rolled back, and since ids are read from the
// rooms table inside it, no id is used up.
func (b *Broker) writeBatch(batch []*request, now time.Time) ([]outcome, error) {
	ctx := context.Background() // a started batch finishes, also during Close
	tx, err := b.wdb.BeginTx(ctx, nil)
	if err != nil {
		return nil, err
	}
	defer tx.Rollback() // no-op after Commit

	w := batchWriter{
		ctx:       ctx,
		roomGet:   tx.StmtContext(ctx, b.stmts.roomGet),
		roomPut:   tx.StmtContext(ctx, b.stmts.roomPut),
		refGet:    tx.StmtContext(ctx, b.stmts.refGet),
		refPut:    tx.StmtContext(ctx, b.stmts.refPut),
		msgGet:    tx.StmtContext(ctx, b.stmts.msgGet),
		msgInsert: tx.StmtContext(ctx, b.stmts.msgInsert),
		rooms:     make(map[string]*roomState),
		nowMS:     now.UnixMilli(),
		refCutoff: now.Add(-b.cfg.RefAge).UnixMilli(),
	}
	out := make([]outcome, len(batch))
	seen := make(map[refKey]int) // refs of this batch -> index in out
	for i, r := range batch {
		m := r.msg
		from := chat.FoldName(m.From)
		if m.Ref != "" {
			k := refKey{from, m.Ref}
			if j, ok := seen[k]; ok {
				out[i] = outcome{msg: out[j].msg, dup: true}
				continue
			}
			seen[k] = i
			// Claim the ref for the id this message will get; only if
			// a live claim exists is it a retry. (One statement in the
			// common case instead of a lookup and an insert.)
			claimed, err := w.claimRef(from, m)
			if err != nil {
				return nil, err
			}
			if !claimed {
				orig, err := w.original(from, m)
				if err != nil {
					return nil, err
				}
				out[i] = outcome{msg: orig, dup: true}
				continue
			}
		}
		stored, err := w.insert(m)
		if err != nil {
			return nil, err
		}
		out[i] = outcome{msg: stored}
	}
	if err := w.saveRooms(); err != nil {
		return nil, err
	}
	if err := tx.Commit(); err != nil {
		return nil, err
	}
	return out, nil
}

// batchWriter holds one transaction's state. Owned by the committer.
type batchWriter struct {
	ctx context.Context
	// The prepared statements, bound to tx (closed with it).
	roomGet, roomPut, refGet, refPut, msgGet, msgInsert *sql.Stmt

	rooms     map[string]*roomState // by folded name
	nowMS     int64
	refCutoff int64
}

func (w *batchWriter) room(key, name string) (*roomState, error) {
	if st, ok := w.rooms[key]; ok {
		return st, nil
	}
	st := &roomState{}
	err := w.roomGet.QueryRowContext(w.ctx, key).Scan(&st.name, &st.lastID, &st.lastTS)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		st = &roomState{name: name}
	case err != nil:
		return nil, fmt.Errorf("read room %q: %w", key, err)
	}
	w.rooms[key] = st
	return st, nil
}

// claimRef records that (from, m.Ref) is the message m is about to become
// (the room's next id). It reports false, changing nothing, when a claim
// within the ref window exists: m is a retry. An expired claim is taken
// over.
func (w *batchWriter) claimRef(from string, m chat.Message) (bool, error) {
	key := chat.FoldName(m.Room)
	st, err := w.room(key, m.Room)
	if err != nil {
		return false, err
	}
	res, err := w.refPut.ExecContext(w.ctx, from, m.Ref, key, st.lastID+1, w.nowMS, w.refCutoff)
	if err != nil {
		return false, fmt.Errorf("claim ref: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("claim ref: %w", err)
	}
	return n == 1, nil
}

// original returns the message an earlier send with the same (from, ref)
// stored; claimRef found its claim live.
func (w *batchWriter) original(from string, m chat.Message) (chat.Message, error) {
	var (
		key    string
		id     uint64
		ts     int64
		orig   chat.Message
		kind   uint8
		sender string
	)
	err := w.refGet.QueryRowContext(w.ctx, from, m.Ref).Scan(&key, &id, &ts)
	if err != nil {
		return chat.Message{}, fmt.Errorf("read ref: %w", err)
	}
	st, err := w.room(key, m.Room)
	if err != nil {
		return chat.Message{}, err
	}
	orig = chat.Message{Room: st.name, ID: id, From: m.From, Text: m.Text, Kind: m.Kind, Time: time.UnixMilli(ts).UTC(), Ref: m.Ref}
	err = w.msgGet.QueryRowContext(w.ctx, key, id).Scan(&sender, &orig.Text, &kind, &ts)
	switch {
	case errors.Is(err, sql.ErrNoRows):
		// Retention removed the original; answer with its id and what
		// the retry says, which is the same message.
	case err != nil:
		return chat.Message{}, fmt.Errorf("read original message: %w", err)
	default:
		orig.From, orig.Kind, orig.Time = sender, chat.Kind(kind), time.UnixMilli(ts).UTC()
	}
	return orig, nil
}

func (w *batchWriter) insert(m chat.Message) (chat.Message, error) {
	key := chat.FoldName(m.Room)
	st, err := w.room(key, m.Room)
	if err != nil {
		return chat.Message{}, err
	}
	id := st.lastID + 1
	ts := max(w.nowMS, st.lastTS) // never backwards within a room
	if _, err := w.msgInsert.ExecContext(w.ctx,
		key, id, m.From, m.Text, uint8(m.Kind), ts, m.Ref); err != nil {
		return chat.Message{}, fmt.Errorf("insert message: %w", err)
	}
	st.lastID, st.lastTS, st.dirty = id, ts, true
	return chat.Message{Room: st.name, ID: id, From: m.From, Text: m.Text, Kind: m.Kind, Time: time.UnixMilli(ts).UTC(), Ref: m.Ref}, nil
}

func (w *batchWriter) saveRooms() error {
	for key, st := range w.rooms {
		if !st.dirty {
			continue
		}
		if _, err := w.roomPut.ExecContext(w.ctx,
			key, st.name, st.lastID, st.lastTS); err != nil {
			return fmt.Errorf("update room %q: %w", key, err)
		}
	}
	return nil
}
