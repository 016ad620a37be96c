package local

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// schema lists the migrations: schema[i] brings user_version i to i+1.
// Only ever append.
var schema = [][]string{
	{ // 1: the first schema
		`CREATE TABLE meta (
			key   TEXT PRIMARY KEY,
			value TEXT NOT NULL
		)`,
		// One row per room ever written to. last_id is the id counter: it
		// never goes down, whatever retention removes.
		`CREATE TABLE rooms (
			key     TEXT PRIMARY KEY, -- chat.FoldName(name)
			name    TEXT NOT NULL,    -- spelling of the first writer
			last_id INTEGER NOT NULL,
			last_ts INTEGER NOT NULL  -- Unix ms of the last message
		)`,
		`CREATE TABLE messages (
			room   TEXT NOT NULL,    -- rooms.key
			id     INTEGER NOT NULL,
			sender TEXT NOT NULL,
			text   TEXT NOT NULL,
			kind   INTEGER NOT NULL, -- 0 text, 1 action (/me)
			ts     INTEGER NOT NULL, -- Unix ms, UTC
			ref    TEXT NOT NULL DEFAULT '',
			PRIMARY KEY (room, id)
		) WITHOUT ROWID`,
		// Refs of recent sends, for retry-safe appends.
		`CREATE TABLE refs (
			sender TEXT NOT NULL,    -- chat.FoldName(from)
			ref    TEXT NOT NULL,
			room   TEXT NOT NULL,    -- rooms.key
			id     INTEGER NOT NULL,
			ts     INTEGER NOT NULL, -- Unix ms when stored
			PRIMARY KEY (sender, ref)
		) WITHOUT ROWID`,
		`CREATE INDEX refs_sender_ts ON refs (sender, ts)`,
		`CREATE INDEX refs_ts ON refs (ts)`,
		// For humans with the sqlite3 tool: SELECT * FROM history WHERE room = 'lobby';
		`CREATE VIEW history AS
			SELECT r.name AS room, m.id, m.sender, m.text,
				CASE m.kind WHEN 1 THEN 'action' ELSE 'text' END AS kind,
				strftime('%Y-%m-%dT%H:%M:%fZ', m.ts / 1000.0, 'unixepoch') AS time,
				m.ref
			FROM messages m JOIN rooms r ON r.key = m.room`,
	},
}

func isMemory(path string) bool {
	return path == ":memory:" || strings.HasPrefix(path, "file::memory:") ||
		strings.HasPrefix(path, "file:") && strings.Contains(path, "mode=memory")
}

// checkDir gives a clear error for a file in a directory that does not
// exist (SQLite only says "unable to open database file"). URIs are left
// to SQLite.
func checkDir(path string) error {
	if isMemory(path) || strings.HasPrefix(path, "file:") {
		return nil
	}
	dir := filepath.Dir(path)
	fi, err := os.Stat(dir)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("directory %s does not exist", dir)
		}
		return err
	}
	if !fi.IsDir() {
		return fmt.Errorf("%s is not a directory", dir)
	}
	return nil
}

// dsn turns a path into a modernc.org/sqlite data source name with the
// per-connection settings. Plain paths become file: URIs so that '?' and
// '#' in a file name are not taken for URI syntax.
func dsn(path string, busy time.Duration, writer bool) string {
	params := []string{
		fmt.Sprintf("_pragma=busy_timeout(%d)", busy.Milliseconds()),
		"_pragma=synchronous(FULL)",
		// After a burst the WAL is cut back to 64 MiB at the next
		// checkpoint instead of keeping its largest size forever.
		"_pragma=journal_size_limit(67108864)",
	}
	if writer {
		// BEGIN IMMEDIATE: take the write lock at BEGIN, so a batch
		// never fails half-way through on a lock upgrade.
		params = append(params, "_txlock=immediate")
	}
	q := strings.Join(params, "&")
	switch {
	case path == ":memory:":
		return ":memory:?" + q
	case strings.HasPrefix(path, "file:"):
		if strings.Contains(path, "?") {
			return path + "&" + q
		}
		return path + "?" + q
	}
	esc := strings.NewReplacer("%", "%25", "?", "%3f", "#", "%23").Replace(path)
	return "file:" + esc + "?" + q
}

func setJournalMode(ctx context.Context, db *sql.DB, mem bool, log *slog.Logger) error {
	if mem {
		return nil
	}
	var mode string
	if err := db.QueryRowContext(ctx, "PRAGMA journal_mode = WAL").Scan(&mode); err != nil {
		return fmt.Errorf("set WAL mode: %w", err)
	}
	if !strings.EqualFold(mode, "wal") {
		// A read-only database that is not in WAL mode stays as it is;
		// it cannot be written anyway.
		log.Warn("local broker: database is not in WAL mode", "journal_mode", mode)
	}
	return nil
}

// migrate brings the schema to the current version and returns the epoch.
func migrate(ctx context.Context, db *sql.DB, now time.Time) (string, error) {
	var v int
	if err := db.QueryRowContext(ctx, "PRAGMA user_version").Scan(&v); err != nil {
		return "", fmt.Errorf("read schema version: %w", err)
	}
	if v > len(schema) {
		return "", fmt.Errorf("schema version %d is newer than this parley knows (%d)", v, len(schema))
	}
	if v < len(schema) {
		if err := migrateTx(ctx, db, now); err != nil {
			return "", fmt.Errorf("migrate schema from version %d: %w", v, err)
		}
	}
	var epoch string
	if err := db.QueryRowContext(ctx, "SELECT value FROM meta WHERE key = 'epoch'").Scan(&epoch); err != nil {
		return "", fmt.Errorf("read epoch: %w", err)
	}
	return epoch, nil
}

func migrateTx(ctx context.Context, db *sql.DB, now time.Time) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return err
	}
	defer tx.Rollback()
	// Read again under the write lock: another process may have migrated.
	var v int
	if err := tx.QueryRowContext(ctx, "PRAGMA user_version").Scan(&v); err != nil {
		return err
	}
	for i := v; i < len(schema); i++ {
		for _, stmt := range schema[i] {
			if _, err := tx.ExecContext(ctx, stmt); err != nil {
				return fmt.Errorf("version %d: %w", i+1, err)
			}
		}
		if i == 0 {
			if _, err := tx.ExecContext(ctx,
				`INSERT INTO meta(key, value) VALUES ('epoch', ?), ('created', ?)`,
				newEpoch(), now.UTC().Format(time.RFC3339)); err != nil {
				return err
			}
		}
	}
	if _, err := tx.ExecContext(ctx, fmt.Sprintf("PRAGMA user_version = %d", len(schema))); err != nil {
		return err
	}
	return tx.Commit()
}

func newEpoch() string {
	var b [8]byte
	rand.Read(b[:]) // never fails (crypto/rand documents it)
	return hex.EncodeToString(b[:])
}

// writeStmts are the committer's statements, prepared once on the write
// connection.
type writeStmts struct {
	roomGet   *sql.Stmt
	roomPut   *sql.Stmt
	refGet    *sql.Stmt
	refPut    *sql.Stmt
	msgGet    *sql.Stmt
	msgInsert *sql.Stmt
}

func (s *writeStmts) prepare(ctx context.Context, db *sql.DB) error {
	for _, p := range []struct {
		dst **sql.Stmt
		sql string
	}{
		{&s.roomGet, `SELECT name, last_id, last_ts FROM rooms WHERE key = ?`},
		{&s.roomPut, `INSERT INTO rooms(key, name, last_id, last_ts) VALUES (?, ?, ?, ?)
			ON CONFLICT(key) DO UPDATE SET last_id = excluded.last_id, last_ts = excluded.last_ts`},
		{&s.refGet, `SELECT room, id, ts FROM refs WHERE sender = ? AND ref = ?`},
		// Inserts a claim, or takes over one older than the cutoff (?6);
		// changes nothing (0 rows) when a live claim exists.
		{&s.refPut, `INSERT INTO refs(sender, ref, room, id, ts) VALUES (?1, ?2, ?3, ?4, ?5)
			ON CONFLICT(sender, ref) DO UPDATE SET room = excluded.room, id = excluded.id, ts = excluded.ts
			WHERE refs.ts < ?6`},
		{&s.msgGet, `SELECT sender, text, kind, ts FROM messages WHERE room = ? AND id = ?`},
		{&s.msgInsert, `INSERT INTO messages(room, id, sender, text, kind, ts, ref) VALUES (?, ?, ?, ?, ?, ?, ?)`},
	} {
		st, err := db.PrepareContext(ctx, p.sql)
		if err != nil {
			return fmt.Errorf("prepare %q: %w", p.sql, err)
		}
		*p.dst = st
	}
	return nil
}

func (s *writeStmts) close() error {
	var errs []error
	for _, st := range []*sql.Stmt{s.roomGet, s.roomPut, s.refGet, s.refPut, s.msgGet, s.msgInsert} {
		if st != nil {
			errs = append(errs, st.Close())
		}
	}
	return errors.Join(errs...)
}
