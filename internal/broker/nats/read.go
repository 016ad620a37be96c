package nats

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/nats-io/nats.go"

	"parley/internal/broker"
	"parley/internal/chat"
)

const (
	// defaultLimit is a page's size when Query.Limit is not positive;
	// maxLimit caps it.
	defaultLimit = 100
	maxLimit     = 10000
)

// getRequest is JetStream's message get request (JSApiMsgGetRequest).
type getRequest struct {
	Seq     uint64 `json:"seq,omitempty"`
	LastFor string `json:"last_by_subj,omitempty"`
	NextFor string `json:"next_by_subj,omitempty"`
	Batch   int    `json:"batch,omitempty"`
}

var errNotFound = errors.New("no message")

// getLeader asks the stream leader (the JS API, not a direct get), so the
// answer reflects every acknowledged message.
func (b *Broker) getLeader(ctx context.Context, req getRequest) (chat.Message, error) {
	body, _ := json.Marshal(req)
	reply, err := b.nc.RequestWithContext(ctx, "$JS.API.STREAM.MSG.GET."+b.cfg.Stream, body)
	if err != nil {
		return chat.Message{}, fmt.Errorf("msg get: %w", err)
	}
	var resp struct {
		Error *struct {
			Code        int    `json:"code"`
			ErrCode     int    `json:"err_code"`
			Description string `json:"description"`
		} `json:"error"`
		Message *struct {
			Subject string    `json:"subject"`
			Seq     uint64    `json:"seq"`
			Header  []byte    `json:"hdrs"`
			Data    []byte    `json:"data"`
			Time    time.Time `json:"time"`
		} `json:"message"`
	}
	if err := json.Unmarshal(reply.Data, &resp); err != nil {
		return chat.Message{}, fmt.Errorf("msg get: %w", err)
	}
	if resp.Error != nil {
		if resp.Error.Code == 404 {
			return chat.Message{}, errNotFound
		}
		return chat.Message{}, fmt.Errorf("msg get: %s (%d)", resp.Error.Description, resp.Error.ErrCode)
	}
	if resp.Message == nil {
		return chat.Message{}, errors.New("msg get: empty answer")
	}
	h := nats.Header{}
	if len(resp.Message.Header) > 0 {
		h = parseHeader(resp.Message.Header)
	}
	return decode(b.prefix, resp.Message.Subject, resp.Message.Seq, h, resp.Message.Data, resp.Message.Time)
}

// parseHeader parses a stored header block: "NATS/1.0" then "Key: value"
// lines, each ending in CRLF.
func parseHeader(block []byte) nats.Header {
	h := nats.Header{}
	lines := strings.Split(string(block), "\r\n")
	for _, line := range lines[1:] {
		k, v, ok := strings.Cut(line, ":")
		if !ok || k == "" {
			continue
		}
		h.Add(strings.TrimSpace(k), strings.TrimSpace(v))
	}
	return h
}

// direct sends a direct-get request (answered by any current replica) and
// calls each for every message of the answer, in order. It returns the
// number of messages the server says are still pending after the batch
// (0 when there are none, or for a single get), or errNotFound.
func (b *Broker) direct(ctx context.Context, req getRequest, each func(chat.Message)) (pending uint64, err error) {
	body, _ := json.Marshal(req)
	inbox := b.nc.NewRespInbox()
	sub, err := b.nc.SubscribeSync(inbox)
	if err != nil {
		return 0, fmt.Errorf("direct get: %w", err)
	}
	defer sub.Unsubscribe()
	if err := b.nc.PublishRequest("$JS.API.DIRECT.GET."+b.cfg.Stream, inbox, body); err != nil {
		return 0, fmt.Errorf("direct get: %w", err)
	}
	for n := 0; ; n++ {
		msg, err := sub.NextMsgWithContext(ctx)
		if err != nil {
			return 0, fmt.Errorf("direct get: %w", err)
		}
		switch status := msg.Header.Get(hdrStatus); status {
		case "":
		case "204": // end of batch
			pending, _ = strconv.ParseUint(msg.Header.Get(hdrPending), 10, 64)
			return pending, nil
		case "404":
			return 0, errNotFound
		default:
			return 0, fmt.Errorf("direct get: status %s %s", status, msg.Header.Get("Description"))
		}
		m, err := decodeDirect(b.prefix, msg)
		if err != nil {
			return 0, err
		}
		each(m)
		if req.Batch == 0 {
			return 0, nil
		}
	}
}

// Read answers q from the room's subject. See the package comment for how
// replicas are kept honest and how First relates to gaps.
func (b *Broker) Read(ctx context.Context, q broker.Query) (broker.Page, error) {
	if b.isClosed() {
		return broker.Page{}, broker.ErrClosed
	}
	if err := chat.ValidName(q.Room); err != nil {
		return broker.Page{}, fmt.Errorf("nats read: room %q %w", q.Room, err)
	}
	limit := q.Limit
	if limit <= 0 {
		limit = defaultLimit
	}
	limit = min(limit, maxLimit)
	ctx, cancel := withTimeout(ctx)
	defer cancel()
	subj := b.subject(q.Room)

	// The oldest id (any replica) and the newest (from the leader: the
	// read must reach it), asked side by side.
	var (
		first    uint64
		firstErr error
		wg       sync.WaitGroup
	)
	wg.Go(func() { first, firstErr = b.first(ctx, subj) })
	last, err := b.getLeader(ctx, getRequest{LastFor: subj})
	wg.Wait()
	if errors.Is(err, errNotFound) {
		// No message held: the room is new, or retention removed all of
		// it. Last is then the stream's last sequence, the newest id the
		// room could have had, so that a reader who saw some of it is told
		// of a gap (First 0, Last > After), not of a reset. The stream's
		// last sequence is read first and the room asked again after it:
		// a message stored in between would otherwise hide under Last.
		info, ierr := b.stream.Info(ctx)
		if ierr != nil {
			return broker.Page{}, fmt.Errorf("nats read %s: %w", q.Room, ierr)
		}
		last, err = b.getLeader(ctx, getRequest{LastFor: subj})
		if errors.Is(err, errNotFound) {
			return broker.Page{Last: info.State.LastSeq}, nil
		}
		if err == nil {
			first, firstErr = b.first(ctx, subj)
		}
	}
	if err != nil {
		return broker.Page{}, fmt.Errorf("nats read %s: %w", q.Room, err)
	}
	if firstErr != nil {
		return broker.Page{}, fmt.Errorf("nats read %s: %w", q.Room, firstErr)
	}
	page := broker.Page{First: first, Last: last.ID}
	if q.Backward {
		page.Messages, err = b.readBackward(ctx, subj, q.Before, limit, page)
	} else {
		page.Messages, err = b.readForward(ctx, subj, q.After, limit, last.ID)
	}
	if err != nil {
		return broker.Page{}, fmt.Errorf("nats read %s: %w", q.Room, err)
	}
	return page, nil
}

// first is the subject's oldest retained sequence, from any replica. A
// lagging replica may still hold a message the leader has expired, so First
// can be too small for a moment: that delays a gap to the next read, it
// never invents one. A replica that holds nothing yet is not believed: the
// caller has seen a last message, so the leader is asked.
func (b *Broker) first(ctx context.Context, subj string) (uint64, error) {
	var first uint64
	_, err := b.direct(ctx, getRequest{Seq: 1, NextFor: subj}, func(m chat.Message) { first = m.ID })
	if err == nil {
		return first, nil
	}
	if !errors.Is(err, errNotFound) {
		return 0, err
	}
	m, err := b.getLeader(ctx, getRequest{Seq: 1, NextFor: subj})
	if errors.Is(err, errNotFound) {
		return 0, nil // expired meanwhile: the room is empty now
	}
	return m.ID, err
}

// Replicas answer direct gets, and one may lag the leader by a few
// milliseconds. A read that ends before the leader's last id (when it
// should have reached it) is retried a few times, then completed from the
// leader one message per request.
const (
	staleRetries = 3
	staleBackoff = 10 * time.Millisecond // doubled at each retry
)

func newest(ms []chat.Message) uint64 {
	if len(ms) == 0 {
		return 0
	}
	return ms[len(ms)-1].ID
}

// pause waits d or until ctx is done.
func pause(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// readForward returns up to limit messages with ids > after, oldest first.
func (b *Broker) readForward(ctx context.Context, subj string, after uint64, limit int, last uint64) ([]chat.Message, error) {
	for attempt := 0; ; attempt++ {
		out, err := b.directRange(ctx, subj, after+1, last, limit)
		if err != nil {
			return nil, err
		}
		if len(out) == limit || newest(out) >= last {
			return out, nil
		}
		if attempt == staleRetries {
			// Still behind: the leader fills in the rest (at most limit).
			from := after + 1
			if len(out) > 0 {
				from = newest(out) + 1
			}
			more, err := b.leaderRange(ctx, subj, from, last, limit-len(out))
			return append(out, more...), err
		}
		if err := pause(ctx, staleBackoff<<attempt); err != nil {
			return nil, err
		}
	}
}

// directRange returns up to limit messages of the subject with
// lo <= id <= hi, oldest first, from direct gets.
func (b *Broker) directRange(ctx context.Context, subj string, lo, hi uint64, limit int) ([]chat.Message, error) {
	var out []chat.Message
	next := lo
	for len(out) < limit && next <= hi {
		n := len(out)
		done := false
		// [next, hi] holds at most hi-next+1 of the subject's messages:
		// asking for more would only fetch messages past hi.
		batch := int(min(uint64(limit-len(out)), hi-next+1, 1024))
		pending, err := b.direct(ctx, getRequest{Seq: next, NextFor: subj, Batch: batch},
			func(m chat.Message) {
				if m.ID > hi {
					done = true
				}
				if !done {
					out = append(out, m)
				}
			})
		if err != nil && !errors.Is(err, errNotFound) {
			return nil, err
		}
		if done || len(out) == n || pending == 0 {
			break // past hi, or this replica holds nothing more
		}
		next = newest(out) + 1
	}
	return out, nil
}

// leaderRange reads up to max messages with from <= id <= hi from the
// leader, one per request. It is the rare path.
func (b *Broker) leaderRange(ctx context.Context, subj string, from, hi uint64, max int) ([]chat.Message, error) {
	var out []chat.Message
	for len(out) < max && from <= hi {
		m, err := b.getLeader(ctx, getRequest{Seq: from, NextFor: subj})
		if errors.Is(err, errNotFound) || err == nil && m.ID > hi {
			break
		}
		if err != nil {
			return nil, err
		}
		out = append(out, m)
		from = m.ID + 1
	}
	return out, nil
}

// readBackward returns the newest limit messages with ids < before (no
// bound when 0), oldest first.
func (b *Broker) readBackward(ctx context.Context, subj string, before uint64, limit int, page broker.Page) ([]chat.Message, error) {
	hi := page.Last
	if before > 0 && before-1 < hi {
		hi = before - 1
	}
	if page.First == 0 || hi < page.First {
		return nil, nil
	}
	for attempt := 0; ; attempt++ {
		out, err := b.directBackward(ctx, subj, page.First, hi, limit)
		if err != nil {
			return nil, err
		}
		// Only a read that should end at the leader's last id can tell a
		// lagging replica; older pages are long replicated.
		if hi != page.Last || newest(out) >= hi {
			return out, nil
		}
		if attempt == staleRetries {
			// Still behind: take the missing newest from the leader, but
			// only if they fit in a page; else the replica is too far
			// behind to be worth walking.
			from := page.First
			if len(out) > 0 {
				from = newest(out) + 1
			}
			more, err := b.leaderRange(ctx, subj, from, hi, 4*limit)
			if err != nil {
				return nil, err
			}
			if newest(more) < hi {
				return nil, fmt.Errorf("the replica that answers is too far behind the stream leader")
			}
			out = append(out, more...)
			return out[max(0, len(out)-limit):], nil
		}
		if err := pause(ctx, staleBackoff<<attempt); err != nil {
			return nil, err
		}
	}
}

// directBackward reads the newest limit messages with first <= id <= hi.
// JetStream cannot walk a subject backwards, so it reads forward over
// windows of stream sequences ending at hi, each four times wider than the
// last, until it holds limit messages or reaches first: a busy room is
// read in one window, a quiet one among busy rooms in a few.
func (b *Broker) directBackward(ctx context.Context, subj string, first, hi uint64, limit int) ([]chat.Message, error) {
	var windows [][]chat.Message // newest window first
	count := 0
	width := uint64(max(2*limit, 64))
	for end := hi; count < limit; width *= 4 {
		lo := first
		if end-lo+1 > width {
			lo = end - width + 1
		}
		w, err := b.directRange(ctx, subj, lo, end, math.MaxInt)
		if err != nil {
			return nil, err
		}
		windows = append(windows, w)
		count += len(w)
		if lo <= first {
			break
		}
		end = lo - 1
	}
	out := make([]chat.Message, 0, count)
	for _, w := range slices.Backward(windows) {
		out = append(out, w...)
	}
	return out[max(0, len(out)-limit):], nil
}

func sortRooms(rooms []broker.RoomInfo) {
	slices.SortFunc(rooms, func(a, b broker.RoomInfo) int {
		return strings.Compare(chat.FoldName(a.Name), chat.FoldName(b.Name))
	})
}
