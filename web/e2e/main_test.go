// Package e2e tests the web page in a real headless Chromium against a real
// parley server. The tests skip when no Chromium is installed, and fail
// instead when CI=true.
package e2e

import (
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
