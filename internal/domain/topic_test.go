package domain

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/google/uuid"
)

// stepClock is a deterministic clock: every reading is one millisecond after the previous one.
type stepClock struct{ t time.Time }

func (c *stepClock) Now() time.Time {
	c.t = c.t.Add(time.Millisecond)
	return c.t
}

func newTestTopic(t *testing.T, cfg TopicConfig) (*Registry, *Topic) {
	t.Helper()
	r := NewRegistry(cfg)
	top, err := r.Create("orders", "epoch-1")
	if err != nil {
		t.Fatal(err)
	}
	return r, top
}

func publishN(t *testing.T, top *Topic, n int) []*Event {
	t.Helper()
	var out []*Event
	for range n {
		e, _, err := top.Publish(Message{ID: uuid.New(), Payload: []byte(`{}`)})
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, e)
	}
	return out
}

func subscribe(t *testing.T, top *Topic, clientID string, owner Waker, lastN int) SubscribeResult {
	t.Helper()
	res, err := top.Subscribe(SubscribeSpec{ClientID: clientID, Owner: owner, LastN: lastN})
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func TestTopicPublishSeqTimeAndFrame(t *testing.T) {
	clock := &stepClock{t: time.Date(2026, 1, 1, 10, 0, 0, 0, time.UTC)}
	encoded := 0
	_, top := newTestTopic(t, TopicConfig{HistorySize: 10, QueueSize: 10, Now: clock.Now,
		Encoder: func(e *Event) ([]byte, int) { encoded++; return []byte{byte(e.Seq)}, -1 }})
	msg := Message{ID: uuid.New(), Payload: []byte(`{"a":1}`), Headers: map[string]string{"k": "v"}}
	var last time.Time
	for want := uint64(1); want <= 3; want++ {
		e, st, err := top.Publish(msg)
		if err != nil {
			t.Fatal(err)
		}
		if e.Seq != want || e.Topic != "orders" || e.Message.ID != msg.ID || string(e.Message.Payload) != `{"a":1}` {
			t.Fatalf("event = %+v, want seq %d of orders carrying the message", e, want)
		}
		if !e.Time.Equal(st.Start) || !e.Time.After(last) {
			t.Fatalf("event time %v, stats start %v, previous %v", e.Time, st.Start, last)
		}
		if !st.Start.Before(st.Appended) || !st.Appended.Before(st.End) {
			t.Fatalf("stats times out of order: %+v", st)
		}
		if len(e.Frame) != 1 || e.Frame[0] != byte(want) {
			t.Fatalf("frame = %v, want the encoder's output for seq %d", e.Frame, want)
		}
		last = e.Time
	}
	if encoded != 3 {
		t.Fatalf("encoder called %d times for 3 publishes, want once per publish", encoded)
	}
	if st := top.Stats(); st.Messages != 3 || st.Subscribers != 0 || st.Name != "orders" {
		t.Fatalf("Stats() = %+v", st)
	}
}

func TestTopicPublishStats(t *testing.T) {
	tests := []struct {
		name   string
		policy Policy
		queue  int
		subs   int
		pubs   int
		want   PublishStats // only the counts are compared
	}{
		{"no subscribers", DropOldest, 2, 0, 1, PublishStats{}},
		{"room for everyone", DropOldest, 2, 3, 2, PublishStats{Subscribers: 3, Enqueued: 3, MaxDepth: 2}},
		{"drop oldest", DropOldest, 2, 3, 3, PublishStats{Subscribers: 3, Enqueued: 3, DroppedOldest: 3, MaxDepth: 2}},
		{"disconnect trips", Disconnect, 2, 2, 3, PublishStats{Subscribers: 2, Overflowed: 2, MaxDepth: 2}},
		{"overflowed subscribers are skipped", Disconnect, 2, 2, 4, PublishStats{Subscribers: 2}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, top := newTestTopic(t, TopicConfig{HistorySize: 10, QueueSize: tt.queue, Policy: tt.policy})
			wakers := make([]*countWaker, tt.subs)
			for i := range wakers {
				wakers[i] = &countWaker{}
				subscribe(t, top, string(rune('a'+i)), wakers[i], 0)
			}
			var st PublishStats
			for range tt.pubs {
				var err error
				if _, st, err = top.Publish(Message{ID: uuid.New(), Payload: []byte(`1`)}); err != nil {
					t.Fatal(err)
				}
			}
			st.Start, st.Appended, st.End = time.Time{}, time.Time{}, time.Time{}
			if st != tt.want {
				t.Fatalf("last PublishStats = %+v, want %+v", st, tt.want)
			}
			// Owners are woken for every push that changed what they must write, and only then.
			wantWakes := min(tt.pubs, tt.queue+1)
			if tt.policy == DropOldest {
				wantWakes = tt.pubs
			}
			for i, w := range wakers {
				if w.n != wantWakes {
					t.Fatalf("owner %d woken %d times, want %d", i, w.n, wantWakes)
				}
			}
		})
	}
}

func TestTopicDeletedRefusesEverything(t *testing.T) {
	r, top := newTestTopic(t, TopicConfig{HistorySize: 10, QueueSize: 10})
	if err := r.Delete("orders"); err != nil {
		t.Fatal(err)
	}
	checks := []struct {
		name string
		call func() error
	}{
		{"Publish", func() error { _, _, err := top.Publish(Message{ID: uuid.New()}); return err }},
		{"Subscribe", func() error { _, err := top.Subscribe(SubscribeSpec{ClientID: "c", Owner: &countWaker{}}); return err }},
		{"Unsubscribe", func() error { _, err := top.Unsubscribe("c", nil); return err }},
	}
	for _, c := range checks {
		t.Run(c.name, func(t *testing.T) {
			err := c.call()
			if KindOf(err) != KindNotFound || !errors.Is(err, ErrNotFound) {
				t.Fatalf("%s on a deleted topic: %v, want KindNotFound", c.name, err)
			}
		})
	}
}

func TestTopicSubscribeReplay(t *testing.T) {
	tests := []struct {
		name  string
		lastN int
		want  []uint64
	}{
		{"none asked", 0, []uint64{}},
		{"negative asks for none", -3, []uint64{}},
		{"fewer than history", 2, []uint64{4, 5}},
		{"exactly the history", 3, []uint64{3, 4, 5}},
		{"more than history gives all of it", 50, []uint64{3, 4, 5}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, top := newTestTopic(t, TopicConfig{HistorySize: 3, QueueSize: 10})
			publishN(t, top, 5)
			res := subscribe(t, top, "c1", &countWaker{}, tt.lastN)
			if res.Replayed != len(tt.want) || res.Renewed || res.Replaced != nil {
				t.Fatalf("SubscribeResult = %+v, want Replayed %d", res, len(tt.want))
			}
			res.Sub.Release()
			publishN(t, top, 1) // a live event follows the replay
			b := res.Sub.Drain(nil, 100)
			want := append(slices.Clone(tt.want), 6)
			if !slices.Equal(seqs(b.Events), want) || b.Replayed != len(tt.want) {
				t.Fatalf("Drain = %v (Replayed %d), want %v", seqs(b.Events), b.Replayed, want)
			}
		})
	}
}

// A same-connection re-subscribe merges the new replay with what is still queued, so the client
// never receives a queued event twice, and holds it all behind the new ack.
func TestTopicResubscribeSameOwner(t *testing.T) {
	_, top := newTestTopic(t, TopicConfig{HistorySize: 10, QueueSize: 10})
	owner := &countWaker{}
	first := subscribe(t, top, "c1", owner, 0)
	first.Sub.Release()
	publishN(t, top, 4)
	if b := first.Sub.Drain(nil, 1); !slices.Equal(seqs(b.Events), []uint64{1}) {
		t.Fatalf("first Drain = %v", seqs(b.Events))
	}
	// 2, 3, 4 are still queued; the new request replays the last 3 (2, 3, 4) again.
	again := subscribe(t, top, "c1", owner, 3)
	if again.Sub != first.Sub || !again.Renewed || again.Replaced != nil || again.Replayed != 3 {
		t.Fatalf("re-subscribe = %+v, want the same subscription renewed with 3 replayed", again)
	}
	publishN(t, top, 1) // queued while held
	if b := again.Sub.Drain(nil, 100); len(b.Events) != 0 {
		t.Fatalf("Drain before the new ack = %v, want nothing", seqs(b.Events))
	}
	again.Sub.Release()
	b := again.Sub.Drain(nil, 100)
	if !slices.Equal(seqs(b.Events), []uint64{2, 3, 4, 5}) {
		t.Fatalf("Drain after re-subscribe = %v, want [2 3 4 5] once each", seqs(b.Events))
	}
	if st := top.Stats(); st.Subscribers != 1 {
		t.Fatalf("Subscribers = %d after a re-subscribe, want 1", st.Subscribers)
	}
}

// Replay reaching further back than the pending events interleaves in seq order.
func TestTopicResubscribeMergesOlderHistory(t *testing.T) {
	_, top := newTestTopic(t, TopicConfig{HistorySize: 10, QueueSize: 10})
	owner := &countWaker{}
	publishN(t, top, 2)
	s := subscribe(t, top, "c1", owner, 1).Sub // replay [2], still held
	publishN(t, top, 2)                        // queued: 3, 4
	subscribe(t, top, "c1", owner, 4)          // history 1..4
	s.Release()
	if b := s.Drain(nil, 100); !slices.Equal(seqs(b.Events), []uint64{1, 2, 3, 4}) {
		t.Fatalf("Drain = %v, want [1 2 3 4]", seqs(b.Events))
	}
}

func TestTopicTakeover(t *testing.T) {
	_, top := newTestTopic(t, TopicConfig{HistorySize: 10, QueueSize: 10})
	oldOwner, newOwner := &countWaker{}, &countWaker{}
	old := subscribe(t, top, "c1", oldOwner, 0).Sub
	old.Release()
	publishN(t, top, 2)
	wakesBefore := oldOwner.n

	res := subscribe(t, top, "c1", newOwner, 0)
	if res.Replaced != old || res.Sub == old || res.Renewed {
		t.Fatalf("takeover result = %+v, want a new subscription replacing the old one", res)
	}
	if oldOwner.n != wakesBefore+1 {
		t.Fatalf("old owner woken %d times by the takeover, want once", oldOwner.n-wakesBefore)
	}
	res.Sub.Release()
	publishN(t, top, 1)

	// The old connection flushes what it had, then learns it was replaced; it gets nothing newer.
	b := old.Drain(nil, 100)
	if !slices.Equal(seqs(b.Events), []uint64{1, 2}) || b.End != Replaced || b.Lost != 0 {
		t.Fatalf("old Drain = %v End %v Lost %d, want [1 2] then Replaced", seqs(b.Events), b.End, b.Lost)
	}
	if b := res.Sub.Drain(nil, 100); !slices.Equal(seqs(b.Events), []uint64{3}) || b.End != Live {
		t.Fatalf("new Drain = %v End %v, want [3] and live", seqs(b.Events), b.End)
	}
	if st := top.Stats(); st.Subscribers != 1 {
		t.Fatalf("Subscribers = %d after a takeover, want 1", st.Subscribers)
	}
	// Taking it back from the replaced owner makes a fresh subscription again.
	back := subscribe(t, top, "c1", oldOwner, 0)
	if back.Replaced != res.Sub || back.Renewed {
		t.Fatalf("take-back result = %+v", back)
	}
}

func TestTopicUnsubscribeIdempotent(t *testing.T) {
	_, top := newTestTopic(t, TopicConfig{HistorySize: 10, QueueSize: 10})
	owner := &countWaker{}
	s := subscribe(t, top, "c1", owner, 0).Sub
	s.Release()
	publishN(t, top, 2)
	wakes := owner.n

	tests := []struct {
		name      string
		clientID  string
		wantFound bool
		wantWakes int
	}{
		{"held subscription", "c1", true, wakes + 1},
		{"again", "c1", false, wakes + 1},
		{"never subscribed", "nobody", false, wakes + 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			found, err := top.Unsubscribe(tt.clientID, owner)
			if err != nil || found != tt.wantFound || owner.n != tt.wantWakes {
				t.Fatalf("Unsubscribe(%q) = %v, %v (wakes %d), want %v, nil (wakes %d)",
					tt.clientID, found, err, owner.n, tt.wantFound, tt.wantWakes)
			}
		})
	}
	if b := s.Drain(nil, 100); len(b.Events) != 0 || b.End != Unsubscribed || b.Lost != 0 {
		t.Fatalf("Drain after Unsubscribe = %+v, want End Unsubscribed and nothing lost", b)
	}
	if st := top.Stats(); st.Subscribers != 0 {
		t.Fatalf("Subscribers = %d", st.Subscribers)
	}
}

func TestTopicDetach(t *testing.T) {
	_, top := newTestTopic(t, TopicConfig{HistorySize: 10, QueueSize: 10})
	old := subscribe(t, top, "c1", &countWaker{}, 0).Sub
	cur := subscribe(t, top, "c1", &countWaker{}, 0).Sub
	cur.Release()

	top.Detach(old) // the replaced connection goes away: the newer subscription must survive
	if st := top.Stats(); st.Subscribers != 1 {
		t.Fatalf("Subscribers = %d after detaching a replaced subscription, want 1", st.Subscribers)
	}
	publishN(t, top, 1)
	if b := cur.Drain(nil, 100); len(b.Events) != 1 {
		t.Fatalf("current subscription got %v after the old one detached, want 1 event", seqs(b.Events))
	}

	top.Detach(cur)
	top.Detach(cur) // twice is harmless
	if st := top.Stats(); st.Subscribers != 0 {
		t.Fatalf("Subscribers = %d after Detach, want 0", st.Subscribers)
	}
	if _, st, _ := top.Publish(Message{ID: uuid.New()}); st.Subscribers != 0 {
		t.Fatalf("a detached subscription still receives: %+v", st)
	}
}

func TestRegistry(t *testing.T) {
	r := NewRegistry(TopicConfig{HistorySize: 10, QueueSize: 10})
	for _, name := range []TopicName{"b", "c", "a"} {
		if _, err := r.Create(name, "epoch-1"); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := r.Create("b", "epoch-1"); KindOf(err) != KindExists || !errors.Is(err, ErrExists) {
		t.Fatalf("Create of an existing topic: %v, want KindExists", err)
	}
	b, err := r.Get("b")
	if err != nil || b.Name() != "b" {
		t.Fatalf("Get(b) = %v, %v", b, err)
	}
	if _, err := r.Get("zzz"); KindOf(err) != KindNotFound {
		t.Fatalf("Get of a missing topic: %v, want KindNotFound", err)
	}
	owner := &countWaker{}
	sub := subscribe(t, b, "c1", owner, 0).Sub
	sub.Release()
	subscribe(t, b, "c2", &countWaker{}, 0)
	a, _ := r.Get("a")
	subscribe(t, a, "c1", &countWaker{}, 0)
	publishN(t, b, 3)

	if topics, subs := r.Counts(); topics != 3 || subs != 3 {
		t.Fatalf("Counts() = %d, %d, want 3, 3", topics, subs)
	}
	wantStats := []TopicStats{{"a", 0, 1}, {"b", 3, 2}, {"c", 0, 0}}
	if got := r.Stats(); !slices.Equal(got, wantStats) {
		t.Fatalf("Stats() = %+v, want %+v", got, wantStats)
	}

	wakes := owner.n
	if err := r.Delete("b"); err != nil {
		t.Fatal(err)
	}
	if owner.n != wakes+1 {
		t.Fatal("Delete did not wake the subscriber's owner")
	}
	if bt := sub.Drain(nil, 100); bt.End != TopicDeleted || bt.Lost != 3 || len(bt.Events) != 0 {
		t.Fatalf("Drain after Delete = %+v, want End TopicDeleted with 3 lost", bt)
	}
	if err := r.Delete("b"); KindOf(err) != KindNotFound {
		t.Fatalf("second Delete: %v, want KindNotFound", err)
	}
	if _, err := r.Get("b"); KindOf(err) != KindNotFound {
		t.Fatalf("Get after Delete: %v, want KindNotFound", err)
	}
	if topics, subs := r.Counts(); topics != 2 || subs != 1 {
		t.Fatalf("Counts() after Delete = %d, %d, want 2, 1", topics, subs)
	}

	// Created again, the topic starts empty: no history, no subscribers, seq from 1.
	b2, err := r.Create("b", "epoch-1")
	if err != nil || b2 == b {
		t.Fatalf("re-Create(b) = %p, %v, want a new topic", b2, err)
	}
	if st := b2.Stats(); st.Messages != 0 || st.Subscribers != 0 {
		t.Fatalf("recreated Stats() = %+v, want zeros", st)
	}
	if res := subscribe(t, b2, "c1", owner, 100); res.Replayed != 0 || res.Replaced != nil {
		t.Fatalf("subscribe to the recreated topic = %+v, want no replay and no takeover", res)
	}
	if e := publishN(t, b2, 1)[0]; e.Seq != 1 {
		t.Fatalf("first seq of the recreated topic = %d, want 1", e.Seq)
	}
}

// backlogWaker counts Wake and Backlogged calls (under the topic's lock, like countWaker).
type backlogWaker struct{ wakes, backlogs int }

func (w *backlogWaker) Wake()       { w.wakes++ }
func (w *backlogWaker) Backlogged() { w.backlogs++ }

func TestTopicTellsOwnersOfBacklogs(t *testing.T) {
	tests := []struct {
		name     string
		queue    int
		policy   Policy
		pubs     int // published before the owner drains
		drain    bool
		pubs2    int // published after
		backlogs int
	}{
		{"below the mark", 10, DropOldest, 4, false, 0, 0},
		{"at half the queue, once", 10, DropOldest, 5, false, 0, 1},
		{"past it, still once", 10, DropOldest, 30, false, 0, 1},
		{"again after draining", 10, DropOldest, 5, true, 5, 2},
		{"not again without draining", 10, DropOldest, 5, false, 5, 1},
		{"queue of one", 1, DropOldest, 1, true, 1, 2},
		{"disconnect policy", 10, Disconnect, 5, false, 0, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, top := newTestTopic(t, TopicConfig{HistorySize: 10, QueueSize: tt.queue, Policy: tt.policy})
			w := &backlogWaker{}
			sub := subscribe(t, top, "a", w, 0).Sub
			sub.Release()
			publish := func(n int) {
				for range n {
					if _, _, err := top.Publish(Message{ID: uuid.New(), Payload: []byte(`1`)}); err != nil {
						t.Fatal(err)
					}
				}
			}
			publish(tt.pubs)
			if tt.drain {
				sub.Drain(nil, tt.queue)
			}
			publish(tt.pubs2)
			if w.backlogs != tt.backlogs {
				t.Fatalf("Backlogged %d times, want %d", w.backlogs, tt.backlogs)
			}
			if w.wakes != tt.pubs+tt.pubs2 {
				t.Fatalf("woken %d times, want one per push: %d", w.wakes, tt.pubs+tt.pubs2)
			}
		})
	}
}
