package tui

import (
	"fmt"
	"strings"

	"parley/internal/client"
	"parley/internal/protocol"
)

// event applies one event of the client to the model.
func (m *model) event(ev client.Event) {
	switch ev.Type {
	case client.EvState:
		m.stateChange(ev)
	case protocol.EvWelcome:
		m.nick = clean(ev.Nick)
		m.node = clean(ev.Node)
	case protocol.EvAck:
		m.ack(&ev.Event)
	case protocol.EvMessage:
		r := m.room(ev.Room)
		if r == nil {
			return
		}
		// The history replayed on join is not unread; what is replayed
		// after a reconnect (or a resync) is news.
		if r.addMessage(&ev.Event) && r != m.current() && (!ev.History || r.live) {
			r.unread++
		}
	case protocol.EvJoin:
		m.presence(&ev.Event, "* %s joined #%s", clean(ev.Nick), clean(ev.Room))
	case protocol.EvLeave:
		m.presence(&ev.Event, "* %s left #%s", clean(ev.Nick), clean(ev.Room))
	case protocol.EvNick:
		if strings.EqualFold(ev.Old, m.nick) {
			m.nick = clean(ev.Nick)
		}
		m.presence(&ev.Event, "* %s is now known as %s", clean(ev.Old), clean(ev.Nick))
	case protocol.EvWho:
		m.whoAnswer(&ev.Event)
	case protocol.EvRooms:
		p := m.answered(ev.Ref)
		if p.show {
			m.notice(entryNotice, "%s", clean(string(protocol.AppendText(nil, &ev.Event, ""))))
		}
	case protocol.EvHistory:
		m.historyPage(&ev.Event)
	case protocol.EvGap:
		if r := m.room(ev.Room); r != nil {
			r.add(entryError, fmt.Sprintf("! messages %d-%d of #%s are no longer in the history", ev.First, ev.Last, r.name))
		}
	case protocol.EvReset:
		if r := m.room(ev.Room); r != nil {
			r.reset()
			r.add(entryError, fmt.Sprintf("! the history of #%s was reset on the server; the latest messages follow", r.name))
		}
	case protocol.EvError:
		m.serverError(&ev.Event)
	}
}

// answered forgets the command ref answered and returns what it was for
// (the zero pending for refs that are not ours: the joins of Dial).
func (m *model) answered(ref string) pending {
	p := m.pending[ref]
	delete(m.pending, ref)
	return p
}

func (m *model) stateChange(ev client.Event) {
	prev := m.state
	m.state = ev.State
	switch ev.State {
	case client.StateReconnecting:
		m.attempt, m.lost = ev.Attempt, ev.Err
		if prev == client.StateConnected {
			m.everywhere(entryError, fmt.Sprintf("! connection lost (%s); reconnecting", clean(errText(ev.Err))))
		}
	case client.StateConnected:
		m.attempt, m.lost = 0, nil
		if prev == client.StateReconnecting {
			m.everywhere(entryNotice, "* reconnected to "+clean(m.url))
			for _, r := range m.rooms {
				m.refreshWho(r)
			}
		}
	case client.StateClosed:
		if ev.Err != nil {
			m.err = ev.Err
		}
	}
}

func errText(err error) string {
	if err == nil {
		return "no reason given"
	}
	return err.Error()
}

// everywhere adds a notice to every buffer: a connection's change is part
// of each room's story.
func (m *model) everywhere(kind entryKind, text string) {
	for _, r := range m.rooms {
		r.add(kind, text)
	}
	m.status.add(kind, text)
}

func (m *model) ack(ev *protocol.Event) {
	p := m.answered(ev.Ref)
	switch p.kind {
	case protocol.CmdJoin:
		if r := m.room(p.room); r != nil {
			m.refreshWho(r)
		}
	case protocol.CmdNick:
		m.nick = clean(p.nick)
		m.notice(entryNotice, "* you are now known as %s", m.nick)
	}
}

// presence shows a join, leave or nick notice in its room and refreshes
// the room's member list.
func (m *model) presence(ev *protocol.Event, format string, args ...any) {
	r := m.room(ev.Room)
	if r == nil {
		return
	}
	r.add(entryNotice, fmt.Sprintf(format, args...))
	m.refreshWho(r)
}

func (m *model) whoAnswer(ev *protocol.Event) {
	p := m.answered(ev.Ref)
	members := make([]string, len(ev.Members))
	for i, n := range ev.Members {
		members[i] = clean(n)
	}
	if r := m.room(ev.Room); r != nil {
		r.members = members
		if r.whoRef == ev.Ref {
			r.whoRef = ""
			r.live = true
			if r.whoAgain {
				r.whoAgain = false
				m.refreshWho(r)
			}
		}
	}
	if p.show {
		m.notice(entryNotice, "* in #%s (%d): %s", clean(ev.Room), len(members), strings.Join(members, ", "))
	}
}

// historyPage puts a page of older messages above the ones shown.
func (m *model) historyPage(ev *protocol.Event) {
	p := m.answered(ev.Ref)
	r := m.room(p.room)
	if p.kind != protocol.CmdHistory || r == nil || r.historyRef != ev.Ref {
		return
	}
	r.historyRef = ""
	r.more = ev.More
	for i := range ev.Messages {
		r.addMessage(&ev.Messages[i])
	}
}

func (m *model) serverError(ev *protocol.Event) {
	p := m.answered(ev.Ref)
	text := "! error: " + clean(ev.Message)
	target := m.shown()
	switch p.kind {
	case protocol.CmdJoin:
		if i := m.find(p.room); i >= 0 {
			m.removeRoom(i)
		}
		text = fmt.Sprintf("! cannot join #%s: %s", clean(p.room), clean(ev.Message))
		target = m.shown()
	case protocol.CmdNick:
		if ev.Code == protocol.CodeNickTaken {
			text += "; choose another with /nick NAME"
		}
	case protocol.CmdSend:
		text = "! not sent: " + clean(ev.Message)
		if r := m.room(p.room); r != nil {
			target = r
		}
	case protocol.CmdHistory:
		if r := m.room(p.room); r != nil {
			r.historyRef = ""
			target = r
		}
	case protocol.CmdWho:
		if r := m.room(p.room); r != nil && r.whoRef == ev.Ref {
			r.whoRef = ""
		}
	default:
		if r := m.room(ev.Room); r != nil {
			target = r
		}
	}
	target.add(entryError, text)
}
