package server_test

// A WebSocket client that is not ours: Python's websockets library
// (Debian's python3-websockets), driven by testdata/interop/chat.py, chats
// through the server with a Go client, in both formats.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"parley/internal/parleytest"
	"parley/internal/protocol"
)

// systemPython is Debian's interpreter, where python3-websockets installs;
// the python3 on PATH may be another build without it.
const systemPython = "/usr/bin/python3"

// needWebsockets skips the test when Python's websockets is missing,
// except in CI (CI=true), where it must be there.
func needWebsockets(t *testing.T) {
	t.Helper()
	out, err := exec.Command(systemPython, "-c", "import websockets").CombinedOutput()
	if err == nil {
		return
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	msg := fmt.Sprintf("%s cannot import websockets (%v: %s); install it with: apt-get install -y python3-websockets",
		systemPython, err, lines[len(lines)-1])
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
}

// pyClient is a running chat.py.
type pyClient struct {
	t      *testing.T
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	lines  chan string // stdout, line by line; closed at its end
	stderr *syncBuffer
	cancel context.CancelFunc
	waited chan struct{} // closed once cmd.Wait returned
	err    error         // cmd.Wait's; set before waited is closed
}

// syncBuffer is a bytes.Buffer safe for exec's copying goroutine and the
// test to use at once.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func startPy(t *testing.T, url, subprotocol string) *pyClient {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	cmd := exec.CommandContext(ctx, systemPython, "-u", "testdata/interop/chat.py", url, subprotocol)
	cmd.WaitDelay = 5 * time.Second
	p := &pyClient{t: t, cmd: cmd, cancel: cancel, lines: make(chan string, 1000),
		stderr: &syncBuffer{}, waited: make(chan struct{})}
	cmd.Stderr = p.stderr
	var err error
	if p.stdin, err = cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		cancel()
		t.Fatalf("start %s: %v", systemPython, err)
	}
	go func() {
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			p.lines <- sc.Text()
		}
		close(p.lines)
		// Wait only once stdout is read to its end (os/exec's rule).
		p.err = cmd.Wait()
		close(p.waited)
	}()
	t.Cleanup(func() {
		p.stdin.Close()
		cancel() // kills the process if it is still running
		<-p.waited
	})
	return p
}

// send writes one line for the script to send as a text frame.
func (p *pyClient) send(line string) {
	p.t.Helper()
	if _, err := io.WriteString(p.stdin, line+"\n"); err != nil {
		p.t.Fatalf("python stdin: %v", err)
	}
}

// expect waits for an output line that satisfies ok and returns it.
func (p *pyClient) expect(what string, ok func(string) bool) string {
	p.t.Helper()
	timeout := time.After(10 * time.Second)
	for {
		select {
		case line, open := <-p.lines:
			if !open {
				<-p.waited
				p.t.Fatalf("python ended (%v) before %s; stderr:\n%s", p.err, what, p.stderr.String())
			}
			if ok(line) {
				return line
			}
		case <-timeout:
			p.t.Fatalf("python printed no %s within 10s; stderr:\n%s", what, p.stderr.String())
		}
	}
}

// frame waits for a received frame that satisfies ok and returns it.
func (p *pyClient) frame(what string, ok func(string) bool) string {
	p.t.Helper()
	var text string
	p.expect(what, func(line string) bool {
		rest, isFrame := strings.CutPrefix(line, "< ")
		if !isFrame {
			return false
		}
		text = ""
		if err := json.Unmarshal([]byte(rest), &text); err != nil {
			p.t.Fatalf("python printed %q: %v", line, err)
		}
		return ok(text)
	})
	return text
}

func (p *pyClient) frameLine(want string) {
	p.t.Helper()
	p.frame(fmt.Sprintf("frame %q", want), func(s string) bool { return s == want })
}

// event waits for a received JSON event of type typ that satisfies ok.
func (p *pyClient) event(typ string, ok func(protocol.Event) bool) protocol.Event {
	p.t.Helper()
	var ev protocol.Event
	p.frame("a "+typ+" event", func(s string) bool {
		ev = protocol.Event{}
		if err := json.Unmarshal([]byte(s), &ev); err != nil {
			p.t.Fatalf("python got a frame that is not JSON: %q: %v", s, err)
		}
		return ev.Type == typ && (ok == nil || ok(ev))
	})
	return ev
}

// close ends stdin: the script closes with 1000, which the server echoes,
// and exits 0.
func (p *pyClient) close() {
	p.t.Helper()
	p.stdin.Close()
	p.expect(`"closed: 1000"`, func(s string) bool { return s == "closed: 1000" })
	select {
	case <-p.waited:
	case <-time.After(10 * time.Second):
		p.t.Fatalf("python did not exit after closing")
	}
	if p.err != nil {
		p.t.Fatalf("python: %v; stderr:\n%s", p.err, p.stderr.String())
	}
}

// The text format, as any plain WebSocket client speaks it.
func TestInteropPythonText(t *testing.T) {
	t.Parallel()
	needWebsockets(t)
	n := parleytest.Start(t)
	gopher := dial(t, n.URL+"?nick=gopher", false)
	gopher.readLine("* gopher joined #lobby")

	py := startPy(t, n.URL+"?nick=snake", "")
	py.expect("the subprotocol", func(s string) bool { return s == "subprotocol: none" })
	py.frameLine("* welcome to parley, snake; you are in #lobby (type /help for commands)")
	py.frameLine("* snake joined #lobby")
	gopher.readLine("* snake joined #lobby")

	// Python to Go, and back to Python (echo).
	py.send("hello from python: ñ, 日本, 🐍")
	gopher.readLine("snake: hello from python: ñ, 日本, 🐍")
	py.frameLine("snake: hello from python: ñ, 日本, 🐍")

	// Go to Python.
	gopher.write("hello from go: ü, 🐹")
	py.frameLine("gopher: hello from go: ü, 🐹")

	// Commands.
	py.send("/me waves")
	gopher.readLine("* snake waves")
	py.send("/who")
	py.frameLine("* in #lobby (2): gopher, snake")

	py.close()
	gopher.readLine("* snake left #lobby")
}

// The JSON format, with the subprotocol parley.v1.
func TestInteropPythonJSON(t *testing.T) {
	t.Parallel()
	needWebsockets(t)
	n := parleytest.Start(t)
	gopher := dial(t, n.URL+"?nick=gopher&room=lobby", true)
	gopher.event(protocol.EvWelcome)

	py := startPy(t, n.URL+"?nick=snake", protocol.Subprotocol)
	py.expect("the subprotocol", func(s string) bool { return s == "subprotocol: "+protocol.Subprotocol })
	if w := py.event(protocol.EvWelcome, nil); w.Nick != "snake" || w.Epoch == "" || w.Limits == nil {
		t.Fatalf("welcome = %+v", w)
	}
	py.send(`{"type":"join","room":"lobby","ref":"j1"}`)
	py.event(protocol.EvAck, func(e protocol.Event) bool { return e.Ref == "j1" })
	gopher.event(protocol.EvJoin) // gopher's own join
	if j := gopher.event(protocol.EvJoin); j.Nick != "snake" {
		t.Fatalf("join = %+v", j)
	}

	// Python to Go.
	py.send(`{"type":"send","room":"lobby","text":"json from python: 🐍","ref":"p1"}`)
	ack := py.event(protocol.EvAck, func(e protocol.Event) bool { return e.Ref == "p1" })
	if ack.ID == 0 || ack.Room != "lobby" {
		t.Fatalf("ack = %+v", ack)
	}
	m := gopher.event(protocol.EvMessage)
	if m.From != "snake" || m.Text != "json from python: 🐍" || m.ID != ack.ID {
		t.Fatalf("gopher got %+v, want snake's message with id %d", m, ack.ID)
	}

	// Go to Python.
	gopher.writeJSON(map[string]any{"type": "send", "room": "lobby", "text": "json from go: 🐹", "ref": "g1"})
	m = py.event(protocol.EvMessage, func(e protocol.Event) bool { return e.From == "gopher" })
	if m.Text != "json from go: 🐹" || m.Room != "lobby" || m.ID != ack.ID+1 {
		t.Fatalf("python got %+v", m)
	}

	// A bad command from Python gets its error.
	py.send(`{"type":"shout","ref":"bad"}`)
	if e := py.event(protocol.EvError, nil); e.Code != protocol.CodeUnknownType || e.Ref != "bad" {
		t.Fatalf("error = %+v", e)
	}

	py.close()
	if l := gopher.event(protocol.EvLeave); l.Nick != "snake" {
		t.Fatalf("leave = %+v", l)
	}
}
