package local

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"parley/internal/broker"
	"parley/internal/chat"
)

// BenchmarkAppend measures appends to a file database with group commit,
// from 1, 16 and 256 concurrent senders. ns/op is wall time per append over
// all senders; appends/s is the throughput; appends/tx the mean batch.
func BenchmarkAppend(b *testing.B) {
	for _, senders := range []int{1, 16, 256} {
		b.Run(fmt.Sprintf("senders=%d", senders), func(b *testing.B) {
			br := open(b, Config{Path: dbPath(b)}, func(chat.Message) {})
			text := "a message of a typical length, some forty to eighty bytes long"
			var next atomic.Int64
			var wg sync.WaitGroup
			b.ReportAllocs()
			b.ResetTimer()
			for s := 0; s < senders; s++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					from := fmt.Sprint("user", s)
					room := fmt.Sprint("room", s%8)
					for {
						i := next.Add(1)
						if i > int64(b.N) {
							return
						}
						if _, err := br.Append(context.Background(), chat.Message{Room: room, From: from, Text: text, Ref: fmt.Sprint("r", i)}); err != nil {
							b.Error(err)
							return
						}
					}
				}()
			}
			wg.Wait()
			b.StopTimer()
			st := br.Stats()
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "appends/s")
			b.ReportMetric(float64(st.Appends)/float64(max(st.Batches, 1)), "appends/tx")
		})
	}
}

// BenchmarkReadHistory50 reads the newest 50 messages of a room of 10,000,
// as a join does.
func BenchmarkReadHistory50(b *testing.B) {
	br := open(b, Config{Path: dbPath(b)}, nil)
	const n = 10000
	var next atomic.Int64
	var wg sync.WaitGroup
	for s := 0; s < 64; s++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= n {
				if _, err := br.Append(context.Background(), chat.Message{Room: "lobby", From: "alice", Text: "history message of a typical length"}); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	q := broker.Query{Room: "lobby", Backward: true, Limit: 50}
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		p, err := br.Read(context.Background(), q)
		if err != nil {
			b.Fatal(err)
		}
		if len(p.Messages) != 50 || p.Last != n {
			b.Fatalf("read %d messages, last %d", len(p.Messages), p.Last)
		}
	}
}
