package redis

import (
	"context"
	"time"

	"github.com/pubsubd/pubsub/internal/domain"
)

// AwaitDelivered waits until this engine has delivered seq of name to its local subscribers and
// returns the fan-out's stats; ok is false if it does not follow the topic or the wait timed out.
// Tests with publishers on another engine use it as their barrier.
func (e *Engine) AwaitDelivered(ctx context.Context, name domain.TopicName, seq uint64) (domain.PublishStats, bool) {
	st := e.lookup(name)
	if st == nil {
		return domain.PublishStats{}, false
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

// MuteNodeChannel unsubscribes the pub/sub connection from this replica's own channel behind the
// feed's back: the connection stays up and looks healthy, but the probe's echo never comes, as
// with a connection left on an old master after a failover.
func (e *Engine) MuteNodeChannel(ctx context.Context) error {
	e.feed.mu.Lock()
	conn := e.feed.conn
	e.feed.mu.Unlock()
	return conn.Do(ctx, conn.B().Unsubscribe().Channel(e.feed.nodeChannel()).Build()).Error()
}

// InboxUsed returns the bytes of received messages waiting for the workers.
func (e *Engine) InboxUsed() int64 { return e.inboxBytes.Used() }
