package tui

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/charmbracelet/x/ansi"

	"parley/internal/client"
	"parley/internal/parleytest"
	"parley/internal/server"
)

// terminal is a tmux server with one 120x40 window running sh, on its own
// socket, killed when the test ends.
type terminal struct {
	t    *testing.T
	sock string
}

const (
	termWidth, termHeight = 120, 40
	screenTimeout         = 20 * time.Second
)

func newTerminal(t *testing.T) *terminal {
	t.Helper()
	if _, err := exec.LookPath("tmux"); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("tmux is not installed (apt-get install tmux): %v", err)
		}
		t.Skip("tmux is not installed: apt-get install tmux")
	}
	name := regexp.MustCompile(`[^A-Za-z0-9]+`).ReplaceAllString(t.Name(), "-")
	tm := &terminal{t: t, sock: fmt.Sprintf("parley-tui-%d-%s", os.Getpid(), name)}
	t.Cleanup(func() { exec.Command("tmux", "-L", tm.sock, "kill-server").Run() })
	tm.tmux("-f", "/dev/null", "new-session", "-d", "-x", fmt.Sprint(termWidth), "-y", fmt.Sprint(termHeight),
		"-s", "t", "-e", "TERM=xterm-256color", "sh")
	// dash ignores PS1 from the environment when run as root.
	tm.typeLine("PS1='ready$ '")
	tm.waitText("ready$ ")
	return tm
}

func (tm *terminal) tmux(args ...string) string {
	tm.t.Helper()
	out, err := exec.Command("tmux", append([]string{"-L", tm.sock}, args...)...).CombinedOutput()
	if err != nil {
		tm.t.Fatalf("tmux %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// keys sends tmux key names (Enter, C-c, PPage, ...).
func (tm *terminal) keys(keys ...string) {
	tm.t.Helper()
	tm.tmux(append([]string{"send-keys", "-t", "t"}, keys...)...)
}

// typeLine types text literally, then Enter.
func (tm *terminal) typeLine(text string) {
	tm.t.Helper()
	tm.tmux("send-keys", "-t", "t", "-l", text)
	tm.keys("Enter")
}

func (tm *terminal) screen() string {
	tm.t.Helper()
	return tm.tmux("capture-pane", "-p", "-t", "t")
}

// waitFor polls the screen until ok, or fails the test with the last
// screen after screenTimeout.
func (tm *terminal) waitFor(what string, ok func(screen string) bool) string {
	tm.t.Helper()
	deadline := time.Now().Add(screenTimeout)
	tick := time.NewTicker(20 * time.Millisecond)
	defer tick.Stop()
	for {
		s := tm.screen()
		if ok(s) {
			return s
		}
		if time.Now().After(deadline) {
			tm.t.Fatalf("waited %v for %s; the screen:\n%s", screenTimeout, what, s)
		}
		<-tick.C
	}
}

func (tm *terminal) waitText(texts ...string) string {
	tm.t.Helper()
	return tm.waitFor(fmt.Sprintf("%q", texts), func(s string) bool {
		for _, text := range texts {
			if !strings.Contains(s, text) {
				return false
			}
		}
		return true
	})
}

// startChat runs the chat (this test binary, see TestMain) in the shell,
// noting the terminal's settings first: after it exits, the shell prints
// EXIT=code and TTY=restored when they are the same again.
func (tm *terminal) startChat(url, nick string, rooms ...string) {
	tm.t.Helper()
	exe, err := os.Executable()
	if err != nil {
		tm.t.Fatal(err)
	}
	tm.typeLine(fmt.Sprintf(`S=$(stty -g); PARLEY_TUI_CHILD=1 PARLEY_TUI_URL=%s PARLEY_TUI_NICK=%s PARLEY_TUI_ROOMS=%s %s; echo EXIT=$?; [ "$(stty -g)" = "$S" ] && echo TTY=restored`,
		url, nick, strings.Join(rooms, ","), exe))
	tm.waitText("● connected", "#"+rooms[0]+">", "members (")
}

// waitExit waits for the chat to end with 0 and the terminal as it was.
func (tm *terminal) waitExit() {
	tm.t.Helper()
	exited := regexp.MustCompile(`EXIT=\d+`)
	s := tm.waitFor("the chat to exit", exited.MatchString)
	if exited.FindString(s) != "EXIT=0" {
		tm.t.Fatalf("the chat did not exit with 0:\n%s", s)
	}
	tm.waitText("TTY=restored")
}

// dial connects another user, who reads its events until the test ends.
func dial(t *testing.T, url, nick string, rooms ...string) *client.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := client.Dial(ctx, url, client.Options{Nick: nick, Rooms: rooms, Reconnect: true, MaxInFlight: 1})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range c.Events() {
		}
	}()
	t.Cleanup(func() {
		c.Close()
		<-done
	})
	return c
}

// say sends lines to room and waits for their acks.
func say(t *testing.T, c *client.Client, room string, lines ...string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, l := range lines {
		if _, err := c.Send(ctx, room, l, false); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Flush(ctx); err != nil {
		t.Fatal(err)
	}
}

func TestTmuxChat(t *testing.T) {
	t.Parallel()
	n := parleytest.Start(t)
	g := newGate(t, n.Addr) // to read alice's close frame
	tm := newTerminal(t)
	tm.startChat(g.URL(), "alice", "lobby")
	tm.waitText("│ nick alice │")

	tm.typeLine("hello from alice")
	tm.waitText("alice: hello from alice")

	bob := dial(t, n.URL, "bob", "lobby")
	tm.waitText("bob joined #lobby", "members (2)")
	say(t, bob, "lobby", "hi alice, from bob")
	tm.waitText("bob: hi alice, from bob")

	// Someone's text cannot reach the terminal as escapes: the chat shows
	// them, and the screen is not cleared nor recoloured.
	say(t, bob, "lobby", "\x1b[2J\x1b[H\x1b]0;pwned\x07after the escapes")
	s := tm.waitText("after the escapes")
	if !strings.Contains(s, "alice: hello from alice") || !strings.Contains(s, "[2J") {
		t.Fatalf("the escapes acted on the terminal:\n%s", s)
	}

	// It follows the terminal's size: at 70 columns the members column
	// gives way, and the lines wrap anew.
	tm.tmux("resize-window", "-t", "t", "-x", "70", "-y", "20")
	s = tm.waitFor("the narrow layout", func(s string) bool {
		return !strings.Contains(s, "members (") && strings.Contains(s, "alice: hello from alice")
	})
	for i, line := range strings.Split(strings.TrimRight(s, "\n"), "\n") {
		if w := ansi.StringWidth(line); w > 70 || i >= 20 {
			t.Fatalf("line %d is %d wide on a 70x20 screen:\n%s", i, w, s)
		}
	}
	tm.tmux("resize-window", "-t", "t", "-x", fmt.Sprint(termWidth), "-y", fmt.Sprint(termHeight))
	tm.waitText("members (2)")

	// Up recalls the line sent.
	tm.keys("Up")
	tm.waitText("#lobby> hello from alice")
	tm.keys("C-u")

	tm.keys("C-c")
	tm.waitExit()
	if code := g.lastCloseCode(t); code != 1000 {
		t.Fatalf("alice closed with %d, want 1000", code)
	}
}

func TestTmuxNickTaken(t *testing.T) {
	t.Parallel()
	n := parleytest.Start(t)
	dial(t, n.URL, "alice", "lobby")
	tm := newTerminal(t)
	tm.startChat(n.URL, "alice", "lobby")
	tm.waitText(`nick "alice" is taken; you are a guest: choose another with /nick NAME`, "nick guest-")
	tm.typeLine("/nick alice")
	tm.waitText(`nick "alice" is taken; choose another with /nick NAME`)
	tm.typeLine("/nick alice2")
	tm.waitText("you are now known as alice2", "│ nick alice2 │")
	tm.typeLine("/quit")
	tm.waitExit()
}

func TestTmuxRooms(t *testing.T) {
	t.Parallel()
	n := parleytest.Start(t)
	bob := dial(t, n.URL, "bob", "lobby", "dev")
	tm := newTerminal(t)
	tm.startChat(n.URL, "alice", "lobby")

	tm.typeLine("/join dev")
	tm.waitText("#dev>", " 2 #dev")
	say(t, bob, "lobby", "lobby one", "lobby two")
	say(t, bob, "dev", "dev one")
	s := tm.waitText("bob: dev one", "#lobby (2)")
	if strings.Contains(s, "lobby one") {
		t.Fatalf("lobby's messages show in dev:\n%s", s)
	}

	tm.typeLine("/join lobby")
	s = tm.waitText("#lobby>", "bob: lobby one", "bob: lobby two")
	if strings.Contains(s, "dev one") || strings.Contains(s, "#lobby (") {
		t.Fatalf("after switching back to lobby:\n%s", s)
	}
	say(t, bob, "dev", "dev two")
	tm.waitText("#dev (1)")
	tm.keys("C-n")
	s = tm.waitText("#dev>", "bob: dev one", "bob: dev two")
	if strings.Contains(s, "#dev (") {
		t.Fatalf("dev still counts unread messages:\n%s", s)
	}

	// A line typed right before /quit still goes out.
	tm.tmux("send-keys", "-t", "t", "-l", "last words")
	tm.keys("Enter")
	tm.tmux("send-keys", "-t", "t", "-l", "/quit")
	tm.keys("Enter")
	tm.waitExit()
	resp, err := http.Get(n.HTTP + "/api/rooms/dev/messages?limit=1")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var page struct{ Messages []struct{ From, Text string } }
	if err := json.NewDecoder(resp.Body).Decode(&page); err != nil {
		t.Fatal(err)
	}
	if len(page.Messages) != 1 || page.Messages[0].Text != "last words" || page.Messages[0].From != "alice" {
		t.Fatalf("the last message of dev is %+v, want alice's last words", page.Messages)
	}
}

func TestTmuxRestart(t *testing.T) {
	t.Parallel()
	n := parleytest.Start(t)
	// alice talks to the server through a gate, so that the test, not her
	// backoff, decides when she is back: the messages sent after the
	// restart are surely missed, and must come on resume, each once.
	g := newGate(t, n.Addr)
	tm := newTerminal(t)
	tm.startChat(g.URL(), "alice", "lobby")
	bob := dial(t, n.URL, "bob", "lobby")
	say(t, bob, "lobby", "before 1", "before 2", "before 3")
	tm.waitText("bob: before 3")

	g.setShut(true)
	n.Restart()
	tm.waitText("◌ reconnecting (attempt", "connection lost")
	var after []string
	for i := 1; i <= 5; i++ {
		after = append(after, fmt.Sprintf("after %d", i))
	}
	say(t, bob, "lobby", after...) // bob reconnects on his own; his sends wait for it
	if s := tm.screen(); strings.Contains(s, "after 1") {
		t.Fatalf("alice sees a message while disconnected:\n%s", s)
	}
	g.setShut(false)
	s := tm.waitText("● connected", "bob: after 5", "reconnected to")
	for _, m := range append([]string{"before 1", "before 2", "before 3"}, after...) {
		if c := strings.Count(s, "bob: "+m+" "); c != 1 {
			t.Errorf("%q is on the screen %d times, want once:\n%s", m, c, s)
		}
	}

	tm.keys("C-d")
	tm.waitExit()
}

func TestTmuxPageUpLoadsHistory(t *testing.T) {
	t.Parallel()
	n := parleytest.Start(t, parleytest.WithConfig(func(c *server.Config) { c.Rate, c.Burst = 1000, 1000 }))
	bob := dial(t, n.URL, "bob", "lobby")
	var lines []string
	for i := 1; i <= 120; i++ {
		lines = append(lines, fmt.Sprintf("old message %03d", i))
	}
	say(t, bob, "lobby", lines...)
	tm := newTerminal(t)
	tm.startChat(n.URL, "alice", "lobby")
	s := tm.waitText("old message 120")
	if strings.Contains(s, "old message 001") {
		t.Fatalf("the first message shows before paging back:\n%s", s)
	}
	// Page up until the beginning: the pages before the join's history
	// come from the server.
	deadline := time.Now().Add(screenTimeout)
	for !strings.Contains(s, "beginning of #lobby") {
		if time.Now().After(deadline) {
			t.Fatalf("paged up for %v without reaching the beginning:\n%s", screenTimeout, s)
		}
		tm.keys("PPage")
		s = tm.screen()
	}
	tm.waitText("old message 001", "beginning of #lobby")
	tm.keys("C-c")
	tm.waitExit()
}
