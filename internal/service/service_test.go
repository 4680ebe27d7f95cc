package service_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/pubsubd/pubsub/internal/broker/brokertest"
	"github.com/pubsubd/pubsub/internal/broker/memory"
	"github.com/pubsubd/pubsub/internal/domain"
	"github.com/pubsubd/pubsub/internal/service"
)

// fakeClock is the service's Clock under the test's control: it moves only when Advance says so,
// plus step per reading, so that timings taken around a call are strictly ordered.
type fakeClock struct {
	mu   sync.Mutex
	now  time.Time
	step time.Duration
}

var epoch = time.Date(2026, 1, 1, 10, 0, 0, 0, time.UTC)

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(c.step)
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

type publishedCall struct {
	ctx context.Context
	ev  *domain.Event
	st  domain.PublishStats
}

type replayedCall struct {
	ctx        context.Context
	topic      domain.TopicName
	n          int
	start, end time.Time
}

// fakeObserver records every report with the context it came with. Publishes report concurrently,
// hence the lock.
type fakeObserver struct {
	mu        sync.Mutex
	published []publishedCall
	replayed  []replayedCall
}

func (o *fakeObserver) Published(ctx context.Context, ev *domain.Event, st domain.PublishStats) {
	o.mu.Lock()
	o.published = append(o.published, publishedCall{ctx, ev, st})
	o.mu.Unlock()
}

func (o *fakeObserver) Replayed(ctx context.Context, topic domain.TopicName, n int, start, end time.Time) {
	o.mu.Lock()
	o.replayed = append(o.replayed, replayedCall{ctx, topic, n, start, end})
	o.mu.Unlock()
}

func (o *fakeObserver) calls() ([]publishedCall, []replayedCall) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return slices.Clone(o.published), slices.Clone(o.replayed)
}

// ctxKey marks the context a test passes, so it can tell the observer got that very context.
type ctxKey struct{}

type fixture struct {
	svc   *service.Service
	obs   *fakeObserver
	clock *fakeClock
}

func newFixture(t *testing.T, cfg domain.TopicConfig, topics ...domain.TopicName) fixture {
	t.Helper()
	f := fixture{obs: &fakeObserver{}, clock: &fakeClock{now: epoch, step: time.Millisecond}}
	f.svc = service.New(memory.New(cfg), service.Options{Observer: f.obs, Clock: f.clock})
	for _, name := range topics {
		if err := f.svc.CreateTopic(t.Context(), name); err != nil {
			t.Fatalf("CreateTopic(%q): %v", name, err)
		}
	}
	return f
}

func msg() domain.Message {
	return domain.Message{ID: uuid.New(), Payload: []byte(`{"k":"v"}`)}
}

func (f fixture) publish(t *testing.T, topic domain.TopicName, n int) {
	t.Helper()
	for range n {
		if _, err := f.svc.Publish(t.Context(), service.PublishRequest{Topic: topic, Message: msg()}); err != nil {
			t.Fatalf("Publish(%q): %v", topic, err)
		}
	}
}

func (f fixture) subscribe(t *testing.T, topic domain.TopicName, clientID string, owner domain.Waker, lastN int) domain.SubscribeResult {
	t.Helper()
	res, err := f.svc.Subscribe(t.Context(), service.SubscribeRequest{Topic: topic, ClientID: clientID, LastN: lastN, Owner: owner})
	if err != nil {
		t.Fatalf("Subscribe(%q, %q): %v", topic, clientID, err)
	}
	return res
}

func wantErr(t *testing.T, err error, kind domain.Kind, sentinel error, msg string) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error, want %q", msg)
	}
	if domain.KindOf(err) != kind || !errors.Is(err, sentinel) || err.Error() != msg {
		t.Fatalf("error %q (kind %d), want %q (kind %d)", err, domain.KindOf(err), msg, kind)
	}
}

func TestValidation(t *testing.T) {
	f := newFixture(t, domain.TopicConfig{HistorySize: 10, QueueSize: 10}, "orders")
	w := brokertest.NewWaker()
	tests := []struct {
		name string
		call func(ctx context.Context) error
		want string
	}{
		{"subscribe without client_id", func(ctx context.Context) error {
			_, err := f.svc.Subscribe(ctx, service.SubscribeRequest{Topic: "orders", Owner: w, LastN: 1})
			return err
		}, "client_id is required"},
		// Validation comes before the topic lookup: a bad request is a bad request.
		{"subscribe without client_id to a missing topic", func(ctx context.Context) error {
			_, err := f.svc.Subscribe(ctx, service.SubscribeRequest{Topic: "missing", Owner: w})
			return err
		}, "client_id is required"},
		{"subscribe with negative last_n", func(ctx context.Context) error {
			_, err := f.svc.Subscribe(ctx, service.SubscribeRequest{Topic: "orders", ClientID: "c1", Owner: w, LastN: -1})
			return err
		}, "last_n must be a non-negative integer"},
		{"unsubscribe without client_id", func(ctx context.Context) error {
			return f.svc.Unsubscribe(ctx, service.UnsubscribeRequest{Topic: "orders"})
		}, "client_id is required"},
		{"publish with the nil UUID", func(ctx context.Context) error {
			_, err := f.svc.Publish(ctx, service.PublishRequest{Topic: "orders", Message: domain.Message{Payload: []byte(`1`)}})
			return err
		}, "message.id must be a valid UUID"},
		{"publish with the nil UUID to a missing topic", func(ctx context.Context) error {
			_, err := f.svc.Publish(ctx, service.PublishRequest{Topic: "missing", Message: domain.Message{}})
			return err
		}, "message.id must be a valid UUID"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wantErr(t, tt.call(t.Context()), domain.KindInvalid, domain.ErrInvalid, tt.want)
		})
	}
	// Nothing reached the broker or the observer.
	pub, rep := f.obs.calls()
	if len(pub) != 0 || len(rep) != 0 {
		t.Fatalf("rejected requests were observed: %d published, %d replayed", len(pub), len(rep))
	}
	stats, _ := f.svc.Stats(t.Context())
	if want := []domain.TopicStats{{Name: "orders"}}; !slices.Equal(stats, want) {
		t.Fatalf("Stats after rejected requests = %+v, want %+v", stats, want)
	}
	if w.Wakes() != 0 {
		t.Fatalf("rejected requests woke a subscriber")
	}
}

// Errors of the broker reach the caller unchanged: their kind picks the status code.
func TestBrokerErrorsPassThrough(t *testing.T) {
	f := newFixture(t, domain.TopicConfig{HistorySize: 10, QueueSize: 10}, "orders")
	tests := []struct {
		name     string
		call     func(ctx context.Context) error
		kind     domain.Kind
		sentinel error
		want     string
	}{
		{"create an existing topic", func(ctx context.Context) error { return f.svc.CreateTopic(ctx, "orders") },
			domain.KindExists, domain.ErrExists, `topic "orders" already exists`},
		{"delete a missing topic", func(ctx context.Context) error { return f.svc.DeleteTopic(ctx, "missing") },
			domain.KindNotFound, domain.ErrNotFound, `topic "missing" does not exist`},
		{"subscribe to a missing topic", func(ctx context.Context) error {
			_, err := f.svc.Subscribe(ctx, service.SubscribeRequest{Topic: "missing", ClientID: "c1", Owner: brokertest.NewWaker(), LastN: 3})
			return err
		}, domain.KindNotFound, domain.ErrNotFound, `topic "missing" does not exist`},
		{"unsubscribe from a missing topic", func(ctx context.Context) error {
			return f.svc.Unsubscribe(ctx, service.UnsubscribeRequest{Topic: "missing", ClientID: "c1"})
		}, domain.KindNotFound, domain.ErrNotFound, `topic "missing" does not exist`},
		{"publish to a missing topic", func(ctx context.Context) error {
			ev, err := f.svc.Publish(ctx, service.PublishRequest{Topic: "missing", Message: msg()})
			if ev != nil {
				return fmt.Errorf("failed publish returned event %+v", ev)
			}
			return err
		}, domain.KindNotFound, domain.ErrNotFound, `topic "missing" does not exist`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			wantErr(t, tt.call(t.Context()), tt.kind, tt.sentinel, tt.want)
		})
	}
	// A failed subscribe replayed nothing and a failed publish was accepted by nobody.
	if pub, rep := f.obs.calls(); len(pub) != 0 || len(rep) != 0 {
		t.Fatalf("failed operations were observed: %d published, %d replayed", len(pub), len(rep))
	}
}

func TestBeginDrain(t *testing.T) {
	f := newFixture(t, domain.TopicConfig{HistorySize: 10, QueueSize: 10}, "orders")
	w := brokertest.NewWaker()
	sub := f.subscribe(t, "orders", "c1", w, 0).Sub
	if err := f.svc.Ready(t.Context()); err != nil {
		t.Fatalf("a new service is not ready: %v", err)
	}
	f.svc.BeginDrain()
	if f.svc.Ready(t.Context()) == nil {
		t.Fatal("Ready() after BeginDrain")
	}

	refused := []struct {
		name string
		call func(ctx context.Context) error
	}{
		{"create", func(ctx context.Context) error { return f.svc.CreateTopic(ctx, "new") }},
		{"delete", func(ctx context.Context) error { return f.svc.DeleteTopic(ctx, "orders") }},
		{"subscribe", func(ctx context.Context) error {
			_, err := f.svc.Subscribe(ctx, service.SubscribeRequest{Topic: "orders", ClientID: "c2", Owner: w, LastN: 1})
			return err
		}},
		{"unsubscribe", func(ctx context.Context) error {
			return f.svc.Unsubscribe(ctx, service.UnsubscribeRequest{Topic: "orders", ClientID: "c1"})
		}},
		{"publish", func(ctx context.Context) error {
			_, err := f.svc.Publish(ctx, service.PublishRequest{Topic: "orders", Message: msg()})
			return err
		}},
	}
	for _, tt := range refused {
		t.Run(tt.name+" is refused", func(t *testing.T) {
			wantErr(t, tt.call(t.Context()), domain.KindUnavailable, domain.ErrUnavailable, "server is shutting down")
		})
	}

	// Reads still answer, and show that no refused operation changed anything.
	want := []domain.TopicStats{{Name: "orders", Subscribers: 1}}
	reads := []struct {
		name string
		call func(ctx context.Context) ([]domain.TopicStats, error)
	}{
		{"list", f.svc.ListTopics},
		{"stats", f.svc.Stats},
	}
	for _, tt := range reads {
		t.Run(tt.name+" still works", func(t *testing.T) {
			got, err := tt.call(t.Context())
			if err != nil || !slices.Equal(got, want) {
				t.Fatalf("got %+v, %v; want %+v", got, err, want)
			}
		})
	}
	t.Run("health still works", func(t *testing.T) {
		h, err := f.svc.Health(t.Context())
		if err != nil || h.Topics != 1 || h.Subscriptions != 1 {
			t.Fatalf("Health() = %+v, %v; want 1 topic, 1 subscription", h, err)
		}
	})
	if pub, rep := f.obs.calls(); len(pub) != 0 || len(rep) != 0 {
		t.Fatalf("refused operations were observed: %d published, %d replayed", len(pub), len(rep))
	}
	// Closing connections still release their subscriptions during the drain.
	t.Run("detach still works", func(t *testing.T) {
		f.svc.Detach([]*domain.Subscription{sub})
		if h, _ := f.svc.Health(t.Context()); h.Subscriptions != 0 {
			t.Fatalf("after Detach, Health() = %+v, want no subscriptions", h)
		}
	})
	f.svc.BeginDrain() // a second signal changes nothing
	if f.svc.Ready(t.Context()) == nil {
		t.Fatal("Ready() after a second BeginDrain")
	}
}

func TestPublishIsObserved(t *testing.T) {
	f := newFixture(t, domain.TopicConfig{HistorySize: 10, QueueSize: 10}, "orders", "other")
	s1 := f.subscribe(t, "orders", "c1", brokertest.NewWaker(), 0).Sub
	f.subscribe(t, "orders", "c2", brokertest.NewWaker(), 0)
	f.subscribe(t, "other", "c3", brokertest.NewWaker(), 0)
	s1.Release()

	ctx := context.WithValue(t.Context(), ctxKey{}, "publish-ctx")
	m := msg()
	ev, err := f.svc.Publish(ctx, service.PublishRequest{Topic: "orders", Message: m})
	if err != nil {
		t.Fatal(err)
	}
	if ev.Seq != 1 || ev.Topic != "orders" || ev.Message.ID != m.ID {
		t.Fatalf("Publish returned %+v, want seq 1 of orders carrying the message", ev)
	}
	pub, rep := f.obs.calls()
	if len(pub) != 1 || len(rep) != 0 {
		t.Fatalf("observer got %d published, %d replayed; want 1, 0", len(pub), len(rep))
	}
	c := pub[0]
	if c.ctx.Value(ctxKey{}) != "publish-ctx" {
		t.Fatal("Published did not get the publish operation's context")
	}
	if c.ev != ev {
		t.Fatalf("Published got event %p, Publish returned %p: want the same event", c.ev, ev)
	}
	if c.st.Subscribers != 2 || c.st.Enqueued != 2 || c.st.MaxDepth != 1 || c.st.Start.IsZero() || c.st.End.Before(c.st.Start) {
		t.Fatalf("Published stats %+v, want 2 subscribers enqueued at depth 1 with ordered timings", c.st)
	}
	// "Published" means delivered to the queues already.
	if d := brokertest.DrainAll(s1); !slices.Equal(d.Seqs(), []uint64{1}) {
		t.Fatalf("c1 drained %v after the publish returned, want [1]", d.Seqs())
	}
}

func TestSubscribeReportsReplay(t *testing.T) {
	f := newFixture(t, domain.TopicConfig{HistorySize: 5, QueueSize: 10}, "orders", "empty")
	f.publish(t, "orders", 3)
	tests := []struct {
		name     string
		topic    domain.TopicName
		lastN    int
		observed bool // Replayed is called only when the client asked for history
		want     int
	}{
		{"no last_n, no report", "orders", 0, false, 0},
		{"last_n within the history", "orders", 2, true, 2},
		{"last_n beyond the history reports what was queued", "orders", 10, true, 3},
		{"last_n on an empty topic reports zero", "empty", 4, true, 0},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, before := f.obs.calls()
			ctx := context.WithValue(t.Context(), ctxKey{}, tt.name)
			from := f.clock.Now()
			res, err := f.svc.Subscribe(ctx, service.SubscribeRequest{Topic: tt.topic, ClientID: fmt.Sprint("c", i), LastN: tt.lastN, Owner: brokertest.NewWaker()})
			if err != nil {
				t.Fatal(err)
			}
			to := f.clock.Now()
			if res.Replayed != tt.want {
				t.Fatalf("Replayed = %d, want %d", res.Replayed, tt.want)
			}
			_, after := f.obs.calls()
			if got := len(after) - len(before); got != map[bool]int{false: 0, true: 1}[tt.observed] {
				t.Fatalf("Replayed reported %d times, want observed=%v", got, tt.observed)
			}
			if !tt.observed {
				return
			}
			c := after[len(after)-1]
			if c.ctx.Value(ctxKey{}) != tt.name || c.topic != tt.topic || c.n != tt.want {
				t.Fatalf("Replayed(%v, %q, %d), want the subscribe's context, %q, %d", c.ctx.Value(ctxKey{}), c.topic, c.n, tt.topic, tt.want)
			}
			// The timings come from the service's Clock, taken around the broker call.
			if !c.start.After(from) || !c.end.After(c.start) || c.end.After(to) {
				t.Fatalf("replay timings %v..%v, want within the fake clock's %v..%v", c.start, c.end, from, to)
			}
		})
	}
}

func TestDetachReturnsUndelivered(t *testing.T) {
	f := newFixture(t, domain.TopicConfig{HistorySize: 10, QueueSize: 10}, "orders", "doomed")
	f.publish(t, "orders", 3)
	w := brokertest.NewWaker()
	released := f.subscribe(t, "orders", "released", w, 0).Sub
	released.Release()
	held := f.subscribe(t, "orders", "held", w, 3).Sub // replay of 3 waiting for its ack
	drained := f.subscribe(t, "orders", "drained", w, 0).Sub
	drained.Release()
	replaced := f.subscribe(t, "orders", "moved", w, 0).Sub
	replaced.Release()
	f.publish(t, "orders", 2) // 2 queued on each
	brokertest.DrainAll(drained)
	// The client moves to another connection: the old one still holds 2 events it will never write.
	successor := f.subscribe(t, "orders", "moved", brokertest.NewWaker(), 0).Sub
	deleted := f.subscribe(t, "doomed", "c", w, 0).Sub
	deleted.Release()
	f.publish(t, "doomed", 4)
	if err := f.svc.DeleteTopic(t.Context(), "doomed"); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name     string
		subs     []*domain.Subscription
		want     uint64
		wantSubs int // subscriptions left in the service afterwards
	}{
		{"nothing to detach", nil, 0, 4},
		{"queued events", []*domain.Subscription{released}, 2, 3},
		{"held replay and queued events", []*domain.Subscription{held}, 5, 2},
		{"a drained subscription lost nothing", []*domain.Subscription{drained}, 0, 1},
		// The successor keeps the client id: the replaced subscription's events are lost, the
		// successor stays.
		{"replaced subscription, successor kept", []*domain.Subscription{replaced}, 2, 1},
		{"ended by its topic's deletion, before the writer said so", []*domain.Subscription{deleted}, 4, 1},
		{"detaching again counts nothing twice", []*domain.Subscription{released, held, deleted}, 0, 1},
		{"several at once, the last one held with nothing queued", []*domain.Subscription{drained, successor}, 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := f.svc.Detach(tt.subs); got != tt.want {
				t.Fatalf("Detach returned %d lost, want %d", got, tt.want)
			}
			for _, s := range tt.subs {
				if r := s.Ended(); r == domain.Live {
					t.Fatalf("%s is still live after Detach", s.ClientID)
				}
			}
			if h, _ := f.svc.Health(t.Context()); h.Subscriptions != tt.wantSubs {
				t.Fatalf("%d subscriptions left, want %d", h.Subscriptions, tt.wantSubs)
			}
		})
	}
}

// Events the drop_oldest policy discarded were reported when they were dropped (Observer.Published,
// PublishStats.DroppedOldest): a connection closing before its writer told the client must not make
// them count a second time as lost.
func TestDetachDoesNotCountDropsAgain(t *testing.T) {
	f := newFixture(t, domain.TopicConfig{HistorySize: 10, QueueSize: 2, Policy: domain.DropOldest}, "orders")
	sub := f.subscribe(t, "orders", "slow", brokertest.NewWaker(), 0).Sub
	sub.Release()
	f.publish(t, "orders", 5) // 2 stay queued, 3 are dropped
	pub, _ := f.obs.calls()
	dropped := 0
	for _, c := range pub {
		dropped += c.st.DroppedOldest
	}
	if dropped != 3 {
		t.Fatalf("observer was told of %d drops, want 3", dropped)
	}
	if lost := f.svc.Detach([]*domain.Subscription{sub}); lost != 2 {
		t.Fatalf("Detach returned %d lost, want the 2 still queued (the 3 dropped were reported already)", lost)
	}
}

func TestHealth(t *testing.T) {
	f := newFixture(t, domain.TopicConfig{HistorySize: 10, QueueSize: 10})
	f.clock.step = 0 // from here uptime is exactly what the test advances (New read the clock already)
	want := func(t *testing.T, uptime time.Duration, topics, subs int) {
		t.Helper()
		h, err := f.svc.Health(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if h != (service.Health{Uptime: uptime, Topics: topics, Subscriptions: subs}) {
			t.Fatalf("Health() = %+v, want uptime %v, %d topics, %d subscriptions", h, uptime, topics, subs)
		}
	}
	steps := []struct {
		name         string
		do           func(t *testing.T)
		uptime       time.Duration
		topics, subs int
	}{
		{"empty", func(*testing.T) {}, 0, 0, 0},
		{"topics and subscriptions", func(t *testing.T) {
			f.clock.Advance(90 * time.Second)
			for _, name := range []domain.TopicName{"a", "b"} {
				if err := f.svc.CreateTopic(t.Context(), name); err != nil {
					t.Fatal(err)
				}
			}
			f.subscribe(t, "a", "c1", brokertest.NewWaker(), 0)
			f.subscribe(t, "a", "c2", brokertest.NewWaker(), 0)
			f.subscribe(t, "b", "c1", brokertest.NewWaker(), 0)
		}, 90 * time.Second, 2, 3},
		{"a deleted topic takes its subscriptions along", func(t *testing.T) {
			f.clock.Advance(time.Hour)
			if err := f.svc.DeleteTopic(t.Context(), "a"); err != nil {
				t.Fatal(err)
			}
		}, time.Hour + 90*time.Second, 1, 1},
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			s.do(t)
			want(t, s.uptime, s.topics, s.subs)
		})
	}
}

// With no Options the service runs on the wall clock and observes nothing, without failing.
func TestNewDefaults(t *testing.T) {
	before := time.Now()
	svc := service.New(memory.New(domain.TopicConfig{HistorySize: 1, QueueSize: 1}), service.Options{})
	if err := svc.CreateTopic(t.Context(), "orders"); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Subscribe(t.Context(), service.SubscribeRequest{Topic: "orders", ClientID: "c", LastN: 1, Owner: brokertest.NewWaker()}); err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Publish(t.Context(), service.PublishRequest{Topic: "orders", Message: msg()}); err != nil {
		t.Fatal(err)
	}
	h, err := svc.Health(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if h.Uptime < 0 || h.Uptime > time.Since(before) {
		t.Fatalf("uptime %v is not the wall clock's %v since New", h.Uptime, time.Since(before))
	}
}

// Concurrent publishers through the service: every accepted message is observed exactly once, and
// once BeginDrain has returned no publish is accepted, so the observer, the topic's counter and the
// publishers agree on the count.
func TestConcurrentPublishAndDrain(t *testing.T) {
	const publishers = 4
	f := newFixture(t, domain.TopicConfig{HistorySize: 10, QueueSize: 10}, "orders")

	var wg sync.WaitGroup
	accepted := make([]int, publishers)
	errs := make([]error, publishers)
	started := make(chan struct{}, publishers)
	for p := range publishers {
		wg.Go(func() {
			signalled := false
			signal := func() {
				if !signalled {
					signalled = true
					started <- struct{}{}
				}
			}
			defer signal() // a publisher that fails early must not leave the test waiting for it
			for i := 0; ; i++ {
				if i == 50 {
					signal() // this publisher is well under way
				}
				_, err := f.svc.Publish(t.Context(), service.PublishRequest{Topic: "orders", Message: msg()})
				if err != nil {
					if domain.KindOf(err) != domain.KindUnavailable {
						errs[p] = err
					}
					return
				}
				accepted[p]++
			}
		})
	}
	for range publishers {
		<-started
	}
	f.svc.BeginDrain()
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatalf("publish failed with %v, want only the drain's refusal", err)
		}
	}
	total := 0
	for _, n := range accepted {
		total += n
	}
	pub, _ := f.obs.calls()
	seen := make(map[uint64]bool, len(pub))
	for _, c := range pub {
		if seen[c.ev.Seq] {
			t.Fatalf("seq %d observed twice", c.ev.Seq)
		}
		seen[c.ev.Seq] = true
	}
	stats, _ := f.svc.Stats(t.Context())
	if len(pub) != total || stats[0].Messages != uint64(total) {
		t.Fatalf("publishers had %d accepted, observer saw %d, topic counted %d", total, len(pub), stats[0].Messages)
	}
	for s := uint64(1); s <= uint64(total); s++ {
		if !seen[s] {
			t.Fatalf("seq %d was accepted but never observed", s)
		}
	}
	if _, err := f.svc.Publish(t.Context(), service.PublishRequest{Topic: "orders", Message: msg()}); domain.KindOf(err) != domain.KindUnavailable {
		t.Fatalf("publish after BeginDrain returned %v, want UNAVAILABLE", err)
	}
}
