package domain

import (
	"bytes"
	"errors"
	"slices"
	"strings"
	"testing"
	"unsafe"

	"github.com/google/uuid"
)

// wrapEncoder frames a payload as {"p":<payload>} in a frame of exactly its size, and says where
// the payload lies, as the wire encoder does.
func wrapEncoder(e *Event) ([]byte, int) {
	p := e.Message.Payload
	b := make([]byte, 0, len(p)+6)
	b = append(b, `{"p":`...)
	at := len(b)
	b = append(b, p...)
	return append(b, '}'), at
}

// sizeOf is the Size of an event whose payload has n bytes, no headers, under wrapEncoder.
func sizeOf(n int) int64 { return int64(eventOverhead + n + 6) }

// payload returns a JSON string payload of exactly n bytes (n >= 2).
func payload(n int) []byte { return []byte(`"` + strings.Repeat("x", n-2) + `"`) }

func publishSized(t *testing.T, top *Topic, n int) *Event {
	t.Helper()
	e, _, err := top.Publish(Message{ID: uuid.New(), Payload: payload(n)})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

// The event keeps one copy of its payload: Message.Payload points into Frame, and Size counts the
// frame once.
func TestEventHoldsPayloadOnce(t *testing.T) {
	_, top := newTestTopic(t, TopicConfig{HistorySize: 10, QueueSize: 10, Encoder: wrapEncoder})
	msg := Message{ID: uuid.New(), Payload: payload(1000)}
	e, _, err := top.Publish(msg)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(e.Message.Payload, msg.Payload) {
		t.Fatalf("payload changed: %q", e.Message.Payload)
	}
	frameStart := uintptr(unsafe.Pointer(unsafe.SliceData(e.Frame)))
	p := uintptr(unsafe.Pointer(unsafe.SliceData(e.Message.Payload)))
	if p != frameStart+5 || cap(e.Message.Payload) != len(e.Message.Payload) {
		t.Fatalf("Message.Payload is not the frame's copy (capped): payload at %#x, frame at %#x", p, frameStart)
	}
	if e.Size() != sizeOf(1000) {
		t.Fatalf("Size() = %d, want %d (the frame once plus the overhead)", e.Size(), sizeOf(1000))
	}

	// An encoder that does not hold the payload verbatim leaves the message alone and pays for both.
	_, top2 := newTestTopic(t, TopicConfig{HistorySize: 10, QueueSize: 10,
		Encoder: func(e *Event) ([]byte, int) { return make([]byte, 10), -1 }})
	e2, _, _ := top2.Publish(msg)
	if unsafe.SliceData(e2.Message.Payload) != unsafe.SliceData(msg.Payload) || e2.Size() != int64(eventOverhead+10+cap(msg.Payload)) {
		t.Fatalf("without a payload offset: size %d, payload replaced %v", e2.Size(), unsafe.SliceData(e2.Message.Payload) != unsafe.SliceData(msg.Payload))
	}
}

func TestHistoryBoundedByBytes(t *testing.T) {
	ev := sizeOf(100) // every event below has a 100-byte payload unless said
	tests := []struct {
		name      string
		count     int
		maxBytes  int64
		payloads  []int
		wantSeqs  []uint64
		wantBytes int64
	}{
		{"count binds first", 3, 100 * ev, []int{100, 100, 100, 100, 100}, []uint64{3, 4, 5}, 3 * ev},
		{"bytes bind first", 100, 2*ev + ev/2, []int{100, 100, 100, 100, 100}, []uint64{4, 5}, 2 * ev},
		{"exactly the bound", 100, 3 * ev, []int{100, 100, 100, 100}, []uint64{2, 3, 4}, 3 * ev},
		{"a large event evicts several", 100, 3 * ev, []int{100, 100, 100, 250}, []uint64{3, 4}, ev + sizeOf(250)},
		{"an event above the bound alone stays, the newest", 100, ev, []int{100, 100, 5000}, []uint64{3}, sizeOf(5000)},
		{"no byte bound", 4, 0, []int{100, 100, 100, 100, 100}, []uint64{2, 3, 4, 5}, 4 * ev},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, top := newTestTopic(t, TopicConfig{HistorySize: tt.count, HistoryBytes: tt.maxBytes, QueueSize: 10, Encoder: wrapEncoder})
			for _, n := range tt.payloads {
				publishSized(t, top, n)
			}
			if got := seqs(top.history.Last(1000)); !slices.Equal(got, tt.wantSeqs) {
				t.Fatalf("history = %v, want %v", got, tt.wantSeqs)
			}
			if top.history.Bytes() != tt.wantBytes {
				t.Fatalf("history bytes = %d, want %d", top.history.Bytes(), tt.wantBytes)
			}
			// last_n replays what is still held, whatever n asks for.
			res := subscribe(t, top, "late", &countWaker{}, 1000)
			res.Sub.Release()
			if got := seqs(res.Sub.Drain(nil, 1000).Events); !slices.Equal(got, tt.wantSeqs) || res.Replayed != len(tt.wantSeqs) {
				t.Fatalf("last_n replay = %v (Replayed %d), want %v", got, res.Replayed, tt.wantSeqs)
			}
		})
	}
}

func TestQueueBoundedByBytes(t *testing.T) {
	ev := sizeOf(100)
	t.Run("drop_oldest drops as many as make room, and says so", func(t *testing.T) {
		_, top := newTestTopic(t, TopicConfig{HistorySize: 100, QueueSize: 100, QueueBytes: 3 * ev, Encoder: wrapEncoder})
		w := &backlogWaker{}
		sub := subscribe(t, top, "slow", w, 0).Sub
		sub.Release()
		for range 3 {
			publishSized(t, top, 100)
		}
		if w.backlogs != 1 {
			t.Fatalf("Backlogged %d times, want once when the queue crossed half its bytes", w.backlogs)
		}
		_, st, err := top.Publish(Message{ID: uuid.New(), Payload: payload(250)}) // needs the room of 2
		if err != nil || st.DroppedOldest != 2 || st.Enqueued != 1 {
			t.Fatalf("publish past the bytes: %+v, %v; want 2 dropped, enqueued", st, err)
		}
		b := sub.Drain(nil, 100)
		if !slices.Equal(seqs(b.Events), []uint64{3, 4}) || b.Dropped != 2 {
			t.Fatalf("Drain = %v, Dropped %d; want [3 4] after 2 dropped", seqs(b.Events), b.Dropped)
		}
	})
	t.Run("disconnect trips on bytes as on count", func(t *testing.T) {
		_, top := newTestTopic(t, TopicConfig{HistorySize: 100, QueueSize: 100, QueueBytes: 3 * ev, Policy: Disconnect, Encoder: wrapEncoder})
		sub := subscribe(t, top, "slow", &countWaker{}, 0).Sub
		sub.Release()
		for range 3 {
			publishSized(t, top, 100)
		}
		_, st, _ := top.Publish(Message{ID: uuid.New(), Payload: payload(100)})
		if st.Overflowed != 1 {
			t.Fatalf("stats = %+v, want the subscriber overflowed", st)
		}
		if b := sub.Drain(nil, 100); !b.Overflow || b.Lost != 4 {
			t.Fatalf("Drain = %+v, want Overflow with 4 lost", b)
		}
	})
	for _, p := range []Policy{DropOldest, Disconnect} {
		t.Run("an empty queue takes an event larger than its bound: "+p.String(), func(t *testing.T) {
			_, top := newTestTopic(t, TopicConfig{HistorySize: 100, QueueSize: 100, QueueBytes: ev, Policy: p, Encoder: wrapEncoder})
			sub := subscribe(t, top, "reader", &countWaker{}, 0).Sub
			sub.Release()
			for i := range 3 {
				_, st, _ := top.Publish(Message{ID: uuid.New(), Payload: payload(10 * 100)})
				if st.Enqueued != 1 || st.DroppedOldest != 0 || st.Overflowed != 0 {
					t.Fatalf("publish %d: %+v, want enqueued without loss", i, st)
				}
				// The subscriber reads: each large event goes out before the next arrives.
				if b := sub.Drain(nil, 100); len(b.Events) != 1 || b.Dropped != 0 || b.Overflow {
					t.Fatalf("Drain = %+v, want the one event", b)
				}
			}
		})
	}
}

func TestEventBudget(t *testing.T) {
	ev := sizeOf(100)
	t.Run("history gives back first, then publish is refused while queues hold the bytes", func(t *testing.T) {
		budget := NewBudget(4 * ev)
		r, top := newTestTopic(t, TopicConfig{HistorySize: 100, QueueSize: 100, Events: budget, Encoder: wrapEncoder})
		for range 10 { // no subscriber: the history shrinks to make room, nothing is refused
			publishSized(t, top, 100)
		}
		if budget.Used() != 4*ev || top.history.Len() != 4 {
			t.Fatalf("used %d, history %d; want the budget full of the 4 newest", budget.Used(), top.history.Len())
		}
		sub := subscribe(t, top, "slow", &countWaker{}, 0).Sub
		sub.Release()
		for range 4 { // the queue shares the events with the history: each costs once
			publishSized(t, top, 100)
		}
		if budget.Used() != 4*ev {
			t.Fatalf("used %d, want %d: a queued event that is also in history is charged once", budget.Used(), 4*ev)
		}
		// Now the queue holds all four: the history can give back but the bytes stay held.
		before := top.Stats().Messages
		_, _, err := top.Publish(Message{ID: uuid.New(), Payload: payload(100)})
		var de *Error
		if !errors.As(err, &de) || de.Kind != KindRateLimited || LimitOf(err) != LimitEventMemory {
			t.Fatalf("publish over the budget: %v, want KindRateLimited naming %s", err, LimitEventMemory)
		}
		if top.Stats().Messages != before || budget.Used() > budget.Limit() {
			t.Fatalf("a refused publish was accepted (messages %d -> %d) or the budget passed (%d)", before, top.Stats().Messages, budget.Used())
		}
		// The subscriber reads: the events leave its queue, and with the history gone they leave the
		// budget; publishing works again.
		if b := sub.Drain(nil, 100); len(b.Events) != 4 {
			t.Fatalf("drained %d, want 4", len(b.Events))
		}
		if budget.Used() != 0 {
			t.Fatalf("used %d after the queue drained and the history gave back, want 0", budget.Used())
		}
		publishSized(t, top, 100)
		if err := r.Delete("orders"); err != nil {
			t.Fatal(err)
		}
		if budget.Used() != 0 {
			t.Fatalf("used %d after the topic was deleted, want 0", budget.Used())
		}
	})
	t.Run("every way out of a queue gives the bytes back", func(t *testing.T) {
		ways := []struct {
			name string
			out  func(r *Registry, top *Topic, s *Subscription)
		}{
			{"drain", func(_ *Registry, _ *Topic, s *Subscription) { s.Drain(nil, 1000) }},
			{"unsubscribe", func(_ *Registry, top *Topic, _ *Subscription) { _, _ = top.Unsubscribe("c", nil) }},
			{"abandon", func(_ *Registry, top *Topic, s *Subscription) { top.Detach(s); s.Abandon() }},
			{"topic deleted", func(r *Registry, _ *Topic, s *Subscription) { _ = r.Delete("orders"); s.Drain(nil, 1000) }},
			{"rearm then drain", func(_ *Registry, top *Topic, s *Subscription) {
				res, _ := top.Subscribe(SubscribeSpec{ClientID: "c", Owner: s.Owner, LastN: 1000})
				res.Sub.Release()
				res.Sub.Drain(nil, 1000)
			}},
			{"drop_oldest", func(_ *Registry, top *Topic, s *Subscription) {
				for range 20 {
					publishSized(t, top, 100)
				}
				s.Drain(nil, 1000)
			}},
		}
		for _, w := range ways {
			t.Run(w.name, func(t *testing.T) {
				budget := NewBudget(1 << 20)
				r, top := newTestTopic(t, TopicConfig{HistorySize: 0, QueueSize: 5, Events: budget, Encoder: wrapEncoder})
				owner := &countWaker{}
				sub := subscribe(t, top, "c", owner, 0).Sub
				sub.Release()
				for range 5 {
					publishSized(t, top, 100)
				}
				if budget.Used() != 5*ev {
					t.Fatalf("used %d with 5 queued, want %d", budget.Used(), 5*ev)
				}
				w.out(r, top, sub)
				if budget.Used() != 0 {
					t.Fatalf("used %d after %s, want 0", budget.Used(), w.name)
				}
			})
		}
	})
}

func TestTopicCap(t *testing.T) {
	r := NewRegistry(TopicConfig{MaxTopics: 2})
	for _, n := range []TopicName{"a", "b"} {
		if _, err := r.Create(n, "epoch-1"); err != nil {
			t.Fatal(err)
		}
	}
	_, err := r.Create("c", "epoch-1")
	if KindOf(err) != KindRateLimited || LimitOf(err) != LimitTopics || !strings.Contains(err.Error(), "topic limit (2)") {
		t.Fatalf("third topic: %v, want KindRateLimited naming the topic limit", err)
	}
	if _, err := r.Create("a", "epoch-1"); KindOf(err) != KindExists {
		t.Fatalf("existing topic at the cap: %v, want KindExists (the older answer wins)", err)
	}
	if err := r.Delete("a"); err != nil {
		t.Fatal(err)
	}
	if _, err := r.Create("c", "epoch-1"); err != nil {
		t.Fatalf("create after a delete: %v", err)
	}
}

func TestSubscriptionCap(t *testing.T) {
	r := NewRegistry(TopicConfig{HistorySize: 10, QueueSize: 10, MaxSubscriptions: 2})
	a, _ := r.Create("a", "epoch-1")
	b, _ := r.Create("b", "epoch-1")
	w1, w2 := &countWaker{}, &countWaker{}
	subscribe(t, a, "c1", w1, 0)
	s2 := subscribe(t, b, "c2", w1, 0).Sub
	_, err := a.Subscribe(SubscribeSpec{ClientID: "c3", Owner: w1})
	if KindOf(err) != KindRateLimited || LimitOf(err) != LimitSubscriptions {
		t.Fatalf("third subscription: %v, want KindRateLimited naming %s", err, LimitSubscriptions)
	}
	// At the cap, a renewal and a takeover replace a subscription rather than add one.
	if res := subscribe(t, a, "c1", w1, 0); !res.Renewed {
		t.Fatal("renewal at the cap was not a renewal")
	}
	if res := subscribe(t, a, "c1", w2, 0); res.Replaced == nil {
		t.Fatal("takeover at the cap did not replace")
	}
	if _, n := r.Counts(); n != 2 {
		t.Fatalf("Counts subscriptions = %d, want 2", n)
	}
	// Each way out frees a place.
	top := b
	top.Detach(s2)
	s2.Abandon()
	subscribe(t, a, "c3", w1, 0)
	if _, err := a.Unsubscribe("c3", w1); err != nil {
		t.Fatal(err)
	}
	subscribe(t, b, "c4", w1, 0)
	if err := r.Delete("b"); err != nil {
		t.Fatal(err)
	}
	if _, n := r.Counts(); n != 1 {
		t.Fatalf("Counts subscriptions = %d after the deletes, want 1", n)
	}
	subscribe(t, a, "c5", w1, 0)
	if _, err := a.Subscribe(SubscribeSpec{ClientID: "c6", Owner: w1}); LimitOf(err) != LimitSubscriptions {
		t.Fatalf("over the cap again: %v", err)
	}
}
