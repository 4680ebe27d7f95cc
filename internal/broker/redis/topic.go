package redis

import (
	"context"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pubsubd/pubsub/internal/domain"
)

// repairLimit bounds the events one repair reads back; a longer hole is announced as a gap past it.
const repairLimit = 10000

// retiredEpochs is how many of the epochs it left a topic's worker remembers.
const retiredEpochs = 4

// recentDeliveries is how many of its last deliveries a topic remembers for publishers of this
// replica that ask for their event after the worker delivered it.
const recentDeliveries = 64

// delivery is one event delivered locally, for the publisher that waits for it. It holds no
// reference to the event: the event's bytes are the budget's to account for, and a record of the
// last deliveries must not keep up to recentDeliveries large events alive beside it.
type delivery struct {
	seq   uint64
	ok    bool     // false: the seq was announced as lost
	id    [16]byte // the message delivered (when ok): catchUp checks Redis still has it at seq
	stats domain.PublishStats
}

// topicState is this replica's following of one topic: the worker that alone delivers its events
// to the local queues, in seq order, by the live rule.
//
// Ownership: the worker goroutine (loop) owns local's sequencing, epoch, pending and repairedTo,
// and runs the closures sent on ctrl (subscribe's init and attach) in between messages. The
// pub/sub callback only sends on inbox (never blocking; overflow sets overflow) and pokes wake.
// joining and removed are guarded by the engine's mu. mu guards t and the delivery record, which
// publishers on other goroutines read.
type topicState struct {
	e       *Engine
	name    domain.TopicName
	channel string

	inbox    chan []byte
	ctrl     chan func()
	wake     chan struct{}
	done     chan struct{} // closed when the worker has stopped (the state is gone)
	added    chan struct{} // closed once the channel is asked of the feed (by the state's creator)
	overflow atomic.Bool   // the callback dropped a message: read the history up to the top
	resync   atomic.Bool   // the pub/sub connection was replaced: check the top

	joining int  // subscribes in progress; guarded by e.mu
	removed bool // no longer in e.topics; guarded by e.mu

	// Worker-owned.
	local       *domain.Topic
	epoch       string
	pending     [][]byte // messages received before the first read told where the topic stands
	pendingLost bool
	repairedTo  uint64 // messages at or below this seq came through a read already
	gone        bool
	// retired are the last epochs this worker left (a ring): a message of one of them still on
	// its way through the channel belongs to a stream that ended, which the subscribers were
	// told; it must never take the worker back to that epoch.
	retired     [retiredEpochs]string
	retiredNext int

	mu      sync.Mutex
	t       *domain.Topic
	lastSeq uint64
	recent  [recentDeliveries]delivery
	waiters map[uint64]chan delivery
}

func newTopicState(e *Engine, name domain.TopicName) *topicState {
	return &topicState{e: e, name: name, channel: e.keys.channel(name),
		inbox: make(chan []byte, e.opts.InboxSize), ctrl: make(chan func()), wake: make(chan struct{}, 1),
		done: make(chan struct{}), added: make(chan struct{}), waiters: make(map[uint64]chan delivery)}
}

// lookup returns the state of name, or nil when this replica does not follow it.
func (e *Engine) lookup(name domain.TopicName) *topicState {
	if v, ok := e.index.Load(name); ok {
		return v.(*topicState)
	}
	return nil
}

// join returns the state of name, creating it (and its worker, and the channel's subscription)
// when needed, and waits until Redis has confirmed the channel's subscription: only then may the
// history be read (the seam). The caller must call leave.
func (e *Engine) join(ctx context.Context, name domain.TopicName) (*topicState, error) {
	e.mu.Lock()
	st := e.topics[name]
	created := st == nil
	if created {
		st = newTopicState(e, name)
		e.topics[name] = st
		e.index.Store(name, st)
		e.wg.Add(1)
		go func() {
			defer e.wg.Done()
			defer close(st.done)
			e.survive("topic worker", st.loop)
		}()
	}
	st.joining++
	e.mu.Unlock()
	if created {
		// Outside mu: the SUBSCRIBE is written to the network.
		e.feed.add(st.channel)
		close(st.added)
	}
	wctx, cancel := context.WithTimeout(ctx, e.opts.Timeout)
	defer cancel()
	select {
	case <-st.added:
	case <-wctx.Done():
		e.leave(st)
		return nil, unavailable(wctx.Err())
	}
	if err := e.feed.wait(wctx, st.channel); err != nil {
		e.leave(st)
		return nil, unavailable(err)
	}
	return st, nil
}

// leave ends a join.
func (e *Engine) leave(st *topicState) {
	e.mu.Lock()
	st.joining--
	e.mu.Unlock()
	st.poke()
}

// poke wakes the worker to look at its idleness and flags.
func (st *topicState) poke() {
	select {
	case st.wake <- struct{}{}:
	default:
	}
}

// localTopic returns the local topic once the first subscribe has initialised it, else nil.
func (st *topicState) localTopic() *domain.Topic {
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.t
}

// run runs f on the worker, between two messages, and returns its error. Once f is handed over
// it is waited for even if ctx ends, so that what it registers is never left behind.
func (st *topicState) run(ctx context.Context, f func() error) error {
	res := make(chan error, 1)
	select {
	case st.ctrl <- func() { res <- f() }:
	case <-st.done:
		return domain.Errorf(domain.KindNotFound, "topic %q does not exist", string(st.name))
	case <-ctx.Done():
		return unavailable(ctx.Err())
	}
	return <-res
}

// offer is the pub/sub callback's hand-off: it never blocks.
func (st *topicState) offer(msg []byte) {
	if !st.e.inboxBytes.TryTake(int64(len(msg))) {
		st.overflow.Store(true)
		st.e.obs.WorkerOverflow()
		st.poke()
		return
	}
	select {
	case st.inbox <- msg:
	default:
		st.e.inboxBytes.Release(int64(len(msg)))
		st.overflow.Store(true)
		st.e.obs.WorkerOverflow()
		st.poke()
	}
}

// loop is the worker.
func (st *topicState) loop() {
	idle := time.NewTimer(time.Hour)
	idle.Stop()
	armed := false
	retry := time.NewTimer(time.Hour)
	retry.Stop()
	for {
		// Whether anyone may have come or gone: only a poke or a closure run here says so, never
		// a message, so the hot path skips the idleness check (and the engine's lock it takes).
		look := true
		select {
		case m := <-st.inbox:
			if st.handle(m) {
				st.e.inboxBytes.Release(int64(len(m)))
			}
			look = false
		case f := <-st.ctrl:
			f()
		case <-st.wake:
		case <-retry.C:
			st.resync.Store(true)
		case <-idle.C:
			armed = false
			if st.remove() {
				return
			}
		case <-st.e.stop:
			st.remove()
			return
		}
		if st.local != nil && !st.gone && st.overflow.Swap(false) {
			st.catchUp()
		}
		if st.local != nil && !st.gone && st.resync.Swap(false) {
			if !st.catchUp() {
				retry.Reset(st.e.opts.Timeout)
			}
		}
		if st.gone {
			st.remove()
			return
		}
		if !look {
			continue
		}
		if st.idle() {
			if !armed {
				idle.Reset(st.e.opts.UnsubscribeDelay)
				armed = true
			}
		} else if armed {
			idle.Stop()
			armed = false
		}
	}
}

// idle reports whether the topic has no subscriber and none on the way (read without e.mu: the
// final word is remove's, under it).
func (st *topicState) idle() bool {
	st.e.mu.Lock()
	joining := st.joining
	st.e.mu.Unlock()
	return joining == 0 && (st.local == nil || st.local.Idle())
}

// remove takes the state out of the engine when it is idle (or gone, or the engine stops), and
// unsubscribes from the channel. It reports whether it did.
func (st *topicState) remove() bool {
	e := st.e
	e.mu.Lock()
	stopping := false
	select {
	case <-e.stop:
		stopping = true
	default:
	}
	if !st.gone && !stopping && (st.joining > 0 || (st.local != nil && !st.local.Idle())) {
		e.mu.Unlock()
		return false
	}
	if e.topics[st.name] == st {
		delete(e.topics, st.name)
		e.index.Delete(st.name)
	}
	st.removed = true
	e.mu.Unlock()
	e.feed.remove(st.channel)
	// Give back what waits here: no one will handle it (the callback no longer finds this state).
	for _, m := range st.pending {
		e.inboxBytes.Release(int64(len(m)))
	}
	st.pending = nil
	for {
		select {
		case m := <-st.inbox:
			e.inboxBytes.Release(int64(len(m)))
			continue
		default:
		}
		break
	}
	if st.local != nil && !st.gone && st.local.Idle() {
		st.local.Close() // nothing subscribed: only the window's bytes to give back
	}
	return true
}

// init makes the local topic at the first subscribe's read: the topic stands at r.top, so the
// messages received since the channel's subscription was confirmed are replayed by the live rule
// (those at or below r.top are the read's).
func (st *topicState) init(r readResult) error {
	if st.gone {
		return domain.Errorf(domain.KindNotFound, "topic %q does not exist", string(st.name))
	}
	if st.local != nil {
		return nil
	}
	st.local = st.e.mirrors.Open(st.name, r.epoch, r.top)
	st.epoch, st.repairedTo = r.epoch, r.top
	st.mu.Lock()
	st.t, st.lastSeq = st.local, r.top
	st.mu.Unlock()
	pending, lost := st.pending, st.pendingLost
	st.pending, st.pendingLost = nil, false
	for _, m := range pending {
		st.handle(m)
		st.e.inboxBytes.Release(int64(len(m)))
	}
	if lost && !st.gone {
		st.catchUp()
	}
	if st.gone {
		return domain.Errorf(domain.KindNotFound, "topic %q does not exist", string(st.name))
	}
	return nil
}

// handle applies one channel message: the live rule. It reports whether it is done with raw;
// false means raw is kept (pending, until the first read), still charged to the inbox budget.
func (st *topicState) handle(raw []byte) bool {
	if st.gone {
		return true
	}
	if st.local == nil {
		if len(st.pending) < cap(st.inbox) {
			st.pending = append(st.pending, raw)
			return false
		}
		st.pendingLost = true
		return true
	}
	st.apply1(raw)
	return true
}

// apply1 is handle for a topic that knows where it stands.
func (st *topicState) apply1(raw []byte) {
	n, ok := parseNotice(raw)
	if !ok {
		st.anomaly("a message that is not a notice", 0)
		return
	}
	if (n.kind == 'm' || n.kind == 'r') && st.isRetired(n.epoch) {
		// Published before the epoch changed, received after this worker read the new one
		// (the read path overtook the channel): the stream it belongs to has ended.
		st.anomaly("a message of an epoch that ended", n.seq)
		return
	}
	switch n.kind {
	case 'm':
		st.onEvent(n)
	case 'd':
		st.onDeleted(n)
	case 'r':
		if n.epoch != st.epoch {
			st.discontinuity(n.epoch, n.seq)
		}
	default:
		st.anomaly("a notice of an unknown kind", n.seq)
	}
}

func (st *topicState) anomaly(what string, seq uint64) {
	st.e.obs.Anomaly()
	st.e.log.Warn("backplane anomaly", "topic", string(st.name), "what", what, "seq", seq,
		"delivered", st.local.Delivered())
}

// onEvent: seq == next is delivered; seq > next waits for the missing range, read from the
// history; seq < next is expected only for what a read brought already.
func (st *topicState) onEvent(n notice) {
	if n.epoch != st.epoch {
		// The topic was recreated (or rotated) and this replica missed the notice: the stream it
		// followed ended. Tell the subscribers, then follow the new one from this event.
		st.discontinuity(n.epoch, n.seq-1)
	}
	d := st.local.Delivered()
	switch {
	case n.seq == d+1:
		st.deliverBody(n.seq, n.body)
	case n.seq > d+1:
		if !st.fill(d, n.seq-1) {
			// Redis did not answer: the event is in the history with the ones before it, and
			// the top is read again shortly (resync), rather than a gap announced for a blip.
			st.resync.Store(true)
			return
		}
		if !st.gone && st.local.Delivered() == n.seq-1 {
			st.deliverBody(n.seq, n.body)
		}
	case n.seq <= st.repairedTo:
		// Read from the history already (the seam, or a repair): expected, skipped.
	default:
		st.anomaly("a seq already delivered", n.seq)
		// A seq published again: Redis may have lost acknowledged writes, and this seq may now
		// name another message. Catch-up (right after this message) compares the history with
		// what was delivered, and rotates the epoch if they differ.
		st.resync.Store(true)
	}
}

func (st *topicState) deliverBody(seq uint64, body []byte) {
	ev, err := decodeEvent(st.name, seq, body)
	if err != nil {
		st.anomaly("an event this version cannot read", seq)
		st.gap(seq, seq)
		return
	}
	st.deliver(ev)
}

// deliver hands ev (the next seq) to the local queues and to the publisher waiting for it.
func (st *topicState) deliver(ev *domain.Event) {
	st.e.obs.ReceiveLag(time.Since(ev.Time))
	stats, err := st.local.Deliver(ev, st.e.now())
	if err != nil {
		// The event budget cannot hold it: the local subscribers are told it is lost.
		st.gap(ev.Seq, ev.Seq)
		return
	}
	st.record(delivery{seq: ev.Seq, ok: true, id: ev.Message.ID, stats: stats})
}

// record notes a delivery (or a loss) for publishers of this replica.
func (st *topicState) record(d delivery) {
	st.mu.Lock()
	defer st.mu.Unlock()
	st.lastSeq = max(st.lastSeq, d.seq)
	st.recent[d.seq%recentDeliveries] = d
	if ch, ok := st.waiters[d.seq]; ok {
		ch <- d
		delete(st.waiters, d.seq)
	}
}

// awaitDelivery waits (up to timeout; 0: not at all) until the worker delivered seq, and returns
// the stats of its local fan-out. ok is false when this replica does not follow the topic, the
// seq was lost, or the wait timed out: the caller acks from what it stored.
func (st *topicState) awaitDelivery(ctx context.Context, seq uint64, timeout time.Duration) (domain.PublishStats, bool) {
	st.mu.Lock()
	if st.t == nil {
		st.mu.Unlock()
		return domain.PublishStats{}, false
	}
	if seq <= st.lastSeq {
		d := st.recent[seq%recentDeliveries]
		st.mu.Unlock()
		return d.stats, d.seq == seq && d.ok
	}
	if timeout <= 0 {
		st.mu.Unlock()
		return domain.PublishStats{}, false
	}
	ch := make(chan delivery, 1)
	st.waiters[seq] = ch
	st.mu.Unlock()
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case d := <-ch:
		return d.stats, d.ok
	case <-t.C:
	case <-ctx.Done():
	case <-st.done:
	}
	st.mu.Lock()
	delete(st.waiters, seq)
	st.mu.Unlock()
	return domain.PublishStats{}, false
}

// fill delivers the events after `from` up to `to` from the history, and announces as a gap
// whatever it no longer holds. It reports false, having delivered nothing, when Redis could not
// be read: the caller decides whether to try again or give up.
func (st *topicState) fill(from, to uint64) bool {
	if to <= from {
		return true
	}
	ctx, cancel := context.WithTimeout(context.Background(), st.e.opts.Timeout)
	defer cancel()
	r, err := st.e.readRange(ctx, st.name, from, to, int(min(to-from, repairLimit)))
	switch {
	case domain.KindOf(err) == domain.KindNotFound:
		st.closeDeleted()
		return true
	case err != nil:
		st.e.log.Warn("backplane repair postponed: redis did not answer", "topic", string(st.name), "from_seq", from+1, "to_seq", to, "error", err)
		return false
	case r.epoch != st.epoch:
		st.discontinuity(r.epoch, r.top)
		return true
	}
	st.apply(from, to, r.events)
	return true
}

// apply delivers events (oldest first) as the range (from, to], announcing every hole.
func (st *topicState) apply(from, to uint64, events []*domain.Event) {
	want, complete := from+1, true
	for _, ev := range events {
		if ev.Seq < want || ev.Seq > to {
			continue
		}
		if ev.Seq > want {
			st.gap(want, ev.Seq-1)
			complete = false
		}
		st.deliver(ev)
		want = ev.Seq + 1
	}
	if want <= to {
		st.gap(want, to)
		complete = false
	}
	st.repairedTo = max(st.repairedTo, to)
	st.e.obs.Repaired(complete)
}

// catchUp reads the topic's top and repairs from it: after an overflow of the inbox, messages
// lost before the first read, or a new pub/sub connection. Meta gone: the topic was deleted;
// another epoch: a discontinuity; a top ahead: the missing events; a top behind what was
// delivered, or a history that holds other messages than the ones delivered at their seqs (a
// failover lost acknowledged writes, and new publishes may have taken their seqs since): the
// epoch is rotated so that the same seqs never name two events, and the subscribers are told.
// It reports false when Redis could not be read (the caller tries again).
func (st *topicState) catchUp() bool {
	ctx, cancel := context.WithTimeout(context.Background(), st.e.opts.Timeout)
	defer cancel()
	if err := st.e.feed.wait(ctx, st.channel); err != nil {
		return false // not subscribed yet: reading now could miss what follows
	}
	d := st.local.Delivered()
	// The read starts before d, at the deliveries this worker remembers: a top at or above d
	// proves nothing when publishers brought the seq back up after a loss before this look; only
	// the events at the seqs delivered do.
	back := min(d, recentDeliveries)
	r, err := st.e.readRange(ctx, st.name, d-back, 0, repairLimit+int(back))
	switch {
	case domain.KindOf(err) == domain.KindNotFound:
		st.closeDeleted()
		return true
	case err != nil:
		return false
	case r.epoch != st.epoch:
		st.discontinuity(r.epoch, r.top)
	case r.top >= d && !st.rewritten(d, r.events):
		if r.top > d {
			st.apply(d, r.top, r.events)
		}
	default: // r.top < d, or seqs delivered now name other messages
		epoch, err := st.e.rotate(ctx, st.name, st.epoch)
		if err != nil {
			return false
		}
		if epoch == "" {
			st.closeDeleted()
			return true
		}
		st.discontinuity(epoch, r.top)
	}
	return true
}

// gap tells every local subscriber that events from..to will not be delivered.
func (st *topicState) gap(from, to uint64) {
	st.local.Announce(gapNotice(st.name, from, to), to)
	st.e.obs.GapAnnounced()
	st.e.log.Warn("backplane gap announced", "topic", string(st.name), "from_seq", from, "to_seq", to)
	for s := from; s <= to && s-from < recentDeliveries; s++ {
		st.record(delivery{seq: s})
	}
	st.record(delivery{seq: to})
}

// gapNotice is the info frame that tells a subscriber events from..to of topic will not come.
func gapNotice(topic domain.TopicName, from, to uint64) *domain.Event {
	now := time.Now()
	b := make([]byte, 0, 96+len(topic))
	b = append(b, `{"type":"info","topic":"`...)
	b = append(b, topic...)
	b = append(b, `","msg":"gap","from_seq":`...)
	b = strconv.AppendUint(b, from, 10)
	b = append(b, `,"to_seq":`...)
	b = strconv.AppendUint(b, to, 10)
	b = appendTS(b, now)
	return domain.NewNotice(topic, now, b)
}

// discontinuity tells every local subscriber that the stream it followed ended and the topic goes
// on as epoch after seq top, then follows that.
func (st *topicState) discontinuity(epoch string, top uint64) {
	now := time.Now()
	b := make([]byte, 0, 96+len(st.name)+len(epoch))
	b = append(b, `{"type":"info","topic":"`...)
	b = append(b, st.name...)
	b = append(b, `","msg":"discontinuity","epoch":"`...)
	b = append(b, epoch...)
	b = append(b, '"')
	b = appendTS(b, now)
	st.local.Announce(domain.NewNotice(st.name, now, b), 0)
	st.local.Reset(epoch, top)
	if st.epoch != "" && st.epoch != epoch {
		st.retired[st.retiredNext] = st.epoch
		st.retiredNext = (st.retiredNext + 1) % retiredEpochs
	}
	st.epoch, st.repairedTo = epoch, top
	st.mu.Lock()
	st.lastSeq = top
	st.recent = [recentDeliveries]delivery{} // the old stream's: its seqs may come again, naming others
	st.mu.Unlock()
	st.e.log.Warn("backplane discontinuity announced", "topic", string(st.name), "epoch", epoch, "seq", top)
}

// rewritten reports whether events (a read of the history, oldest first) hold, at a seq up to d
// that this worker remembers delivering, another message than the one it delivered.
func (st *topicState) rewritten(d uint64, events []*domain.Event) bool {
	st.mu.Lock()
	defer st.mu.Unlock()
	for _, ev := range events {
		if ev.Seq > d {
			break
		}
		if rec := st.recent[ev.Seq%recentDeliveries]; rec.seq == ev.Seq && rec.ok && rec.id != [16]byte(ev.Message.ID) {
			return true
		}
	}
	return false
}

// isRetired reports whether epoch is one this worker left.
func (st *topicState) isRetired(epoch string) bool {
	for _, e := range st.retired {
		if e != "" && e == epoch {
			return true
		}
	}
	return false
}

// onDeleted: every event up to the notice's seq is delivered, then the subscribers are told.
func (st *topicState) onDeleted(n notice) {
	if n.epoch != st.epoch {
		return // a delete of a stream this replica no longer follows
	}
	if d := st.local.Delivered(); n.seq > d && !st.fill(d, n.seq) {
		st.e.obs.Repaired(false)
		st.gap(d+1, n.seq) // the topic is gone: there is no later to try again
	}
	st.closeDeleted()
}

func (st *topicState) closeDeleted() {
	if !st.gone {
		st.local.Close()
		st.gone = true
	}
}

// appendTS appends `,"ts":"<RFC 3339, milliseconds, UTC>"}` as the wire's frames end.
func appendTS(b []byte, t time.Time) []byte {
	b = append(b, `,"ts":"`...)
	b = t.UTC().AppendFormat(b, "2006-01-02T15:04:05.000Z07:00")
	return append(b, `"}`...)
}

// rotate sets a new epoch for name if it is still `seen`, and returns the epoch in force ("" if
// the topic is gone).
func (e *Engine) rotate(ctx context.Context, name domain.TopicName, seen string) (string, error) {
	var epoch string
	err := e.call(ctx, "rotate", func(ctx context.Context) error {
		v, err := scriptRotate.Exec(ctx, e.client, []string{e.keys.meta(name), e.keys.topics(), e.keys.channel(name)},
			[]string{string(name), seen, newEpoch()}).ToString()
		if err != nil && isNil(err) {
			return nil
		}
		epoch = v
		return err
	})
	return epoch, err
}
