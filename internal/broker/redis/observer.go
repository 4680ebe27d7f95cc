package redis

import (
	"context"
	"time"
)

// Observer hears what the engine does with Redis, so that telemetry (at the edge, which this
// package must not import) can turn it into spans and metrics. It uses standard types only.
// Implementations must be safe for concurrent use and cheap: StartCall runs on every publish.
type Observer interface {
	// StartCall begins a Redis call named op (a script's name, or ping, stats, heartbeat, ...):
	// the returned context carries its span, and end reports its outcome (nil: success).
	StartCall(ctx context.Context, op string) (context.Context, func(err error))
	// ReceiveLag is the time from an event's publish (the publisher's clock) to its receipt here.
	ReceiveLag(d time.Duration)
	// Reconnected reports a new pub/sub connection after the previous one was lost.
	Reconnected()
	// Resubscribed reports how long resubscribing every topic took after a reconnect.
	Resubscribed(d time.Duration)
	// Repaired reports a range of missing events read back from the history (ok), or not.
	Repaired(ok bool)
	// GapAnnounced reports a gap notice sent to a topic's local subscribers.
	GapAnnounced()
	// WorkerOverflow reports a message the pub/sub callback could not hand to its topic's worker.
	WorkerOverflow()
	// ProbeRestart reports a pub/sub connection replaced because its idle probe got no echo.
	ProbeRestart()
	// Anomaly reports a message the live rule cannot explain (a seq already delivered, outside a
	// seam or a repair).
	Anomaly()
	// Up reports whether Redis is reachable (the pub/sub connection is up and calls succeed).
	Up(up bool)
	// Replicas reports how many replicas had a fresh heartbeat at the last look.
	Replicas(n int)
}

// NopObserver ignores every report.
type NopObserver struct{}

// StartCall returns ctx and an end that does nothing.
func (NopObserver) StartCall(ctx context.Context, _ string) (context.Context, func(error)) {
	return ctx, func(error) {}
}

// ReceiveLag does nothing.
func (NopObserver) ReceiveLag(time.Duration) {}

// Reconnected does nothing.
func (NopObserver) Reconnected() {}

// Resubscribed does nothing.
func (NopObserver) Resubscribed(time.Duration) {}

// Repaired does nothing.
func (NopObserver) Repaired(bool) {}

// GapAnnounced does nothing.
func (NopObserver) GapAnnounced() {}

// WorkerOverflow does nothing.
func (NopObserver) WorkerOverflow() {}

// ProbeRestart does nothing.
func (NopObserver) ProbeRestart() {}

// Anomaly does nothing.
func (NopObserver) Anomaly() {}

// Up does nothing.
func (NopObserver) Up(bool) {}

// Replicas does nothing.
func (NopObserver) Replicas(int) {}
