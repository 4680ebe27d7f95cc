//go:build linux

package main_test

import (
	"context"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/pubsubd/pubsub/internal/broker/redis/redistest"
)

// The chaos tests: while publishers on every replica keep publishing and subscribers on every
// replica keep reading, something fails: Redis is killed and restarted, its pub/sub connections
// are cut, it is paused past every timeout, a replica is killed and restarted. Each asserts, with
// the invariant checker, that no acknowledged message is lost for the subscribers that keep up,
// and that every gap is announced.

// chaosPace is each publisher's interval: about 100 publishes/s per replica, so a run stays far
// inside the history (clusterHistory per topic) even while a replica is down for the heartbeat
// TTL, and a resume always recovers.
const chaosPace = 10 * time.Millisecond

// chaosBefore and chaosAfter are the acked publishes awaited before the fault and after the
// cluster is back: the fault strikes mid-run, and the run goes on after it.
const (
	chaosBefore = 90
	chaosAfter  = 90
)

// chaosOptions change a chaos run.
type chaosOptions struct {
	redis redistest.Options
	// storeLoses says the fault makes Redis lose acknowledged writes: the final history is then
	// not required to hold every acked message (the subscribers must have been told instead).
	storeLoses bool
}

// chaosRun is one chaos test: a cluster, three topics, two subscribers and one publisher per
// replica; fault runs mid-run and returns once the cluster is back. It checks the invariant for
// every subscriber and topic, and returns the workload for the test's own checks.
func chaosRun(t *testing.T, bin string, opts chaosOptions, fault func(ctx context.Context, c *cluster, w *workload)) *workload {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Second)
	t.Cleanup(cancel)
	c := startCluster(ctx, t, bin, 3, opts.redis)
	topics := []string{"chaos-a", "chaos-b", "chaos-c"}
	c.createTopics(ctx, topics)
	w := newWorkload(topics)
	for i, r := range c.reps {
		for j := range 2 {
			s, err := startSubscriber(ctx, fmt.Sprintf("sub-%d-%d", i, j), r.wsURL(), topics)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(s.close)
			w.subs = append(w.subs, s)
		}
	}
	for i, r := range c.reps {
		p, err := w.startPublisher(ctx, fmt.Sprintf("pub-%d", i), r.wsURL(), chaosPace, 0)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(p.halt)
		w.pubs = append(w.pubs, p)
	}
	if err := w.waitAcked(ctx, chaosBefore); err != nil {
		t.Fatal(err)
	}
	before := w.ackedCount()
	fault(ctx, c, w)
	if t.Failed() {
		return w
	}
	during := w.ackedCount() - before
	if err := w.waitAcked(ctx, w.ackedCount()+chaosAfter); err != nil {
		t.Fatal(err)
	}
	for _, p := range w.pubs {
		p.halt()
		if p.err != nil {
			t.Error(p.err)
		}
		t.Log(p.summary())
	}
	t.Logf("%d publishes acked before the fault, %d while it lasted, %d in all", before, during, w.ackedCount())
	w.final = w.finalHistory(ctx, t, c.reps[0])
	w.check(ctx, t, w.final, !opts.storeLoses)
	return w
}

// finalHistory reads every topic's history through r once the publishers are done.
func (w *workload) finalHistory(ctx context.Context, t *testing.T, r *replica) map[string]history {
	t.Helper()
	out := make(map[string]history, len(w.topics))
	for _, topic := range w.topics {
		out[topic] = w.finalHistoryOf(ctx, t, r, topic)
	}
	return out
}

func (w *workload) finalHistoryOf(ctx context.Context, t *testing.T, r *replica, topic string) history {
	t.Helper()
	h, err := readHistory(ctx, r.wsURL(), topic)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

// check waits until every subscriber has reached each topic's top and runs the checker on each
// stream. With stored, every acked message must also be in the history (the store lost nothing
// it acked).
func (w *workload) check(ctx context.Context, t *testing.T, hist map[string]history, stored bool) []verdict {
	t.Helper()
	tops := make(map[string]uint64, len(hist))
	seqOf := make(map[string]uint64)
	for topic, h := range hist {
		tops[topic] = h.top
		for id, seq := range h.seqOf {
			seqOf[id] = seq
		}
		for id := range w.ackedOf(topic) {
			if _, ok := h.seqOf[id]; !ok && stored {
				t.Errorf("%s: acked message %s is not in the topic's history: the store lost it", topic, id)
			}
		}
	}
	for _, s := range w.subs {
		if err := s.waitReached(ctx, tops); err != nil {
			var at []string
			for topic := range tops {
				at = append(at, fmt.Sprintf("%s at %d of %d", topic, s.last(topic), tops[topic]))
			}
			t.Fatalf("%v (%s)", err, strings.Join(at, ", "))
		}
		for _, topic := range w.topics {
			for _, f := range s.stream(topic) {
				if f.Type == "event" {
					seqOf[f.id()] = f.Seq
				}
			}
		}
	}
	var out []verdict
	for _, s := range w.subs {
		s.mu.Lock()
		err := s.err
		s.mu.Unlock()
		if err != nil {
			t.Error(err)
		}
		for _, topic := range w.topics {
			v := checkStream(s.stream(topic), w.ackedOf(topic), seqOf)
			if len(v.violations) > 0 {
				t.Errorf("%s, %s: %s", s.name, topic, v)
			} else if v.gaps+v.discontinuities+v.drops+v.resumes > 0 {
				t.Logf("%s, %s: %s", s.name, topic, v)
			}
			out = append(out, v)
		}
	}
	return out
}

// stayedConnected checks that no client lost its connection: the replicas kept serving theirs
// through the fault.
func (w *workload) stayedConnected(t *testing.T) {
	t.Helper()
	for _, s := range w.subs {
		s.mu.Lock()
		n := s.reconnects
		s.mu.Unlock()
		if n > 0 {
			t.Errorf("%s lost its connection %d times: a Redis failure must not cost a replica its clients", s.name, n)
		}
	}
	for _, p := range w.pubs {
		p.mu.Lock()
		n := p.reconnects
		p.mu.Unlock()
		if n > 0 {
			t.Errorf("%s lost its connection %d times: a Redis failure must not cost a replica its clients", p.name, n)
		}
	}
}

// Redis killed with SIGKILL mid-run and restarted on the same port from its AOF. With appendfsync
// always every write Redis acknowledged (so every publish a replica acked) is in the AOF before
// the reply, and survives: the checker may then require every acked message in the history.
// (With everysec an acked write may not survive a kill: see redistest.Options.FsyncAlways.)
func testChaosRedisKilled(t *testing.T, bin string) {
	w := chaosRun(t, bin, chaosOptions{redis: redistest.Options{FsyncAlways: true}}, func(ctx context.Context, c *cluster, w *workload) {
		if err := c.redis.Kill(); err != nil {
			t.Fatal(err)
		}
		for _, r := range c.reps {
			c.waitReady(ctx, r, false)
		}
		if err := c.redis.RestartWith(c.ropts); err != nil {
			t.Fatal(err)
		}
		for _, r := range c.reps {
			c.waitReady(ctx, r, true)
		}
	})
	w.stayedConnected(t)
}

// Every pub/sub connection of Redis closed (CLIENT KILL TYPE pubsub), twice, mid-run: each
// replica must notice, resubscribe and repair what it missed from the history.
func testChaosClientKill(t *testing.T, bin string) {
	w := chaosRun(t, bin, chaosOptions{}, func(ctx context.Context, c *cluster, w *workload) {
		for range 2 {
			n, err := c.redis.KillPubSubClients()
			if err != nil {
				t.Fatal(err)
			}
			if n < len(c.reps) {
				t.Fatalf("CLIENT KILL TYPE pubsub closed %d connections, want at least one per replica (%d)", n, len(c.reps))
			}
			// Back when every replica has its pub/sub connection again, and publishes go on.
			eventually(ctx, t, "every replica's pub/sub connection back", c.watched(), func() (bool, string) {
				v, err := c.redis.Do("CLIENT", "LIST", "TYPE", "pubsub")
				if err != nil {
					return false, err.Error()
				}
				n := 0
				if v != "" {
					n = strings.Count(strings.TrimSpace(v), "\n") + 1
				}
				return n >= len(c.reps), fmt.Sprintf("%d pub/sub connections", n)
			})
			if err := w.waitAcked(ctx, w.ackedCount()+30); err != nil {
				t.Fatal(err)
			}
		}
	})
	w.stayedConnected(t)
}

// Redis paused (SIGSTOP) for longer than the replicas' Redis timeout, then continued: meanwhile
// publishes, creates and deletes fail fast (an error, never an ack), /readyz is 503 on every
// replica, /livez 200 throughout, and the clients' connections stay open; after, /readyz is 200
// again and publishes are acked.
func testChaosRedisPaused(t *testing.T, bin string) {
	var probes []*peer
	w := chaosRun(t, bin, chaosOptions{}, func(ctx context.Context, c *cluster, w *workload) {
		for _, r := range c.reps {
			p, err := dial(ctx, "probe-"+r.name, r.wsURL())
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(p.close)
			probes = append(probes, p)
		}
		if status, body, err := c.rest(ctx, http.MethodPost, c.reps[0].url("/topics"), map[string]string{"name": "chaos-spare"}); err != nil || status != http.StatusCreated {
			t.Fatalf("POST /topics chaos-spare: %d %s %v", status, body, err)
		}
		stopLivez := watchLivez(c)
		pausedAt := time.Now()
		if err := c.redis.Pause(); err != nil {
			t.Fatal(err)
		}
		for _, r := range c.reps {
			c.waitReady(ctx, r, false)
		}
		for i, p := range probes {
			pctx, cancel := context.WithTimeout(ctx, publishTimeout)
			_, reply, err := p.publish(pctx, w.topics[0], "while Redis is paused")
			cancel()
			if err != nil || reply.Type != "error" {
				t.Errorf("publish on %s while Redis is paused: %s %v; want an error reply, fast", c.reps[i].name, reply, err)
			}
		}
		// Creates and deletes too: 503 UNAVAILABLE within the client's timeout, not a hang. (Redis
		// may still run them once it continues: a refused request is not known to be undone.)
		if status, body, err := c.rest(ctx, http.MethodPost, c.reps[1].url("/topics"), map[string]string{"name": "chaos-during-pause"}); err != nil || status != http.StatusServiceUnavailable {
			t.Errorf("POST /topics while Redis is paused: %d %s %v; want 503", status, body, err)
		}
		if status, body, err := c.rest(ctx, http.MethodDelete, c.reps[2].url("/topics/chaos-spare"), nil); err != nil || status != http.StatusServiceUnavailable {
			t.Errorf("DELETE /topics/chaos-spare while Redis is paused: %d %s %v; want 503", status, body, err)
		}
		// The pause is the fault under test: it lasts past several Redis timeouts, whatever the
		// checks above took, so every timeout of the replicas has fired.
		if rest := 3*clusterRedisTimeout - time.Since(pausedAt); rest > 0 {
			<-time.After(rest)
		}
		if err := c.redis.Resume(); err != nil {
			t.Fatal(err)
		}
		for _, r := range c.reps {
			c.waitReady(ctx, r, true)
		}
		if failures := stopLivez(); len(failures) > 0 {
			t.Errorf("/livez must answer 200 whatever Redis does: %s", strings.Join(failures, "; "))
		}
		for i, p := range probes {
			eventually(ctx, t, "a publish acked on "+c.reps[i].name+" after the pause", c.watched(), func() (bool, string) {
				_, reply, err := p.publish(ctx, w.topics[0], "after the pause")
				return err == nil && reply.Type == "ack", fmt.Sprintf("%s %v", reply, err)
			})
		}
	})
	w.stayedConnected(t)
	for _, p := range probes {
		if p.isClosed() {
			t.Errorf("%s: connection closed (%v): a Redis pause must not cost a replica its clients", p.name, p.closeErr())
		}
	}
}

// One replica killed (SIGKILL) mid-run and restarted on the same address: its clients reconnect
// and resume with since_seq and epoch (recovered:true, nothing lost, nothing twice), the other
// replicas' subscribers see no loss, and the dead replica leaves the /stats subscriber sums
// within the heartbeat TTL.
func testChaosReplicaKilled(t *testing.T, bin string) {
	w := chaosRun(t, bin, chaosOptions{}, func(ctx context.Context, c *cluster, w *workload) {
		victim := c.reps[2]
		survivor := c.reps[0]
		c.waitSubscribers(ctx, survivor, w.topics, 2*len(c.reps))
		killedAt := time.Now()
		victim.kill(t)
		// The deadline is the TTL and a margin for a loaded machine: the sums must forget the dead
		// replica by its heartbeat's expiry, not by anything slower.
		tctx, cancel := context.WithTimeout(ctx, heartbeatTTL+10*time.Second)
		c.waitSubscribers(tctx, survivor, w.topics, 2*(len(c.reps)-1))
		cancel()
		t.Logf("the dead replica left the /stats sums %s after its kill (heartbeat TTL %s)", time.Since(killedAt).Round(100*time.Millisecond), heartbeatTTL)
		c.start(victim)
		c.waitReady(ctx, victim, true)
		for _, r := range c.reps {
			c.waitSubscribers(ctx, r, w.topics, 2*len(c.reps))
		}
	})
	for _, s := range w.subs {
		s.mu.Lock()
		n := s.reconnects
		s.mu.Unlock()
		onVictim := strings.HasPrefix(s.name, "sub-2-")
		if onVictim && n == 0 || !onVictim && n > 0 {
			t.Errorf("%s reconnected %d times; only the killed replica's clients reconnect", s.name, n)
		}
		for _, topic := range w.topics {
			v := checkStream(s.stream(topic), nil, nil)
			if onVictim && v.resumes != n {
				t.Errorf("%s, %s: %d recovered resumes for %d reconnects", s.name, topic, v.resumes, n)
			}
		}
	}
}

// watchLivez asks every replica's /livez in a loop until the returned stop is called, which
// returns every answer that was not 200.
func watchLivez(c *cluster) (stop func() []string) {
	done, finished := make(chan struct{}), make(chan struct{})
	var failures []string
	go func() {
		defer close(finished)
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for {
			for _, r := range c.reps {
				if got := httpStatus(c.http, r.url("/livez")); got != http.StatusOK && len(failures) < 10 {
					failures = append(failures, fmt.Sprintf("%s answered %d", r.name, got))
				}
			}
			select {
			case <-done:
				return
			case <-tick.C:
			}
		}
	}()
	return func() []string {
		close(done)
		<-finished
		return failures
	}
}

// Redis restarted having lost acknowledged writes (from a copy of its AOF made mid-run, as a
// failover to a lagging replica or a crash under appendfsync everysec leaves it): every topic's
// seq goes back below what the replicas delivered, by `lost` acked publishes. Every subscriber
// must be told, with one discontinuity, that the stream it followed ended, and then follow the
// topic's new epoch; no seq may name two messages for a subscriber without a discontinuity
// between them.
//
// With late, the replicas look only after new publishes (through a fourth replica that follows
// no topic) have brought every seq back up past what they delivered, as when their redial backs
// off while the publishers' connections are back: the seq is no longer behind, and only the
// events themselves tell that the history is not the one delivered.
func testChaosRedisLosesWrites(t *testing.T, bin string, lost int, late bool) {
	w := chaosRun(t, bin, chaosOptions{redis: redistest.Options{FsyncAlways: true}, storeLoses: true}, func(ctx context.Context, c *cluster, w *workload) {
		var extra *replica
		if late {
			extra = c.add(ctx, "replica-extra")
		}
		snap := t.TempDir()
		if err := c.redis.CopyAOF(snap); err != nil {
			t.Fatal(err)
		}
		// Acked writes the copy does not have, on every topic.
		if err := w.waitAckedEach(ctx, w.ackedPer(), lost); err != nil {
			t.Fatal(err)
		}
		paused := false
		resume := func() {
			if paused {
				paused = false
				for _, r := range c.reps {
					if err := r.process().cmd.Process.Signal(syscall.SIGCONT); err != nil {
						t.Error(err)
					}
				}
			}
		}
		defer resume() // a paused replica would not stop at the cleanup's SIGTERM
		if late {
			paused = true
			for _, r := range c.reps {
				if err := r.process().cmd.Process.Signal(syscall.SIGSTOP); err != nil {
					t.Fatal(err)
				}
			}
		}
		if err := c.redis.Kill(); err != nil {
			t.Fatal(err)
		}
		if err := c.redis.RestoreAOF(snap); err != nil {
			t.Fatal(err)
		}
		if err := c.redis.RestartWith(c.ropts); err != nil {
			t.Fatal(err)
		}
		if late {
			pub, err := dial(ctx, "late-publisher", extra.wsURL())
			if err != nil {
				t.Fatal(err)
			}
			defer pub.close()
			for _, topic := range w.topics {
				// What the paused replicas delivered: no subscriber has more.
				var delivered uint64
				for _, s := range w.subs {
					delivered = max(delivered, s.last(topic))
				}
				// Publish until the topic's seq is past it (refusals while the extra replica's
				// connection the kill broke is replaced are not acked, and not counted).
				eventually(ctx, t, fmt.Sprintf("%s's seq past %d through %s", topic, delivered, extra.name), []*process{extra.process()}, func() (bool, string) {
					var st statsBody
					if err := getJSON(c.http, extra.url("/stats"), &st); err == nil && st.Topics[topic].Messages > delivered {
						return true, ""
					}
					id, reply, err := pub.publish(ctx, topic, "after the loss")
					if err == nil && reply.Type == "ack" {
						w.acked(topic, id)
					}
					return false, fmt.Sprintf("%s %v", reply, err)
				})
			}
			resume()
		}
		for _, r := range c.reps {
			c.waitReady(ctx, r, true)
		}
	})
	for _, s := range w.subs {
		for _, topic := range w.topics {
			// The epochs the subscriber was told of, in order: one new epoch per loss, never one
			// it was told had ended, and the last the topic's own.
			var epochs []string
			for _, f := range s.stream(topic) {
				if f.Type == "info" && f.Msg == "discontinuity" {
					epochs = append(epochs, f.Epoch)
				}
			}
			switch {
			case len(epochs) == 0:
				t.Errorf("%s, %s: the topic's seq went back and no discontinuity was announced", s.name, topic)
			case epochs[len(epochs)-1] != w.final[topic].epoch:
				t.Errorf("%s, %s: discontinuities to epochs %v, but the topic's epoch is %s", s.name, topic, epochs, w.final[topic].epoch)
			case len(epochs) > 1:
				t.Errorf("%s, %s: one loss announced as %d discontinuities, to epochs %v", s.name, topic, len(epochs), epochs)
			}
		}
	}
}

// A topic deleted and created again while one replica is cut off from Redis (its process paused
// and its pub/sub connection closed, so that it misses the delete's notice). The other replicas'
// subscribers get every event, then topic_deleted. When the cut-off replica comes back, its
// subscriber must be told that the stream it followed ended (topic_deleted, or a discontinuity to
// the new epoch) and never get an event of the old stream again, nor one twice. The workload's
// topics go on throughout, with nothing lost.
func testChaosTopicRecreatedWhileCutOff(t *testing.T, bin string) {
	const topic = "chaos-recreated"
	var (
		subs           []*peer
		old, recreated []string // message ids acked before the delete and after the create
	)
	w := chaosRun(t, bin, chaosOptions{}, func(ctx context.Context, c *cluster, w *workload) {
		victim := c.reps[2]
		if status, body, err := c.rest(ctx, http.MethodPost, c.reps[0].url("/topics"), map[string]string{"name": topic}); err != nil || status != http.StatusCreated {
			t.Fatalf("POST /topics %s: %d %s %v", topic, status, body, err)
		}
		for _, r := range c.reps {
			p, err := dial(ctx, "recreated-"+r.name, r.wsURL())
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(p.close)
			if _, err := p.subscribe(ctx, topic, "recreated-"+r.name, nil); err != nil {
				t.Fatal(err)
			}
			subs = append(subs, p)
		}
		pub, err := dial(ctx, "recreated-publisher", c.reps[0].wsURL())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(pub.close)
		publish := func() string {
			id, reply, err := pub.publish(ctx, topic, "recreated")
			if err != nil || reply.Type != "ack" {
				t.Fatalf("publish to %s: %s %v", topic, reply, err)
			}
			return id
		}
		for range 5 {
			old = append(old, publish())
		}
		for _, p := range subs {
			if _, err := p.waitFrame(ctx, "seq 5", topic, func(f cframe) bool { return f.Type == "event" && f.Seq >= 5 }); err != nil {
				t.Fatal(err)
			}
		}

		// Cut the victim off: pause it, then close its pub/sub connection, which it will find
		// closed only when it runs again.
		proc := victim.process()
		if err := proc.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
			t.Fatal(err)
		}
		resumed := false
		resume := func() {
			if !resumed {
				resumed = true
				if err := proc.cmd.Process.Signal(syscall.SIGCONT); err != nil {
					t.Error(err)
				}
			}
		}
		defer resume()
		list, err := c.redis.Do("CLIENT", "LIST", "TYPE", "pubsub")
		if err != nil {
			t.Fatal(err)
		}
		var clientID string
		for _, line := range strings.Split(list, "\n") {
			if strings.Contains(line, " name=pubsubd-"+victim.replicaID()+" ") {
				for _, field := range strings.Fields(line) {
					if v, ok := strings.CutPrefix(field, "id="); ok {
						clientID = v
					}
				}
			}
		}
		if clientID == "" {
			t.Fatalf("no pub/sub connection named pubsubd-%s in CLIENT LIST:\n%s", victim.replicaID(), list)
		}
		if _, err := c.redis.Do("CLIENT", "KILL", "ID", clientID); err != nil {
			t.Fatal(err)
		}

		if status, body, err := c.rest(ctx, http.MethodDelete, c.reps[0].url("/topics/"+topic), nil); err != nil || status != http.StatusOK {
			t.Fatalf("DELETE /topics/%s: %d %s %v", topic, status, body, err)
		}
		for _, p := range subs[:2] {
			if _, err := p.waitFrame(ctx, "topic_deleted", topic, func(f cframe) bool { return f.Type == "info" && f.Msg == "topic_deleted" }); err != nil {
				t.Fatal(err)
			}
		}
		if status, body, err := c.rest(ctx, http.MethodPost, c.reps[1].url("/topics"), map[string]string{"name": topic}); err != nil || status != http.StatusCreated {
			t.Fatalf("POST /topics %s again: %d %s %v", topic, status, body, err)
		}
		for range 5 {
			recreated = append(recreated, publish())
		}
		resume()
		c.waitReady(ctx, victim, true)
		f, err := subs[2].waitFrame(ctx, "topic_deleted or a discontinuity", topic, func(f cframe) bool {
			return f.Type == "info" && (f.Msg == "topic_deleted" || f.Msg == "discontinuity")
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Logf("the cut-off replica's subscriber was told %s", f)
	})
	w.stayedConnected(t)
	for i, p := range subs {
		var ids []string
		ended := ""
		for _, f := range p.topicFrames(topic) {
			switch {
			case f.Type == "event" && ended == "topic_deleted":
				t.Errorf("%s: event %s after topic_deleted", p.name, f)
			case f.Type == "event" && ended == "discontinuity" && !slices.Contains(recreated, f.id()):
				t.Errorf("%s: after the discontinuity an event that is not the new topic's: %s", p.name, f)
			case f.Type == "event" && slices.Contains(ids, f.id()):
				t.Errorf("%s: message %s twice", p.name, f.id())
			case f.Type == "event":
				ids = append(ids, f.id())
			case f.Type == "info" && (f.Msg == "topic_deleted" || f.Msg == "discontinuity"):
				if ended == "topic_deleted" {
					t.Errorf("%s: %s after topic_deleted", p.name, f)
				}
				ended = f.Msg
			}
		}
		if !slices.Equal(ids[:min(len(ids), len(old))], old) {
			t.Errorf("%s: events %v, want the 5 published before the delete (%v) first", p.name, ids, old)
		}
		if i < 2 && ended != "topic_deleted" {
			t.Errorf("%s: ended with %q, want topic_deleted", p.name, ended)
		}
	}
}
