package nats

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"time"
)

// Config configures a Broker. The zero value works against a NATS server on
// the default local port.
type Config struct {
	// URL of the NATS server(s); a comma-separated list is allowed.
	// Default "nats://127.0.0.1:4222".
	URL string
	// Stream is the JetStream stream holding every room. Default "PARLEY".
	// Subjects are <lowercased stream>.room.<folded room name>.
	Stream string
	// Replicas of the stream (1, 3 or 5 in a NATS cluster). Default 1.
	Replicas int
	// RetainMessages is the number of messages kept per room
	// (MaxMsgsPerSubject). Default 100000.
	RetainMessages int
	// RetainAge is how long a message is kept (MaxAge). Default 30 days.
	RetainAge time.Duration
	// DedupeWindow is JetStream's Duplicates window: a send retried with
	// the same ref within it is stored once. Default 2 minutes.
	DedupeWindow time.Duration
	// Wait keeps retrying the first connection (and the stream setup) until
	// the context given to Open is done, instead of failing at once.
	Wait bool
	// Node is this node's name ([A-Za-z0-9_-], at most 64 bytes). Default:
	// the host name (other characters replaced by '-') and a random suffix.
	Node string
	// Logger for connection events. Default slog.Default().
	Logger *slog.Logger
}

const (
	defaultURL            = "nats://127.0.0.1:4222"
	defaultStream         = "PARLEY"
	defaultRetainMessages = 100000
	defaultRetainAge      = 30 * 24 * time.Hour
	defaultDedupeWindow   = 2 * time.Minute
	maxNodeLen            = 64
)

// withDefaults returns cfg with every zero field set to its default.
func (cfg Config) withDefaults() (Config, error) {
	if cfg.URL == "" {
		cfg.URL = defaultURL
	}
	if cfg.Stream == "" {
		cfg.Stream = defaultStream
	}
	if strings.ContainsAny(cfg.Stream, ". *>\t\r\n/\\") {
		return cfg, fmt.Errorf("nats: stream name %q: must not contain '.', '*', '>', '/', '\\' or spaces", cfg.Stream)
	}
	if cfg.Replicas <= 0 {
		cfg.Replicas = 1
	}
	if cfg.RetainMessages <= 0 {
		cfg.RetainMessages = defaultRetainMessages
	}
	if cfg.RetainAge <= 0 {
		cfg.RetainAge = defaultRetainAge
	}
	if cfg.DedupeWindow <= 0 {
		cfg.DedupeWindow = defaultDedupeWindow
	}
	if cfg.Node == "" {
		cfg.Node = DefaultNode()
	}
	if err := ValidNode(cfg.Node); err != nil {
		return cfg, err
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	return cfg, nil
}

// ValidNode reports whether name can be a node name: 1-64 ASCII letters,
// digits, '-' and '_' (it is used in NATS subjects and KV keys).
func ValidNode(name string) error {
	if name == "" || len(name) > maxNodeLen {
		return fmt.Errorf("nats: node name %q: must be 1-%d characters", name, maxNodeLen)
	}
	for i := 0; i < len(name); i++ {
		if !nameByte(name[i]) {
			return fmt.Errorf("nats: node name %q: may only contain letters, digits, '-' and '_'", name)
		}
	}
	return nil
}

func nameByte(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_'
}

// DefaultNode returns the host name, made safe for subjects, with a random
// suffix, so that two processes on one host get different names.
func DefaultNode() string {
	host, err := os.Hostname()
	if err != nil || host == "" {
		host = "node"
	}
	b := []byte(host)
	for i := range b {
		if !nameByte(b[i]) {
			b[i] = '-'
		}
	}
	if len(b) > maxNodeLen-9 {
		b = b[:maxNodeLen-9]
	}
	return string(b) + "-" + randomHex(4)
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // never fails (crypto/rand panics instead)
	return hex.EncodeToString(b)
}
