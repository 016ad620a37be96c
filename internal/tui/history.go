package tui

// inputHistory is the input line's history, walked with up and down as in
// a shell: up from the line being typed goes to the last line entered, down
// past the newest comes back to what was being typed.
type inputHistory struct {
	lines []string
	max   int // lines kept; 0 means 500
	pos   int // index into lines while walking; len(lines) when not
	draft string
}

// add records a line entered; it ends any walk. A line equal to the last
// one is kept once.
func (h *inputHistory) add(line string) {
	if n := len(h.lines); n == 0 || h.lines[n-1] != line {
		h.lines = append(h.lines, line)
	}
	limit := h.max
	if limit <= 0 {
		limit = 500
	}
	if over := len(h.lines) - limit; over > 0 {
		h.lines = append(h.lines[:0], h.lines[over:]...)
	}
	h.pos = len(h.lines)
	h.draft = ""
}

// prev returns the line before the one shown; current is what the input
// holds now, kept as the draft when the walk starts. ok is false at the
// oldest line.
func (h *inputHistory) prev(current string) (string, bool) {
	if h.pos > len(h.lines) {
		h.pos = len(h.lines)
	}
	if h.pos == 0 {
		return "", false
	}
	if h.pos == len(h.lines) {
		h.draft = current
	}
	h.pos--
	return h.lines[h.pos], true
}

// next returns the line after the one shown, and the draft after the
// newest. ok is false when not walking.
func (h *inputHistory) next() (string, bool) {
	if h.pos >= len(h.lines) {
		return "", false
	}
	h.pos++
	if h.pos == len(h.lines) {
		return h.draft, true
	}
	return h.lines[h.pos], true
}
