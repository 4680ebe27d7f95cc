package ws

import (
	"testing"
	"time"

	"github.com/pubsubd/pubsub/telemetry"
	"github.com/pubsubd/pubsub/telemetry/telemetrytest"
)

// TestClockSurvivesAPanic: a panic in the server's clock is logged and counted, and the clock goes
// on ticking (it panics again on its next look, which is how the test sees it is still there).
func TestClockSurvivesAPanic(t *testing.T) {
	s := newUnitServer(t)
	s.cfg.IdleAfter = 5 * time.Millisecond
	if s.parker == nil {
		t.Skip("idle readers park only on Linux; the clock's idle look does nothing here")
	}
	// A connection with no socket, whose reader looks idle: asking it to park panics.
	bad := &conn{s: s, out: newOutbox()}
	s.mu.Lock()
	s.conns[bad] = struct{}{}
	s.mu.Unlock()
	t.Cleanup(func() { // before the server's shutdown, which would tear it down
		s.mu.Lock()
		delete(s.conns, bad)
		s.mu.Unlock()
	})
	s.Start()

	panics := func() float64 {
		m, err := telemetrytest.Series(s.tel.Metrics.Registry, "pubsub_panics_total", map[string]string{"component": telemetry.PanicClock})
		if err != nil {
			t.Fatal(err)
		}
		return telemetrytest.Value(m)
	}
	deadline := time.Now().Add(waitFor)
	for panics() < 2 {
		if time.Now().After(deadline) {
			t.Fatalf("clock panics counted: %v, want at least 2 (the clock must go on after the first)", panics())
		}
		bad.rd.parkReq.Store(false)  // asked before it panicked: ask again
		time.Sleep(time.Millisecond) // polling a counter with a deadline
	}
}
