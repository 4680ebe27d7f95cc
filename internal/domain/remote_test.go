package domain

import (
	"fmt"
	"slices"
	"testing"
	"time"
)

// remoteEvent is an event as the Redis engine rebuilds it: new, unheld, with a frame.
func remoteEvent(seq uint64) *Event {
	return NewEvent("orders", seq, time.Unix(int64(seq), 0), Message{Payload: []byte(`1`)}, fmt.Appendf(nil, "f%d", seq), false)
}

func remoteEvents(from, to uint64) []*Event {
	var out []*Event
	for s := from; s <= to; s++ {
		out = append(out, remoteEvent(s))
	}
	return out
}

func deliver(t *testing.T, top *Topic, from, to uint64) {
	t.Helper()
	for s := from; s <= to; s++ {
		if _, err := top.Deliver(remoteEvent(s), time.Now()); err != nil {
			t.Fatal(err)
		}
	}
}

func drainSeqs(s *Subscription) []uint64 {
	s.Release()
	b := s.Drain(nil, 1000)
	return seqs(b.Events)
}

// Attach is the subscribe seam of an engine that sequences elsewhere: the replay read from the
// shared history, completed from the local window when the live feed delivered past the read,
// trimmed by last_n or the resume rule, and a floor so that live events at or below the replay's
// top are never queued twice.
func TestAttach(t *testing.T) {
	tests := []struct {
		name      string
		delivered uint64 // the live feed delivered 1..delivered before the attach
		window    int    // HistorySize: the local window
		spec      AttachSpec
		then      uint64 // live events delivered after the attach, delivered+1..then
		want      []uint64
		recovered bool
		wantErr   Kind
	}{
		{name: "read ahead of the live feed: the floor skips what the replay has", delivered: 2, window: 10,
			spec: AttachSpec{SubscribeSpec: SubscribeSpec{LastN: 3}, Read: remoteEvents(3, 5), ReadTop: 5}, then: 7,
			want: []uint64{3, 4, 5, 6, 7}},
		{name: "live feed ahead of the read: the window completes the replay", delivered: 7, window: 10,
			spec: AttachSpec{SubscribeSpec: SubscribeSpec{LastN: 3}, Read: remoteEvents(3, 5), ReadTop: 5}, then: 8,
			want: []uint64{5, 6, 7, 8}},
		{name: "no replay asked", delivered: 7, window: 0,
			spec: AttachSpec{Read: nil, ReadTop: 5}, then: 9, want: []uint64{8, 9}},
		{name: "window too short for the replay asked: retry", delivered: 9, window: 2,
			spec: AttachSpec{SubscribeSpec: SubscribeSpec{LastN: 5}, Read: remoteEvents(3, 5), ReadTop: 5}, wantErr: KindUnavailable},
		{name: "resume recovered", delivered: 5, window: 10,
			spec: AttachSpec{SubscribeSpec: SubscribeSpec{Resume: true, SinceSeq: 3}, Read: remoteEvents(4, 5), ReadTop: 5, Recoverable: true},
			then: 6, want: []uint64{4, 5, 6}, recovered: true},
		{name: "resume with a hole: nothing replayed", delivered: 5, window: 10,
			spec: AttachSpec{SubscribeSpec: SubscribeSpec{Resume: true, SinceSeq: 2}, Read: remoteEvents(4, 5), ReadTop: 5, Recoverable: true},
			then: 6, want: []uint64{6}},
		{name: "resume the engine knows cannot recover", delivered: 5, window: 10,
			spec: AttachSpec{SubscribeSpec: SubscribeSpec{Resume: true, SinceSeq: 3}, Read: remoteEvents(4, 5), ReadTop: 5},
			then: 6, want: []uint64{6}},
		{name: "takeover: everything after the released seq", delivered: 5, window: 10,
			spec: AttachSpec{Read: remoteEvents(3, 5), ReadTop: 5, Released: 2}, then: 6, want: []uint64{3, 4, 5, 6}},
		{name: "takeover with a lead notice first", delivered: 5, window: 10,
			spec: AttachSpec{Read: remoteEvents(4, 5), ReadTop: 5, Released: 2, Lead: NewNotice("orders", time.Now(), []byte("gap"))},
			then: 5, want: []uint64{0, 4, 5}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := NewMirrors(TopicConfig{HistorySize: tt.window, QueueSize: 100})
			top := m.Open("orders", "e1", 0)
			deliver(t, top, 1, tt.delivered)
			tt.spec.ClientID, tt.spec.Owner = "c", &countWaker{}
			res, err := top.Attach(tt.spec)
			if tt.wantErr != 0 || err != nil {
				if KindOf(err) != tt.wantErr || err == nil {
					t.Fatalf("Attach: %v, want kind %v", err, tt.wantErr)
				}
				if m.Subscriptions() != 0 {
					t.Fatalf("a refused attach left %d subscriptions", m.Subscriptions())
				}
				return
			}
			deliver(t, top, tt.delivered+1, tt.then)
			if got := drainSeqs(res.Sub); !slices.Equal(got, tt.want) {
				t.Fatalf("drained %v, want %v", got, tt.want)
			}
			if res.Recovered != tt.recovered || res.Epoch != "e1" || res.Seq != max(tt.delivered, tt.spec.ReadTop) {
				t.Fatalf("result %+v", res)
			}
		})
	}
}

// Deliver and Announce charge and release the budget like Publish: every byte comes back when the
// events leave, and a notice is charged nothing.
func TestDeliverBudget(t *testing.T) {
	unit := remoteEvent(1).Size()
	budget := NewBudget(3 * unit)
	m := NewMirrors(TopicConfig{HistorySize: 10, QueueSize: 10, Events: budget})
	top := m.Open("orders", "e1", 0)
	res, err := top.Attach(AttachSpec{SubscribeSpec: SubscribeSpec{ClientID: "c", Owner: &countWaker{}}})
	if err != nil {
		t.Fatal(err)
	}
	deliver(t, top, 1, 3)
	if _, err := top.Deliver(remoteEvent(4), time.Now()); LimitOf(err) != LimitEventMemory {
		t.Fatalf("a fourth event with the queue holding three: %v, want LimitEventMemory", err)
	}
	top.Announce(NewNotice("orders", time.Now(), []byte("gap")), 4)
	if top.Delivered() != 4 {
		t.Fatalf("delivered %d after the gap, want 4", top.Delivered())
	}
	if got := drainSeqs(res.Sub); !slices.Equal(got, []uint64{1, 2, 3, 0}) {
		t.Fatalf("drained %v", got)
	}
	top.Close()
	if budget.Used() != 0 {
		t.Fatalf("budget used %d after the topic closed, want 0", budget.Used())
	}
}

// BenchmarkDeliver is the receiving replica's fan-out, against Publish's: the same work.
func BenchmarkDeliver(b *testing.B) {
	for _, n := range []int{1, 100, 1000} {
		b.Run(fmt.Sprintf("subscribers=%d", n), func(b *testing.B) {
			m := NewMirrors(TopicConfig{HistorySize: 100, QueueSize: 1 << 20})
			top := m.Open("orders", "e1", 0)
			for i := range n {
				res, err := top.Attach(AttachSpec{SubscribeSpec: SubscribeSpec{ClientID: fmt.Sprint(i), Owner: &countWaker{}}})
				if err != nil {
					b.Fatal(err)
				}
				res.Sub.Release()
			}
			evs := remoteEvents(1, uint64(b.N))
			b.ReportAllocs()
			b.ResetTimer()
			for i := range b.N {
				if _, err := top.Deliver(evs[i], time.Time{}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
