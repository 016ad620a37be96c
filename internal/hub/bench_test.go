package hub_test

import (
	"fmt"
	"runtime"
	"testing"

	"parley/internal/hub"
	"parley/internal/server"
)

// queueSub is a Subscriber like a session: Deliver appends to a queue
// that a writer drains (here: reset when full, so the queue never grows).
type queueSub struct {
	nick  string
	queue []*hub.Frame
}

func (q *queueSub) Deliver(f *hub.Frame, v hub.Variant) {
	if len(q.queue) == cap(q.queue) {
		q.queue = q.queue[:0]
	}
	q.queue = append(q.queue, f)
}

func (q *queueSub) Nick() string { return q.nick }

// BenchmarkFanout1000 delivers one message to a room of 1,000 members
// using the server's real encoder. ns/delivery and allocs/delivery are per
// member reached; the per-message cost (the Frame and one encoding) is
// spread over them.
//
//	go test -run '^$' -bench Fanout1000 -count 5 ./internal/hub
func BenchmarkFanout1000(b *testing.B) {
	const members = 1000
	h := hub.New(hub.Config{Encode: server.Encode})
	for i := range members {
		h.Join("lobby", &queueSub{nick: fmt.Sprint("u", i), queue: make([]*hub.Frame, 0, 256)}, hub.VariantJSON)
	}
	m := msg("lobby", "alice", 1, "hello, everyone: a message of typical length for a chat room")
	b.ReportAllocs()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	b.ResetTimer()
	for b.Loop() {
		m.ID++
		h.Deliver(m)
	}
	b.StopTimer()
	runtime.ReadMemStats(&after)
	deliveries := float64(b.N) * members
	b.ReportMetric(float64(b.Elapsed().Nanoseconds())/deliveries, "ns/delivery")
	b.ReportMetric(float64(after.Mallocs-before.Mallocs)/deliveries, "allocs/delivery")
}
