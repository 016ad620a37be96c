package server

import (
	"net"
	"testing"
)

func TestUnwritten(t *testing.T) {
	bufs := net.Buffers{[]byte("abc"), []byte("de"), []byte("fghi")}
	cases := []struct {
		n    int
		want string
	}{
		{0, "abcdefghi"}, {2, "cdefghi"}, {3, "defghi"}, {4, "efghi"}, {5, "fghi"}, {8, "i"}, {9, ""},
	}
	for _, tc := range cases {
		got := unwritten(bufs, tc.n)
		if string(got) != tc.want || (tc.want == "" && got != nil) {
			t.Errorf("unwritten after %d bytes: %q, want %q", tc.n, got, tc.want)
		}
	}
}
