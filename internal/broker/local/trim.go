package local

import (
	"context"
	"fmt"
	"math"
	"time"
)

// trimChunk bounds the rows one retention transaction deletes, so that an
// append never waits long behind it.
const trimChunk = 500

// trimLoop runs retention every TrimInterval until Close. (Not at Open:
// a start should be quick, and a minute's delay costs nothing.)
func (b *Broker) trimLoop(ctx context.Context) {
	defer b.stopped.Done()
	t := time.NewTicker(b.cfg.TrimInterval)
	defer t.Stop()
	for {
		select {
		case <-t.C:
		case <-ctx.Done():
			return
		}
		if err := b.trim(ctx); err != nil && ctx.Err() == nil {
			b.log.Warn("local broker: retention failed", "err", err)
		}
	}
}

// trim applies retention to every room and forgets old refs.
func (b *Broker) trim(ctx context.Context) error {
	now := b.cfg.Now()
	rows, err := b.rdb.QueryContext(ctx, `SELECT key, last_id FROM rooms ORDER BY key`)
	if err != nil {
		return fmt.Errorf("list rooms: %w", err)
	}
	type room struct {
		key    string
		lastID int64
	}
	var rooms []room
	for rows.Next() {
		var r room
		if err := rows.Scan(&r.key, &r.lastID); err != nil {
			rows.Close()
			return fmt.Errorf("list rooms: %w", err)
		}
		rooms = append(rooms, r)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("list rooms: %w", err)
	}

	ageCutoff := int64(math.MinInt64) // keep every age
	if b.cfg.RetainAge >= 0 {
		ageCutoff = now.Add(-b.cfg.RetainAge).UnixMilli()
	}
	for _, r := range rooms {
		countCutoff := int64(0) // ids <= countCutoff go
		if b.cfg.RetainMessages >= 0 {
			countCutoff = r.lastID - int64(b.cfg.RetainMessages)
		}
		n, err := b.trimRoom(ctx, r.key, countCutoff, ageCutoff)
		b.trimmed.Add(n)
		if n > 0 {
			b.log.Debug("local broker: trimmed", "room", r.key, "messages", n)
		}
		if err != nil {
			return fmt.Errorf("trim room %q: %w", r.key, err)
		}
	}
	return b.trimRefs(ctx, now)
}

// trimRoom deletes, oldest first, the messages with id <= countCutoff or
// ts < ageCutoff. Times never go backwards within a room, so both select a
// prefix of the log and the log stays contiguous.
func (b *Broker) trimRoom(ctx context.Context, key string, countCutoff, ageCutoff int64) (int64, error) {
	var total int64
	ids := make([]int64, 0, trimChunk)
	for {
		ids = ids[:0]
		rows, err := b.rdb.QueryContext(ctx,
			`SELECT id, ts FROM messages WHERE room = ? ORDER BY id LIMIT ?`, key, trimChunk)
		if err != nil {
			return total, err
		}
		n := 0
		for rows.Next() {
			var id, ts int64
			if err := rows.Scan(&id, &ts); err != nil {
				rows.Close()
				return total, err
			}
			n++
			if len(ids) == n-1 && (id <= countCutoff || ts < ageCutoff) {
				ids = append(ids, id)
			}
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return total, err
		}
		if len(ids) == 0 {
			return total, nil
		}
		res, err := b.wdb.ExecContext(ctx,
			`DELETE FROM messages WHERE room = ? AND id <= ?`, key, ids[len(ids)-1])
		if err != nil {
			return total, err
		}
		deleted, _ := res.RowsAffected()
		total += deleted
		if len(ids) < n || n < trimChunk {
			return total, nil
		}
	}
}

// trimRefs forgets refs older than RefAge, and each nick's refs beyond its
// newest RefWindow.
func (b *Broker) trimRefs(ctx context.Context, now time.Time) error {
	cutoff := now.Add(-b.cfg.RefAge).UnixMilli()
	for {
		res, err := b.wdb.ExecContext(ctx, `DELETE FROM refs WHERE (sender, ref) IN
			(SELECT sender, ref FROM refs WHERE ts < ? LIMIT ?)`, cutoff, trimChunk)
		if err != nil {
			return fmt.Errorf("forget old refs: %w", err)
		}
		if n, _ := res.RowsAffected(); n < trimChunk {
			break
		}
	}
	rows, err := b.rdb.QueryContext(ctx,
		`SELECT sender FROM refs GROUP BY sender HAVING COUNT(*) > ?`, b.cfg.RefWindow)
	if err != nil {
		return fmt.Errorf("count refs: %w", err)
	}
	var senders []string
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			rows.Close()
			return fmt.Errorf("count refs: %w", err)
		}
		senders = append(senders, s)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return fmt.Errorf("count refs: %w", err)
	}
	for _, s := range senders {
		// Keep the newest RefWindow (and any that share the oldest
		// kept time: remembering a few more is harmless).
		if _, err := b.wdb.ExecContext(ctx, `DELETE FROM refs WHERE sender = ?1 AND ts <
				(SELECT ts FROM refs WHERE sender = ?1 ORDER BY ts DESC LIMIT 1 OFFSET ?2)`,
			s, b.cfg.RefWindow-1); err != nil {
			return fmt.Errorf("forget refs of %q: %w", s, err)
		}
	}
	return nil
}
