package tui

import (
	"fmt"
	"hash/fnv"
	"image/color"
	"strings"

	tea "charm.land/bubbletea/v2"
	"charm.land/lipgloss/v2"
	"github.com/charmbracelet/x/ansi"

	"parley/internal/client"
)

// The layout: the rooms column on the left, the scrollback, the members
// column on the right, then the status line and the input line. Columns
// give way on narrow terminals, members first.
const (
	roomsWidth   = 20 // with its separator
	membersWidth = 20
	roomsFrom    = 60 // the terminal width from which each column shows
	membersFrom  = 90
	stampWidth   = 6 // "15:04 "
)

// styles are the UI's colours, made once per model.
type styles struct {
	dim, err, bold, status, statusOK, statusBad, current lipgloss.Style
	nicks                                                []color.Color
}

func newStyles() *styles {
	s := &styles{
		dim:       lipgloss.NewStyle().Faint(true),
		err:       lipgloss.NewStyle().Foreground(lipgloss.Color("1")),
		bold:      lipgloss.NewStyle().Bold(true),
		status:    lipgloss.NewStyle().Reverse(true),
		statusOK:  lipgloss.NewStyle().Reverse(true).Foreground(lipgloss.Color("2")),
		statusBad: lipgloss.NewStyle().Reverse(true).Foreground(lipgloss.Color("3")),
		current:   lipgloss.NewStyle().Bold(true).Reverse(true),
	}
	// ANSI 256 colours that read on dark and light backgrounds; the
	// terminal's profile downsamples them where needed.
	for _, c := range []string{"33", "39", "41", "70", "106", "136", "166", "167", "169", "135", "99", "37", "172", "131"} {
		s.nicks = append(s.nicks, lipgloss.Color(c))
	}
	return s
}

// nick draws a nick in its colour: the same for the same nick
// (case-insensitively, as nicks compare) on every screen and every run.
func (s *styles) nick(n string) string {
	return lipgloss.NewStyle().Foreground(s.nickColor(n)).Render(n)
}

func (s *styles) nickColor(n string) color.Color {
	h := fnv.New32a()
	h.Write([]byte(strings.ToLower(n)))
	return s.nicks[h.Sum32()%uint32(len(s.nicks))]
}

func (m *model) showRooms() bool   { return m.width >= roomsFrom }
func (m *model) showMembers() bool { return m.width >= membersFrom }

// bodyWidth is the scrollback's width.
func (m *model) bodyWidth() int {
	w := m.width
	if m.showRooms() {
		w -= roomsWidth
	}
	if m.showMembers() {
		w -= membersWidth
	}
	return max(w, 1)
}

// bodyHeight is the scrollback's height: all but the status and input
// lines.
func (m *model) bodyHeight() int { return max(m.height-2, 1) }

// page is how far Page Up and Page Down move.
func (m *model) page() int { return max(m.bodyHeight()-1, 1) }

func (m *model) resize(w, h int) {
	m.width, m.height = w, h
	bw := m.bodyWidth()
	for _, r := range m.rooms {
		r.width = bw
	}
	m.status.width = bw
	m.layoutInput()
}

func (m *model) layoutInput() {
	m.input.SetWidth(max(m.width-ansi.StringWidth(m.input.Prompt)-1, 1))
}

// rowsAt draws the entry as rows of at most width cells, cached.
func (e *entry) rowsAt(width int, st *styles) []string {
	if e.rows != nil && e.rowsWidth == width {
		return e.rows
	}
	e.rows, e.rowsWidth = drawEntry(e, width, st), width
	return e.rows
}

// drawEntry draws an entry: the time, then the text wrapped under itself.
func drawEntry(e *entry, width int, st *styles) []string {
	bw := max(width-stampWidth, 1)
	var head, plain string
	switch e.kind {
	case entryMessage:
		head, plain = e.from, e.from+": "+e.text
	case entryAction:
		head, plain = "* "+e.from, "* "+e.from+" "+e.text
	default:
		plain = e.text
	}
	rows := wrap(plain, bw)
	for i, row := range rows {
		switch {
		case e.kind == entryNotice:
			row = st.dim.Render(row)
		case e.kind == entryError:
			row = st.err.Render(row)
		case i == 0 && head != "" && strings.HasPrefix(row, head):
			nick := st.nick(e.from)
			if e.kind == entryAction {
				nick = "* " + nick
			}
			row = nick + row[len(head):]
		}
		if i == 0 {
			row = st.dim.Render(e.ts.Local().Format("15:04")) + " " + row
		} else {
			row = strings.Repeat(" ", stampWidth) + row
		}
		rows[i] = pad(row, width) // once here, not on every frame
	}
	return rows
}

// totalRows is the height of r's scrollback, its top line included.
func (m *model) totalRows(r *room) int {
	n := 1
	for _, e := range r.entries {
		n += len(e.rowsAt(r.width, m.st))
	}
	return n
}

// topLine is the scrollback's first row: what is above it.
func (m *model) topLine(r *room) string {
	switch {
	case r == m.status:
		return m.st.dim.Render("parley: /join a room, /help for help")
	case r.historyRef != "":
		return m.st.dim.Render("… loading older messages")
	case !r.more:
		return m.st.dim.Render("— beginning of #" + r.name + " —")
	}
	return m.st.dim.Render("↑ Page Up for older messages")
}

// scrollback draws the last h rows of r above its offset, bottom-aligned.
func (m *model) scrollback(r *room, w, h int) []string {
	need := r.offset + h
	var rev []string // rows from the bottom up
	for i := len(r.entries) - 1; i >= 0 && len(rev) < need; i-- {
		rows := r.entries[i].rowsAt(w, m.st)
		for j := len(rows) - 1; j >= 0; j-- {
			rev = append(rev, rows[j])
		}
	}
	if len(rev) < need {
		rev = append(rev, pad(m.topLine(r), w))
	}
	if r.offset > len(rev)-h {
		r.offset = max(len(rev)-h, 0)
	}
	out := make([]string, h)
	for i := range out {
		k := r.offset + h - 1 - i
		if k < len(rev) {
			out[i] = rev[k]
		} else {
			out[i] = strings.Repeat(" ", w)
		}
	}
	return out
}

func (m *model) roomsColumn(h int) []string {
	w := roomsWidth - 1
	out := make([]string, h)
	out[0] = m.st.bold.Render(pad("rooms", w))
	for i, r := range m.rooms {
		if i+1 >= h {
			break
		}
		label := fmt.Sprintf(" %d #%s", i+1, r.name)
		if i >= 9 {
			label = "   #" + r.name
		}
		tail := ""
		if r.unread > 0 {
			tail = fmt.Sprintf(" (%d)", r.unread)
		}
		label = truncate(label, w-len(tail)) + tail
		if i == m.cur {
			label = m.st.current.Render(pad(label, w))
		} else if r.unread > 0 {
			label = m.st.bold.Render(label)
		}
		out[i+1] = label
	}
	for i := range out {
		out[i] = pad(out[i], w)
	}
	return out
}

func (m *model) membersColumn(h int) []string {
	w := membersWidth - 1
	out := make([]string, h)
	r := m.current()
	if r != nil {
		out[0] = m.st.bold.Render(fmt.Sprintf("members (%d)", len(r.members)))
		for i, n := range r.members {
			if i+1 >= h {
				break
			}
			if i+2 == h && len(r.members) > h-1 {
				out[i+1] = m.st.dim.Render(fmt.Sprintf("+%d more", len(r.members)-i))
				break
			}
			out[i+1] = " " + m.st.nick(truncate(n, w-1))
		}
	}
	for i := range out {
		out[i] = pad(out[i], w)
	}
	return out
}

// statusLine says whether we are connected, to what, as whom, and where.
func (m *model) statusLine() string {
	var state string
	switch m.state {
	case client.StateConnected:
		state = m.st.statusOK.Render(" ● connected ")
	case client.StateReconnecting:
		s := fmt.Sprintf(" ◌ reconnecting (attempt %d) ", m.attempt)
		if m.lost != nil {
			s = fmt.Sprintf(" ◌ reconnecting (attempt %d: %s) ", m.attempt, clean(m.lost.Error()))
		}
		state = m.st.statusBad.Render(s)
	default:
		state = m.st.statusBad.Render(" ✕ closed ")
	}
	// What matters most first: a narrow terminal cuts the end.
	var parts []string
	if r := m.current(); r != nil {
		parts = append(parts, "#"+r.name)
	} else {
		parts = append(parts, "no room")
	}
	parts = append(parts, "nick "+m.nick)
	if !m.showRooms() {
		for i, r := range m.rooms {
			if r.unread > 0 && i != m.cur {
				parts = append(parts, fmt.Sprintf("#%s (%d)", r.name, r.unread))
			}
		}
	}
	if r := m.shown(); r.offset > 0 {
		parts = append(parts, "scrolled up: Page Down")
	}
	parts = append(parts, clean(m.url))
	rest := " " + strings.Join(parts, " │ ") + " "
	return state + m.st.status.Render(pad(rest, max(m.width-ansi.StringWidth(state), 0)))
}

// View draws the screen.
func (m *model) View() tea.View {
	if m.width <= 0 || m.height <= 0 {
		v := tea.NewView("")
		v.AltScreen = true
		return v
	}
	h := m.bodyHeight()
	body := m.scrollback(m.shown(), m.bodyWidth(), h)
	var left, right []string
	if m.showRooms() {
		left = m.roomsColumn(h)
	}
	if m.showMembers() {
		right = m.membersColumn(h)
	}
	sep := m.st.dim.Render("│")
	var b strings.Builder
	for i := range h {
		if left != nil {
			b.WriteString(left[i])
			b.WriteString(sep)
		}
		b.WriteString(body[i])
		if right != nil {
			b.WriteString(sep)
			b.WriteString(right[i])
		}
		b.WriteByte('\n')
	}
	b.WriteString(m.statusLine())
	b.WriteByte('\n')
	b.WriteString(m.input.View())
	v := tea.NewView(b.String())
	v.AltScreen = true
	v.WindowTitle = "parley"
	if r := m.current(); r != nil {
		v.WindowTitle = "parley #" + r.name
	}
	if c := m.input.Cursor(); c != nil {
		c.Y = m.height - 1
		v.Cursor = c
	}
	return v
}
