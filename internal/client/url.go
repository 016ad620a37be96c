package client

import (
	"fmt"
	"net/url"
	"strings"
)

// DefaultURL is where Dial connects when given an empty URL: a local
// "parley serve" with its default address.
const DefaultURL = "ws://127.0.0.1:8080"

// ParseURL checks a server URL and returns it with a WebSocket scheme.
// ws:// and wss:// are kept, http:// and https:// become ws:// and wss://,
// and a bare host:port gets ws://. Any other scheme is an error naming it.
func ParseURL(raw string) (*url.URL, error) {
	if raw == "" {
		raw = DefaultURL
	}
	if !strings.Contains(raw, "://") {
		raw = "ws://" + raw
	}
	u, err := url.Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("invalid URL %q: %v", raw, unwrapURLError(err))
	}
	switch strings.ToLower(u.Scheme) {
	case "ws", "http":
		u.Scheme = "ws"
	case "wss", "https":
		u.Scheme = "wss"
	default:
		return nil, fmt.Errorf("unsupported URL scheme %q in %q: use ws://, wss://, http:// or https://", u.Scheme, raw)
	}
	if u.Host == "" {
		return nil, fmt.Errorf("invalid URL %q: no host", raw)
	}
	return u, nil
}

func unwrapURLError(err error) error {
	if ue, ok := err.(*url.Error); ok {
		return ue.Err
	}
	return err
}
