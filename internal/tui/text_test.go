package tui

import (
	"strings"
	"testing"
)

func TestClean(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ in, want, body string }{
		{"hello", "hello", "hello"},
		{"", "", ""},
		{"héllo wörld 日本", "héllo wörld 日本", "héllo wörld 日本"},
		{"\x1b[2Jclear", "\uFFFD[2Jclear", "\uFFFD[2Jclear"},
		{"\x1b]0;pwned\x07title", "\uFFFD]0;pwned\uFFFDtitle", "\uFFFD]0;pwned\uFFFDtitle"},
		{"a\u009b31mb", "a\uFFFD31mb", "a\uFFFD31mb"}, // C1 CSI
		{"del\x7f", "del\uFFFD", "del\uFFFD"},
		{"bell\a", "bell\uFFFD", "bell\uFFFD"},
		{"cr\roverwrite", "cr\uFFFDoverwrite", "cr\uFFFDoverwrite"},
		{"back\bspace", "back\uFFFDspace", "back\uFFFDspace"},
		{"two\nlines", "two lines", "two\nlines"},
		{"tab\there", "tab here", "tab here"},
		{"rtl\u202eevil", "rtl\uFFFDevil", "rtl\uFFFDevil"},
		{"bad\xffutf8", "bad\uFFFDutf8", "bad\uFFFDutf8"},
	} {
		if got := clean(tc.in); got != tc.want {
			t.Errorf("clean(%q) = %q, want %q", tc.in, got, tc.want)
		}
		if got := cleanBody(tc.in); got != tc.body {
			t.Errorf("cleanBody(%q) = %q, want %q", tc.in, got, tc.body)
		}
	}
}

func TestWrap(t *testing.T) {
	t.Parallel()
	rows := wrap("the quick brown fox jumps over the lazy dog", 10)
	for _, r := range rows {
		if len(r) > 10 {
			t.Errorf("row %q is wider than 10", r)
		}
	}
	if got := strings.Join(rows, " "); strings.Join(strings.Fields(got), " ") != "the quick brown fox jumps over the lazy dog" {
		t.Errorf("wrapped text reads %q", got)
	}
	if rows := wrap("line one\nline two", 40); len(rows) != 2 || rows[0] != "line one" || rows[1] != "line two" {
		t.Errorf("wrap kept newlines as %q", rows)
	}
	if rows := wrap(strings.Repeat("x", 25), 10); len(rows) != 3 {
		t.Errorf("a long word wraps to %q, want 3 rows", rows)
	}
}

func TestNickColourIsStable(t *testing.T) {
	t.Parallel()
	a, b := newStyles(), newStyles()
	seen := map[any]bool{}
	for _, n := range []string{"alice", "bob", "carol", "dave", "erin", "frank", "grace"} {
		if a.nickColor(n) != b.nickColor(n) {
			t.Errorf("%s has two colours", n)
		}
		if a.nickColor(n) != a.nickColor(strings.ToUpper(n)) {
			t.Errorf("%s and %s have different colours; nicks compare case-insensitively", n, strings.ToUpper(n))
		}
		seen[a.nickColor(n)] = true
	}
	if len(seen) < 3 {
		t.Errorf("7 nicks share %d colours", len(seen))
	}
}
