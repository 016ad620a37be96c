package tui

import (
	"strings"
	"time"

	"parley/internal/protocol"
)

// entryKind says how an entry is drawn.
type entryKind uint8

const (
	entryMessage entryKind = iota // nick: text
	entryAction                   // * nick text
	entryNotice                   // * bob joined, who answers, state changes
	entryError                    // ! error: ...
)

// entry is one item of a room's scrollback. Its text is clean (see clean)
// before it is stored.
type entry struct {
	id   uint64 // message id; 0 for notices
	ts   time.Time
	kind entryKind
	from string
	text string

	// rows caches the entry drawn for a width (see view.go).
	rows      []string
	rowsWidth int
}

// room is the state of one joined room, or of the status buffer.
type room struct {
	name    string
	entries []*entry
	ids     map[uint64]struct{} // ids of the messages in entries
	lastID  uint64              // highest message id in entries
	oldest  uint64              // lowest message id in entries; 0: none

	unread  int
	members []string

	// live: the room's first who answer has arrived, so its join history
	// is behind us and every new message counts as unread, replayed
	// (after a reconnect) or not.
	live bool
	// whoRef is the automatic who in flight; whoAgain asks for another
	// when it is answered (members changed meanwhile).
	whoRef   string
	whoAgain bool

	// more: older messages may exist on the server; historyRef is the page
	// being loaded.
	more       bool
	historyRef string

	// offset is how many rows the view is scrolled up from the bottom;
	// width is the scrollback's width, for the rows of new entries.
	offset int
	width  int
	st     *styles
}

func newRoom(name string, st *styles) *room {
	return &room{name: name, ids: make(map[uint64]struct{}), more: true, st: st}
}

// add appends a notice or error.
func (r *room) add(kind entryKind, text string) {
	r.addEntry(&entry{kind: kind, ts: time.Now(), text: text})
}

func (r *room) addEntry(e *entry) {
	r.entries = append(r.entries, e)
	if r.offset > 0 {
		// Keep what the reader looks at in place.
		r.offset += len(e.rowsAt(r.width, r.st))
	}
}

// addMessage puts a message event in id order and reports whether it was
// new: a message already shown (a replay after a reconnect, a page of
// history that overlaps) is shown once.
func (r *room) addMessage(ev *protocol.Event) bool {
	if ev.ID != 0 {
		if _, dup := r.ids[ev.ID]; dup {
			return false
		}
		r.ids[ev.ID] = struct{}{}
	}
	e := &entry{id: ev.ID, ts: ev.TS, kind: entryMessage, from: clean(ev.From), text: cleanBody(ev.Text)}
	if ev.Action {
		e.kind = entryAction
	}
	if e.ts.IsZero() {
		e.ts = time.Now()
	}
	if ev.ID != 0 && (r.oldest == 0 || ev.ID < r.oldest) {
		r.oldest = ev.ID
	}
	if ev.ID == 0 || ev.ID > r.lastID {
		if ev.ID > r.lastID {
			r.lastID = ev.ID
		}
		r.addEntry(e)
		return true
	}
	// An older message (a page of history, or a replay that fills a
	// hole): before the first message with a higher id. Rows added above
	// the bottom of the view do not move it, so offset stays.
	i := 0
	for i < len(r.entries) && (r.entries[i].id == 0 || r.entries[i].id < ev.ID) {
		i++
	}
	r.entries = append(r.entries, nil)
	copy(r.entries[i+1:], r.entries[i:])
	r.entries[i] = e
	return true
}

// reset forgets the scrollback: the server's log was replaced, and ids of
// the old one mean nothing in the new.
func (r *room) reset() {
	r.entries = nil
	r.ids = make(map[uint64]struct{})
	r.lastID, r.oldest = 0, 0
	r.more = true
	r.historyRef = ""
	r.offset = 0
}

// is reports whether the room is called name; room names compare
// case-insensitively.
func (r *room) is(name string) bool { return strings.EqualFold(r.name, name) }
