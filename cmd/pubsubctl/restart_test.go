package main

import (
	"strings"
	"testing"

	"github.com/pubsubd/pubsub/internal/broker/redis/redistest"
)

// TestTailSurvivesRestartMemory: the in-memory server restarts and forgets its topics. tail says
// the topic is gone and waits; once the topic is created again, tail says it could not recover
// (recovered:false, a new epoch) and goes on with the new topic's events.
func TestTailSurvivesRestartMemory(t *testing.T) {
	s := startServer(t)
	env := map[string]string{"PUBSUB_URL": s.url()}
	must(t, 0, env, "", "topics", "create", "orders")
	tail := start(t, env, "tail", "orders", "-o", "json")
	tail.stderr.waitFor(t, "subscribed to orders")
	must(t, 0, env, "", "publish", "orders", "before", "--count", "2")
	before := tail.events(t, 2)

	s.stop()
	tail.stderr.waitFor(t, "the server is shutting down; reconnecting")
	s.start()
	tail.stderr.waitFor(t, `topic "orders" does not exist now`)
	must(t, 0, env, "", "topics", "create", "orders")
	notice := tail.stderr.waitFor(t, "could not recover the events of orders after seq 2 of epoch "+before[0].Epoch)
	if !strings.Contains(notice, "recovered:false") {
		t.Errorf("the notice does not name recovered:false: %s", notice)
	}

	must(t, 0, env, "", "publish", "orders", "after")
	evs := tail.events(t, 3)
	if evs[2].Seq != 1 || string(evs[2].Payload) != `"after"` || evs[2].Epoch == before[0].Epoch {
		t.Errorf("after the restart: %+v (before: %+v)", evs[2], before)
	}
	if code := tail.interrupt(t); code != 0 {
		t.Errorf("tail: exit %d, want 0", code)
	}
}

// TestTailSurvivesRestartRedis: two servers on one Redis; tail follows a topic on one of them while
// the other publishes; the first restarts (its tail's connection ends) while messages keep coming
// through the second. tail reconnects, resumes with recovered:true, and prints every message
// exactly once, in seq order.
func TestTailSurvivesRestartRedis(t *testing.T) {
	rdb, done, err := redistest.StartTemp()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(done)
	flags := []string{"-broker=redis", "-redis-url=" + rdb.URL()}
	a := startServer(t, append(flags, "-replica-id=a")...)
	b := startServer(t, append(flags, "-replica-id=b")...)
	onA := map[string]string{"PUBSUB_URL": a.url()}
	onB := map[string]string{"PUBSUB_URL": b.url()}

	must(t, 0, onB, "", "topics", "create", "orders")
	tail := start(t, onA, "tail", "orders", "-o", "json")
	tail.stderr.waitFor(t, "subscribed to orders")
	must(t, 0, onB, "", "publish", "orders", "--count", "5", "-q", "n")
	tail.events(t, 5)

	a.stop()
	tail.stderr.waitFor(t, "the server is shutting down; reconnecting")
	// While a is down, b goes on accepting messages: they are in the topic's history in Redis.
	must(t, 0, onB, "", "publish", "orders", "--count", "5", "-q", "n")
	a.start()
	tail.stderr.waitFor(t, "resumed after seq 5 (recovered)")
	must(t, 0, onB, "", "publish", "orders", "--count", "5", "-q", "n")

	evs := tail.events(t, 15)
	for i, ev := range evs {
		if ev.Seq != uint64(i+1) || ev.Epoch != evs[0].Epoch {
			t.Fatalf("event %d: seq %d epoch %s, want seq %d epoch %s (every message once, in order)", i, ev.Seq, ev.Epoch, i+1, evs[0].Epoch)
		}
	}
	if code := tail.interrupt(t); code != 0 {
		t.Errorf("tail: exit %d, want 0", code)
	}
	if strings.Contains(tail.stderr.String(), "could not recover") || strings.Contains(tail.stderr.String(), "skipped") {
		t.Errorf("tail announced a loss on Redis:\n%s", tail.stderr.String())
	}
	if n := strings.Count(tail.stdout.String(), "\n"); n != 15 {
		t.Errorf("tail printed %d events, want 15", n)
	}
}

// TestTailWaitsForDeletedTopic: a deleted topic is announced and waited for; created again, it is
// followed from its new epoch after tail says what it could not recover.
func TestTailWaitsForDeletedTopic(t *testing.T) {
	s := startServer(t)
	env := map[string]string{"PUBSUB_URL": s.url()}
	must(t, 0, env, "", "topics", "create", "orders")
	tail := start(t, env, "tail", "orders", "-o", "json")
	tail.stderr.waitFor(t, "subscribed to orders")
	must(t, 0, env, "", "publish", "orders", "1")
	before := tail.events(t, 1)
	must(t, 0, env, "", "topics", "delete", "orders")
	tail.stderr.waitFor(t, `topic "orders" was deleted; waiting for it to be created again`)
	must(t, 0, env, "", "topics", "create", "orders")
	tail.stderr.waitFor(t, "could not recover the events of orders after seq 1 of epoch "+before[0].Epoch)
	must(t, 0, env, "", "publish", "orders", "2")
	if evs := tail.events(t, 2); evs[1].Seq != 1 || string(evs[1].Payload) != "2" || evs[1].Epoch == before[0].Epoch {
		t.Errorf("after the topic came back: %+v", evs[1])
	}
}
