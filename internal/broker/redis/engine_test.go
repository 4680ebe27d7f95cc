package redis_test

import (
	"context"
	"encoding/binary"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/pubsubd/pubsub/internal/broker/brokertest"
	"github.com/pubsubd/pubsub/internal/broker/redis"
	"github.com/pubsubd/pubsub/internal/domain"
)

type redisNop = redis.NopObserver

func testConfig(history, queue int) domain.TopicConfig {
	return domain.TopicConfig{HistorySize: history, QueueSize: queue, Encoder: func(e *domain.Event) ([]byte, int) {
		return fmt.Appendf(nil, `{"topic":%q,"seq":%d}`, e.Topic, e.Seq), -1
	}}
}

func msg(n uint64) domain.Message {
	var id [16]byte
	id[0] = 1
	binary.BigEndian.PutUint64(id[8:], n)
	return domain.Message{ID: id, Payload: fmt.Appendf(nil, `{"n":%d}`, n)}
}

// subscribe subscribes clientID on e, releases the subscription and follows it.
func subscribe(t *testing.T, e *redis.Engine, topic domain.TopicName, clientID string, lastN int) (*follower, domain.SubscribeResult) {
	t.Helper()
	w := brokertest.NewWaker()
	res, err := e.Subscribe(t.Context(), topic, domain.SubscribeSpec{ClientID: clientID, Owner: w, LastN: lastN})
	if err != nil {
		t.Fatalf("subscribe %s: %v", clientID, err)
	}
	res.Sub.Release()
	after := res.Seq
	if res.Replayed > 0 {
		after = res.Seq - uint64(res.Replayed)
	}
	return follow(clientID, res.Sub, w, after), res
}

// publisher publishes to topic on e until stopped, and returns the last seq acknowledged.
func publisher(t *testing.T, e *redis.Engine, topic domain.TopicName, stop <-chan struct{}) <-chan uint64 {
	out := make(chan uint64, 1)
	go func() {
		var last uint64
		defer func() { out <- last }()
		for n := uint64(0); ; n++ {
			select {
			case <-stop:
				return
			default:
			}
			ev, _, err := e.Publish(context.Background(), topic, msg(n))
			if err != nil {
				t.Errorf("publish: %v", err)
				return
			}
			last = ev.Seq
		}
	}()
	return out
}

// The seam: subscribers join on one replica while publishers on two others keep publishing; each
// gets every event after its subscribe's seq exactly once, in order, with no gap.
func TestSeamWhilePublishing(t *testing.T) {
	p := newPrefix()
	cfg := testConfig(50, 100000)
	a, b, c := newEngine(t, cfg, options(p, "a")), newEngine(t, cfg, options(p, "b")), newEngine(t, cfg, options(p, "c"))
	if err := b.CreateTopic(t.Context(), "orders"); err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	p1, p2 := publisher(t, b, "orders", stop), publisher(t, c, "orders", stop)
	var fs []*follower
	for i := range 20 {
		f, _ := subscribe(t, a, "orders", fmt.Sprint("s", i), i%3*5) // last_n 0, 5, 10
		fs = append(fs, f)
	}
	close(stop)
	top := max(<-p1, <-p2)
	for _, f := range fs {
		f.waitFor(t, top)
		seqs, gaps := f.check(t)
		if len(gaps) > 0 {
			t.Errorf("%s: gaps %v announced with nothing lost", f.name, gaps)
		}
		if len(seqs) == 0 || seqs[len(seqs)-1] != top {
			t.Errorf("%s: ends at %v, want %d", f.name, seqs[max(len(seqs)-1, 0):], top)
		}
	}
}

// A worker whose inbox overflows (by count or by bytes) repairs from the history: the subscriber
// sees every event, and the inbox's bytes all come back.
func TestOverflowRepairs(t *testing.T) {
	for _, tt := range []struct {
		name string
		tune func(*redis.Options)
	}{
		{"by count", func(o *redis.Options) { o.InboxSize = 1 }},
		{"by bytes", func(o *redis.Options) { o.InboxBytes = 200 }},
	} {
		t.Run(tt.name, func(t *testing.T) {
			p := newPrefix()
			obs := &countingObserver{}
			oa := options(p, "a")
			oa.Observer = obs
			tt.tune(&oa)
			a, b := newEngine(t, testConfig(100000, 100000), oa), newEngine(t, testConfig(100000, 100000), options(p, "b"))
			if err := b.CreateTopic(t.Context(), "burst"); err != nil {
				t.Fatal(err)
			}
			f, _ := subscribe(t, a, "burst", "s", 0)
			var wg sync.WaitGroup
			const perPub = 300
			for range 4 {
				wg.Go(func() {
					for n := range perPub {
						if _, _, err := b.Publish(context.Background(), "burst", msg(uint64(n))); err != nil {
							t.Error(err)
							return
						}
					}
				})
			}
			wg.Wait()
			f.waitFor(t, 4*perPub)
			seqs, gaps := f.check(t)
			if len(gaps) > 0 || len(seqs) != 4*perPub {
				t.Fatalf("got %d events and gaps %v, want all %d repaired", len(seqs), gaps, 4*perPub)
			}
			// Messages already repaired may still wait in the inbox a moment: they drain.
			for deadline := time.Now().Add(10 * time.Second); a.InboxUsed() != 0; waitTick() {
				if time.Now().After(deadline) {
					t.Fatalf("inbox holds %d bytes with every event delivered", a.InboxUsed())
				}
			}
			t.Logf("overflows %d, repairs ok %d", obs.overflows.Load(), obs.repairsOK.Load())
		})
	}
}

// When the history no longer holds what a worker missed, the subscriber is told: a gap notice
// right where the events are missing, never a silent skip.
func TestUnrepairableAnnouncesGap(t *testing.T) {
	p := newPrefix()
	obs := &countingObserver{}
	oa := options(p, "a")
	oa.InboxSize, oa.Observer = 1, obs
	a, b := newEngine(t, testConfig(2, 100000), oa), newEngine(t, testConfig(2, 100000), options(p, "b"))
	if err := b.CreateTopic(t.Context(), "lossy"); err != nil {
		t.Fatal(err)
	}
	f, _ := subscribe(t, a, "lossy", "s", 0)
	var wg sync.WaitGroup
	const perPub = 300
	for range 4 {
		wg.Go(func() {
			for n := range perPub {
				if _, _, err := b.Publish(context.Background(), "lossy", msg(uint64(n))); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	f.waitFor(t, 4*perPub)
	seqs, gaps := f.check(t) // the checker fails the test on any unannounced hole
	t.Logf("%d events, %d gaps announced (observer: %d), %d overflows", len(seqs), len(gaps), obs.gaps.Load(), obs.overflows.Load())
}

// A message the live rule cannot explain (a seq already delivered, outside a seam or a repair)
// is counted and skipped; the subscriber's stream is untouched.
func TestAnomalyCounted(t *testing.T) {
	p := newPrefix()
	obs := &countingObserver{}
	oa := options(p, "a")
	oa.Observer = obs
	a := newEngine(t, testConfig(10, 100), oa)
	if err := a.CreateTopic(t.Context(), "t"); err != nil {
		t.Fatal(err)
	}
	f, res := subscribe(t, a, "t", "s", 0)
	for n := range 3 {
		if _, _, err := a.Publish(t.Context(), "t", msg(uint64(n))); err != nil {
			t.Fatal(err)
		}
	}
	f.waitFor(t, 3)
	a.Offer("t", "m"+res.Epoch+":2:junk")
	if _, _, err := a.Publish(t.Context(), "t", msg(4)); err != nil { // after the anomaly, in order
		t.Fatal(err)
	}
	f.waitFor(t, 4)
	if seqs, _ := f.check(t); len(seqs) != 4 {
		t.Fatalf("seqs %v, want 1..4", seqs)
	}
	if obs.anomalies.Load() != 1 {
		t.Fatalf("anomalies = %d, want 1", obs.anomalies.Load())
	}
}

// Delete on one replica: a subscriber on another gets every event, then topic_deleted.
func TestDeleteAcrossReplicas(t *testing.T) {
	p := newPrefix()
	a, b := newEngine(t, testConfig(10, 1000), options(p, "a")), newEngine(t, testConfig(10, 1000), options(p, "b"))
	if err := b.CreateTopic(t.Context(), "t"); err != nil {
		t.Fatal(err)
	}
	f, _ := subscribe(t, a, "t", "s", 0)
	for n := range 50 {
		if _, _, err := b.Publish(t.Context(), "t", msg(uint64(n))); err != nil {
			t.Fatal(err)
		}
	}
	if err := b.DeleteTopic(t.Context(), "t"); err != nil {
		t.Fatal(err)
	}
	end, lost := f.waitEndLost(t)
	if end != domain.TopicDeleted {
		t.Fatalf("end %v, want TopicDeleted", end)
	}
	// Every event reached the queue before the end; those the follower had not drained yet are
	// discarded by it and counted, as with the memory engine.
	if seqs, _ := f.check(t); uint64(len(seqs))+lost != 50 {
		t.Fatalf("got %d events and %d lost before topic_deleted, want 50 in all", len(seqs), lost)
	}
	if _, _, err := a.Publish(t.Context(), "t", msg(1)); domain.KindOf(err) != domain.KindNotFound {
		t.Fatalf("publish after delete: %v, want KindNotFound", err)
	}
}

// A client id taken over from another replica: the old subscription ends with Replaced after the
// events it had, the new one starts right after them; together, every event once.
func TestTakeoverAcrossReplicas(t *testing.T) {
	p := newPrefix()
	cfg := testConfig(1000, 100000)
	a, b, c := newEngine(t, cfg, options(p, "a")), newEngine(t, cfg, options(p, "b")), newEngine(t, cfg, options(p, "c"))
	if err := b.CreateTopic(t.Context(), "t"); err != nil {
		t.Fatal(err)
	}
	old, _ := subscribe(t, a, "t", "client", 0)
	stop := make(chan struct{})
	pub := publisher(t, b, "t", stop)
	old.waitFor(t, 20)
	w := brokertest.NewWaker()
	res, err := c.Subscribe(t.Context(), "t", domain.SubscribeSpec{ClientID: "client", Owner: w})
	if err != nil {
		t.Fatal(err)
	}
	if end := old.waitEnd(t); end != domain.Replaced {
		t.Fatalf("old subscription ended with %v, want Replaced", end)
	}
	s1, _ := old.check(t)
	last := s1[len(s1)-1]
	res.Sub.Release()
	neu := follow("new", res.Sub, w, last) // the checker then requires last+1 first
	close(stop)
	top := <-pub
	neu.waitFor(t, top)
	if s2, gaps := neu.check(t); len(gaps) > 0 || len(s2) == 0 || s2[0] != last+1 {
		t.Fatalf("old ends at %d, new starts at %v with gaps %v: want the new one right after the old", last, s2[:min(1, len(s2))], gaps)
	}
}

// Other replicas see this replica's subscribers at its next heartbeat.
func TestStatsAcrossReplicas(t *testing.T) {
	p := newPrefix()
	a, b := newEngine(t, testConfig(10, 100), options(p, "a")), newEngine(t, testConfig(10, 100), options(p, "b"))
	if err := a.CreateTopic(t.Context(), "t"); err != nil {
		t.Fatal(err)
	}
	f, _ := subscribe(t, a, "t", "s", 0)
	defer f.check(t)
	deadline := time.Now().Add(10 * time.Second)
	for {
		_, subs, err := b.Counts(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if subs == 1 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("replica b counts %d subscriptions, want a's 1", subs)
		}
		waitTick()
	}
	if b.ReplicaCount() < 2 {
		t.Fatalf("replicas seen = %d, want 2", b.ReplicaCount())
	}
}

// Resume over Redis, by the memory engine's rule: the same epoch and every event after since_seq
// still in the history -> exactly those events and recovered; anything else -> no replay at all.
func TestResume(t *testing.T) {
	p := newPrefix()
	cfg := testConfig(5, 100)
	a, b := newEngine(t, cfg, options(p, "a")), newEngine(t, cfg, options(p, "b"))
	if err := b.CreateTopic(t.Context(), "t"); err != nil {
		t.Fatal(err)
	}
	for n := range 8 {
		if _, _, err := b.Publish(t.Context(), "t", msg(uint64(n))); err != nil {
			t.Fatal(err)
		}
	}
	probe, res := subscribe(t, a, "t", "probe", 0)
	probe.check(t)
	epoch := res.Epoch
	if len(epoch) < 16 || res.Seq != 8 {
		t.Fatalf("subscribe result epoch %q seq %d, want a random epoch and seq 8", epoch, res.Seq)
	}
	tests := []struct {
		name      string
		since     uint64
		epoch     string
		recovered bool
		replay    int
	}{
		{"missing events still in history", 5, epoch, true, 3},
		{"nothing missing", 8, epoch, true, 0},
		{"trimmed from history", 2, epoch, false, 0},
		{"another epoch", 5, "0123456789abcdef", false, 0},
		{"ahead of the topic", 9, epoch, false, 0},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := brokertest.NewWaker()
			res, err := b.Subscribe(t.Context(), "t", domain.SubscribeSpec{ClientID: fmt.Sprint("r", i), Owner: w,
				Resume: true, SinceSeq: tt.since, Epoch: tt.epoch})
			if err != nil {
				t.Fatal(err)
			}
			res.Sub.Release()
			d := brokertest.DrainAll(res.Sub)
			if !res.Resumed || res.Recovered != tt.recovered || d.Replayed != tt.replay || res.Epoch != epoch || res.Seq != 8 {
				t.Fatalf("result %+v, replayed %d (%v); want recovered %v with %d", res, d.Replayed, d.Seqs(), tt.recovered, tt.replay)
			}
			if tt.replay > 0 && d.Seqs()[0] != tt.since+1 {
				t.Fatalf("replay %v, want from %d", d.Seqs(), tt.since+1)
			}
		})
	}
}

// A client id unsubscribed through another replica (same principal): the replica that holds the
// subscription ends it with UnsubscribedElsewhere, as a second connection on one replica would.
func TestUnsubscribeAcrossReplicas(t *testing.T) {
	p := newPrefix()
	a, b := newEngine(t, testConfig(10, 100), options(p, "a")), newEngine(t, testConfig(10, 100), options(p, "b"))
	if err := a.CreateTopic(t.Context(), "t"); err != nil {
		t.Fatal(err)
	}
	f, _ := subscribe(t, a, "t", "client\nwith a newline", 0)
	if err := b.Unsubscribe(t.Context(), "t", "client\nwith a newline", nil); err != nil {
		t.Fatal(err)
	}
	if end := f.waitEnd(t); end != domain.UnsubscribedElsewhere {
		t.Fatalf("end %v, want UnsubscribedElsewhere", end)
	}
	f.check(t)
	if err := b.Unsubscribe(t.Context(), "t", "client", nil); err != nil {
		t.Fatalf("unsubscribing twice: %v", err)
	}
	if err := b.Unsubscribe(t.Context(), "missing", "client", nil); domain.KindOf(err) != domain.KindNotFound {
		t.Fatalf("unsubscribe on a missing topic: %v", err)
	}
}

// A connection that goes away leaves no owner record behind, so a topic does not keep one per
// client id that ever subscribed; a record of a replica that is gone costs a takeover nothing.
func TestOwnerRecordsForgotten(t *testing.T) {
	p := newPrefix()
	obs := &countingObserver{}
	o := options(p, "a")
	o.Observer = obs
	a := newEngine(t, testConfig(10, 100), o)
	if err := a.CreateTopic(t.Context(), "t"); err != nil {
		t.Fatal(err)
	}
	for i := range 20 {
		w := brokertest.NewWaker()
		res, err := a.Subscribe(t.Context(), "t", domain.SubscribeSpec{ClientID: fmt.Sprint("c", i), Owner: w})
		if err != nil {
			t.Fatal(err)
		}
		a.Detach(res.Sub)
		res.Sub.Abandon()
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		n, err := srv.Do("HLEN", p+"{t}:o")
		if err != nil {
			t.Fatal(err)
		}
		if n == "0" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s owner records left after every connection went", n)
		}
		waitTick()
	}
	// A record naming a replica with no heartbeat: the subscribe does not wait for it.
	if _, err := srv.Do("HSET", p+"{t}:o", "ghost", "gone-replica\n"); err != nil {
		t.Fatal(err)
	}
	f, _ := subscribe(t, a, "t", "ghost", 0)
	f.check(t)
	if n := obs.takeovers.Load(); n != 0 {
		t.Fatalf("%d takeover messages sent to a replica that is gone", n)
	}
}

// Replicas lists this replica first with its live counts, then every other replica with a fresh
// heartbeat and the counts it wrote there; a closed replica leaves the list.
func TestReplicasListsTheFreshOnes(t *testing.T) {
	p := newPrefix()
	a, b := newEngine(t, testConfig(10, 100), options(p, "a")), newEngine(t, testConfig(10, 100), options(p, "b"))
	c := newEngine(t, testConfig(10, 100), options(p, "c"))
	for _, name := range []domain.TopicName{"t", "u"} {
		if err := a.CreateTopic(t.Context(), name); err != nil {
			t.Fatal(err)
		}
	}
	f1, _ := subscribe(t, a, "t", "s1", 0)
	defer f1.check(t)
	f2, _ := subscribe(t, a, "u", "s2", 0)
	defer f2.check(t)
	f3, _ := subscribe(t, a, "u", "s3", 0)
	defer f3.check(t)

	want := []domain.ReplicaStats{{ID: "b", Self: true}, {ID: "a", Topics: 2, Subscribers: 3}, {ID: "c"}}
	deadline := time.Now().Add(10 * time.Second)
	for {
		got, err := b.Replicas(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		same := len(got) == len(want)
		for i := 0; same && i < len(got); i++ {
			g := got[i]
			fresh := g.Self == g.Heartbeat.IsZero() && (g.Self || time.Since(g.Heartbeat) < time.Minute)
			g.Heartbeat = time.Time{}
			same = g == want[i] && fresh
		}
		if same {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("b's replicas %+v, want %+v (self without a heartbeat, the others with a recent one)", got, want)
		}
		waitTick()
	}
	self, err := a.Replicas(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if self[0] != (domain.ReplicaStats{ID: "a", Self: true, Topics: 2, Subscribers: 3}) {
		t.Errorf("a's own entry %+v, want its live counts first", self[0])
	}
	_ = c.Close()
	for {
		got, err := b.Replicas(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		if len(got) == 2 && got[1].ID == "a" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after c closed, b's replicas %+v, want b and a", got)
		}
		waitTick()
	}
}
