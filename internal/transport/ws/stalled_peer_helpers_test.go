package ws_test

import (
	"testing"
	"time"
)

// stalledPeerWriteTimeout is the write timeout for a test whose peer stops reading on purpose: a
// write to that peer may then block for as long as the test's phase lasts, and that phase is slower
// under the race detector or on a busy machine by a factor nobody can know in advance. So the
// timeout is longer than the test may run at all (what is left of go test's -timeout, or an hour
// without one): only the policy under test acts on the stall, never the write timeout. The test
// server's shutdown still cuts such a write off at its drain deadline.
func stalledPeerWriteTimeout(t *testing.T) time.Duration {
	if d, ok := t.Deadline(); ok {
		return time.Until(d) + time.Minute
	}
	return time.Hour
}
