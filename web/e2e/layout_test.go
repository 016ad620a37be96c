package e2e

import (
	"context"
	"fmt"
	"testing"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/input"
	"github.com/chromedp/chromedp"

	"parley/internal/parleytest"
)

// shiftEnter presses Shift+Enter as a keyboard does: keydown with the
// shift modifier and the "\r" text, then keyup.
var shiftEnter = chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
	for _, p := range []input.DispatchKeyEventParams{
		{Type: input.DispatchKeyEventTypeKeyDown, Key: "Enter", Code: "Enter", Text: "\r", Modifiers: 8, /* shift */
			WindowsVirtualKeyCode: 13, NativeVirtualKeyCode: 13},
		{Type: input.DispatchKeyEventTypeKeyUp, Key: "Enter", Code: "Enter", Modifiers: 8, /* shift */
			WindowsVirtualKeyCode: 13, NativeVirtualKeyCode: 13},
	} {
		if _, err := cdp.Call(ctx, t, input.DispatchKeyEvent, p); err != nil {
			return err
		}
	}
	return nil
})

func darkMode(on bool) chromedp.Action[chromedp.Void] {
	v := "light"
	if on {
		v = "dark"
	}
	return chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
		_, err := cdp.Call(ctx, t, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{
			Features: []*emulation.MediaFeature{{Name: "prefers-color-scheme", Value: v}},
		})
		return err
	})
}

// checkFits fails when the page is wider than the viewport or a control
// the user needs is outside it.
func checkFits(t *testing.T, p *tab, width int) {
	t.Helper()
	if w := eval[int](p, `document.documentElement.scrollWidth`); w > width {
		t.Errorf("at %d px the page is %d px wide", width, w)
	}
	for _, id := range []string{"input", "send", "conn", "nick-btn", "room-title"} {
		ok := eval[bool](p, fmt.Sprintf(`(() => {
			const r = document.getElementById(%q).getBoundingClientRect();
			return r.width > 0 && r.height > 0 && r.left >= 0 && r.right <= innerWidth + 0.5 && r.top >= 0 && r.bottom <= innerHeight + 0.5;
		})()`, id))
		if !ok {
			t.Errorf("at %d px #%s is not fully on screen", width, id)
		}
	}
}

// A chat with a bit of everything, shown at desktop and phone sizes, in
// light and dark; the screenshots are kept as test artifacts.
func TestLayoutAndScreenshots(t *testing.T) {
	t.Parallel()
	dir := artifactsDir(t)
	node := parleytest.Start(t)
	b := startBrowser(t)
	ann := newTab(t, b, "ann")
	ann.open(node.HTTP+"/", "ann")
	ann.waitOnline()
	bob := dialWS(t, node.URL, "bob")
	bob.write("/join dev")
	bob.write("/join lobby")
	carol := dialWS(t, node.URL, "carol")

	bob.write("morning! the deploy of 1.4 is done")
	ann.typeLine("thanks, the notes are at https://example.com/parley/notes")
	bob.write("/me goes to get coffee")
	carol.write("<b>not bold</b> and a very-long-word-without-any-spaces-that-must-wrap-on-a-phone-screen-somehow")
	// Shift+Enter makes a new line; Enter sends.
	ann.do(chromedp.Focus(chromedp.ID("input")), chromedp.SendKeys(chromedp.ID("input"), "two lines:"),
		shiftEnter, chromedp.SendKeys(chromedp.ID("input"), "this is the second"), enter)
	ann.wait("the two-line message", `Array.from(document.querySelectorAll('.msg[data-id] .text'), (e) => e.textContent).includes('two lines:\nthis is the second')`)
	carol.conn.CloseNow() // a leave notice
	ann.wait("carol's leave", `document.querySelector('.room-log').textContent.includes('carol left')`)

	// A second room with an unread message.
	ann.typeLine("/join dev")
	ann.wait("the dev room", `document.getElementById('room-title').textContent === '#dev'`)
	ann.typeLine("/join lobby")
	ann.wait("back in lobby", `document.getElementById('room-title').textContent === '#lobby'`)
	bob.write("/join dev")
	bob.write("the build is green again")
	ann.wait("the unread count", `document.querySelector('#room-list li[data-room="dev"] .badge')?.textContent === '1'`)
	bob.write("/join lobby")
	ann.wait("the members", `document.querySelectorAll('#member-list li').length === 2`)

	ann.do(chromedp.EmulateViewport(1280, 800), darkMode(false))
	checkFits(t, ann, 1280)
	ann.screenshot(dir, "parley-1280x800.png")

	ann.do(chromedp.EmulateViewport(360, 740, chromedp.EmulateMobile, chromedp.EmulateTouch))
	ann.wait("the narrow layout", `getComputedStyle(document.getElementById('toggle-rooms')).display !== 'none'`)
	checkFits(t, ann, 360)
	ann.screenshot(dir, "parley-360x740.png")

	ann.do(darkMode(true))
	ann.wait("the dark theme", `getComputedStyle(document.body).backgroundColor !== 'rgb(255, 255, 255)'`)
	ann.screenshot(dir, "parley-360x740-dark.png")

	// The rooms panel opens from the keyboard too.
	ann.do(chromedp.Focus(chromedp.ID("toggle-rooms")), chromedp.SendKeys(chromedp.ID("toggle-rooms"), " "))
	ann.wait("the rooms panel", `document.getElementById('rooms-panel').classList.contains('open')`)
	ann.wait("focus in the panel", `document.getElementById('rooms-panel').contains(document.activeElement)`)
	ann.wait("the panel in place", `document.getElementById('rooms-panel').getBoundingClientRect().left === 0`)
	ann.screenshot(dir, "parley-360x740-dark-rooms.png")
	ann.do(chromedp.SendKeys(chromedp.ID("join-input"), "\x1b")) // Escape
	ann.wait("the panel to close", `!document.getElementById('rooms-panel').classList.contains('open')`)

	// Offline, the state says so on a phone too, with what is queued.
	node.Stop()
	ann.wait("the offline state", `document.getElementById('conn').dataset.state === 'offline'`)
	ann.typeLine("sent when we are back")
	ann.wait("the queued count", `document.getElementById('conn-text').textContent.includes('1 queued')`)
	checkFits(t, ann, 360)
	ann.screenshot(dir, "parley-360x740-dark-offline.png")
}
