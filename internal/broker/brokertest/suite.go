package brokertest

import (
	"encoding/binary"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pubsubd/pubsub/internal/domain"
	"github.com/pubsubd/pubsub/internal/service"
)

// Factory returns a new, empty broker whose topics are created with cfg. The broker must be
// independent of every other one the factory returned; the factory registers its own cleanup with
// t.Cleanup.
type Factory func(t *testing.T, cfg domain.TopicConfig) service.Broker

// Run runs the whole contract against the brokers newBroker makes, one subtest per clause.
func Run(t *testing.T, newBroker Factory) {
	t.Helper()
	cases := []struct {
		name string
		run  func(t *testing.T, newBroker Factory)
	}{
		{"topic lifecycle", testTopicLifecycle},
		{"publish assigns seq per topic", testPublishSeq},
		{"publish stats count subscribers", testPublishStats},
		{"subscribe and unsubscribe", testSubscribeUnsubscribe},
		{"last_n replay", testReplay},
		{"re-subscribe by the same owner re-arms", testRearm},
		{"another owner takes a client id over", testTakeover},
		{"detach never removes a newer subscription", testDetach},
		{"delete ends subscriptions and a recreated topic starts empty", testDeleteRecreate},
		{"topics are listed sorted with counts", testTopicsSorted},
		{"replicas list the answering process first", testReplicasSelf},
		{"topics are isolated", testIsolation},
		{"concurrent publishers and subscribers", testConcurrent},
		{"drop_oldest overflow", testDropOldest},
		{"disconnect overflow", testDisconnect},
		{"topic cap", testTopicCap},
		{"subscription cap", testSubscriptionCap},
		{"history bounded by bytes", testHistoryBytes},
		{"queue bounded by bytes", testQueueBytes},
		{"event memory budget", testEventBudget},
		{"subscribe reports epoch and seq", testAckEpochSeq},
		{"resume from since_seq and epoch", testResume},
		{"resume bounded by RecoveryMax", testResumeBound},
		{"resume by the same owner re-arms", testResumeRearm},
		{"resume after delete and create", testResumeRecreated},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) { c.run(t, newBroker) })
	}
}

// waitFor bounds every wait of the suite: generous for a loaded CI machine, short enough that a
// lost wake fails the test instead of hanging it.
const waitFor = 20 * time.Second

// clock is a deterministic TopicConfig.Now: every reading is one millisecond after the previous
// one, so ordered timings are strictly ordered. Topics read it concurrently, hence the lock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

var epoch = time.Date(2026, 1, 1, 10, 0, 0, 0, time.UTC)

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(time.Millisecond)
	return c.t
}

// frame is the suite's Encoder: the topic and the seq, so a test can tell the engine called it for
// exactly this event.
func frame(e *domain.Event) ([]byte, int) { return fmt.Appendf(nil, "%s#%d", e.Topic, e.Seq), -1 }

// config returns a TopicConfig with the suite's encoder and clock.
func config(history, queue int, p domain.Policy) domain.TopicConfig {
	c := &clock{t: epoch}
	return domain.TopicConfig{HistorySize: history, QueueSize: queue, Policy: p, Encoder: frame, Now: c.Now}
}

// message returns a message whose non-nil id and payload both carry n.
func message(n uint64) domain.Message {
	var id [16]byte
	id[0] = 0xb7 // never the nil UUID, even for n == 0
	binary.BigEndian.PutUint64(id[8:], n)
	return domain.Message{ID: id, Payload: fmt.Appendf(nil, `{"n":%d}`, n), Headers: map[string]string{"n": fmt.Sprint(n)}}
}

func mustCreate(t *testing.T, b service.Broker, names ...domain.TopicName) {
	t.Helper()
	for _, n := range names {
		if err := b.CreateTopic(t.Context(), n); err != nil {
			t.Fatalf("CreateTopic(%q): %v", n, err)
		}
	}
}

func mustPublish(t *testing.T, b service.Broker, topic domain.TopicName, n uint64) (*domain.Event, domain.PublishStats) {
	t.Helper()
	ev, st, err := b.Publish(t.Context(), topic, message(n))
	if err != nil {
		t.Fatalf("Publish(%q, %d): %v", topic, n, err)
	}
	return ev, st
}

// publishN publishes n messages to topic and returns their seqs.
func publishN(t *testing.T, b service.Broker, topic domain.TopicName, n int) []uint64 {
	t.Helper()
	var out []uint64
	for i := range n {
		ev, _ := mustPublish(t, b, topic, uint64(i))
		out = append(out, ev.Seq)
	}
	return out
}

func mustSubscribe(t *testing.T, b service.Broker, topic domain.TopicName, clientID string, owner domain.Waker, lastN int) domain.SubscribeResult {
	t.Helper()
	res, err := b.Subscribe(t.Context(), topic, domain.SubscribeSpec{ClientID: clientID, Owner: owner, LastN: lastN})
	if err != nil {
		t.Fatalf("Subscribe(%q, %q, last_n %d): %v", topic, clientID, lastN, err)
	}
	if res.Sub == nil {
		t.Fatalf("Subscribe(%q, %q) returned no subscription", topic, clientID)
	}
	return res
}

// live subscribes and releases at once, as a connection does right after writing the ack.
func live(t *testing.T, b service.Broker, topic domain.TopicName, clientID string, owner domain.Waker) *domain.Subscription {
	t.Helper()
	sub := mustSubscribe(t, b, topic, clientID, owner, 0).Sub
	sub.Release()
	return sub
}

// seqRange returns from..to inclusive, or an empty (non-nil) slice when to < from.
func seqRange(from, to uint64) []uint64 {
	out := []uint64{}
	for s := from; s <= to; s++ {
		out = append(out, s)
	}
	return out
}

func wantKind(t *testing.T, what string, err error, k domain.Kind, topic domain.TopicName) {
	t.Helper()
	if err == nil {
		t.Fatalf("%s: no error, want kind %d", what, k)
	}
	if got := domain.KindOf(err); got != k {
		t.Fatalf("%s: error %q has kind %d, want %d", what, err, got, k)
	}
	// The message reaches the client as is: it must say which topic.
	if !strings.Contains(err.Error(), string(topic)) {
		t.Fatalf("%s: error %q does not name topic %q", what, err, topic)
	}
}

func wantDrained(t *testing.T, who string, got Drained, want Drained, wantSeqs []uint64) {
	t.Helper()
	if s := got.Seqs(); !slices.Equal(s, wantSeqs) {
		t.Fatalf("%s drained seqs %v, want %v", who, s, wantSeqs)
	}
	got.Events, want.Events = nil, nil
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("%s drained %+v, want %+v", who, got, want)
	}
}

func wantStats(t *testing.T, b service.Broker, want ...domain.TopicStats) {
	t.Helper()
	got, err := b.Topics(t.Context())
	if err != nil {
		t.Fatalf("Topics: %v", err)
	}
	if want == nil {
		want = []domain.TopicStats{}
	}
	if got == nil {
		got = []domain.TopicStats{}
	}
	if !slices.Equal(got, want) {
		t.Fatalf("Topics() = %+v, want %+v", got, want)
	}
	subs := 0
	for _, s := range want {
		subs += s.Subscribers
	}
	if topics, n := counts(t, b); topics != len(want) || n != subs {
		t.Fatalf("Counts() = %d topics, %d subscriptions, want %d, %d", topics, n, len(want), subs)
	}
}

// counts returns the broker's Counts, failing the test on an error.
func counts(t *testing.T, b service.Broker) (topics, subscriptions int) {
	t.Helper()
	topics, subscriptions, err := b.Counts(t.Context())
	if err != nil {
		t.Fatalf("Counts: %v", err)
	}
	return topics, subscriptions
}

// wantWoken fails unless w was woken since it had before wakes.
func wantWoken(t *testing.T, who string, w *Waker, before int64) {
	t.Helper()
	if w.Wakes() <= before {
		t.Fatalf("%s was not woken (%d wakes, %d before)", who, w.Wakes(), before)
	}
}

func testTopicLifecycle(t *testing.T, newBroker Factory) {
	b := newBroker(t, config(10, 10, domain.DropOldest))
	ctx := t.Context()
	wantStats(t, b)
	mustCreate(t, b, "orders")
	wantKind(t, "creating orders twice", b.CreateTopic(ctx, "orders"), domain.KindExists, "orders")
	wantStats(t, b, domain.TopicStats{Name: "orders"})
	if err := b.DeleteTopic(ctx, "orders"); err != nil {
		t.Fatalf("DeleteTopic: %v", err)
	}
	wantStats(t, b)

	w := NewWaker()
	ops := []struct {
		name string
		call func(t *testing.T) error
	}{
		{"delete", func(*testing.T) error { return b.DeleteTopic(ctx, "orders") }},
		{"publish", func(t *testing.T) error {
			ev, _, err := b.Publish(ctx, "orders", message(1))
			if ev != nil {
				t.Errorf("publish to a missing topic returned event %+v", ev)
			}
			return err
		}},
		{"subscribe", func(t *testing.T) error {
			res, err := b.Subscribe(ctx, "orders", domain.SubscribeSpec{ClientID: "c1", Owner: w, LastN: 5})
			if res.Sub != nil {
				t.Errorf("subscribe to a missing topic returned a subscription")
			}
			return err
		}},
		{"unsubscribe", func(*testing.T) error { return b.Unsubscribe(ctx, "orders", "c1", nil) }},
	}
	for _, op := range ops {
		t.Run(op.name+" on a missing topic", func(t *testing.T) {
			wantKind(t, op.name, op.call(t), domain.KindNotFound, "orders")
		})
	}
	wantStats(t, b)
	if w.Wakes() != 0 {
		t.Fatalf("failed operations woke a subscriber %d times", w.Wakes())
	}
}

func testPublishSeq(t *testing.T, newBroker Factory) {
	b := newBroker(t, config(10, 10, domain.DropOldest))
	mustCreate(t, b, "a", "b")
	order := []domain.TopicName{"a", "b", "a", "a", "b"}
	next := map[domain.TopicName]uint64{"a": 1, "b": 1}
	var last time.Time
	for i, topic := range order {
		msg := message(uint64(i))
		ev, st, err := b.Publish(t.Context(), topic, msg)
		if err != nil {
			t.Fatalf("Publish #%d to %s: %v", i, topic, err)
		}
		if ev.Seq != next[topic] || ev.Topic != topic {
			t.Fatalf("publish #%d to %s: event is seq %d of %q, want seq %d of %q", i, topic, ev.Seq, ev.Topic, next[topic], topic)
		}
		next[topic]++
		if ev.Message.ID != msg.ID || string(ev.Message.Payload) != string(msg.Payload) || !maps.Equal(ev.Message.Headers, msg.Headers) {
			t.Fatalf("publish #%d: event carries %+v, want the message %+v unchanged", i, ev.Message, msg)
		}
		if want, _ := frame(ev); string(ev.Frame) != string(want) {
			t.Fatalf("publish #%d: Frame = %q, want the Encoder's %q", i, ev.Frame, want)
		}
		if !ev.Time.Equal(st.Start) || !ev.Time.After(last) {
			t.Fatalf("publish #%d: event time %v, stats start %v, previous event %v: want the clock's reading at acceptance", i, ev.Time, st.Start, last)
		}
		if st.Appended.Before(st.Start) || st.End.Before(st.Appended) {
			t.Fatalf("publish #%d: timings out of order: %+v", i, st)
		}
		if st.Subscribers != 0 || st.Enqueued != 0 || st.MaxDepth != 0 || st.DroppedOldest != 0 || st.Overflowed != 0 {
			t.Fatalf("publish #%d with no subscribers: stats %+v", i, st)
		}
		last = ev.Time
	}
	wantStats(t, b, domain.TopicStats{Name: "a", Messages: 3}, domain.TopicStats{Name: "b", Messages: 2})
}

func testPublishStats(t *testing.T, newBroker Factory) {
	b := newBroker(t, config(10, 10, domain.DropOldest))
	mustCreate(t, b, "orders", "other")
	w1, w2, w3 := NewWaker(), NewWaker(), NewWaker()
	s1 := live(t, b, "orders", "c1", w1)
	s2 := live(t, b, "orders", "c2", w2)
	s3 := live(t, b, "other", "c3", w3)

	tests := []struct {
		name      string
		before    func()
		wantDepth int
	}{
		{"first event", func() {}, 1},
		{"second event queues behind it", func() {}, 2},
		// Draining c1 does not change the depth: c2 still holds every event.
		{"deepest queue counts", func() { DrainAll(s1) }, 3},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.before()
			b1, b2 := w1.Wakes(), w2.Wakes()
			ev, st := mustPublish(t, b, "orders", uint64(i))
			want := domain.PublishStats{Start: st.Start, Appended: st.Appended, End: st.End,
				Subscribers: 2, Enqueued: 2, MaxDepth: tt.wantDepth}
			if st != want {
				t.Fatalf("seq %d: stats %+v, want %+v", ev.Seq, st, want)
			}
			wantWoken(t, "c1", w1, b1)
			wantWoken(t, "c2", w2, b2)
		})
	}
	wantDrained(t, "c1", DrainAll(s1), Drained{}, []uint64{3})
	wantDrained(t, "c2", DrainAll(s2), Drained{}, []uint64{1, 2, 3})
	wantDrained(t, "c3 on another topic", DrainAll(s3), Drained{}, []uint64{})
	if w3.Wakes() != 0 {
		t.Fatalf("a subscriber of another topic was woken %d times", w3.Wakes())
	}
}

func testSubscribeUnsubscribe(t *testing.T, newBroker Factory) {
	b := newBroker(t, config(10, 10, domain.DropOldest))
	ctx := t.Context()
	mustCreate(t, b, "orders")
	w := NewWaker()
	res := mustSubscribe(t, b, "orders", "c1", w, 0)
	sub := res.Sub
	if sub.Topic != "orders" || sub.ClientID != "c1" || sub.Owner != w {
		t.Fatalf("subscription is %q/%q owned by %v, want orders/c1 owned by the subscriber", sub.Topic, sub.ClientID, sub.Owner)
	}
	if res.Replaced != nil || res.Renewed || res.Replayed != 0 || sub.Ended() != domain.Live {
		t.Fatalf("first subscribe: %+v, ended %v", res, sub.Ended())
	}
	wantStats(t, b, domain.TopicStats{Name: "orders", Subscribers: 1})

	// Held until the owner has written the ack: an event published meanwhile waits.
	mustPublish(t, b, "orders", 1)
	wantDrained(t, "held subscription", DrainAll(sub), Drained{}, []uint64{})
	sub.Release()
	wantDrained(t, "released subscription", DrainAll(sub), Drained{}, []uint64{1})

	// Unsubscribing discards what is queued, without counting it lost: the client asked for that.
	mustPublish(t, b, "orders", 2)
	before := w.Wakes()
	if err := b.Unsubscribe(ctx, "orders", "c1", w); err != nil {
		t.Fatalf("Unsubscribe: %v", err)
	}
	wantWoken(t, "unsubscribed owner", w, before)
	if sub.Ended() != domain.Unsubscribed {
		t.Fatalf("after Unsubscribe the subscription ended %v, want Unsubscribed", sub.Ended())
	}
	wantStats(t, b, domain.TopicStats{Name: "orders", Messages: 2})
	if _, st := mustPublish(t, b, "orders", 3); st.Subscribers != 0 || st.Enqueued != 0 {
		t.Fatalf("publish after unsubscribe reached %d subscribers (%d enqueued)", st.Subscribers, st.Enqueued)
	}
	wantDrained(t, "unsubscribed", DrainAll(sub), Drained{End: domain.Unsubscribed}, []uint64{})

	for _, id := range []string{"c1", "never-subscribed"} {
		if err := b.Unsubscribe(ctx, "orders", id, w); err != nil {
			t.Fatalf("Unsubscribe(%q) with no subscription: %v, want nil (idempotent)", id, err)
		}
	}
	wantStats(t, b, domain.TopicStats{Name: "orders", Messages: 3})
}

func testReplay(t *testing.T, newBroker Factory) {
	const history = 5
	b := newBroker(t, config(history, 20, domain.DropOldest))
	mustCreate(t, b, "orders", "empty")
	publishN(t, b, "orders", 8) // the history keeps seqs 4..8

	tests := []struct {
		name  string
		topic domain.TopicName
		lastN int
		want  []uint64
	}{
		{"last_n 0 replays nothing", "orders", 0, seqRange(1, 0)},
		{"last_n 1 is the newest", "orders", 1, []uint64{8}},
		{"last_n 3 oldest first", "orders", 3, []uint64{6, 7, 8}},
		{"last_n equal to the history", "orders", history, seqRange(4, 8)},
		{"last_n one beyond the history", "orders", history + 1, seqRange(4, 8)},
		{"huge last_n is the whole history", "orders", 1 << 30, seqRange(4, 8)},
		{"empty topic", "empty", 10, seqRange(1, 0)},
	}
	subs := make([]*domain.Subscription, len(tests))
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := mustSubscribe(t, b, tt.topic, fmt.Sprintf("c%d", i), NewWaker(), tt.lastN)
			if res.Replayed != len(tt.want) {
				t.Fatalf("Replayed = %d, want %d", res.Replayed, len(tt.want))
			}
			res.Sub.Release()
			wantDrained(t, "replay", DrainAll(res.Sub), Drained{Replayed: len(tt.want)}, tt.want)
			subs[i] = res.Sub
		})
	}
	// After the replay, live events only, each once.
	mustPublish(t, b, "orders", 9)
	for i, tt := range tests {
		if subs[i] == nil {
			continue // its subtest failed already
		}
		want := []uint64{9}
		if tt.topic != "orders" {
			want = []uint64{}
		}
		wantDrained(t, tt.name+" then live", DrainAll(subs[i]), Drained{}, want)
	}

	t.Run("replay precedes events published before the release", func(t *testing.T) {
		res := mustSubscribe(t, b, "orders", "late", NewWaker(), 2)
		mustPublish(t, b, "orders", 10)
		res.Sub.Release()
		wantDrained(t, "late", DrainAll(res.Sub), Drained{Replayed: 2}, []uint64{8, 9, 10})
	})
	t.Run("history size 0 keeps nothing", func(t *testing.T) {
		b := newBroker(t, config(0, 20, domain.DropOldest))
		mustCreate(t, b, "orders")
		publishN(t, b, "orders", 3)
		res := mustSubscribe(t, b, "orders", "c", NewWaker(), 10)
		res.Sub.Release()
		if res.Replayed != 0 {
			t.Fatalf("Replayed = %d with no history", res.Replayed)
		}
		wantDrained(t, "no history", DrainAll(res.Sub), Drained{}, []uint64{})
	})
}

func testRearm(t *testing.T, newBroker Factory) {
	b := newBroker(t, config(10, 20, domain.DropOldest))
	mustCreate(t, b, "orders")
	publishN(t, b, "orders", 2)
	w := NewWaker()
	first := live(t, b, "orders", "c1", w)
	publishN(t, b, "orders", 2) // seqs 3, 4 wait in the queue

	res := mustSubscribe(t, b, "orders", "c1", w, 3)
	if !res.Renewed || res.Sub != first || res.Replaced != nil || res.Replayed != 3 {
		t.Fatalf("re-subscribe by the same owner: %+v, want Renewed with the same subscription and 3 replayed", res)
	}
	if first.Ended() != domain.Live {
		t.Fatalf("re-armed subscription ended %v", first.Ended())
	}
	wantStats(t, b, domain.TopicStats{Name: "orders", Messages: 4, Subscribers: 1})
	// Held again until the new ack is written, then history and queue merged without duplicates.
	wantDrained(t, "re-armed, held", DrainAll(first), Drained{}, []uint64{})
	first.Release()
	d := DrainAll(first)
	if d.Replayed < 1 {
		t.Fatalf("re-armed subscription reported no replay: %+v", d)
	}
	d.Replayed = 0 // which of 3 and 4 count as replay is the engine's choice; that each comes once is not
	wantDrained(t, "re-armed", d, Drained{}, []uint64{2, 3, 4})

	_, st := mustPublish(t, b, "orders", 5)
	if st.Subscribers != 1 || st.Enqueued != 1 {
		t.Fatalf("after re-arm a publish reached %d subscribers, enqueued %d; want 1, 1", st.Subscribers, st.Enqueued)
	}
	wantDrained(t, "re-armed, live", DrainAll(first), Drained{}, []uint64{5})
}

func testTakeover(t *testing.T, newBroker Factory) {
	b := newBroker(t, config(10, 20, domain.DropOldest))
	mustCreate(t, b, "orders")
	w1, w2 := NewWaker(), NewWaker()
	old := live(t, b, "orders", "c1", w1)
	mustPublish(t, b, "orders", 1) // queued on the old connection

	before := w1.Wakes()
	res := mustSubscribe(t, b, "orders", "c1", w2, 0)
	if res.Replaced != old || res.Renewed || res.Sub == old || res.Sub.Owner != w2 {
		t.Fatalf("takeover: %+v, want a new subscription owned by the new owner, replacing the old one", res)
	}
	if old.Ended() != domain.Replaced {
		t.Fatalf("taken-over subscription ended %v, want Replaced", old.Ended())
	}
	wantWoken(t, "old owner", w1, before)
	wantStats(t, b, domain.TopicStats{Name: "orders", Messages: 1, Subscribers: 1})

	res.Sub.Release()
	_, st := mustPublish(t, b, "orders", 2)
	if st.Subscribers != 1 || st.Enqueued != 1 {
		t.Fatalf("after takeover a publish reached %d subscribers, enqueued %d; want 1, 1", st.Subscribers, st.Enqueued)
	}
	// The old connection flushes what it had, then learns it was replaced; nothing is lost or doubled.
	wantDrained(t, "old", DrainAll(old), Drained{End: domain.Replaced}, []uint64{1})
	wantDrained(t, "new", DrainAll(res.Sub), Drained{}, []uint64{2})
}

func testDetach(t *testing.T, newBroker Factory) {
	b := newBroker(t, config(10, 20, domain.DropOldest))
	mustCreate(t, b, "orders")
	old := live(t, b, "orders", "c1", NewWaker())
	w := NewWaker()
	newer := live(t, b, "orders", "c1", w)

	steps := []struct {
		name     string
		detach   *domain.Subscription
		wantSubs int
	}{
		{"detaching the replaced subscription keeps the newer one", old, 1},
		{"detaching it twice too", old, 1},
		{"detaching the current subscription removes it", newer, 0},
		{"detaching again is harmless", newer, 0},
	}
	for i, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			b.Detach(s.detach)
			s.detach.Abandon() // what the service does next
			_, st := mustPublish(t, b, "orders", uint64(i))
			if st.Subscribers != s.wantSubs {
				t.Fatalf("publish reached %d subscribers, want %d", st.Subscribers, s.wantSubs)
			}
			if _, n := counts(t, b); n != s.wantSubs {
				t.Fatalf("Counts() has %d subscriptions, want %d", n, s.wantSubs)
			}
		})
	}

	t.Run("a subscription of a deleted topic never removes one of the topic created again", func(t *testing.T) {
		gone := live(t, b, "orders", "c2", NewWaker())
		if err := b.DeleteTopic(t.Context(), "orders"); err != nil {
			t.Fatal(err)
		}
		mustCreate(t, b, "orders")
		current := live(t, b, "orders", "c2", NewWaker())
		b.Detach(gone)
		gone.Abandon()
		if _, st := mustPublish(t, b, "orders", 1); st.Subscribers != 1 {
			t.Fatalf("publish reached %d subscribers, want the recreated topic's 1", st.Subscribers)
		}
		wantDrained(t, "current", DrainAll(current), Drained{}, []uint64{1})
		if err := b.DeleteTopic(t.Context(), "orders"); err != nil {
			t.Fatal(err)
		}
		b.Detach(current) // its topic is gone: nothing to do, and no panic
	})
}

func testDeleteRecreate(t *testing.T, newBroker Factory) {
	b := newBroker(t, config(10, 20, domain.DropOldest))
	ctx := t.Context()
	mustCreate(t, b, "orders", "other")
	w1, w2, w3 := NewWaker(), NewWaker(), NewWaker()
	released := live(t, b, "orders", "c1", w1)
	held := mustSubscribe(t, b, "orders", "c2", w2, 0).Sub // ack not written yet
	bystander := live(t, b, "other", "c3", w3)
	publishN(t, b, "orders", 3)
	mustPublish(t, b, "other", 1)

	b1, b2, b3 := w1.Wakes(), w2.Wakes(), w3.Wakes()
	if err := b.DeleteTopic(ctx, "orders"); err != nil {
		t.Fatalf("DeleteTopic: %v", err)
	}
	wantWoken(t, "released subscriber", w1, b1)
	wantWoken(t, "held subscriber", w2, b2)
	if w3.Wakes() != b3 || bystander.Ended() != domain.Live {
		t.Fatalf("deleting orders touched a subscriber of another topic")
	}
	for name, s := range map[string]*domain.Subscription{"released": released, "held": held} {
		if s.Ended() != domain.TopicDeleted {
			t.Fatalf("%s subscription ended %v, want TopicDeleted", name, s.Ended())
		}
		// The queued events will never be written: they are lost, and said so once.
		wantDrained(t, name, DrainAll(s), Drained{End: domain.TopicDeleted, Lost: 3}, []uint64{})
	}
	wantStats(t, b, domain.TopicStats{Name: "other", Messages: 1, Subscribers: 1})

	mustCreate(t, b, "orders")
	wantStats(t, b, domain.TopicStats{Name: "orders"}, domain.TopicStats{Name: "other", Messages: 1, Subscribers: 1})
	res := mustSubscribe(t, b, "orders", "c1", w1, 10)
	if res.Replayed != 0 || res.Replaced != nil || res.Renewed {
		t.Fatalf("subscribing to the recreated topic: %+v, want a fresh subscription with no history", res)
	}
	res.Sub.Release()
	if ev, _ := mustPublish(t, b, "orders", 1); ev.Seq != 1 {
		t.Fatalf("first event of the recreated topic has seq %d, want 1", ev.Seq)
	}
	wantDrained(t, "recreated", DrainAll(res.Sub), Drained{}, []uint64{1})
	wantDrained(t, "ended before the recreation", DrainAll(released), Drained{End: domain.TopicDeleted}, []uint64{})
	wantDrained(t, "bystander", DrainAll(bystander), Drained{}, []uint64{1})
}

func testTopicsSorted(t *testing.T, newBroker Factory) {
	b := newBroker(t, config(10, 20, domain.DropOldest))
	// Byte order: digits and upper case sort before lower case; '-' < '.' < ':' < '_'.
	names := []domain.TopicName{"orders", "Zeta", "a_b", "a:b", "a.b", "a-b", "9", "alpha"}
	mustCreate(t, b, names...)
	publishN(t, b, "orders", 3)
	publishN(t, b, "a:b", 1)
	live(t, b, "orders", "c1", NewWaker())
	live(t, b, "orders", "c2", NewWaker())
	live(t, b, "Zeta", "c1", NewWaker())
	wantStats(t, b,
		domain.TopicStats{Name: "9"},
		domain.TopicStats{Name: "Zeta", Subscribers: 1},
		domain.TopicStats{Name: "a-b"},
		domain.TopicStats{Name: "a.b"},
		domain.TopicStats{Name: "a:b", Messages: 1},
		domain.TopicStats{Name: "a_b"},
		domain.TopicStats{Name: "alpha"},
		domain.TopicStats{Name: "orders", Messages: 3, Subscribers: 2},
	)
}

// testReplicasSelf: whatever else an engine lists, the process that answers comes first, marked
// Self, with the topics it has subscribers on and its subscriptions, read live.
func testReplicasSelf(t *testing.T, newBroker Factory) {
	b := newBroker(t, config(10, 20, domain.DropOldest))
	mustCreate(t, b, "a", "b", "idle")
	live(t, b, "a", "c1", NewWaker())
	live(t, b, "a", "c2", NewWaker())
	live(t, b, "b", "c1", NewWaker())
	rs, err := b.Replicas(t.Context())
	if err != nil {
		t.Fatalf("Replicas: %v", err)
	}
	if len(rs) == 0 {
		t.Fatal("Replicas() is empty: the answering process is missing")
	}
	self := rs[0]
	self.ID = ""
	if self != (domain.ReplicaStats{Self: true, Topics: 2, Subscribers: 3}) {
		t.Fatalf("Replicas()[0] = %+v, want Self with 2 topics and 3 subscriptions", rs[0])
	}
	for _, r := range rs[1:] {
		if r.Self {
			t.Fatalf("Replicas() = %+v: only the first is Self", rs)
		}
	}
}

func testIsolation(t *testing.T, newBroker Factory) {
	b := newBroker(t, config(10, 20, domain.DropOldest))
	mustCreate(t, b, "a", "b")
	wa, wb := NewWaker(), NewWaker()
	// The same client id on both topics: they are still two independent subscriptions.
	sa := live(t, b, "a", "c1", wa)
	sb := live(t, b, "b", "c1", wb)
	publishN(t, b, "a", 3)
	if wb.Wakes() != 0 {
		t.Fatalf("publishing to a woke a subscriber of b %d times", wb.Wakes())
	}
	wantDrained(t, "b", DrainAll(sb), Drained{}, []uint64{})
	d := DrainAll(sa)
	wantDrained(t, "a", d, Drained{}, []uint64{1, 2, 3})
	for _, e := range d.Events {
		if e.Topic != "a" {
			t.Fatalf("a subscriber of a received an event of %q", e.Topic)
		}
	}
	// Replay comes from the topic's own history.
	res := mustSubscribe(t, b, "b", "c2", NewWaker(), 10)
	if res.Replayed != 0 {
		t.Fatalf("b replayed %d events of a", res.Replayed)
	}
	// Ending c1 on a leaves c1 on b alone.
	if err := b.Unsubscribe(t.Context(), "a", "c1", nil); err != nil {
		t.Fatal(err)
	}
	if sb.Ended() != domain.Live {
		t.Fatalf("unsubscribing c1 from a ended its subscription to b: %v", sb.Ended())
	}
	ev, _ := mustPublish(t, b, "b", 1)
	if ev.Seq != 1 {
		t.Fatalf("b's first event has seq %d: seqs leak across topics", ev.Seq)
	}
	wantDrained(t, "b after a's unsubscribe", DrainAll(sb), Drained{}, []uint64{1})
}

// follow drains sub whenever w wakes it until it has want events, the stream ends, or the deadline
// passes. It runs on its own goroutine, so it returns an error instead of failing the test.
func follow(sub *domain.Subscription, w *Waker, want int, deadline <-chan time.Time) ([]*domain.Event, error) {
	var got []*domain.Event
	buf := make([]*domain.Event, 0, drainBatch*4)
	for {
		for sub.Pending() {
			bt := sub.Drain(buf[:0], cap(buf))
			got = append(got, bt.Events...)
			if bt.Dropped > 0 || bt.Overflow || bt.End != domain.Live {
				return got, fmt.Errorf("stream broke after %d events: %+v", len(got), bt)
			}
		}
		if len(got) >= want {
			return got, nil
		}
		select {
		case <-w.C():
		case <-deadline:
			return got, fmt.Errorf("timed out with %d of %d events", len(got), want)
		}
	}
}

func testConcurrent(t *testing.T, newBroker Factory) {
	const (
		publishers = 3
		perPub     = 300
		total      = publishers * perPub
		subsPer    = 3
	)
	topics := []domain.TopicName{"a", "b"}
	b := newBroker(t, config(16, total, domain.DropOldest))
	mustCreate(t, b, topics...)
	deadline := time.After(waitFor)
	ctx := t.Context()

	type follower struct {
		topic domain.TopicName
		sub   *domain.Subscription
		w     *Waker
		got   []*domain.Event
		err   error
	}
	var fs []*follower
	for _, topic := range topics {
		for i := range subsPer {
			w := NewWaker()
			fs = append(fs, &follower{topic: topic, sub: live(t, b, topic, fmt.Sprintf("c%d", i), w), w: w})
		}
	}

	var wg sync.WaitGroup
	for _, f := range fs {
		wg.Go(func() { f.got, f.err = follow(f.sub, f.w, total, deadline) })
	}
	// Churn: a client that keeps subscribing, replaying and leaving, and a reader of the counters,
	// both while the fan-out runs. Neither may disturb the steady subscribers.
	stop := make(chan struct{})
	var side sync.WaitGroup
	var sideErr error
	side.Go(func() {
		w := NewWaker()
		for {
			select {
			case <-stop:
				return
			default:
			}
			for _, topic := range topics {
				res, err := b.Subscribe(ctx, topic, domain.SubscribeSpec{ClientID: "churn", Owner: w, LastN: 4})
				if err != nil {
					sideErr = err
					return
				}
				res.Sub.Release()
				DrainAll(res.Sub)
				if err := b.Unsubscribe(ctx, topic, "churn", w); err != nil {
					sideErr = err
					return
				}
			}
		}
	})
	side.Go(func() {
		for {
			select {
			case <-stop:
				return
			default:
			}
			// Errors are not this reader's to judge: it only races the writers.
			_, _ = b.Topics(ctx)
			_, _, _ = b.Counts(ctx)
			b.LocalCounts()
		}
	})

	var pubs sync.WaitGroup
	errs := make(chan error, publishers*len(topics))
	for _, topic := range topics {
		for p := range publishers {
			pubs.Go(func() {
				for i := range perPub {
					// The payload names its publisher and its position, to check publisher order.
					msg := message(uint64(p)<<32 | uint64(i))
					msg.Headers = map[string]string{"topic": string(topic)}
					if _, _, err := b.Publish(ctx, topic, msg); err != nil {
						errs <- err
						return
					}
				}
			})
		}
	}
	pubs.Wait()
	close(errs)
	wg.Wait()
	close(stop)
	side.Wait()
	for err := range errs {
		t.Fatalf("concurrent publish: %v", err)
	}
	if sideErr != nil {
		t.Fatalf("churning subscriber: %v", sideErr)
	}

	for i, f := range fs {
		if f.err != nil {
			t.Fatalf("subscriber %d of %s: %v", i, f.topic, f.err)
		}
		next := make([]uint64, publishers)
		for j, e := range f.got {
			if e.Seq != uint64(j+1) {
				t.Fatalf("subscriber %d of %s: event %d has seq %d, want %d (exactly once, in order)", i, f.topic, j, e.Seq, j+1)
			}
			if e.Topic != f.topic || e.Message.Headers["topic"] != string(f.topic) {
				t.Fatalf("subscriber %d of %s received an event of %q", i, f.topic, e.Message.Headers["topic"])
			}
			n := binary.BigEndian.Uint64(e.Message.ID[8:])
			p, k := n>>32, n&(1<<32-1)
			if k != next[p] {
				t.Fatalf("subscriber %d of %s: publisher %d's message %d arrived where %d was expected", i, f.topic, p, k, next[p])
			}
			next[p]++
		}
		if len(f.got) != total {
			t.Fatalf("subscriber %d of %s got %d events, want %d", i, f.topic, len(f.got), total)
		}
	}
	wantStats(t, b,
		domain.TopicStats{Name: "a", Messages: total, Subscribers: subsPer},
		domain.TopicStats{Name: "b", Messages: total, Subscribers: subsPer})
}

func testDropOldest(t *testing.T, newBroker Factory) {
	const queue = 3
	b := newBroker(t, config(10, queue, domain.DropOldest))
	mustCreate(t, b, "orders")
	slow := live(t, b, "orders", "slow", NewWaker())

	tests := []struct {
		seq               uint64
		wantDropped, want int // DroppedOldest, MaxDepth
	}{
		{1, 0, 1}, {2, 0, 2}, {3, 0, 3},
		{4, 1, 3}, // full: the oldest goes, the newest stays
		{5, 1, 3},
	}
	for _, tt := range tests {
		_, st := mustPublish(t, b, "orders", tt.seq)
		if st.Subscribers != 1 || st.Enqueued != 1 || st.DroppedOldest != tt.wantDropped || st.Overflowed != 0 || st.MaxDepth != tt.want {
			t.Fatalf("seq %d: stats %+v, want 1 enqueued, %d dropped, depth %d", tt.seq, st, tt.wantDropped, tt.want)
		}
	}
	wantDrained(t, "slow", DrainAll(slow), Drained{Dropped: 2}, []uint64{3, 4, 5})
	// The drop is reported once; the stream goes on.
	mustPublish(t, b, "orders", 6)
	wantDrained(t, "slow, caught up", DrainAll(slow), Drained{}, []uint64{6})
	if slow.Ended() != domain.Live {
		t.Fatalf("drop_oldest ended the subscription: %v", slow.Ended())
	}
}

func testDisconnect(t *testing.T, newBroker Factory) {
	const queue = 3
	b := newBroker(t, config(10, queue, domain.Disconnect))
	mustCreate(t, b, "orders")
	ws := NewWaker()
	slow := live(t, b, "orders", "slow", ws)
	fast := live(t, b, "orders", "fast", NewWaker())
	var fastGot []uint64

	for seq := uint64(1); seq <= queue; seq++ {
		if _, st := mustPublish(t, b, "orders", seq); st.Enqueued != 2 || st.Overflowed != 0 {
			t.Fatalf("seq %d: stats %+v, want both enqueued", seq, st)
		}
		fastGot = append(fastGot, DrainAll(fast).Seqs()...)
	}
	before := ws.Wakes()
	_, st := mustPublish(t, b, "orders", queue+1)
	if st.Subscribers != 2 || st.Enqueued != 1 || st.Overflowed != 1 || st.DroppedOldest != 0 {
		t.Fatalf("overflowing publish: stats %+v, want 1 enqueued and 1 overflowed of 2", st)
	}
	wantWoken(t, "overflowed subscriber", ws, before)
	// An overflowed subscriber is cut off once: later events neither reach it nor count again.
	if _, st := mustPublish(t, b, "orders", queue+2); st.Enqueued != 1 || st.Overflowed != 0 {
		t.Fatalf("publish after the overflow: stats %+v, want only the fast subscriber enqueued", st)
	}
	// Every event the slow client will never see is counted: the queued ones and the one that
	// overflowed (later ones were never its to lose).
	wantDrained(t, "slow", DrainAll(slow), Drained{Overflow: true, Lost: queue + 1}, []uint64{})
	fastGot = append(fastGot, DrainAll(fast).Seqs()...)
	if want := seqRange(1, queue+2); !slices.Equal(fastGot, want) {
		t.Fatalf("fast subscriber got %v, want %v: one slow consumer must not hurt another", fastGot, want)
	}

	// The connection closes: detaching frees the slot.
	b.Detach(slow)
	if lost := slow.Abandon(); lost != 0 {
		t.Fatalf("Abandon after the overflow was reported returned %d lost, want 0 (counted once)", lost)
	}
	wantStats(t, b, domain.TopicStats{Name: "orders", Messages: queue + 2, Subscribers: 1})
}
