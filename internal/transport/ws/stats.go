package ws

import (
	"sync/atomic"
	"time"

	"github.com/pubsubd/pubsub/internal/domain"
	"github.com/pubsubd/pubsub/internal/transport/wire"
	"github.com/pubsubd/pubsub/telemetry"
)

// metricsWindow is how long a connection accumulates its counts before adding them to the shared
// metrics. With small batches (a quiet topic with many subscribers) one update per batch made the
// shared counters' cache lines bounce between cores on every delivery.
const metricsWindow = 50 * time.Millisecond

// statsWindow is a connection's written frames not yet counted in the shared metrics. It is owned by
// whoever writes for the connection (see outbox); waiting is also read by the server's clock, which
// asks a connection that went quiet with counts in its window to publish them (outbox.statsDue), so
// that every delivery is in the shared metrics within a clock period.
type statsWindow struct {
	frames, bytes [5]int // indexed like wire.ServerTypes
	delivered     int
	oldest        *domain.Event
	oldestAt      time.Time // when the oldest was written
	published     time.Time // when the window was last published
	waiting       atomic.Bool
}

// add counts a written batch, and publishes the window once metricsWindow has passed.
func (w *statsWindow) add(tel *telemetry.Telemetry, st *outStats, end time.Time) {
	for i := range st.frames {
		w.frames[i] += st.frames[i]
		w.bytes[i] += st.bytes[i]
	}
	w.delivered += st.delivered
	if st.oldest != nil && (w.oldest == nil || st.oldest.Time.Before(w.oldest.Time)) {
		w.oldest, w.oldestAt = st.oldest, end
	}
	if end.Sub(w.published) >= metricsWindow {
		w.publish(tel, end)
	} else if !w.waiting.Load() {
		w.waiting.Store(true)
	}
}

// publish adds the window to the shared metrics: the frames and bytes by type, the deliveries, and
// one delivery-latency observation, for the oldest event written in the window.
func (w *statsWindow) publish(tel *telemetry.Telemetry, now time.Time) {
	for i, typ := range wire.ServerTypes {
		tel.Metrics.FramesOut(typ, w.frames[i], w.bytes[i])
	}
	if w.oldest != nil {
		tel.Delivered(w.delivered, w.oldest, w.oldestAt)
	}
	w.frames, w.bytes, w.delivered, w.oldest, w.oldestAt = [5]int{}, [5]int{}, 0, nil, time.Time{}
	w.published = now
	w.waiting.Store(false)
}

// episode is one slow-consumer episode of a drop_oldest subscription.
type episode struct {
	lost  uint64
	since time.Time
}

// episodes tracks the slow-consumer episodes of a connection's subscriptions, so that each is
// logged once, with its toll, when the subscriber has caught up. Owned by whoever writes for the
// connection; nil until the first drop.
type episodes map[*domain.Subscription]*episode

// note adds n drops to sub's episode, starting one if needed.
func (e *episodes) note(sub *domain.Subscription, n uint64, now time.Time) {
	if *e == nil {
		*e = make(episodes)
	}
	ep := (*e)[sub]
	if ep == nil {
		ep = &episode{since: now}
		(*e)[sub] = ep
	}
	ep.lost += n
}

// take ends sub's episode and returns it, or nil when it had none.
func (e episodes) take(sub *domain.Subscription) *episode {
	ep := e[sub]
	if ep != nil {
		delete(e, sub)
	}
	return ep
}

// caughtUp returns the subscriptions in an episode that have nothing left to deliver.
func (e episodes) caughtUp() []*domain.Subscription {
	var out []*domain.Subscription
	for sub := range e {
		if !sub.Pending() {
			out = append(out, sub)
		}
	}
	return out
}
