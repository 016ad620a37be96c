package client

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"parley/internal/chat"
	"parley/internal/protocol"
)

// request is one command, tracked from Post until its answer.
type request struct {
	ref   string
	cmd   protocol.Command
	frame []byte
	// ackless: the text format, answered when written.
	ackless bool
	// internal: the client's own (Sync's barrier, rejoins after a
	// reconnect); its answer is not delivered on Events, an error is.
	internal bool
	tries    int // rate_limited resends

	done     chan struct{} // closed when answered
	answered bool          // guarded by Client.mu
	answer   protocol.Event
	err      error
}

func encodeCommand(cmd *protocol.Command) []byte {
	b, _ := json.Marshal(cmd)
	return b
}

// Post sends cmd without waiting for its answer, and returns its ref (one
// is assigned when cmd.Ref is empty). The answer (an ack, the who, rooms or
// history event, or an error with the ref) arrives on Events; Flush waits
// for it. Until then the command is resent after a reconnect. In the text
// format, cmd is sent as its line (/join ROOM, ...) and is answered once
// written.
func (c *Client) Post(ctx context.Context, cmd protocol.Command) (string, error) {
	r, err := c.post(ctx, cmd)
	if err != nil {
		return "", err
	}
	return r.ref, nil
}

// Do sends cmd and waits for its answer: the ack, or the event that answers
// it (who, rooms, history). An error event comes back as a *ServerError.
// If ctx ends first, the command stays tracked and its answer still arrives
// on Events.
func (c *Client) Do(ctx context.Context, cmd protocol.Command) (protocol.Event, error) {
	r, err := c.post(ctx, cmd)
	if err != nil {
		return protocol.Event{}, err
	}
	select {
	case <-r.done:
		return r.answer, r.err
	case <-ctx.Done():
		return protocol.Event{}, ctx.Err()
	}
}

// Send sends text to room (an action, "/me", when action is set) and
// returns its ref once it is queued, without waiting for the ack: Flush
// waits for every ack. It blocks while Options.MaxInFlight sends are
// unanswered. While reconnecting it queues; the send goes out, with the
// same ref, once connected. In the text format, room changes the current
// room first (/join) if it differs, and the ref is empty.
func (c *Client) Send(ctx context.Context, room, text string, action bool) (string, error) {
	return c.Post(ctx, protocol.Command{Type: protocol.CmdSend, Room: room, Text: text, Action: action})
}

// Join joins room and waits for the ack; the room's history (after since
// when given, else the latest) then arrives on Events. The client resumes
// the room after a reconnect.
func (c *Client) Join(ctx context.Context, room string, since *uint64) error {
	_, err := c.Do(ctx, protocol.Command{Type: protocol.CmdJoin, Room: room, Since: since})
	return err
}

// Leave leaves room and waits for the ack.
func (c *Client) Leave(ctx context.Context, room string) error {
	_, err := c.Do(ctx, protocol.Command{Type: protocol.CmdLeave, Room: room})
	return err
}

// Nick changes our nick and waits for the answer: errors.Is(err,
// ErrNickTaken) when it is in use.
func (c *Client) Nick(ctx context.Context, nick string) error {
	_, err := c.Do(ctx, protocol.Command{Type: protocol.CmdNick, Nick: nick})
	return err
}

// Who returns the members of room (any room, joined or not). Text format:
// the answer arrives as lines on Events, and Who returns nil.
func (c *Client) Who(ctx context.Context, room string) ([]string, error) {
	ev, err := c.Do(ctx, protocol.Command{Type: protocol.CmdWho, Room: room})
	return ev.Members, err
}

// Rooms returns the rooms that have members. Text format: as Who.
func (c *Client) Rooms(ctx context.Context) ([]protocol.RoomInfo, error) {
	ev, err := c.Do(ctx, protocol.Command{Type: protocol.CmdRooms})
	return ev.Rooms, err
}

// History returns up to limit messages of room with ids below before (0:
// the newest), oldest first, in the history event's Messages; More says
// whether older ones exist. limit 0 means the server's default (50). JSON
// only.
func (c *Client) History(ctx context.Context, room string, before uint64, limit int) (protocol.Event, error) {
	return c.Do(ctx, protocol.Command{Type: protocol.CmdHistory, Room: room, Before: before, Limit: limit})
}

// Flush waits until every command is answered (JSON: every send
// acknowledged or refused; text: every line written). Once the client has
// ended it returns why (Err, or ErrClosed after Close): what was still
// pending then failed. It returns ctx's error if ctx ends first.
func (c *Client) Flush(ctx context.Context) error {
	for {
		c.mu.Lock()
		if c.ended {
			err := c.endErr
			c.mu.Unlock()
			if err == nil {
				err = ErrClosed
			}
			return err
		}
		if len(c.pending) == 0 {
			c.mu.Unlock()
			return nil
		}
		ch := c.changed
		c.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// Sync waits until the server has answered everything sent so far and
// every event it queued before those answers has been delivered on Events:
// Flush, then one round trip (a rooms command whose answer is not
// delivered). The server handles a connection's commands in order, so the
// history that follows a join, and the echo of our own sends, come before
// the barrier's answer. A script calls it before Close so that its output
// is complete. Text format: as Flush.
func (c *Client) Sync(ctx context.Context) error {
	if err := c.Flush(ctx); err != nil {
		return err
	}
	if c.opts.Text {
		return nil
	}
	r, err := c.post(ctx, protocol.Command{Type: protocol.CmdRooms}, true)
	if err != nil {
		return err
	}
	select {
	case <-r.done:
		return r.err
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (c *Client) post(ctx context.Context, cmd protocol.Command, internal ...bool) (*request, error) {
	if err := checkCommand(&cmd); err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	for cmd.Type == protocol.CmdSend && c.inFlightLocked() >= c.opts.MaxInFlight {
		if c.closed || c.ended {
			break
		}
		ch := c.changed
		c.mu.Unlock()
		select {
		case <-ch:
		case <-ctx.Done():
			c.mu.Lock()
			return nil, ctx.Err()
		}
		c.mu.Lock()
	}
	if c.closed {
		return nil, ErrClosed
	}
	if c.ended {
		if c.endErr != nil {
			return nil, c.endErr
		}
		return nil, ErrClosed
	}
	if c.opts.Text {
		return c.postTextLocked(cmd)
	}
	r, err := c.postLocked(cmd)
	if err == nil && len(internal) > 0 && internal[0] {
		r.internal = true
	}
	return r, err
}

func (c *Client) inFlightLocked() int {
	n := 0
	for _, r := range c.pending {
		if r.cmd.Type == protocol.CmdSend {
			n++
		}
	}
	return n
}

// checkCommand refuses, before sending, what the server would refuse.
func checkCommand(cmd *protocol.Command) error {
	switch cmd.Type {
	case protocol.CmdSend:
		if strings.TrimSpace(cmd.Text) == "" {
			return errors.New("the message is empty")
		}
	case protocol.CmdNick:
		if err := chat.ValidName(cmd.Nick); err != nil {
			return badNick(cmd.Nick, err)
		}
	}
	if cmd.Room != "" || cmd.Type == protocol.CmdJoin {
		if err := chat.ValidName(cmd.Room); err != nil {
			return badRoom(cmd.Room, err)
		}
	}
	if len(cmd.Ref) > 64 {
		return errors.New("ref is longer than 64 bytes")
	}
	return nil
}

// postLocked registers a JSON command and queues it on the current
// connection, if any.
func (c *Client) postLocked(cmd protocol.Command) (*request, error) {
	if cmd.Ref == "" {
		c.seq++
		cmd.Ref = c.refPrefix + "-" + strconv.FormatUint(c.seq, 10)
	} else if c.byRef[cmd.Ref] != nil {
		return nil, fmt.Errorf("ref %q is already waiting for an answer", cmd.Ref)
	}
	r := &request{ref: cmd.Ref, cmd: cmd, frame: encodeCommand(&cmd), done: make(chan struct{})}
	if cmd.Type == protocol.CmdSend && c.limits.MaxMessageBytes > 0 && len(r.frame) > c.limits.MaxMessageBytes {
		return nil, fmt.Errorf("%w: %d bytes with its envelope, the server takes at most %d", ErrTooLong, len(r.frame), c.limits.MaxMessageBytes)
	}
	switch cmd.Type {
	case protocol.CmdJoin:
		if _, ok := c.roomLocked(cmd.Room); !ok {
			c.rooms = append(c.rooms, &roomState{name: cmd.Room, epoch: cmd.Epoch})
		}
	case protocol.CmdLeave:
		c.removeRoomLocked(cmd.Room)
	}
	c.pending = append(c.pending, r)
	c.byRef[r.ref] = r
	if cn := c.conn; cn != nil {
		cn.queue = append(cn.queue, r)
		cn.wakeWriter()
	}
	return r, nil
}

// postTextLocked turns cmd into text-format lines and queues them.
func (c *Client) postTextLocked(cmd protocol.Command) (*request, error) {
	var line string
	switch cmd.Type {
	case protocol.CmdSend:
		if cmd.Room != "" && !strings.EqualFold(cmd.Room, c.textRoom) {
			if _, err := c.queueTextLocked("/join " + cmd.Room); err != nil {
				return nil, err
			}
			c.textRoom = cmd.Room
		}
		switch {
		case cmd.Action:
			line = "/me " + cmd.Text
		case strings.HasPrefix(cmd.Text, "/") && !c.opts.Raw:
			line = "/" + cmd.Text
		default:
			line = cmd.Text
		}
	case protocol.CmdJoin:
		line = "/join " + cmd.Room
		c.textRoom = cmd.Room
	case protocol.CmdLeave:
		line = strings.TrimSpace("/leave " + cmd.Room)
	case protocol.CmdNick:
		line = "/nick " + cmd.Nick
	case protocol.CmdWho:
		line = strings.TrimSpace("/who " + cmd.Room)
	case protocol.CmdRooms:
		line = "/rooms"
	default:
		return nil, fmt.Errorf("%s: %w", cmd.Type, ErrUnsupported)
	}
	return c.queueTextLocked(line)
}

func (c *Client) queueTextLocked(line string) (*request, error) {
	r := &request{cmd: protocol.Command{Type: "line"}, frame: []byte(line), ackless: true, done: make(chan struct{})}
	if c.limits.MaxMessageBytes > 0 && len(r.frame) > c.limits.MaxMessageBytes {
		return nil, fmt.Errorf("%w: %d bytes, the server takes at most %d", ErrTooLong, len(r.frame), c.limits.MaxMessageBytes)
	}
	c.pending = append(c.pending, r)
	if cn := c.conn; cn != nil {
		cn.queue = append(cn.queue, r)
		cn.wakeWriter()
	}
	return r, nil
}

// resolveLocked answers r: it stops being pending and its waiter wakes.
func (c *Client) resolveLocked(r *request, answer protocol.Event, err error) {
	if r.answered {
		return
	}
	r.answered, r.answer, r.err = true, answer, err
	close(r.done)
	if r.ref != "" && c.byRef[r.ref] == r {
		delete(c.byRef, r.ref)
	}
	for i, p := range c.pending {
		if p == r {
			c.pending = append(c.pending[:i], c.pending[i+1:]...)
			break
		}
	}
	c.signalLocked()
}

// PostText sends line as one text frame, unchanged (Options.Text or Raw
// only): for tools that pass lines through.
func (c *Client) PostText(ctx context.Context, line string) error {
	if !c.opts.Text {
		return errors.New("PostText needs the text format")
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed || c.ended {
		return ErrClosed
	}
	_, err := c.queueTextLocked(line)
	return err
}
