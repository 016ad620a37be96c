package protocol

import (
	"testing"

	"go.uber.org/goleak"
)

// The codecs start no goroutines; the check keeps it that way.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
