package redis_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/pubsubd/pubsub/internal/broker/redis/redistest"
	"github.com/pubsubd/pubsub/internal/domain"
)

// The pub/sub connections are killed (CLIENT KILL TYPE pubsub) while a publisher on another
// replica goes on: the subscriber's replica reconnects, reads back what it missed, and the
// subscriber sees every event once, in order, with no gap.
func TestPubSubKillRepairs(t *testing.T) {
	p := newPrefix()
	obs := &countingObserver{}
	oa := options(p, "a")
	oa.Observer = obs
	cfg := testConfig(100000, 100000)
	a, b := newEngine(t, cfg, oa), newEngine(t, cfg, options(p, "b"))
	if err := b.CreateTopic(t.Context(), "t"); err != nil {
		t.Fatal(err)
	}
	f, _ := subscribe(t, a, "t", "s", 0)
	stop := make(chan struct{})
	pub := publisher(t, b, "t", stop)
	f.waitFor(t, 50)
	if n, err := srv.KillPubSubClients(); err != nil || n < 2 {
		t.Fatalf("CLIENT KILL TYPE pubsub: %d, %v", n, err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for obs.reconnects.Load() == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the replica did not reconnect")
		}
		waitTick()
	}
	close(stop)
	top := <-pub
	f.waitFor(t, top)
	if seqs, gaps := f.check(t); len(gaps) > 0 || uint64(len(seqs)) != top {
		t.Fatalf("%d events, gaps %v; want all %d", len(seqs), gaps, top)
	}
}

// Redis paused past the timeout: writes fail fast with KindUnavailable naming the store, Ready
// says so, nothing is acknowledged; when it comes back, writes succeed and the subscriber of
// another replica gets every acknowledged event.
func TestRedisDownFailsFast(t *testing.T) {
	p := newPrefix()
	oa, ob := options(p, "a"), options(p, "b")
	oa.Timeout, ob.Timeout = 300*time.Millisecond, 300*time.Millisecond
	cfg := testConfig(1000, 1000)
	a, b := newEngine(t, cfg, oa), newEngine(t, cfg, ob)
	if err := b.CreateTopic(t.Context(), "t"); err != nil {
		t.Fatal(err)
	}
	f, _ := subscribe(t, a, "t", "s", 0)
	if _, _, err := b.Publish(t.Context(), "t", msg(1)); err != nil {
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
	start := time.Now()
	_, _, err := b.Publish(t.Context(), "t", msg(2))
	var de *domain.Error
	if !errors.As(err, &de) || de.Kind != domain.KindUnavailable {
		t.Fatalf("publish while Redis is paused: %v, want KindUnavailable", err)
	}
	t.Logf("publish failed after %v: %v", time.Since(start), err)
	if err := b.CreateTopic(t.Context(), "u"); domain.KindOf(err) != domain.KindUnavailable {
		t.Fatalf("create while Redis is paused: %v", err)
	}
	// Ready keeps its answer for a second: wait (bounded) for it to see the pause.
	for deadline := time.Now().Add(10 * time.Second); domain.KindOf(b.Ready(t.Context())) != domain.KindUnavailable; waitTick() {
		if time.Now().After(deadline) {
			t.Fatalf("Ready while Redis is paused: %v", b.Ready(t.Context()))
		}
	}
	if err := srv.Resume(); err != nil {
		t.Fatal(err)
	}
	resumed = true
	var last uint64
	deadline := time.Now().Add(20 * time.Second)
	for last < 5 {
		ev, _, err := b.Publish(context.Background(), "t", msg(3))
		if err == nil {
			last = ev.Seq
			continue
		}
		if time.Now().After(deadline) {
			t.Fatalf("publish after Redis came back: %v", err)
		}
		waitTick()
	}
	f.waitFor(t, last)
	f.check(t) // whatever was acknowledged arrives, in order; a seq never acknowledged may be a gap
	for deadline := time.Now().Add(10 * time.Second); b.Ready(t.Context()) != nil; waitTick() {
		if time.Now().After(deadline) {
			t.Fatal("Ready stays failing after Redis came back")
		}
	}
}

// The store lost acknowledged writes (a failover to a replica that lagged): the topic's seq
// went back below what a replica delivered. That replica rotates the epoch and tells its
// subscribers of the discontinuity; the same seqs never name two events.
func TestSeqBehindRotatesEpoch(t *testing.T) {
	p := newPrefix()
	a := newEngine(t, testConfig(100, 100), options(p, "a"))
	if err := a.CreateTopic(t.Context(), "t"); err != nil {
		t.Fatal(err)
	}
	f, res := subscribe(t, a, "t", "s", 0)
	for n := range 5 {
		if _, _, err := a.Publish(t.Context(), "t", msg(uint64(n))); err != nil {
			t.Fatal(err)
		}
	}
	f.waitFor(t, 5)
	// Roll the topic back to seq 3, as a failover to a lagging replica would.
	if _, err := srv.Do("HSET", p+"{t}:m", "s", "3"); err != nil {
		t.Fatal(err)
	}
	if _, err := srv.Do("DEL", p+"{t}:h"); err != nil {
		t.Fatal(err)
	}
	if _, err := srv.KillPubSubClients(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		e, err := srv.Do("HGET", p+"{t}:m", "e")
		if err != nil {
			t.Fatal(err)
		}
		if e != res.Epoch {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the epoch was not rotated")
		}
		waitTick()
	}
	ev, _, err := a.Publish(t.Context(), "t", msg(9))
	if err != nil || ev.Seq != 4 {
		t.Fatalf("publish after the rollback: %v, %v; want seq 4", ev, err)
	}
	f.waitFor(t, 4)
	seqs, gaps := f.check(t)
	if len(gaps) != 1 || gaps[0] != [2]uint64{} || seqs[len(seqs)-1] != 4 {
		t.Fatalf("seqs %v, notices %v: want 1..5, a discontinuity, then 4", seqs, gaps)
	}
}

// redis-server killed (SIGKILL) and restarted on its AOF, with appendfsync always: every
// acknowledged event survives, the replicas reconnect, and the subscriber gets every one of them
// once, in order; publishes during the outage fail and are not acknowledged.
func TestRedisRestartRepairs(t *testing.T) {
	if _, err := srv.Do("CONFIG", "SET", "appendfsync", "always"); err != nil {
		t.Fatal(err)
	}
	defer func() { _, _ = srv.Do("CONFIG", "SET", "appendfsync", "everysec") }()
	p := newPrefix()
	obs := &countingObserver{}
	oa, ob := options(p, "a"), options(p, "b")
	oa.Observer = obs
	oa.Timeout, ob.Timeout = 500*time.Millisecond, 500*time.Millisecond
	cfg := testConfig(100000, 100000)
	a, b := newEngine(t, cfg, oa), newEngine(t, cfg, ob)
	if err := b.CreateTopic(t.Context(), "t"); err != nil {
		t.Fatal(err)
	}
	f, _ := subscribe(t, a, "t", "s", 0)
	var acked []uint64
	publish := func() error {
		ev, _, err := b.Publish(context.Background(), "t", msg(1))
		if err == nil {
			acked = append(acked, ev.Seq)
		}
		return err
	}
	for range 20 {
		if err := publish(); err != nil {
			t.Fatal(err)
		}
	}
	if err := srv.Kill(); err != nil {
		t.Fatal(err)
	}
	if err := publish(); domain.KindOf(err) != domain.KindUnavailable {
		t.Fatalf("publish with Redis down: %v, want KindUnavailable", err)
	}
	if err := srv.Restart(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for len(acked) < 40 {
		if err := publish(); err != nil && time.Now().After(deadline) {
			t.Fatalf("publish after the restart: %v", err)
		} else if err != nil {
			waitTick()
		}
	}
	f.waitFor(t, acked[len(acked)-1])
	seqs, gaps := f.check(t)
	if len(gaps) > 0 || len(seqs) != len(acked) {
		t.Fatalf("%d events and gaps %v for %d acknowledged", len(seqs), gaps, len(acked))
	}
	if obs.reconnects.Load() == 0 {
		t.Fatal("no reconnect counted")
	}
}

// Sentinel mode: the engine asks the Sentinel for the master and works through it.
func TestSentinel(t *testing.T) {
	s, err := redistest.StartSentinel(t.TempDir(), "mymaster", srv.Addr())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Stop()
	o := options(newPrefix(), "sentinel")
	o.URL, o.SentinelMaster, o.SentinelAddrs = "", "mymaster", []string{s.Addr()}
	e := newEngine(t, testConfig(10, 100), o)
	if err := e.CreateTopic(t.Context(), "t"); err != nil {
		t.Fatal(err)
	}
	f, _ := subscribe(t, e, "t", "s", 0)
	if ev, _, err := e.Publish(t.Context(), "t", msg(1)); err != nil || ev.Seq != 1 {
		t.Fatalf("publish through Sentinel: %v, %v", ev, err)
	}
	f.waitFor(t, 1)
	f.check(t)
}

// A pub/sub connection that stays up but receives nothing is found by the idle probe and
// replaced; the subscriber goes on receiving.
func TestProbeReplacesSilentConnection(t *testing.T) {
	p := newPrefix()
	obs := &countingObserver{}
	o := options(p, "a")
	o.Observer, o.ProbeIdle, o.Timeout = obs, 200*time.Millisecond, 300*time.Millisecond
	a := newEngine(t, testConfig(10, 100), o)
	if err := a.CreateTopic(t.Context(), "t"); err != nil {
		t.Fatal(err)
	}
	f, _ := subscribe(t, a, "t", "s", 0)
	if err := a.MuteNodeChannel(t.Context()); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for obs.probes.Load() == 0 || obs.reconnects.Load() == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("probe restarts %d, reconnects %d: want the silent connection replaced", obs.probes.Load(), obs.reconnects.Load())
		}
		waitTick()
	}
	if _, _, err := a.Publish(t.Context(), "t", msg(1)); err != nil {
		t.Fatal(err)
	}
	f.waitFor(t, 1)
	f.check(t)
}
