package redis_test

import (
	"testing"
	"time"

	"github.com/pubsubd/pubsub/internal/domain"
	"github.com/pubsubd/pubsub/internal/service"
)

// entries returns n batch entries carrying msg(from), msg(from+1), ...
func entries(from uint64, n int) []service.BatchEntry {
	out := make([]service.BatchEntry, n)
	for i := range out {
		out[i].Msg = msg(from + uint64(i))
	}
	return out
}

// checkBatch checks that es were stored in order with consecutive seqs from first.
func checkBatch(t *testing.T, es []service.BatchEntry, topic domain.TopicName, first uint64) {
	t.Helper()
	for i, e := range es {
		if e.Err != nil || e.Event == nil {
			t.Fatalf("entry %d: %v", i, e.Err)
		}
		if e.Event.Seq != first+uint64(i) || e.Event.Topic != topic || e.Event.Message.ID != e.Msg.ID {
			t.Fatalf("entry %d: seq %d of %s id %v, want seq %d of %s id %v", i, e.Event.Seq, e.Event.Topic,
				e.Event.Message.ID, first+uint64(i), topic, e.Msg.ID)
		}
	}
}

// A batch is published in one round trip in its order: seqs follow the entries, and a subscriber
// on another replica gets every event once, in order.
func TestPublishBatchInOrder(t *testing.T) {
	p := newPrefix()
	cfg := testConfig(1000, 1000)
	a, b := newEngine(t, cfg, options(p, "a")), newEngine(t, cfg, options(p, "b"))
	if err := a.CreateTopic(t.Context(), "t"); err != nil {
		t.Fatal(err)
	}
	f, _ := subscribe(t, b, "t", "s", 0)
	first := entries(0, 40)
	a.PublishBatch(t.Context(), "t", first)
	checkBatch(t, first, "t", 1)
	if _, _, err := a.Publish(t.Context(), "t", msg(40)); err != nil {
		t.Fatal(err)
	}
	second := entries(41, 10)
	a.PublishBatch(t.Context(), "t", second)
	checkBatch(t, second, "t", 42)
	f.waitFor(t, 51)
	if seqs, gaps := f.check(t); len(seqs) != 51 || len(gaps) != 0 {
		t.Fatalf("the subscriber got %d events and gaps %v, want 51 and none", len(seqs), gaps)
	}
}

// Redis forgot the script (a restart, SCRIPT FLUSH): the batch sends it again and is stored once,
// in order.
func TestPublishBatchAfterScriptFlush(t *testing.T) {
	e := newEngine(t, testConfig(100, 100), options(newPrefix(), "a"))
	if err := e.CreateTopic(t.Context(), "t"); err != nil {
		t.Fatal(err)
	}
	if _, err := srv.Do("SCRIPT", "FLUSH"); err != nil {
		t.Fatal(err)
	}
	es := entries(0, 20)
	e.PublishBatch(t.Context(), "t", es)
	checkBatch(t, es, "t", 1)
	es = entries(20, 5)
	e.PublishBatch(t.Context(), "t", es)
	checkBatch(t, es, "t", 21)
}

// Every entry of a batch to a topic that does not exist fails with TOPIC_NOT_FOUND's kind.
func TestPublishBatchUnknownTopic(t *testing.T) {
	e := newEngine(t, testConfig(100, 100), options(newPrefix(), "a"))
	es := entries(0, 5)
	e.PublishBatch(t.Context(), "nope", es)
	for i, en := range es {
		if domain.KindOf(en.Err) != domain.KindNotFound || en.Event != nil {
			t.Fatalf("entry %d: %v, %v; want KindNotFound", i, en.Event, en.Err)
		}
	}
}

// Redis does not answer: every entry fails with KindUnavailable within the timeout, none is
// acknowledged, and batches work again once Redis is back.
func TestPublishBatchRedisDown(t *testing.T) {
	o := options(newPrefix(), "a")
	o.Timeout = 300 * time.Millisecond
	e := newEngine(t, testConfig(100, 100), o)
	if err := e.CreateTopic(t.Context(), "t"); err != nil {
		t.Fatal(err)
	}
	if err := srv.Pause(); err != nil {
		t.Fatal(err)
	}
	resumed := false
	defer func() {
		if !resumed {
			_ = srv.Resume()
		}
	}()
	es := entries(0, 8)
	e.PublishBatch(t.Context(), "t", es)
	for i, en := range es {
		if domain.KindOf(en.Err) != domain.KindUnavailable || en.Event != nil {
			t.Fatalf("entry %d while Redis is paused: %v, %v; want KindUnavailable", i, en.Event, en.Err)
		}
	}
	if err := srv.Resume(); err != nil {
		t.Fatal(err)
	}
	resumed = true
	for deadline := time.Now().Add(20 * time.Second); ; waitTick() {
		es = entries(100, 3)
		e.PublishBatch(t.Context(), "t", es)
		if es[0].Err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("a batch after Redis came back: %v", es[0].Err)
		}
	}
	// Whether the paused batch reached Redis before the pause is unknown to the engine (it was
	// not acknowledged); what follows it is in order after whatever was stored.
	top := es[0].Event.Seq
	checkBatch(t, es, "t", top)
}
