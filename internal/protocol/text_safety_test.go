package protocol

import "testing"

// A message cannot pass for another event in the text format, and carries
// no terminal escapes.
func TestAppendTextMessageIsOneEvent(t *testing.T) {
	tests := []struct{ text, want string }{
		{"hi\n* mallory joined #lobby", "alice: hi\n    * mallory joined #lobby"},
		{"a\r\nb", "alice: a\ufffd\n    b"},
		{"\x1b[2Jcleared", "alice: \ufffd[2Jcleared"},
		{"tab\there", "alice: tab\there"},
		{"\u009bcsi", "alice: \ufffdcsi"},
		{"naïve ☃", "alice: naïve ☃"},
	}
	for _, tt := range tests {
		ev := Event{Type: EvMessage, Room: "lobby", From: "alice", Text: tt.text}
		if got := string(AppendText(nil, &ev, "lobby")); got != tt.want {
			t.Errorf("AppendText(%q) = %q, want %q", tt.text, got, tt.want)
		}
	}
}
