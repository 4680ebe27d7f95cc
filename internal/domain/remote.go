package domain

import (
	"sync/atomic"
	"time"
)

// Topics whose events are sequenced elsewhere (the Redis engine: a script assigns each seq, and
// every replica receives the events in that order). Such a topic is a local Topic like any other
// for its subscribers (queues, policies, batching, budgets stay as they are), fed through Deliver
// instead of Publish. Its history is a local window of what it delivered, which the subscribe
// seam uses to cover the events that arrived while a subscriber's replay was being read. The
// memory engine never calls anything here: its hot path is Topic.Publish, unchanged.

// NewEvent returns an event whose seq was assigned elsewhere, rebuilt from its stored form:
// frame is its wire frame, payloadInFrame says whose bytes msg.Payload points into (the frame's,
// so the event holds them once). The event is charged to a budget when a topic first holds it.
func NewEvent(topic TopicName, seq uint64, t time.Time, msg Message, frame []byte, payloadInFrame bool) *Event {
	ev := &Event{Topic: topic, Seq: seq, Time: t, Message: msg, Frame: frame}
	ev.size = eventSize(ev, payloadInFrame)
	return ev
}

// NewNotice returns an event that carries only a frame: a notice the engine delivers in order
// among a topic's events (a gap, a discontinuity). Its Seq is 0; it is never kept in a history
// and charged to no budget (it is small and lives only in the queues it is given to).
func NewNotice(topic TopicName, t time.Time, frame []byte) *Event {
	ev := &Event{Topic: topic, Time: t, Frame: frame}
	ev.size = eventSize(ev, false)
	return ev
}

// Mirrors makes the local topics of an engine that sequences events elsewhere, sharing one
// subscription count (TopicConfig.MaxSubscriptions applies to all of them together). Safe for
// concurrent use.
type Mirrors struct {
	cfg  TopicConfig
	subs atomic.Int64
}

// NewMirrors returns a maker of topics created with cfg. cfg.HistorySize is the local window
// kept for the subscribe seam.
func NewMirrors(cfg TopicConfig) *Mirrors { return &Mirrors{cfg: cfg} }

// Open returns a new local topic called name of the given epoch, starting after seq top: the
// first event it delivers is top+1.
func (m *Mirrors) Open(name TopicName, epoch string, top uint64) *Topic {
	t := newTopic(name, epoch, m.cfg, &m.subs)
	t.seq = top
	return t
}

// Subscriptions returns the number of subscriptions over all the topics opened.
func (m *Mirrors) Subscriptions() int { return int(m.subs.Load()) }

// Delivered returns the seq of the last event the topic delivered (or announced as lost).
func (t *Topic) Delivered() uint64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.seq
}

// Deliver hands ev, the topic's next event, to every subscriber's queue, like Publish does for
// events it sequences itself: the event is charged to the event budget (the local window gives
// back first), kept in the window, and queued for every subscription whose floor is below its seq.
// A budget that cannot take it even then is LimitEventMemory: the caller announces the loss.
// ev must be new (from NewEvent) and ev.Seq must follow the last delivered seq.
func (t *Topic) Deliver(ev *Event, now time.Time) (PublishStats, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.deleted {
		return PublishStats{}, t.notFound()
	}
	st := PublishStats{Start: now}
	ev.budget = t.cfg.Events
	for !ev.budget.TryTake(ev.size) {
		if !t.history.DropOldest() {
			ev.budget = nil
			return PublishStats{}, LimitErrorf(KindRateLimited, LimitEventMemory,
				"the server's event memory (%d bytes) is full", t.cfg.Events.Limit())
		}
	}
	t.seq = ev.Seq
	ev.hold(int64(1 + len(t.list)))
	t.history.Push(ev)
	st.Appended = now
	t.fanOutLocked(ev, &st, ev.Seq)
	st.End = t.now()
	return st, nil
}

// Announce hands the notice ev to every subscription whose floor is below upTo, the last seq the
// notice speaks for (0: to every subscription), and moves the topic's delivered seq to upTo when that is ahead: the events
// up to it will not be delivered (a gap) or belong to a stream that ended (a discontinuity).
func (t *Topic) Announce(ev *Event, upTo uint64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.deleted {
		return
	}
	t.seq = max(t.seq, upTo)
	ev.hold(int64(len(t.list)))
	var st PublishStats
	t.fanOutLocked(ev, &st, upTo)
}

// fanOutLocked hands ev to every subscription's queue: Publish's fan-out, and Deliver's and
// Announce's for an event sequenced elsewhere. With seq > 0 (the event's, or the last a notice
// speaks for), subscriptions whose floor is at or above it already have it in their replay and are
// skipped; seq 0, as Publish passes, goes to every subscription. The caller holds a reference for
// every subscription.
func (t *Topic) fanOutLocked(ev *Event, st *PublishStats, seq uint64) {
	st.Subscribers = len(t.list)
	for _, s := range t.list {
		if seq > 0 && seq <= s.floor {
			ev.release(1)
			st.Subscribers--
			continue
		}
		out := s.push(ev)
		switch out.res {
		case pushed:
			st.Enqueued++
		case pushedDroppedOldest:
			st.Enqueued++
			st.DroppedOldest += out.dropped
		case pushOverflow:
			st.Overflowed++
		case pushIgnored:
			continue
		}
		if out.depth > st.MaxDepth {
			st.MaxDepth = out.depth
		}
		if out.backlogged && s.backlog != nil {
			s.backlog.Backlogged()
		}
		s.Owner.Wake()
	}
}

// AttachSpec is a subscribe to a topic sequenced elsewhere, with what the engine read from the
// shared history after its live feed was confirmed (the subscribe seam). The resume rule is
// Topic.Subscribe's; the engine has checked the epoch (Read is empty and Recoverable false when
// it differs).
type AttachSpec struct {
	SubscribeSpec
	// Read are the events read from the shared history, oldest first, consecutive, none held
	// yet; ReadTop is the shared topic's top seq at that read.
	Read    []*Event
	ReadTop uint64
	// Released is the seq up to which the subscription this one takes over (on another
	// replica) holds events: the replay then includes every event after it, so that the client
	// id's stream goes on with nothing lost and nothing twice. 0: no such subscription.
	Released uint64
	// Lead, when set, is a notice the replay starts with: the engine's word for events after
	// Released that it could not read back any more (a gap).
	Lead *Event
	// Recoverable is false when the engine knows a resume cannot be recovered whatever the
	// window holds (another epoch, more missing than the recovery bound).
	Recoverable bool
}

// errSeamMoved is a subscribe whose read fell behind the live feed by more than the local window
// holds: the client may simply try again.
func errSeamMoved(name TopicName) error {
	return Errorf(KindUnavailable, "topic %q moved on faster than its subscribe could catch up; retry", string(name))
}

// Attach registers spec.ClientID with a replay made of spec.Read and, when the live feed has
// delivered past spec.ReadTop already, the events of the local window after it: so the replay ends
// at the topic's top, and the live events at or below that top are never queued for this
// subscription twice (its floor). Takeover, renewal, the principal check and the subscription cap
// are Subscribe's. The returned subscription is held until Release.
func (t *Topic) Attach(spec AttachSpec) (SubscribeResult, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.deleted {
		return SubscribeResult{}, t.notFound()
	}
	replay := spec.Read
	top := max(spec.ReadTop, t.seq)
	if t.seq > spec.ReadTop {
		// Live events after the read were delivered to the others already: they come from the
		// window, which must still hold all of them.
		recent := t.history.Last(t.history.Len())
		var tail []*Event
		for _, ev := range recent {
			if ev.Seq > spec.ReadTop {
				tail = append(tail, ev)
			}
		}
		whole := len(tail) == int(t.seq-spec.ReadTop) // the window holds every event after the read
		switch {
		case whole:
		case !spec.Resume && spec.Released == 0 && (spec.LastN == 0 || len(t.history.buf) == 0):
			tail = nil // no replay asked (or none kept): the live feed from the top is all it needs
		case !spec.Resume && spec.Released == 0 && len(tail) >= spec.LastN && tail[len(tail)-1].Seq == t.seq && tail[0].Seq+uint64(len(tail)-1) == t.seq:
			replay = nil // the window alone holds the newest LastN
		default:
			return SubscribeResult{}, errSeamMoved(t.name)
		}
		replay = append(append(make([]*Event, 0, len(replay)+len(tail)), replay...), tail...)
	}
	res := SubscribeResult{Epoch: t.epoch, Seq: top, Resumed: spec.Resume}
	switch {
	case spec.Resume:
		res.Recovered = spec.Recoverable && spec.SinceSeq <= top && covers(replay, spec.SinceSeq, top)
		if res.Recovered {
			replay = after(replay, spec.SinceSeq)
		} else {
			replay = nil // never a partial catch-up
		}
	default:
		n := max(spec.LastN, 0)
		if spec.Released > 0 && top > spec.Released {
			n = max(n, int(top-spec.Released))
		}
		if len(replay) > n {
			replay = replay[len(replay)-n:]
		}
	}
	old := t.clients[spec.ClientID]
	if old != nil && old.Principal != principalOf(spec.Owner) {
		return SubscribeResult{}, errNotOwner(t.name, spec.ClientID)
	}
	renew := old != nil && old.Owner == spec.Owner && old.Ended() == Live
	if old == nil && !t.reserveSubscription() {
		return SubscribeResult{}, LimitErrorf(KindRateLimited, LimitSubscriptions,
			"the server's subscription limit (%d) is reached", t.cfg.MaxSubscriptions)
	}
	// Events read from Redis are held for the first time: charge them. Those of the window are
	// charged already (the window holds them).
	var charged int64
	for _, ev := range replay {
		if ev.budget == nil && ev.refs.Load() == 0 && ev.Seq > 0 {
			if !t.cfg.Events.TryTake(ev.size) {
				t.cfg.Events.Release(charged)
				if old == nil {
					t.subs.Add(-1)
				}
				return SubscribeResult{}, LimitErrorf(KindRateLimited, LimitEventMemory,
					"the server's event memory (%d bytes) is full; retry later", t.cfg.Events.Limit())
			}
			charged += ev.size
			ev.budget = t.cfg.Events
		}
	}
	if spec.Lead != nil {
		replay = append([]*Event{spec.Lead}, replay...)
	}
	for _, ev := range replay {
		ev.hold(1)
	}
	res.Replayed = len(replay)
	if renew {
		old.rearm(replay)
		old.floor = max(old.floor, top)
		res.Sub, res.Renewed = old, true
		return res, nil
	}
	if old != nil {
		old.finish(Replaced)
		old.Owner.Wake()
		res.Replaced = old
		t.removeLocked(old)
		t.subs.Add(1)
	}
	s := newSubscription(t.name, spec.ClientID, spec.Owner, t.cfg.QueueSize, t.cfg.Policy)
	s.setByteLimit(t.cfg.QueueBytes)
	s.replay = replay
	s.floor = top
	t.addLocked(s)
	res.Sub = s
	return res, nil
}

// covers reports whether evs (oldest first, consecutive) hold every seq in (since, top].
func covers(evs []*Event, since, top uint64) bool {
	if since == top {
		return true
	}
	want := since + 1
	for _, ev := range evs {
		if ev.Seq < want {
			continue
		}
		if ev.Seq != want {
			return false
		}
		want++
	}
	return want > top
}

// after returns the events of evs whose seq is above since.
func after(evs []*Event, since uint64) []*Event {
	for i, ev := range evs {
		if ev.Seq > since {
			return evs[i:]
		}
	}
	return nil
}

// Close ends every subscription with TopicDeleted, gives the window's bytes back and refuses all
// further operations: the topic was deleted (by whichever replica).
func (t *Topic) Close() { t.close() }

// Idle reports whether the topic has no subscription left.
func (t *Topic) Idle() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.list) == 0
}

// MakeRoom reports whether n more bytes fit the event budget, letting the topic's window give back
// first, oldest first: the check of Publish, for an event this process will receive later.
func (t *Topic) MakeRoom(n int64) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	for !t.cfg.Events.TryTake(n) {
		if !t.history.DropOldest() {
			return false
		}
	}
	t.cfg.Events.Release(n)
	return true
}

// Reset starts the topic over as epoch with top as its last seq: the stream it followed ended
// (the topic was recreated, or its seqs went back). The window is emptied and the floors of the
// subscriptions, which were seqs of the old stream, are forgotten.
func (t *Topic) Reset(epoch string, top uint64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.epoch, t.seq = epoch, top
	t.history.clear()
	for _, s := range t.list {
		s.floor = 0
	}
}

// Evict ends clientID's subscription with Replaced, if the topic has it: a connection on another
// replica took the client id over. It returns whether there was one and the seq it was released
// at: its queue holds every event up to that seq and none after.
func (t *Topic) Evict(clientID string) (bool, uint64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := t.clients[clientID]
	if s == nil {
		return false, t.seq
	}
	s.finish(Replaced)
	s.Owner.Wake()
	t.removeLocked(s)
	return true, t.seq
}

// DetachHeld is Detach that reports whether s was still the topic's subscription for its client
// id (and is now removed): only then may an engine forget who holds the client id.
func (t *Topic) DetachHeld(s *Subscription) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.clients[s.ClientID] != s {
		return false
	}
	t.removeLocked(s)
	return true
}
