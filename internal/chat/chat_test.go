package chat

import (
	"errors"
	"strings"
	"testing"
)

func TestValidName(t *testing.T) {
	tests := []struct {
		name string
		want error
	}{
		{"alice", nil},
		{"A-b_9", nil},
		{strings.Repeat("x", MaxNameLen), nil},
		{"", ErrNameEmpty},
		{strings.Repeat("x", MaxNameLen+1), ErrNameTooLong},
		{"a b", ErrNameChars},
		{"#lobby", ErrNameChars},
		{"café", ErrNameChars},
		{"a.b", ErrNameChars},
		{"a\x00", ErrNameChars},
	}
	for _, tt := range tests {
		if got := ValidName(tt.name); !errors.Is(got, tt.want) {
			t.Errorf("ValidName(%q) = %v, want %v", tt.name, got, tt.want)
		}
	}
}

func TestFoldName(t *testing.T) {
	if FoldName("Alice") != FoldName("aLICE") {
		t.Error("names that differ only in case must fold to the same key")
	}
	if FoldName("alice") == FoldName("alice_") {
		t.Error("different names must not fold to the same key")
	}
}

func TestKindString(t *testing.T) {
	for k, want := range map[Kind]string{KindText: "text", KindAction: "action", Kind(9): "kind(9)"} {
		if got := k.String(); got != want {
			t.Errorf("Kind(%d).String() = %q, want %q", uint8(k), got, want)
		}
	}
}
