package ws_test

import (
	"context"
	"io"
	"testing"

	"go.uber.org/goleak"

	"github.com/pubsubd/pubsub/internal/transport/ws"
	"github.com/pubsubd/pubsub/telemetry"
)

// TestStartOwnsTheGoroutines: NewServer starts nothing, Start starts the clock, parker and
// flushers, and Shutdown stops them all; Shutdown without Start returns at once, and Start after
// Shutdown does nothing.
func TestStartOwnsTheGoroutines(t *testing.T) {
	tel, err := telemetry.Setup(context.Background(), telemetry.Config{LogOutput: io.Discard, LogFormat: "json"})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	before := goleak.IgnoreCurrent()

	idle := ws.NewServer(ws.Config{}, nil, tel)
	goleak.VerifyNone(t, before) // no goroutine yet
	if err := idle.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown without Start: %v", err)
	}
	idle.Start()
	goleak.VerifyNone(t, before) // Start after Shutdown started nothing

	s := ws.NewServer(ws.Config{}, nil, tel)
	s.Start()
	s.Start() // a second Start is a no-op, not a second set of goroutines
	if err := s.Shutdown(ctx); err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	if err := s.Shutdown(ctx); err != nil {
		t.Fatalf("second Shutdown: %v", err)
	}
	goleak.VerifyNone(t, before) // Shutdown stopped what Start started
}
