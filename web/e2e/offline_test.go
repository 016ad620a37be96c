package e2e

import (
	"context"
	"encoding/json"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"parley/web"
)

// TestPageWithoutServer loads the page from web.Handler alone: no WebSocket
// answers, so it must say it is offline, queue what is typed, render it as
// text, and break no rule of its CSP.
func TestPageWithoutServer(t *testing.T) {
	t.Parallel()
	b := startBrowser(t)
	srv := httptest.NewServer(web.Handler())
	t.Cleanup(srv.Close)

	p := newTab(t, b, "page")
	p.open(srv.URL+"/", "ann")
	p.wait("the offline state", `document.getElementById('conn').dataset.state === 'offline'`)
	if got := eval[string](p, `document.getElementById('conn-text').textContent`); !strings.Contains(got, "retrying in") {
		t.Errorf("connection state says %q, want a retry countdown", got)
	}
	if got := eval[string](p, `localStorage.getItem('parley.nick')`); got != "ann" {
		t.Errorf("remembered nick %q, want ann", got)
	}

	p.typeLine(`<img src=x onerror="window.__pwned=1"> see https://example.com/a_(b). or javascript:alert(1)`)
	p.wait("the queued message", `document.querySelectorAll('.msg.pending').length === 1`)
	p.wait("the queued count", `document.getElementById('conn-text').textContent.includes('1 queued')`)
	text := eval[string](p, `document.querySelector('.msg.pending .text').textContent`)
	if !strings.HasPrefix(text, `<img src=x onerror="window.__pwned=1">`) {
		t.Errorf("pending text = %q", text)
	}
	if n := eval[int](p, `document.querySelectorAll('.room-log img, .room-log script').length`); n != 0 {
		t.Errorf("%d img/script elements in the log", n)
	}
	links := eval[[]map[string]string](p, `Array.from(document.querySelectorAll('.room-log a'),
		(a) => ({href: a.href, text: a.textContent, rel: a.rel, target: a.target}))`)
	if len(links) != 1 || links[0]["href"] != "https://example.com/a_(b)" || links[0]["text"] != "https://example.com/a_(b)" ||
		links[0]["rel"] != "noopener noreferrer" || links[0]["target"] != "_blank" {
		t.Errorf("links = %v, want one to https://example.com/a_(b) with rel=noopener noreferrer", links)
	}

	p.typeLine("/help")
	p.wait("the help text", `document.querySelector('.room-log').textContent.includes('/me ACTION')`)
	// A command the page cannot run stays in the input, to be fixed.
	p.do(chromedp.SendKeys(chromedp.ID("input"), "/bogus"), enter)
	p.wait("the unknown command error", `document.querySelector('.room-log').textContent.includes('unknown command /bogus')`)
	if got := eval[string](p, `document.getElementById('input').value`); got != "/bogus" {
		t.Errorf("input after a bad command = %q, want it kept", got)
	}

	checkParseInput(t, p)

	if eval[bool](p, `window.__pwned === 1`) || p.dialogCount() != 0 {
		t.Error("user text ran script")
	}
	if v := p.consoleMatching("Content Security Policy"); len(v) > 0 {
		t.Errorf("CSP violations: %q", v)
	}
	if v := p.consoleMatching("exception"); len(v) > 0 {
		t.Errorf("exceptions: %q", v)
	}
}

// parseInput reads typed lines as the terminal client does.
func checkParseInput(t *testing.T, p *tab) {
	t.Helper()
	cases := []struct{ in, want string }{
		{"", `{"kind":"empty"}`},
		{"   ", `{"kind":"empty"}`},
		{"hi there", `{"kind":"say","text":"hi there"}`},
		{"  keeps spaces  ", `{"kind":"say","text":"  keeps spaces  "}`},
		{"two\nlines", `{"kind":"say","text":"two\nlines"}`},
		{"//me is not a command", `{"kind":"say","text":"/me is not a command"}`},
		{"/me waves  ", `{"kind":"me","text":"waves"}`},
		{"/ME shouts", `{"kind":"me","text":"shouts"}`},
		{"/me", `{"kind":"error","message":"! usage: /me ACTION"}`},
		{"/nick bob_2", `{"kind":"nick","nick":"bob_2"}`},
		{"/nick bad nick", `{"kind":"error","message":"! usage: /nick NAME (1-32 letters, digits, - or _)"}`},
		{"/join #Dev", `{"kind":"join","room":"Dev"}`},
		{"/join dev extra", `{"kind":"join","room":"dev"}`},
		{"/join", `{"kind":"error","message":"! usage: /join ROOM"}`},
		{"/join no.dots", `{"kind":"error","message":"! \"no.dots\" is not a room name (1-32 letters, digits, - or _)"}`},
		{"/leave", `{"kind":"leave","room":""}`},
		{"/leave #dev", `{"kind":"leave","room":"dev"}`},
		{"/part dev", `{"kind":"leave","room":"dev"}`},
		{"/who", `{"kind":"who","room":""}`},
		{"/who lobby", `{"kind":"who","room":"lobby"}`},
		{"/rooms", `{"kind":"rooms"}`},
		{"/help", `{"kind":"help"}`},
		{"/", `{"kind":"error","message":"! unknown command / (type /help for the list)"}`},
		{"/quit", `{"kind":"error","message":"! unknown command /quit (type /help for the list)"}`},
	}
	ctx, cancel := context.WithTimeout(p.ctx, waitFor)
	defer cancel()
	for _, c := range cases {
		in, _ := json.Marshal(c.in)
		got, err := chromedp.Run(ctx, chromedp.Evaluate[string](
			`import('/assets/commands.js').then((m) => JSON.stringify(m.parseInput(`+string(in)+`)))`,
			chromedp.EvalAwaitPromise))
		if err != nil {
			t.Fatal(err)
		}
		if got != c.want {
			t.Errorf("parseInput(%q) = %s, want %s", c.in, got, c.want)
		}
	}
}
