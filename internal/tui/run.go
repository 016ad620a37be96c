package tui

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"
	"time"

	tea "charm.land/bubbletea/v2"

	"parley/internal/client"
)

// Options configure Run. The zero value works: a guest nick in lobby, on
// the process's terminal.
type Options struct {
	// Nick to ask for. Empty: the server picks guest-NNNN. If it is taken,
	// the chat starts with a guest nick and says so; /nick NAME picks
	// another.
	Nick string
	// Rooms to join, in order; the first is the current room. Default
	// lobby.
	Rooms []string
	// Since resumes rooms: Since[room] is the last message id already seen
	// there (as client.Options.Since), of the log's Epoch.
	Since map[string]uint64
	Epoch string

	// In and Out are the terminal. Default os.Stdin and os.Stdout. When
	// In is a terminal, it is put in raw mode and restored on return.
	In  io.Reader
	Out io.Writer

	// Client sets the connection's options (backoff, timeouts, TLS,
	// headers); Run fills in Nick, Rooms, Since and Epoch from above and
	// always reconnects.
	Client client.Options
	// Logger gets the client's debug and warning records. Default: discard
	// (the terminal is the UI's).
	Logger *slog.Logger
}

// Run runs the full-screen chat until the user quits; it returns nil on a
// normal quit (Ctrl+C, Ctrl+D, /quit, or ctx ending). It returns an error
// when the first connection fails (nothing is drawn then) or when the
// connection ends for good (after the terminal is restored). On return the
// connection is closed with 1000 and the terminal is as it was.
func Run(ctx context.Context, url string, opts Options) error {
	copts := opts.Client
	copts.Nick, copts.Rooms, copts.Since, copts.Epoch = opts.Nick, opts.Rooms, opts.Since, opts.Epoch
	if len(copts.Rooms) == 0 {
		copts.Rooms = []string{"lobby"}
	}
	copts.Reconnect = true
	if opts.Logger != nil {
		copts.Logger = opts.Logger
	}
	c, err := client.Dial(ctx, url, copts)
	var notices []string
	if errors.Is(err, client.ErrNickTaken) {
		// Start anyway, as a guest: the user picks another nick inside.
		notices = append(notices, fmt.Sprintf("! nick %q is taken; you are a guest: choose another with /nick NAME", opts.Nick))
		copts.Nick = ""
		c, err = client.Dial(ctx, url, copts)
	}
	if err != nil {
		return err
	}
	defer c.Close()

	st := c.Status()
	m := newModel(c, st.URL, st.Nick, copts.Rooms, notices...)
	in, out := opts.In, opts.Out
	if in == nil {
		in = os.Stdin
	}
	if out == nil {
		out = os.Stdout
	}
	p := tea.NewProgram(m, tea.WithContext(ctx), tea.WithInput(in), tea.WithOutput(out))

	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		pump(c.Events(), p.Send)
	}()
	_, err = p.Run()
	if m.err == nil {
		// A line typed just before /quit should still go out.
		flush(c)
	}
	// Close before waiting: it ends Events, which ends the pump (p.Send
	// does nothing once the program has ended).
	cerr := c.Close()
	wg.Wait()
	switch {
	case m.err != nil:
		return m.err
	case err == nil, errors.Is(err, tea.ErrInterrupted), ctx.Err() != nil:
		// A quit, a SIGINT, or the caller ending ctx (SIGTERM): a
		// normal end.
		return cerr
	}
	return fmt.Errorf("terminal: %w", err)
}

// flushTimeout bounds how long quitting waits for the server to answer
// what is still pending.
const flushTimeout = 2 * time.Second

// flush waits, connected, a little for the answers to what was sent.
// While reconnecting it does not: the user asked to leave.
func flush(c *client.Client) {
	if st := c.Status(); st.State != client.StateConnected || st.Pending == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), flushTimeout)
	defer cancel()
	c.Flush(ctx)
}

// maxBatch bounds how many events one eventsMsg carries.
const maxBatch = 512

// pump hands the client's events to the program until the client closes
// them, batching what has piled up.
func pump(events <-chan client.Event, send func(tea.Msg)) {
	for ev := range events {
		batch := eventsMsg{ev}
	more:
		for len(batch) < maxBatch {
			select {
			case ev, ok := <-events:
				if !ok {
					break more
				}
				batch = append(batch, ev)
			default:
				break more
			}
		}
		send(batch)
	}
}
