package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
	"go.uber.org/goleak"

	"parley/internal/broker"
	"parley/internal/client"
	"parley/internal/parleytest"
	"parley/internal/protocol"
	"parley/internal/server"
)

// parleyBin is the parley binary, built once by TestMain: chat tests run it
// as a real process with real pipes.
var parleyBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "parley-cmd-test")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	parleyBin = filepath.Join(dir, "parley")
	if out, err := exec.Command("go", "build", "-o", parleyBin, ".").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "go build: %v\n%s", err, out)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintf(os.Stderr, "goleak: %v\n", err)
			code = 1
		}
	}
	os.RemoveAll(dir)
	os.Exit(code)
}

// chatProc is a running "parley chat" process.
type chatProc struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	mu     sync.Mutex
	out    []string // stdout lines so far
	change chan struct{}
	stderr bytes.Buffer
	copied sync.WaitGroup
}

// chatEnv is the process environment: no PARLEY_* from the test's own
// environment, and UTC so timestamps are predictable.
func chatEnv(extra ...string) []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "PARLEY_") && !strings.HasPrefix(kv, "TZ=") {
			env = append(env, kv)
		}
	}
	return append(append(env, "TZ=UTC"), extra...)
}

// startChat starts parley chat with args; stdin stays open until closeIn.
func startChat(t *testing.T, env []string, args ...string) *chatProc {
	t.Helper()
	p := &chatProc{cmd: exec.Command(parleyBin, append([]string{"chat"}, args...)...), change: make(chan struct{})}
	p.cmd.Env = env
	p.cmd.Stderr = &p.stderr
	var err error
	if p.stdin, err = p.cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	stdout, err := p.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p.copied.Add(1)
	go func() {
		defer p.copied.Done()
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			p.mu.Lock()
			p.out = append(p.out, sc.Text())
			close(p.change)
			p.change = make(chan struct{})
			p.mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		p.stdin.Close()
		p.cmd.Process.Kill()
		p.copied.Wait()
		p.cmd.Wait()
	})
	return p
}

// waitLine waits for a stdout line that matches re.
func (p *chatProc) waitLine(t *testing.T, re string) string {
	t.Helper()
	rx := regexp.MustCompile(re)
	deadline := time.After(20 * time.Second)
	for {
		p.mu.Lock()
		for _, l := range p.out {
			if rx.MatchString(l) {
				p.mu.Unlock()
				return l
			}
		}
		ch := p.change
		p.mu.Unlock()
		select {
		case <-ch:
		case <-deadline:
			p.mu.Lock()
			defer p.mu.Unlock()
			t.Fatalf("no stdout line matches %q; stdout:\n%s", re, strings.Join(p.out, "\n"))
		}
	}
}

// finish closes stdin and waits for the exit; it returns the exit code.
func (p *chatProc) finish(t *testing.T) int {
	t.Helper()
	p.stdin.Close()
	done := make(chan error, 1)
	go func() {
		p.copied.Wait()
		done <- p.cmd.Wait()
	}()
	select {
	case err := <-done:
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return ee.ExitCode()
		}
		if err != nil {
			t.Fatal(err)
		}
		return 0
	case <-time.After(60 * time.Second):
		p.cmd.Process.Kill()
		t.Fatalf("parley chat did not exit; stderr:\n%s", &p.stderr)
		return -1
	}
}

// runChatProc runs parley chat to the end with stdin from in.
func runChatProc(t *testing.T, env []string, in string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, parleyBin, append([]string{"chat"}, args...)...)
	cmd.Env = env
	cmd.Stdin = strings.NewReader(in)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		code = ee.ExitCode()
	case err != nil:
		t.Fatal(err)
	}
	return o.String(), e.String(), code
}

func fastConfig(c *server.Config) {
	c.Rate = 2000
	c.Burst = 200
}

// watch joins room with an in-process client (nick "watcher", or
// "watcher-ROOM" for rooms other than lobby) and collects its messages.
type watcher struct {
	mu     sync.Mutex
	texts  []string // "from: text"
	change chan struct{}
	done   chan struct{}
}

func watch(t *testing.T, url, room string) *watcher {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	nick := "watcher"
	if room != "lobby" {
		nick += "-" + room
	}
	c, err := client.Dial(ctx, url, client.Options{Nick: nick, Rooms: []string{room}})
	if err != nil {
		t.Fatal(err)
	}
	w := &watcher{change: make(chan struct{}), done: make(chan struct{})}
	joined := make(chan struct{})
	go func() {
		defer close(w.done)
		acked := joined
		for ev := range c.Events() {
			if ev.Type == protocol.EvAck && acked != nil {
				close(acked)
				acked = nil
			}
			if ev.Type == protocol.EvMessage && !ev.History {
				w.mu.Lock()
				w.texts = append(w.texts, ev.From+": "+ev.Text)
				close(w.change)
				w.change = make(chan struct{})
				w.mu.Unlock()
			}
		}
	}()
	t.Cleanup(func() {
		c.Close()
		<-w.done
	})
	select {
	case <-joined:
	case <-ctx.Done():
		t.Fatal("watcher: no join ack")
	}
	return w
}

func (w *watcher) wait(t *testing.T, n int) []string {
	t.Helper()
	deadline := time.After(30 * time.Second)
	for {
		w.mu.Lock()
		got, ch := append([]string(nil), w.texts...), w.change
		w.mu.Unlock()
		if len(got) >= n {
			return got
		}
		select {
		case <-ch:
		case <-deadline:
			t.Fatalf("watcher got %d messages, want %d: %q", len(got), n, got)
		}
	}
}

func TestChatEchoHi(t *testing.T) {
	t.Parallel()
	n := parleytest.Start(t)
	w := watch(t, n.URL, "lobby")
	stdout, stderr, code := runChatProc(t, chatEnv(), "hi\n", "--nick", "alice", n.URL)
	if code != 0 || stderr != "" {
		t.Fatalf("exit %d, stderr %q", code, stderr)
	}
	if got := w.wait(t, 1); got[0] != "alice: hi" {
		t.Fatalf("watcher got %q", got)
	}
	// The output is complete at exit: the echo of our own line is in it.
	if !regexp.MustCompile(`(?m)^\[\d\d:\d\d:\d\d\] #lobby alice: hi$`).MatchString(stdout) {
		t.Fatalf("stdout has no echo of hi:\n%s", stdout)
	}
}

// TestChatSince: --since replays the first room after that id, and the
// replay is on stdout by the time the process exits.
func TestChatSince(t *testing.T) {
	t.Parallel()
	n := parleytest.Start(t)
	if _, stderr, code := runChatProc(t, chatEnv(), "m1\nm2\nm3\nm4\n", "--nick", "alice", "--room", "dev", n.URL); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	stdout, stderr, code := runChatProc(t, chatEnv(), "", "--room", "dev", "--since", "2", n.URL)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	var msgs []string
	for _, l := range strings.Split(stdout, "\n") {
		if m := regexp.MustCompile(`^\[\d\d:\d\d:\d\d\] #dev alice: (m\d)$`).FindStringSubmatch(l); m != nil {
			msgs = append(msgs, m[1])
		}
	}
	if strings.Join(msgs, ",") != "m3,m4" {
		t.Fatalf("--since 2 showed %q; stdout:\n%s", msgs, stdout)
	}
}

// TestChatFileInOrder: parley chat < lines.txt delivers every line, in
// order, and exits 0 only once each is acknowledged.
func TestChatFileInOrder(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		lines int
		fast  bool
		args  []string
	}{
		{"200 lines", 200, true, nil},
		// The server's default limits (10/s, burst 20): paced, not refused.
		{"40 lines at the default rate", 40, false, nil},
		// The text format has no acks: lines are paced to parley's default
		// limits, and the close handshake comes after the last one.
		{"30 lines in the text format", 30, false, []string{"--format", "text"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			var opts []parleytest.Option
			if tc.fast {
				opts = append(opts, parleytest.WithConfig(fastConfig))
			}
			n := parleytest.Start(t, opts...)
			w := watch(t, n.URL, "lobby")
			var in strings.Builder
			var want []string
			for i := 1; i <= tc.lines; i++ {
				fmt.Fprintf(&in, "line %03d of the file\n", i)
				want = append(want, fmt.Sprintf("bot: line %03d of the file", i))
			}
			file := filepath.Join(t.TempDir(), "lines.txt")
			if err := os.WriteFile(file, []byte(in.String()), 0o644); err != nil {
				t.Fatal(err)
			}
			f, err := os.Open(file)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			cmd := exec.Command(parleyBin, append([]string{"chat", "--nick", "bot", n.URL}, tc.args...)...)
			cmd.Env = chatEnv()
			cmd.Stdin = f
			var stderr bytes.Buffer
			cmd.Stderr = &stderr
			start := time.Now()
			if err := cmd.Run(); err != nil {
				t.Fatalf("%v; stderr:\n%s", err, &stderr)
			}
			t.Logf("%d lines delivered and acknowledged in %v", tc.lines, time.Since(start).Round(time.Millisecond))
			// Acknowledged means stored: the log holds them all, in order,
			// the moment the process has exited.
			page, err := n.Broker().Read(context.Background(), broker.Query{Room: "lobby", Limit: 500})
			if err != nil {
				t.Fatal(err)
			}
			var stored []string
			for _, m := range page.Messages {
				stored = append(stored, m.From+": "+m.Text)
			}
			if strings.Join(stored, "\n") != strings.Join(want, "\n") {
				t.Fatalf("the log holds %d lines:\n%s", len(stored), strings.Join(stored, "\n"))
			}
			if got := w.wait(t, tc.lines); strings.Join(got, "\n") != strings.Join(want, "\n") {
				t.Fatalf("the watcher got:\n%s", strings.Join(got, "\n"))
			}
		})
	}
}

// TestChatPlainOutput: a reader's stdout has one line per event in the
// documented format, and /commands work.
func TestChatPlainOutput(t *testing.T) {
	t.Parallel()
	n := parleytest.Start(t)
	reader := startChat(t, chatEnv(), "--nick", "reader", "--room", "lobby", "--room", "dev", n.URL)
	reader.waitLine(t, `^\[\d\d:\d\d:\d\d\] #dev \* reader joined$`)
	in := "hi\n/me waves\n//slash\n/join dev\nin dev\n/nick alicia\n/who lobby\n"
	_, stderr, code := runChatProc(t, chatEnv(), in, "--nick", "alice", n.URL)
	if code != 0 || stderr != "" {
		t.Fatalf("exit %d, stderr %q", code, stderr)
	}
	for _, re := range []string{
		`^\[\d\d:\d\d:\d\d\] #lobby \* alice joined$`,
		`^\[\d\d:\d\d:\d\d\] #lobby alice: hi$`,
		`^\[\d\d:\d\d:\d\d\] #lobby \* alice waves$`,
		`^\[\d\d:\d\d:\d\d\] #lobby alice: /slash$`,
		`^\[\d\d:\d\d:\d\d\] #dev alice: in dev$`,
		`^\[\d\d:\d\d:\d\d\] #dev \* alice is now known as alicia$`,
		`^\[\d\d:\d\d:\d\d\] #lobby \* alicia left$`,
	} {
		reader.waitLine(t, re)
	}
	if _, err := io.WriteString(reader.stdin, "/who\n/rooms\n"); err != nil {
		t.Fatal(err)
	}
	reader.waitLine(t, `^\[\d\d:\d\d:\d\d\] \* in #lobby \(1\): reader$`)
	reader.waitLine(t, `^\[\d\d:\d\d:\d\d\] \* rooms: .*#lobby \(1\)`)
	if code := reader.finish(t); code != 0 {
		t.Fatalf("reader exit %d, stderr:\n%s", code, &reader.stderr)
	}
}

func TestChatJSON(t *testing.T) {
	t.Parallel()
	n := parleytest.Start(t)
	in := `{"type":"join","room":"lobby","ref":"j"}
{"type":"send","room":"lobby","text":"from a bot","ref":"s1"}
{"type":"send","room":"lobby","text":"no ref"}
{"type":"who","room":"lobby","ref":"w"}
{"type":"send","room":"nowhere","text":"x","ref":"bad"}
`
	stdout, stderr, code := runChatProc(t, chatEnv(), in, "--json", "--nick", "bot", n.URL)
	// The send to a room not joined is refused: exit 1, and it says so.
	if code != 1 || !strings.Contains(stderr, "parley chat: 1 of 5 lines were refused") {
		t.Fatalf("exit %d, stderr %q", code, stderr)
	}
	for _, want := range []string{
		`"type":"welcome"`,
		`{"type":"ack","ref":"j","room":"lobby"}`,
		`"type":"ack","ref":"s1","room":"lobby","id":1}`,
		`"type":"ack","ref":"`, // the assigned ref of "no ref"
		`{"type":"who","ref":"w","room":"lobby","members":["bot"]}`,
		`"type":"error","ref":"bad"`,
		`"code":"not_in_room"`,
	} {
		if !strings.Contains(stdout, want) {
			t.Errorf("stdout has no %s:\n%s", want, stdout)
		}
	}
	for _, line := range strings.Split(strings.TrimSpace(stdout), "\n") {
		if !strings.HasPrefix(line, "{") || !strings.HasSuffix(line, "}") {
			t.Errorf("stdout line is not one JSON object: %q", line)
		}
	}
}

// broadcastServer is the original exercise's server: every text frame to
// every connection, on 127.0.0.1, written with coder/websocket's Accept.
func broadcastServer(t *testing.T) string {
	var mu sync.Mutex
	conns := map[*websocket.Conn]bool{}
	var wg sync.WaitGroup
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := websocket.Accept(w, r, nil)
		if err != nil {
			return
		}
		wg.Add(1)
		defer wg.Done()
		defer c.CloseNow()
		mu.Lock()
		conns[c] = true
		mu.Unlock()
		defer func() {
			mu.Lock()
			delete(conns, c)
			mu.Unlock()
		}()
		for {
			_, b, err := c.Read(r.Context())
			if err != nil {
				return
			}
			mu.Lock()
			for o := range conns {
				o.Write(r.Context(), websocket.MessageText, b)
			}
			mu.Unlock()
		}
	}))
	t.Cleanup(func() {
		srv.CloseClientConnections()
		srv.Close()
		wg.Wait()
	})
	return "ws" + strings.TrimPrefix(srv.URL, "http") + "/chat"
}

func TestChatRaw(t *testing.T) {
	t.Parallel()
	url := broadcastServer(t)
	a := startChat(t, chatEnv(), "--raw", url)
	b := startChat(t, chatEnv(), "--raw", url)
	// Both are connected once a frame from each reaches the other.
	for i := 0; ; i++ {
		io.WriteString(a.stdin, fmt.Sprintf("ping %d\n", i))
		io.WriteString(b.stdin, fmt.Sprintf("pong %d\n", i))
		a.waitLine(t, fmt.Sprintf("^ping %d$", i))
		b.waitLine(t, fmt.Sprintf("^pong %d$", i))
		a.mu.Lock()
		aSawB := slicesContains(a.out, fmt.Sprintf("pong %d", i))
		a.mu.Unlock()
		if aSawB || i == 50 {
			break
		}
	}
	io.WriteString(a.stdin, "/nick is not a command here\n")
	b.waitLine(t, "^/nick is not a command here$")
	if code := a.finish(t); code != 0 {
		t.Fatalf("a: exit %d, stderr %s", code, &a.stderr)
	}
	if code := b.finish(t); code != 0 {
		t.Fatalf("b: exit %d, stderr %s", code, &b.stderr)
	}
}

func slicesContains(s []string, v string) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

func TestChatErrors(t *testing.T) {
	t.Parallel()
	n := parleytest.Start(t)
	taken := watch(t, n.URL, "lobby") // holds the nick "watcher"
	_ = taken
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := ln.Addr().String()
	ln.Close()
	web := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, "a web page")
	}))
	t.Cleanup(web.Close)
	webWS := "ws" + strings.TrimPrefix(web.URL, "http")
	for _, tc := range []struct {
		name   string
		env    []string
		args   []string
		in     string
		code   int
		stderr string
	}{
		{"refused", nil, []string{"ws://" + closed}, "hi\n", 1,
			`parley chat: cannot connect to ws://` + closed + `: connection refused (is "parley serve" running?)`},
		{"refused via PARLEY_URL", []string{"PARLEY_URL=ws://" + closed}, nil, "hi\n", 1,
			`parley chat: cannot connect to ws://` + closed + `: connection refused (is "parley serve" running?)`},
		{"not a WebSocket server", nil, []string{web.URL}, "hi\n", 1,
			`parley chat: the server at ` + webWS + ` answered HTTP 200 instead of upgrading to WebSocket: it is not a parley server, or the path or port is wrong`},
		{"bad scheme", nil, []string{"ftp://127.0.0.1:1"}, "", 1,
			`parley chat: unsupported URL scheme "ftp" in "ftp://127.0.0.1:1": use ws://, wss://, http:// or https://`},
		{"nick taken", nil, []string{"--nick", "Watcher", n.URL}, "hi\n", 1,
			`parley chat: nick "Watcher" is taken (choose another with --nick)`},
		{"nick taken via PARLEY_NICK", []string{"PARLEY_NICK=watcher"}, []string{n.URL}, "hi\n", 1,
			`parley chat: nick "watcher" is taken (choose another with --nick)`},
		{"bad nick", nil, []string{"--nick", "a b", n.URL}, "", 1,
			`parley chat: nick "a b" is invalid: it may only contain letters, digits, '-' and '_'`},
		{"bad format", nil, []string{"--format", "xml", n.URL}, "", 1,
			`parley chat: --format "xml": want json or text`},
		{"bad since", nil, []string{"--since", "x", n.URL}, "", 1,
			`parley chat: --since "x": want a message id (a number)`},
		{"two URLs", nil, []string{n.URL, n.URL}, "", 1,
			`parley chat: too many arguments`},
		{"a line too long", nil, []string{"--nick", "long", n.URL}, "ok\n" + strings.Repeat("x", 9000) + "\n", 1,
			"! error: message too long: 9059 bytes with its envelope, the server takes at most 8192\nparley chat: 1 of 2 lines were refused (see the errors above)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			_, stderr, code := runChatProc(t, chatEnv(tc.env...), tc.in, tc.args...)
			if code != tc.code || !strings.HasPrefix(strings.TrimSpace(stderr), tc.stderr) || strings.Contains(stderr, "goroutine ") {
				t.Fatalf("exit %d, stderr:\n%s\nwant exit %d and\n%s", code, stderr, tc.code, tc.stderr)
			}
		})
	}
}

func TestChatFlagsAndEnv(t *testing.T) {
	t.Parallel()
	n := parleytest.Start(t)
	w := watch(t, n.URL, "lobby")
	// The flag wins over PARLEY_NICK; PARLEY_URL gives the server.
	_, stderr, code := runChatProc(t, chatEnv("PARLEY_NICK=fromenv", "PARLEY_URL="+n.URL), "one\n", "--nick", "fromflag")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	_, stderr, code = runChatProc(t, chatEnv("PARLEY_NICK=fromenv", "PARLEY_URL="+n.URL), "two\n")
	if code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if got := w.wait(t, 2); got[0] != "fromflag: one" || got[1] != "fromenv: two" {
		t.Fatalf("got %q", got)
	}
	// --room replaces PARLEY_ROOM; PARLEY_ROOM alone is used.
	dev := watch(t, n.URL, "dev")
	if _, stderr, code := runChatProc(t, chatEnv("PARLEY_ROOM=nowhere", "PARLEY_URL="+n.URL), "three\n", "--nick", "r1", "--room", "#dev"); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if _, stderr, code := runChatProc(t, chatEnv("PARLEY_ROOM=dev", "PARLEY_URL="+n.URL), "four\n", "--nick", "r2"); code != 0 {
		t.Fatalf("exit %d: %s", code, stderr)
	}
	if got := dev.wait(t, 2); got[0] != "r1: three" || got[1] != "r2: four" {
		t.Fatalf("#dev got %q", got)
	}

	stdout, _, code := runChatProc(t, chatEnv(), "", "--help")
	if code != 0 {
		t.Fatalf("--help: exit %d", code)
	}
	for _, flag := range []string{"--nick", "--room", "--format", "--since", "--plain", "--json", "--raw", "$PARLEY_URL", "$PARLEY_NICK"} {
		if !strings.Contains(stdout, flag) {
			t.Errorf("--help does not list %s:\n%s", flag, stdout)
		}
	}
	_, stderr, code = runChatProc(t, chatEnv(), "", "--no-such-flag")
	if code != 2 || !strings.Contains(stderr, "flag provided but not defined: -no-such-flag") {
		t.Fatalf("unknown flag: exit %d, stderr %q", code, stderr)
	}
}

// TestChatSurvivesRestart: a script's input keeps flowing across a server
// restart; every line is stored once, in order.
func TestChatSurvivesRestart(t *testing.T) {
	t.Parallel()
	n := parleytest.Start(t, parleytest.WithConfig(fastConfig))
	p := startChat(t, chatEnv(), "--nick", "bot", n.URL)
	var want []string
	write := func(from, to int) {
		for i := from; i <= to; i++ {
			fmt.Fprintf(p.stdin, "r%03d\n", i)
			want = append(want, fmt.Sprintf("r%03d", i))
		}
	}
	write(1, 20)
	p.waitLine(t, `bot: r020$`)
	n.Restart()
	write(21, 40)
	if code := p.finish(t); code != 0 {
		t.Fatalf("exit %d, stderr:\n%s", code, &p.stderr)
	}
	if !strings.Contains(p.stderr.String(), "reconnecting in") || !strings.Contains(p.stderr.String(), "* reconnected to") {
		t.Errorf("stderr does not tell of the reconnect:\n%s", &p.stderr)
	}
	page, err := n.Broker().Read(context.Background(), broker.Query{Room: "lobby", Limit: 500})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, m := range page.Messages {
		got = append(got, m.Text)
	}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("stored %q", got)
	}
}
