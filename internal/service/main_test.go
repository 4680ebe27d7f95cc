package service_test

import (
	"testing"

	"go.uber.org/goleak"
)

// The concurrency tests start publishers; goleak proves each one returns.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
