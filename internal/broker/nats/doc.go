// Package nats is the many-node broker: every room's log lives in one
// JetStream stream, one subject per room (<stream>.room.<folded room>), so
// ids, order, retention and replication come from NATS. A message's id is
// its stream sequence: it grows within a room but is not contiguous, since
// the rooms share one sequence.
//
// Append publishes with JetStream deduplication (Nats-Msg-Id is the folded
// nick and the client ref) and returns once the stream has acknowledged the
// message. Delivery is asynchronous: each node keeps one ordered consumer on
// the whole stream, started at the stream's last sequence when the broker
// opens, and calls Deliver for every message in stream order, exactly once
// per node; after a lost connection the consumer is recreated from the last
// sequence it delivered, so nothing is skipped or repeated. The ack of an
// Append may precede its delivery on the same node.
//
// Reads use JetStream direct gets in batches (any replica may answer), and
// the subject's newest id from the stream leader; when a replica's answer
// ends before that id, the missing tail is read from the leader, so a read
// never misses a message that was acknowledged before it started.
//
// Gaps. Page.First is the oldest id the stream still holds for the room.
// Retention (MaxMsgsPerSubject, MaxAge) always removes a room's oldest
// messages first, so if a client has seen id After in this room and
// After+1 < First, message After itself is gone and every room message
// between After and First is gone too: the gap rule of package broker holds
// without false negatives. Ids in [After+1, First-1] that belonged to other
// rooms are reported as part of the gap range; that range is "ids this room
// no longer holds", never "messages that existed". A room that holds no
// message (new, or emptied by retention) reads as First 0 and Last = the
// stream's last sequence, so a reader that saw some of it gets a gap.
//
// Concurrency: all methods are safe for concurrent use. Deliver is called
// from one goroutine owned by the broker (the consumer's dispatcher) and
// must not block. Close stops delivery and waits for it.
package nats
