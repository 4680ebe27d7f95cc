package ws

import (
	"strconv"
	"sync"
	"time"

	"github.com/pubsubd/pubsub/internal/domain"
	"github.com/pubsubd/pubsub/internal/transport/wire"
	"github.com/pubsubd/pubsub/internal/transport/wsframe"
)

// Batching limits: a batch takes at most maxDrain events from each subscription, so one busy topic
// cannot starve the connection's others and a batch's buffer stays bounded. batchBytes is the
// capacity pooled batch buffers start with: most batches fit in it.
const (
	maxDrain   = 256
	batchBytes = 64 << 10
)

var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, batchBytes); return &b }}

// reply is a frame waiting for the writer. typ "" is a pong control frame answering the client's
// ping (data is the ping's payload). release, when set, is the subscription whose replay and events
// may flow once this reply (its ack) is in a batch.
type reply struct {
	typ     string
	data    []byte
	release *domain.Subscription
}

// outStats counts one batch by frame type, so the shared counters are touched once per batch.
type outStats struct {
	frames, bytes [5]int // indexed like wire.ServerTypes
	delivered     int
	oldest        *domain.Event // the batch's oldest event, for the delivery-latency histogram
}

func typeIndex(typ string) int {
	switch typ {
	case wire.TypeAck:
		return 0
	case wire.TypeEvent:
		return 1
	case wire.TypeError:
		return 2
	case wire.TypePong:
		return 3
	}
	return 4
}

func (o *outStats) add(typ string, size int) {
	i := typeIndex(typ)
	o.frames[i]++
	o.bytes[i] += size
}

// traced is the sampled events of a batch that went to one client id, for delivery spans.
type traced struct {
	events   []*domain.Event
	clientID string
}

// drop is a drop_oldest notice a batch carries: the subscription and how many events it lost.
type drop struct {
	sub *domain.Subscription
	n   uint64
}

// batch builds one write: it drains a connection's subscriptions and frames their notices and
// events, then the replies, into one buffer that leaves in one write. It is pure (no socket, no
// telemetry, no clock: the caller passes the time), so it is tested without sockets. It is owned by
// whoever writes for the connection (see outbox); the zero value is ready to use.
//
// What the writer must do besides writing is reported in the fields: drops for the slow-consumer
// episodes, ended subscriptions to forget, an overflow under the disconnect policy.
type batch struct {
	buf   []byte
	st    outStats
	spans []traced
	drops []drop
	ended []*domain.Subscription
	// more: a subscription gave maxDrain events, or an ack released a replay: build another batch.
	more bool
	// overflow is a subscription that overflowed under the disconnect policy; building stopped
	// there, and lost events will never be delivered.
	overflow    *domain.Subscription
	lost        uint64
	deletedLost uint64 // events discarded because their topic was deleted

	events []*domain.Event // Drain's scratch space
}

// build frames one batch after whatever b already holds: each subscription's SLOW_CONSUMER notice,
// events (at most maxDrain, replay first) and end notice, then a WebSocket ping if asked, then the
// replies. Replies go last: they were taken from the queue before the subscriptions were drained, so
// every event queued before a reply leaves no later than that reply (a ping is a barrier). sampled,
// when not nil, picks the events that get delivery spans.
func (b *batch) build(subs []*domain.Subscription, replies []reply, ping bool, now time.Time, sampled func(*domain.Event) bool) {
	if b.buf == nil {
		b.buf = (*bufPool.Get().(*[]byte))[:0]
	}
	for _, sub := range subs {
		if !b.drain(sub, now, sampled) {
			return
		}
	}
	if ping {
		b.buf = wsframe.AppendFrame(b.buf, wsframe.OpPing, nil, nil) // to find dead peers
	}
	for _, r := range replies {
		if r.typ == "" {
			b.buf = wsframe.AppendFrame(b.buf, wsframe.OpPong, nil, r.data) // a ping's payload: at most 125 bytes
			continue
		}
		b.text(r.typ, r.data)
		if r.release != nil {
			// The ack is ahead of everything drained from now on; the next batch has the replay.
			r.release.Release()
			b.more = true
		}
	}
}

// drain frames what one subscription has ready. It returns false when the subscription overflowed
// under the disconnect policy: the batch stops there.
func (b *batch) drain(sub *domain.Subscription, now time.Time, sampled func(*domain.Event) bool) bool {
	d := sub.Drain(b.events[:0], maxDrain)
	b.events = d.Events[:0]
	if d.Overflow {
		b.overflow, b.lost = sub, d.Lost
		return false
	}
	if d.Dropped > 0 {
		b.text(wire.TypeError, wire.AppendError(nil, nil, string(sub.Topic), wire.CodeSlowConsumer,
			"dropped "+strconv.FormatUint(d.Dropped, 10)+" messages", now))
		b.drops = append(b.drops, drop{sub: sub, n: d.Dropped})
	}
	for _, ev := range d.Events {
		b.buf = appendFrame(b.buf, ev.Frame)
		b.st.bytes[1] += len(ev.Frame)
	}
	n := len(d.Events)
	b.st.frames[1] += n
	b.st.delivered += n
	// A drain is in seq order, replay first, so its first event is its oldest.
	if n > 0 && (b.st.oldest == nil || d.Events[0].Time.Before(b.st.oldest.Time)) {
		b.st.oldest = d.Events[0]
	}
	if sampled != nil {
		b.keepSampled(sub.ClientID, d.Events, sampled)
	}
	if n == maxDrain {
		b.more = true
	}
	if d.End != domain.Live {
		b.ended = append(b.ended, sub)
		b.endNotice(sub, d, now)
	}
	return true
}

// keepSampled keeps the sampled events for delivery spans: most events are not, and this runs for
// every delivery.
func (b *batch) keepSampled(clientID string, events []*domain.Event, sampled func(*domain.Event) bool) {
	var keep []*domain.Event
	for _, ev := range events {
		if sampled(ev) {
			keep = append(keep, ev)
		}
	}
	if keep != nil {
		b.spans = append(b.spans, traced{events: keep, clientID: clientID})
	}
}

// endNotice tells the client why a subscription ended, when it did not ask for it.
func (b *batch) endNotice(sub *domain.Subscription, d domain.Batch, now time.Time) {
	var msg string
	switch d.End {
	case domain.TopicDeleted:
		msg = wire.InfoTopicDeleted
		b.deletedLost += d.Lost
	case domain.Replaced:
		msg = wire.InfoSubscriptionReplaced
	case domain.UnsubscribedElsewhere:
		msg = wire.InfoUnsubscribed
	default:
		return
	}
	b.text(wire.TypeInfo, wire.AppendInfo(nil, string(sub.Topic), msg, now))
}

// text appends one text frame of type typ and counts it.
func (b *batch) text(typ string, payload []byte) {
	b.buf = appendFrame(b.buf, payload)
	b.st.add(typ, len(payload))
}

// reset forgets what was built and reported, keeping the buffers for the next batch; it keeps no
// pointer to an event or a subscription.
func (b *batch) reset() {
	b.buf = b.buf[:0]
	b.st = outStats{}
	clear(b.spans)
	b.spans = b.spans[:0]
	clear(b.drops)
	b.drops = b.drops[:0]
	clear(b.ended)
	b.ended = b.ended[:0]
	b.more, b.overflow, b.lost, b.deletedLost = false, nil, 0, 0
}

// release resets b and returns its buffer to the pool, so that an idle connection holds none.
func (b *batch) release() {
	b.reset()
	clear(b.events[:cap(b.events)])
	if b.buf != nil {
		buf := b.buf
		bufPool.Put(&buf)
		b.buf = nil
	}
}

// appendFrame appends payload as one unmasked, unfragmented WebSocket text frame. The writer frames
// replies and events itself so that a whole batch leaves in one write.
func appendFrame(b, payload []byte) []byte {
	return wsframe.AppendFrame(b, wsframe.OpText, nil, payload)
}
