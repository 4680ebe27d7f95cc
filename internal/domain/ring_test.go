package domain

import (
	"slices"
	"testing"
)

func TestRing(t *testing.T) {
	tests := []struct {
		name     string
		capacity int
		pushed   uint64 // events 1..pushed are pushed in order
		wantLen  int
		last     map[int][]uint64 // Last(n) -> seqs
	}{
		{"capacity 0 keeps nothing", 0, 5, 0, map[int][]uint64{0: nil, 1: nil, 10: nil}},
		{"capacity 1 keeps the newest", 1, 3, 1, map[int][]uint64{1: {3}, 5: {3}, 0: nil}},
		{"empty ring", 4, 0, 0, map[int][]uint64{1: nil, 4: nil}},
		{"partly filled", 4, 3, 3, map[int][]uint64{
			-1: nil, 0: nil, 1: {3}, 2: {2, 3}, 3: {1, 2, 3}, 4: {1, 2, 3}, 100: {1, 2, 3},
		}},
		{"exactly full", 4, 4, 4, map[int][]uint64{4: {1, 2, 3, 4}, 2: {3, 4}}},
		{"wrapped once", 4, 6, 4, map[int][]uint64{
			-5: nil, 1: {6}, 3: {4, 5, 6}, 4: {3, 4, 5, 6}, 5: {3, 4, 5, 6},
		}},
		{"wrapped many times", 3, 100, 3, map[int][]uint64{2: {99, 100}, 3: {98, 99, 100}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := NewRing(tt.capacity)
			for _, e := range evs(1, tt.pushed) {
				r.Push(e)
			}
			if r.Len() != tt.wantLen {
				t.Fatalf("Len() = %d, want %d", r.Len(), tt.wantLen)
			}
			for n, want := range tt.last {
				got := r.Last(n)
				if want == nil {
					if got != nil {
						t.Errorf("Last(%d) = %v, want nil", n, seqs(got))
					}
					continue
				}
				if !slices.Equal(seqs(got), want) {
					t.Errorf("Last(%d) = %v, want %v", n, seqs(got), want)
				}
			}
		})
	}
}

// Last hands out a new slice: the replay queued for a subscriber must not change when the topic
// pushes more events into its history.
func TestRingLastIsACopy(t *testing.T) {
	r := NewRing(2)
	r.Push(ev(1))
	r.Push(ev(2))
	got := r.Last(2)
	r.Push(ev(3))
	r.Push(ev(4))
	if !slices.Equal(seqs(got), []uint64{1, 2}) {
		t.Fatalf("earlier Last(2) changed to %v after more pushes", seqs(got))
	}
}
