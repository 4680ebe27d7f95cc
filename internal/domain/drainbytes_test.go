package domain

import (
	"slices"
	"testing"
)

// sized returns events with the seqs from..to whose frames are size bytes each.
func sized(from, to uint64, size int) []*Event {
	out := evs(from, to)
	for _, e := range out {
		e.Frame = make([]byte, size)
	}
	return out
}

// DrainBytes hands out events up to a byte count, replay first, at least one at a time, and leaves
// the rest queued in order: successive calls see every event once, in seq order.
func TestSubscriptionDrainBytes(t *testing.T) {
	tests := []struct {
		name     string
		replay   []*Event
		queued   []*Event
		max      int
		maxBytes int
		want     [][]uint64 // seqs of successive drains, until one hands out nothing
	}{
		{"no byte bound", sized(1, 2, 100), sized(3, 5, 100), 10, 0, [][]uint64{{1, 2, 3, 4, 5}}},
		{"bound splits replay and queue", sized(1, 3, 100), sized(4, 6, 100), 10, 250,
			[][]uint64{{1, 2}, {3, 4}, {5, 6}}},
		{"exact fit", nil, sized(1, 4, 100), 10, 200, [][]uint64{{1, 2}, {3, 4}}},
		{"event larger than the bound goes alone", nil, append(sized(1, 1, 10), append(sized(2, 2, 1000), sized(3, 4, 10)...)...), 10, 100,
			[][]uint64{{1}, {2}, {3, 4}}},
		{"count bound still applies", nil, sized(1, 5, 1), 2, 1000, [][]uint64{{1, 2}, {3, 4}, {5}}},
		{"a large replay head does not let queued events pass it", sized(1, 1, 500), sized(2, 3, 10), 10, 100,
			[][]uint64{{1}, {2, 3}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newSubscription("t", "c1", &countWaker{}, 10, DropOldest)
			s.replay = tt.replay
			pushAll(t, s, tt.queued)
			s.Release()
			for i, want := range tt.want {
				b := s.DrainBytes(nil, tt.max, tt.maxBytes, true)
				if !slices.Equal(seqs(b.Events), want) {
					t.Fatalf("drain %d = %v, want %v", i, seqs(b.Events), want)
				}
				size := 0
				for _, e := range b.Events {
					size += len(e.Frame)
				}
				if b.Bytes != size {
					t.Fatalf("drain %d: Bytes = %d, want %d", i, b.Bytes, size)
				}
				if last := i == len(tt.want)-1; b.More == last {
					t.Fatalf("drain %d: More = %v, want %v", i, b.More, !last)
				}
			}
			if b := s.DrainBytes(nil, tt.max, tt.maxBytes, true); len(b.Events) != 0 || b.More || s.Pending() {
				t.Fatalf("after the last drain: %v (More %v), Pending %v", seqs(b.Events), b.More, s.Pending())
			}
		})
	}
}

// The end notice waits until the byte bound has let every queued event out.
func TestSubscriptionDrainBytesEndAfterLastEvent(t *testing.T) {
	s, _ := newTestSub(10, DropOldest)
	pushAll(t, s, sized(1, 3, 100))
	s.finish(Replaced)
	if b := s.DrainBytes(nil, 10, 150, true); b.End != Live || !slices.Equal(seqs(b.Events), []uint64{1}) {
		t.Fatalf("first drain: %v End %v, want [1] and Live", seqs(b.Events), b.End)
	}
	if b := s.DrainBytes(nil, 10, 250, true); b.End != Replaced || !slices.Equal(seqs(b.Events), []uint64{2, 3}) {
		t.Fatalf("second drain: %v End %v, want [2 3] and Replaced", seqs(b.Events), b.End)
	}
}

// Appending to a dst that holds events already still hands out at least one event, with oversize.
func TestSubscriptionDrainBytesAtLeastOneWithDst(t *testing.T) {
	s, _ := newTestSub(10, DropOldest)
	pushAll(t, s, sized(1, 2, 100))
	b := s.DrainBytes([]*Event{ev(99)}, 10, 50, true)
	if !slices.Equal(seqs(b.Events), []uint64{99, 1}) || b.Bytes != 100 || !b.More {
		t.Fatalf("DrainBytes = %v (Bytes %d, More %v), want [99 1] (100, true)", seqs(b.Events), b.Bytes, b.More)
	}
}

// Without oversize, an event larger than what is left stays queued, and More says so: a writer
// whose batch holds something already leaves it for the next batch.
func TestSubscriptionDrainBytesWithoutOversize(t *testing.T) {
	s, _ := newTestSub(10, DropOldest)
	pushAll(t, s, sized(1, 1, 100))
	if b := s.DrainBytes(nil, 10, 50, false); len(b.Events) != 0 || b.Bytes != 0 || !b.More {
		t.Fatalf("DrainBytes(50, no oversize) = %v (More %v), want nothing and More", seqs(b.Events), b.More)
	}
	if b := s.DrainBytes(nil, 10, 50, true); !slices.Equal(seqs(b.Events), []uint64{1}) || b.More {
		t.Fatalf("DrainBytes(50, oversize) = %v (More %v), want [1] and no More", seqs(b.Events), b.More)
	}
}
