package presence

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"parley/internal/chat"
)

// Config configures a Presence. Conn and Node are required.
type Config struct {
	// Conn is the NATS connection to use (the broker's). Presence does not
	// close it.
	Conn *nats.Conn
	// Node is this node's name, unique in the cluster (the broker's Node).
	Node string
	// Bucket is the key-value bucket. Default "PARLEY_presence".
	Bucket string
	// Replicas of the bucket. Default 1.
	Replicas int
	// Heartbeat is how often the node rewrites its heartbeat. Default 2s.
	Heartbeat time.Duration
	// NodeTTL is how long a node may go without a heartbeat before the
	// others drop its members. Default 10s: a dead node is gone within
	// NodeTTL plus one sweep (Heartbeat/2), about 11 s.
	NodeTTL time.Duration
	// Logger. Default slog.Default().
	Logger *slog.Logger
}

// Kind is what an Event reports.
type Kind uint8

const (
	Join Kind = iota
	Leave
	Nick
)

func (k Kind) String() string {
	switch k {
	case Join:
		return "join"
	case Leave:
		return "leave"
	case Nick:
		return "nick"
	}
	return fmt.Sprintf("kind(%d)", uint8(k))
}

// Event is a presence change in one room. For Nick, Old is the previous
// nick. Node is where the member is connected. Time is when this node saw
// the change.
type Event struct {
	Kind Kind
	Room string
	Nick string
	Old  string
	Node string
	Time time.Time
}

// RoomCount is a room with members, for /rooms.
type RoomCount struct {
	Name    string
	Members int
}

// ErrNickTaken is returned by ClaimNick when a live session anywhere holds
// the nick (compared case-insensitively).
var ErrNickTaken = errors.New("nick taken")

// ErrClosed is returned after Close.
var ErrClosed = errors.New("presence closed")

// owner is the value of nick and member keys.
type owner struct {
	Room    string `json:"room,omitempty"`
	Nick    string `json:"nick"`
	Old     string `json:"old,omitempty"`
	Node    string `json:"node"`
	Inc     string `json:"inc"`
	Session string `json:"session,omitempty"`
}

type entry struct {
	owner
	rev uint64
}

type nodeState struct {
	inc      string
	rev      uint64
	lastSeen time.Time
}

// Presence is one node's view of the cluster's presence. See the package
// comment.
type Presence struct {
	// Immutable after Open.
	cfg     Config
	log     *slog.Logger
	kv      jetstream.KeyValue
	inc     string // this process's incarnation
	onEvent func(Event)
	started time.Time

	cancel context.CancelFunc
	wg     sync.WaitGroup // run and writer
	jobs   chan func(context.Context)

	mu      sync.Mutex       // guards the fields below
	members map[string]entry // mirror of member.* keys
	nicks   map[string]entry // mirror of nick.* keys
	nodes   map[string]*nodeState
	mine    map[string]owner // member keys this node holds (authoritative)
	myNicks map[string]owner // nick keys this node holds
	closed  bool
}

// Open creates or binds the bucket, loads the current state and starts
// watching it and heartbeating. onEvent receives every change after Open
// returns (not the state found at Open).
func Open(ctx context.Context, cfg Config, onEvent func(Event)) (*Presence, error) {
	if cfg.Conn == nil || cfg.Node == "" {
		return nil, errors.New("presence: Conn and Node are required")
	}
	if cfg.Bucket == "" {
		cfg.Bucket = "PARLEY_presence"
	}
	if cfg.Replicas <= 0 {
		cfg.Replicas = 1
	}
	if cfg.Heartbeat <= 0 {
		cfg.Heartbeat = 2 * time.Second
	}
	if cfg.NodeTTL <= 0 {
		cfg.NodeTTL = 10 * time.Second
	}
	if cfg.NodeTTL < 2*cfg.Heartbeat {
		return nil, fmt.Errorf("presence: NodeTTL %v must be at least twice Heartbeat %v", cfg.NodeTTL, cfg.Heartbeat)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if onEvent == nil {
		onEvent = func(Event) {}
	}
	js, err := jetstream.New(cfg.Conn)
	if err != nil {
		return nil, fmt.Errorf("presence: %w", err)
	}
	kv, err := js.CreateOrUpdateKeyValue(ctx, jetstream.KeyValueConfig{
		Bucket:      cfg.Bucket,
		Description: "parley presence: nicks, room members, node heartbeats",
		// More than one revision per key: a watcher that lags behind
		// by a few changes (a busy node) still receives each of them. With
		// one, a join and a leave in quick succession replace each other
		// in the stream before a lagging watcher reads the join, and that
		// node shows neither notice.
		History:  presenceHistory,
		Replicas: cfg.Replicas,
		Storage:  jetstream.FileStorage,
	})
	if err != nil {
		return nil, fmt.Errorf("presence: bucket %s: %w", cfg.Bucket, err)
	}
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	p := &Presence{
		cfg:     cfg,
		log:     cfg.Logger.With("presence", cfg.Node),
		kv:      kv,
		inc:     hex.EncodeToString(b),
		onEvent: onEvent,
		started: time.Now(),
		jobs:    make(chan func(context.Context), 1024),
		members: map[string]entry{},
		nicks:   map[string]entry{},
		nodes:   map[string]*nodeState{},
		mine:    map[string]owner{},
		myNicks: map[string]owner{},
	}
	if _, err := kv.PutString(ctx, nodeKey(cfg.Node), p.inc); err != nil {
		return nil, fmt.Errorf("presence: heartbeat: %w", err)
	}
	// The watch lives as long as its context: give it the Presence's own.
	rctx, cancel := context.WithCancel(context.Background())
	w, err := kv.WatchAll(rctx)
	if err != nil {
		cancel()
		return nil, fmt.Errorf("presence: watch: %w", err)
	}
	// Load the state as it is now, without events.
	for loaded := false; !loaded; {
		select {
		case e, ok := <-w.Updates():
			if !ok {
				cancel()
				return nil, errors.New("presence: watch closed while loading")
			}
			if e == nil {
				loaded = true
				break
			}
			p.apply(e, false)
		case <-ctx.Done():
			stopWatcher(w)
			cancel()
			return nil, fmt.Errorf("presence: loading: %w", ctx.Err())
		}
	}
	p.cancel = cancel
	p.wg.Add(2)
	go p.run(rctx, w)
	go p.writer(rctx)
	return p, nil
}

// presenceHistory is how many revisions of each key the bucket keeps.
const presenceHistory = 8

func nodeKey(node string) string { return "node." + node }
func nickKey(nick string) string { return "nick." + chat.FoldName(nick) }
func memberKey(room, nick string) string {
	return "member." + chat.FoldName(room) + "." + chat.FoldName(nick)
}
func roomPrefix(room string) string             { return "member." + chat.FoldName(room) + "." }
func (p *Presence) me() owner                   { return owner{Node: p.cfg.Node, Inc: p.inc} }
func (p *Presence) isMe(o owner) bool           { return o.Node == p.cfg.Node && o.Inc == p.inc }
func decodeOwner(v []byte) (o owner, err error) { return o, json.Unmarshal(v, &o) }

// stopWatcher stops w and drains it: its callback blocks on a full channel
// while holding the lock its close handler needs.
func stopWatcher(w jetstream.KeyWatcher) {
	_ = w.Stop()
	timeout := time.After(5 * time.Second)
	for {
		select {
		case _, ok := <-w.Updates():
			if !ok {
				return
			}
		case <-timeout:
			return
		}
	}
}

// run owns the watcher: it applies every change to the mirror, emits
// events, and sweeps dead nodes.
func (p *Presence) run(ctx context.Context, w jetstream.KeyWatcher) {
	defer p.wg.Done()
	defer stopWatcher(w)
	tick := time.NewTicker(max(p.cfg.Heartbeat/2, 50*time.Millisecond))
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case e, ok := <-w.Updates():
			if !ok {
				p.log.Warn("presence watch ended")
				<-ctx.Done()
				return
			}
			if e != nil {
				p.apply(e, true)
			}
		case <-tick.C:
			p.sweep()
		}
	}
}

// apply updates the mirror with one bucket change and, when live, emits
// the event it means.
func (p *Presence) apply(e jetstream.KeyValueEntry, live bool) {
	key := e.Key()
	deleted := e.Operation() != jetstream.KeyValuePut
	now := time.Now()
	var events []Event
	p.mu.Lock()
	switch {
	case strings.HasPrefix(key, "node."):
		name := strings.TrimPrefix(key, "node.")
		if deleted {
			// A clean shutdown: its keys should be gone already; drop any
			// left behind.
			events = p.dropNodeLocked(name, "", now)
			delete(p.nodes, name)
			break
		}
		inc := string(e.Value())
		n := p.nodes[name]
		if n != nil && n.inc != "" && n.inc != inc {
			// Restarted under the same name: the old incarnation is dead.
			events = p.dropNodeLocked(name, n.inc, now)
		}
		p.nodes[name] = &nodeState{inc: inc, rev: e.Revision(), lastSeen: now}
	case strings.HasPrefix(key, "nick."):
		if deleted {
			if o, ok := p.myNicks[key]; ok && p.isMe(p.nicks[key].owner) {
				p.reclaimLocked(key, o)
			}
			delete(p.nicks, key)
			break
		}
		o, err := decodeOwner(e.Value())
		if err != nil {
			break
		}
		p.nicks[key] = entry{o, e.Revision()}
		p.seenNodeLocked(o.Node, now)
	case strings.HasPrefix(key, "member."):
		old, had := p.members[key]
		if deleted {
			if !had {
				break
			}
			delete(p.members, key)
			if o, ok := p.mine[key]; ok && p.isMe(old.owner) {
				// Swept while we still hold it: write it again.
				p.reassertLocked(key, o)
			}
			events = append(events, Event{Kind: Leave, Room: old.Room, Nick: old.Nick, Node: old.Node, Time: now})
			break
		}
		o, err := decodeOwner(e.Value())
		if err != nil {
			break
		}
		p.members[key] = entry{o, e.Revision()}
		p.seenNodeLocked(o.Node, now)
		switch {
		case o.Old != "" && !(had && old.Nick == o.Nick):
			// A rename: the old key is deleted next; forget it now so that
			// its deletion is not a leave.
			if ok := chat.FoldName(o.Old) != chat.FoldName(o.Nick); ok {
				delete(p.members, memberKey(o.Room, o.Old))
			}
			events = append(events, Event{Kind: Nick, Room: o.Room, Nick: o.Nick, Old: o.Old, Node: o.Node, Time: now})
		case !had:
			events = append(events, Event{Kind: Join, Room: o.Room, Nick: o.Nick, Node: o.Node, Time: now})
		}
	}
	p.mu.Unlock()
	if live {
		for _, ev := range events {
			p.onEvent(ev)
		}
	}
}

// seenNodeLocked gives a node first seen through its keys (its heartbeat
// not seen yet) a full TTL from now to prove it is alive.
func (p *Presence) seenNodeLocked(name string, now time.Time) {
	if _, ok := p.nodes[name]; !ok {
		p.nodes[name] = &nodeState{lastSeen: now}
	}
}

// dropNodeLocked removes a node's members and nicks from the mirror (inc
// "" means any incarnation), returns the leaves to emit, and queues the
// deletion of its keys.
func (p *Presence) dropNodeLocked(name, inc string, now time.Time) []Event {
	return p.dropLocked(func(o owner) bool { return o.Node == name && (inc == "" || o.Inc == inc) }, now)
}

// dropLocked removes the entries of other nodes for which dead is true.
func (p *Presence) dropLocked(dead func(owner) bool, now time.Time) []Event {
	var events []Event
	for key, e := range p.members {
		if !p.isMe(e.owner) && dead(e.owner) {
			delete(p.members, key)
			events = append(events, Event{Kind: Leave, Room: e.Room, Nick: e.Nick, Node: e.Node, Time: now})
			p.deleteLaterLocked(key, e.rev)
		}
	}
	for key, e := range p.nicks {
		if !p.isMe(e.owner) && dead(e.owner) {
			delete(p.nicks, key)
			p.deleteLaterLocked(key, e.rev)
		}
	}
	slices.SortFunc(events, func(a, b Event) int {
		return strings.Compare(a.Room+" "+a.Nick, b.Room+" "+b.Nick)
	})
	return events
}

// sweep forgets the nodes whose heartbeat is older than NodeTTL and drops
// every entry whose node or incarnation is not alive, but only while this
// node's own heartbeat is fresh.
func (p *Presence) sweep() {
	now := time.Now()
	p.mu.Lock()
	if !p.selfFreshLocked(now) {
		p.mu.Unlock()
		return // we are the one cut off
	}
	for name, n := range p.nodes {
		if name == p.cfg.Node || now.Sub(n.lastSeen) <= p.cfg.NodeTTL {
			continue
		}
		p.log.Info("node gone", "node", name, "silent", now.Sub(n.lastSeen).Round(time.Millisecond))
		if n.rev != 0 {
			p.deleteLaterLocked(nodeKey(name), n.rev)
		}
		delete(p.nodes, name)
	}
	events := p.dropLocked(func(o owner) bool { return !p.aliveLocked(o) }, now)
	p.mu.Unlock()
	for _, ev := range events {
		p.onEvent(ev)
	}
}

func (p *Presence) selfFreshLocked(now time.Time) bool {
	self := p.nodes[p.cfg.Node]
	return self != nil && self.inc == p.inc && now.Sub(self.lastSeen) <= p.cfg.NodeTTL
}

// aliveLocked reports whether the owner's node and incarnation are alive
// as far as this node can tell.
func (p *Presence) aliveLocked(o owner) bool {
	if p.isMe(o) {
		return true
	}
	n := p.nodes[o.Node]
	if n == nil {
		// Never heard of: alive only during our own first TTL.
		return time.Since(p.started) <= p.cfg.NodeTTL
	}
	if n.inc != "" && n.inc != o.Inc {
		return false
	}
	if !p.selfFreshLocked(time.Now()) {
		return true // cannot judge while cut off
	}
	return time.Since(n.lastSeen) <= p.cfg.NodeTTL
}

func (p *Presence) queueLocked(job func(context.Context)) {
	if p.closed {
		return
	}
	select {
	case p.jobs <- job:
	default:
		p.log.Warn("presence write queue full, dropping a cleanup write")
	}
}

func (p *Presence) deleteLaterLocked(key string, rev uint64) {
	p.queueLocked(func(ctx context.Context) {
		err := p.kv.Delete(ctx, key, jetstream.LastRevision(rev))
		if err != nil && !isConflict(err) {
			p.log.Debug("presence cleanup", "key", key, "err", err)
		}
	})
}

func (p *Presence) reassertLocked(key string, o owner) {
	p.log.Warn("presence: our member key was removed by others, writing it again", "key", key)
	p.queueLocked(func(ctx context.Context) {
		p.mu.Lock()
		_, still := p.mine[key]
		p.mu.Unlock()
		if still {
			v, _ := json.Marshal(o)
			_, _ = p.kv.Put(ctx, key, v)
		}
	})
}

func (p *Presence) reclaimLocked(key string, o owner) {
	p.queueLocked(func(ctx context.Context) {
		p.mu.Lock()
		_, still := p.myNicks[key]
		p.mu.Unlock()
		if !still {
			return
		}
		v, _ := json.Marshal(o)
		if _, err := p.kv.Create(ctx, key, v); err != nil {
			p.log.Warn("presence: lost nick while cut off", "key", key, "err", err)
		}
	})
}

func isConflict(err error) bool {
	var apiErr *jetstream.APIError
	return errors.As(err, &apiErr) && apiErr.ErrorCode == jetstream.JSErrCodeStreamWrongLastSequence
}

// writer heartbeats and runs the cleanup writes queued by run, so that
// run never waits on NATS.
func (p *Presence) writer(ctx context.Context) {
	defer p.wg.Done()
	tick := time.NewTicker(p.cfg.Heartbeat)
	defer tick.Stop()
	do := func(f func(context.Context)) {
		wctx, cancel := context.WithTimeout(ctx, p.cfg.Heartbeat)
		defer cancel()
		f(wctx)
	}
	for {
		select {
		case <-ctx.Done():
			return
		case job := <-p.jobs:
			do(job)
		case <-tick.C:
			do(func(ctx context.Context) {
				if _, err := p.kv.PutString(ctx, nodeKey(p.cfg.Node), p.inc); err != nil {
					p.log.Debug("presence heartbeat", "err", err)
				}
			})
		}
	}
}

func (p *Presence) check() error {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return ErrClosed
	}
	return nil
}

// ClaimNick takes nick for session on this node. It returns ErrNickTaken
// when another live session anywhere holds it; claiming a nick this
// session already holds succeeds. A nick held by a dead node is taken over.
func (p *Presence) ClaimNick(ctx context.Context, nick, session string) error {
	if err := p.check(); err != nil {
		return err
	}
	key := nickKey(nick)
	o := p.me()
	o.Nick, o.Session = nick, session
	v, _ := json.Marshal(o)
	for attempt := 0; attempt < 3; attempt++ {
		_, err := p.kv.Create(ctx, key, v)
		if err == nil {
			p.mu.Lock()
			p.myNicks[key] = o
			p.mu.Unlock()
			return nil
		}
		if !errors.Is(err, jetstream.ErrKeyExists) {
			return fmt.Errorf("presence: claim %s: %w", nick, err)
		}
		e, err := p.kv.Get(ctx, key)
		if errors.Is(err, jetstream.ErrKeyNotFound) {
			continue // released meanwhile
		}
		if err != nil {
			return fmt.Errorf("presence: claim %s: %w", nick, err)
		}
		held, err := decodeOwner(e.Value())
		if err != nil {
			return fmt.Errorf("presence: claim %s: bad owner: %w", nick, err)
		}
		if p.isMe(held) && held.Session == session {
			p.mu.Lock()
			p.myNicks[key] = o
			p.mu.Unlock()
			return nil
		}
		p.mu.Lock()
		alive := p.aliveLocked(held)
		p.mu.Unlock()
		if alive {
			return ErrNickTaken
		}
		if _, err := p.kv.Update(ctx, key, v, e.Revision()); err != nil {
			if isConflict(err) {
				continue
			}
			return fmt.Errorf("presence: claim %s: %w", nick, err)
		}
		p.mu.Lock()
		p.myNicks[key] = o
		p.mu.Unlock()
		return nil
	}
	return ErrNickTaken
}

// ReleaseNick gives up a nick this node holds. Releasing a nick held
// elsewhere does nothing.
func (p *Presence) ReleaseNick(ctx context.Context, nick string) error {
	if err := p.check(); err != nil {
		return err
	}
	key := nickKey(nick)
	p.mu.Lock()
	_, mine := p.myNicks[key]
	delete(p.myNicks, key)
	p.mu.Unlock()
	if !mine {
		return nil
	}
	e, err := p.kv.Get(ctx, key)
	if errors.Is(err, jetstream.ErrKeyNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("presence: release %s: %w", nick, err)
	}
	if held, err := decodeOwner(e.Value()); err != nil || !p.isMe(held) {
		return nil
	}
	if err := p.kv.Delete(ctx, key, jetstream.LastRevision(e.Revision())); err != nil && !isConflict(err) {
		return fmt.Errorf("presence: release %s: %w", nick, err)
	}
	return nil
}

// Join records nick as a member of room on this node; every node's
// sessions get one join event.
func (p *Presence) Join(ctx context.Context, room, nick string) error {
	return p.put(ctx, room, nick, "")
}

// Rename changes a member's nick in room (call it for each room the
// session is in, after ClaimNick of the new nick); every node's sessions
// get one nick event, and no leave.
func (p *Presence) Rename(ctx context.Context, room, old, nick string) error {
	if err := p.put(ctx, room, nick, old); err != nil {
		return err
	}
	if chat.FoldName(old) == chat.FoldName(nick) {
		return nil
	}
	return p.del(ctx, memberKey(room, old))
}

func (p *Presence) put(ctx context.Context, room, nick, old string) error {
	if err := p.check(); err != nil {
		return err
	}
	key := memberKey(room, nick)
	o := p.me()
	o.Room, o.Nick, o.Old = room, nick, old
	v, _ := json.Marshal(o)
	p.mu.Lock()
	prev, had := p.mine[key]
	if old != "" {
		delete(p.mine, memberKey(room, old))
	}
	p.mine[key] = o
	p.mu.Unlock()
	if _, err := p.kv.Put(ctx, key, v); err != nil {
		p.mu.Lock()
		if had {
			p.mine[key] = prev
		} else {
			delete(p.mine, key)
		}
		p.mu.Unlock()
		return fmt.Errorf("presence: %s in %s: %w", nick, room, err)
	}
	return nil
}

// Leave removes nick from room; every node's sessions get one leave event.
func (p *Presence) Leave(ctx context.Context, room, nick string) error {
	if err := p.check(); err != nil {
		return err
	}
	return p.del(ctx, memberKey(room, nick))
}

func (p *Presence) del(ctx context.Context, key string) error {
	p.mu.Lock()
	delete(p.mine, key)
	p.mu.Unlock()
	if err := p.kv.Delete(ctx, key); err != nil {
		return fmt.Errorf("presence: delete %s: %w", key, err)
	}
	return nil
}

// Members lists the nicks in room on every node, sorted case-insensitively.
// It answers from the local mirror (no round trip); this node's own joins
// show at once, other nodes' as soon as their change arrives.
func (p *Presence) Members(ctx context.Context, room string) ([]string, error) {
	if err := p.check(); err != nil {
		return nil, err
	}
	prefix := roomPrefix(room)
	p.mu.Lock()
	var out []string
	for key, e := range p.members {
		if strings.HasPrefix(key, prefix) && e.Node != p.cfg.Node {
			out = append(out, e.Nick)
		}
	}
	for key, o := range p.mine {
		if strings.HasPrefix(key, prefix) {
			out = append(out, o.Nick)
		}
	}
	p.mu.Unlock()
	slices.SortFunc(out, func(a, b string) int { return strings.Compare(chat.FoldName(a), chat.FoldName(b)) })
	return out, nil
}

// Rooms lists the rooms with members anywhere, with their member counts,
// sorted by name.
func (p *Presence) Rooms(ctx context.Context) ([]RoomCount, error) {
	if err := p.check(); err != nil {
		return nil, err
	}
	counts := map[string]*RoomCount{}
	add := func(key string, o owner) {
		folded := strings.TrimPrefix(key, "member.")
		folded = folded[:strings.IndexByte(folded, '.')]
		c := counts[folded]
		if c == nil {
			c = &RoomCount{Name: o.Room}
			counts[folded] = c
		}
		c.Members++
	}
	p.mu.Lock()
	for key, e := range p.members {
		if e.Node != p.cfg.Node {
			add(key, e.owner)
		}
	}
	for key, o := range p.mine {
		add(key, o)
	}
	p.mu.Unlock()
	out := make([]RoomCount, 0, len(counts))
	for _, c := range counts {
		out = append(out, *c)
	}
	slices.SortFunc(out, func(a, b RoomCount) int {
		return strings.Compare(chat.FoldName(a.Name), chat.FoldName(b.Name))
	})
	return out, nil
}

// Close deletes this node's member and nick keys and its heartbeat (the
// other nodes emit the leaves), then stops watching. Call it before
// closing the NATS connection. If NATS is unreachable the deletes fail and
// the other nodes drop this node after NodeTTL instead.
func (p *Presence) Close() error {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil
	}
	p.closed = true
	keys := make([]string, 0, len(p.mine)+len(p.myNicks))
	for k := range p.mine {
		keys = append(keys, k)
	}
	for k := range p.myNicks {
		keys = append(keys, k)
	}
	p.mine, p.myNicks = map[string]owner{}, map[string]owner{}
	p.mu.Unlock()

	var errs []error
	if !p.cfg.Conn.IsClosed() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		for _, k := range keys {
			if err := p.kv.Delete(ctx, k); err != nil {
				errs = append(errs, err)
				break // NATS is away: the others will sweep us
			}
		}
		if len(errs) == 0 {
			if err := p.kv.Delete(ctx, nodeKey(p.cfg.Node)); err != nil {
				errs = append(errs, err)
			}
		}
		cancel()
	}
	p.cancel()
	p.wg.Wait()
	if len(errs) > 0 {
		return fmt.Errorf("presence: close: %w", errors.Join(errs...))
	}
	return nil
}
