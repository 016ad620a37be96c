package nats

import (
	"context"
	"fmt"
	"sync/atomic"
	"testing"

	"parley/internal/broker"
	"parley/internal/broker/nats/natstest"
	"parley/internal/chat"
)

// BenchmarkAppend measures acknowledged appends to one room through one
// broker on one embedded NATS server (file store, R1).
func BenchmarkAppend(b *testing.B) {
	srv := natstest.Start(b)
	br, err := Open(context.Background(), Config{URL: srv.URL(), Node: "bench"}, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer br.Close()
	ctx := context.Background()
	m := chat.Message{Room: "lobby", From: "bench", Text: "hello, this is a message of ordinary length"}
	b.Run("serial", func(b *testing.B) {
		for b.Loop() {
			if _, err := br.Append(ctx, m); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("parallel", func(b *testing.B) {
		var n atomic.Int64
		b.SetParallelism(16) // many sessions sending at once
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				mm := m
				mm.Ref = fmt.Sprint(n.Add(1))
				if _, err := br.Append(ctx, mm); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
}

// BenchmarkRead measures a 50-message history page (backward) and a
// 100-message resume (forward) in a room sharing the stream with a busier
// one.
func BenchmarkRead(b *testing.B) {
	srv := natstest.Start(b)
	br, err := Open(context.Background(), Config{URL: srv.URL(), Node: "bench"}, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer br.Close()
	ctx := context.Background()
	var mid uint64
	for i := range 2000 {
		room := "busy"
		if i%4 == 0 {
			room = "lobby"
		}
		m, err := br.Append(ctx, chat.Message{Room: room, From: "bench", Text: "hello"})
		if err != nil {
			b.Fatal(err)
		}
		if i == 1000 {
			mid = m.ID
		}
	}
	b.Run("backward50", func(b *testing.B) {
		for b.Loop() {
			p, err := br.Read(ctx, broker.Query{Room: "lobby", Backward: true, Limit: 50})
			if err != nil || len(p.Messages) != 50 {
				b.Fatal(err, len(p.Messages))
			}
		}
	})
	b.Run("forward100", func(b *testing.B) {
		for b.Loop() {
			p, err := br.Read(ctx, broker.Query{Room: "lobby", After: mid, Limit: 100})
			if err != nil || len(p.Messages) != 100 {
				b.Fatal(err, len(p.Messages))
			}
		}
	})
}
