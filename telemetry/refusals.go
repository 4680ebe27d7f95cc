package telemetry

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// RefusalLog writes client errors and refusals (bad frames, limits, authentication) at a bounded
// rate: a client that sends 200,000 bad frames must not write 200,000 log lines. Up to burst records
// pass at once, then one per 1/rate; the rest are counted and reported by the next record that
// passes as "suppressed". Metrics count every refusal; the log is a sample with a count. Safe for
// concurrent use; one mutex, held for a few instructions per call.
type RefusalLog struct {
	log   *slog.Logger
	rate  float64 // records per second
	burst float64

	mu         sync.Mutex
	tokens     float64
	last       time.Time
	suppressed int
}

// NewRefusalLog returns a RefusalLog writing to log at most rate records per second after a burst.
func NewRefusalLog(log *slog.Logger, rate float64, burst int) *RefusalLog {
	return &RefusalLog{log: log, rate: rate, burst: float64(burst), tokens: float64(burst)}
}

// Warn logs msg with args at WARN unless the budget is spent. Never pass a secret in args.
func (r *RefusalLog) Warn(ctx context.Context, msg string, args ...any) {
	if r == nil || !r.log.Enabled(ctx, slog.LevelWarn) {
		return
	}
	suppressed, ok := r.take(time.Now())
	if !ok {
		return
	}
	if suppressed > 0 {
		args = append(args, slog.Int("suppressed", suppressed))
	}
	r.log.WarnContext(ctx, msg, args...)
}

// take spends a token; it returns how many records were suppressed since the last one that passed.
func (r *RefusalLog) take(now time.Time) (int, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.last.IsZero() {
		r.tokens = min(r.burst, r.tokens+now.Sub(r.last).Seconds()*r.rate)
	}
	r.last = now
	if r.tokens < 1 {
		r.suppressed++
		return 0, false
	}
	r.tokens--
	n := r.suppressed
	r.suppressed = 0
	return n, true
}
