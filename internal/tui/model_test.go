package tui

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	tea "charm.land/bubbletea/v2"
	"github.com/charmbracelet/x/ansi"

	"parley/internal/client"
	"parley/internal/protocol"
)

// recorder is a poster that keeps what the model posts.
type recorder struct {
	cmds []protocol.Command
	refs []string
}

func (r *recorder) Post(_ context.Context, cmd protocol.Command) (string, error) {
	ref := fmt.Sprintf("r%d", len(r.cmds)+1)
	r.cmds = append(r.cmds, cmd)
	r.refs = append(r.refs, ref)
	return ref, nil
}

// last returns the last command posted and its ref.
func (r *recorder) last(t *testing.T) (protocol.Command, string) {
	t.Helper()
	if len(r.cmds) == 0 {
		t.Fatal("nothing was posted")
	}
	return r.cmds[len(r.cmds)-1], r.refs[len(r.refs)-1]
}

// newTestModel is a model as Run makes it, 120x40, in rooms.
func newTestModel(t *testing.T, rooms ...string) (*model, *recorder) {
	t.Helper()
	rec := &recorder{}
	m := newModel(rec, "ws://127.0.0.1:1/", "alice", rooms)
	m.Init()
	m.Update(tea.WindowSizeMsg{Width: 120, Height: 40})
	return m, rec
}

func press(m *model, keys ...tea.KeyPressMsg) tea.Cmd {
	var cmd tea.Cmd
	for _, k := range keys {
		_, cmd = m.Update(k)
	}
	return cmd
}

func typeLine(m *model, line string) tea.Cmd {
	for _, r := range line {
		press(m, tea.KeyPressMsg{Code: r, Text: string(r)})
	}
	return press(m, tea.KeyPressMsg{Code: tea.KeyEnter})
}

func events(m *model, evs ...protocol.Event) {
	batch := make(eventsMsg, len(evs))
	for i, ev := range evs {
		batch[i] = client.Event{Event: ev}
	}
	m.Update(batch)
}

func msg(room string, id uint64, from, text string) protocol.Event {
	return protocol.Event{Type: protocol.EvMessage, Room: room, ID: id, From: from, Text: text, TS: time.Now()}
}

// screen is the view as text, without styles.
func screen(m *model) string { return ansi.Strip(m.View().Content) }

var (
	keyUp    = tea.KeyPressMsg{Code: tea.KeyUp}
	keyDown  = tea.KeyPressMsg{Code: tea.KeyDown}
	keyPgUp  = tea.KeyPressMsg{Code: tea.KeyPgUp}
	keyPgDn  = tea.KeyPressMsg{Code: tea.KeyPgDown}
	keyCtrlN = tea.KeyPressMsg{Code: 'n', Mod: tea.ModCtrl}
	keyCtrlP = tea.KeyPressMsg{Code: 'p', Mod: tea.ModCtrl}
)

func TestInputHistory(t *testing.T) {
	t.Parallel()
	var h inputHistory
	if _, ok := h.prev("x"); ok {
		t.Fatal("prev of an empty history")
	}
	h.add("one")
	h.add("two")
	h.add("two") // kept once
	h.add("three")
	var got []string
	for {
		line, ok := h.prev("draft")
		if !ok {
			break
		}
		got = append(got, line)
	}
	if want := "three two one"; strings.Join(got, " ") != want {
		t.Fatalf("up, up, ...: %q, want %q", got, want)
	}
	got = got[:0]
	for {
		line, ok := h.next()
		if !ok {
			break
		}
		got = append(got, line)
	}
	if want := "two three draft"; strings.Join(got, " ") != want {
		t.Fatalf("down, down, ...: %q, want %q (the draft last)", got, want)
	}

	h = inputHistory{max: 3}
	for i := range 10 {
		h.add(fmt.Sprint(i))
	}
	if len(h.lines) != 3 || h.lines[0] != "7" {
		t.Fatalf("history of max 3 holds %q", h.lines)
	}
}

func TestInputHistoryKeys(t *testing.T) {
	t.Parallel()
	m, _ := newTestModel(t, "lobby")
	typeLine(m, "first")
	typeLine(m, "second")
	for _, r := range "draft" {
		press(m, tea.KeyPressMsg{Code: r, Text: string(r)})
	}
	press(m, keyUp)
	if v := m.input.Value(); v != "second" {
		t.Fatalf("up: %q, want second", v)
	}
	press(m, keyUp, keyUp) // past the oldest stays there
	if v := m.input.Value(); v != "first" {
		t.Fatalf("up, up, up: %q, want first", v)
	}
	press(m, keyDown, keyDown)
	if v := m.input.Value(); v != "draft" {
		t.Fatalf("back down: %q, want the draft", v)
	}
	press(m, keyUp)
	press(m, tea.KeyPressMsg{Code: tea.KeyEnter}) // send a recalled line again
	if v := m.input.Value(); v != "" {
		t.Fatalf("after enter the input holds %q", v)
	}
}

func TestCommands(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		line string
		want *protocol.Command // nil: nothing posted
		quit bool
		show string // on the screen after
	}{
		{line: "hello there", want: &protocol.Command{Type: protocol.CmdSend, Room: "lobby", Text: "hello there"}},
		{line: "/me waves", want: &protocol.Command{Type: protocol.CmdSend, Room: "lobby", Text: "waves", Action: true}},
		{line: "//etc/passwd is a path", want: &protocol.Command{Type: protocol.CmdSend, Room: "lobby", Text: "/etc/passwd is a path"}},
		{line: "/join dev", want: &protocol.Command{Type: protocol.CmdJoin, Room: "dev"}, show: "#dev>"},
		{line: "/join Lobby", show: "#lobby>"}, // joined already: a switch, nothing sent
		{line: "/leave", want: &protocol.Command{Type: protocol.CmdLeave, Room: "lobby"}, show: "you left #lobby"},
		{line: "/leave nowhere", show: "you are not in #nowhere"},
		{line: "/nick bob", want: &protocol.Command{Type: protocol.CmdNick, Nick: "bob"}},
		{line: "/who", want: &protocol.Command{Type: protocol.CmdWho, Room: "lobby"}},
		{line: "/who dev", want: &protocol.Command{Type: protocol.CmdWho, Room: "dev"}},
		{line: "/rooms", want: &protocol.Command{Type: protocol.CmdRooms}},
		{line: "/help", show: "/quit"},
		{line: "/quit", quit: true},
		{line: "/QUIT ", quit: true},
		{line: "/frobnicate", show: "! error:"},
		{line: "/join bad!name", show: "! error:"},
		{line: "   "},
	} {
		m, rec := newTestModel(t, "lobby")
		before := len(rec.cmds)
		cmd := typeLine(m, tc.line)
		switch {
		case tc.want == nil && len(rec.cmds) != before:
			t.Errorf("%q posted %+v, want nothing", tc.line, rec.cmds[before:])
		case tc.want != nil && len(rec.cmds) != before+1:
			t.Errorf("%q posted %d commands, want 1", tc.line, len(rec.cmds)-before)
		case tc.want != nil:
			if got, _ := rec.last(t); fmt.Sprint(got) != fmt.Sprint(*tc.want) {
				t.Errorf("%q posted %+v, want %+v", tc.line, got, *tc.want)
			}
		}
		if quit := cmd != nil && fmt.Sprint(cmd()) == fmt.Sprint(tea.Quit()); quit != tc.quit {
			t.Errorf("%q: quit = %v, want %v", tc.line, quit, tc.quit)
		}
		if tc.show != "" && !strings.Contains(screen(m), tc.show) {
			t.Errorf("%q: the screen does not show %q:\n%s", tc.line, tc.show, screen(m))
		}
	}
}

func TestQuitKeys(t *testing.T) {
	t.Parallel()
	for _, k := range []tea.KeyPressMsg{{Code: 'c', Mod: tea.ModCtrl}, {Code: 'd', Mod: tea.ModCtrl}} {
		m, _ := newTestModel(t, "lobby")
		cmd := press(m, k)
		if cmd == nil || fmt.Sprint(cmd()) != fmt.Sprint(tea.Quit()) {
			t.Errorf("%s does not quit", k)
		}
	}
}

func TestRoomSwitching(t *testing.T) {
	t.Parallel()
	m, _ := newTestModel(t, "lobby", "dev", "ops")
	if r := m.current(); r.name != "lobby" {
		t.Fatalf("starts in %s, want the first room", r.name)
	}
	steps := []struct {
		key  tea.KeyPressMsg
		want string
	}{
		{keyCtrlN, "dev"},
		{keyCtrlN, "ops"},
		{keyCtrlN, "lobby"}, // wraps
		{keyCtrlP, "ops"},
		{tea.KeyPressMsg{Code: '2', Mod: tea.ModAlt}, "dev"},
		{tea.KeyPressMsg{Code: '1', Mod: tea.ModAlt}, "lobby"},
		{tea.KeyPressMsg{Code: '9', Mod: tea.ModAlt}, "lobby"}, // no 9th room
	}
	for _, s := range steps {
		press(m, s.key)
		if got := m.current().name; got != s.want {
			t.Fatalf("after %s the room is %s, want %s", s.key, got, s.want)
		}
		if !strings.Contains(screen(m), "#"+s.want+">") {
			t.Fatalf("after %s the prompt is not #%s>:\n%s", s.key, s.want, screen(m))
		}
	}
	// Each room shows its own scrollback.
	events(m, msg("lobby", 1, "bob", "in the lobby"), msg("dev", 1, "bob", "in dev"))
	if s := screen(m); !strings.Contains(s, "in the lobby") || strings.Contains(s, "in dev") {
		t.Fatalf("lobby shows:\n%s", s)
	}
	typeLine(m, "/join dev")
	if s := screen(m); strings.Contains(s, "in the lobby") || !strings.Contains(s, "in dev") {
		t.Fatalf("dev shows:\n%s", s)
	}
}

func TestUnreadCounts(t *testing.T) {
	t.Parallel()
	m, rec := newTestModel(t, "lobby", "dev")
	dev := m.rooms[1]
	// Init asked who for both rooms; until dev's answer, its messages are
	// the history of the join: not unread.
	events(m, protocol.Event{Type: protocol.EvMessage, Room: "dev", ID: 1, From: "bob", Text: "old", History: true})
	if dev.unread != 0 {
		t.Fatalf("join history counted as unread: %d", dev.unread)
	}
	events(m, protocol.Event{Type: protocol.EvWho, Room: "dev", Members: []string{"alice", "bob"}, Ref: dev.whoRef})
	events(m, msg("dev", 2, "bob", "new 1"), msg("dev", 3, "bob", "new 2"), msg("lobby", 1, "bob", "here"))
	if dev.unread != 2 || m.rooms[0].unread != 0 {
		t.Fatalf("unread dev %d lobby %d, want 2 and 0 (the current room has none)", dev.unread, m.rooms[0].unread)
	}
	if !strings.Contains(screen(m), "#dev (2)") {
		t.Fatalf("the rooms column does not show #dev (2):\n%s", screen(m))
	}
	// Replayed after a reconnect: news.
	events(m, protocol.Event{Type: protocol.EvMessage, Room: "dev", ID: 4, From: "bob", Text: "missed", History: true})
	// The same message again: shown once, counted once.
	events(m, msg("dev", 3, "bob", "new 2"))
	if dev.unread != 3 {
		t.Fatalf("unread dev %d, want 3", dev.unread)
	}
	press(m, keyCtrlN)
	if dev.unread != 0 || strings.Contains(screen(m), "#dev (") {
		t.Fatalf("switching to dev leaves unread %d:\n%s", dev.unread, screen(m))
	}
	if n := strings.Count(screen(m), "new 2"); n != 1 {
		t.Fatalf("\"new 2\" is shown %d times", n)
	}
	_ = rec
}

func TestMembersRefresh(t *testing.T) {
	t.Parallel()
	m, rec := newTestModel(t, "lobby")
	r := m.current()
	first := r.whoRef
	if first == "" {
		t.Fatal("no who was asked for on start")
	}
	events(m, protocol.Event{Type: protocol.EvWho, Room: "lobby", Members: []string{"alice"}, Ref: first})
	events(m, protocol.Event{Type: protocol.EvJoin, Room: "lobby", Nick: "bob"})
	cmd, ref := rec.last(t)
	if cmd.Type != protocol.CmdWho || cmd.Room != "lobby" || r.whoRef != ref {
		t.Fatalf("a join did not ask who: %+v", cmd)
	}
	// A second change while the who is out asks again after it, once.
	n := len(rec.cmds)
	events(m, protocol.Event{Type: protocol.EvNick, Room: "lobby", Old: "bob", Nick: "bobby"},
		protocol.Event{Type: protocol.EvLeave, Room: "lobby", Nick: "carol"})
	if len(rec.cmds) != n {
		t.Fatalf("asked who %d more times while one was out", len(rec.cmds)-n)
	}
	events(m, protocol.Event{Type: protocol.EvWho, Room: "lobby", Members: []string{"alice", "bobby"}, Ref: ref})
	if len(rec.cmds) != n+1 {
		t.Fatalf("did not ask again after the answer")
	}
	s := screen(m)
	for _, want := range []string{"members (2)", "bobby", "bob joined #lobby", "bob is now known as bobby", "carol left #lobby"} {
		if !strings.Contains(s, want) {
			t.Errorf("the screen does not show %q:\n%s", want, s)
		}
	}
}

func TestControlCharactersAreNotDrawn(t *testing.T) {
	t.Parallel()
	m, _ := newTestModel(t, "lobby")
	evil := "\x1b[2J\x1b]0;pwned\x07\x1b[44mblue\r\x9b1m"
	events(m,
		msg("lobby", 1, "mallory", evil),
		protocol.Event{Type: protocol.EvJoin, Room: "lobby", Nick: "eve\x1b[5m"},
		protocol.Event{Type: protocol.EvWho, Room: "lobby", Members: []string{"x\x1b[8m"}, Ref: m.current().whoRef},
		protocol.Event{Type: protocol.EvError, Code: "internal", Message: "oops\x1b[?1049l"},
	)
	v := m.View().Content
	for _, bad := range []string{"\x1b[2J", "\x1b]0;", "\x07", "\x1b[44m", "\r", "\x9b", "\x1b[5m", "\x1b[8m", "\x1b[?1049l"} {
		if strings.Contains(v, bad) {
			t.Errorf("the view holds %q", bad)
		}
	}
	if s := ansi.Strip(v); !strings.Contains(s, "\uFFFD[2J\uFFFD]0;pwned") {
		t.Errorf("the message is not shown with its escapes made visible:\n%s", s)
	}
}

func TestScrollLoadsOlderHistory(t *testing.T) {
	t.Parallel()
	m, rec := newTestModel(t, "lobby")
	r := m.current()
	var evs []protocol.Event
	for id := uint64(51); id <= 150; id++ {
		ev := msg("lobby", id, "bob", fmt.Sprintf("message %03d", id))
		ev.History = true
		evs = append(evs, ev)
	}
	events(m, evs...)
	if s := screen(m); !strings.Contains(s, "message 150") || strings.Contains(s, "message 051") {
		t.Fatalf("the bottom is not shown:\n%s", s)
	}
	press(m, keyPgUp)
	if len(rec.cmds) != 1 { // the who of Init
		t.Fatalf("one page up, not at the top, asked the server: %+v", rec.cmds[1:])
	}
	press(m, keyPgUp)
	cmd, ref := rec.last(t)
	if cmd.Type != protocol.CmdHistory || cmd.Room != "lobby" || cmd.Before != 51 {
		t.Fatalf("at the top, posted %+v; want history of lobby before 51", cmd)
	}
	if !strings.Contains(screen(m), "loading older messages") {
		t.Fatalf("no loading line:\n%s", screen(m))
	}
	press(m, keyPgUp) // while loading: no second request
	if c, _ := rec.last(t); c.Type == protocol.CmdHistory && len(rec.cmds) > 2 {
		t.Fatalf("asked for the same page twice")
	}
	var page []protocol.Event
	for id := uint64(1); id <= 50; id++ {
		page = append(page, msg("lobby", id, "bob", fmt.Sprintf("message %03d", id)))
	}
	events(m, protocol.Event{Type: protocol.EvHistory, Room: "lobby", Ref: ref, Messages: page, More: false})
	for range 8 {
		press(m, keyPgUp)
	}
	s := screen(m)
	if !strings.Contains(s, "message 001") || !strings.Contains(s, "beginning of #lobby") {
		t.Fatalf("the top is not shown:\n%s", s)
	}
	if len(rec.cmds) != 2 {
		t.Fatalf("asked again with nothing more: %+v", rec.cmds[2:])
	}
	for i := 1; i < len(r.entries); i++ {
		if r.entries[i].id != r.entries[i-1].id+1 {
			t.Fatalf("entries out of order at %d: %d after %d", i, r.entries[i].id, r.entries[i-1].id)
		}
	}
	for range 20 {
		press(m, keyPgDn)
	}
	if r.offset != 0 || !strings.Contains(screen(m), "message 150") {
		t.Fatalf("page down does not come back to the bottom (offset %d)", r.offset)
	}
}

func TestNickTaken(t *testing.T) {
	t.Parallel()
	m, rec := newTestModel(t, "lobby")
	typeLine(m, "/nick bob")
	_, ref := rec.last(t)
	events(m, protocol.Event{Type: protocol.EvError, Code: protocol.CodeNickTaken, Message: `nick "bob" is taken`, Ref: ref})
	if s := screen(m); !strings.Contains(s, `nick "bob" is taken; choose another with /nick NAME`) || !strings.Contains(s, "nick alice") {
		t.Fatalf("the screen:\n%s", s)
	}
	typeLine(m, "/nick carol")
	_, ref = rec.last(t)
	events(m, protocol.Event{Type: protocol.EvAck, Ref: ref})
	if !strings.Contains(screen(m), "nick carol") {
		t.Fatalf("the status line does not show the new nick:\n%s", screen(m))
	}
}

func TestConnectionState(t *testing.T) {
	t.Parallel()
	m, rec := newTestModel(t, "lobby")
	if !strings.Contains(screen(m), "connected") {
		t.Fatalf("no connected status:\n%s", screen(m))
	}
	m.Update(eventsMsg{{Event: protocol.Event{Type: client.EvState}, State: client.StateReconnecting, Attempt: 1, Err: fmt.Errorf("server going away")}})
	if s := screen(m); !strings.Contains(s, "reconnecting (attempt 1") || !strings.Contains(s, "connection lost") {
		t.Fatalf("no reconnecting status:\n%s", s)
	}
	n := len(rec.cmds)
	m.Update(eventsMsg{{Event: protocol.Event{Type: client.EvState}, State: client.StateConnected}})
	if s := screen(m); strings.Contains(s, "reconnecting (") || !strings.Contains(s, "reconnected") {
		t.Fatalf("status after reconnecting:\n%s", s)
	}
	if len(rec.cmds) != n && rec.cmds[n].Type != protocol.CmdWho {
		t.Fatalf("members were not asked again after the reconnect")
	}
	_, cmd := m.Update(eventsMsg{{Event: protocol.Event{Type: client.EvState}, State: client.StateClosed, Err: fmt.Errorf("gone")}})
	if cmd == nil || m.err == nil {
		t.Fatal("the end of the connection does not end the UI with its error")
	}
}

func TestResize(t *testing.T) {
	t.Parallel()
	m, _ := newTestModel(t, "lobby")
	long := strings.Repeat("word ", 40)
	events(m, msg("lobby", 1, "bob", long))
	for _, size := range [][2]int{{120, 40}, {80, 24}, {50, 10}, {200, 60}} {
		m.Update(tea.WindowSizeMsg{Width: size[0], Height: size[1]})
		lines := strings.Split(screen(m), "\n")
		if len(lines) != size[1] {
			t.Errorf("%dx%d: %d lines", size[0], size[1], len(lines))
		}
		for i, l := range lines {
			if w := ansi.StringWidth(l); w > size[0] {
				t.Errorf("%dx%d: line %d is %d wide: %q", size[0], size[1], i, w, l)
			}
		}
	}
}

// BenchmarkView draws the screen of a room holding 10,000 messages, after
// a new message (the rows of the others are cached).
func BenchmarkView(b *testing.B) {
	rec := &recorder{}
	m := newModel(rec, "ws://127.0.0.1:1/", "alice", []string{"lobby"})
	m.Update(tea.WindowSizeMsg{Width: 120, Height: 40})
	batch := make(eventsMsg, 0, 10000)
	for id := uint64(1); id <= 10000; id++ {
		batch = append(batch, client.Event{Event: msg("lobby", id, fmt.Sprintf("user%d", id%50), strings.Repeat("some words ", 1+int(id%12)))})
	}
	m.Update(batch)
	b.ReportAllocs()
	id := uint64(10000)
	for b.Loop() {
		id++
		m.Update(eventsMsg{{Event: msg("lobby", id, "bob", "one more message")}})
		_ = m.View()
	}
}

// BenchmarkEvents applies a batch of 512 messages (the pump's largest) to
// a room that is not shown.
func BenchmarkEvents(b *testing.B) {
	rec := &recorder{}
	m := newModel(rec, "ws://127.0.0.1:1/", "alice", []string{"lobby", "dev"})
	m.Update(tea.WindowSizeMsg{Width: 120, Height: 40})
	b.ReportAllocs()
	id := uint64(0)
	for b.Loop() {
		batch := make(eventsMsg, maxBatch)
		for i := range batch {
			id++
			batch[i] = client.Event{Event: msg("dev", id, "bob", "a message of some length")}
		}
		m.Update(batch)
	}
}
