package domain

import "sync"

// Policy says what happens when a subscriber's queue is full.
type Policy uint8

// The overflow policies of PROTOCOL.md. DropOldest is the zero value and the default.
const (
	// DropOldest discards the oldest queued event to make room, and the subscriber is told how many it
	// lost before its next event.
	DropOldest Policy = iota
	// Disconnect ends the subscriber's connection: better no stream than a stream with holes for
	// consumers that cannot tolerate gaps.
	Disconnect
)

// ParsePolicy parses "drop_oldest" or "disconnect".
func ParsePolicy(s string) (Policy, error) {
	switch s {
	case "drop_oldest":
		return DropOldest, nil
	case "disconnect":
		return Disconnect, nil
	}
	return 0, Errorf(KindInvalid, "overflow policy %q is not one of drop_oldest, disconnect", s)
}

// String returns the configuration spelling of p.
func (p Policy) String() string {
	if p == Disconnect {
		return "disconnect"
	}
	return "drop_oldest"
}

// EndReason says why a subscription ended. The zero value means it is still live.
type EndReason uint8

// The reasons a subscription ends.
const (
	Live EndReason = iota
	Unsubscribed
	TopicDeleted
	Replaced   // another connection took the client id over
	ConnClosed // the owning connection went away
	// UnsubscribedElsewhere: another connection of the same principal unsubscribed the client id.
	// Unlike Unsubscribed, this connection did not ask, so its client is told.
	UnsubscribedElsewhere
)

// Waker is the owner of subscriptions (a connection): it is woken, without blocking, whenever one of
// its subscriptions has something to write. Wake must be cheap and must never block.
type Waker interface{ Wake() }

// A Holder is an owner that acts for a principal: the authenticated identity its subscriptions
// belong to. Only an owner of the same principal may take over or end a client id; an owner that
// is not a Holder acts for the anonymous principal "" (which is everyone's when authentication
// is off, so that any connection may then take over any client id, as the contract has it).
type Holder interface {
	Waker
	Principal() string
}

// principalOf returns the principal owner acts for.
func principalOf(owner Waker) string {
	if h, ok := owner.(Holder); ok {
		return h.Principal()
	}
	return ""
}

// Backlogger is a Waker that also wants to hear when a subscription's queue reaches its high-water
// mark (half its capacity): the owner's delivery is falling behind the topic's publishers, and will
// start losing events if that goes on. Backlogged is called from the publish that filled the queue to
// the mark, once per crossing; like Wake it must be cheap and must never block.
type Backlogger interface {
	Waker
	Backlogged()
}

// Subscription is one client id's subscription to one topic: a queue of events waiting to be
// written, bounded by count and by bytes, plus the replay that must go out before them. The topic
// pushes, the owner's writer drains; both may run concurrently. The queue and the replay hold one
// reference to each of their events (see Event) and drop it when the event is handed to the writer,
// dropped or discarded.
type Subscription struct {
	Topic     TopicName
	ClientID  string
	Owner     Waker
	Principal string // who the subscription belongs to (see Holder); set once

	backlog    Backlogger // Owner, when it wants to hear of backlogs
	highWater  int        // the queue depth at which backlog hears of it
	highBytes  int64      // the queued bytes at which backlog hears of it (0: none)
	limitBytes int64      // the byte bound of the queue (0: none); set before the first push

	policy Policy
	index  int // position in its topic's list; guarded by the topic's lock
	// floor: events at or below this seq are in the replay already and are not queued again
	// (topics sequenced elsewhere, see Topic.Attach); guarded by the topic's lock. 0 for Publish.
	floor uint64

	mu       sync.Mutex
	buf      []*Event // circular; grows on demand up to limit, so idle subscribers stay small
	limit    int
	head, n  int
	bytes    int64    // sum of the Size of the events in buf
	replay   []*Event // history for last_n, written before buf
	dropped  uint64   // dropped by DropOldest since the last Drain that reported them
	overflow bool     // Disconnect policy tripped
	held     bool     // replay and events wait until the owner has written the ack
	end      EndReason
	lost     uint64 // events discarded by an end, reported once by Drain
}

func newSubscription(topic TopicName, clientID string, owner Waker, capacity int, p Policy) *Subscription {
	if capacity < 1 {
		capacity = 1
	}
	backlog, _ := owner.(Backlogger)
	return &Subscription{Topic: topic, ClientID: clientID, Owner: owner, Principal: principalOf(owner), backlog: backlog, highWater: max(capacity/2, 1),
		policy: p, limit: capacity, held: true}
}

// pushResult tells the fan-out what happened to one enqueue.
type pushResult uint8

const (
	pushed pushResult = iota
	pushedDroppedOldest
	pushOverflow // Disconnect tripped by this push
	pushIgnored  // the subscription has ended or already overflowed
)

// setByteLimit bounds the queue by bytes beside its count: limit bytes (0: none), with the
// backlog mark at half of it. Called before the subscription is shared.
func (s *Subscription) setByteLimit(limit int64) {
	s.limitBytes = limit
	s.highBytes = limit / 2
}

// pushOutcome is what one push did: the queue depth after it, what happened, how many older events
// DropOldest discarded to make room, and whether the queue crossed its high-water mark (by count or
// by bytes), which the owner hears of through Backlogged.
type pushOutcome struct {
	depth      int
	res        pushResult
	dropped    int
	backlogged bool
}

// push enqueues ev without ever blocking. The caller has taken a reference to ev for this queue;
// a push that does not keep ev (pushIgnored, pushOverflow) drops it. The queue is full when it holds
// its count of events, or when ev would take it past its byte bound; a queue that is empty always
// takes ev, however large, so that a subscriber that reads is never cut off by one big message.
func (s *Subscription) push(ev *Event) pushOutcome {
	s.mu.Lock()
	if s.end != Live || s.overflow {
		// Cut off (or ended): the subscriber is gone as far as this topic is concerned, so later
		// messages are not its losses; the overflow's own toll was counted when it tripped.
		s.mu.Unlock()
		ev.release(1)
		return pushOutcome{res: pushIgnored}
	}
	if s.n == len(s.buf) && s.n < s.limit {
		s.growLocked()
	}
	c := len(s.buf)
	out := pushOutcome{res: pushed}
	if s.fullLocked(ev) {
		if s.policy == Disconnect {
			s.overflow = true
			s.lost += uint64(s.n+len(s.replay)) + 1 // the queued and replay events and this one never reach the client
			s.clearLocked()
			s.mu.Unlock()
			ev.release(1)
			return pushOutcome{depth: c, res: pushOverflow}
		}
		for s.fullLocked(ev) {
			old := s.buf[s.head]
			s.buf[s.head] = nil
			s.head = (s.head + 1) % c
			s.n--
			s.bytes -= old.size
			old.release(1)
			s.dropped++
			out.dropped++
		}
		out.res = pushedDroppedOldest
	}
	before, beforeBytes := s.n, s.bytes
	s.buf[(s.head+s.n)%c] = ev
	s.n++
	s.bytes += ev.size
	out.depth = s.n
	out.backlogged = (before < s.highWater && s.n >= s.highWater) ||
		(s.highBytes > 0 && beforeBytes < s.highBytes && s.bytes >= s.highBytes)
	s.mu.Unlock()
	return out
}

// fullLocked reports whether ev does not fit: the ring holds its count, or ev would take a
// non-empty queue past its byte bound.
func (s *Subscription) fullLocked(ev *Event) bool {
	if s.n == 0 {
		return false
	}
	return s.n == len(s.buf) || (s.limitBytes > 0 && s.bytes+ev.size > s.limitBytes)
}

// growLocked doubles the ring (from 8, up to limit), unrolling it so the oldest event is first.
func (s *Subscription) growLocked() {
	size := min(max(2*len(s.buf), 8), s.limit)
	buf := make([]*Event, size)
	for i := 0; i < s.n; i++ {
		buf[i] = s.buf[(s.head+i)%len(s.buf)]
	}
	s.buf, s.head = buf, 0
}

// clearLocked discards the queue and the replay, dropping their references.
func (s *Subscription) clearLocked() {
	for i := range s.buf {
		if ev := s.buf[i]; ev != nil {
			ev.release(1)
			s.buf[i] = nil
		}
	}
	for _, ev := range s.replay {
		ev.release(1)
	}
	s.head, s.n, s.bytes = 0, 0, 0
	s.replay = nil
}

// Batch is what one Drain hands the writer, in the order it must be written: a SLOW_CONSUMER notice
// when Dropped > 0, then Events, then the end notice when End != Live. When Overflow is set the
// writer must report SLOW_CONSUMER and close the connection instead.
type Batch struct {
	Events   []*Event
	Replayed int    // how many of Events come from history
	Bytes    int    // the sum of Events' encoded frames (len(Frame))
	More     bool   // events were left queued by the count or byte bound: drain again
	Dropped  uint64 // DropOldest losses to report before Events
	Overflow bool
	End      EndReason
	Lost     uint64 // events discarded without delivery by the end or the overflow
}

// Drain moves up to max queued events (replay first) onto dst and reports what else the writer must
// say. It returns an empty Batch while the subscription is held. Once it has returned a Batch with
// End or Overflow set, the subscription is finished and the writer should forget it.
func (s *Subscription) Drain(dst []*Event, max int) Batch {
	return s.DrainBytes(dst, max, 0, true)
}

// DrainBytes is Drain bounded by bytes as well: it stops before the event that would take the
// encoded frames it hands out past maxBytes (maxBytes <= 0: no byte bound). With oversize, it hands
// out at least one event when one is ready and max > 0, so that an event larger than maxBytes still
// goes out, on its own: a writer passes it when its batch is empty. What it leaves stays queued, in order, for the next call: that is how a writer keeps a
// batch bounded by bytes without losing or reordering anything (a 100-event replay of 1 MiB
// messages is written in a hundred batches, not copied into one buffer).
func (s *Subscription) DrainBytes(dst []*Event, max, maxBytes int, oversize bool) Batch {
	s.mu.Lock()
	defer s.mu.Unlock()
	b := Batch{Events: dst}
	if s.overflow {
		b.Overflow, b.Lost = true, s.lost
		s.lost = 0
		return b
	}
	if s.held && s.end == Live {
		return b
	}
	b.Dropped, s.dropped = s.dropped, 0
	// fits says whether ev may join what is taken so far.
	fits := func(ev *Event) bool {
		return maxBytes <= 0 || b.Bytes+len(ev.Frame) <= maxBytes || (oversize && len(b.Events) == len(dst))
	}
	// Events handed to the writer leave the queue's accounting: the writer's batch is bounded by
	// its own byte budget, and the frame goes to the socket within it.
	for len(s.replay) > 0 && max > 0 && fits(s.replay[0]) {
		b.Events = append(b.Events, s.replay[0])
		b.Bytes += len(s.replay[0].Frame)
		s.replay[0].release(1)
		s.replay[0] = nil
		s.replay = s.replay[1:]
		b.Replayed++
		max--
	}
	c := len(s.buf)
	for len(s.replay) == 0 && s.n > 0 && max > 0 && fits(s.buf[s.head]) {
		ev := s.buf[s.head]
		b.Events = append(b.Events, ev)
		b.Bytes += len(ev.Frame)
		s.bytes -= ev.size
		ev.release(1)
		s.buf[s.head] = nil
		s.head = (s.head + 1) % c
		s.n--
		max--
	}
	b.More = s.n > 0 || len(s.replay) > 0
	if s.end != Live && !b.More {
		b.End, b.Lost = s.end, s.lost
		s.lost = 0
	}
	return b
}

// Release lets Drain hand out events. The owner calls it right after it has written the ack of the
// subscribe, which is how replay and live events are guaranteed to follow the ack.
func (s *Subscription) Release() {
	s.mu.Lock()
	s.held = false
	s.mu.Unlock()
}

// Pending reports whether Drain has anything to hand out now.
func (s *Subscription) Pending() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.overflow {
		return true
	}
	if s.held && s.end == Live {
		return false
	}
	return s.n > 0 || len(s.replay) > 0 || s.dropped > 0 || s.end != Live
}

// Ended reports whether the subscription has ended, and why.
func (s *Subscription) Ended() EndReason {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.end
}

// Abandon ends the subscription because its owner is going away, and returns how many events it
// held that will now never be delivered (including losses of an end or overflow not yet reported by
// Drain). DropOldest drops are not among them: the publish that dropped them reported them already
// (PublishStats.DroppedOldest), and counting them here too would count them twice.
func (s *Subscription) Abandon() uint64 {
	s.finish(ConnClosed)
	s.mu.Lock()
	defer s.mu.Unlock()
	// A Replaced subscription kept its events for the writer to flush; they are lost now too.
	lost := s.lost + uint64(s.n+len(s.replay))
	s.clearLocked()
	s.lost, s.dropped = 0, 0
	return lost
}

// finish ends the subscription. Events still queued are delivered before the end notice when the
// client keeps its stream elsewhere (Replaced); otherwise they are discarded and counted as lost.
func (s *Subscription) finish(r EndReason) {
	s.mu.Lock()
	if s.end != Live || s.overflow {
		s.mu.Unlock()
		return
	}
	s.end = r
	switch r {
	case Replaced: // the client keeps its stream on the new connection; flush this one first
	case Unsubscribed, UnsubscribedElsewhere: // the client (its principal) asked for no more events: nothing is lost
		s.clearLocked()
	default:
		s.lost += uint64(s.n + len(s.replay))
		s.clearLocked()
	}
	s.mu.Unlock()
}

// rearm is a same-connection re-subscribe: the replay of the new request is merged with what is
// still queued, in seq order and without duplicates, and held until the new ack is written. The
// caller has taken a reference to each event of history for this subscription.
func (s *Subscription) rearm(history []*Event) {
	s.mu.Lock()
	defer s.mu.Unlock()
	pending := make([]*Event, 0, len(s.replay)+s.n)
	pending = append(pending, s.replay...)
	c := len(s.buf)
	for i := 0; i < s.n; i++ {
		pending = append(pending, s.buf[(s.head+i)%c])
		s.buf[(s.head+i)%c] = nil
	}
	// The references move from the queue and the old replay to the merged replay.
	s.head, s.n, s.bytes, s.replay = 0, 0, 0, nil
	s.replay = mergeBySeq(history, pending)
	s.held = true
}

// mergeBySeq merges two seq-ordered slices, keeping one copy of each seq; the reference of each
// duplicate dropped is released.
func mergeBySeq(a, b []*Event) []*Event {
	out := make([]*Event, 0, len(a)+len(b))
	i, j := 0, 0
	for i < len(a) || j < len(b) {
		switch {
		case j == len(b) || (i < len(a) && a[i].Seq < b[j].Seq):
			out = append(out, a[i])
			i++
		case i == len(a) || b[j].Seq < a[i].Seq:
			out = append(out, b[j])
			j++
		default:
			out = append(out, a[i])
			b[j].release(1)
			i++
			j++
		}
	}
	return out
}
