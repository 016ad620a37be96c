package local

import (
	"context"
	"fmt"
	"path/filepath"
	"sort"
	"sync"
	"testing"
	"time"

	"pgregory.net/rapid"

	"parley/internal/broker"
	"parley/internal/chat"
)

// logModel is what the broker must hold: every acknowledged message per
// room, in id order, and the refs seen.
type logModel struct {
	acked map[string][]chat.Message // by folded room: every stored message
	held  map[string]int            // by folded room: index of the oldest still held
	refs  map[refKey]chat.Message
}

// TestPropertyLog drives one broker with random interleavings of appends
// (single and concurrent, several rooms, refs and retries), reads, retention
// and reopens, and checks after each step that ids are contiguous per room,
// that reads return exactly the acknowledged messages still held, in order,
// and that deliveries are exactly the stored messages in id order.
func TestPropertyLog(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	n := 0
	rapid.Check(t, func(rt *rapid.T) {
		n++
		path := filepath.Join(dir, fmt.Sprintf("prop%d.db", n))
		cfg := Config{Path: path, RetainMessages: 6, TrimInterval: time.Hour} // trims only when the test says
		rec := &recorder{}
		b, err := Open(context.Background(), cfg, rec.deliver)
		if err != nil {
			rt.Fatal(err)
		}
		rt.Cleanup(func() { b.Close() })
		m := &logModel{acked: map[string][]chat.Message{}, held: map[string]int{}, refs: map[refKey]chat.Message{}}

		genMsg := func(rt *rapid.T, label string) chat.Message {
			return chat.Message{
				Room: rapid.SampledFrom([]string{"lobby", "Lobby", "dev", "x_1"}).Draw(rt, label+"room"),
				From: rapid.SampledFrom([]string{"alice", "Alice", "bob"}).Draw(rt, label+"from"),
				Text: rapid.StringN(0, 8, -1).Draw(rt, label+"text"),
				Kind: chat.Kind(rapid.IntRange(0, 1).Draw(rt, label+"kind")),
				Ref:  rapid.SampledFrom([]string{"", "", "r1", "r2", "r3"}).Draw(rt, label+"ref"),
			}
		}

		rt.Repeat(map[string]func(*rapid.T){
			"append": func(rt *rapid.T) {
				msg := genMsg(rt, "")
				got, err := b.Append(context.Background(), msg)
				if err != nil {
					rt.Fatal(err)
				}
				m.check(rt, []chat.Message{msg}, []chat.Message{got})
			},
			"concurrent": func(rt *rapid.T) {
				k := rapid.IntRange(2, 12).Draw(rt, "k")
				msgs := make([]chat.Message, k)
				for i := range msgs {
					msgs[i] = genMsg(rt, fmt.Sprint(i))
				}
				got := make([]chat.Message, k)
				errs := make([]error, k)
				var wg sync.WaitGroup
				for i := range msgs {
					wg.Add(1)
					go func() {
						defer wg.Done()
						got[i], errs[i] = b.Append(context.Background(), msgs[i])
					}()
				}
				wg.Wait()
				for _, err := range errs {
					if err != nil {
						rt.Fatal(err)
					}
				}
				m.check(rt, msgs, got)
			},
			"read": func(rt *rapid.T) {
				room := rapid.SampledFrom([]string{"lobby", "LOBBY", "dev", "x_1", "empty"}).Draw(rt, "room")
				key := chat.FoldName(room)
				all := m.acked[key]
				last := uint64(len(all))
				q := broker.Query{Room: room, Limit: rapid.IntRange(0, 8).Draw(rt, "limit")}
				if q.Backward = rapid.Bool().Draw(rt, "backward"); q.Backward {
					q.Before = uint64(rapid.IntRange(0, int(last)+2).Draw(rt, "before"))
				} else {
					q.After = uint64(rapid.IntRange(0, int(last)+2).Draw(rt, "after"))
				}
				p, err := b.Read(context.Background(), q)
				if err != nil {
					rt.Fatal(err)
				}
				held := all[m.held[key]:]
				var want []chat.Message
				for _, msg := range held {
					if q.Backward && (q.Before == 0 || msg.ID < q.Before) || !q.Backward && msg.ID > q.After {
						want = append(want, msg)
					}
				}
				if q.Limit > 0 && len(want) > q.Limit {
					if q.Backward {
						want = want[len(want)-q.Limit:]
					} else {
						want = want[:q.Limit]
					}
				}
				if fmt.Sprint(p.Messages) != fmt.Sprint(want) {
					rt.Fatalf("Read(%+v) = %v, want %v", q, p.Messages, want)
				}
				var first uint64
				if len(held) > 0 {
					first = held[0].ID
				}
				if p.First != first || p.Last != last {
					rt.Fatalf("Read(%+v): first %d last %d, want %d %d", q, p.First, p.Last, first, last)
				}
			},
			"trim": func(rt *rapid.T) {
				if err := b.trim(context.Background()); err != nil {
					rt.Fatal(err)
				}
				for key, all := range m.acked {
					m.held[key] = max(m.held[key], len(all)-cfg.RetainMessages)
				}
			},
			"reopen": func(rt *rapid.T) {
				epoch := b.Epoch()
				if err := b.Close(); err != nil {
					rt.Fatal(err)
				}
				b, err = Open(context.Background(), cfg, rec.deliver)
				if err != nil {
					rt.Fatal(err)
				}
				if b.Epoch() != epoch {
					rt.Fatalf("epoch changed on reopen: %s -> %s", epoch, b.Epoch())
				}
			},
			"": func(rt *rapid.T) {
				// After every step: deliveries are exactly the stored
				// messages, in id order per room.
				delivered := map[string][]chat.Message{}
				for _, msg := range rec.get() {
					key := chat.FoldName(msg.Room)
					delivered[key] = append(delivered[key], msg)
				}
				for key, all := range m.acked {
					if fmt.Sprint(delivered[key]) != fmt.Sprint(all) {
						rt.Fatalf("room %s: delivered %v, stored %v", key, delivered[key], all)
					}
				}
			},
		})
	})
}

// check folds the results of appends that ran concurrently into the model,
// checking that retries got their original and new messages took the next
// ids of their room without holes.
func (m *logModel) check(rt *rapid.T, sent, got []chat.Message) {
	fresh := map[string][]chat.Message{} // by room: messages new to the model
	newRefs := map[refKey][]int{}        // refs new to the model -> indexes into sent
	for i, msg := range sent {
		if msg.Ref != "" {
			k := refKey{chat.FoldName(msg.From), msg.Ref}
			if orig, ok := m.refs[k]; ok {
				if got[i].ID != orig.ID || got[i].Room != orig.Room {
					rt.Fatalf("retry %+v got %+v, want the original %+v", msg, got[i], orig)
				}
				continue
			}
			newRefs[k] = append(newRefs[k], i)
			continue
		}
		if !sameContent(msg, got[i]) {
			rt.Fatalf("Append(%+v) = %+v", msg, got[i])
		}
		fresh[chat.FoldName(msg.Room)] = append(fresh[chat.FoldName(msg.Room)], got[i])
	}
	// Sends that share a new ref: one of them was stored, and all got it.
	for k, idx := range newRefs {
		stored := got[idx[0]]
		found := false
		for _, i := range idx {
			if got[i] != stored {
				rt.Fatalf("sends with one ref got %+v and %+v", stored, got[i])
			}
			found = found || sameContent(sent[i], stored)
		}
		if !found {
			rt.Fatalf("sends with ref %v got %+v, which none of them sent", k, stored)
		}
		key := chat.FoldName(stored.Room)
		fresh[key] = append(fresh[key], stored)
		m.refs[k] = stored
	}
	for key, msgs := range fresh {
		sort.Slice(msgs, func(i, j int) bool { return msgs[i].ID < msgs[j].ID })
		all := m.acked[key]
		for _, msg := range msgs {
			if want := uint64(len(all) + 1); msg.ID != want {
				rt.Fatalf("room %s: new message got id %d, want %d", key, msg.ID, want)
			}
			if len(all) > 0 && (msg.Room != all[0].Room || msg.Time.Before(all[len(all)-1].Time)) {
				rt.Fatalf("room %s: message %+v after %+v", key, msg, all[len(all)-1])
			}
			all = append(all, msg)
		}
		m.acked[key] = all
	}
}

func sameContent(sent, got chat.Message) bool {
	return chat.FoldName(got.Room) == chat.FoldName(sent.Room) && got.From == sent.From &&
		got.Text == sent.Text && got.Kind == sent.Kind && got.Ref == sent.Ref
}
