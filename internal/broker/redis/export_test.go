package redis

import (
	"context"
	"time"

	"github.com/pubsubd/pubsub/internal/domain"
)

// AwaitDelivered waits until this engine has delivered seq of name to its local subscribers and
// returns the event and the fan-out's stats; ok is false if it does not follow the topic or the
// wait timed out. Tests with publishers on another engine use it as their barrier.
func (e *Engine) AwaitDelivered(ctx context.Context, name domain.TopicName, seq uint64) (*domain.Event, domain.PublishStats, bool) {
	st := e.lookup(name)
	if st == nil {
		return nil, domain.PublishStats{}, false
	}
	return st.awaitDelivery(ctx, seq, e.opts.Timeout)
}

// AwaitGone waits until this engine no longer follows name (after a delete), up to d.
func (e *Engine) AwaitGone(name domain.TopicName, d time.Duration) bool {
	st := e.lookup(name)
	if st == nil {
		return true
	}
	select {
	case <-st.done:
		return true
	case <-time.After(d):
		return false
	}
}

// Following reports whether this engine follows name (has a worker for it).
func (e *Engine) Following(name domain.TopicName) bool { return e.lookup(name) != nil }

// Offer hands raw to name's worker as the pub/sub callback would: tests inject messages the live
// rule must cope with (a seq already delivered, a hole).
func (e *Engine) Offer(name domain.TopicName, raw string) bool {
	st := e.lookup(name)
	if st == nil {
		return false
	}
	st.offer([]byte(raw))
	return true
}
