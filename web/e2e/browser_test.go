package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/input"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
)

// waitFor bounds every wait on the page; the page's own retries are at most
// 15 s apart, so this leaves room for one of them and a slow machine.
const waitFor = 30 * time.Second

// chromiumPath finds the browser, or skips (fails on CI) with how to get it.
func chromiumPath(t *testing.T) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "headless-shell"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	const msg = "no Chromium found; install it to run the browser tests: apt-get install chromium"
	if os.Getenv("CI") == "true" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// startBrowser starts one headless Chromium with its own profile directory
// and returns its context; the browser is closed at test cleanup. Pages made
// from it with newPage have separate storage.
func startBrowser(t *testing.T) context.Context {
	t.Helper()
	path := chromiumPath(t)
	opts := []chromedp.ExecAllocatorOption{
		chromedp.ExecPath(path),
		chromedp.Headless,
		chromedp.NoSandbox,
		chromedp.DisableGPU,
		chromedp.NoFirstRun,
		chromedp.NoDefaultBrowserCheck,
		chromedp.UserDataDir(t.TempDir()),
		chromedp.WindowSize(1280, 800),
		chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("disable-extensions", true),
		chromedp.Flag("disable-default-apps", true),
		// Pages in the background must keep their timers: the page's
		// reconnect runs on them.
		chromedp.Flag("disable-background-timer-throttling", true),
		chromedp.Flag("disable-renderer-backgrounding", true),
		chromedp.Flag("disable-backgrounding-occluded-windows", true),
	}
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(allocCtx)
	t.Cleanup(func() {
		cancel()
		cancelAlloc()
	})
	// The first Do binds the browser's life to its context: no timeout here.
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	return ctx
}

// tab is one tab in its own browser context (its own localStorage), with
// the console messages it logged.
type tab struct {
	t    *testing.T
	name string
	ctx  context.Context

	mu      sync.Mutex
	console []string // guarded by mu
	dialogs int      // guarded by mu
}

func newTab(t *testing.T, browser context.Context, name string) *tab {
	t.Helper()
	ctx, cancel := chromedp.NewContext(browser, chromedp.WithNewBrowserContext())
	t.Cleanup(cancel)
	p := &tab{t: t, name: name, ctx: ctx}
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("%s: open tab: %v", name, err)
	}
	err := chromedp.Listen(ctx, func(ev any) {
		if _, ok := ev.(*page.EventJavascriptDialogOpening); ok {
			p.mu.Lock()
			p.dialogs++
			p.mu.Unlock()
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	msgs := chromedp.Console(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for m, err := range msgs {
			if err != nil {
				return
			}
			p.mu.Lock()
			p.console = append(p.console, fmt.Sprintf("%s: %s", m.Type, m.Text))
			p.mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
	return p
}

// consoleMatching returns the console messages that contain s.
func (p *tab) consoleMatching(s string) []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []string
	for _, m := range p.console {
		if strings.Contains(m, s) {
			out = append(out, m)
		}
	}
	return out
}

func (p *tab) dialogCount() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.dialogs
}

func (p *tab) do(actions ...chromedp.Action[chromedp.Void]) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, waitFor)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		p.t.Fatalf("%s: %v", p.name, err)
	}
}

// eval runs a JavaScript expression in the page and decodes its value.
func eval[T any](p *tab, expr string) T {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, waitFor)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		p.t.Fatalf("%s: eval %s: %v", p.name, expr, err)
	}
	return v
}

// wait polls a JavaScript condition until it is true, for at most waitFor.
func (p *tab) wait(what, cond string) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, waitFor+5*time.Second)
	defer cancel()
	_, err := chromedp.Run(ctx, chromedp.Poll[chromedp.Void](cond,
		chromedp.WithPollingInterval(50*time.Millisecond), chromedp.WithPollingTimeout(waitFor)))
	if err != nil {
		p.mu.Lock()
		console := strings.Join(p.console, "\n")
		p.mu.Unlock()
		p.t.Fatalf("%s: waiting for %s (%s): %v\nconsole:\n%s", p.name, what, cond, err, console)
	}
}

// enter presses Enter with no char event, as a person's Enter reaches a
// handler that cancels keydown (see chromedp docs/API.md, example 20).
var enter = chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
	for _, typ := range []input.DispatchKeyEventType{
		input.DispatchKeyEventTypeRawKeyDown, input.DispatchKeyEventTypeKeyUp,
	} {
		_, err := cdp.Call(ctx, t, input.DispatchKeyEvent, input.DispatchKeyEventParams{
			Type: typ, Key: "Enter", Code: "Enter",
			WindowsVirtualKeyCode: 13, NativeVirtualKeyCode: 13,
		})
		if err != nil {
			return err
		}
	}
	return nil
})

// open loads the page and answers the nick prompt.
func (p *tab) open(url, nick string) {
	p.t.Helper()
	p.do(chromedp.Navigate(url))
	p.wait("the nick prompt", `!document.getElementById('nick-dialog').hidden`)
	p.do(chromedp.SendKeys(chromedp.ID("nick-input"), nick+"\n"))
	p.wait("the prompt to close", `document.getElementById('nick-dialog').hidden`)
}

// typeLine types text into the message input and presses Enter.
func (p *tab) typeLine(text string) {
	p.t.Helper()
	p.do(chromedp.Focus(chromedp.ID("input")), chromedp.SendKeys(chromedp.ID("input"), text), enter)
	p.wait("the input to clear", `document.getElementById('input').value === ''`)
}

func (p *tab) waitOnline() {
	p.t.Helper()
	p.wait("the connection", `document.getElementById('conn').dataset.state === 'online'`)
}

// shown is one message as the page shows it.
type shown struct {
	ID     uint64 `json:"id"`
	From   string `json:"from"`
	Text   string `json:"text"`
	Action bool   `json:"action"`
}

// messages returns the messages the page shows in room, top to bottom.
func (p *tab) messages(room string) []shown {
	p.t.Helper()
	raw := eval[[]byte](p, fmt.Sprintf(`Array.from(document.querySelectorAll('.room-log[data-room=%q] .msg[data-id]'),
		(e) => ({id: Number(e.dataset.id), from: e.dataset.from, text: e.querySelector('.text').textContent,
		         action: e.classList.contains('action')}))`, room))
	var out []shown
	if err := json.Unmarshal(raw, &out); err != nil {
		p.t.Fatalf("%s: %v", p.name, err)
	}
	return out
}

// artifactsDir is where screenshots go: $PARLEY_ARTIFACTS, else a temp dir.
func artifactsDir(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("PARLEY_ARTIFACTS")
	if dir == "" {
		return t.TempDir()
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

func (p *tab) screenshot(dir, name string) string {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, waitFor)
	defer cancel()
	buf, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err != nil {
		p.t.Fatalf("%s: screenshot: %v", p.name, err)
	}
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, buf, 0o644); err != nil {
		p.t.Fatal(err)
	}
	p.t.Logf("screenshot: %s", path)
	return path
}
