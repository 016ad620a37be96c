package server

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unicode/utf8"

	"github.com/gobwas/ws"
	"golang.org/x/time/rate"

	"parley/internal/broker"
	"parley/internal/chat"
	"parley/internal/hub"
	"parley/internal/protocol"
)

// session is one WebSocket connection: its nick, rooms, limits and queue.
// Its reader (run) owns the connection's lifetime; the flusher (writer.go)
// is the only goroutine that writes the socket.
type session struct {
	srv    *Server  // immutable after newSession
	id     string   // unique on this server, for cluster presence
	conn   net.Conn // immutable; closed by run, or by the flusher on a failed write
	format protocol.Format
	remote string
	fr     frameReader
	raw    syscall.RawConn // what a quiet connection parks on; nil: it never parks

	// Owned by run (the reader).
	nick       string
	rooms      map[string]string // folded name -> display name; made on the first join
	order      []string          // folded names, in join order
	sends      *rate.Limiter
	cmds       *rate.Limiter
	rejections int
	inflight   chan struct{} // sends waiting for the store; made on the first

	// Read by other goroutines (the hub, the flusher); written by run.
	nickShown atomic.Pointer[string]
	nickKey   atomic.Value // string: folded nick, for --no-echo
	current   atomic.Pointer[string]

	mu          sync.Mutex
	queue       []item        // guarded by mu
	live        int           // guarded by mu: live frames in queue
	writing     bool          // guarded by mu: a flusher is running
	behind      bool          // guarded by mu: live frames were dropped; resync
	behindSince time.Time     // guarded by mu: when it first fell behind
	lastWrite   time.Time     // guarded by mu: when the flusher last took a batch
	lastBatch   int           // guarded by mu: live frames in that batch
	swept       bool          // guarded by mu: on the sweeper's schedule (writing is set)
	waiting     bool          // guarded by mu: the flusher waits out a coalescing window
	wake        chan struct{} // guarded by mu: ends that wait; made by the flusher
	closing     bool          // guarded by mu: a close frame is queued
	closeCode   int           // guarded by mu
	dead        bool          // guarded by mu: the socket is unusable
	endReason   string        // guarded by mu

	writers   sync.WaitGroup // the flusher, or a sweeper worker writing
	closeOnce sync.Once
	closeSent chan struct{} // guarded by mu: made with the close frame, closed once it is written

	// Owned by whoever writes (the flusher or a sweeper worker).
	cursors map[string]*roomCursor // made on the first room delivered
	sleeper *time.Timer            // times the flusher's waits (TLS only)
	bufs    net.Buffers
}

var _ hub.Subscriber = (*session)(nil)

// Nick is the session's current nick (for the hub's member lists).
func (s *session) Nick() string { return *s.nickShown.Load() }

func (s *session) setNick(n string) {
	s.nick = n
	s.nickShown.Store(&n)
	s.nickKey.Store(chat.FoldName(n))
}

func (s *session) currentRoom() string {
	if p := s.current.Load(); p != nil {
		return *p
	}
	return ""
}

// variant is how this session gets a room's events.
func (s *session) variant(room string) hub.Variant {
	if s.format == protocol.JSON {
		return hub.VariantJSON
	}
	if chat.FoldName(room) == chat.FoldName(s.currentRoom()) {
		return hub.VariantText
	}
	return hub.VariantTextOther
}

// wireRate is the rate limit as welcome says it: 0 for no limit.
func wireRate(r rate.Limit) float64 {
	if r == rate.Inf {
		return 0
	}
	return float64(r)
}

// shorten cuts a name from a URL for an error message, on a rune boundary.
func shorten(name string) string {
	if len(name) <= 40 {
		return name
	}
	name = name[:40]
	for !utf8.ValidString(name) {
		name = name[:len(name)-1]
	}
	return name + "..."
}

func (s *session) setEnd(reason string) {
	s.mu.Lock()
	if s.endReason == "" {
		s.endReason = reason
	}
	s.mu.Unlock()
}

// send queues a private event for this client.
func (s *session) send(ev protocol.Event) {
	if s.format == protocol.Text && ev.Type == protocol.EvAck {
		return
	}
	v := s.variant(ev.Room)
	if ev.Room == "" && s.format == protocol.Text {
		v = hub.VariantText
	}
	s.enqueue(Encode(&ev, v))
}

func (s *session) sendError(e *protocol.Error) {
	s.send(e.Event())
}

// connectOptions are what the handshake's URL asked for.
type connectOptions struct {
	nick  string
	rooms []string
	since *uint64
	epoch string
}

// run welcomes the client, then serves the connection until it ends and
// cleans up. Whichever goroutine is reading is the connection's owner.
func (s *session) run(opts connectOptions) {
	s.welcome(opts)
	s.alive()
	if s.raw != nil && s.fr.r.drained() {
		// A client waits for the 101 before it sends (RFC 6455, 4.1),
		// and the 101 has only just been queued: park without looking
		// (park looks, before it waits).
		go s.park()
		return
	}
	s.serve(false)
}

// serve reads frames until the connection ends, or until it goes quiet
// and parks: the reader then hands over to a new goroutine that waits for
// the socket to become readable. A waiting goroutine that has never run a
// command keeps the smallest stack (2 KiB) where a reader that has grown
// its stack on commands would keep it. Most connections are quiet most of
// the time, so this is most of what an idle connection costs.
func (s *session) serve(woken bool) {
	err := s.readLoop(woken)
	if err == errQuiet {
		go s.park()
		return
	}
	s.end(err)
	s.finish()
	s.srv.handlers.Done()
}

// park waits for the next frame, then serves it.
func (s *session) park() {
	if err := waitReadable(s.raw); err != nil {
		s.end(err)
		s.finish()
		s.srv.handlers.Done()
		return
	}
	s.serve(true)
}

// errQuiet ends a read loop that found nothing to read: the session parks.
var errQuiet = errors.New("quiet")

// quiet reports whether the connection has nothing to read right now and
// can park. Called between messages, where no frame is half read.
func (s *session) quiet() bool {
	if s.raw == nil || !s.fr.r.drained() {
		return false
	}
	if !readable(s.raw) {
		// The message buffer goes too, unless it is small.
		if cap(s.fr.buf) > 1024 {
			s.fr.buf = nil
		}
		return true
	}
	return false
}

func (s *session) welcome(opts connectOptions) {
	// Why the URL's nick was refused, told after the welcome.
	var refusedCode, refused string
	if opts.nick != "" {
		if err := chat.ValidName(opts.nick); err != nil {
			refusedCode, refused = protocol.CodeBadNick, fmt.Sprintf("nick %q is invalid: it %v", shorten(opts.nick), err)
		} else if err := s.srv.roster.claimNick(s, opts.nick, ""); errors.Is(err, errNickTaken) {
			refusedCode, refused = protocol.CodeNickTaken, fmt.Sprintf("nick %q is taken", opts.nick)
		} else if err != nil {
			refusedCode, refused = protocol.CodeInternal, fmt.Sprintf("nick %q: %v", opts.nick, err)
		} else {
			s.setNick(opts.nick)
		}
	}
	if s.nick == "" {
		s.setNick(s.srv.guestNick(s))
	}
	s.logConnect()
	rooms := opts.rooms
	if len(rooms) == 0 && s.format == protocol.Text {
		rooms = []string{chat.DefaultRoom}
	}
	first := ""
	if len(rooms) > 0 && chat.ValidName(rooms[0]) == nil {
		first = s.srv.hub.Display(rooms[0])
	}
	s.send(protocol.Event{
		Type: protocol.EvWelcome, Nick: s.nick, Epoch: s.srv.broker.Epoch(), Server: "parley",
		Version: s.srv.cfg.Version, Node: s.srv.cfg.Node, Room: first,
		Limits: &protocol.Limits{
			MaxMessageBytes: s.srv.cfg.MaxMessageBytes, Rate: wireRate(s.srv.cfg.Rate),
			Burst: s.srv.cfg.Burst, History: s.srv.cfg.History,
		},
	})
	if refused != "" {
		s.sendError(protocol.Errorf(refusedCode, "%s; you are %s", refused, s.nick))
	}
	for i, r := range rooms {
		c := protocol.Command{Type: protocol.CmdJoin, Room: r}
		if i == 0 {
			c.Since, c.Epoch = opts.since, opts.epoch
		}
		if err := chat.ValidName(r); err != nil {
			s.sendError(protocol.Errorf(protocol.CodeBadRoom, "room name %q is invalid: it %v", shorten(r), err))
			continue
		}
		if e := s.join(&c); e != nil {
			s.sendError(e)
		}
	}
	if s.format == protocol.Text && len(rooms) > 0 && len(s.order) > 0 {
		// The first room given is the current one.
		s.switchTo(s.rooms[chat.FoldName(rooms[0])])
	}
}

// readLoop reads frames until the connection ends or goes quiet
// (errQuiet). woken says the socket was just found readable.
func (s *session) readLoop(woken bool) error {
	for {
		if !woken && s.quiet() {
			return errQuiet
		}
		woken = false
		msg, err := s.fr.next()
		if err != nil {
			return err
		}
		if msg.op == ws.OpBinary {
			if !s.cmds.Allow() {
				if err := s.limited(&protocol.Command{}); err != nil {
					return err
				}
				continue
			}
			s.rejections = 0
			s.srv.reject(rejectBinary)
			s.sendError(protocol.Errorf(protocol.CodeBinaryUnsupported, "binary frames are not supported: parley speaks text frames only"))
			continue
		}
		var cmd protocol.Command
		var perr *protocol.Error
		if s.format == protocol.JSON {
			cmd, perr = protocol.DecodeJSON(msg.data)
		} else {
			cmd, perr = protocol.DecodeText(string(msg.data))
		}
		if perr != nil {
			// Bad frames cost a token too, so that a flood of them is
			// closed like any other flood.
			if !s.cmds.Allow() {
				if err := s.limited(&protocol.Command{Ref: perr.Ref}); err != nil {
					return err
				}
				continue
			}
			s.rejections = 0
			s.srv.reject(rejectBadCommand)
			s.srv.log.Debug("bad command", "remote", s.remote, "nick", s.nick, "code", perr.Code, "err", perr.Message)
			s.sendError(perr)
			continue
		}
		if !s.allow(&cmd) {
			if err := s.limited(&cmd); err != nil {
				return err
			}
			continue
		}
		s.rejections = 0
		if e := s.dispatch(&cmd); e != nil {
			if e.Ref == "" {
				e.Ref = cmd.Ref
			}
			s.sendError(e)
		}
	}
}

// limited answers a frame over the rate limit, and returns the error that
// ends the connection when the client keeps flooding.
func (s *session) limited(cmd *protocol.Command) error {
	s.rejections++
	s.srv.reject(rejectRateLimited)
	if s.rejections >= s.srv.cfg.MaxRejections {
		s.srv.reject(rejectFlooding)
		return failf(closePolicy, "flooding: %d frames over the rate limit in a row", s.rejections)
	}
	e := protocol.Errorf(protocol.CodeRateLimited, "slow down: at most %v messages per second (burst %d); this one was not sent", s.srv.cfg.Rate, s.srv.cfg.Burst)
	e.Ref, e.Room = cmd.Ref, cmd.Room
	s.sendError(e)
	return nil
}

func (s *session) allow(c *protocol.Command) bool {
	if c.Type == protocol.CmdSend {
		return s.sends.Allow()
	}
	return s.cmds.Allow()
}

// end closes the connection after the read loop ended with err.
func (s *session) end(err error) {
	var pe *protocolError
	var pc *peerClosed
	switch {
	case errors.As(err, &pc):
		code := pc.code
		// Everything the client sent before its close is stored before
		// the close is answered: a client that waits for the answer
		// (websocat, parley chat in the text format) knows its lines are in.
		s.waitStored(10 * time.Second)
		s.sendClose(code, "") // closeReceived let only valid codes through
		s.setEnd(fmt.Sprintf("client closed (%d)", code))
		s.waitCloseSent(time.Second)
	case errors.As(err, &pe):
		switch pe.code {
		case closeTooBig:
			s.srv.reject(rejectTooBig)
		case closeInvalidData:
			s.srv.reject(rejectBadUTF8)
		case closeProtocolError:
			s.srv.reject(rejectProtocol)
		}
		s.setEnd(pe.Error())
		s.sendClose(pe.code, pe.reason)
		s.waitCloseSent(time.Second)
	default:
		s.mu.Lock()
		closing, code := s.closing, s.closeCode
		s.mu.Unlock()
		switch {
		case closing:
			// We closed (shutdown, slow consumer); the client went.
			s.setEnd(fmt.Sprintf("closed by server (%d)", code))
		case errors.Is(err, net.ErrClosed):
			s.setEnd("connection closed")
		default:
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() {
				s.setEnd("no pong or frame within the pong timeout")
			} else {
				s.setEnd("connection lost: " + err.Error())
			}
		}
	}
}

// waitStored waits, at most d, until no send of this session waits for
// the store.
func (s *session) waitStored(d time.Duration) {
	if s.inflight == nil {
		return
	}
	t := time.NewTimer(d)
	defer t.Stop()
	for range cap(s.inflight) {
		select {
		case s.inflight <- struct{}{}:
		case <-t.C:
			return
		}
	}
	for range cap(s.inflight) {
		<-s.inflight
	}
}

func (s *session) waitCloseSent(d time.Duration) {
	s.mu.Lock()
	sent := s.closeSent
	s.mu.Unlock()
	if sent == nil {
		return // no close frame was queued
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-sent:
	case <-t.C:
	}
}

// finish releases everything the session holds, once the read loop ended.
func (s *session) finish() {
	s.mu.Lock()
	s.dead = true
	s.closing = true
	s.wakeLocked() // a flusher waiting out a window sees dead and exits
	if s.swept {
		s.swept = false // the sweeper skips it
		s.writing = false
	}
	s.mu.Unlock()
	s.conn.Close()
	s.writers.Wait()
	for _, key := range s.order {
		room := s.rooms[key]
		s.srv.hub.Leave(room, s)
		s.srv.roster.left(s, room)
	}
	s.srv.roster.releaseNick(s, s.nick)
	s.srv.removeSession(s)
	s.mu.Lock()
	reason := s.endReason
	s.mu.Unlock()
	s.srv.metrics.closes.WithLabelValues(closeLabel(reason)).Inc()
	s.srv.log.Info("connection closed", "remote", s.remote, "nick", s.nick, "format", s.format.String(), "reason", reason)
}

func closeLabel(reason string) string {
	for _, l := range []string{"client closed", "closed by server", "slow consumer", "close 1002", "close 1007", "close 1008", "close 1009", "no pong", "connection lost", "write failed"} {
		if strings.HasPrefix(reason, l) {
			return l
		}
	}
	return "other"
}

// commandSpec is one entry of the command table.
type commandSpec struct {
	handle func(s *session, c *protocol.Command) *protocol.Error
}

// commands is the command table; it is never modified.
var commands = map[string]commandSpec{
	protocol.CmdSend:    {handle: (*session).handleSend},
	protocol.CmdJoin:    {handle: (*session).join},
	protocol.CmdLeave:   {handle: (*session).handleLeave},
	protocol.CmdNick:    {handle: (*session).handleNick},
	protocol.CmdWho:     {handle: (*session).handleWho},
	protocol.CmdRooms:   {handle: (*session).handleRooms},
	protocol.CmdHistory: {handle: (*session).handleHistory},
	protocol.CmdHelp:    {handle: (*session).handleHelp},
}

func (s *session) dispatch(c *protocol.Command) *protocol.Error {
	spec, ok := commands[c.Type]
	if !ok {
		return protocol.Errorf(protocol.CodeUnknownType, "unknown command type %q", c.Type)
	}
	return spec.handle(s, c)
}

// roomOf resolves the room a command is about: the command's, or in the
// text format the current room. It must be joined.
func (s *session) joinedRoom(c *protocol.Command) (string, *protocol.Error) {
	room := c.Room
	if room == "" {
		room = s.currentRoom()
		if room == "" {
			return "", protocol.Errorf(protocol.CodeNotInRoom, "you are not in a room: /join one first")
		}
	}
	display, ok := s.rooms[chat.FoldName(room)]
	if !ok {
		return "", &protocol.Error{Code: protocol.CodeNotInRoom, Message: "you are not in #" + room + ": join it first", Room: room}
	}
	return display, nil
}

func (s *session) ack(c *protocol.Command, room string, id uint64) {
	if c.Ref != "" {
		s.send(protocol.Event{Type: protocol.EvAck, Ref: c.Ref, Room: room, ID: id})
	}
}

func (s *session) handleSend(c *protocol.Command) *protocol.Error {
	room, e := s.joinedRoom(c)
	if e != nil {
		return e
	}
	m := chat.Message{Room: room, From: s.nick, Text: c.Text, Ref: c.Ref}
	if c.Action {
		m.Kind = chat.KindAction
	}
	start := time.Now()
	if s.srv.async != nil {
		// Several sends of one connection in flight at once, still
		// stored and answered in the order sent; past maxInFlight the
		// reader waits, which slows the client down.
		if s.inflight == nil {
			s.inflight = make(chan struct{}, maxInFlight)
		}
		s.inflight <- struct{}{}
		ref, nick, text := c.Ref, s.nick, c.Text
		s.srv.async.AppendAsync(m, func(stored chat.Message, err error) {
			<-s.inflight
			s.appended(ref, nick, room, text, start, stored, err)
		})
		return nil
	}
	ctx, cancel := context.WithTimeout(s.srv.baseCtx, 10*time.Second)
	stored, err := s.srv.broker.Append(ctx, m)
	cancel()
	s.appended(c.Ref, s.nick, room, c.Text, start, stored, err)
	return nil
}

// maxInFlight is how many sends of one connection may wait for the store.
const maxInFlight = 64

// appended answers a send once the store has: an ack, or not_stored. It
// may run on the broker's goroutine, so it uses only what it is given and
// what is safe from any goroutine.
func (s *session) appended(ref, nick, room, text string, start time.Time, stored chat.Message, err error) {
	if err != nil {
		s.srv.reject(rejectNotStored)
		s.srv.log.Warn("message not stored", "remote", s.remote, "nick", nick, "room", room, "err", err)
		s.sendError(&protocol.Error{Code: protocol.CodeNotStored, Message: "the message was not stored: " + err.Error(), Room: room, Ref: ref})
		return
	}
	s.srv.metrics.appendSeconds.Observe(time.Since(start).Seconds())
	s.srv.metrics.received.Inc()
	s.srv.log.Debug("message", "remote", s.remote, "nick", nick, "room", room, "id", stored.ID, "text", text)
	if ref != "" {
		s.send(protocol.Event{Type: protocol.EvAck, Ref: ref, Room: room, ID: stored.ID})
	}
}

// join joins a room: subscribe first, then replay the log from the flusher
// (which skips ids already written), so that history and live messages
// meet with no gap and no duplicate.
func (s *session) join(c *protocol.Command) *protocol.Error {
	key := chat.FoldName(c.Room)
	if display, ok := s.rooms[key]; ok {
		s.switchTo(display)
		s.ack(c, display, 0)
		return nil
	}
	if len(s.rooms) >= s.srv.cfg.MaxRooms {
		return &protocol.Error{Code: protocol.CodeTooManyRooms, Message: fmt.Sprintf("you are in %d rooms, the most allowed", len(s.rooms)), Room: c.Room}
	}
	v := hub.VariantJSON
	if s.format == protocol.Text {
		v = hub.VariantText // a joined room becomes the current one
	}
	display, _ := s.srv.hub.Join(c.Room, s, v)
	if s.rooms == nil {
		s.rooms = make(map[string]string)
	}
	s.rooms[key] = display
	s.order = append(s.order, key)
	s.switchTo(display)
	s.push(item{job: &catchup{room: display, key: key, since: c.Since, epoch: c.Epoch}})
	// The ack follows the history: when it arrives, the client has every
	// message up to the moment it joined, and whatever it sends next
	// comes back live.
	s.ack(c, display, 0)
	s.srv.roster.joined(s, display)
	return nil
}

// switchTo makes room the text format's current room.
func (s *session) switchTo(room string) {
	if s.format != protocol.Text {
		return
	}
	old := s.currentRoom()
	if old == room {
		return
	}
	s.current.Store(&room)
	if old != "" {
		if _, ok := s.rooms[chat.FoldName(old)]; ok {
			s.srv.hub.SetVariant(old, s, hub.VariantTextOther)
		}
	}
	if room != "" {
		s.srv.hub.SetVariant(room, s, hub.VariantText)
	}
}

func (s *session) handleLeave(c *protocol.Command) *protocol.Error {
	room, e := s.joinedRoom(c)
	if e != nil {
		return e
	}
	key := chat.FoldName(room)
	s.srv.hub.Leave(room, s)
	delete(s.rooms, key)
	s.order = slices.DeleteFunc(s.order, func(k string) bool { return k == key })
	s.push(item{job: &catchup{key: key, forget: true}})
	ev := protocol.Event{Type: protocol.EvLeave, Room: room, Nick: s.nick, TS: protocol.Now()}
	if s.format == protocol.Text {
		s.send(ev)
	}
	s.ack(c, room, 0)
	s.srv.roster.left(s, room)
	if chat.FoldName(s.currentRoom()) == key {
		next := ""
		if n := len(s.order); n > 0 {
			next = s.rooms[s.order[n-1]]
		}
		s.current.Store(&next)
		if next != "" {
			s.srv.hub.SetVariant(next, s, hub.VariantText)
		}
	}
	return nil
}

func (s *session) handleNick(c *protocol.Command) *protocol.Error {
	old := s.nick
	if c.Nick == old {
		s.ack(c, "", 0)
		return nil
	}
	if err := s.srv.roster.claimNick(s, c.Nick, old); err != nil {
		if errors.Is(err, errNickTaken) {
			return protocol.Errorf(protocol.CodeNickTaken, "nick %q is taken", c.Nick)
		}
		return protocol.Errorf(protocol.CodeInternal, "%v", err)
	}
	s.setNick(c.Nick)
	s.ack(c, "", 0)
	if len(s.order) == 0 {
		s.send(protocol.Event{Type: protocol.EvNick, Old: old, Nick: c.Nick, TS: protocol.Now()})
	}
	rooms := make([]string, 0, len(s.order))
	for _, key := range s.order {
		rooms = append(rooms, s.rooms[key])
	}
	s.srv.roster.renamed(s, rooms, old, c.Nick)
	return nil
}

func (s *session) handleWho(c *protocol.Command) *protocol.Error {
	room := c.Room
	if room == "" {
		if room = s.currentRoom(); room == "" {
			return protocol.Errorf(protocol.CodeNotInRoom, "you are not in a room: /who ROOM")
		}
	}
	room = s.srv.hub.Display(room)
	members, err := s.srv.roster.members(room)
	if err != nil {
		return &protocol.Error{Code: protocol.CodeInternal, Message: "could not list the members: " + err.Error(), Room: room}
	}
	s.send(protocol.Event{Type: protocol.EvWho, Ref: c.Ref, Room: room, Members: members})
	return nil
}

func (s *session) handleRooms(c *protocol.Command) *protocol.Error {
	rooms, err := s.srv.roster.rooms()
	if err != nil {
		return protocol.Errorf(protocol.CodeInternal, "could not list the rooms: %v", err)
	}
	s.send(protocol.Event{Type: protocol.EvRooms, Ref: c.Ref, Rooms: rooms})
	return nil
}

func (s *session) handleHistory(c *protocol.Command) *protocol.Error {
	ctx, cancel := context.WithTimeout(s.srv.baseCtx, 10*time.Second)
	defer cancel()
	page, err := s.srv.broker.Read(ctx, broker.Query{Room: c.Room, Backward: true, Before: c.Before, Limit: c.Limit})
	if err != nil {
		return &protocol.Error{Code: protocol.CodeInternal, Message: "could not read the history: " + err.Error(), Room: c.Room}
	}
	ev := protocol.Event{Type: protocol.EvHistory, Ref: c.Ref, Room: s.srv.hub.Display(c.Room), Messages: []protocol.Event{}}
	for i := range page.Messages {
		m := protocol.MessageEvent(&page.Messages[i], true)
		m.Room = ev.Room
		ev.Messages = append(ev.Messages, m)
	}
	ev.More = len(page.Messages) > 0 && page.Messages[0].ID > page.First
	s.send(ev)
	return nil
}

func (s *session) handleHelp(c *protocol.Command) *protocol.Error {
	s.send(protocol.Event{Type: protocol.EvHelp})
	return nil
}

// guestNick picks a free guest-NNNN nick for s.
func (srv *Server) guestNick(s *session) string {
	for digits := 4; ; digits++ {
		limit := 1
		for range digits {
			limit *= 10
		}
		for range 20 {
			n := fmt.Sprintf("guest-%0*d", digits, rand.IntN(limit))
			if srv.roster.claimNick(s, n, "") == nil {
				return n
			}
		}
		if digits > 12 {
			// Nicks cannot be claimed at all (the cluster is unreachable):
			// go on with one made from the session id rather than loop.
			return "guest-" + s.id
		}
	}
}
