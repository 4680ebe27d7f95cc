package domain

import (
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

// TopicConfig is what a registry and every topic of it are created with. The zero value of each
// bound below is "no bound".
type TopicConfig struct {
	HistorySize  int   // events kept for last_n replay
	HistoryBytes int64 // bytes of events kept for last_n replay, beside HistorySize
	// RecoveryMax bounds how many events one resume (SubscribeSpec.Resume) may replay; a resume
	// that misses more is not recovered. 0 is HistorySize, which the history bounds anyway.
	RecoveryMax int
	QueueSize   int    // capacity of each subscriber queue
	QueueBytes  int64  // bytes each subscriber queue holds before Policy applies, beside QueueSize
	Policy      Policy // what a full subscriber queue does
	Encoder     Encoder
	Now         func() time.Time // the clock that stamps events; time.Now when nil

	// Events is the byte budget of the events all topics hold, in history and queues together;
	// nil is unlimited. A publish that does not fit is refused with LimitEventMemory.
	Events *Budget
	// MaxTopics and MaxSubscriptions cap the registry's topics and its subscriptions over all
	// topics; creating one more is refused with LimitTopics or LimitSubscriptions.
	MaxTopics        int
	MaxSubscriptions int
}

// PublishStats describes one publish, for whoever observes it (the service's Observer).
type PublishStats struct {
	Start, Appended, End time.Time // accepted; history appended; handed to every subscriber
	Subscribers          int       // fan-out width
	Enqueued             int       // subscribers whose queue took the event
	DroppedOldest        int       // events DropOldest discarded from subscriber queues to make room
	Overflowed           int       // subscribers cut off by the Disconnect policy
	MaxDepth             int       // deepest subscriber queue after the enqueue
}

// Topic is one stream of events: its sequence, history and subscribers. All methods are safe for
// concurrent use. Publish holds the topic's lock through the fan-out, which is what keeps every
// subscriber's stream in the same order as the history; the fan-out never blocks, so that hold is
// short.
type Topic struct {
	name  TopicName
	epoch string // set at creation, never changed: a topic created again gets another
	cfg   TopicConfig
	subs  *atomic.Int64 // the registry's subscription count, shared by all its topics

	mu      sync.Mutex
	seq     uint64
	history *Ring
	clients map[string]*Subscription
	list    []*Subscription // the values of clients, so the fan-out walks a slice; Subscription.index is a position in it
	deleted bool
}

func newTopic(name TopicName, epoch string, cfg TopicConfig, subs *atomic.Int64) *Topic {
	return &Topic{name: name, epoch: epoch, cfg: cfg, subs: subs, history: newRingBytes(cfg.HistorySize, cfg.HistoryBytes),
		clients: make(map[string]*Subscription)}
}

// Name returns the topic's name.
func (t *Topic) Name() TopicName { return t.name }

// Epoch returns the epoch the topic was created with.
func (t *Topic) Epoch() string { return t.epoch }

func (t *Topic) now() time.Time {
	if t.cfg.Now != nil {
		return t.cfg.Now()
	}
	return time.Now()
}

func (t *Topic) notFound() error {
	return Errorf(KindNotFound, "topic %q does not exist", string(t.name))
}

// Publish accepts msg: it gets the next seq, goes into the history, and is handed to every current
// subscriber's queue. Payload and Headers must not be modified afterwards.
//
// The event is charged to the event budget before it is accepted. When it does not fit, this
// topic's own history gives back first, oldest first (history is a replay window, and a topic
// that needs the room is the one whose window shrinks); if that is not enough, because queues of
// subscribers that do not read hold the memory, the publish is refused with LimitEventMemory and
// nothing is accepted: an acknowledged message is never dropped to make room.
func (t *Topic) Publish(msg Message) (*Event, PublishStats, error) {
	t.mu.Lock()
	if t.deleted {
		t.mu.Unlock()
		return nil, PublishStats{}, t.notFound()
	}
	var st PublishStats
	st.Start = t.now()
	ev := &Event{Topic: t.name, Seq: t.seq + 1, Time: st.Start, Message: msg, budget: t.cfg.Events}
	shared := false
	if t.cfg.Encoder != nil {
		var at int
		ev.Frame, at = t.cfg.Encoder(ev)
		if p := len(msg.Payload); at >= 0 && at+p <= len(ev.Frame) {
			// The frame holds the payload: keep that copy only (capped, so no append reaches the frame).
			ev.Message.Payload = ev.Frame[at : at+p : at+p]
			shared = true
		}
	}
	ev.size = eventSize(ev, shared)
	for !t.cfg.Events.TryTake(ev.size) {
		if !t.history.DropOldest() {
			t.mu.Unlock()
			return nil, PublishStats{}, LimitErrorf(KindRateLimited, LimitEventMemory,
				"the server's event memory (%d bytes) is full; retry later", t.cfg.Events.Limit())
		}
	}
	t.seq++
	// One reference for the history and one for each queue that may take the event, taken before
	// any queue can drain it; the fan-out gives back those not used.
	ev.hold(int64(1 + len(t.list)))
	t.history.Push(ev)
	st.Appended = t.now()
	t.fanOutLocked(ev, &st, 0)
	st.End = t.now()
	t.mu.Unlock()
	return ev, st, nil
}

// SubscribeSpec says what a subscribe asks for: which client, for which owner, and what history
// to replay before live events.
type SubscribeSpec struct {
	ClientID string
	Owner    Waker
	// LastN asks for up to the LastN newest history events; ignored when Resume is set.
	LastN int
	// Resume says the client has every event of epoch Epoch up to SinceSeq and asks for the rest
	// (see Topic.Subscribe for the rule).
	Resume   bool
	SinceSeq uint64
	Epoch    string
}

// SubscribeResult is what Subscribe did.
type SubscribeResult struct {
	Sub      *Subscription
	Replaced *Subscription // the subscription another connection lost to this one, if any
	Replayed int           // history events queued for replay
	Renewed  bool          // the same owner already held this client id; its subscription was re-armed
	Epoch    string        // the topic's epoch
	Seq      uint64        // the topic's latest seq when the subscription started; 0 if none
	// Resumed says the spec had Resume; Recovered that every event after its SinceSeq was queued
	// for replay. Resumed and not Recovered means nothing at all was queued.
	Resumed   bool
	Recovered bool
}

// Subscribe registers spec.ClientID for spec.Owner and queues history for replay: up to LastN of
// the newest events, or, with Resume, the events after SinceSeq (see resumeLocked). The replay and
// the start of the live queue are decided under the topic's lock, so no event falls between them
// or comes twice. The returned subscription is held: nothing is drained from it until the owner,
// having written the ack, calls Release. A client id already held by another owner is taken over;
// held by the same owner, it is re-armed (with the same replay rule), so the client never receives
// a message twice through two subscriptions. A client id that belongs to another principal (see
// Holder) is refused with ErrNotOwner.
func (t *Topic) Subscribe(spec SubscribeSpec) (SubscribeResult, error) {
	clientID, owner := spec.ClientID, spec.Owner
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.deleted {
		return SubscribeResult{}, t.notFound()
	}
	old := t.clients[clientID]
	if old != nil && old.Principal != principalOf(owner) {
		return SubscribeResult{}, errNotOwner(t.name, clientID)
	}
	renew := old != nil && old.Owner == owner && old.Ended() == Live
	if old == nil && !t.reserveSubscription() {
		return SubscribeResult{}, LimitErrorf(KindRateLimited, LimitSubscriptions,
			"the server's subscription limit (%d) is reached", t.cfg.MaxSubscriptions)
	}
	res := SubscribeResult{Epoch: t.epoch, Seq: t.seq, Resumed: spec.Resume}
	var history []*Event
	if spec.Resume {
		history, res.Recovered = t.resumeLocked(spec.Epoch, spec.SinceSeq)
	} else {
		history = t.history.Last(spec.LastN)
	}
	for _, ev := range history {
		ev.hold(1) // the replay's reference
	}
	res.Replayed = len(history)
	if renew {
		old.rearm(history)
		res.Sub, res.Renewed = old, true
		return res, nil
	}
	if old != nil {
		old.finish(Replaced)
		old.Owner.Wake()
		res.Replaced = old
		t.removeLocked(old)
		t.subs.Add(1) // the new subscription takes the count the old one gave back
	}
	s := newSubscription(t.name, clientID, owner, t.cfg.QueueSize, t.cfg.Policy)
	s.setByteLimit(t.cfg.QueueBytes)
	s.replay = history
	t.addLocked(s)
	res.Sub = s
	return res, nil
}

// resumeLocked applies the resume rule: a client that has every event of epoch up to sinceSeq
// gets exactly the events after it, and recovered, when epoch is this topic's, sinceSeq is not
// ahead of its seq, and every missing event is still in the history and within RecoveryMax.
// Otherwise it gets nothing at all: a partial catch-up would look like a complete one to a client
// that cannot tell, while "not recovered" tells it to reload. The history always holds the newest
// events with consecutive seqs ending at t.seq, so the missing ones are its last seq-sinceSeq.
func (t *Topic) resumeLocked(epoch string, sinceSeq uint64) ([]*Event, bool) {
	if epoch != t.epoch || sinceSeq > t.seq {
		return nil, false
	}
	missing := t.seq - sinceSeq
	if missing == 0 {
		return nil, true
	}
	bound := t.cfg.RecoveryMax
	if bound <= 0 {
		bound = t.cfg.HistorySize
	}
	if missing > uint64(t.history.Len()) || missing > uint64(bound) {
		return nil, false
	}
	history := t.history.Last(int(missing))
	if history[0].Seq != sinceSeq+1 {
		return nil, false // not reachable while the history is consecutive; refuse rather than skip
	}
	return history, true
}

// reserveSubscription counts one more subscription in the registry, unless that would pass
// MaxSubscriptions. The count is shared by every topic, hence one atomic add (and one back on
// refusal) rather than a lock: subscribing is not the hot path, and the cap is never passed.
func (t *Topic) reserveSubscription() bool {
	n := t.subs.Add(1)
	if t.cfg.MaxSubscriptions > 0 && n > int64(t.cfg.MaxSubscriptions) {
		t.subs.Add(-1)
		return false
	}
	return true
}

// Unsubscribe ends clientID's subscription for by, whichever connection of by's principal holds
// it: one held by another connection ends with UnsubscribedElsewhere, so that its client is told.
// A client id of another principal is refused with ErrNotOwner. It reports whether there was a
// subscription; none is not an error, because unsubscribing is idempotent. by may be nil: the
// anonymous principal.
func (t *Topic) Unsubscribe(clientID string, by Waker) (bool, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.deleted {
		return false, t.notFound()
	}
	s := t.clients[clientID]
	if s == nil {
		return false, nil
	}
	if s.Principal != principalOf(by) {
		return false, errNotOwner(t.name, clientID)
	}
	t.removeLocked(s)
	if by != nil && s.Owner == by {
		s.finish(Unsubscribed)
	} else {
		s.finish(UnsubscribedElsewhere)
	}
	s.Owner.Wake()
	return true, nil
}

// Detach removes s if it is still the topic's subscription for its client id; its owner is going
// away. Unlike Unsubscribe it never removes a newer subscription that took the client id over.
// The caller then ends s with Abandon.
func (t *Topic) Detach(s *Subscription) {
	t.mu.Lock()
	if t.clients[s.ClientID] == s {
		t.removeLocked(s)
	}
	t.mu.Unlock()
}

// addLocked and removeLocked keep clients and list in step in O(1): with 10,000 subscribers a topic
// that rebuilt its list on every change spent most of a mass disconnect doing so. The registry's
// subscription count was taken before addLocked (reserveSubscription); removeLocked gives it back.
func (t *Topic) addLocked(s *Subscription) {
	t.clients[s.ClientID] = s
	s.index = len(t.list)
	t.list = append(t.list, s)
}

func (t *Topic) removeLocked(s *Subscription) {
	t.subs.Add(-1)
	delete(t.clients, s.ClientID)
	last := len(t.list) - 1
	moved := t.list[last]
	t.list[s.index] = moved
	moved.index = s.index
	t.list[last] = nil
	t.list = t.list[:last]
}

// TopicStats is a point-in-time reading of a topic.
type TopicStats struct {
	Name        TopicName
	Messages    uint64 // accepted since the topic was created
	Subscribers int
}

// ReplicaStats is a point-in-time reading of one process of the service as its engine sees it:
// the memory engine has one (Self, no ID, no Heartbeat); a shared engine lists every replica with a
// fresh heartbeat.
type ReplicaStats struct {
	ID          string    // the replica's id; empty for the memory engine's single process
	Self        bool      // the process that answers
	Topics      int       // topics it has subscribers on
	Subscribers int       // its subscriptions
	Heartbeat   time.Time // its last heartbeat; zero for Self and for the memory engine
}

// Stats reads the topic's counters.
func (t *Topic) Stats() TopicStats {
	t.mu.Lock()
	defer t.mu.Unlock()
	return TopicStats{Name: t.name, Messages: t.seq, Subscribers: len(t.list)}
}

// close ends every subscription with TopicDeleted, gives the history's bytes back and refuses all
// further operations.
func (t *Topic) close() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.deleted = true
	for _, s := range t.list {
		s.finish(TopicDeleted)
		s.Owner.Wake()
	}
	t.subs.Add(-int64(len(t.list)))
	t.history.clear()
	t.clients, t.list = nil, nil
}

// Registry holds the topics by name. It is safe for concurrent use.
type Registry struct {
	cfg    TopicConfig
	subs   atomic.Int64 // subscriptions over all topics; each topic adds and removes its own
	mu     sync.RWMutex
	topics map[TopicName]*Topic
}

// NewRegistry returns an empty registry whose topics are created with cfg.
func NewRegistry(cfg TopicConfig) *Registry {
	return &Registry{cfg: cfg, topics: make(map[TopicName]*Topic)}
}

// Create adds a topic with the given epoch, or fails with KindExists. The epoch must differ from
// any the name had before (the engine makes it random: the domain does no I/O), so that a client
// resuming across a delete and create is told it cannot.
func (r *Registry) Create(name TopicName, epoch string) (*Topic, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if _, ok := r.topics[name]; ok {
		return nil, Errorf(KindExists, "topic %q already exists", string(name))
	}
	if r.cfg.MaxTopics > 0 && len(r.topics) >= r.cfg.MaxTopics {
		return nil, LimitErrorf(KindRateLimited, LimitTopics,
			"the server's topic limit (%d) is reached; delete a topic first", r.cfg.MaxTopics)
	}
	t := newTopic(name, epoch, r.cfg, &r.subs)
	r.topics[name] = t
	return t, nil
}

// Delete removes a topic and ends its subscriptions, or fails with KindNotFound. A topic created
// again under the same name starts empty.
func (r *Registry) Delete(name TopicName) error {
	r.mu.Lock()
	t, ok := r.topics[name]
	delete(r.topics, name)
	r.mu.Unlock()
	if !ok {
		return Errorf(KindNotFound, "topic %q does not exist", string(name))
	}
	t.close()
	return nil
}

// Get returns the topic called name, or fails with KindNotFound.
func (r *Registry) Get(name TopicName) (*Topic, error) {
	r.mu.RLock()
	t, ok := r.topics[name]
	r.mu.RUnlock()
	if !ok {
		return nil, Errorf(KindNotFound, "topic %q does not exist", string(name))
	}
	return t, nil
}

// Stats returns every topic's stats, sorted by name.
func (r *Registry) Stats() []TopicStats {
	r.mu.RLock()
	ts := make([]*Topic, 0, len(r.topics))
	for _, t := range r.topics {
		ts = append(ts, t)
	}
	r.mu.RUnlock()
	out := make([]TopicStats, len(ts))
	for i, t := range ts {
		out[i] = t.Stats()
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// Counts returns the number of topics and of subscriptions over all of them, cheaply enough to be
// read at every scrape.
func (r *Registry) Counts() (topics, subscriptions int) {
	r.mu.RLock()
	topics = len(r.topics)
	r.mu.RUnlock()
	return topics, int(r.subs.Load())
}
