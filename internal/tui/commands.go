package tui

import (
	"strings"

	tea "charm.land/bubbletea/v2"

	"parley/internal/protocol"
)

// helpText is /help: the server's commands, then the UI's own.
const helpText = protocol.HelpText + `
*   /quit          leave parley (also Ctrl+C, Ctrl+D)
* keys: Ctrl+N / Ctrl+P or Alt+1..9 switch rooms, Up / Down recall lines,
*   Page Up / Page Down scroll (older messages load at the top), Ctrl+L redraws`

// command is one /command's handler, given the decoded command.
type command func(m *model, cmd protocol.Command) tea.Cmd

// handler is the table of commands: one entry per command type
// protocol.DecodeText yields, one signature. (A switch, not a map: no
// package variables.)
func handler(typ string) command {
	switch typ {
	case protocol.CmdSend:
		return (*model).send
	case protocol.CmdJoin:
		return (*model).join
	case protocol.CmdLeave:
		return (*model).leave
	case protocol.CmdNick:
		return (*model).changeNick
	case protocol.CmdWho:
		return (*model).who
	case protocol.CmdRooms:
		return (*model).listRooms
	case protocol.CmdHelp:
		return (*model).help
	}
	return nil
}

// submit handles a line entered: a message to the current room, or a
// /command as in the text format (start a line with // to send a leading
// /), or /quit.
func (m *model) submit(line string) tea.Cmd {
	trimmed := strings.TrimSpace(line)
	if trimmed == "" {
		return nil
	}
	if strings.EqualFold(trimmed, "/quit") || strings.EqualFold(trimmed, "/exit") {
		return tea.Quit
	}
	cmd, perr := protocol.DecodeText(line)
	if perr != nil {
		m.notice(entryError, "! error: %s", perr.Message)
		return nil
	}
	h := handler(cmd.Type)
	if h == nil {
		m.notice(entryError, "! error: %s is not supported here", cmd.Type)
		return nil
	}
	return h(m, cmd)
}

func (m *model) send(cmd protocol.Command) tea.Cmd {
	r := m.current()
	if r == nil {
		m.notice(entryError, "! error: you are in no room: /join one first")
		return nil
	}
	cmd.Room = r.name
	if _, ok := m.post(cmd, pending{room: r.name}); ok {
		r.offset = 0 // what we send, we want to see arrive
	}
	return nil
}

// join switches to a joined room, or joins one and switches to it at once:
// its history arrives after the ack.
func (m *model) join(cmd protocol.Command) tea.Cmd {
	if i := m.find(cmd.Room); i >= 0 {
		m.switchTo(i)
		return nil
	}
	if _, ok := m.post(cmd, pending{room: cmd.Room}); !ok {
		return nil
	}
	r := newRoom(cmd.Room, m.st)
	r.width = m.bodyWidth()
	m.rooms = append(m.rooms, r)
	m.switchTo(len(m.rooms) - 1)
	return nil
}

// leave leaves a room (the current one by default) at once; the current
// room becomes the last joined one left.
func (m *model) leave(cmd protocol.Command) tea.Cmd {
	if cmd.Room == "" {
		if r := m.current(); r != nil {
			cmd.Room = r.name
		}
	}
	i := m.find(cmd.Room)
	if cmd.Room == "" || i < 0 {
		m.notice(entryError, "! error: you are not in #%s", cmd.Room)
		return nil
	}
	cmd.Room = m.rooms[i].name
	if _, ok := m.post(cmd, pending{room: cmd.Room}); !ok {
		return nil
	}
	m.removeRoom(i)
	m.notice(entryNotice, "* you left #%s", cmd.Room)
	return nil
}

// removeRoom drops rooms[i]; when it was the current room, the last joined
// room left becomes current.
func (m *model) removeRoom(i int) {
	was := m.current()
	m.rooms = append(m.rooms[:i], m.rooms[i+1:]...)
	switch {
	case len(m.rooms) == 0:
		m.cur = -1
		m.setPrompt()
	case was == nil || m.find(was.name) < 0:
		m.switchTo(len(m.rooms) - 1)
	default:
		m.cur = m.find(was.name)
	}
}

func (m *model) changeNick(cmd protocol.Command) tea.Cmd {
	m.post(cmd, pending{nick: cmd.Nick})
	return nil
}

func (m *model) who(cmd protocol.Command) tea.Cmd {
	if cmd.Room == "" {
		r := m.current()
		if r == nil {
			m.notice(entryError, "! error: you are in no room: /who ROOM")
			return nil
		}
		cmd.Room = r.name
	}
	m.post(cmd, pending{room: cmd.Room, show: true})
	return nil
}

func (m *model) listRooms(cmd protocol.Command) tea.Cmd {
	m.post(cmd, pending{show: true})
	return nil
}

func (m *model) help(protocol.Command) tea.Cmd {
	for _, line := range strings.Split(helpText, "\n") {
		m.notice(entryNotice, "%s", line)
	}
	return nil
}
