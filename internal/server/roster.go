package server

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"parley/internal/hub"
	"parley/internal/presence"
	"parley/internal/protocol"
)

// Presence is who is online across a cluster: nicks, room members, and
// the notices that go with them. *presence.Presence implements it. Without
// one (Config.Presence nil) the hub, which knows this node, is the whole
// truth.
type Presence interface {
	ClaimNick(ctx context.Context, nick, session string) error
	ReleaseNick(ctx context.Context, nick string) error
	Join(ctx context.Context, room, nick string) error
	Leave(ctx context.Context, room, nick string) error
	Rename(ctx context.Context, room, old, nick string) error
	Members(ctx context.Context, room string) ([]string, error)
	Rooms(ctx context.Context) ([]presence.RoomCount, error)
}

var _ Presence = (*presence.Presence)(nil)

// errNickTaken is returned by roster.claimNick for a nick in use.
var errNickTaken = errors.New("nick taken")

// roster is what a session asks about presence. Two kinds: this node only
// (the hub), or a cluster (Presence), where notices come back through the
// Presence's events on every node, this one included.
type roster interface {
	claimNick(s *session, nick, old string) error
	releaseNick(s *session, nick string)
	joined(s *session, room string)
	left(s *session, room string)
	renamed(s *session, rooms []string, old, nick string)
	members(room string) ([]string, error)
	rooms() ([]protocol.RoomInfo, error)
}

// localRoster is presence on one node: the hub.
type localRoster struct{ hub *hub.Hub }

func (r localRoster) claimNick(s *session, nick, old string) error {
	if !r.hub.ClaimNick(nick, old, s) {
		return errNickTaken
	}
	return nil
}

func (r localRoster) releaseNick(s *session, nick string) { r.hub.ReleaseNick(nick, s) }

func (r localRoster) joined(s *session, room string) {
	r.hub.Notify(protocol.Event{Type: protocol.EvJoin, Room: room, Nick: s.nick, TS: protocol.Now()})
}

func (r localRoster) left(s *session, room string) {
	r.hub.Notify(protocol.Event{Type: protocol.EvLeave, Room: room, Nick: s.nick, TS: protocol.Now()})
}

func (r localRoster) renamed(s *session, rooms []string, old, nick string) {
	ts := protocol.Now()
	for _, room := range rooms {
		r.hub.Notify(protocol.Event{Type: protocol.EvNick, Room: room, Old: old, Nick: nick, TS: ts})
	}
}

func (r localRoster) members(room string) ([]string, error) { return r.hub.Members(room), nil }

func (r localRoster) rooms() ([]protocol.RoomInfo, error) { return r.hub.Rooms(), nil }

// clusterRoster is presence across nodes.
type clusterRoster struct {
	p   Presence
	srv *Server
}

// presenceTimeout bounds one presence call.
const presenceTimeout = 5 * time.Second

func (r clusterRoster) ctx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(r.srv.baseCtx, presenceTimeout)
}

func (r clusterRoster) claimNick(s *session, nick, old string) error {
	ctx, cancel := r.ctx()
	defer cancel()
	if err := r.p.ClaimNick(ctx, nick, s.id); err != nil {
		if errors.Is(err, presence.ErrNickTaken) {
			return errNickTaken
		}
		return fmt.Errorf("could not claim the nick: %w", err)
	}
	return nil
}

func (r clusterRoster) releaseNick(s *session, nick string) {
	ctx, cancel := r.ctx()
	defer cancel()
	if err := r.p.ReleaseNick(ctx, nick); err != nil {
		r.srv.log.Warn("presence: release nick", "nick", nick, "err", err)
	}
}

func (r clusterRoster) joined(s *session, room string) {
	ctx, cancel := r.ctx()
	defer cancel()
	if err := r.p.Join(ctx, room, s.nick); err != nil {
		r.srv.log.Warn("presence: join", "room", room, "nick", s.nick, "err", err)
	}
}

func (r clusterRoster) left(s *session, room string) {
	ctx, cancel := r.ctx()
	defer cancel()
	if err := r.p.Leave(ctx, room, s.nick); err != nil {
		r.srv.log.Warn("presence: leave", "room", room, "nick", s.nick, "err", err)
	}
}

func (r clusterRoster) renamed(s *session, rooms []string, old, nick string) {
	ctx, cancel := r.ctx()
	defer cancel()
	for _, room := range rooms {
		if err := r.p.Rename(ctx, room, old, nick); err != nil {
			r.srv.log.Warn("presence: rename", "room", room, "nick", nick, "err", err)
		}
	}
	if err := r.p.ReleaseNick(ctx, old); err != nil {
		r.srv.log.Warn("presence: release nick", "nick", old, "err", err)
	}
}

func (r clusterRoster) members(room string) ([]string, error) {
	ctx, cancel := r.ctx()
	defer cancel()
	m, err := r.p.Members(ctx, room)
	if m == nil {
		m = []string{}
	}
	return m, err
}

func (r clusterRoster) rooms() ([]protocol.RoomInfo, error) {
	ctx, cancel := r.ctx()
	defer cancel()
	rc, err := r.p.Rooms(ctx)
	out := make([]protocol.RoomInfo, 0, len(rc))
	for _, c := range rc {
		out = append(out, protocol.RoomInfo{Name: c.Name, Members: c.Members})
	}
	return out, err
}

// PresenceEvent turns a cluster presence event into the hub notice that
// shows it to this node's sessions. cmd/parley passes it, bound to the
// hub, as the Presence's event callback.
func PresenceEvent(h *hub.Hub) func(presence.Event) {
	return func(e presence.Event) {
		ev := protocol.Event{Room: e.Room, Nick: e.Nick, TS: e.Time.UTC().Truncate(time.Millisecond)}
		switch e.Kind {
		case presence.Join:
			ev.Type = protocol.EvJoin
		case presence.Leave:
			ev.Type = protocol.EvLeave
		case presence.Nick:
			ev.Type, ev.Old = protocol.EvNick, e.Old
		default:
			return
		}
		h.Notify(ev)
	}
}

func sessionID(n uint64) string { return "s" + strconv.FormatUint(n, 36) }
