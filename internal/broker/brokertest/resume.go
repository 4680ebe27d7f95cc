package brokertest

import (
	"encoding/hex"
	"testing"

	"github.com/pubsubd/pubsub/internal/domain"
	"github.com/pubsubd/pubsub/internal/service"
)

// resume subscribes clientID with since_seq and epoch, failing the test on an error.
func resume(t *testing.T, b service.Broker, topic domain.TopicName, clientID string, owner domain.Waker, sinceSeq uint64, epoch string) domain.SubscribeResult {
	t.Helper()
	res, err := b.Subscribe(t.Context(), topic, domain.SubscribeSpec{ClientID: clientID, Owner: owner,
		Resume: true, SinceSeq: sinceSeq, Epoch: epoch})
	if err != nil {
		t.Fatalf("Subscribe(%q, %q, since_seq %d, epoch %q): %v", topic, clientID, sinceSeq, epoch, err)
	}
	if res.Sub == nil {
		t.Fatalf("Subscribe(%q, %q) returned no subscription", topic, clientID)
	}
	if !res.Resumed {
		t.Fatalf("a subscribe with since_seq returned Resumed false: %+v", res)
	}
	return res
}

// wantEpoch fails unless epoch is the hex of at least 64 bits: random enough that a topic created
// again, on any replica, never gets one a client still holds.
func wantEpoch(t *testing.T, epoch string) {
	t.Helper()
	if raw, err := hex.DecodeString(epoch); err != nil || len(raw) < 8 {
		t.Fatalf("epoch %q is not the hex of at least 64 bits", epoch)
	}
}

// testAckEpochSeq: every subscribe reports the topic's epoch, the same for every subscriber of one
// topic's life, and its latest seq; a plain subscribe is not a resume.
func testAckEpochSeq(t *testing.T, newBroker Factory) {
	b := newBroker(t, config(5, 20, domain.DropOldest))
	mustCreate(t, b, "orders", "empty")
	empty := mustSubscribe(t, b, "empty", "c1", NewWaker(), 0)
	if empty.Seq != 0 || empty.Resumed || empty.Recovered {
		t.Fatalf("subscribe to an empty topic: %+v, want seq 0, not resumed", empty)
	}
	wantEpoch(t, empty.Epoch)

	publishN(t, b, "orders", 8)
	first := mustSubscribe(t, b, "orders", "c1", NewWaker(), 3)
	if first.Seq != 8 || first.Resumed || first.Recovered {
		t.Fatalf("subscribe with last_n: %+v, want seq 8, not resumed", first)
	}
	wantEpoch(t, first.Epoch)
	mustPublish(t, b, "orders", 9)
	second := mustSubscribe(t, b, "orders", "c2", NewWaker(), 0)
	if second.Seq != 9 || second.Epoch != first.Epoch {
		t.Fatalf("second subscribe: seq %d epoch %q, want 9 and the first's epoch %q", second.Seq, second.Epoch, first.Epoch)
	}
	if empty.Epoch == first.Epoch {
		t.Fatalf("two topics share the epoch %q", first.Epoch)
	}
	first.Sub.Release()
	second.Sub.Release()
}

// testResume: with since_seq and the topic's epoch, exactly the missing events, then live; in
// every other case, recovered false and nothing at all, never a partial catch-up.
func testResume(t *testing.T, newBroker Factory) {
	const history = 5
	b := newBroker(t, config(history, 20, domain.DropOldest))
	mustCreate(t, b, "orders")
	publishN(t, b, "orders", 8) // the history keeps seqs 4..8
	epoch := mustSubscribe(t, b, "orders", "probe", NewWaker(), 0).Epoch

	tests := []struct {
		name      string
		sinceSeq  uint64
		epoch     string
		recovered bool
		want      []uint64
	}{
		{"one missed", 7, epoch, true, []uint64{8}},
		{"exactly the history", 3, epoch, true, seqRange(4, 8)},
		{"since_seq equal to seq is recovered with nothing to replay", 8, epoch, true, []uint64{}},
		{"one more than the history holds", 2, epoch, false, []uint64{}},
		{"since_seq 0 after the history was trimmed", 0, epoch, false, []uint64{}},
		{"since_seq ahead of seq", 9, epoch, false, []uint64{}},
		{"far ahead", 1 << 62, epoch, false, []uint64{}},
		{"another epoch", 7, "00000000000000ff", false, []uint64{}},
	}
	subs := make([]*domain.Subscription, len(tests))
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := resume(t, b, "orders", "r"+tt.name, NewWaker(), tt.sinceSeq, tt.epoch)
			if res.Recovered != tt.recovered || res.Replayed != len(tt.want) || res.Seq != 8 || res.Epoch != epoch {
				t.Fatalf("result %+v, want recovered %v, %d replayed, seq 8, epoch %q", res, tt.recovered, len(tt.want), epoch)
			}
			res.Sub.Release()
			wantDrained(t, "resume", DrainAll(res.Sub), Drained{Replayed: len(tt.want)}, tt.want)
			subs[i] = res.Sub
		})
	}
	// Recovered or not, the subscription is live from the seq the ack named: each later event once.
	mustPublish(t, b, "orders", 9)
	for i, tt := range tests {
		if subs[i] != nil {
			wantDrained(t, tt.name+" then live", DrainAll(subs[i]), Drained{}, []uint64{9})
		}
	}

	t.Run("since_seq wins over last_n", func(t *testing.T) {
		res, err := b.Subscribe(t.Context(), "orders", domain.SubscribeSpec{ClientID: "both", Owner: NewWaker(),
			LastN: 5, Resume: true, SinceSeq: 8, Epoch: epoch})
		if err != nil {
			t.Fatal(err)
		}
		if !res.Recovered || res.Replayed != 1 {
			t.Fatalf("since_seq 8 with last_n 5 at seq 9: %+v, want recovered with 1 replayed", res)
		}
		res.Sub.Release()
		wantDrained(t, "since_seq over last_n", DrainAll(res.Sub), Drained{Replayed: 1}, []uint64{9})
	})

	t.Run("events published before the release follow the replay", func(t *testing.T) {
		res := resume(t, b, "orders", "seam", NewWaker(), 6, epoch) // missing 7..9
		publishN(t, b, "orders", 2)                                 // 10, 11 while the ack is unwritten
		if !res.Recovered || res.Seq != 9 {
			t.Fatalf("result %+v, want recovered at seq 9", res)
		}
		res.Sub.Release()
		d := DrainAll(res.Sub)
		wantDrained(t, "seam", d, Drained{Replayed: 3}, seqRange(7, 11))
	})
}

// testResumeBound: RecoveryMax bounds one recovery below the history: a resume that misses more
// is not recovered, and replays nothing.
func testResumeBound(t *testing.T, newBroker Factory) {
	cfg := config(10, 20, domain.DropOldest)
	cfg.RecoveryMax = 2
	b := newBroker(t, cfg)
	mustCreate(t, b, "orders")
	publishN(t, b, "orders", 8)
	epoch := mustSubscribe(t, b, "orders", "probe", NewWaker(), 0).Epoch

	within := resume(t, b, "orders", "within", NewWaker(), 6, epoch)
	if !within.Recovered || within.Replayed != 2 {
		t.Fatalf("missing 2 with RecoveryMax 2: %+v, want recovered with 2 replayed", within)
	}
	beyond := resume(t, b, "orders", "beyond", NewWaker(), 5, epoch)
	if beyond.Recovered || beyond.Replayed != 0 {
		t.Fatalf("missing 3 with RecoveryMax 2: %+v, want not recovered, nothing replayed", beyond)
	}
	// last_n is not a recovery: RecoveryMax does not bound it.
	if n := mustSubscribe(t, b, "orders", "lastn", NewWaker(), 5).Replayed; n != 5 {
		t.Fatalf("last_n 5 with RecoveryMax 2 replayed %d, want 5", n)
	}
}

// testResumeRearm: the same owner resuming a client id it holds re-arms it under the same rule.
func testResumeRearm(t *testing.T, newBroker Factory) {
	b := newBroker(t, config(10, 20, domain.DropOldest))
	mustCreate(t, b, "orders")
	w := NewWaker()
	first := mustSubscribe(t, b, "orders", "c1", w, 0)
	first.Sub.Release()
	publishN(t, b, "orders", 4) // 1..4 queued
	wantDrained(t, "before the re-arm", DrainAll(first.Sub), Drained{}, seqRange(1, 4))

	res := resume(t, b, "orders", "c1", w, 2, first.Epoch)
	if !res.Renewed || res.Sub != first.Sub || !res.Recovered || res.Replayed != 2 || res.Seq != 4 {
		t.Fatalf("resume by the same owner: %+v, want renewed, same subscription, recovered, 2 replayed at seq 4", res)
	}
	res.Sub.Release()
	wantDrained(t, "re-armed by resume", DrainAll(res.Sub), Drained{Replayed: 2}, []uint64{3, 4})

	res = resume(t, b, "orders", "c1", w, 4, "00000000000000ff")
	if !res.Renewed || res.Recovered || res.Replayed != 0 {
		t.Fatalf("resume by the same owner with another epoch: %+v, want renewed, not recovered, nothing replayed", res)
	}
	res.Sub.Release()
	mustPublish(t, b, "orders", 5)
	wantDrained(t, "re-armed, not recovered, live", DrainAll(res.Sub), Drained{}, []uint64{5})
}

// testResumeRecreated: a topic deleted and created again has another epoch, so a client of the
// old one is not recovered even where the seqs line up.
func testResumeRecreated(t *testing.T, newBroker Factory) {
	b := newBroker(t, config(10, 20, domain.DropOldest))
	mustCreate(t, b, "orders")
	publishN(t, b, "orders", 2)
	old := mustSubscribe(t, b, "orders", "c1", NewWaker(), 0)
	old.Sub.Release()
	if err := b.DeleteTopic(t.Context(), "orders"); err != nil {
		t.Fatal(err)
	}
	mustCreate(t, b, "orders")
	publishN(t, b, "orders", 3)
	res := resume(t, b, "orders", "c1", NewWaker(), 2, old.Epoch)
	if res.Epoch == old.Epoch {
		t.Fatalf("the recreated topic kept the epoch %q", old.Epoch)
	}
	wantEpoch(t, res.Epoch)
	if res.Recovered || res.Replayed != 0 || res.Seq != 3 {
		t.Fatalf("resume against the old epoch: %+v, want not recovered, nothing replayed, seq 3", res)
	}
	res.Sub.Release()
	wantDrained(t, "old epoch", DrainAll(res.Sub), Drained{}, []uint64{})
}
