// Package protocol is parley's wire format: it decodes client commands and
// encodes server events, in the text format (one human line per event) and
// the JSON format (subprotocol parley.v1, one object per frame). It knows
// nothing about sockets or WebSocket framing; docs/protocol.md is its
// specification.
//
// Decoders take untrusted input and never panic (they are fuzzed); every
// failure is an *Error with a stable code. Encoders append to a caller's
// buffer so that the hub can encode each event once per format and share the
// bytes between every recipient. All functions are safe for concurrent use.
package protocol
