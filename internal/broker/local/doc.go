// Package local is parley's single-node broker: every room's log lives in an
// embedded SQLite database (modernc.org/sqlite, no cgo), in a file or in
// memory.
//
// # Writes: group commit
//
// One committer goroutine owns every write of messages. Append queues its
// message and waits; the committer takes everything queued while the
// previous transaction ran and stores it in ONE transaction, so many
// concurrent senders share one commit (and one fsync). After the commit, and
// before any appender of the batch is woken, the committer calls the
// broker's DeliverFunc for each stored message in order; since there is only
// one committer, delivery order is id order within every room.
//
// If the transaction fails (read-only file, disk full, the database locked
// by another process for longer than the busy timeout), every Append of the
// batch returns an error wrapping broker.ErrNotStored, nothing is delivered
// and no id is used up: ids are read from the rooms table inside the
// transaction, so a rolled-back batch leaves no trace. Ready reports the
// fault until a write succeeds again, or until its probe (writing and
// removing a row of the largest message size) works.
//
// # Durability
//
// The database runs in WAL mode with synchronous=FULL: the WAL is synced to
// disk at every commit, so an acknowledged message survives a process crash
// AND a power cut or kernel panic. (With synchronous=NORMAL a power cut
// could lose the last few acknowledged transactions, which would break
// "acknowledged means stored".) Group commit is what makes FULL affordable:
// the fsync is paid once per batch, not once per message.
//
// # Schema
//
// The schema is versioned with PRAGMA user_version and migrated on Open. The
// tables are meant to be read with the sqlite3 tool:
//
//	meta(key, value)                               -- 'epoch': the log's identity
//	rooms(key, name, last_id, last_ts)             -- per-room id counter, display name
//	messages(room, id, sender, text, kind, ts, ref) -- the logs, room = folded name
//	refs(sender, ref, room, id, ts)                -- retry-safe sends, sender = folded nick
//	history                                        -- a view of messages with names and readable times
//
// Times are stored as Unix milliseconds (UTC). Room names are compared
// case-insensitively: the folded name (chat.FoldName) is the key, the
// spelling of the first writer is kept for display. Ids come from
// rooms.last_id, never from MAX(id), so they stay contiguous and are never
// reused, also after retention removed every message of a room. Message
// times never go backwards within a room (a clock step back reuses the
// room's last time), which keeps retention trims a prefix of each log.
//
// # Reads
//
// Read and Rooms use a separate pool of read connections; in WAL mode they
// see the last committed state and never wait for the committer. A page's
// Last is the room's newest id even when retention removed every message,
// so that a client resuming from an old id is told of a gap, not of a
// reset (the same rule as the NATS broker). An in-memory database
// (":memory:") uses one connection for everything, since separate
// connections would see separate databases; there a read waits for a
// running transaction.
//
// # Retention
//
// A background goroutine owned by the Broker trims each room to
// RetainMessages and RetainAge and forgets refs past RefWindow and RefAge.
// It deletes in small transactions so that appends never wait long.
//
// # Concurrency
//
// All exported methods are safe for concurrent use. Close stops accepting
// appends, lets the committer finish what was queued, stops the trimmer and
// closes the database.
package local
