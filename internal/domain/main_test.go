package domain

import (
	"testing"

	"go.uber.org/goleak"
)

// The concurrency test starts publishers and subscribers; goleak proves each one returns.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// ev returns a bare event with the given seq: the queue and the ring never look further.
func ev(seq uint64) *Event { return &Event{Seq: seq} }

// evs returns events with the seqs from..to inclusive.
func evs(from, to uint64) []*Event {
	var out []*Event
	for s := from; s <= to; s++ {
		out = append(out, ev(s))
	}
	return out
}

// seqs lists the seqs of events, for readable comparisons.
func seqs(events []*Event) []uint64 {
	out := []uint64{}
	for _, e := range events {
		out = append(out, e.Seq)
	}
	return out
}

// countWaker counts Wake calls. Calls come from the topic under its lock, so tests read the count
// only after the call that woke it has returned.
type countWaker struct{ n int }

func (w *countWaker) Wake() { w.n++ }
