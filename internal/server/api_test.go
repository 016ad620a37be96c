package server_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"parley/internal/parleytest"
)

type apiPage struct {
	Room     string `json:"room"`
	Messages []struct {
		Room   string `json:"room"`
		ID     uint64 `json:"id"`
		From   string `json:"from"`
		Text   string `json:"text"`
		TS     string `json:"ts"`
		Action bool   `json:"action"`
	} `json:"messages"`
	More bool `json:"more"`
}

func getJSON(t testing.TB, url string, status int, v any) {
	t.Helper()
	resp, body := httpGet(t, url)
	if resp.StatusCode != status {
		t.Fatalf("GET %s: %d %s, want %d", url, resp.StatusCode, body, status)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
		t.Fatalf("GET %s: Content-Type %q", url, ct)
	}
	if err := json.Unmarshal([]byte(body), v); err != nil {
		t.Fatalf("GET %s: %q: %v", url, body, err)
	}
}

// Paging back through 500 messages, newest first, 7 at a time and then
// 500 at a time: every message once, no duplicates, more until the oldest.
func TestHistoryAPIPaging(t *testing.T) {
	t.Parallel()
	n := parleytest.Start(t, parleytest.WithConfig(noRateLimit))
	a := dial(t, n.URL+"?nick=alice&room=Lobby", true)
	const total = 500
	if last := fill(a, "lobby", total); last != total {
		t.Fatalf("last id %d", last)
	}
	a.writeJSON(map[string]any{"type": "send", "room": "lobby", "text": "waves", "action": true, "ref": "act"})
	a.ackFor("act")

	for _, limit := range []int{7, 500, 1} {
		seen := make(map[uint64]bool)
		next := uint64(total + 2) // skips nothing: ids below it
		pages := 0
		for {
			url := fmt.Sprintf("%s/api/rooms/lobby/messages?limit=%d&before=%d", n.HTTP, limit, next)
			var p apiPage
			getJSON(t, url, 200, &p)
			pages++
			if pages > total+2 {
				t.Fatalf("limit %d: more pages than messages", limit)
			}
			if len(p.Messages) > limit {
				t.Fatalf("limit %d: page of %d", limit, len(p.Messages))
			}
			for i, m := range p.Messages {
				if seen[m.ID] {
					t.Fatalf("limit %d: id %d twice", limit, m.ID)
				}
				seen[m.ID] = true
				if m.ID >= next || (i > 0 && m.ID >= p.Messages[i-1].ID) {
					t.Fatalf("limit %d: ids not newest first below %d: %d", limit, next, m.ID)
				}
				if m.Room != "Lobby" || m.From != "alice" {
					t.Fatalf("message %+v", m)
				}
				if _, err := time.Parse(time.RFC3339, m.TS); err != nil {
					t.Fatalf("ts %q: %v", m.TS, err)
				}
				switch {
				case m.ID == total+1:
					if !m.Action || m.Text != "waves" {
						t.Fatalf("action message = %+v", m)
					}
				case m.Text != fmt.Sprint("m", m.ID) || m.Action:
					t.Fatalf("message %d = %+v", m.ID, m)
				}
			}
			if len(p.Messages) == 0 {
				t.Fatalf("limit %d: empty page before %d with more=true", limit, next)
			}
			next = p.Messages[len(p.Messages)-1].ID
			if !p.More {
				break
			}
		}
		if len(seen) != total+1 || next != 1 {
			t.Fatalf("limit %d: saw %d messages ending at %d, want %d ending at 1", limit, len(seen), next, total+1)
		}
	}

	// Defaults: the newest 50.
	var p apiPage
	getJSON(t, n.HTTP+"/api/rooms/LOBBY/messages", 200, &p)
	if len(p.Messages) != 50 || p.Messages[0].ID != total+1 || p.Messages[49].ID != total-48 || !p.More {
		t.Fatalf("default page: %d messages from %d, more %v", len(p.Messages), p.Messages[0].ID, p.More)
	}
	// An unknown room: 200, no messages.
	p = apiPage{}
	getJSON(t, n.HTTP+"/api/rooms/nobody-here/messages", 200, &p)
	if p.Messages == nil || len(p.Messages) != 0 || p.More {
		t.Fatalf("unknown room: %+v", p)
	}
}

func TestAPIRooms(t *testing.T) {
	t.Parallel()
	n := parleytest.Start(t, parleytest.WithConfig(noRateLimit))
	var empty struct {
		Rooms []json.RawMessage `json:"rooms"`
	}
	getJSON(t, n.HTTP+"/api/rooms", 200, &empty)
	if empty.Rooms == nil || len(empty.Rooms) != 0 {
		t.Fatalf("rooms of an empty log = %v, want []", empty.Rooms)
	}
	a := dial(t, n.URL+"?nick=alice&room=Dev&room=lobby", true)
	fill(a, "dev", 3)
	a.sendAck("lobby", "hi", "l1")
	var got struct {
		Rooms []struct {
			Name         string    `json:"name"`
			Messages     int64     `json:"messages"`
			LastID       uint64    `json:"last_id"`
			LastActivity time.Time `json:"last_activity"`
		} `json:"rooms"`
	}
	getJSON(t, n.HTTP+"/api/rooms", 200, &got)
	if len(got.Rooms) != 2 {
		t.Fatalf("rooms = %+v", got.Rooms)
	}
	d, l := got.Rooms[0], got.Rooms[1]
	if d.Name != "Dev" || d.Messages != 3 || d.LastID != 3 || d.LastActivity.IsZero() {
		t.Errorf("dev = %+v", d)
	}
	if l.Name != "lobby" || l.Messages != 1 || l.LastID != 1 || time.Since(l.LastActivity) > time.Minute {
		t.Errorf("lobby = %+v", l)
	}
}

func TestHistoryAPIBadParams(t *testing.T) {
	t.Parallel()
	n := parleytest.Start(t)
	for _, q := range []string{
		"lobby/messages?limit=0",
		"lobby/messages?limit=501",
		"lobby/messages?limit=x",
		"lobby/messages?limit=-1",
		"lobby/messages?before=-1",
		"lobby/messages?before=x",
		"lobby/messages?before=0",
		"lobby/messages?before=1.5",
		"lobby/messages?limit=10&foo=1",
		"lobby/messages?since=3",
		"bad.room/messages",
		"has%20space/messages",
		strings.Repeat("r", 33) + "/messages",
	} {
		url := n.HTTP + "/api/rooms/" + q
		var e struct {
			Error struct {
				Code    string `json:"code"`
				Message string `json:"message"`
			} `json:"error"`
		}
		getJSON(t, url, http.StatusBadRequest, &e)
		if e.Error.Code != "bad_param" || e.Error.Message == "" {
			t.Errorf("%s: error body %+v", q, e)
		}
	}
	// Limits at the edges are fine.
	for _, q := range []string{"limit=1", "limit=500", "before=1", "before=18446744073709551615"} {
		var p apiPage
		getJSON(t, n.HTTP+"/api/rooms/lobby/messages?"+q, 200, &p)
	}
}
