package ws

import (
	"math"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/pubsubd/pubsub/internal/domain"
	"github.com/pubsubd/pubsub/internal/transport/wire"
	"github.com/pubsubd/pubsub/internal/transport/wsframe"
)

// Batching limits: a batch takes at most maxDrain events from each subscription, so one busy topic
// cannot starve the connection's others; its bytes are bounded by its limit (Config.BatchMaxBytes).
// writeAllowance is each connection's own buffer, the capacity pooled batch buffers start with:
// most batches fit in it, and growing past it is taken from the shared budget (Config.Buffers).
// A buffer that grew past poolMax is dropped rather than pooled, so the pool holds small buffers.
//
// The bound: a connection's batch buffer holds at most writeAllowance, plus what it took from the
// budget (given back when the connection catches up), plus the replies framed after its events
// when the budget will not count them (at most the reply limit, PUBSUB_MAX_REPLY_BYTES, or one
// reply larger than it, and maxHeader bytes each). An event that does not fit is copied in only if
// the budget grants the growth; otherwise it is written from its own shared bytes (batch.tail).
const (
	maxDrain       = 256
	writeAllowance = 16 << 10
	poolMax        = 64 << 10
	// maxHeader is the largest header of a frame the server sends (unmasked, 64-bit length).
	maxHeader = 10
)

// frameSlack is kept free for what one drain frames besides its events' payloads (DrainBytes counts
// payloads only): the headers of at most maxDrain events (4 bytes each below 64 KiB; 10 from there,
// and at most one such per 64 KiB of room), a SLOW_CONSUMER notice and an end notice. So a drain
// never makes the buffer grow past what it may use (see usable): its bytes stay within the bound.
var frameSlack = 4*maxDrain + noticeMax(wire.TypeError) + noticeMax(wire.TypeInfo)

// noticeMax is the largest notice of type typ that frame can append, with its header and a margin
// for the timestamp's length.
func noticeMax(typ string) int {
	topic, now := strings.Repeat("t", domain.MaxTopicNameLen), time.Now()
	if typ == wire.TypeError {
		return len(appendFrame(nil, wire.AppendError(nil, nil, topic, wire.CodeSlowConsumer,
			"dropped "+strconv.FormatUint(math.MaxUint64, 10)+" messages", now))) + 16
	}
	longest := 0
	for _, msg := range []string{wire.InfoTopicDeleted, wire.InfoSubscriptionReplaced, wire.InfoUnsubscribed} {
		longest = max(longest, len(appendFrame(nil, wire.AppendInfo(nil, topic, msg, now))))
	}
	return longest + 16
}

var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, writeAllowance); return &b }}

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
	// more: a subscription has more than it gave, or an ack released a replay: build another batch.
	more bool
	// limit bounds the bytes of events a batch takes (0: unbounded): a subscription is drained
	// only up to it (at least one event per batch, so a larger event goes out on its own), and what
	// is left stays queued for the next batch. cut says the limit (or the budget) stopped building.
	limit int
	cut   bool
	// cursor is where the next batch starts among the subscriptions, so that a batch the limit
	// cut short does not leave the same subscriptions last every time; it survives reset.
	cursor int
	// budget is where growing buf past writeAllowance takes its bytes from (nil: unlimited); held
	// is what buf holds of it now, given back by release. refused says budget refused a growth
	// in this batch, which then stayed at the size it had: the writer counts it once.
	budget  *domain.Budget
	held    int64
	refused bool
	// tail is the end of an event larger than the room that the budget would not let buf grow
	// for: buf ends with the event's frame header (and as much of the event as fits its
	// capacity), and the rest is written from the event's own bytes, which are immutable and
	// shared, so a stalled connection holds no copy of it. A batch with a tail ends there:
	// nothing is framed after it, and what would have been (the ping, the replies, an end
	// notice) is carried to the next batch. nil: none.
	tail []byte
	// carried is what the last batch could not put after its tail, for the next one (it
	// survives reset); carriedPing the same for a ping. A batch that starts with carried
	// replies takes no event larger than the room, so that replies are never put off twice.
	carried     []reply
	carriedPing bool
	noTail      bool // this batch carries replies: it takes no event larger than the room
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
		// A pooled buffer that grew once is kept only if the budget grants its growth: a
		// connection holds no more than its allowance that the budget does not count.
		if extra := int64(cap(b.buf) - writeAllowance); extra > 0 {
			if b.budget.TryTake(extra) {
				b.held += extra
			} else {
				b.buf = make([]byte, 0, writeAllowance)
			}
		}
	}
	if len(b.carried) > 0 || b.carriedPing {
		// Taken before this batch's replies, so they go first among them.
		replies = append(b.carried, replies...)
		ping = ping || b.carriedPing
		b.carried, b.carriedPing, b.noTail = nil, false, true
	}
	if n := len(subs); n > 0 {
		start := b.cursor % n
		for i := range n {
			if b.cut {
				b.cursor = (start + i) % n // the next batch starts with the first one left out
				break
			}
			if !b.drain(subs[(start+i)%n], now, sampled) {
				break
			}
		}
	}
	if b.overflow != nil {
		return
	}
	if b.tail != nil {
		b.carried = append(b.carried, replies...)
		b.carriedPing = ping
		b.more = b.more || len(b.carried) > 0 || ping
		b.account()
		return
	}
	// The replies are framed into a buffer grown to fit them exactly, from the budget if it grants
	// it (account): they are bounded by the reply limit, and must go out whatever the budget says.
	need := 0
	if ping {
		need = 2
	}
	for _, r := range replies {
		need += maxHeader + len(r.data)
	}
	if n := len(b.buf) + need; need > 0 && n > cap(b.buf) {
		buf := make([]byte, len(b.buf), n)
		copy(buf, b.buf)
		b.buf = buf
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
	b.account()
}

// drain frames what one subscription has ready, as far as the batch's limit allows. It returns false
// when the subscription overflowed under the disconnect policy: the batch stops there.
func (b *batch) drain(sub *domain.Subscription, now time.Time, sampled func(*domain.Event) bool) bool {
	for taken := 0; ; {
		room := b.room()
		if room <= 0 && b.grow() {
			room = b.room()
		}
		if room <= 0 {
			b.cut, b.more = true, true
			return true
		}
		// Only the first events of a batch may be larger than the room: such an event goes alone.
		d := sub.DrainBytes(b.events[:0], maxDrain-taken, room, len(b.buf) == 0 && !b.noTail)
		taken += len(d.Events)
		b.events = d.Events[:0]
		if d.Overflow {
			b.overflow, b.lost = sub, d.Lost
			return false
		}
		// An event larger than the room is alone in its drain (DrainBytes takes nothing after it).
		b.frame(sub, d, d.Bytes > room, now, sampled)
		if b.tail != nil {
			b.cut, b.more = true, true // the batch ends with the tail
			return true
		}
		if !d.More {
			return true
		}
		b.more = true
		if taken == maxDrain {
			return true // the count bound: the other subscriptions' turn
		}
		// The byte bound: drain on into a grown buffer, if the limit and the budget allow it.
		if !b.grow() {
			b.cut = true
			return true
		}
	}
}

// usable is the capacity the batch may fill: its own allowance and what it took from the budget.
// A buffer from the pool may be larger (up to poolMax); the rest of it is used only once the budget
// has granted it, so that the budget counts what a connection's batch really holds.
func (b *batch) usable() int { return min(cap(b.buf), writeAllowance+int(b.held)) }

// room is how many bytes of events the batch may still take into the buffer it has: the usable
// capacity left, less room for frame headers, within the limit. When the batch holds nothing yet it
// is at least 1: one event always goes out, however large.
func (b *batch) room() int {
	free := b.usable() - len(b.buf) - frameSlack - 6*(b.usable()>>16+1) // the 10-byte headers' extra
	if b.limit > 0 {
		free = min(free, b.limit-len(b.buf))
	}
	if len(b.buf) == 0 {
		return max(free, 1)
	}
	return free
}

// grow doubles the buffer's capacity, up to what the limit needs, taking the bytes past
// writeAllowance from the budget; it reports false when the limit is reached or the budget refuses.
func (b *batch) grow() bool {
	size := 2 * b.usable()
	if b.limit > 0 {
		if len(b.buf) >= b.limit {
			return false
		}
		size = min(size, b.limit+frameSlack)
	}
	return size > b.usable() && b.resize(size)
}

// resize makes size bytes of buffer usable, taking what that needs past writeAllowance from the
// budget (a pooled buffer may have the capacity already); it reports false when the budget refuses.
func (b *batch) resize(size int) bool {
	need := int64(size-writeAllowance) - b.held
	if need > 0 && !b.budget.TryTake(need) {
		b.refused = true
		return false
	}
	b.held += max(need, 0)
	if size > cap(b.buf) {
		buf := make([]byte, len(b.buf), size)
		copy(buf, b.buf)
		b.buf = buf // the old one is garbage now: never pooled past writeAllowance's growth
	}
	return true
}

// fit makes room in buf for n more bytes, taking the growth past writeAllowance from the budget as
// grow does; it reports false when the budget refuses (and notes the refusal).
func (b *batch) fit(n int) bool {
	if b.usable()-len(b.buf) >= n {
		return true
	}
	size := max(2*b.usable(), len(b.buf)+n)
	if b.limit > 0 {
		size = min(size, max(b.limit+frameSlack, len(b.buf)+n))
	}
	return b.resize(size)
}

// account takes from the budget what the buffer grew past writeAllowance by other means than grow
// and fit: the room build made for the ping and the replies (frame headers and notices fit the
// slack every drain keeps). The replies are bounded by the reply limit (PUBSUB_MAX_REPLY_BYTES)
// and must be written whatever the budget says; when it refuses, they are not held back, only left
// out of the count. No event is left out: one larger than the room that the budget refuses to
// grow the buffer for goes as the batch's tail, written from its shared bytes, never copied.
func (b *batch) account() {
	if extra := int64(cap(b.buf)-writeAllowance) - b.held; extra > 0 && b.budget.TryTake(extra) {
		b.held += extra
	}
}

// frame appends one subscription's drain: the SLOW_CONSUMER notice, the events, the end notice.
// big says the drain is one event larger than the room: it is copied into buf if the budget lets buf
// grow for it, and otherwise becomes the batch's tail.
func (b *batch) frame(sub *domain.Subscription, d domain.Batch, big bool, now time.Time, sampled func(*domain.Event) bool) {
	if d.Dropped > 0 {
		b.text(wire.TypeError, wire.AppendError(nil, nil, string(sub.Topic), wire.CodeSlowConsumer,
			"dropped "+strconv.FormatUint(d.Dropped, 10)+" messages", now))
		b.drops = append(b.drops, drop{sub: sub, n: d.Dropped})
	}
	for _, ev := range d.Events {
		if big && !b.fit(maxHeader+len(ev.Frame)) {
			b.setTail(ev.Frame)
		} else {
			b.buf = appendFrame(b.buf, ev.Frame)
		}
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
	if d.End != domain.Live {
		b.ended = append(b.ended, sub)
		b.endNotice(sub, d, now)
	}
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
	data := wire.AppendInfo(nil, string(sub.Topic), msg, now)
	if b.tail != nil {
		// Nothing goes after the tail; the subscription is forgotten, so the notice travels
		// with the batch's carried replies.
		b.carried = append(b.carried, reply{typ: wire.TypeInfo, data: data})
		return
	}
	b.text(wire.TypeInfo, data)
}

// setTail frames frame as the batch's tail: its header, then as much of it as fills buf's
// capacity (so that the buffer's write is not a header alone), the rest written by reference.
func (b *batch) setTail(frame []byte) {
	b.buf = wsframe.AppendHeader(b.buf, wsframe.OpText, len(frame))
	k := min(len(frame), max(b.usable()-len(b.buf), 0))
	b.buf = append(b.buf, frame[:k]...)
	if k < len(frame) {
		b.tail = frame[k:]
	}
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
	b.cut, b.refused, b.tail, b.noTail = false, false, nil, false
}

// release resets b, gives back to the budget what its buffer held of it and returns the buffer to
// the pool (unless it grew large), so that an idle connection holds none.
func (b *batch) release() {
	b.reset()
	clear(b.events[:cap(b.events)])
	if b.buf != nil {
		if cap(b.buf) <= poolMax {
			buf := b.buf
			bufPool.Put(&buf)
		}
		b.buf = nil
	}
	b.budget.Release(b.held)
	b.held = 0
}

// appendFrame appends payload as one unmasked, unfragmented WebSocket text frame. The writer frames
// replies and events itself so that a whole batch leaves in one write.
func appendFrame(b, payload []byte) []byte {
	return wsframe.AppendFrame(b, wsframe.OpText, nil, payload)
}
