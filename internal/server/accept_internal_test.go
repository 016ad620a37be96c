package server

import (
	"strings"
	"testing"
)

func TestParseUpgrade(t *testing.T) {
	const std = "Host: 127.0.0.1:8080\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n"
	head := func(line, headers string) []byte { return []byte(line + "\r\n" + headers + "\r\n") }
	fast := []struct {
		name, line, headers, query, subprotocol, origin string
	}{
		{"plain", "GET / HTTP/1.1", std, "", "", ""},
		{"ws path, query", "GET /ws?nick=ann&room=a,b HTTP/1.1", std, "nick=ann&room=a,b", "", ""},
		{"json, other header case", "GET / HTTP/1.1", "host: x\r\nupgrade: WEBSOCKET\r\nCONNECTION: upgrade\r\n" +
			"sec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\nsec-websocket-version: 13\r\nSec-WebSocket-Protocol: chat.v9, parley.v1\r\n", "", "parley.v1", ""},
		{"browser", "GET / HTTP/1.1", "Host: localhost:8080\r\nConnection: keep-alive, Upgrade\r\nUpgrade: WebSocket\r\n" +
			"Origin: http://localhost:8080\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n" +
			"Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\nSec-WebSocket-Protocol: parley.v1\r\n", "", "parley.v1", "http://localhost:8080"},
		{"empty body", "GET / HTTP/1.1", std + "Content-Length: 0\r\n", "", "", ""},
	}
	for _, tc := range fast {
		h, ok := parseUpgrade(head(tc.line, tc.headers))
		if !ok {
			t.Errorf("%s: not taken by the fast path", tc.name)
			continue
		}
		if h.query != tc.query || h.subprotocol != tc.subprotocol || h.origin != tc.origin || h.key != "dGhlIHNhbXBsZSBub25jZQ==" {
			t.Errorf("%s: %+v", tc.name, h)
		}
	}
	// Everything else goes to net/http, which answers it.
	slow := []struct{ name, line, headers string }{
		{"POST", "POST / HTTP/1.1", std},
		{"HTTP/1.0", "GET / HTTP/1.0", std},
		{"other path", "GET /api/rooms HTTP/1.1", std},
		{"no upgrade", "GET / HTTP/1.1", strings.Replace(std, "Upgrade: websocket\r\n", "", 1)},
		{"upgrade to h2c", "GET / HTTP/1.1", strings.Replace(std, "Upgrade: websocket", "Upgrade: h2c", 1)},
		{"connection close", "GET / HTTP/1.1", strings.Replace(std, "Connection: Upgrade", "Connection: close", 1)},
		{"version 8", "GET / HTTP/1.1", strings.Replace(std, "Version: 13", "Version: 8", 1)},
		{"no version", "GET / HTTP/1.1", strings.Replace(std, "Sec-WebSocket-Version: 13\r\n", "", 1)},
		{"short key", "GET / HTTP/1.1", strings.Replace(std, "dGhlIHNhbXBsZSBub25jZQ==", "c2hvcnQ=", 1)},
		{"two keys", "GET / HTTP/1.1", std + "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"},
		{"two hosts", "GET / HTTP/1.1", std + "Host: evil.example\r\n"},
		{"no host", "GET / HTTP/1.1", strings.Replace(std, "Host: 127.0.0.1:8080\r\n", "", 1)},
		{"body", "GET / HTTP/1.1", std + "Content-Length: 5\r\n"},
		{"chunked", "GET / HTTP/1.1", std + "Transfer-Encoding: chunked\r\n"},
		{"folded line", "GET / HTTP/1.1", std + "X-A: 1\r\n  2\r\n"},
		{"space before colon", "GET / HTTP/1.1", std + "Host : x\r\n"},
	}
	for _, tc := range slow {
		if h, ok := parseUpgrade(head(tc.line, tc.headers)); ok {
			t.Errorf("%s: taken by the fast path: %+v", tc.name, h)
		}
	}
}
