package server_test

// Limits and bad input: every bad input gets a clear answer (an error event
// with the right code, or a close code), leaves the other clients of the
// server untouched, and is counted in /metrics.

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"

	"parley/internal/parleytest"
	"parley/internal/protocol"
	"parley/internal/server"
)

// metricValue returns the value of the sample name{reason="reason"} (or
// name alone when reason is ""), or -1 when /metrics does not have it.
func metricValue(t testing.TB, n *parleytest.Node, name, reason string) float64 {
	t.Helper()
	resp, body := httpGet(t, n.HTTP+"/metrics")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: %s", resp.Status)
	}
	key := name
	if reason != "" {
		key = name + `{reason="` + reason + `"}`
	}
	sc := bufio.NewScanner(strings.NewReader(body))
	for sc.Scan() {
		line := sc.Text()
		if v, ok := strings.CutPrefix(line, key+" "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err != nil {
				t.Fatalf("metric line %q: %v", line, err)
			}
			return f
		}
	}
	return -1
}

// waitMetric waits up to 5 s for name{reason} to equal want.
func waitMetric(t testing.TB, n *parleytest.Node, name, reason string, want float64) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	var got float64
	for {
		if got = metricValue(t, n, name, reason); got == want {
			return
		}
		if time.Now().After(deadline) {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("%s{reason=%q} = %v, want %v", name, reason, got, want)
}

// bystanders are two text clients in #lobby that are not part of the bad
// input: after it, one still gets what the other sends.
type bystanders struct {
	t    testing.TB
	a, b *wsClient
	seq  int
}

func newBystanders(t testing.TB, n *parleytest.Node) *bystanders {
	t.Helper()
	a := dial(t, n.URL+"?nick=by-a", false)
	a.readLine("* by-a joined #lobby")
	b := dial(t, n.URL+"?nick=by-b", false)
	b.readLine("* by-b joined #lobby")
	a.readLine("* by-b joined #lobby")
	return &bystanders{t: t, a: a, b: b}
}

// check sends a fresh line from b and waits for a to get it. Lines a gets
// before it are passed to seen, if not nil.
func (p *bystanders) check(seen func(line string)) {
	p.t.Helper()
	p.seq++
	line := fmt.Sprintf("still here %d", p.seq)
	p.b.write(line)
	want := "by-b: " + line
	p.a.readUntil(func(s string) bool {
		if s == want {
			return true
		}
		if seen != nil {
			seen(s)
		}
		return false
	})
	p.b.readLine(want)
}

// A message over MaxMessageBytes closes the connection with 1009, whole
// or fragmented, in either format; one of exactly MaxMessageBytes is fine.
func TestMessageTooBig(t *testing.T) {
	t.Parallel()
	const max = 1024
	n := parleytest.Start(t, parleytest.WithConfig(func(c *server.Config) { c.MaxMessageBytes = max }))
	by := newBystanders(t, n)

	big := dial(t, n.URL+"?nick=big", false)
	big.readLine("* big joined #lobby")
	at := strings.Repeat("x", max)
	big.write(at)
	big.readLine("big: " + at)
	by.a.readLine("big: " + at)
	big.write(at + "y")
	if got := big.closeStatus(); got != websocket.StatusMessageTooBig {
		t.Fatalf("close %v, want 1009", got)
	}
	by.check(func(s string) {
		if s == "big: "+at+"y" {
			t.Errorf("the message over the limit was delivered: %.40q...", s)
		}
	})
	waitMetric(t, n, "parley_rejected_inputs_total", "too_big", 1)

	js := dial(t, n.URL+"?nick=bigjson", true)
	js.event(protocol.EvWelcome)
	js.writeJSON(map[string]any{"type": "send", "room": "lobby", "text": strings.Repeat("z", max), "ref": "b1"})
	if got := js.closeStatus(); got != websocket.StatusMessageTooBig {
		t.Fatalf("JSON client: close %v, want 1009", got)
	}
	waitMetric(t, n, "parley_rejected_inputs_total", "too_big", 2)

	// Three fragments, each small, over the limit together.
	fr := rawDial(t, n.Addr, "/?nick=frag", "")
	fr.readLine("* frag joined #lobby")
	part := []byte(strings.Repeat("f", 400))
	fr.writeFrame(false, 0, opText, true, part)
	fr.writeFrame(false, 0, opCont, true, part)
	fr.writeFrame(true, 0, opCont, true, part)
	fr.expectClose(1009)
	by.check(func(s string) {
		if strings.Contains(s, "fff") {
			t.Errorf("the fragmented message over the limit was delivered")
		}
	})
	waitMetric(t, n, "parley_rejected_inputs_total", "too_big", 3)
}

// Invalid UTF-8 in a text message closes the connection with 1007, also
// when it is split over fragments; a valid rune split over fragments is
// fine (TestFragmentedWithPing).
func TestInvalidUTF8(t *testing.T) {
	t.Parallel()
	n := parleytest.Start(t)
	by := newBystanders(t, n)
	cases := []struct {
		name  string
		frags [][]byte
	}{
		{"one frame", [][]byte{[]byte("bad \xff byte")}},
		{"overlong encoding", [][]byte{[]byte("\xc0\xafslash")}},
		{"surrogate", [][]byte{[]byte("\xed\xa0\x80")}},
		{"in the second fragment", [][]byte{[]byte("fine so far, "), []byte("then \xc3\x28")}},
		{"a rune cut off at the end", [][]byte{[]byte("caf"), []byte("\xc3")}},
		{"a rune spanning fragments, then garbage", [][]byte{[]byte("x\xe2\x82"), []byte("\xac"), []byte("\xff")}},
	}
	for i, tc := range cases {
		c := rawDial(t, n.Addr, fmt.Sprintf("/?nick=utf%d", i), "")
		c.readLine(fmt.Sprintf("* utf%d joined #lobby", i))
		for j, f := range tc.frags {
			op := opCont
			if j == 0 {
				op = opText
			}
			c.writeFrame(j == len(tc.frags)-1, 0, op, true, f)
		}
		c.expectClose(1007)
		by.check(func(s string) {
			if strings.HasPrefix(s, fmt.Sprintf("utf%d: ", i)) {
				t.Errorf("%s: delivered %q", tc.name, s)
			}
		})
	}
	// The JSON format is no different.
	c := jsonRaw(t, n, "utfjson")
	c.text("{\"type\":\"rooms\",\"ref\":\"\xff\"}")
	c.expectClose(1007)
	by.check(nil)
	waitMetric(t, n, "parley_rejected_inputs_total", "bad_utf8", float64(len(cases)+1))
}

// A binary frame gets binary_unsupported and the connection stays.
func TestBinaryFrame(t *testing.T) {
	t.Parallel()
	n := parleytest.Start(t)
	by := newBystanders(t, n)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()

	js := dial(t, n.URL+"?nick=binjson&room=lobby", true)
	js.event(protocol.EvWelcome)
	if err := js.conn.Write(ctx, websocket.MessageBinary, []byte(`{"type":"rooms","ref":"r1"}`)); err != nil {
		t.Fatal(err)
	}
	e := js.event(protocol.EvError)
	if e.Code != protocol.CodeBinaryUnsupported || !strings.Contains(e.Message, "binary") {
		t.Fatalf("error = %+v, want binary_unsupported", e)
	}
	js.writeJSON(map[string]any{"type": "send", "room": "lobby", "text": "after binary", "ref": "s1"})
	if ack := js.event(protocol.EvAck); ack.Ref != "s1" || ack.ID == 0 {
		t.Fatalf("ack = %+v", ack)
	}
	by.a.readLine("binjson: after binary")

	tx := dial(t, n.URL+"?nick=bintext", false)
	tx.readLine("* bintext joined #lobby")
	if err := tx.conn.Write(ctx, websocket.MessageBinary, []byte("hello")); err != nil {
		t.Fatal(err)
	}
	tx.readLine("! error: binary frames are not supported: parley speaks text frames only")
	tx.write("after binary too")
	tx.readLine("bintext: after binary too")

	// A fragmented binary message is one message, and one error.
	raw := jsonRaw(t, n, "binraw")
	raw.writeFrame(false, 0, opBinary, true, []byte{0, 1})
	raw.writeFrame(true, 0, opCont, true, []byte{2, 3})
	raw.text(`{"type":"rooms","ref":"r2"}`)
	var ev protocol.Event
	if err := json.Unmarshal([]byte(raw.nextText()), &ev); err != nil || ev.Code != protocol.CodeBinaryUnsupported {
		t.Fatalf("want binary_unsupported, got %+v (%v)", ev, err)
	}
	if got := raw.nextText(); !strings.Contains(got, `"type":"rooms"`) || !strings.Contains(got, `"ref":"r2"`) {
		t.Fatalf("want the rooms answer, got %q", got)
	}

	by.check(func(s string) {
		if strings.Contains(s, "rooms") {
			t.Errorf("binary payload delivered: %q", s)
		}
	})
	waitMetric(t, n, "parley_rejected_inputs_total", "binary", 3)
}

// Bad JSON commands each get an error naming the problem, with the right
// code and the ref when there is one; the connection stays.
func TestBadJSONCommands(t *testing.T) {
	t.Parallel()
	n := parleytest.Start(t)
	by := newBystanders(t, n)
	c := dial(t, n.URL+"?nick=jsonbad&room=lobby", true)
	c.event(protocol.EvWelcome)
	cases := []struct {
		name, in, code, msg, ref string
	}{
		{"unknown type", `{"type":"shout","room":"lobby","text":"hi","ref":"u1"}`, protocol.CodeUnknownType, `"shout"`, "u1"},
		{"text-only command", `{"type":"help","ref":"u2"}`, protocol.CodeUnknownType, `"help"`, "u2"},
		{"missing type", `{"room":"lobby","text":"hi","ref":"t1"}`, protocol.CodeUnknownType, `"type"`, "t1"},
		{"type not a string", `{"type":7,"ref":"t2"}`, protocol.CodeBadField, `"type"`, "t2"},
		{"malformed", `{"type":"send","ref":"m1","room":"lobby","text":"hi"`, protocol.CodeBadJSON, "malformed JSON", "m1"},
		{"malformed before the ref", `{"type":"send",,"ref":"m2"}`, protocol.CodeBadJSON, "malformed JSON", ""},
		{"two objects", `{"type":"rooms","ref":"m3"}{"type":"rooms"}`, protocol.CodeBadJSON, "one JSON object", "m3"},
		{"array", `[{"type":"rooms","ref":"a1"}]`, protocol.CodeBadJSON, "JSON object", ""},
		{"string", `"send"`, protocol.CodeBadJSON, "JSON object", ""},
		{"null", `null`, protocol.CodeBadJSON, "JSON object", ""},
		{"plain text", `hello everyone`, protocol.CodeBadJSON, "JSON object", ""},
		{"empty frame", ``, protocol.CodeBadJSON, "JSON object", ""},
		{"missing room", `{"type":"send","text":"hi","ref":"f1"}`, protocol.CodeBadField, `"room"`, "f1"},
		{"missing nick", `{"type":"nick","ref":"f2"}`, protocol.CodeBadField, `"nick"`, "f2"},
		{"text not a string", `{"type":"send","room":"lobby","text":5,"ref":"w1"}`, protocol.CodeBadField, `"text" must be a string`, "w1"},
		{"since not a number", `{"type":"join","room":"dev","since":"41","ref":"w2"}`, protocol.CodeBadField, `"since"`, "w2"},
		{"action not a bool", `{"type":"send","room":"lobby","text":"hi","action":"yes","ref":"w3"}`, protocol.CodeBadField, `"action"`, "w3"},
		{"negative since", `{"type":"join","room":"dev","since":-1,"ref":"w4"}`, protocol.CodeBadField, `"since"`, "w4"},
		{"limit out of range", `{"type":"history","room":"lobby","limit":501,"ref":"w5"}`, protocol.CodeBadField, `"limit"`, "w5"},
		{"ref too long", `{"type":"rooms","ref":"` + strings.Repeat("r", 65) + `"}`, protocol.CodeBadField, `"ref"`, ""},
		{"empty message", `{"type":"send","room":"lobby","text":"","ref":"e1"}`, protocol.CodeEmptyMessage, "empty", "e1"},
		{"bad room", `{"type":"join","room":"no spaces","ref":"r1"}`, protocol.CodeBadRoom, `"no spaces"`, "r1"},
		{"bad nick", `{"type":"nick","nick":"a!b","ref":"n1"}`, protocol.CodeBadNick, `"a!b"`, "n1"},
	}
	for _, tc := range cases {
		c.write(tc.in)
		e := c.event(protocol.EvError)
		if e.Code != tc.code || !strings.Contains(e.Message, tc.msg) || e.Ref != tc.ref {
			t.Errorf("%s: %s\n got error code=%q ref=%q message=%q\nwant code=%q ref=%q message containing %q",
				tc.name, tc.in, e.Code, e.Ref, e.Message, tc.code, tc.ref, tc.msg)
		}
	}
	// The connection stays, and nothing above was sent to the room.
	c.writeJSON(map[string]any{"type": "send", "room": "lobby", "text": "still fine", "ref": "ok"})
	if ack := c.event(protocol.EvAck); ack.Ref != "ok" {
		t.Fatalf("ack = %+v", ack)
	}
	by.check(func(s string) {
		if strings.HasPrefix(s, "jsonbad: ") && s != "jsonbad: still fine" {
			t.Errorf("a bad command was delivered: %q", s)
		}
	})
	waitMetric(t, n, "parley_rejected_inputs_total", "bad_command", float64(len(cases)))
}

// Bad text-format lines: an unknown /command and an empty line get an
// error line; the connection stays.
func TestBadTextCommands(t *testing.T) {
	t.Parallel()
	n := parleytest.Start(t)
	by := newBystanders(t, n)
	c := dial(t, n.URL+"?nick=textbad", false)
	c.readLine("* textbad joined #lobby")
	cases := []struct{ in, want string }{
		{"/frobnicate now", "! error: unknown command /frobnicate (type /help for the list)"},
		{"/", "! error: unknown command / (type /help for the list)"},
		{"", "! error: the message is empty"},
		{"   ", "! error: the message is empty"},
		{"\r\n", "! error: the message is empty"},
		{"/me", "! error: usage: /me ACTION"},
		{"/nick", "! error: usage: /nick NAME"},
		{"/join #", `! error: room name "" is invalid: it must not be empty`},
	}
	for _, tc := range cases {
		c.write(tc.in)
		got := c.read()
		for strings.HasPrefix(got, "* ") && !strings.HasPrefix(tc.want, "* ") {
			got = c.read() // presence lines of others
		}
		if got != tc.want {
			t.Errorf("%q: got %q, want %q", tc.in, got, tc.want)
		}
	}
	c.write("//frobnicate is just text")
	c.readLine("textbad: /frobnicate is just text")
	by.check(func(s string) {
		if strings.HasPrefix(s, "textbad: ") && s != "textbad: /frobnicate is just text" {
			t.Errorf("a bad line was delivered: %q", s)
		}
	})
	waitMetric(t, n, "parley_rejected_inputs_total", "bad_command", float64(len(cases)))
}

// floodConfig is the rate limit of the flooding tests.
func floodConfig(c *server.Config) {
	c.Rate = 5
	c.Burst = 5
	c.MaxRejections = 20
}

// Over the rate limit, sends get rate_limited (with their ref and room)
// and are not delivered to anyone, nor stored.
func TestRateLimited(t *testing.T) {
	t.Parallel()
	n := parleytest.Start(t, parleytest.WithConfig(floodConfig))
	by := newBystanders(t, n)
	c := jsonRaw(t, n, "fast")
	c.text(`{"type":"join","room":"lobby","ref":"j"}`)
	const sends = 12
	var frames []byte
	for i := range sends {
		p := fmt.Sprintf(`{"type":"send","room":"lobby","text":"flood %d","ref":"f%d"}`, i, i)
		frames = appendRawFrame(frames, true, 0, opText, c.nextMask(), []byte(p))
	}
	if err := c.writeRaw(frames); err != nil { // all at once: well over 5/s
		t.Fatal(err)
	}
	acked := map[string]bool{}   // texts
	limited := map[string]bool{} // texts
	echoed := map[string]bool{}
	for len(acked)+len(limited) < sends {
		var ev protocol.Event
		if err := json.Unmarshal([]byte(c.nextText()), &ev); err != nil {
			t.Fatal(err)
		}
		text := "flood " + strings.TrimPrefix(ev.Ref, "f")
		switch {
		case ev.Type == protocol.EvAck && strings.HasPrefix(ev.Ref, "f"):
			acked[text] = true
		case ev.Type == protocol.EvError && ev.Code == protocol.CodeRateLimited:
			if ev.Ref == "" || ev.Room != "lobby" || !strings.Contains(ev.Message, "not sent") {
				t.Fatalf("rate_limited error %+v, want its ref, room and a message", ev)
			}
			limited[text] = true
		case ev.Type == protocol.EvError:
			t.Fatalf("unexpected error %+v", ev)
		case ev.Type == protocol.EvMessage:
			echoed[ev.Text] = true
		}
	}
	if len(acked) < 5 || len(limited) == 0 {
		t.Fatalf("%d acked, %d rate limited; want the burst of 5 through and some limited", len(acked), len(limited))
	}
	seen := map[string]bool{}
	by.check(func(s string) {
		if text, ok := strings.CutPrefix(s, "fast: "); ok {
			seen[text] = true
		}
	})
	// The flooder's own echoes: everything up to by-b's line.
	for {
		var ev protocol.Event
		if err := json.Unmarshal([]byte(c.nextText()), &ev); err != nil {
			t.Fatal(err)
		}
		if ev.Type == protocol.EvMessage && ev.From == "by-b" {
			break
		}
		if ev.Type == protocol.EvMessage {
			echoed[ev.Text] = true
		}
	}
	for text := range limited {
		if seen[text] || echoed[text] {
			t.Errorf("rate-limited %q was delivered", text)
		}
	}
	for text := range acked {
		if !seen[text] {
			t.Errorf("acked %q was not delivered", text)
		}
	}
	_, body := httpGet(t, n.HTTP+"/api/rooms/lobby/messages?limit=500")
	var page struct {
		Messages []struct{ Text string } `json:"messages"`
	}
	if err := json.Unmarshal([]byte(body), &page); err != nil {
		t.Fatalf("history: %v: %s", err, body)
	}
	stored := 0
	for _, m := range page.Messages {
		if limited[m.Text] {
			t.Errorf("rate-limited %q was stored", m.Text)
		}
		if acked[m.Text] {
			stored++
		}
	}
	if stored != len(acked) {
		t.Errorf("%d of %d acked messages stored", stored, len(acked))
	}
	// The connection stays: once the bucket refills, sends go through.
	retries := 0
	deadline := time.Now().Add(5 * time.Second)
	for i := 0; ; i++ {
		c.text(fmt.Sprintf(`{"type":"send","room":"lobby","text":"later","ref":"l%d"}`, i))
		var ev protocol.Event
		for ev.Ref != fmt.Sprintf("l%d", i) {
			ev = protocol.Event{}
			if err := json.Unmarshal([]byte(c.nextText()), &ev); err != nil {
				t.Fatal(err)
			}
		}
		if ev.Type == protocol.EvAck {
			break
		}
		if ev.Code != protocol.CodeRateLimited || time.Now().After(deadline) {
			t.Fatalf("after the flood: %+v", ev)
		}
		retries++
		time.Sleep(50 * time.Millisecond) // poll for the bucket to refill (one token per 200 ms)
	}
	waitMetric(t, n, "parley_rejected_inputs_total", "rate_limited", float64(len(limited)+retries))
}

// A client that keeps flooding past MaxRejections is closed with 1008.
func TestFloodingCloses(t *testing.T) {
	t.Parallel()
	n := parleytest.Start(t, parleytest.WithConfig(floodConfig))
	by := newBystanders(t, n)
	c := jsonRaw(t, n, "flooder")
	c.text(`{"type":"join","room":"lobby","ref":"j"}`)
	// Everything in one write: far past burst + MaxRejections before a
	// token can come back (one every 200 ms).
	var frames []byte
	for i := range 100 {
		p := fmt.Sprintf(`{"type":"send","room":"lobby","text":"flood %d","ref":"f%d"}`, i, i)
		frames = appendRawFrame(frames, true, 0, opText, c.nextMask(), []byte(p))
	}
	if err := c.writeRaw(frames); err != nil {
		t.Fatal(err)
	}
	limited := 0
	for i := 0; ; i++ {
		f, err := c.readFrame(5 * time.Second)
		if err != nil {
			t.Fatalf("want a close frame with 1008, got %v after %d rate_limited errors", err, limited)
		}
		if f.op == opClose {
			if f.closeCode() != 1008 {
				t.Fatalf("close %d %q, want 1008", f.closeCode(), f.payload[2:])
			}
			break
		}
		if strings.Contains(string(f.payload), `"code":"rate_limited"`) {
			limited++
		}
		if i > 1000 {
			t.Fatalf("no close in 1000 frames")
		}
	}
	c.expectEOF(5 * time.Second)
	if limited > 20 {
		t.Errorf("%d rate_limited errors before the close, want at most MaxRejections (20)", limited)
	}
	by.check(nil)
	waitMetric(t, n, "parley_rejected_inputs_total", "flooding", 1)
	if v := metricValue(t, n, "parley_rejected_inputs_total", "rate_limited"); v < 20 {
		t.Errorf("rate_limited = %v, want at least 20", v)
	}
}

// Past MaxConnections, upgrades get HTTP 503 before upgrading; a freed
// slot can be used again.
func TestMaxConnections(t *testing.T) {
	t.Parallel()
	n := parleytest.Start(t, parleytest.WithConfig(func(c *server.Config) { c.MaxConnections = 3 }))
	by := newBystanders(t, n) // two of the three
	third := dial(t, n.URL+"?nick=third", false)
	third.readLine("* third joined #lobby")

	for i := range 2 {
		c := rawTCP(t, n.Addr)
		resp, err := c.handshake("/?nick=fourth", "")
		if err != nil {
			t.Fatalf("handshake: %v", err)
		}
		if resp.StatusCode != http.StatusServiceUnavailable {
			t.Fatalf("attempt %d: status %s, want 503", i, resp.Status)
		}
		if resp.Header.Get("Upgrade") != "" {
			t.Fatalf("503 carries Upgrade: %q", resp.Header.Get("Upgrade"))
		}
	}
	by.check(nil)
	waitMetric(t, n, "parley_rejected_inputs_total", "over_capacity", 2)

	// Free a slot; the next client gets in (once the server has let the
	// old one go).
	third.conn.Close(websocket.StatusNormalClosure, "")
	deadline := time.Now().Add(5 * time.Second)
	for {
		c, err := tryDial(n.URL+"?nick=fourth", false)
		if err == nil {
			c.CloseNow()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no slot after a client left: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// A handshake that never completes is dropped after HandshakeTimeout.
func TestHandshakeTimeout(t *testing.T) {
	t.Parallel()
	const timeout = 300 * time.Millisecond
	n := parleytest.Start(t, parleytest.WithConfig(func(c *server.Config) { c.HandshakeTimeout = timeout }))
	by := newBystanders(t, n)
	cases := []struct{ name, send string }{
		{"nothing", ""},
		{"half a request line", "GET /?nick=slow HT"},
		{"headers not ended", "GET /?nick=slow HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"},
		{"upgrade without the blank line", "GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
			"Sec-WebSocket-Key: " + wsKey + "\r\nSec-WebSocket-Version: 13\r\n"},
	}
	var wg sync.WaitGroup
	for _, tc := range cases {
		start := time.Now()
		c := rawTCP(t, n.Addr)
		if tc.send != "" {
			if err := c.writeRaw([]byte(tc.send)); err != nil {
				t.Fatalf("%s: %v", tc.name, err)
			}
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			c.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
			_, err := io.Copy(io.Discard, c.conn) // whatever it says, until it closes
			elapsed := time.Since(start)
			if err != nil && !isClosed(err) {
				t.Errorf("%s: not closed within 5s: %v", tc.name, err)
				return
			}
			if elapsed < timeout*3/4 {
				t.Errorf("%s: closed after %v, before the %v timeout", tc.name, elapsed, timeout)
			}
		}()
	}
	wg.Wait()
	by.check(nil)
}

// Pages of other origins are refused with 403 unless listed; no Origin
// (a terminal client) and the server's own host are allowed.
func TestOrigins(t *testing.T) {
	t.Parallel()
	n := parleytest.Start(t, parleytest.WithConfig(func(c *server.Config) {
		c.AllowedOrigins = []string{"http://good.example", "https://app.example:8443/"}
	}))
	by := newBystanders(t, n)
	cases := []struct {
		origin string
		want   int
	}{
		{"", http.StatusSwitchingProtocols},
		{"http://" + n.Addr, http.StatusSwitchingProtocols},
		{"https://" + n.Addr, http.StatusSwitchingProtocols},
		{"http://good.example", http.StatusSwitchingProtocols},
		{"HTTP://GOOD.EXAMPLE", http.StatusSwitchingProtocols},
		{"https://app.example:8443", http.StatusSwitchingProtocols},
		{"http://evil.example", http.StatusForbidden},
		{"https://good.example", http.StatusForbidden},
		{"http://good.example.evil.example", http.StatusForbidden},
		{"http://" + n.Addr + ".evil.example", http.StatusForbidden},
		{"https://app.example", http.StatusForbidden},
		{"null", http.StatusForbidden},
		{"file://", http.StatusForbidden},
	}
	refused := 0
	for i, tc := range cases {
		c := rawTCP(t, n.Addr)
		var extra []string
		if tc.origin != "" {
			extra = append(extra, "Origin: "+tc.origin)
		}
		resp, err := c.handshake(fmt.Sprintf("/?nick=o%d", i), "", extra...)
		if err != nil {
			t.Fatalf("Origin %q: %v", tc.origin, err)
		}
		if resp.StatusCode != tc.want {
			t.Errorf("Origin %q: status %s, want %d", tc.origin, resp.Status, tc.want)
		}
		if tc.want == http.StatusForbidden {
			refused++
		}
	}
	by.check(nil)
	waitMetric(t, n, "parley_rejected_inputs_total", "origin", float64(refused))

	// Without AllowedOrigins, only the server's own host.
	n2 := parleytest.Start(t)
	for _, tc := range []struct {
		origin string
		want   int
	}{{"http://good.example", 403}, {"http://" + n2.Addr, 101}} {
		c := rawTCP(t, n2.Addr)
		resp, err := c.handshake("/", "", "Origin: "+tc.origin)
		if err != nil || resp.StatusCode != tc.want {
			t.Errorf("default config, Origin %q: %v, %v; want %d", tc.origin, resp.Status, err, tc.want)
		}
	}
}

// pumped is a raw client whose frames are read by a goroutine that
// answers pings, as a live client does.
type pumped struct {
	*rawConn
	texts chan string // text frames, closed when the connection ends
	pings atomic.Int64
}

func pump(t testing.TB, c *rawConn) *pumped {
	p := &pumped{rawConn: c, texts: make(chan string, 1000)}
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer close(p.texts)
		for {
			f, err := c.readFrame(time.Minute)
			if err != nil {
				return
			}
			switch f.op {
			case opPing:
				p.pings.Add(1)
				if c.tryWriteFrame(true, 0, opPong, true, f.payload) != nil {
					return
				}
			case opText:
				select {
				case p.texts <- string(f.payload):
				default:
				}
			case opClose:
				return
			}
		}
	}()
	t.Cleanup(func() { c.conn.Close(); <-done })
	return p
}

func (p *pumped) readLine(t testing.TB, want string) {
	t.Helper()
	timeout := time.After(5 * time.Second)
	for {
		select {
		case s, ok := <-p.texts:
			if !ok {
				t.Fatalf("connection ended before %q", want)
			}
			if s == want {
				return
			}
		case <-timeout:
			t.Fatalf("no line %q within 5s", want)
		}
	}
}

// A peer that stops answering is dropped after PongTimeout; peers that
// answer the pings stay.
func TestDeadPeer(t *testing.T) {
	t.Parallel()
	const interval, timeout = 100 * time.Millisecond, 400 * time.Millisecond
	n := parleytest.Start(t, parleytest.WithConfig(func(c *server.Config) {
		c.PingInterval = interval
		c.PongTimeout = timeout
	}))
	a := pump(t, rawDial(t, n.Addr, "/?nick=live-a", ""))
	a.readLine(t, "* live-a joined #lobby")
	b := pump(t, rawDial(t, n.Addr, "/?nick=live-b", ""))
	b.readLine(t, "* live-b joined #lobby")
	a.readLine(t, "* live-b joined #lobby")

	// The dead peer completes the handshake, then sends nothing at all.
	dead := rawDial(t, n.Addr, "/?nick=dead", protocol.Subprotocol)
	start := time.Now()
	pings := 0
	for {
		f, err := dead.readFrame(5 * time.Second)
		if err != nil {
			if !isClosed(err) {
				t.Fatalf("dead peer not dropped within 5s of silence: %v", err)
			}
			break
		}
		switch f.op {
		case opPing:
			pings++
		case opText:
		default:
			t.Fatalf("dead peer got %v", f)
		}
	}
	if elapsed := time.Since(start); elapsed < timeout*3/4 {
		t.Fatalf("dead peer dropped after %v, before the pong timeout %v", elapsed, timeout)
	}
	if pings == 0 {
		t.Errorf("dead peer was dropped without a ping")
	}
	waitMetric(t, n, "parley_closes_total", "no pong", 1)

	// The live ones stay well past the timeout: wait for 12 pings (three
	// pong timeouts' worth) on each, then they still chat.
	deadline := time.Now().Add(10 * time.Second)
	for a.pings.Load() < 12 || b.pings.Load() < 12 {
		if time.Now().After(deadline) {
			t.Fatalf("pings: %d and %d in 10s, want 12 each", a.pings.Load(), b.pings.Load())
		}
		time.Sleep(interval)
	}
	a.text("still alive")
	b.readLine(t, "live-a: still alive")
	a.readLine(t, "live-a: still alive")
	if v := metricValue(t, n, "parley_closes_total", "no pong"); v != 1 {
		t.Errorf("closes{no pong} = %v, want 1: a live client was dropped", v)
	}
}

// Shutdown closes every client with 1001, in both formats, and new
// connections are refused.
func TestShutdownGoingAway(t *testing.T) {
	t.Parallel()
	n := parleytest.Start(t)
	tx := dial(t, n.URL+"?nick=text", false)
	tx.readLine("* text joined #lobby")
	js := dial(t, n.URL+"?nick=json&room=lobby", true)
	js.event(protocol.EvWelcome)
	raw := jsonRaw(t, n, "raw")
	// A message in the middle of arriving when the server stops.
	raw.writeFrame(false, 0, opText, true, []byte(`{"type":"rooms",`))

	stopped := make(chan struct{})
	go func() { defer close(stopped); n.Stop() }()

	var wg sync.WaitGroup
	for _, c := range []*wsClient{tx, js} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if got := c.closeStatus(); got != websocket.StatusGoingAway {
				t.Errorf("close %v, want 1001", got)
			}
		}()
	}
	f, err := raw.readFrame(5 * time.Second)
	if err != nil || f.op != opClose || f.closeCode() != 1001 {
		t.Errorf("raw client: %v, %v; want a close frame with 1001", f, err)
	}
	raw.writeFrame(true, 0, opClose, true, closePayload(1001, ""))
	raw.expectEOF(5 * time.Second)
	wg.Wait()
	select {
	case <-stopped:
	case <-time.After(15 * time.Second):
		t.Fatalf("Stop did not return")
	}
	if c, err := tryDial(n.URL, false); err == nil {
		c.CloseNow()
		t.Fatalf("a client connected after shutdown")
	}
}

// Frames that fail to decode, and binary frames, count against the rate
// limit like any other frame (Config: "Rate and Burst limit the frames a
// connection may send"): a client that floods them is closed with 1008,
// as one that floods valid sends is, instead of making the server decode
// and answer every one at line rate.
func TestBadFrameFloodCloses(t *testing.T) {
	t.Parallel()
	n := parleytest.Start(t, parleytest.WithConfig(floodConfig))
	by := newBystanders(t, n)
	cases := []struct {
		name string
		op   byte
		data string
	}{
		{"malformed JSON", opText, `{"type":"send",`},
		{"unknown type", opText, `{"type":"shout"}`},
		{"binary", opBinary, "\x00\x01"},
	}
	for i, tc := range cases {
		c := jsonRaw(t, n, fmt.Sprintf("badflood%d", i))
		// Far past any burst (the commands' is 100) plus MaxRejections,
		// in one write.
		var frames []byte
		for range 300 {
			frames = appendRawFrame(frames, true, 0, tc.op, c.nextMask(), []byte(tc.data))
		}
		if err := c.writeRaw(frames); err != nil {
			t.Fatal(err)
		}
		answers := 0
		for {
			f, err := c.readFrame(5 * time.Second)
			if err != nil {
				t.Fatalf("%s: 300 frames at once got %d answers and no close (%v); want a close with 1008", tc.name, answers, err)
			}
			if f.op == opClose {
				if f.closeCode() != 1008 {
					t.Fatalf("%s: close %d, want 1008", tc.name, f.closeCode())
				}
				break
			}
			answers++
		}
		c.expectEOF(5 * time.Second)
		by.check(nil)
	}
	waitMetric(t, n, "parley_rejected_inputs_total", "flooding", float64(len(cases)))
}

// Bad handshakes get an HTTP error and hold no connection slot; unknown
// subprotocols fall back to the text format.
func TestBadHandshakes(t *testing.T) {
	t.Parallel()
	n := parleytest.Start(t, parleytest.WithConfig(func(c *server.Config) { c.MaxConnections = 3 }))
	upgrade := func(method, target string, headers ...string) *http.Response {
		t.Helper()
		c := rawTCP(t, n.Addr)
		var b strings.Builder
		fmt.Fprintf(&b, "%s %s HTTP/1.1\r\nHost: %s\r\n", method, target, n.Addr)
		for _, h := range headers {
			b.WriteString(h + "\r\n")
		}
		b.WriteString("Content-Length: 0\r\n\r\n")
		if err := c.writeRaw([]byte(b.String())); err != nil {
			t.Fatal(err)
		}
		c.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		resp, err := http.ReadResponse(c.br, nil)
		if err != nil {
			t.Fatalf("%s %s: %v", method, target, err)
		}
		resp.Body.Close()
		return resp
	}
	std := []string{"Upgrade: websocket", "Connection: Upgrade", "Sec-WebSocket-Key: " + wsKey, "Sec-WebSocket-Version: 13"}
	without := func(prefix string) []string {
		var hs []string
		for _, h := range std {
			if !strings.HasPrefix(h, prefix) {
				hs = append(hs, h)
			}
		}
		return hs
	}
	cases := []struct {
		name    string
		method  string
		target  string
		headers []string
		want    int
	}{
		{"version 8", "GET", "/", append(without("Sec-WebSocket-Version"), "Sec-WebSocket-Version: 8"), http.StatusUpgradeRequired},
		{"no version", "GET", "/", without("Sec-WebSocket-Version"), http.StatusBadRequest},
		{"no key", "GET", "/", without("Sec-WebSocket-Key"), http.StatusBadRequest},
		{"short key", "GET", "/", append(without("Sec-WebSocket-Key"), "Sec-WebSocket-Key: c2hvcnQ="), http.StatusBadRequest},
		{"POST", "POST", "/", std, http.StatusMethodNotAllowed},
		{"since not a number", "GET", "/?since=abc&room=lobby", std, http.StatusBadRequest},
		{"since negative", "GET", "/?since=-1&room=lobby", std, http.StatusBadRequest},
	}
	for _, tc := range cases {
		resp := upgrade(tc.method, tc.target, tc.headers...)
		if resp.StatusCode != tc.want {
			t.Errorf("%s: status %s, want %d", tc.name, resp.Status, tc.want)
		}
		if tc.want == http.StatusUpgradeRequired && resp.Header.Get("Sec-WebSocket-Version") != "13" {
			t.Errorf("%s: 426 without Sec-WebSocket-Version: 13 (%v)", tc.name, resp.Header)
		}
	}
	waitMetric(t, n, "parley_rejected_inputs_total", "bad_command", 2) // the two bad since

	// None of them holds a slot: three clients still get in, the fourth
	// does not.
	plain := rawTCP(t, n.Addr)
	resp, err := plain.handshake("/?nick=plain", "chat.v9")
	if err != nil || resp.StatusCode != http.StatusSwitchingProtocols || resp.Header.Get("Sec-WebSocket-Protocol") != "" {
		t.Fatalf("offered chat.v9: %v %v, want 101 with no subprotocol", resp.Header, err)
	}
	if got := plain.nextText(); !strings.HasPrefix(got, "* welcome to parley, plain") {
		t.Fatalf("unknown subprotocol: %q, want the text welcome", got)
	}
	c := rawTCP(t, n.Addr)
	resp, err = c.handshake("/?nick=both", "chat.v9, "+protocol.Subprotocol)
	if err != nil || resp.StatusCode != http.StatusSwitchingProtocols || resp.Header.Get("Sec-WebSocket-Protocol") != protocol.Subprotocol {
		t.Fatalf("offered chat.v9 and parley.v1: %v %v, want 101 with parley.v1", resp.Header, err)
	}
	third := dial(t, n.URL+"?nick=third", true)
	third.event(protocol.EvWelcome)
	resp = upgrade("GET", "/", std...)
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("fourth: %s, want 503", resp.Status)
	}
}

// A client that sends a frame in the same segment as its handshake (which
// RFC 6455 does not allow, but costs nothing to serve) is served by
// net/http's path, and the frame is read: nothing sent is lost.
func TestFrameWithTheHandshake(t *testing.T) {
	t.Parallel()
	n := parleytest.Start(t)
	c := rawTCP(t, n.Addr)
	req := fmt.Sprintf("GET /?nick=eager HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
		"Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n\r\n", n.Addr, wsKey)
	b := appendRawFrame([]byte(req), true, 0, 0x1, c.nextMask(), []byte("said at once"))
	if err := c.writeRaw(b); err != nil {
		t.Fatal(err)
	}
	c.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	resp, err := http.ReadResponse(c.br, nil)
	if err != nil || resp.StatusCode != http.StatusSwitchingProtocols {
		t.Fatalf("handshake: %v %v", resp, err)
	}
	if got := resp.Header.Get("Sec-WebSocket-Accept"); got != acceptKey(wsKey) {
		t.Fatalf("Sec-WebSocket-Accept %q", got)
	}
	if got := c.nextText(); !strings.HasPrefix(got, "* welcome to parley, eager") {
		t.Fatalf("first frame %q, want the welcome", got)
	}
	// The line is stored as soon as it is read, maybe before the join's
	// history replay reads the log: it comes live or as history, once.
	seen := 0
	if err := c.writeRaw(appendRawFrame(nil, true, 0, 0x1, c.nextMask(), []byte("said after"))); err != nil {
		t.Fatal(err)
	}
	for {
		got := c.nextText()
		switch {
		case got == "eager: said at once" || got == "[history] eager: said at once":
			seen++
		case got == "eager: said after":
			if seen != 1 {
				t.Fatalf("the frame sent with the handshake came %d times, want once", seen)
			}
			return
		case !strings.HasPrefix(got, "* "):
			t.Fatalf("got %q, want the frame sent with the handshake", got)
		}
	}
}
