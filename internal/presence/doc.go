// Package presence tracks who is online across parley nodes that share a
// NATS server: cluster-wide nick ownership, room membership, and the join,
// leave and nick notices that go with them.
//
// Everything lives in one JetStream key-value bucket (Config.Bucket):
//
//	node.<node>                    heartbeat: the node's incarnation id, rewritten every Heartbeat
//	nick.<folded nick>             who holds a nick: {nick, node, inc, session}; taken with Create
//	member.<folded room>.<folded nick>  {room, nick, node, inc, old}
//
// A change happens once, on the node where it happens: Join puts a member
// key, Leave deletes it, Rename puts the new key (with "old") and deletes
// the old one. Every node watches the bucket (one ordered consumer) and
// turns those changes into Events for its own sessions, so each user sees
// one notice per change whatever the number of nodes. The watch also keeps
// a local mirror of the bucket, which answers Members and Rooms without a
// round trip.
//
// Dead nodes. A node whose heartbeat has not been seen for NodeTTL (or that
// came back with a new incarnation) is dead: every other node emits a leave
// for each of its members to its own sessions, once, and deletes its keys
// (each delete is conditional on the revision, so it never removes a key
// that was written again). A node only judges others while its own
// heartbeats come back to it, so a node cut off from NATS does not declare
// everyone else dead. A nick held by a dead node can be claimed at once,
// even before the sweep. If a node's keys were swept while it lived (it
// was cut off longer than NodeTTL), it writes them again when it sees them
// deleted, and the others see the members join again.
//
// Concurrency: methods are safe for concurrent use. onEvent is called from
// one goroutine owned by the Presence, in bucket order, and must not block.
package presence
