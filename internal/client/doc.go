// Package client is parley's Go client: it dials a server, reports clear
// errors, delivers events, tracks every command until it is answered, and
// (with Options.Reconnect) reconnects with backoff and resumes where it left
// off. It is what "parley chat", "parley bench" and the tests use.
//
// # Using it
//
//	c, err := client.Dial(ctx, "ws://127.0.0.1:8080", client.Options{Nick: "alice", Rooms: []string{"lobby"}})
//	if err != nil { ... } // errors are worded for people: print err
//	defer c.Close()
//	go func() {
//		for ev := range c.Events() { ... } // until Close, or the end
//	}()
//	c.Send(ctx, "lobby", "hi", false)
//	c.Flush(ctx) // every send acknowledged
//
// # Events
//
// Events delivers, in the order they arrived, every event of the server
// (acks and answers to commands included, so a UI can be purely event
// driven), plus EvState events for connected / reconnecting / closed. The
// channel is buffered; a consumer that stops reading stalls the connection's
// reader (the server then resyncs or disconnects it, as it does for any slow
// client), so keep reading until the channel is closed. Commands that wait
// for their answer (Join, Who, ...) need that reader to be another goroutine.
//
// # For a UI
//
// Read Events in one goroutine (a Bubble Tea command that waits for the next
// event fits) and render by Type: protocol.EvMessage (History marks replayed
// ones), EvJoin, EvLeave, EvNick, EvGap, EvReset, EvError (Ref set when it
// answers one of our commands), and EvState for the status line
// (StateReconnecting carries Attempt, Delay and Err). Run commands (Send,
// Join, Nick, Who, ...) from other goroutines: the ones that wait for an
// answer need the Events reader to keep going. Status gives the nick, the
// joined rooms and their last ids, the pending count and the limits.
// errors.Is(err, ErrNickTaken) tells a taken nick, from Dial or Nick.
//
// # Resume
//
// In the JSON format the client remembers, per joined room, the last message
// id it delivered and the log's epoch. After a reconnect it rejoins each room
// with since = that id, drops any message it has already delivered (a safety
// net: the server should not send one), and resends every command that was
// not answered, with its original ref: the server stores a repeated send
// once. The text format has no ids or acks: it rejoins the rooms of Options
// and resends what was not yet written.
//
// # Concurrency
//
// A Client is safe for concurrent use. Each connection has exactly one writer
// goroutine (every frame we send goes through its queue; coder/websocket
// itself answers pings from the reader, and Close writes the close frame only
// after the writer has stopped) and one reader: the client's run goroutine,
// which also reconnects. Close waits for both. Frames are paced to the
// server's rate limit from welcome (half its burst), so a script that sends a
// file line by line is not refused; a frame refused as rate_limited anyway is
// resent, up to 10 times.
package client
