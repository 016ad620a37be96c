package server

import (
	"crypto/sha1"
	"encoding/base64"
	"net/http"

	"parley/internal/protocol"
)

// The opening handshake (RFC 6455, section 4.2). parley checks it itself
// rather than through gobwas/ws's HTTPUpgrader, which writes the 101
// response the moment it accepts: here the response is queued as the
// session's first bytes and goes out with the welcome, in one write.

// acceptGUID is the key suffix of RFC 6455, section 1.3.
const acceptGUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

// checkHandshake checks a WebSocket upgrade request. A bad one is answered
// with an HTTP error and ok false. For a good one it returns the 101
// response to write and the subprotocol chosen ("" for the text format).
func checkHandshake(w http.ResponseWriter, r *http.Request) (response []byte, subprotocol string, ok bool) {
	key := r.Header.Get("Sec-WebSocket-Key")
	version := r.Header.Get("Sec-WebSocket-Version")
	switch {
	case r.Method != http.MethodGet:
		w.Header().Set("Allow", http.MethodGet)
		http.Error(w, "a WebSocket handshake is a GET request", http.StatusMethodNotAllowed)
		return nil, "", false
	case !r.ProtoAtLeast(1, 1):
		http.Error(w, "a WebSocket handshake needs HTTP/1.1", http.StatusHTTPVersionNotSupported)
		return nil, "", false
	case version == "":
		http.Error(w, "missing Sec-WebSocket-Version", http.StatusBadRequest)
		return nil, "", false
	case version != "13":
		w.Header().Set("Sec-WebSocket-Version", "13")
		http.Error(w, "unsupported WebSocket version "+version+": this server speaks 13", http.StatusUpgradeRequired)
		return nil, "", false
	case len(key) != 24: // 16 bytes in base64
		http.Error(w, "missing or malformed Sec-WebSocket-Key", http.StatusBadRequest)
		return nil, "", false
	}
	if headerHas(r.Header, "Sec-WebSocket-Protocol", protocol.Subprotocol) {
		subprotocol = protocol.Subprotocol
	}
	return upgradeResponse(key, subprotocol), subprotocol, true
}

// upgradeResponse returns the 101 response to a handshake with key.
func upgradeResponse(key, subprotocol string) []byte {
	var k [24 + len(acceptGUID)]byte
	sum := sha1.Sum(append(append(k[:0], key...), acceptGUID...))
	b := make([]byte, 0, 160)
	b = append(b, "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: "...)
	b = base64.StdEncoding.AppendEncode(b, sum[:])
	if subprotocol != "" {
		b = append(b, "\r\nSec-WebSocket-Protocol: "...)
		b = append(b, subprotocol...)
	}
	return append(b, "\r\n\r\n"...)
}
