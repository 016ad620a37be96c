// Package bench is the load generator behind `parley bench`: it connects
// many WebSocket clients to a chat server, has a few of them publish, and
// measures what every subscriber receives while checking parley's promise
// (nothing lost, nothing twice, one order per publisher).
//
// Two workloads:
//
//   - Run (fan-out): Config.Subs subscribers and Config.Pubs publishers in
//     Config.Rooms rooms. Each payload is exactly Config.Size bytes and
//     carries a run id, the publisher id, a per-publisher sequence number
//     and the send time (see payload.go), so receivers compute latency,
//     loss, duplicates and order without asking the server anything.
//   - RunIdle: open Config.Idle connections, Config.ConnectConcurrency at a
//     time, hold them, and report connect time and the server's memory.
//
// The WebSocket client is the package's own (ws.go, dial.go), on net.Conn
// with the standard library only: a load generator shares the cores with
// the server it measures, so it must cost as little as it can per
// connection and per frame (a library client over net/http cost more CPU
// to open 10,000 connections than the server did). Each connection is
// owned by one goroutine that reads it and closes it when reading ends;
// writes happen on publisher connections, from the publisher's own
// goroutine, and for pongs and closes from the reader, under the
// connection's mutex. Readers parse frames in place with bytes searches
// instead of decoding JSON.
//
// Concurrency: Run and RunIdle start every goroutine they use and wait for
// all of them before returning. Counters that the progress line reads while
// the run goes on are atomics; everything else a reader records is owned by
// that reader until Run has waited for it.
package bench
