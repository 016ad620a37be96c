package main

// Real-process tests of parley serve: the binary built by TestMain
// (chat_test.go) runs as a child process on a real SQLite file, and is
// killed with SIGKILL or stopped with SIGTERM.

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/coder/websocket"

	"parley/internal/protocol"
)

// serveProc is a running "parley serve" process.
type serveProc struct {
	cmd  *exec.Cmd
	addr string // 127.0.0.1:port, from its "parley listening" log line
	done chan struct{}
	err  error // cmd.Wait's result, once done is closed

	mu     sync.Mutex
	stderr []string // guarded by mu
}

var listeningRE = regexp.MustCompile(`msg="parley listening" addr=(\S+)`)

// startServe runs parley serve on 127.0.0.1:0 with the database db and
// waits until it listens.
func startServe(t *testing.T, db string, args ...string) *serveProc {
	t.Helper()
	args = append([]string{"serve", "--addr", "127.0.0.1:0", "--db", db, "--rate-limit", "0"}, args...)
	p := &serveProc{cmd: exec.Command(parleyBin, args...), done: make(chan struct{})}
	p.cmd.Env = chatEnv()
	stderr, err := p.cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	listening := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			line := sc.Text()
			p.mu.Lock()
			p.stderr = append(p.stderr, line)
			p.mu.Unlock()
			if m := listeningRE.FindStringSubmatch(line); m != nil {
				select {
				case listening <- m[1]:
				default:
				}
			}
		}
		io.Copy(io.Discard, stderr)
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.cmd.Process.Kill()
		<-p.done
	})
	select {
	case p.addr = <-listening:
	case <-p.done:
		t.Fatalf("parley serve exited before listening: %v\n%s", p.err, p.log())
	case <-time.After(30 * time.Second):
		t.Fatalf("parley serve did not listen within 30s:\n%s", p.log())
	}
	return p
}

func (p *serveProc) log() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return strings.Join(p.stderr, "\n")
}

// wait waits for the process to exit and returns its exit code.
func (p *serveProc) wait(t *testing.T, d time.Duration) int {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(d):
		t.Fatalf("parley serve still running after %v:\n%s", d, p.log())
	}
	var ee *exec.ExitError
	switch {
	case p.err == nil:
		return 0
	case errors.As(p.err, &ee):
		return ee.ExitCode()
	}
	t.Fatalf("parley serve: %v", p.err)
	return -1
}

// current publishes the address of the server the clients should use; it
// changes when the server is restarted.
type current struct {
	mu     sync.Mutex
	url    string        // guarded by mu
	change chan struct{} // guarded by mu: closed when url changes
}

func newCurrent(url string) *current { return &current{url: url, change: make(chan struct{})} }

func (c *current) set(url string) {
	c.mu.Lock()
	c.url = url
	close(c.change)
	c.change = make(chan struct{})
	c.mu.Unlock()
}

func (c *current) get() (string, <-chan struct{}) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.url, c.change
}

// durableClient sends its messages with refs "cN-I" (the text is the ref)
// and resends every unacknowledged one after a reconnect, as a client of
// the protocol should.
type durableClient struct {
	nick string
	n    int // messages to send

	acked   []uint64 // by index: the id the ack gave; 0 until acked
	sentIn  []int    // by index: the connection (1, 2, ...) it was first sent on
	resent  []bool   // by index: sent again after a reconnect
	resends int      // sends repeated after a reconnect
	conns   int
}

func (c *durableClient) ref(i int) string { return fmt.Sprintf("%s-%d", c.nick, i) }

// run sends everything and returns once every message is acknowledged.
// total counts acks across clients, for the test to pick its moment.
func (c *durableClient) run(ctx context.Context, cur *current, room string, total *atomic.Int64) error {
	c.acked = make([]uint64, c.n)
	c.sentIn = make([]int, c.n)
	c.resent = make([]bool, c.n)
	next := 0 // the next index never sent
	const window = 32
	for {
		remaining := 0
		for _, id := range c.acked {
			if id == 0 {
				remaining++
			}
		}
		if remaining == 0 {
			return nil
		}
		if ctx.Err() != nil {
			return fmt.Errorf("%s: %d messages unacknowledged: %w", c.nick, remaining, ctx.Err())
		}
		url, changed := cur.get()
		sentTo, err := c.session(ctx, url+"?nick="+c.nick+"&room="+room, room, &next, window, total)
		if err == nil {
			continue
		}
		if sentTo == 0 {
			// Could not even talk to this server: wait for the next one.
			select {
			case <-changed:
			case <-ctx.Done():
			case <-time.After(100 * time.Millisecond):
			}
		}
	}
}

// session is one connection: resend what is unacknowledged, then send new
// messages with at most window unacknowledged. It returns how many frames
// it wrote and why the connection ended.
func (c *durableClient) session(ctx context.Context, url, room string, next *int, window int, total *atomic.Int64) (int, error) {
	dctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	conn, resp, err := websocket.Dial(dctx, url, &websocket.DialOptions{Subprotocols: []string{protocol.Subprotocol}})
	cancel()
	if resp != nil && resp.Body != nil {
		resp.Body.Close()
	}
	if err != nil {
		return 0, err
	}
	defer conn.CloseNow()
	c.conns++
	// The welcome tells whether the nick is ours: refs are per nick.
	_, b, err := conn.Read(ctx)
	if err != nil {
		return 0, err
	}
	var w protocol.Event
	if err := json.Unmarshal(b, &w); err != nil || w.Type != protocol.EvWelcome {
		return 0, fmt.Errorf("%s: first frame %q", c.nick, b)
	}
	if w.Nick != c.nick {
		return 0, fmt.Errorf("%s: the server calls us %s", c.nick, w.Nick)
	}

	acks := make(chan protocol.Event, 256)
	readErr := make(chan error, 1)
	rctx, stopReading := context.WithCancel(ctx)
	defer func() {
		stopReading()
		conn.CloseNow()
		<-readErr
	}()
	go func() {
		for {
			_, b, err := conn.Read(rctx)
			if err != nil {
				readErr <- err
				return
			}
			var ev protocol.Event
			if json.Unmarshal(b, &ev) != nil {
				continue
			}
			if ev.Type == protocol.EvAck || ev.Type == protocol.EvError {
				select {
				case acks <- ev:
				case <-rctx.Done():
				}
			}
		}
	}()
	written := 0
	send := func(i int) error {
		b, _ := json.Marshal(map[string]any{"type": "send", "room": room, "text": c.ref(i), "ref": c.ref(i)})
		wctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		if err := conn.Write(wctx, websocket.MessageText, b); err != nil {
			return err
		}
		written++
		return nil
	}
	outstanding := 0
	for i := 0; i < *next; i++ {
		if c.acked[i] == 0 {
			c.resends++
			c.resent[i] = true
			if err := send(i); err != nil {
				return written, err
			}
			outstanding++
		}
	}
	for {
		for outstanding < window && *next < c.n {
			if err := send(*next); err != nil {
				return written, err
			}
			c.sentIn[*next] = c.conns
			*next++
			outstanding++
		}
		if outstanding == 0 {
			return written, nil
		}
		select {
		case ev := <-acks:
			if ev.Type == protocol.EvError {
				return written, fmt.Errorf("%s: %s: %s", c.nick, ev.Code, ev.Message)
			}
			var i int
			if _, err := fmt.Sscanf(strings.TrimPrefix(ev.Ref, c.nick+"-"), "%d", &i); err != nil || i < 0 || i >= c.n {
				continue // the join's ack, or not ours
			}
			if c.acked[i] == 0 {
				c.acked[i] = ev.ID
				total.Add(1)
				outstanding--
			} else if c.acked[i] != ev.ID {
				return written, fmt.Errorf("%s: ref %s acked as %d, then as %d", c.nick, ev.Ref, c.acked[i], ev.ID)
			}
		case err := <-readErr:
			readErr <- err // for the deferred wait
			return written, err
		case <-ctx.Done():
			return written, ctx.Err()
		}
	}
}

type historyMessage struct {
	ID   uint64 `json:"id"`
	From string `json:"from"`
	Text string `json:"text"`
}

// readHistory pages back through a room with the history API and returns
// its messages oldest first.
func readHistory(t *testing.T, httpURL, room string) []historyMessage {
	t.Helper()
	// No keep-alive: no idle connections left for goleak to find.
	hc := &http.Client{Transport: &http.Transport{DisableKeepAlives: true}}
	var all []historyMessage
	before := ""
	for range 1000 {
		resp, err := hc.Get(httpURL + "/api/rooms/" + room + "/messages?limit=500" + before)
		if err != nil {
			t.Fatal(err)
		}
		var page struct {
			Messages []historyMessage `json:"messages"`
			More     bool             `json:"more"`
		}
		err = json.NewDecoder(resp.Body).Decode(&page)
		resp.Body.Close()
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("history: %d %v", resp.StatusCode, err)
		}
		all = append(all, page.Messages...)
		if !page.More || len(page.Messages) == 0 {
			for i, j := 0, len(all)-1; i < j; i, j = i+1, j-1 {
				all[i], all[j] = all[j], all[i]
			}
			return all
		}
		before = fmt.Sprintf("&before=%d", page.Messages[len(page.Messages)-1].ID)
	}
	t.Fatal("history: too many pages")
	return nil
}

// kill -9 in the middle of 10,000 sends, restart on the same file, resend
// what was not acknowledged: every acknowledged message is stored exactly
// once, in order, and no ref twice.
func TestServeKill9LosesNothingAcknowledged(t *testing.T) {
	t.Parallel()
	db := filepath.Join(t.TempDir(), "parley.db")
	p1 := startServe(t, db)
	cur := newCurrent("ws://" + p1.addr + "/")

	const clients, per = 5, 2000
	ctx, cancel := context.WithTimeout(context.Background(), 150*time.Second)
	defer cancel()
	var total atomic.Int64
	cs := make([]*durableClient, clients)
	errs := make(chan error, clients)
	var wg sync.WaitGroup
	for i := range cs {
		cs[i] = &durableClient{nick: fmt.Sprintf("c%d", i), n: per}
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs <- cs[i].run(ctx, cur, "durable", &total)
		}()
	}
	defer wg.Wait()

	// Kill it mid-stream: after a third of the acks, with sends in flight.
	for total.Load() < clients*per/3 {
		select {
		case <-ctx.Done():
			t.Fatalf("only %d acks before the deadline:\n%s", total.Load(), p1.log())
		case err := <-errs:
			t.Fatalf("a client ended before the kill: %v", err)
		case <-time.After(5 * time.Millisecond):
		}
	}
	if err := p1.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	atKill := total.Load()
	if code := p1.wait(t, 10*time.Second); code != -1 {
		t.Fatalf("the killed server exited with %d, want -1 (killed by a signal)", code)
	}
	p2 := startServe(t, db)
	cur.set("ws://" + p2.addr + "/")

	for range clients {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	resends, conns := 0, 0
	for _, c := range cs {
		resends += c.resends
		conns += c.conns
	}
	// Resends answered with an id older than any message first sent
	// after the restart were stored before the kill: their acks were lost.
	minNew, lostAcks := uint64(1<<63), 0
	for _, c := range cs {
		for i, id := range c.acked {
			if c.sentIn[i] > 1 {
				minNew = min(minNew, id)
			}
		}
	}
	for _, c := range cs {
		for i, id := range c.acked {
			if c.resent[i] && id < minNew {
				lostAcks++
			}
		}
	}
	t.Logf("killed after %d of %d acks; %d connections, %d sends repeated after the restart, %d of them stored before the kill (answered with their original id)",
		atKill, clients*per, conns, resends, lostAcks)

	hist := readHistory(t, "http://"+p2.addr, "durable")
	if len(hist) != clients*per {
		t.Fatalf("history holds %d messages, want %d", len(hist), clients*per)
	}
	byText := make(map[string]uint64, len(hist))
	for i, m := range hist {
		if m.ID != uint64(i+1) {
			t.Fatalf("history[%d] has id %d: ids must be 1..%d in order", i, m.ID, len(hist))
		}
		if _, dup := byText[m.Text]; dup {
			t.Fatalf("ref %s stored twice", m.Text)
		}
		byText[m.Text] = m.ID
		if !strings.HasPrefix(m.Text, m.From+"-") {
			t.Fatalf("message %d from %s has text %q", m.ID, m.From, m.Text)
		}
	}
	for _, c := range cs {
		last := uint64(0)
		for i, id := range c.acked {
			stored, ok := byText[c.ref(i)]
			if !ok {
				t.Fatalf("acknowledged %s (id %d) is not in the history", c.ref(i), id)
			}
			if stored != id {
				t.Fatalf("%s acknowledged as %d, stored as %d", c.ref(i), id, stored)
			}
			if id <= last {
				t.Fatalf("%s: message %d has id %d after %d: one sender's messages out of order", c.nick, i, id, last)
			}
			last = id
		}
	}

	// SIGTERM now: a clean stop on the restarted server.
	if err := p2.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if code := p2.wait(t, 30*time.Second); code != 0 {
		t.Fatalf("exit code after SIGTERM = %d:\n%s", code, p2.log())
	}
}

// SIGTERM: every client gets close 1001, and the process exits 0.
func TestServeSIGTERMClosesWith1001(t *testing.T) {
	t.Parallel()
	p := startServe(t, filepath.Join(t.TempDir(), "parley.db"))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var conns []*websocket.Conn
	for i, isJSON := range []bool{true, false, true} {
		opts := &websocket.DialOptions{}
		if isJSON {
			opts.Subprotocols = []string{protocol.Subprotocol}
		}
		c, resp, err := websocket.Dial(ctx, fmt.Sprintf("ws://%s/?nick=u%d&room=lobby", p.addr, i), opts)
		if resp != nil && resp.Body != nil {
			resp.Body.Close()
		}
		if err != nil {
			t.Fatal(err)
		}
		defer c.CloseNow()
		if _, _, err := c.Read(ctx); err != nil { // the welcome
			t.Fatal(err)
		}
		conns = append(conns, c)
	}
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	for i, c := range conns {
		var err error
		for err == nil {
			_, _, err = c.Read(ctx)
		}
		if code := websocket.CloseStatus(err); code != websocket.StatusGoingAway {
			t.Errorf("client %d: read ended with %v (close code %d), want 1001", i, err, code)
		}
	}
	if code := p.wait(t, 30*time.Second); code != 0 {
		t.Fatalf("exit code after SIGTERM = %d, want 0:\n%s", code, p.log())
	}
	if log := p.log(); !strings.Contains(log, "stopped") {
		t.Errorf("no \"stopped\" in the log:\n%s", log)
	}
}

// A database in a directory that does not exist: a one-line error, exit
// non-zero, nothing listening.
func TestServeMissingDirectory(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, parleyBin, "serve", "--addr", "127.0.0.1:0", "--db", "/nonexistent/dir/x.db")
	cmd.Env = chatEnv()
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() == 0 {
		t.Fatalf("parley serve --db /nonexistent/dir/x.db: %v, want a non-zero exit", err)
	}
	lines := strings.Split(strings.TrimRight(stderr.String(), "\n"), "\n")
	if len(lines) != 1 || !strings.Contains(lines[0], "/nonexistent/dir") || !strings.HasPrefix(lines[0], "parley serve: ") {
		t.Fatalf("stderr = %q, want one line naming the path", stderr.String())
	}
	if stdout.Len() != 0 {
		t.Errorf("stdout = %q", stdout.String())
	}
	t.Logf("exit %d: %s", ee.ExitCode(), lines[0])
}
