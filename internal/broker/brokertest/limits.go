package brokertest

import (
	"testing"

	"github.com/pubsubd/pubsub/internal/domain"
)

// The memory and count bounds of issue #11, as far as they are the engine's: every engine holds
// its events within TopicConfig's byte bounds and budget and refuses past its caps, with an error
// that names the limit (domain.LimitOf) so the edge can count it.

// unitSize is the Size of the events message(1) .. message(9) make under the suite's config: they
// all have the same size, so byte bounds can be written as counts of them.
func unitSize(t *testing.T, newBroker Factory) int64 {
	t.Helper()
	b := newBroker(t, config(10, 10, domain.DropOldest))
	mustCreate(t, b, "probe")
	ev, _ := mustPublish(t, b, "probe", 1)
	if ev.Size() <= int64(len(ev.Frame)) {
		t.Fatalf("event Size %d does not count its frame of %d bytes", ev.Size(), len(ev.Frame))
	}
	return ev.Size()
}

func wantLimit(t *testing.T, what string, err error, limit string) {
	t.Helper()
	if domain.KindOf(err) != domain.KindRateLimited || domain.LimitOf(err) != limit {
		t.Fatalf("%s: %v (kind %v, limit %q), want KindRateLimited naming %q", what, err, domain.KindOf(err), domain.LimitOf(err), limit)
	}
}

func testTopicCap(t *testing.T, newBroker Factory) {
	cfg := config(10, 10, domain.DropOldest)
	cfg.MaxTopics = 2
	b := newBroker(t, cfg)
	mustCreate(t, b, "a", "b")
	wantLimit(t, "a third topic", b.CreateTopic(t.Context(), "c"), domain.LimitTopics)
	if n, _ := counts(t, b); n != 2 {
		t.Fatalf("Counts topics = %d after a refusal, want 2", n)
	}
	if err := b.DeleteTopic(t.Context(), "a"); err != nil {
		t.Fatal(err)
	}
	mustCreate(t, b, "c")
}

func testSubscriptionCap(t *testing.T, newBroker Factory) {
	cfg := config(10, 10, domain.DropOldest)
	cfg.MaxSubscriptions = 2
	b := newBroker(t, cfg)
	mustCreate(t, b, "a", "b")
	w := NewWaker()
	live(t, b, "a", "c1", w)
	live(t, b, "b", "c2", w)
	_, err := b.Subscribe(t.Context(), "a", domain.SubscribeSpec{ClientID: "c3", Owner: w})
	wantLimit(t, "a third subscription", err, domain.LimitSubscriptions)
	// A takeover replaces a subscription: it is not one more.
	if res := mustSubscribe(t, b, "a", "c1", NewWaker(), 0); res.Replaced == nil {
		t.Fatal("takeover at the cap did not replace")
	}
	if err := b.Unsubscribe(t.Context(), "b", "c2", w); err != nil {
		t.Fatal(err)
	}
	live(t, b, "a", "c3", w)
	if _, n := counts(t, b); n != 2 {
		t.Fatalf("Counts subscriptions = %d, want 2", n)
	}
}

func testHistoryBytes(t *testing.T, newBroker Factory) {
	unit := unitSize(t, newBroker)
	cfg := config(100, 10, domain.DropOldest)
	cfg.HistoryBytes = 3 * unit
	b := newBroker(t, cfg)
	mustCreate(t, b, "orders")
	publishN(t, b, "orders", 7)
	// last_n larger than what the bytes keep replays what is still held, the newest.
	sub := mustSubscribe(t, b, "orders", "late", NewWaker(), 100).Sub
	if got := replayOf(sub); !equalSeqs(got, []uint64{5, 6, 7}) {
		t.Fatalf("last_n 100 with history bytes for 3 replayed %v, want [5 6 7]", got)
	}
}

func testQueueBytes(t *testing.T, newBroker Factory) {
	unit := unitSize(t, newBroker)
	cfg := config(100, 100, domain.DropOldest)
	cfg.QueueBytes = 3 * unit
	b := newBroker(t, cfg)
	mustCreate(t, b, "orders")
	slow := live(t, b, "orders", "slow", NewWaker())
	for seq := uint64(1); seq <= 5; seq++ {
		_, st := mustPublish(t, b, "orders", seq)
		if want := max(0, int(seq)-3); st.DroppedOldest != min(want, 1) || st.MaxDepth != min(int(seq), 3) {
			t.Fatalf("seq %d: stats %+v, want depth %d and the oldest dropped past 3", seq, st, min(int(seq), 3))
		}
	}
	wantDrained(t, "slow", DrainAll(slow), Drained{Dropped: 2}, []uint64{3, 4, 5})
}

func testEventBudget(t *testing.T, newBroker Factory) {
	unit := unitSize(t, newBroker)
	cfg := config(100, 100, domain.DropOldest)
	budget := domain.NewBudget(4 * unit)
	cfg.Events = budget
	b := newBroker(t, cfg)
	mustCreate(t, b, "orders")
	publishN(t, b, "orders", 5) // history alone gives back to make room: never refused
	slow := live(t, b, "orders", "slow", NewWaker())
	for seq := uint64(6); seq <= 9; seq++ {
		mustPublish(t, b, "orders", seq)
	}
	_, _, err := b.Publish(t.Context(), "orders", message(10))
	wantLimit(t, "a publish while queues hold the whole budget", err, domain.LimitEventMemory)
	if budget.Used() > budget.Limit() {
		t.Fatalf("budget used %d past its limit %d", budget.Used(), budget.Limit())
	}
	wantDrained(t, "slow", DrainAll(slow), Drained{}, []uint64{6, 7, 8, 9})
	// Drained, the events are held by the history only, which gives back again. The refused
	// message took no seq: the next one accepted is 10.
	if ev, _ := mustPublish(t, b, "orders", 10); ev.Seq != 10 {
		t.Fatalf("after a refusal the next seq is %d, want 10", ev.Seq)
	}
	if err := b.DeleteTopic(t.Context(), "orders"); err != nil {
		t.Fatal(err)
	}
	if budget.Used() != 0 {
		t.Fatalf("budget used %d after the topic went, want 0", budget.Used())
	}
}

// replayOf releases a held subscription and returns the seqs it hands out.
func replayOf(sub *domain.Subscription) []uint64 {
	sub.Release()
	return DrainAll(sub).Seqs()
}

func equalSeqs(a, b []uint64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
