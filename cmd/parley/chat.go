package main

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"parley/internal/client"
	"parley/internal/protocol"
	"parley/internal/tui"
)

// chatOptions are parley chat's flags.
type chatOptions struct {
	url       string
	nick      string
	rooms     roomsFlag
	format    string
	since     string
	plain     bool
	json      bool
	raw       bool
	reconnect bool
}

const chatHead = `usage: parley chat [flags] [URL]

Chats with a parley server (default ws://127.0.0.1:8080; http:// and
https:// work too). Each line of standard input is sent to the current room
(the first --room, else lobby); lines starting with / are commands:
  /join ROOM  /leave [ROOM]  /nick NAME  /who [ROOM]  /rooms  /me ACTION
  /help  /quit     (start a line with // to send a leading /)
Each event is printed as one line on standard output:
  [15:04:05] #lobby alice: hi
  [15:04:05] #lobby * alice waves
Errors and connection changes go to standard error. At the end of input,
parley chat waits until every line is acknowledged, closes and exits 0; it
exits 1 if the connection fails or any line was refused.

  --json  read commands and write events as one JSON object per line (the
          wire protocol of docs/protocol.md); no room is joined unless given
  --raw   any text WebSocket server: send lines as text frames, print frames

flags (each may also be set by the environment variable in brackets):
`

func chatFlags(stderr io.Writer) (*flag.FlagSet, *chatOptions) {
	o := &chatOptions{}
	fs := flag.NewFlagSet("parley chat", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.url, "url", "", "server URL, if not given as the argument (default ws://127.0.0.1:8080)")
	fs.StringVar(&o.nick, "nick", "", "nick to use (default: the server picks guest-NNNN)")
	fs.Var(&o.rooms, "room", "room to join; may repeat (default lobby)")
	fs.StringVar(&o.format, "format", "json", "wire format: json (parley.v1) or text (the server's own lines)")
	fs.StringVar(&o.since, "since", "", "resume the first --room after this message `ID`")
	fs.BoolVar(&o.plain, "plain", false, "line mode even on a terminal (default: the full-screen UI when stdin and stdout are a terminal)")
	fs.BoolVar(&o.json, "json", false, "one JSON command per input line, one JSON event per output line")
	fs.BoolVar(&o.raw, "raw", false, "raw text frames, for any WebSocket server")
	fs.BoolVar(&o.reconnect, "reconnect", true, "reconnect and resume when the connection drops")
	fs.Usage = usageWithEnv(fs, stderr, chatHead)
	return fs, o
}

// roomsFlag is --room: it may repeat or take a comma-separated list. A
// command-line --room replaces rooms that came from PARLEY_ROOM.
type roomsFlag struct {
	names   []string
	fromEnv bool
}

func (f *roomsFlag) String() string { return strings.Join(f.names, ",") }

func (f *roomsFlag) Set(v string) error {
	if f.fromEnv {
		f.names, f.fromEnv = nil, false
	}
	for _, p := range strings.Split(v, ",") {
		if p = strings.TrimSpace(strings.TrimPrefix(strings.TrimSpace(p), "#")); p != "" {
			f.names = append(f.names, p)
		}
	}
	return nil
}

// runChat is parley chat: scriptable line mode, --json and --raw.
func runChat(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	for _, a := range args {
		if a == "-h" || a == "-help" || a == "--help" {
			fs, _ := chatFlags(stdout)
			fs.Usage()
			return flag.ErrHelp
		}
	}
	fs, o := chatFlags(stderr)
	// The environment first, alone, so that --room on the command line
	// replaces PARLEY_ROOM rather than adding to it: flags win.
	if err := parseFlags(fs, nil, os.Getenv); err != nil {
		return err
	}
	o.rooms.fromEnv = len(o.rooms.names) > 0
	if err := fs.Parse(args); err != nil {
		return errUsage
	}
	if rest := fs.Args(); len(rest) > 0 {
		// The URL may come before flags: parley chat ws://h:1 --nick bob.
		o.url = rest[0]
		if err := fs.Parse(rest[1:]); err != nil {
			return errUsage
		}
		if len(fs.Args()) > 0 {
			return fmt.Errorf("too many arguments: %q (want at most one URL)", fs.Args())
		}
	}
	opts := client.Options{Nick: o.nick, Rooms: o.rooms.names, Reconnect: o.reconnect, MaxInFlight: 1}
	switch {
	case o.raw:
		opts.Raw = true
	case o.format == "text":
		opts.Text = true
	case o.format != "json":
		return fmt.Errorf("--format %q: want json or text", o.format)
	}
	if o.json && opts.Text {
		return errors.New("--json needs --format json (and not --raw)")
	}
	if len(opts.Rooms) == 0 && !o.json && !o.raw {
		opts.Rooms = []string{"lobby"}
	}
	if o.since != "" {
		id, err := strconv.ParseUint(o.since, 10, 64)
		if err != nil {
			return fmt.Errorf("--since %q: want a message id (a number)", o.since)
		}
		if len(opts.Rooms) == 0 {
			return errors.New("--since needs a --room to resume")
		}
		opts.Since = map[string]uint64{opts.Rooms[0]: id}
	}
	// A person at a terminal gets the full-screen UI (it speaks JSON);
	// scripts, pipes and --plain get line mode.
	if !o.plain && !o.json && !o.raw && !opts.Text && isTerminal(stdin) && isTerminal(stdout) {
		return tui.Run(ctx, o.url, tui.Options{
			Nick:  o.nick,
			Rooms: opts.Rooms,
			Since: opts.Since,
			In:    stdin,
			Out:   stdout,
		})
	}

	c, err := client.Dial(ctx, o.url, opts)
	if err != nil {
		if errors.Is(err, client.ErrNickTaken) {
			return fmt.Errorf("%v (choose another with --nick)", err)
		}
		return err
	}
	mode := modePlain
	switch {
	case o.raw:
		mode = modeRaw
	case o.json:
		mode = modeJSON
	case opts.Text:
		mode = modeText
	}
	s := &chatSession{c: c, mode: mode, stderr: stderr}
	if len(opts.Rooms) > 0 {
		s.current = opts.Rooms[0]
	}
	var printer sync.WaitGroup
	printer.Add(1)
	go func() {
		defer printer.Done()
		s.print(stdout)
	}()
	err = s.run(ctx, stdin)
	c.Close()
	printer.Wait()
	if err == nil {
		err = c.Err()
	}
	if err == nil && s.failed.Load() > 0 {
		err = fmt.Errorf("%d of %d lines were refused (see the errors above)", s.failed.Load(), s.lines)
	}
	return err
}

type chatMode int

const (
	modePlain chatMode = iota // JSON on the wire, lines and /commands in, formatted lines out
	modeText                  // text format: lines in and out, unchanged
	modeJSON                  // --json: JSON commands in, JSON events out
	modeRaw                   // --raw: frames in and out, unchanged
)

// chatSession is one run of parley chat. The input loop (run) and the
// printer each own their writer; failed is shared.
type chatSession struct {
	c       *client.Client
	mode    chatMode
	stderr  io.Writer // written by the printer only, and by run before it starts
	current string    // owned by run: the room plain lines go to
	lines   int       // owned by run
	failed  atomic.Int64
	errMu   sync.Mutex // serialises stderr between run and the printer
}

func (s *chatSession) errorf(format string, args ...any) {
	s.errMu.Lock()
	defer s.errMu.Unlock()
	fmt.Fprintf(s.stderr, format+"\n", args...)
}

// run sends every line of stdin, then waits until each is answered. The
// goroutine that reads stdin is waited for unless ctx ends first: a blocking
// read of a terminal or pipe cannot be interrupted, and the process exits
// right after.
func (s *chatSession) run(ctx context.Context, stdin io.Reader) error {
	lines := make(chan string)
	readErr := make(chan error, 1)
	var reader sync.WaitGroup
	reader.Add(1)
	stop := make(chan struct{})
	go func() {
		defer reader.Done()
		sc := bufio.NewScanner(stdin)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			select {
			case lines <- sc.Text():
			case <-stop:
				readErr <- nil
				return
			}
		}
		readErr <- sc.Err()
		close(lines)
	}()
	defer close(stop)
	ended := s.c.Done()
	for {
		select {
		case line, ok := <-lines:
			if !ok {
				reader.Wait()
				if err := <-readErr; err != nil {
					return fmt.Errorf("reading standard input: %v", err)
				}
				return s.flush(ctx)
			}
			quit, err := s.line(ctx, line)
			if err != nil {
				return err
			}
			if quit {
				return s.flush(ctx)
			}
		case <-ended:
			return s.c.Err()
		case <-ctx.Done():
			return errors.New("interrupted")
		}
	}
}

// answerTimeout is how long flush waits, connected, for the server to
// answer anything more before it gives up on the rest.
const answerTimeout = 30 * time.Second

// sync waits, after the last answer, for what the server queued before it
// (a join's history, our own echoes), so the output is complete. A server
// that does not answer in time only costs that completeness.
func (s *chatSession) sync(ctx context.Context) error {
	sctx, cancel := context.WithTimeout(ctx, answerTimeout)
	defer cancel()
	err := s.c.Sync(sctx)
	switch {
	case ctx.Err() != nil:
		return errors.New("interrupted while waiting for acknowledgements")
	case errors.Is(err, context.DeadlineExceeded):
		return nil
	}
	return err
}

// flush waits until every line is answered. While reconnecting it waits as
// long as it takes; connected, it gives up when the server answers nothing
// more for answerTimeout (a server that drops a command's ref would
// otherwise keep a script waiting forever).
func (s *chatSession) flush(ctx context.Context) error {
	last := -1
	for {
		fctx, cancel := context.WithTimeout(ctx, answerTimeout)
		err := s.c.Flush(fctx)
		cancel()
		switch {
		case err == nil:
			return s.sync(ctx)
		case ctx.Err() != nil:
			return errors.New("interrupted while waiting for acknowledgements")
		case !errors.Is(err, context.DeadlineExceeded):
			return err
		}
		st := s.c.Status()
		if st.State == client.StateConnected && st.Pending == last {
			return fmt.Errorf("the server answered none of the last %d commands in %v", st.Pending, answerTimeout)
		}
		last = st.Pending
	}
}

// line handles one line of input; quit is /quit.
func (s *chatSession) line(ctx context.Context, line string) (quit bool, err error) {
	s.lines++
	switch s.mode {
	case modeRaw:
		return false, s.c.PostText(ctx, line)
	case modeText:
		if strings.TrimSpace(line) == "/quit" {
			return true, nil
		}
		if line == "" {
			return false, nil
		}
		return false, s.c.PostText(ctx, line)
	case modeJSON:
		if strings.TrimSpace(line) == "" {
			return false, nil
		}
		var cmd protocol.Command
		if err := json.Unmarshal([]byte(line), &cmd); err != nil {
			s.refuse("line %d is not a JSON command: %v", s.lines, err)
			return false, nil
		}
		if _, err := s.c.Post(ctx, cmd); err != nil {
			return false, s.local(ctx, err)
		}
		return false, nil
	}
	return s.plainLine(ctx, line)
}

// refuse reports a line that was not sent.
func (s *chatSession) refuse(format string, args ...any) {
	s.failed.Add(1)
	s.errorf("! error: "+format, args...)
}

// local reports an error of the client for one line: fatal when the client
// is gone, else the line is refused.
func (s *chatSession) local(ctx context.Context, err error) error {
	if errors.Is(err, client.ErrClosed) || ctx.Err() != nil {
		if e := s.c.Err(); e != nil {
			return e
		}
		return err
	}
	select {
	case <-s.c.Done():
		if e := s.c.Err(); e != nil {
			return e
		}
	default:
	}
	s.refuse("%v", err)
	return nil
}

func (s *chatSession) plainLine(ctx context.Context, line string) (bool, error) {
	if strings.TrimSpace(line) == "" {
		return false, nil
	}
	if strings.TrimSpace(line) == "/quit" {
		return true, nil
	}
	cmd, perr := protocol.DecodeText(line)
	if perr != nil {
		s.refuse("%s", perr.Message)
		return false, nil
	}
	switch cmd.Type {
	case protocol.CmdHelp:
		s.errorf("%s\n*   /quit          send what is left and exit", protocol.HelpText)
		return false, nil
	case protocol.CmdSend, protocol.CmdWho, protocol.CmdLeave:
		if cmd.Room == "" {
			cmd.Room = s.current
		}
		if cmd.Room == "" {
			s.refuse("you are in no room: /join one first")
			return false, nil
		}
	}
	if _, err := s.c.Post(ctx, cmd); err != nil {
		return false, s.local(ctx, err)
	}
	switch cmd.Type {
	case protocol.CmdJoin:
		s.current = cmd.Room
	case protocol.CmdLeave:
		if strings.EqualFold(cmd.Room, s.current) {
			s.current = ""
			if rooms := s.c.Status().Rooms; len(rooms) > 0 {
				s.current = rooms[len(rooms)-1].Name
			}
		}
	}
	return false, nil
}

// print writes every event until the client ends.
func (s *chatSession) print(stdout io.Writer) {
	w := bufio.NewWriter(stdout)
	events := s.c.Events()
	for ev := range events {
		s.printEvent(w, ev)
		if len(events) == 0 {
			w.Flush()
		}
	}
	w.Flush()
}

func (s *chatSession) printEvent(w *bufio.Writer, ev client.Event) {
	if ev.Type == protocol.EvError && ev.Ref != "" {
		s.failed.Add(1)
	}
	switch {
	case ev.Type == client.EvState:
		s.printState(ev)
	case s.mode == modeRaw:
		w.Write(ev.Raw)
		w.WriteByte('\n')
	case s.mode == modeText || ev.Type == client.EvLine:
		w.WriteString(clean(ev.Text))
		w.WriteByte('\n')
	case s.mode == modeJSON:
		w.Write(ev.Raw)
		w.WriteByte('\n')
	case ev.Type == protocol.EvError:
		w.Flush()
		s.errorf("! error: %s", clean(ev.Message))
	default:
		if line := formatEvent(&ev.Event, time.Now()); line != "" {
			w.WriteString(line)
			w.WriteByte('\n')
		}
	}
}

func (s *chatSession) printState(ev client.Event) {
	switch ev.State {
	case client.StateReconnecting:
		s.errorf("! connection lost (%v); reconnecting in %v (attempt %d)", ev.Err, ev.Delay.Round(time.Millisecond), ev.Attempt)
	case client.StateConnected:
		if ev.Attempt > 0 {
			st := s.c.Status()
			s.errorf("* reconnected to %s as %s", st.URL, st.Nick)
		}
	}
}

// formatEvent renders one server event as a line of plain mode ("" for
// events it does not show: acks, welcome).
func formatEvent(ev *protocol.Event, now time.Time) string {
	ts := ev.TS
	if ts.IsZero() {
		ts = now
	}
	stamp := "[" + ts.Local().Format("15:04:05") + "] "
	room := "#" + ev.Room + " "
	switch ev.Type {
	case protocol.EvMessage:
		if ev.Action {
			return stamp + room + "* " + clean(ev.From) + " " + clean(ev.Text)
		}
		return stamp + room + clean(ev.From) + ": " + clean(ev.Text)
	case protocol.EvJoin:
		return stamp + room + "* " + clean(ev.Nick) + " joined"
	case protocol.EvLeave:
		return stamp + room + "* " + clean(ev.Nick) + " left"
	case protocol.EvNick:
		return stamp + room + "* " + clean(ev.Old) + " is now known as " + clean(ev.Nick)
	case protocol.EvHistory:
		var b strings.Builder
		for i := range ev.Messages {
			if i > 0 {
				b.WriteByte('\n')
			}
			b.WriteString(formatEvent(&ev.Messages[i], now))
		}
		return b.String()
	case protocol.EvWho, protocol.EvRooms, protocol.EvGap, protocol.EvReset:
		return stamp + clean(string(protocol.AppendText(nil, ev, "")))
	}
	return ""
}

// clean keeps a line one line and free of terminal control sequences: other
// people's text must not move the cursor or recolour the terminal.
func clean(s string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r == '\n' || r == '\t':
			return ' '
		case r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0):
			return '\uFFFD'
		}
		return r
	}, s)
}

func isTerminal(f any) bool {
	file, ok := f.(*os.File)
	if !ok {
		return false
	}
	fi, err := file.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
