package server_test

import (
	"strings"
	"testing"

	"go.uber.org/goleak"

	"parley/internal/parleytest"
	"parley/internal/protocol"
	"parley/internal/server"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// The classic exercise: three plain clients, every line to all three, the
// sender included.
func TestThreeTextClients(t *testing.T) {
	t.Parallel()
	n := parleytest.Start(t)
	names := []string{"alice", "bob", "carol"}
	var cs []*wsClient
	for _, name := range names {
		c := dial(t, n.URL+"?nick="+name, false)
		w := c.read()
		if !strings.HasPrefix(w, "* welcome to parley, "+name) {
			t.Fatalf("welcome = %q", w)
		}
		cs = append(cs, c)
	}
	// Everyone sees carol's join before anyone sends.
	cs[0].readLine("* carol joined #lobby")
	cs[1].readLine("* carol joined #lobby")
	cs[2].readLine("* carol joined #lobby")
	for i, c := range cs {
		c.write("hello from " + names[i])
		for _, r := range cs {
			r.readLine(names[i] + ": hello from " + names[i])
		}
	}
}

func TestJSONSendAck(t *testing.T) {
	t.Parallel()
	n := parleytest.Start(t)
	a := dial(t, n.URL+"?nick=alice", true)
	b := dial(t, n.URL+"?nick=bob&room=lobby", true)
	w := a.event(protocol.EvWelcome)
	if w.Nick != "alice" || w.Epoch == "" {
		t.Fatalf("welcome = %+v", w)
	}
	a.writeJSON(map[string]any{"type": "join", "room": "lobby", "ref": "j1"})
	if ack := a.event(protocol.EvAck); ack.Ref != "j1" {
		t.Fatalf("ack = %+v", ack)
	}
	a.writeJSON(map[string]any{"type": "send", "room": "lobby", "text": "hi", "ref": "c1"})
	// The ack and the message may come in either order.
	var ack, mine protocol.Event
	for ack.Type == "" || mine.Type == "" {
		ev := a.event("")
		switch ev.Type {
		case protocol.EvAck:
			ack = ev
		case protocol.EvMessage:
			mine = ev
		}
	}
	if ack.Ref != "c1" || ack.ID == 0 || ack.Room != "lobby" {
		t.Fatalf("ack = %+v", ack)
	}
	for _, m := range []protocol.Event{mine, b.event(protocol.EvMessage)} {
		if m.ID != ack.ID || m.From != "alice" || m.Text != "hi" || m.Room != "lobby" || m.TS.IsZero() {
			t.Fatalf("message = %+v", m)
		}
	}
}

func TestNoEcho(t *testing.T) {
	t.Parallel()
	n := parleytest.Start(t, parleytest.WithConfig(func(c *server.Config) { c.NoEcho = true }))
	a := dial(t, n.URL+"?nick=alice", false)
	b := dial(t, n.URL+"?nick=bob", false)
	a.readLine("* bob joined #lobby")
	a.write("one")
	b.readLine("alice: one")
	b.write("two")
	// alice gets bob's line and never her own, which was sent first.
	if got := a.readUntil(func(s string) bool { return strings.Contains(s, ": ") }); got != "bob: two" {
		t.Fatalf("alice got %q, want bob: two", got)
	}
}
