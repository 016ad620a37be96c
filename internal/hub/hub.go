// Package hub is parley's node-local fan-out and presence: which sessions
// are in which room, which nicks are taken, and the delivery of each event
// to every member of its room.
//
// The hub encodes each event once per wire variant (lazily: only variants
// some member uses) and hands the same bytes to every subscriber. It never
// blocks on a socket: Subscriber.Deliver must only enqueue.
//
// Concurrency: all methods are safe for concurrent use. Lock order is
// Hub.mu before room.mu; no lock is held while calling anything but
// Subscriber.Deliver and Subscriber.Nick, which must not call back into the
// hub. Deliveries to one room are made in the order of the Deliver calls,
// which the broker makes in id order.
package hub

import (
	"log/slog"
	"slices"
	"strings"
	"sync"

	"parley/internal/chat"
	"parley/internal/protocol"
)

// Variant is one way of writing an event: a wire format and, for the text
// format, whether the room is the recipient's current room.
type Variant uint8

const (
	// VariantJSON is the JSON format.
	VariantJSON Variant = iota
	// VariantText is the text format in the recipient's current room.
	VariantText
	// VariantTextOther is the text format in a joined room that is not the
	// current one: lines carry a "#room " prefix.
	VariantTextOther
	// NumVariants is the number of variants.
	NumVariants
)

// Frame is one event, encoded for each variant that a recipient needs. A
// Frame and its bytes are immutable once delivered, and shared.
type Frame struct {
	// Room is the folded name of the event's room.
	Room string
	// ID is the message's id in the room's log; 0 for events that are not
	// in the log (presence notices).
	ID uint64
	// From is the folded nick of a message's sender.
	From string
	// Data holds the complete encoded frame per variant; nil for variants
	// nobody needed.
	Data [NumVariants][]byte
}

// Subscriber receives a room's frames. Deliver must not block and must not
// call into the hub: it enqueues.
type Subscriber interface {
	Deliver(f *Frame, v Variant)
	Nick() string
}

// Encoder encodes an event for one variant into a complete outgoing frame.
type Encoder func(ev *protocol.Event, v Variant) []byte

// Config configures a Hub. The zero value works except for Encode.
type Config struct {
	// Encode turns an event into frame bytes. Required.
	Encode Encoder
	// NoticeThreshold is the room size above which join and leave
	// notices are not broadcast, so that a room of thousands does not cost
	// O(n^2) notices as it fills. Default 100; negative means always send.
	NoticeThreshold int
	// Logger defaults to discarding.
	Logger *slog.Logger
}

// Hub is the node-local fan-out. Make it with New.
type Hub struct {
	cfg Config // immutable after New

	mu    sync.RWMutex
	rooms map[string]*room      // guarded by mu; by folded name
	nicks map[string]Subscriber // guarded by mu; by folded nick
}

type room struct {
	name string // display spelling of the first joiner; immutable

	mu      sync.Mutex
	members []member           // guarded by mu; order does not matter
	index   map[Subscriber]int // guarded by mu; position in members
}

type member struct {
	sub Subscriber
	v   Variant
}

// New makes a hub.
func New(cfg Config) *Hub {
	if cfg.NoticeThreshold == 0 {
		cfg.NoticeThreshold = 100
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Encode == nil {
		panic("hub: Config.Encode is required")
	}
	return &Hub{cfg: cfg, rooms: make(map[string]*room), nicks: make(map[string]Subscriber)}
}

// Join adds sub to the room (made if needed) with the given variant. It
// returns the room's display name and whether sub was already a member (in
// which case only its variant changes).
func (h *Hub) Join(name string, sub Subscriber, v Variant) (display string, already bool) {
	key := chat.FoldName(name)
	h.mu.Lock()
	defer h.mu.Unlock()
	r := h.rooms[key]
	if r == nil {
		r = &room{name: name, index: make(map[Subscriber]int)}
		h.rooms[key] = r
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if i, ok := r.index[sub]; ok {
		r.members[i].v = v
		return r.name, true
	}
	r.index[sub] = len(r.members)
	r.members = append(r.members, member{sub: sub, v: v})
	return r.name, false
}

// SetVariant changes the variant sub gets in a room it is a member of.
func (h *Hub) SetVariant(name string, sub Subscriber, v Variant) {
	if r := h.room(name); r != nil {
		r.mu.Lock()
		if i, ok := r.index[sub]; ok {
			r.members[i].v = v
		}
		r.mu.Unlock()
	}
}

// Leave removes sub from the room and reports whether it was a member.
// Empty rooms are forgotten.
func (h *Hub) Leave(name string, sub Subscriber) bool {
	key := chat.FoldName(name)
	h.mu.Lock()
	defer h.mu.Unlock()
	r := h.rooms[key]
	if r == nil {
		return false
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	i, ok := r.index[sub]
	if !ok {
		return false
	}
	last := len(r.members) - 1
	if i != last {
		r.members[i] = r.members[last]
		r.index[r.members[i].sub] = i
	}
	r.members[last] = member{}
	r.members = r.members[:last]
	delete(r.index, sub)
	if len(r.members) == 0 {
		delete(h.rooms, key)
	}
	return true
}

func (h *Hub) room(name string) *room {
	h.mu.RLock()
	r := h.rooms[chat.FoldName(name)]
	h.mu.RUnlock()
	return r
}

// Display returns the display spelling of a room with members, or name.
func (h *Hub) Display(name string) string {
	if r := h.room(name); r != nil {
		return r.name
	}
	return name
}

// Size returns the number of members of a room.
func (h *Hub) Size(name string) int {
	r := h.room(name)
	if r == nil {
		return 0
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.members)
}

// Members returns the nicks in a room, sorted.
func (h *Hub) Members(name string) []string {
	r := h.room(name)
	nicks := []string{}
	if r == nil {
		return nicks
	}
	r.mu.Lock()
	for _, m := range r.members {
		nicks = append(nicks, m.sub.Nick())
	}
	r.mu.Unlock()
	slices.SortFunc(nicks, func(a, b string) int {
		if c := compareFold(a, b); c != 0 {
			return c
		}
		return strings.Compare(a, b)
	})
	return nicks
}

// Rooms lists the rooms with members, by name.
func (h *Hub) Rooms() []protocol.RoomInfo {
	h.mu.RLock()
	rs := make([]*room, 0, len(h.rooms))
	for _, r := range h.rooms {
		rs = append(rs, r)
	}
	h.mu.RUnlock()
	out := make([]protocol.RoomInfo, 0, len(rs))
	for _, r := range rs {
		r.mu.Lock()
		n := len(r.members)
		r.mu.Unlock()
		if n > 0 {
			out = append(out, protocol.RoomInfo{Name: r.name, Members: n})
		}
	}
	slices.SortFunc(out, func(a, b protocol.RoomInfo) int { return compareFold(a.Name, b.Name) })
	return out
}

// RoomCount returns how many rooms have members.
func (h *Hub) RoomCount() int {
	h.mu.RLock()
	defer h.mu.RUnlock()
	return len(h.rooms)
}

// ClaimNick takes nick for sub, releasing old (if sub held it), and
// reports whether it was free (or already sub's).
func (h *Hub) ClaimNick(nick, old string, sub Subscriber) bool {
	key := chat.FoldName(nick)
	h.mu.Lock()
	defer h.mu.Unlock()
	if owner, ok := h.nicks[key]; ok && owner != sub {
		return false
	}
	if old != "" {
		if ok := chat.FoldName(old); h.nicks[ok] == sub {
			delete(h.nicks, ok)
		}
	}
	h.nicks[key] = sub
	return true
}

// ReleaseNick frees nick if sub holds it.
func (h *Hub) ReleaseNick(nick string, sub Subscriber) {
	key := chat.FoldName(nick)
	h.mu.Lock()
	if h.nicks[key] == sub {
		delete(h.nicks, key)
	}
	h.mu.Unlock()
}

// Deliver fans a stored message out to its room. It is the broker's
// DeliverFunc: the broker calls it in id order within a room.
func (h *Hub) Deliver(m chat.Message) {
	r := h.room(m.Room)
	if r == nil {
		return
	}
	ev := protocol.MessageEvent(&m, false)
	ev.Room = r.name
	f := &Frame{Room: chat.FoldName(m.Room), ID: m.ID, From: chat.FoldName(m.From)}
	h.fanout(r, &ev, f)
}

// Notify sends a presence event (join, leave, nick) to a room. Join and
// leave notices are skipped in rooms larger than Config.NoticeThreshold.
func (h *Hub) Notify(ev protocol.Event) {
	r := h.room(ev.Room)
	if r == nil {
		return
	}
	if (ev.Type == protocol.EvJoin || ev.Type == protocol.EvLeave) && h.cfg.NoticeThreshold >= 0 && h.Size(ev.Room) > h.cfg.NoticeThreshold {
		return
	}
	ev.Room = r.name
	h.fanout(r, &ev, &Frame{Room: chat.FoldName(ev.Room)})
}

// fanout encodes ev lazily per variant and delivers f to every member.
// The room's lock is held while delivering so that deliveries to one room
// keep their order; Deliver only enqueues.
func (h *Hub) fanout(r *room, ev *protocol.Event, f *Frame) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for i := range r.members {
		m := &r.members[i]
		if f.Data[m.v] == nil {
			f.Data[m.v] = h.cfg.Encode(ev, m.v)
		}
		m.sub.Deliver(f, m.v)
	}
}

func compareFold(a, b string) int { return strings.Compare(chat.FoldName(a), chat.FoldName(b)) }
