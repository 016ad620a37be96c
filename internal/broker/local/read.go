package local

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"math"
	"time"

	"parley/internal/broker"
	"parley/internal/chat"
)

// Read returns messages of one room (see broker.Query), oldest first.
// Page.First is the oldest id the log still holds (0 when it holds none);
// Page.Last is the room's newest id, also when retention removed every
// message (so a reader who saw some of them is told of a gap, not of a
// reset), and 0 only for a room nobody wrote to. While messages are held,
// Last is the newest of them: retention removes the oldest first.
//
// A Limit <= 0 means no limit. Read uses the read pool and never waits for
// the committer; it sees every message whose Append has returned.
func (b *Broker) Read(ctx context.Context, q broker.Query) (broker.Page, error) {
	if b.isClosed() {
		return broker.Page{}, broker.ErrClosed
	}
	key := chat.FoldName(q.Room)
	// One read transaction: the messages and First/Last come from the
	// same snapshot.
	tx, err := b.rdb.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return broker.Page{}, fmt.Errorf("local broker: read %q: %w", q.Room, err)
	}
	defer tx.Rollback()

	var (
		page  broker.Page
		name  string
		first sql.NullInt64
	)
	err = tx.StmtContext(ctx, b.reads.info).QueryRowContext(ctx, key).Scan(&name, &page.Last, &first)
	if errors.Is(err, sql.ErrNoRows) {
		return broker.Page{}, nil // a room nobody wrote to
	}
	if err != nil {
		return broker.Page{}, fmt.Errorf("local broker: read %q: %w", q.Room, err)
	}
	page.First = uint64(first.Int64)
	if page.First == 0 {
		return page, nil
	}

	limit := int64(q.Limit)
	if limit <= 0 {
		limit = -1 // SQLite: no limit
	}
	var rows *sql.Rows
	if q.Backward {
		before := int64(math.MaxInt64)
		if q.Before > 0 && q.Before < math.MaxInt64 {
			before = int64(q.Before)
		}
		rows, err = tx.StmtContext(ctx, b.reads.backward).QueryContext(ctx, key, before, limit)
	} else {
		after := int64(q.After)
		if q.After >= math.MaxInt64 {
			return page, nil
		}
		rows, err = tx.StmtContext(ctx, b.reads.forward).QueryContext(ctx, key, after, limit)
	}
	if err != nil {
		return broker.Page{}, fmt.Errorf("local broker: read %q: %w", q.Room, err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			m    = chat.Message{Room: name}
			kind uint8
			ts   int64
		)
		if err := rows.Scan(&m.ID, &m.From, &m.Text, &kind, &ts, &m.Ref); err != nil {
			return broker.Page{}, fmt.Errorf("local broker: read %q: %w", q.Room, err)
		}
		m.Kind, m.Time = chat.Kind(kind), time.UnixMilli(ts).UTC()
		page.Messages = append(page.Messages, m)
	}
	if err := rows.Err(); err != nil {
		return broker.Page{}, fmt.Errorf("local broker: read %q: %w", q.Room, err)
	}
	if q.Backward {
		msgs := page.Messages
		for i, j := 0, len(msgs)-1; i < j; i, j = i+1, j-1 {
			msgs[i], msgs[j] = msgs[j], msgs[i]
		}
	}
	return page, nil
}

// Rooms summarises every room that was ever written to, by name. Messages
// counts the messages still held, LastID is the room's newest id (also when
// retention removed every message) and LastActivity the time of its last
// message.
func (b *Broker) Rooms(ctx context.Context) ([]broker.RoomInfo, error) {
	if b.isClosed() {
		return nil, broker.ErrClosed
	}
	rows, err := b.rdb.QueryContext(ctx, `SELECT r.name, r.last_id, r.last_ts,
			(SELECT MIN(id) FROM messages m WHERE m.room = r.key)
		FROM rooms r ORDER BY r.key`)
	if err != nil {
		return nil, fmt.Errorf("local broker: rooms: %w", err)
	}
	defer rows.Close()
	var out []broker.RoomInfo
	for rows.Next() {
		var (
			ri    broker.RoomInfo
			ts    int64
			first sql.NullInt64
		)
		if err := rows.Scan(&ri.Name, &ri.LastID, &ts, &first); err != nil {
			return nil, fmt.Errorf("local broker: rooms: %w", err)
		}
		// Retention removes a prefix of each log and ids are contiguous,
		// so the messages held are exactly first..last_id.
		if first.Valid {
			ri.Messages = int64(ri.LastID) - first.Int64 + 1
		}
		ri.LastActivity = time.UnixMilli(ts).UTC()
		out = append(out, ri)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("local broker: rooms: %w", err)
	}
	return out, nil
}

// readStmts are Read's statements, prepared once on the read pool:
// parsing SQL was a quarter of a history read.
type readStmts struct {
	info, forward, backward *sql.Stmt
}

func (s *readStmts) prepare(ctx context.Context, db *sql.DB) error {
	for _, p := range []struct {
		dst **sql.Stmt
		sql string
	}{
		{&s.info, `SELECT name, last_id, (SELECT MIN(id) FROM messages WHERE room = ?1)
			FROM rooms WHERE key = ?1`},
		{&s.forward, `SELECT id, sender, text, kind, ts, ref FROM messages
			WHERE room = ? AND id > ? ORDER BY id LIMIT ?`},
		{&s.backward, `SELECT id, sender, text, kind, ts, ref FROM messages
			WHERE room = ? AND id < ? ORDER BY id DESC LIMIT ?`},
	} {
		st, err := db.PrepareContext(ctx, p.sql)
		if err != nil {
			return fmt.Errorf("prepare %q: %w", p.sql, err)
		}
		*p.dst = st
	}
	return nil
}

func (s *readStmts) close() error {
	var errs []error
	for _, st := range []*sql.Stmt{s.info, s.forward, s.backward} {
		if st != nil {
			errs = append(errs, st.Close())
		}
	}
	return errors.Join(errs...)
}
