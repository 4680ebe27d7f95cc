package domain

import (
	"slices"
	"testing"
)

// newTestSub returns a released subscription (so Drain hands out events) with no replay.
func newTestSub(capacity int, p Policy) (*Subscription, *countWaker) {
	w := &countWaker{}
	s := newSubscription("t", "c1", w, capacity, p)
	s.Release()
	return s, w
}

func pushAll(t *testing.T, s *Subscription, events []*Event) []pushResult {
	t.Helper()
	var out []pushResult
	for _, e := range events {
		r := s.push(e).res
		out = append(out, r)
	}
	return out
}

func TestParsePolicy(t *testing.T) {
	tests := []struct {
		in      string
		want    Policy
		wantErr bool
	}{
		{"drop_oldest", DropOldest, false},
		{"disconnect", Disconnect, false},
		{"", 0, true},
		{"DROP_OLDEST", 0, true},
		{"drop-oldest", 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParsePolicy(tt.in)
			if tt.wantErr {
				if KindOf(err) != KindInvalid {
					t.Fatalf("ParsePolicy(%q) error = %v, want KindInvalid", tt.in, err)
				}
				return
			}
			if err != nil || got != tt.want || got.String() != tt.in {
				t.Fatalf("ParsePolicy(%q) = %v (%q), %v", tt.in, got, got.String(), err)
			}
		})
	}
}

func TestSubscriptionDropOldest(t *testing.T) {
	s, _ := newTestSub(3, DropOldest)
	got := pushAll(t, s, evs(1, 5))
	want := []pushResult{pushed, pushed, pushed, pushedDroppedOldest, pushedDroppedOldest}
	if !slices.Equal(got, want) {
		t.Fatalf("push results = %v, want %v", got, want)
	}
	b := s.Drain(nil, 100)
	if !slices.Equal(seqs(b.Events), []uint64{3, 4, 5}) || b.Dropped != 2 || b.Overflow || b.End != Live {
		t.Fatalf("first Drain = %+v (seqs %v), want the 3 newest and Dropped 2", b, seqs(b.Events))
	}
	// The drop count is reported once, then starts again from zero.
	pushAll(t, s, evs(6, 6))
	b = s.Drain(nil, 100)
	if !slices.Equal(seqs(b.Events), []uint64{6}) || b.Dropped != 0 {
		t.Fatalf("second Drain = %+v (seqs %v), want [6] and no drops", b, seqs(b.Events))
	}
	// Drops are reported even when nothing survived to be drained alongside them.
	pushAll(t, s, evs(7, 10))
	b = s.Drain(nil, 0)
	if len(b.Events) != 0 || b.Dropped != 1 {
		t.Fatalf("Drain(max 0) = %+v, want no events and Dropped 1", b)
	}
	if b = s.Drain(nil, 100); !slices.Equal(seqs(b.Events), []uint64{8, 9, 10}) || b.Dropped != 0 {
		t.Fatalf("third Drain = %+v (seqs %v)", b, seqs(b.Events))
	}
}

func TestSubscriptionDisconnect(t *testing.T) {
	s, _ := newTestSub(3, Disconnect)
	got := pushAll(t, s, evs(1, 5))
	want := []pushResult{pushed, pushed, pushed, pushOverflow, pushIgnored}
	if !slices.Equal(got, want) {
		t.Fatalf("push results = %v, want %v", got, want)
	}
	if !s.Pending() {
		t.Fatal("Pending() = false after overflow; the writer must be told to disconnect")
	}
	b := s.Drain(nil, 100)
	// The three queued events and the one that did not fit are lost; the ignored fifth push was
	// never the subscriber's.
	if !b.Overflow || b.Lost != 4 || len(b.Events) != 0 || b.Dropped != 0 {
		t.Fatalf("Drain = %+v, want Overflow with Lost 4 and no events", b)
	}
	if b = s.Drain(nil, 100); !b.Overflow || b.Lost != 0 {
		t.Fatalf("second Drain = %+v, want Overflow again with the loss already reported", b)
	}
	if r := s.push(ev(6)).res; r != pushIgnored {
		t.Fatalf("push after overflow = %v, want pushIgnored", r)
	}
}

// A subscriber whose replay is still held behind its ack loses that replay too when its queue
// overflows, and the loss must be counted.
func TestSubscriptionDisconnectCountsReplay(t *testing.T) {
	s := newSubscription("t", "c1", &countWaker{}, 2, Disconnect)
	s.replay = evs(1, 3)
	pushAll(t, s, evs(4, 6))
	s.Release()
	b := s.Drain(nil, 100)
	if !b.Overflow || b.Lost != 6 || len(b.Events) != 0 {
		t.Fatalf("Drain = %+v, want Overflow with Lost 6 (3 replayed + 2 queued + 1 refused)", b)
	}
}

func TestSubscriptionLazyGrowth(t *testing.T) {
	tests := []struct {
		name              string
		limit, pushes     int
		wantBuf, wantKept int
	}{
		{"idle subscriber allocates nothing", 100, 0, 0, 0},
		{"first push allocates 8", 100, 1, 8, 1},
		{"8 fit in 8", 100, 8, 8, 8},
		{"9th doubles", 100, 9, 16, 9},
		{"17th doubles again", 100, 17, 32, 17},
		{"65th is capped at the limit", 100, 65, 100, 65},
		{"never beyond the limit", 100, 150, 100, 100},
		{"limit below the first size", 3, 5, 3, 3},
		{"capacity 0 is treated as 1", 0, 4, 1, 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, _ := newTestSub(tt.limit, DropOldest)
			pushAll(t, s, evs(1, uint64(tt.pushes)))
			if len(s.buf) != tt.wantBuf {
				t.Fatalf("buffer size = %d, want %d", len(s.buf), tt.wantBuf)
			}
			b := s.Drain(nil, 1000)
			if len(b.Events) != tt.wantKept {
				t.Fatalf("drained %d events, want %d", len(b.Events), tt.wantKept)
			}
			// Whatever was kept is the newest, in order.
			if want := evs(uint64(tt.pushes-tt.wantKept+1), uint64(tt.pushes)); !slices.Equal(seqs(b.Events), seqs(want)) {
				t.Fatalf("drained %v, want %v", seqs(b.Events), seqs(want))
			}
		})
	}
}

// Growing a ring whose head has moved must unroll it so the oldest event stays first.
func TestSubscriptionGrowthAfterWrap(t *testing.T) {
	s, _ := newTestSub(32, DropOldest)
	pushAll(t, s, evs(1, 8))
	if b := s.Drain(nil, 5); !slices.Equal(seqs(b.Events), []uint64{1, 2, 3, 4, 5}) {
		t.Fatalf("first Drain = %v", seqs(b.Events))
	}
	pushAll(t, s, evs(9, 20)) // wraps the 8-slot ring, then grows it twice
	b := s.Drain(nil, 100)
	if want := seqs(evs(6, 20)); !slices.Equal(seqs(b.Events), want) {
		t.Fatalf("Drain after growth = %v, want %v", seqs(b.Events), want)
	}
}

func TestSubscriptionHeldUntilRelease(t *testing.T) {
	s := newSubscription("t", "c1", &countWaker{}, 10, DropOldest)
	s.replay = evs(1, 2)
	pushAll(t, s, evs(3, 4))
	if s.Pending() {
		t.Fatal("Pending() = true before Release")
	}
	if b := s.Drain(nil, 100); len(b.Events) != 0 || b.End != Live || b.Dropped != 0 {
		t.Fatalf("Drain before Release = %+v, want an empty batch", b)
	}
	s.Release()
	if !s.Pending() {
		t.Fatal("Pending() = false after Release with events queued")
	}
	b := s.Drain(nil, 100)
	if !slices.Equal(seqs(b.Events), []uint64{1, 2, 3, 4}) || b.Replayed != 2 {
		t.Fatalf("Drain after Release = %v (Replayed %d), want [1 2 3 4] with 2 replayed", seqs(b.Events), b.Replayed)
	}
	if s.Pending() {
		t.Fatal("Pending() = true with nothing left")
	}
}

func TestSubscriptionDrainMaxReplayFirst(t *testing.T) {
	s := newSubscription("t", "c1", &countWaker{}, 10, DropOldest)
	s.replay = evs(1, 3)
	pushAll(t, s, evs(4, 8))
	s.Release()
	steps := []struct {
		max          int
		want         []uint64
		wantReplayed int
	}{
		{2, []uint64{1, 2}, 2},
		{3, []uint64{3, 4, 5}, 1},
		{0, []uint64{}, 0},
		{10, []uint64{6, 7, 8}, 0},
		{10, []uint64{}, 0},
	}
	for i, st := range steps {
		b := s.Drain(nil, st.max)
		if !slices.Equal(seqs(b.Events), st.want) || b.Replayed != st.wantReplayed {
			t.Fatalf("step %d: Drain(max %d) = %v (Replayed %d), want %v (Replayed %d)",
				i, st.max, seqs(b.Events), b.Replayed, st.want, st.wantReplayed)
		}
	}
}

// Drain appends to dst, so the writer can reuse one slice for every batch.
func TestSubscriptionDrainAppendsToDst(t *testing.T) {
	s, _ := newTestSub(10, DropOldest)
	pushAll(t, s, evs(1, 2))
	dst := make([]*Event, 0, 8)
	b := s.Drain(append(dst, ev(99)), 10)
	if !slices.Equal(seqs(b.Events), []uint64{99, 1, 2}) || &b.Events[0] != &dst[:1][0] {
		t.Fatalf("Drain(dst) = %v, want [99 1 2] in dst's backing array", seqs(b.Events))
	}
}

func TestSubscriptionEnd(t *testing.T) {
	tests := []struct {
		name   string
		reason EndReason
		held   bool
		max    int // per Drain
		// the Drains until End is reported: each one's seqs; the last one carries End
		wantDrains [][]uint64
		wantLost   uint64
	}{
		{"unsubscribed discards silently", Unsubscribed, false, 100, [][]uint64{{}}, 0},
		{"topic deleted discards and reports the loss", TopicDeleted, false, 100, [][]uint64{{}}, 5},
		{"replaced flushes pending first", Replaced, false, 100, [][]uint64{{1, 2, 3, 4, 5}}, 0},
		{"replaced flushes over several batches", Replaced, false, 2, [][]uint64{{1, 2}, {3, 4}, {5}}, 0},
		{"replaced while held still flushes", Replaced, true, 100, [][]uint64{{1, 2, 3, 4, 5}}, 0},
		{"topic deleted while held reports the loss", TopicDeleted, true, 100, [][]uint64{{}}, 5},
		{"connection closed discards and reports", ConnClosed, false, 100, [][]uint64{{}}, 5},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newSubscription("t", "c1", &countWaker{}, 10, DropOldest)
			s.replay = evs(1, 2)
			pushAll(t, s, evs(3, 5))
			if !tt.held {
				s.Release()
			}
			s.finish(tt.reason)
			if s.Ended() != tt.reason {
				t.Fatalf("Ended() = %v, want %v", s.Ended(), tt.reason)
			}
			if r := s.push(ev(6)).res; r != pushIgnored {
				t.Fatalf("push after the end = %v, want pushIgnored", r)
			}
			s.finish(Unsubscribed) // a second end never overrides the first
			if s.Ended() != tt.reason {
				t.Fatalf("a second finish changed the reason to %v", s.Ended())
			}
			if !s.Pending() {
				t.Fatal("Pending() = false: the end notice is still to be written")
			}
			for i, want := range tt.wantDrains {
				b := s.Drain(nil, tt.max)
				if !slices.Equal(seqs(b.Events), want) {
					t.Fatalf("Drain %d = %v, want %v", i, seqs(b.Events), want)
				}
				last := i == len(tt.wantDrains)-1
				if last && (b.End != tt.reason || b.Lost != tt.wantLost) {
					t.Fatalf("last Drain = End %v Lost %d, want End %v Lost %d", b.End, b.Lost, tt.reason, tt.wantLost)
				}
				if !last && b.End != Live {
					t.Fatalf("Drain %d reported End %v with events still pending", i, b.End)
				}
			}
		})
	}
}

func TestSubscriptionAbandon(t *testing.T) {
	tests := []struct {
		name    string
		prepare func(s *Subscription)
		want    uint64
	}{
		{"nothing queued", func(s *Subscription) {}, 0},
		{"queued events", func(s *Subscription) { pushAll(t, s, evs(1, 3)) }, 3},
		// The 2 drops were counted by the publishes that made them (PublishStats.DroppedOldest).
		{"queued and unreported drops", func(s *Subscription) { pushAll(t, s, evs(1, 6)) }, 4},
		{"drops already reported", func(s *Subscription) {
			pushAll(t, s, evs(1, 6))
			s.Drain(nil, 2)
		}, 2},
		{"held replay", func(s *Subscription) { s.replay = evs(1, 2); s.held = true }, 2},
		{"everything drained", func(s *Subscription) { pushAll(t, s, evs(1, 3)); s.Drain(nil, 100) }, 0},
		{"topic deleted, not yet drained", func(s *Subscription) {
			pushAll(t, s, evs(1, 3))
			s.finish(TopicDeleted)
		}, 3},
		{"topic deleted, loss already reported", func(s *Subscription) {
			pushAll(t, s, evs(1, 3))
			s.finish(TopicDeleted)
			s.Drain(nil, 100)
		}, 0},
		{"unsubscribed", func(s *Subscription) { pushAll(t, s, evs(1, 3)); s.finish(Unsubscribed) }, 0},
		// Replaced keeps its pending events for the writer to flush; if the owner goes away
		// first, they are lost and must be counted.
		{"replaced with events still pending", func(s *Subscription) {
			pushAll(t, s, evs(1, 3))
			s.finish(Replaced)
			s.Drain(nil, 1)
		}, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, _ := newTestSub(4, DropOldest)
			tt.prepare(s)
			if got := s.Abandon(); got != tt.want {
				t.Fatalf("Abandon() = %d, want %d", got, tt.want)
			}
			if got := s.Abandon(); got != 0 {
				t.Fatalf("second Abandon() = %d, want 0: a loss is counted once", got)
			}
			if s.Ended() == Live {
				t.Fatal("Ended() = Live after Abandon")
			}
			if r := s.push(ev(100)).res; r != pushIgnored {
				t.Fatalf("push after Abandon = %v, want pushIgnored", r)
			}
		})
	}
}

func TestSubscriptionAbandonOverflowed(t *testing.T) {
	s, _ := newTestSub(2, Disconnect)
	pushAll(t, s, evs(1, 3))
	if got := s.Abandon(); got != 3 {
		t.Fatalf("Abandon() after an unreported overflow = %d, want 3", got)
	}
}

func TestMergeBySeq(t *testing.T) {
	tests := []struct {
		name string
		a, b []uint64
		want []uint64
	}{
		{"both empty", nil, nil, []uint64{}},
		{"only a", []uint64{1, 2}, nil, []uint64{1, 2}},
		{"only b", nil, []uint64{3}, []uint64{3}},
		{"disjoint", []uint64{1, 2}, []uint64{3, 4}, []uint64{1, 2, 3, 4}},
		{"overlap", []uint64{2, 3, 4}, []uint64{3, 4, 5}, []uint64{2, 3, 4, 5}},
		{"interleaved", []uint64{1, 3, 5}, []uint64{2, 3, 6}, []uint64{1, 2, 3, 5, 6}},
		{"identical", []uint64{7, 8}, []uint64{7, 8}, []uint64{7, 8}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			toEvents := func(s []uint64) []*Event {
				var out []*Event
				for _, q := range s {
					out = append(out, ev(q))
				}
				return out
			}
			got := seqs(mergeBySeq(toEvents(tt.a), toEvents(tt.b)))
			if !slices.Equal(got, tt.want) {
				t.Fatalf("mergeBySeq = %v, want %v", got, tt.want)
			}
		})
	}
}
