package ws_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/gorilla/websocket"

	"github.com/pubsubd/pubsub/internal/domain"
	"github.com/pubsubd/pubsub/internal/service"
	"github.com/pubsubd/pubsub/internal/transport/ws"
)

type pubPayload struct {
	P int `json:"p"` // publisher
	N int `json:"n"` // that publisher's sequence
}

// TestConcurrentFanout: 50 publishers x 10 subscribers; every subscriber gets every message exactly
// once, in each publisher's order, with topic seq increasing by one.
func TestConcurrentFanout(t *testing.T) {
	const pubs, subs, each = 50, 10, 40
	// The subscribers read only once every publisher has its acks: until then their sockets may
	// be full, and the write timeout must not cut them off however long publishing takes.
	s := newServer(t, serverOpts{queue: pubs * each, ws: wsConfig(func(c *wsCfg) { c.WriteTimeout = stalledPeerWriteTimeout(t) })})
	s.createTopic(t, "fan")
	readers := make([]*client, subs)
	for i := range readers {
		readers[i] = s.dial(t)
		readers[i].subscribe("fan", fmt.Sprintf("s%d", i), 0)
	}
	var wg sync.WaitGroup
	for p := 0; p < pubs; p++ {
		c := s.dial(t)
		wg.Add(1)
		go func(p int, c *client) {
			defer wg.Done()
			for n := 0; n < each; n++ {
				b, _ := json.Marshal(map[string]any{"type": "publish", "topic": "fan", "request_id": fmt.Sprint(n),
					"message": map[string]any{"id": uuid.NewString(), "payload": pubPayload{p, n}}})
				if err := c.conn.WriteMessage(websocket.TextMessage, b); err != nil {
					t.Errorf("publisher %d: %v", p, err)
					return
				}
			}
			for n := 0; n < each; n++ {
				if f, err := c.tryRead(waitFor); err != nil || f.Type != "ack" {
					t.Errorf("publisher %d ack %d: %v %s", p, n, err, f.raw)
					return
				}
			}
		}(p, c)
	}
	wg.Wait()
	var rwg sync.WaitGroup
	for i, r := range readers {
		rwg.Add(1)
		go func(i int, r *client) {
			defer rwg.Done()
			next := make([]int, pubs)
			for k := 0; k < pubs*each; k++ {
				f, err := r.tryRead(waitFor)
				if err != nil || f.Type != "event" {
					t.Errorf("subscriber %d event %d: %v %s", i, k, err, f.raw)
					return
				}
				if f.Seq != uint64(k+1) {
					t.Errorf("subscriber %d: seq %d at position %d", i, f.Seq, k)
					return
				}
				var pp pubPayload
				_ = json.Unmarshal(f.Message.Payload, &pp)
				if pp.N != next[pp.P] {
					t.Errorf("subscriber %d: publisher %d message %d, want %d", i, pp.P, pp.N, next[pp.P])
					return
				}
				next[pp.P]++
			}
		}(i, r)
	}
	rwg.Wait()
	for i, r := range readers {
		if extra := r.barrier(); len(extra) != 0 {
			t.Fatalf("subscriber %d got an extra frame %s", i, extra[0].raw)
		}
	}
}

// TestReplayBoundary: while a publisher keeps publishing, a subscriber asking for last_n gets its
// ack, then a gap-free run of seqs: history, then live, nothing lost or repeated at the seam.
func TestReplayBoundary(t *testing.T) {
	// The publisher never reads its acks: the write timeout must not cut it off mid-test.
	s := newServer(t, serverOpts{queue: 10000, history: 50, ws: wsConfig(func(c *wsCfg) { c.WriteTimeout = stalledPeerWriteTimeout(t) })})
	s.createTopic(t, "r")
	pub := s.dial(t)
	stop := make(chan struct{})
	published := make(chan int, 1)
	go func() {
		n := 0
		defer func() { published <- n }()
		for {
			select {
			case <-stop:
				return
			default:
			}
			b, _ := json.Marshal(map[string]any{"type": "publish", "topic": "r", "message": map[string]any{"id": uuid.NewString(), "payload": n}})
			if err := pub.conn.WriteMessage(websocket.TextMessage, b); err != nil {
				return
			}
			n++
		}
	}()
	// Wait until there is history to replay.
	deadline := time.Now().Add(waitFor)
	for {
		_, st := s.do(t, "GET", "/stats", "")
		if st["topics"].(map[string]any)["r"].(map[string]any)["messages"].(float64) >= 20 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("publisher made no progress")
		}
		time.Sleep(time.Millisecond) // polling a condition with a deadline
	}
	subs := make([]*client, 5)
	for i := range subs {
		subs[i] = s.dial(t)
		subs[i].send(map[string]any{"type": "subscribe", "topic": "r", "client_id": fmt.Sprint("c", i), "last_n": 10, "request_id": "s"})
	}
	firsts := make([]uint64, len(subs))
	for i, c := range subs {
		if f := c.read(); f.Type != "ack" {
			t.Fatalf("subscriber %d: first frame %s, want the ack", i, f.raw)
		}
		first := c.expect("event")
		firsts[i] = first.Seq
		for k := 1; k < 200; k++ {
			f := c.expect("event")
			if f.Seq != first.Seq+uint64(k) {
				t.Fatalf("subscriber %d: seq %d after %d (gap or duplicate at the replay seam)", i, f.Seq, first.Seq+uint64(k-1))
			}
		}
	}
	close(stop)
	<-published
	for i, f := range firsts {
		if f < 1 {
			t.Fatalf("subscriber %d: replay began at %d", i, f)
		}
	}
	// Drain what the publisher still had in flight before the connections close.
	for _, c := range append(subs, pub) {
		_ = c.conn.Close()
	}
}

func TestLastNLargerThanHistoryReplaysAll(t *testing.T) {
	s := newServer(t, serverOpts{history: 5})
	s.createTopic(t, "h")
	pub := s.dial(t)
	for i := 0; i < 8; i++ {
		pub.publish("h", i, "p")
		pub.expect("ack")
	}
	c := s.dial(t)
	c.subscribe("h", "x", 1000)
	for want := uint64(4); want <= 8; want++ {
		if f := c.expect("event"); f.Seq != want {
			t.Fatalf("replay seq %d, want %d", f.Seq, want)
		}
	}
	// Same connection, same client id: acknowledged again, replays again, nothing twice live.
	c.subscribe("h", "x", 2)
	for want := uint64(7); want <= 8; want++ {
		if f := c.expect("event"); f.Seq != want {
			t.Fatalf("re-subscribe replay seq %d, want %d", f.Seq, want)
		}
	}
	pub.publish("h", "live", "p")
	pub.expect("ack")
	if f := c.expect("event"); f.Seq != 9 {
		t.Fatalf("live seq %d", f.Seq)
	}
	if extra := c.barrier(); len(extra) != 0 {
		t.Fatalf("duplicate delivery: %s", extra[0].raw)
	}
}

// stalledSubscriber subscribes and then stops reading, so the server's writes block once the
// socket buffers are full and its queue overflows.
func publishBig(t *testing.T, pub *client, topic string, n, size int) {
	t.Helper()
	payload := strings.Repeat("x", size)
	for i := 0; i < n; i++ {
		pub.publish(topic, payload, fmt.Sprint(i))
		pub.expect("ack") // acks are never dropped, whatever the subscriber queues do
	}
}

func TestDropOldestTellsTheSubscriber(t *testing.T) {
	// The slow subscriber reads nothing until all n messages are published, which takes seconds
	// under the race detector on a busy machine: only drop_oldest may act on that stall, never
	// the write timeout (which would close the connection and fail the reads below).
	s := newServer(t, serverOpts{queue: 4, policy: domain.DropOldest, ws: wsConfig(func(c *wsCfg) { c.WriteTimeout = stalledPeerWriteTimeout(t) })})
	s.createTopic(t, "slow")
	slow, fast, pub := s.dial(t), s.dial(t), s.dial(t)
	slow.subscribe("slow", "slow", 0)
	fast.subscribe("slow", "fast", 0)
	// Lockstep: each message is published once the fast subscriber has the previous one, so the
	// fast subscriber's queue never holds more than one event however loaded the machine is,
	// while the stalled one's socket buffers fill (~19 MB is more than loopback buffers hold) and
	// its queue overflows.
	const n, size = 300, 64 << 10
	payload := strings.Repeat("x", size)
	for i := 0; i < n; i++ {
		pub.publish("slow", payload, fmt.Sprint(i))
		pub.expect("ack")
		if f := fast.read(); f.Type != "event" || f.Seq != uint64(i+1) {
			t.Fatalf("fast subscriber lost or reordered: frame %d is %s seq %d", i, f.Type, f.Seq)
		}
	}
	// Now the slow one reads everything: every gap in seq is announced, exactly, before it.
	var got, announced uint64
	var last uint64
	pending := uint64(0)
	for last < n {
		f := slow.read()
		switch f.Type {
		case "error":
			if f.Error.Code != "SLOW_CONSUMER" || f.Topic != "slow" {
				t.Fatalf("unexpected error %s", f.raw)
			}
			var k uint64
			if _, err := fmt.Sscanf(f.Error.Message, "dropped %d messages", &k); err != nil {
				t.Fatalf("message %q", f.Error.Message)
			}
			pending += k
			announced += k
		case "event":
			if gap := f.Seq - last - 1; gap != pending {
				t.Fatalf("seq jumped %d -> %d but %d drops were announced", last, f.Seq, pending)
			}
			pending = 0
			last = f.Seq
			got++
		default:
			t.Fatalf("unexpected %s", f.raw)
		}
	}
	if announced == 0 || got+announced != n {
		t.Fatalf("received %d + announced drops %d != published %d", got, announced, n)
	}
	if !strings.Contains(s.logs.String(), `"msg":"slow consumer dropped messages"`) {
		t.Errorf("the episode was not logged")
	}
}

// TestDisconnectPolicyCloses1008: a subscriber that reads, but slower than the topic publishes,
// overflows its queue; it is told SLOW_CONSUMER and closed with 1008, after the events it had.
// "Slower" is relative to the stall bound the test sets: a batch of 4 of its frames takes it 80ms,
// far past the 10ms a write may wait before the client is not waited for (see TestDisconnectMetrics).
func TestDisconnectPolicyCloses1008(t *testing.T) {
	s := newServer(t, serverOpts{queue: 4, policy: domain.Disconnect, ws: ws.Config{PublishStallMax: 20 * time.Millisecond}})
	s.createTopic(t, "d")
	slow, pub := s.dial(t), s.dial(t)
	slow.subscribe("d", "slow", 0)
	type result struct {
		code   int
		frames []frame
	}
	res := make(chan result, 1)
	go func() {
		var frames []frame
		for {
			time.Sleep(20 * time.Millisecond) // the slow reader's processing time, not synchronisation
			f, err := slow.tryRead(waitFor)
			if err != nil {
				ce, _ := err.(*websocket.CloseError)
				code := 0
				if ce != nil {
					code = ce.Code
				}
				res <- result{code, frames}
				return
			}
			frames = append(frames, f)
		}
	}()
	publishUntilDisconnected(t, s, pub, "d")
	r := <-res
	if r.code != websocket.ClosePolicyViolation {
		t.Fatalf("close code %d, want 1008", r.code)
	}
	last := r.frames[len(r.frames)-1]
	if last.Type != "error" || last.Error.Code != "SLOW_CONSUMER" || last.Topic != "d" {
		t.Fatalf("last frame before close: %s", last.raw)
	}
	for i, f := range r.frames[:len(r.frames)-1] {
		if f.Type != "event" || f.Seq != uint64(i+1) {
			t.Fatalf("frame %d before the notice: %s", i, f.raw)
		}
	}
	if !strings.Contains(s.logs.String(), `"msg":"slow consumer disconnected"`) {
		t.Errorf("disconnect not logged")
	}
}

func TestControlRepliesAreNeverDropped(t *testing.T) {
	s := newServer(t, serverOpts{queue: 1, policy: domain.DropOldest})
	s.createTopic(t, "self")
	c := s.dial(t)
	c.subscribe("self", "me", 0)
	const n = 200
	for i := 0; i < n; i++ {
		c.publish("self", i, fmt.Sprint("p", i))
	}
	acks := 0
	for acks < n {
		f := c.read()
		if f.Type == "ack" {
			if *f.RequestID != fmt.Sprint("p", acks) {
				t.Fatalf("ack %s out of order, want p%d", *f.RequestID, acks)
			}
			acks++
		}
	}
}

func TestTopicDeletion(t *testing.T) {
	s := newServer(t, serverOpts{})
	s.createTopic(t, "gone")
	a, b := s.dial(t), s.dial(t)
	a.subscribe("gone", "a", 0)
	b.subscribe("gone", "b", 0)
	pub := s.dial(t)
	pub.publish("gone", 1, "p")
	pub.expect("ack")
	if code, _ := s.do(t, "DELETE", "/topics/gone", ""); code != 200 {
		t.Fatal(code)
	}
	for _, c := range []*client{a, b} {
		frames := c.barrier()
		last := frames[len(frames)-1]
		if last.Type != "info" || last.Msg != "topic_deleted" || last.Topic != "gone" || last.TS == "" {
			t.Fatalf("want topic_deleted, got %s", last.raw)
		}
	}
	// Recreated: empty, counters at zero, seq from 1, old subscribers not subscribed.
	s.createTopic(t, "gone")
	_, st := s.do(t, "GET", "/stats", "")
	if b, _ := json.Marshal(st); string(b) != `{"topics":{"gone":{"messages":0,"subscribers":0}}}` {
		t.Fatalf("stats after recreate = %s", b)
	}
	c := s.dial(t)
	c.subscribe("gone", "c", 100)
	pub.publish("gone", 2, "p")
	pub.expect("ack")
	if f := c.expect("event"); f.Seq != 1 {
		t.Fatalf("first seq after recreate = %d (history leaked?)", f.Seq)
	}
	if extra := a.barrier(); len(extra) != 0 {
		t.Fatalf("old subscriber got %s", extra[0].raw)
	}
}

func TestTakeoverFromAnotherConnection(t *testing.T) {
	s := newServer(t, serverOpts{})
	s.createTopic(t, "t")
	old, nw, pub := s.dial(t), s.dial(t), s.dial(t)
	old.subscribe("t", "s1", 0)
	pub.publish("t", "before", "p1")
	pub.expect("ack")
	if f := old.expect("event"); f.Seq != 1 {
		t.Fatal(f.raw)
	}
	nw.subscribe("t", "s1", 0)
	if f := old.expect("info"); f.Msg != "subscription_replaced" || f.Topic != "t" {
		t.Fatalf("old connection: %s", f.raw)
	}
	pub.publish("t", "after", "p2")
	pub.expect("ack")
	if f := nw.expect("event"); f.Seq != 2 {
		t.Fatal(f.raw)
	}
	if extra := old.barrier(); len(extra) != 0 {
		t.Fatalf("old connection still receives: %s", extra[0].raw)
	}
	if extra := nw.barrier(); len(extra) != 0 {
		t.Fatalf("duplicate: %s", extra[0].raw)
	}
	_, h := s.do(t, "GET", "/health", "")
	if h["subscribers"] != float64(1) {
		t.Fatalf("subscribers = %v", h["subscribers"])
	}
}

func TestGracefulShutdown(t *testing.T) {
	s := newServer(t, serverOpts{queue: 1000})
	s.createTopic(t, "t")
	sub, pub := s.dial(t), s.dial(t)
	sub.subscribe("t", "s", 0)
	const n = 50
	for i := 0; i < n; i++ {
		pub.publish("t", i, "p")
	}
	for i := 0; i < n; i++ {
		pub.expect("ack")
	}
	s.Svc.BeginDrain()
	if code, body := s.do(t, "GET", "/readyz", ""); code != 503 {
		t.Fatalf("readyz while draining: %d %v", code, body)
	}
	if code, body := s.do(t, "POST", "/topics", `{"name":"new"}`); code != 503 || body["error"].(map[string]any)["code"] != "UNAVAILABLE" {
		t.Fatalf("create while draining: %d %v", code, body)
	}
	pub.publish("t", "late", "late")
	if f := pub.expect("error"); f.Error.Code != "INTERNAL" || *f.RequestID != "late" {
		t.Fatalf("publish while draining: %s", f.raw)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	done := make(chan error, 1)
	start := time.Now()
	go func() { done <- s.WS.Shutdown(ctx) }()
	// The subscriber gets every queued event, then server_shutdown, then 1001.
	code, frames := sub.expectClose()
	if code != websocket.CloseGoingAway {
		t.Fatalf("close code %d, want 1001", code)
	}
	for i := 0; i < n; i++ {
		if frames[i].Type != "event" || frames[i].Seq != uint64(i+1) {
			t.Fatalf("frame %d: %s", i, frames[i].raw)
		}
	}
	if last := frames[len(frames)-1]; last.Type != "info" || last.Msg != "server_shutdown" {
		t.Fatalf("last frame %s", last.raw)
	}
	if err := <-done; err != nil || time.Since(start) > 3*time.Second {
		t.Fatalf("shutdown: %v after %s", err, time.Since(start))
	}
	u := "ws" + strings.TrimPrefix(s.URL, "http") + "/ws"
	if _, resp, err := websocket.DefaultDialer.Dial(u, nil); err == nil || resp == nil || resp.StatusCode != 503 {
		t.Fatalf("new connection while shutting down: %v %v", err, resp)
	}
}

// TestShutdownBoundedByDrainTimeout: a subscriber that reads nothing cannot hold the shutdown
// past its deadline.
func TestShutdownBoundedByDrainTimeout(t *testing.T) {
	// Only the drain deadline may end the stuck subscriber's write: with a write timeout shorter
	// than the publishing below, it could be gone before the shutdown, which would prove nothing.
	s := newServer(t, serverOpts{queue: 1000, ws: wsConfig(func(c *wsCfg) { c.WriteTimeout = stalledPeerWriteTimeout(t) })})
	s.createTopic(t, "t")
	stuck, pub := s.dial(t), s.dial(t)
	stuck.subscribe("t", "s", 0)
	publishBig(t, pub, "t", 200, 64<<10)
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	_ = s.WS.Shutdown(ctx)
	if d := time.Since(start); d > 2*time.Second {
		t.Fatalf("shutdown took %s with a 300ms drain timeout", d)
	}
}

type panicky struct{ service.API }

func (p panicky) Publish(ctx context.Context, req service.PublishRequest) (*domain.Event, error) {
	if string(req.Message.Payload) == `"boom"` {
		panic("boom")
	}
	return p.API.Publish(ctx, req)
}

func TestPanicClosesOnlyThatConnection(t *testing.T) {
	s := newServer(t, serverOpts{wrap: func(a service.API) service.API { return panicky{a} }})
	s.createTopic(t, "t")
	victim, other := s.dial(t), s.dial(t)
	other.subscribe("t", "o", 0)
	victim.publish("t", "boom", "x")
	if code, _ := victim.expectClose(); code != websocket.CloseInternalServerErr {
		t.Fatalf("close code %d, want 1011", code)
	}
	other.publish("t", "fine", "y") // to the same topic: the panic left nothing locked
	got := map[string]bool{}
	for _, f := range []frame{other.read(), other.read()} { // its own event and its ack, in either order
		got[f.Type] = true
		if f.Type == "event" && string(f.Message.Payload) != `"fine"` {
			t.Fatal(f.raw)
		}
	}
	if !got["ack"] || !got["event"] {
		t.Fatalf("other connection got %v", got)
	}
	if !strings.Contains(s.logs.String(), "panic while serving a connection") {
		t.Fatal("panic not logged")
	}
	if n := metric(t, s, "pubsub_panics_total", "component", "reader"); n != 1 {
		t.Fatalf("pubsub_panics_total{component=reader} = %v, want 1", n)
	}
}
