package tui

import (
	"strings"
	"unicode/utf8"

	"github.com/charmbracelet/x/ansi"
)

// clean makes text from the network safe to draw: control characters (C0,
// DEL and C1: ESC and CSI start every terminal escape sequence) and the
// Unicode bidi overrides become U+FFFD, as in the text format; a newline
// and a tab become a space, so a name stays on one line. Invalid UTF-8
// becomes U+FFFD too.
func clean(s string) string { return sanitize(s, false) }

// cleanBody is clean for a message's text, which keeps its newlines: the
// view draws each line as a row of its own, under the message.
func cleanBody(s string) string { return sanitize(s, true) }

func sanitize(s string, newlines bool) string {
	if isClean(s, newlines) {
		return s
	}
	var b strings.Builder
	b.Grow(len(s))
	for _, r := range s {
		switch {
		case r == '\n' && newlines:
			b.WriteByte('\n')
		case r == '\n' || r == '\t':
			b.WriteByte(' ')
		case unsafeRune(r):
			b.WriteRune(utf8.RuneError)
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// isClean reports whether s needs no change: the common case, without an
// allocation.
func isClean(s string, newlines bool) bool {
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if (c < 0x20 || c == 0x7f) && !(c == '\n' && newlines) {
				return false
			}
			i++
			continue
		}
		r, n := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && n == 1 || unsafeRune(r) {
			return false
		}
		i += n
	}
	return true
}

func unsafeRune(r rune) bool {
	switch {
	case r < 0x20, r == 0x7f, r >= 0x80 && r < 0xa0:
		return true
	case r >= 0x202a && r <= 0x202e, r >= 0x2066 && r <= 0x2069: // bidi embeddings, overrides, isolates
		return true
	}
	return false
}

// wrap breaks clean text into rows of at most width cells: at its
// newlines, at spaces where it can, inside words where it must.
func wrap(s string, width int) []string {
	if width < 1 {
		width = 1
	}
	if ansi.StringWidth(s) <= width && !strings.Contains(s, "\n") {
		return []string{s}
	}
	return strings.Split(ansi.Wrap(s, width, ""), "\n")
}

// truncate cuts clean text to width cells, marking the cut.
func truncate(s string, width int) string {
	if width < 1 {
		return ""
	}
	return ansi.Truncate(s, width, "…")
}

// pad fills s (which may hold styles) with spaces to width cells, cutting
// it first if it is wider.
func pad(s string, width int) string {
	w := ansi.StringWidth(s)
	if w > width {
		s = ansi.Truncate(s, width, "")
		w = ansi.StringWidth(s)
	}
	return s + strings.Repeat(" ", width-w)
}
