package e2e

import (
	"slices"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"

	"parley/internal/parleytest"
)

// logHas is a condition: the current room's log contains s.
func logHas(s string) string {
	return `Array.from(document.querySelectorAll('.room-log:not([hidden])'), (e) => e.textContent).join('').includes(` + jsString(s) + `)`
}

func jsString(s string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`, "\n", `\n`).Replace(s) + "'"
}

// Every command of the terminal client works when typed into the page.
func TestTypedCommands(t *testing.T) {
	t.Parallel()
	node := parleytest.Start(t)
	b := startBrowser(t)
	ann := newTab(t, b, "ann")
	ann.open(node.HTTP+"/", "ann")
	ann.waitOnline()
	tom := dialWS(t, node.URL, "tom")
	ann.wait("tom", `document.querySelectorAll('#member-list li').length === 2`)

	ann.typeLine("/nick ann2")
	ann.wait("the new nick", `document.getElementById('my-nick').textContent === 'ann2'`)
	if got := eval[string](ann, `localStorage.getItem('parley.nick')`); got != "ann2" {
		t.Errorf("remembered nick %q, want ann2", got)
	}
	tom.waitFrames("the nick notice", func(f []string) bool { return slices.Contains(f, "* ann is now known as ann2") })

	ann.typeLine("/who")
	ann.wait("the who answer", logHas("in #lobby (2): ann2, tom"))
	ann.typeLine("/rooms")
	ann.wait("the rooms answer", logHas("rooms: #lobby (2)"))

	ann.typeLine("/join dev")
	ann.wait("the dev room", `document.getElementById('room-title').textContent === '#dev'`)
	ann.wait("the join notice", logHas("you joined #dev"))
	ann.typeLine("hello dev")
	tom.write("/who dev")
	tom.waitFrames("ann2 in dev", func(f []string) bool { return slices.Contains(f, "* in #dev (1): ann2") })

	ann.typeLine("//slash at the start")
	ann.wait("the slash message", `Array.from(document.querySelectorAll('.msg[data-id] .text'), (e) => e.textContent).includes('/slash at the start')`)

	ann.typeLine("/leave")
	ann.wait("back in lobby", `document.getElementById('room-title').textContent === '#lobby'`)
	ann.wait("dev gone from the list", `document.querySelector('#room-list li[data-room="dev"]') === null`)
	tom.write("/who dev")
	tom.waitFrames("dev empty", func(f []string) bool {
		return slices.ContainsFunc(f, func(s string) bool { return strings.HasPrefix(s, "* in #dev (0)") })
	})

	ann.typeLine("/me leaves the building")
	tom.waitFrames("the action", func(f []string) bool { return slices.Contains(f, "* ann2 leaves the building") })

	// The join form and the room list's leave button do the same.
	ann.do(chromedp.SendKeys(chromedp.ID("join-input"), "#ops\n"))
	ann.wait("the ops room", `document.getElementById('room-title').textContent === '#ops'`)
	ann.do(chromedp.Click(chromedp.CSS(`#room-list li[data-room="ops"] .leave-btn`)))
	ann.wait("ops gone", `document.querySelector('#room-list li[data-room="ops"]') === null && document.getElementById('room-title').textContent === '#lobby'`)
}
