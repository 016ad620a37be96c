package e2e

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
	"golang.org/x/time/rate"

	"parley/internal/parleytest"
	"parley/internal/server"
)

// line is how a terminal client shows a message the page shows as m.
func (m shown) line() string {
	if m.Action {
		return "* " + m.From + " " + m.Text
	}
	return m.From + ": " + m.Text
}

func lines(ms []shown) []string {
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = m.line()
	}
	return out
}

// checkIDs fails unless the ids grow strictly (so none is shown twice).
func checkIDs(t *testing.T, who string, ms []shown) {
	t.Helper()
	for i := 1; i < len(ms); i++ {
		if ms[i].ID <= ms[i-1].ID {
			t.Errorf("%s: message %d has id %d after id %d", who, i, ms[i].ID, ms[i-1].ID)
		}
	}
}

// Two pages and a terminal client in one room see each other's messages,
// in one order.
func TestPagesAndTerminalSeeOneOrder(t *testing.T) {
	t.Parallel()
	node := parleytest.Start(t)
	b := startBrowser(t)
	ann, bea := newTab(t, b, "ann"), newTab(t, b, "bea")
	ann.open(node.HTTP+"/", "ann")
	bea.open(node.HTTP+"/", "bea")
	ann.waitOnline()
	bea.waitOnline()
	tom := dialWS(t, node.URL, "tom") // no subprotocol: the text format, in lobby
	tom.waitFrames("welcome", func(f []string) bool { return len(f) > 0 })

	const rounds = 4
	for i := range rounds {
		ann.typeLine(fmt.Sprintf("ann says %d", i))
		tom.write(fmt.Sprintf("tom says %d", i))
		bea.typeLine(fmt.Sprintf("bea says %d", i))
	}
	ann.typeLine("/me waves at <everyone>")
	ann.wait("the action", `document.querySelector('.msg.action[data-id]') !== null`)
	tom.write("/me waves back") // after ann's, so the order of the two is known
	const total = 3*rounds + 2

	cond := fmt.Sprintf(`document.querySelectorAll('.room-log[data-room="lobby"] .msg[data-id]').length >= %d`, total)
	ann.wait("every message", cond)
	bea.wait("every message", cond)
	frames := tom.waitFrames("every message", func(f []string) bool {
		return len(chatLines(f, "ann", "bea", "tom")) >= total
	})

	a, bb := ann.messages("lobby"), bea.messages("lobby")
	checkIDs(t, "ann", a)
	checkIDs(t, "bea", bb)
	if !slices.Equal(a, bb) {
		t.Errorf("the pages differ:\nann: %v\nbea: %v", a, bb)
	}
	if got, want := chatLines(frames, "ann", "bea", "tom"), lines(a); !slices.Equal(got, want) {
		t.Errorf("the terminal saw another order:\nterminal: %q\npage:     %q", got, want)
	}
	var actions []string
	for _, m := range a {
		if m.Action {
			actions = append(actions, m.line())
		}
	}
	if want := []string{"* ann waves at <everyone>", "* tom waves back"}; !slices.Equal(actions, want) {
		t.Errorf("actions shown as %q, want %q", actions, want)
	}
	// Each sender sees its own messages once, and nothing stays pending.
	for _, p := range []*tab{ann, bea} {
		if n := eval[int](p, `document.querySelectorAll('.msg.pending').length`); n != 0 {
			t.Errorf("%s: %d messages still pending", p.name, n)
		}
	}
	// The member list shows all three.
	ann.wait("the members", `['ann','bea','tom'].every((n) => Array.from(document.querySelectorAll('#member-list li'), (li) => li.firstChild.textContent).includes(n))`)
}

// What users write is shown as text and runs nothing; only http(s) URLs
// become links.
func TestUserTextIsOnlyText(t *testing.T) {
	t.Parallel()
	node := parleytest.Start(t)
	b := startBrowser(t)
	ann := newTab(t, b, "ann")
	ann.open(node.HTTP+"/", "ann")
	ann.waitOnline()
	tom := dialWS(t, node.URL, "tom")
	tom.waitFrames("welcome", func(f []string) bool { return len(f) > 0 })

	evil := []string{
		`<img src=x onerror=alert(1)>`,
		`<script>alert(1)</script>`,
		`<img src=x onerror="window.__pwned=1"><svg onload="window.__pwned=2">`,
		`<a href="javascript:alert(1)">click</a> &amp; &lt;b&gt;`,
		`see https://example.com/a?b=1&c=<x>, not javascript:alert(1) or data:text/html,hi or ftp://x`,
	}
	for _, s := range evil {
		tom.write(s)
	}
	// The terminal's messages first, so the order below is known.
	ann.wait("tom's messages", fmt.Sprintf(`document.querySelectorAll('.msg[data-id]').length >= %d`, len(evil)))
	ann.typeLine(`<img src=x onerror=alert(2)> from the page`)
	want := append(slices.Clone(evil), `<img src=x onerror=alert(2)> from the page`)
	ann.wait("the messages", fmt.Sprintf(`document.querySelectorAll('.msg[data-id]').length >= %d`, len(want)))

	var got []string
	for _, m := range ann.messages("lobby") {
		got = append(got, m.Text)
	}
	if !slices.Equal(got, want) {
		t.Errorf("texts shown:\n%q\nwant:\n%q", got, want)
	}
	if n := eval[int](ann, `document.querySelectorAll('#log img, #log script, #log svg, #log iframe, #log [onerror], #log [onload]').length`); n != 0 {
		t.Errorf("%d elements made from user text in the log", n)
	}
	if eval[bool](ann, `window.__pwned !== undefined`) {
		t.Error("an event handler in user text ran")
	}
	if n := ann.dialogCount(); n != 0 {
		t.Errorf("%d dialogs opened", n)
	}
	links := eval[[]map[string]string](ann, `Array.from(document.querySelectorAll('#log a'),
		(a) => ({href: a.getAttribute('href'), rel: a.rel, target: a.target, text: a.textContent}))`)
	wantLink := map[string]string{"href": "https://example.com/a?b=1&c=", "rel": "noopener noreferrer", "target": "_blank", "text": "https://example.com/a?b=1&c="}
	if len(links) != 1 || fmt.Sprint(links[0]) != fmt.Sprint(wantLink) {
		t.Errorf("links = %v, want only %v", links, wantLink)
	}
	// The terminal client got the page's text as it was typed.
	tom.waitFrames("the page's message", func(f []string) bool {
		return slices.Contains(chatLines(f, "ann"), `ann: <img src=x onerror=alert(2)> from the page`)
	})
	if v := ann.consoleMatching("Content Security Policy"); len(v) > 0 {
		t.Errorf("CSP violations: %q", v)
	}
}

// Scrolling to the top pages back through the whole history, once each,
// without moving what the reader looks at.
func TestScrollBackThroughHistory(t *testing.T) {
	t.Parallel()
	node := parleytest.Start(t, parleytest.WithConfig(func(c *server.Config) {
		c.Rate = rate.Inf // seeding 500 messages from one connection
	}))
	const n = 500
	seed(t, node.URL, "seeder", "lobby", "m", n)

	b := startBrowser(t)
	ann := newTab(t, b, "ann")
	ann.open(node.HTTP+"/", "ann")
	ann.waitOnline()
	ann.wait("the latest messages", `document.querySelector('.room-log[data-room="lobby"] .msg[data-id="500"]') !== null`)
	first := ann.messages("lobby")
	if len(first) == 0 || len(first) >= n {
		t.Fatalf("the page shows %d messages on join, want some of the %d", len(first), n)
	}

	for round := 0; ; round++ {
		if round > 20 {
			t.Fatal("the first message never showed up")
		}
		if eval[bool](ann, `document.querySelector('.msg[data-id="1"]') !== null`) {
			break
		}
		before := eval[int](ann, `document.querySelectorAll('.msg[data-id]').length`)
		// Scroll to the top, and note where the top message is on screen.
		top := eval[float64](ann, `(() => {
			const log = document.querySelector('.room-log[data-room="lobby"]');
			log.scrollTop = 0;
			window.__anchor = log.querySelector('.msg[data-id]');
			return window.__anchor.getBoundingClientRect().top;
		})()`)
		ann.wait("an older page", fmt.Sprintf(`document.querySelectorAll('.msg[data-id]').length > %d`, before))
		ann.wait("the load to finish", `!document.querySelector('.room-log[data-room="lobby"] .history-top').textContent.includes('loading')`)
		after := eval[float64](ann, `window.__anchor.getBoundingClientRect().top`)
		if d := after - top; d > 2 || d < -2 {
			t.Errorf("round %d: the message at the top moved by %.1f px when older ones loaded", round, d)
		}
	}

	got := ann.messages("lobby")
	if len(got) != n {
		t.Errorf("the page shows %d messages, want %d", len(got), n)
	}
	for i, m := range got {
		if m.ID != uint64(i+1) || m.Text != fmt.Sprintf("m%03d", i+1) {
			t.Fatalf("message %d is %+v, want id %d text m%03d (duplicates or gaps)", i, m, i+1, i+1)
		}
	}
	ann.wait("the beginning marker", `document.querySelector('.history-top').textContent.includes('beginning of #lobby')`)

	// Scrolled up, a new message shows the marker; the marker takes the
	// reader down to it.
	eval[bool](ann, `(() => { document.querySelector('.room-log[data-room="lobby"]').scrollTop = 0; return true; })()`)
	tom := dialWS(t, node.URL, "tom")
	tom.write("a new one")
	ann.wait("the new-messages marker", `!document.getElementById('new-marker').hidden && document.querySelector('.new-divider') !== null`)
	if eval[float64](ann, `document.querySelector('.room-log[data-room="lobby"]').scrollTop`) != 0 {
		t.Error("a new message moved the view of a reader who scrolled up")
	}
	ann.do(chromedp.Click(chromedp.ID("new-marker")))
	ann.wait("the bottom", `(() => { const l = document.querySelector('.room-log[data-room="lobby"]');
		return l.scrollHeight - l.scrollTop - l.clientHeight < 40 && document.getElementById('new-marker').hidden; })()`)
}

// A server restart while two pages are open: both come back by themselves
// and show what was sent meanwhile exactly once, including what a page
// queued while it was offline.
func TestPagesResumeAfterRestart(t *testing.T) {
	t.Parallel()
	node := parleytest.Start(t)
	b := startBrowser(t)
	ann, bea := newTab(t, b, "ann"), newTab(t, b, "bea")
	ann.open(node.HTTP+"/", "ann")
	bea.open(node.HTTP+"/", "bea")
	ann.waitOnline()
	bea.waitOnline()
	ann.typeLine("before the restart")
	for _, p := range []*tab{ann, bea} {
		p.wait("the first message", `document.querySelectorAll('.msg[data-id]').length === 1`)
	}

	node.Stop()
	for _, p := range []*tab{ann, bea} {
		p.wait("the offline state", `document.getElementById('conn').dataset.state !== 'online'`)
	}
	ann.typeLine("queued while offline")
	ann.wait("the queued count", `document.getElementById('conn-text').textContent.includes('1 queued')`)

	node.Restart() // the node is stopped: this starts it on the same address and database
	tom := dialWS(t, node.URL, "tom")
	for i := range 5 {
		tom.write(fmt.Sprintf("meanwhile %d", i))
	}
	want := []string{"ann: before the restart", "ann: queued while offline"}
	for i := range 5 {
		want = append(want, fmt.Sprintf("tom: meanwhile %d", i))
	}
	for _, p := range []*tab{ann, bea} {
		p.waitOnline()
		p.wait("every message", fmt.Sprintf(`document.querySelectorAll('.msg[data-id]').length >= %d`, len(want)))
	}
	// A late duplicate (a resend stored twice, a replay shown again) would
	// come before a message sent now: wait for that one too.
	tom.write("the end")
	want = append(want, "tom: the end")
	for _, p := range []*tab{ann, bea} {
		p.wait("the last message", `Array.from(document.querySelectorAll('.msg[data-id] .text'), (e) => e.textContent).includes('the end')`)
	}

	a, bb := ann.messages("lobby"), bea.messages("lobby")
	checkIDs(t, "ann", a)
	checkIDs(t, "bea", bb)
	if !slices.Equal(a, bb) {
		t.Errorf("the pages differ:\nann: %v\nbea: %v", a, bb)
	}
	got := lines(a)
	slices.Sort(got)
	slices.Sort(want)
	if !slices.Equal(got, want) {
		t.Errorf("after the restart the page shows\n%q\nwant each of\n%q\nonce", lines(a), want)
	}
	if n := eval[int](ann, `document.querySelectorAll('.msg.pending').length`); n != 0 {
		t.Errorf("%d messages still pending", n)
	}
	if !strings.Contains(eval[string](ann, `document.getElementById('conn-text').textContent`), "connected") {
		t.Error("the page does not say it is connected")
	}
}

// When the log is replaced while a page is away (a new epoch), the page is
// told (reset) and starts the room over instead of mixing ids of two logs.
func TestPageStartsOverAfterEpochReset(t *testing.T) {
	t.Parallel()
	node := parleytest.Start(t)
	b := startBrowser(t)
	ann := newTab(t, b, "ann")
	ann.open(node.HTTP+"/", "ann")
	ann.waitOnline()
	for i := range 3 {
		ann.typeLine(fmt.Sprintf("old %d", i))
	}
	ann.wait("the old messages", `document.querySelectorAll('.msg[data-id]').length === 3`)

	node.Stop()
	for _, suffix := range []string{"", "-wal", "-shm", "-journal"} {
		if err := os.Remove(node.DB + suffix); err != nil && !errors.Is(err, fs.ErrNotExist) {
			t.Fatal(err)
		}
	}
	node.Restart() // a new, empty log: a new epoch
	tom := dialWS(t, node.URL, "tom")
	tom.write("new 0")

	ann.waitOnline()
	ann.wait("the reset notice", logHas("history of #lobby was reset"))
	ann.wait("the new message", `Array.from(document.querySelectorAll('.msg[data-id] .text'), (e) => e.textContent).includes('new 0')`)
	got := ann.messages("lobby")
	if len(got) != 1 || got[0].line() != "tom: new 0" {
		t.Errorf("after the reset the page shows %v, want only tom's new message", got)
	}
}

// A page of older messages that cannot be loaded says so at the top, with a
// button that tries again.
func TestOlderPageFailureIsShownAndRetried(t *testing.T) {
	t.Parallel()
	node := parleytest.Start(t, parleytest.WithConfig(func(c *server.Config) { c.Rate = rate.Inf }))
	seed(t, node.URL, "seeder", "lobby", "m", 120)
	b := startBrowser(t)
	ann := newTab(t, b, "ann")
	ann.open(node.HTTP+"/", "ann")
	ann.waitOnline()
	ann.wait("the latest messages", `document.querySelector('.msg[data-id="120"]') !== null`)
	shown := len(ann.messages("lobby"))
	if shown >= 120 {
		t.Fatalf("the page shows all %d messages on join; the test needs some left to load", shown)
	}

	node.Stop()
	ann.wait("the offline state", `document.getElementById('conn').dataset.state !== 'online'`)
	eval[bool](ann, `(() => { document.querySelector('.room-log[data-room="lobby"]').scrollTop = 0; return true; })()`)
	ann.wait("the error at the top", `document.querySelector('.history-top').textContent.includes('could not load older messages')`)

	node.Restart()
	ann.waitOnline()
	ann.do(chromedp.Click(chromedp.CSS(`.room-log[data-room="lobby"] .history-top button`)))
	ann.wait("an older page", fmt.Sprintf(`document.querySelectorAll('.msg[data-id]').length > %d`, shown))
	checkIDs(t, "ann", ann.messages("lobby"))
}
