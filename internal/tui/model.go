package tui

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"charm.land/bubbles/v2/key"
	"charm.land/bubbles/v2/textinput"
	tea "charm.land/bubbletea/v2"
	"charm.land/lipgloss/v2"

	"parley/internal/client"
	"parley/internal/protocol"
)

// poster sends commands without waiting for their answers, which come
// back as events with the same ref. *client.Client is one.
type poster interface {
	Post(ctx context.Context, cmd protocol.Command) (string, error)
}

var _ poster = (*client.Client)(nil)

// eventsMsg carries events from the client to Update, in order: the pump
// sends what has piled up as one message, so a burst (a room's history)
// costs one update and one frame.
type eventsMsg []client.Event

// pending is what a command we posted was for, kept until its answer.
type pending struct {
	kind string // a protocol.Cmd* value
	room string // join, leave, who, history, send
	nick string // nick
	show bool   // who, rooms: the user asked, so the answer is shown
}

// historyPage is how many older messages Page Up asks for at a time.
const historyPage = 100

// model is the whole UI's state. It is owned by the program's event loop
// (see the package comment); methods with a pointer receiver change it.
type model struct {
	c poster
	// postCtx is already cancelled: Post then never blocks (it waits only
	// when too many sends are unacknowledged, and says so with an error).
	postCtx context.Context
	url     string
	nick    string // ours, as the server knows it
	node    string // the server node's name, from welcome

	state   client.State
	attempt int   // reconnect attempt, while reconnecting
	lost    error // why the connection dropped, while reconnecting

	rooms   []*room // joined rooms, in join order
	cur     int     // index into rooms of the current room; -1: none
	status  *room   // the buffer shown when no room is joined
	pending map[string]pending

	input textinput.Model
	hist  inputHistory
	st    *styles

	width, height int

	err error // why the connection ended for good; Run returns it
}

// newModel makes the UI for a client that has dialed and joined rooms.
// notices are shown first (the nick that was taken, ...).
func newModel(c poster, url, nick string, rooms []string, notices ...string) *model {
	done, cancel := context.WithCancel(context.Background())
	cancel()
	m := &model{
		c:       c,
		postCtx: done,
		url:     url,
		nick:    nick,
		state:   client.StateConnected,
		cur:     -1,
		pending: make(map[string]pending),
		st:      newStyles(),
	}
	m.status = newRoom("", m.st)
	for _, name := range rooms {
		m.rooms = append(m.rooms, newRoom(name, m.st))
	}
	if len(m.rooms) > 0 {
		m.cur = 0
	}
	in := textinput.New()
	in.SetVirtualCursor(false)
	// Keys the chat takes for itself: Ctrl+D quits, Ctrl+N/Ctrl+P switch
	// rooms, up and down walk the input history; Ctrl+V would run a
	// clipboard tool (the terminal's own paste works, bracketed).
	in.KeyMap.DeleteCharacterForward = key.NewBinding(key.WithKeys("delete"))
	in.KeyMap.NextSuggestion = key.NewBinding(key.WithDisabled())
	in.KeyMap.PrevSuggestion = key.NewBinding(key.WithDisabled())
	in.KeyMap.Paste = key.NewBinding(key.WithDisabled())
	// The terminal's own colours for the prompt and cursor: the defaults
	// assume a dark background, and colour the cursor with OSC 12.
	ist := textinput.DefaultDarkStyles()
	ist.Focused.Prompt = lipgloss.NewStyle().Bold(true)
	ist.Blurred.Prompt = ist.Focused.Prompt
	ist.Cursor.Color = nil
	in.SetStyles(ist)
	in.Focus()
	m.input = in
	m.setPrompt()
	for _, n := range notices {
		m.shown().add(entryError, n)
	}
	return m
}

// Init asks for the member list of each room joined on connect: the who
// is answered after the join's history, which also tells when the room's
// replayed history ends (see room.live).
func (m *model) Init() tea.Cmd {
	for _, r := range m.rooms {
		m.refreshWho(r)
	}
	return nil
}

// current is the current room, or nil.
func (m *model) current() *room {
	if m.cur < 0 || m.cur >= len(m.rooms) {
		return nil
	}
	return m.rooms[m.cur]
}

// shown is the buffer on the screen: the current room's, else the status
// buffer.
func (m *model) shown() *room {
	if r := m.current(); r != nil {
		return r
	}
	return m.status
}

// find returns the index of the joined room called name, or -1.
func (m *model) find(name string) int {
	for i, r := range m.rooms {
		if r.is(name) {
			return i
		}
	}
	return -1
}

// room returns the joined room called name, or nil.
func (m *model) room(name string) *room {
	if i := m.find(name); i >= 0 {
		return m.rooms[i]
	}
	return nil
}

func (m *model) switchTo(i int) {
	if i < 0 || i >= len(m.rooms) {
		return
	}
	m.cur = i
	m.rooms[i].unread = 0
	m.setPrompt()
}

func (m *model) setPrompt() {
	p := "> "
	if r := m.current(); r != nil {
		p = "#" + r.name + "> "
	}
	m.input.Prompt = p
	m.layoutInput()
}

// notice adds a line to the buffer on the screen.
func (m *model) notice(kind entryKind, format string, args ...any) {
	m.shown().add(kind, fmt.Sprintf(format, args...))
}

// post sends cmd and remembers what it was for. It never blocks; a
// refusal (a bad name, too many unacknowledged sends, a closed client) is
// shown, and ok is false.
func (m *model) post(cmd protocol.Command, p pending) (ref string, ok bool) {
	ref, err := m.c.Post(m.postCtx, cmd)
	if err != nil {
		if errors.Is(err, context.Canceled) {
			err = errors.New("too many messages are waiting for the server; try again in a moment")
		}
		m.notice(entryError, "! error: %s", clean(err.Error()))
		return "", false
	}
	p.kind = cmd.Type
	m.pending[ref] = p
	return ref, true
}

// refreshWho asks for r's members, once at a time.
func (m *model) refreshWho(r *room) {
	if r.whoRef != "" {
		r.whoAgain = true
		return
	}
	r.whoRef, _ = m.post(protocol.Command{Type: protocol.CmdWho, Room: r.name}, pending{room: r.name})
}

// Update is the program's one place of change.
func (m *model) Update(msg tea.Msg) (tea.Model, tea.Cmd) {
	switch msg := msg.(type) {
	case tea.WindowSizeMsg:
		m.resize(msg.Width, msg.Height)
		return m, nil
	case tea.KeyPressMsg:
		return m, m.key(msg)
	case eventsMsg:
		for _, ev := range msg {
			m.event(ev)
		}
		if m.err != nil {
			return m, tea.Quit
		}
		return m, nil
	}
	var cmd tea.Cmd
	m.input, cmd = m.input.Update(msg)
	return m, cmd
}

func (m *model) key(k tea.KeyPressMsg) tea.Cmd {
	switch s := k.String(); s {
	case "ctrl+c", "ctrl+d":
		return tea.Quit
	case "enter":
		line := m.input.Value()
		m.input.Reset()
		if strings.TrimSpace(line) != "" {
			m.hist.add(line)
		}
		return m.submit(line)
	case "up":
		if line, ok := m.hist.prev(m.input.Value()); ok {
			m.input.SetValue(line)
			m.input.CursorEnd()
		}
		return nil
	case "down":
		if line, ok := m.hist.next(); ok {
			m.input.SetValue(line)
			m.input.CursorEnd()
		}
		return nil
	case "pgup":
		m.scroll(m.page())
		return nil
	case "pgdown":
		m.scroll(-m.page())
		return nil
	case "ctrl+n":
		if len(m.rooms) > 0 {
			m.switchTo((m.cur + 1) % len(m.rooms))
		}
		return nil
	case "ctrl+p":
		if len(m.rooms) > 0 {
			m.switchTo((m.cur - 1 + len(m.rooms)) % len(m.rooms))
		}
		return nil
	case "ctrl+l":
		return tea.ClearScreen
	case "alt+1", "alt+2", "alt+3", "alt+4", "alt+5", "alt+6", "alt+7", "alt+8", "alt+9":
		m.switchTo(int(s[len(s)-1] - '1'))
		return nil
	}
	var cmd tea.Cmd
	m.input, cmd = m.input.Update(k)
	return cmd
}

// scroll moves the view of the shown buffer by delta rows (up when
// positive). Reaching the top asks the server for older messages.
func (m *model) scroll(delta int) {
	r := m.shown()
	top := max(0, m.totalRows(r)-m.bodyHeight())
	r.offset = min(max(r.offset+delta, 0), top)
	if delta > 0 && r.offset == top {
		m.loadOlder(r)
	}
}

// loadOlder asks for the page of messages before the oldest shown.
func (m *model) loadOlder(r *room) {
	if r == m.status || !r.more || r.historyRef != "" {
		return
	}
	r.historyRef, _ = m.post(protocol.Command{Type: protocol.CmdHistory, Room: r.name, Before: r.oldest, Limit: historyPage}, pending{room: r.name})
}
