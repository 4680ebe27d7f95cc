//go:build linux

package main_test

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/pubsubd/pubsub/internal/broker/redis/redistest"
)

// e2ePerPublisher is how many acked publishes each replica's publisher makes: a few hundred in all.
const e2ePerPublisher = 100

// testEndToEnd: three replicas on one Redis act as one service. Topics created through any
// replica exist on all; subscribers on every replica get every message published on every
// replica once, in seq order, with no gap; last_n and since_seq+epoch read the shared history from
// another replica than the publisher's; a takeover of a client_id across replicas delivers
// nothing twice; a delete on one replica ends every replica's subscriptions after their last
// event; /stats, /health and GET /topics show the whole cluster.
func testEndToEnd(t *testing.T, bin string) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	c := startCluster(ctx, t, bin, 3, redistest.Options{})
	topics := []string{"e2e-a", "e2e-b", "e2e-c"}
	c.createTopics(ctx, topics)

	// Every row of the contract across replicas: the name is taken everywhere, and an unknown topic
	// is unknown everywhere.
	if status, body, err := c.rest(ctx, http.MethodPost, c.reps[1].url("/topics"), map[string]string{"name": "e2e-a"}); err != nil || status != http.StatusConflict {
		t.Fatalf("POST /topics e2e-a again on replica-1: %d %s %v; want 409 TOPIC_EXISTS", status, body, err)
	}
	for _, r := range c.reps {
		p, err := dial(ctx, "unknown-"+r.name, r.wsURL())
		if err != nil {
			t.Fatal(err)
		}
		_, reply, err := p.publish(ctx, "e2e-nope", 1)
		p.close()
		if err != nil || reply.Type != "error" || reply.Error == nil || reply.Error.Code != "TOPIC_NOT_FOUND" {
			t.Fatalf("publish to an unknown topic on %s: %s %v; want TOPIC_NOT_FOUND", r.name, reply, err)
		}
	}

	// Subscribers on every replica, then publishers on every replica.
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
		p, err := w.startPublisher(ctx, fmt.Sprintf("pub-%d", i), r.wsURL(), 0, e2ePerPublisher)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(p.halt)
		w.pubs = append(w.pubs, p)
	}
	for _, p := range w.pubs {
		select {
		case <-p.done:
		case <-ctx.Done():
			t.Fatalf("%s: %d acked publishes not done before the deadline", p.name, e2ePerPublisher)
		}
		if p.err != nil || p.lost > 0 || len(p.refused) > 0 {
			t.Fatalf("with nothing failing every publish is acked: %s; %v", p.summary(), p.err)
		}
	}
	hist := w.finalHistory(ctx, t, c.reps[1])
	for _, topic := range topics {
		if n := len(w.ackedOf(topic)); hist[topic].top != uint64(n) {
			t.Fatalf("%s: the topic's seq is %d after %d acked publishes, all there were", topic, hist[topic].top, n)
		}
	}
	for _, v := range w.check(ctx, t, hist, true) {
		if v.gaps+v.discontinuities+v.drops+v.announcedLost > 0 {
			t.Errorf("with nothing failing nothing may be lost, even announced: %s", v)
		}
	}
	if t.Failed() {
		return
	}

	// The whole cluster in /stats, /health and GET /topics, through every replica: 6 subscribers
	// per topic (2 on each replica), the topic's seq as its messages.
	for _, r := range c.reps {
		c.waitSubscribers(ctx, r, topics, 6)
		var s statsBody
		if err := getJSON(c.http, r.url("/stats"), &s); err != nil {
			t.Fatal(err)
		}
		for _, topic := range topics {
			if got := s.Topics[topic].Messages; got != hist[topic].top {
				t.Errorf("/stats on %s: %s has %d messages, want %d", r.name, topic, got, hist[topic].top)
			}
		}
		var h healthBody
		if err := getJSON(c.http, r.url("/health"), &h); err != nil {
			t.Fatal(err)
		}
		if h.Topics != len(topics) || h.Subscribers != 6*len(topics) {
			t.Errorf("/health on %s: %+v, want %d topics and %d subscribers", r.name, h, len(topics), 6*len(topics))
		}
		var l topicList
		if err := getJSON(c.http, r.url("/topics"), &l); err != nil {
			t.Fatal(err)
		}
		for _, topic := range topics {
			if got, ok := l.subscribers()[topic]; !ok || got != 6 {
				t.Errorf("GET /topics on %s: %s has %d subscribers (listed: %v), want 6", r.name, topic, got, ok)
			}
		}
	}

	// Reference: what a subscriber on replica 0 received, seq -> message id, and its epochs.
	ref := w.subs[0]
	idAt := func(topic string) map[uint64]string {
		m := make(map[uint64]string)
		for _, f := range ref.stream(topic) {
			if f.Type == "event" {
				m[f.Seq] = f.id()
			}
		}
		return m
	}
	epochOf := func(topic string) string {
		ref.mu.Lock()
		defer ref.mu.Unlock()
		return ref.epochs[topic]
	}

	t.Run("LastNFromAnotherReplica", func(t *testing.T) {
		topic, top := "e2e-a", hist["e2e-a"].top
		p, err := dial(ctx, "last-n", c.reps[1].wsURL())
		if err != nil {
			t.Fatal(err)
		}
		defer p.close()
		ack, err := p.subscribe(ctx, topic, "last-n-reader", map[string]any{"last_n": 5})
		if err != nil {
			t.Fatal(err)
		}
		if ack.Seq != top || ack.Epoch != epochOf(topic) {
			t.Fatalf("ack %s: want seq %d and epoch %s (replica-0's)", ack, top, epochOf(topic))
		}
		expectEvents(ctx, t, p, topic, top-4, top, idAt(topic))
	})

	t.Run("SinceSeqFromAnotherReplica", func(t *testing.T) {
		topic, top := "e2e-b", hist["e2e-b"].top
		since := top - 7
		p, err := dial(ctx, "resumer", c.reps[2].wsURL())
		if err != nil {
			t.Fatal(err)
		}
		defer p.close()
		ack, err := p.subscribe(ctx, topic, "resumer", map[string]any{"since_seq": since, "epoch": epochOf(topic)})
		if err != nil {
			t.Fatal(err)
		}
		if ack.Recovered == nil || !*ack.Recovered || ack.Seq != top || ack.Epoch != epochOf(topic) {
			t.Fatalf("resume ack %s: want recovered:true, seq %d, epoch %s", ack, top, epochOf(topic))
		}
		// Another epoch is not recovered: no replay at all, only what is published afterwards.
		stale, err := dial(ctx, "stale-resumer", c.reps[1].wsURL())
		if err != nil {
			t.Fatal(err)
		}
		defer stale.close()
		sack, err := stale.subscribe(ctx, topic, "stale-resumer", map[string]any{"since_seq": since, "epoch": "not-" + epochOf(topic)})
		if err != nil {
			t.Fatal(err)
		}
		if sack.Recovered == nil || *sack.Recovered {
			t.Fatalf("resume with another epoch: ack %s, want recovered:false", sack)
		}
		pub, err := dial(ctx, "resume-publisher", c.reps[0].wsURL())
		if err != nil {
			t.Fatal(err)
		}
		defer pub.close()
		id, reply, err := pub.publish(ctx, topic, "after the resume")
		if err != nil || reply.Type != "ack" {
			t.Fatalf("publish: %s %v", reply, err)
		}
		want := idAt(topic)
		want[top+1] = id
		expectEvents(ctx, t, p, topic, since+1, top+1, want)
		expectEvents(ctx, t, stale, topic, top+1, top+1, want)
	})

	t.Run("TakeoverAcrossReplicas", func(t *testing.T) {
		topic := "e2e-c"
		x, err := dial(ctx, "taker-x", c.reps[0].wsURL())
		if err != nil {
			t.Fatal(err)
		}
		defer x.close()
		ackX, err := x.subscribe(ctx, topic, "taker", nil)
		if err != nil {
			t.Fatal(err)
		}
		w2 := newWorkload([]string{topic})
		pub, err := w2.startPublisher(ctx, "takeover-publisher", c.reps[1].wsURL(), 5*time.Millisecond, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer pub.halt()
		if _, err := x.waitFrame(ctx, "20 live events", topic, func(f cframe) bool { return f.Type == "event" && f.Seq >= ackX.Seq+20 }); err != nil {
			t.Fatal(err)
		}
		// The same client_id from a connection on replica 2, while the publisher on replica 1 goes on.
		y, err := dial(ctx, "taker-y", c.reps[2].wsURL())
		if err != nil {
			t.Fatal(err)
		}
		defer y.close()
		ackY, err := y.subscribe(ctx, topic, "taker", nil)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := x.waitFrame(ctx, "subscription_replaced", topic, func(f cframe) bool { return f.Type == "info" && f.Msg == "subscription_replaced" }); err != nil {
			t.Fatal(err)
		}
		if _, err := y.waitFrame(ctx, "20 live events", topic, func(f cframe) bool { return f.Type == "event" && f.Seq >= ackY.Seq+20 }); err != nil {
			t.Fatal(err)
		}
		pub.halt()
		if pub.err != nil {
			t.Fatal(pub.err)
		}
		top := w.finalHistoryOf(ctx, t, c.reps[0], topic).top
		if _, err := y.waitFrame(ctx, fmt.Sprintf("seq %d", top), topic, func(f cframe) bool { return f.Type == "event" && f.Seq >= top }); err != nil {
			t.Fatal(err)
		}
		// X's events, then subscription_replaced, then Y's events: one consecutive run of seqs from
		// X's subscribe to the top, with nothing twice.
		var xs, ys []uint64
		replaced := false
		for _, f := range x.topicFrames(topic) {
			switch {
			case f.Type == "event" && replaced:
				t.Errorf("taker-x: event %d after subscription_replaced", f.Seq)
			case f.Type == "event":
				xs = append(xs, f.Seq)
			case f.Type == "info" && f.Msg == "subscription_replaced":
				replaced = true
			}
		}
		for _, f := range y.topicFrames(topic) {
			if f.Type == "event" {
				ys = append(ys, f.Seq)
			}
		}
		want := ackX.Seq + 1
		for _, s := range append(xs, ys...) {
			if s != want {
				t.Fatalf("taker: X received %v, then Y received %v: want one run of seqs %d..%d, each once", xs, ys, ackX.Seq+1, top)
			}
			want++
		}
		if want != top+1 {
			t.Fatalf("taker: X and Y received up to seq %d, want %d", want-1, top)
		}
		t.Logf("taker: X received seqs %d..%d on replica-0, Y %d..%d on replica-2", ackX.Seq+1, ackX.Seq+uint64(len(xs)), top-uint64(len(ys))+1, top)
	})

	t.Run("DeleteOnOneReplica", func(t *testing.T) {
		topic := "e2e-a"
		top := w.finalHistoryOf(ctx, t, c.reps[0], topic).top
		if status, body, err := c.rest(ctx, http.MethodDelete, c.reps[2].url("/topics/"+topic), nil); err != nil || status != http.StatusOK {
			t.Fatalf("DELETE /topics/%s on replica-2: %d %s %v; want 200", topic, status, body, err)
		}
		// Every subscriber, on every replica: every event up to the top, then topic_deleted, last.
		for _, s := range w.subs {
			err := s.changed.until(ctx, s.name+" told topic_deleted", func() bool {
				st := s.stream(topic)
				return len(st) > 0 && st[len(st)-1].Type == "info" && st[len(st)-1].Msg == "topic_deleted"
			})
			if err != nil {
				t.Fatal(err)
			}
			st := s.stream(topic)
			if prev := st[len(st)-2]; prev.Type != "event" || prev.Seq != top {
				t.Errorf("%s: before topic_deleted came %s, want the event of seq %d", s.name, prev, top)
			}
		}
		for _, r := range c.reps {
			var l topicList
			if err := getJSON(c.http, r.url("/topics"), &l); err != nil {
				t.Fatal(err)
			}
			if _, ok := l.subscribers()[topic]; ok {
				t.Errorf("GET /topics on %s still lists %s after its delete on replica-2", r.name, topic)
			}
			p, err := dial(ctx, "after-delete", r.wsURL())
			if err != nil {
				t.Fatal(err)
			}
			_, reply, err := p.publish(ctx, topic, 1)
			p.close()
			if err != nil || reply.Error == nil || reply.Error.Code != "TOPIC_NOT_FOUND" {
				t.Errorf("publish to the deleted topic on %s: %s %v; want TOPIC_NOT_FOUND", r.name, reply, err)
			}
		}
	})
}

// expectEvents waits until p has the event of seq `to` on topic, and checks that its events are
// exactly from..to, in order, with the message ids of want.
func expectEvents(ctx context.Context, t *testing.T, p *peer, topic string, from, to uint64, want map[uint64]string) {
	t.Helper()
	if _, err := p.waitFrame(ctx, fmt.Sprintf("seq %d", to), topic, func(f cframe) bool { return f.Type == "event" && f.Seq >= to }); err != nil {
		t.Fatal(err)
	}
	next := from
	for _, f := range p.topicFrames(topic) {
		if f.Type != "event" {
			continue
		}
		if f.Seq != next || f.id() != want[f.Seq] {
			t.Fatalf("%s: event seq %d id %s; want seq %d id %s (events %d..%d)", p.name, f.Seq, f.id(), next, want[next], from, to)
		}
		next++
	}
	if next != to+1 {
		t.Fatalf("%s: events up to %d, want up to %d", p.name, next-1, to)
	}
}
