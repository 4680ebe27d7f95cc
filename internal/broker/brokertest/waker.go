package brokertest

import (
	"sync/atomic"

	"github.com/pubsubd/pubsub/internal/domain"
)

// Waker is a domain.Waker for tests. It counts Wake calls and signals C through a one-slot channel,
// so a test can wait for a wake with a deadline instead of sleeping. Wakes that arrive while a
// signal is pending merge into it, which is the Waker contract: cheap and never blocking. A Waker
// is safe for concurrent use; the zero value is not usable, call NewWaker.
type Waker struct {
	wakes atomic.Int64
	c     chan struct{}
}

// NewWaker returns a Waker with no wakes counted and no signal pending.
func NewWaker() *Waker { return &Waker{c: make(chan struct{}, 1)} }

// Wake counts the call and signals C unless a signal is already pending.
func (w *Waker) Wake() {
	w.wakes.Add(1)
	select {
	case w.c <- struct{}{}:
	default:
	}
}

// Wakes returns how many times Wake has been called.
func (w *Waker) Wakes() int64 { return w.wakes.Load() }

// C receives a value after one or more Wake calls; reading it clears the pending signal.
func (w *Waker) C() <-chan struct{} { return w.c }

// Drained is everything a writer would have been handed by draining a subscription until it had
// nothing more to give.
type Drained struct {
	Events   []*domain.Event
	Replayed int              // how many of Events came from history
	Dropped  uint64           // DropOldest losses reported
	Overflow bool             // the Disconnect policy tripped
	End      domain.EndReason // why the subscription ended; Live if it has not
	Lost     uint64           // events discarded without delivery, reported with End or Overflow
}

// Seqs returns the seqs of the drained events, oldest first (never nil, for easy comparison).
func (d Drained) Seqs() []uint64 {
	out := make([]uint64, 0, len(d.Events))
	for _, e := range d.Events {
		out = append(out, e.Seq)
	}
	return out
}

// drainBatch is deliberately small so that DrainAll crosses batch boundaries, as a real writer does.
const drainBatch = 4

// DrainAll drains sub the way a connection's writer does, in small batches, until it has nothing
// pending or it has handed out its end (End or Overflow). A held subscription drains nothing: call
// Release first. It must not run concurrently with another drain of the same subscription.
func DrainAll(sub *domain.Subscription) Drained {
	var d Drained
	for sub.Pending() {
		b := sub.Drain(d.Events, drainBatch)
		d.Events = b.Events
		d.Replayed += b.Replayed
		d.Dropped += b.Dropped
		d.Lost += b.Lost
		if b.Overflow {
			d.Overflow = true
			return d
		}
		if b.End != domain.Live {
			d.End = b.End
			return d
		}
	}
	return d
}
