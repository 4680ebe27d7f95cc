package redis_test

import (
	"context"
	"encoding/json"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pubsubd/pubsub/internal/broker/brokertest"
	"github.com/pubsubd/pubsub/internal/domain"
)

// follower drains one subscription as a connection's writer does and checks the invariant of
// issue #12 on everything it hands out: per subscriber, seqs strictly consecutive, or an
// announced gap that starts right after the last seq; nothing twice, nothing skipped silently.
type follower struct {
	name string
	sub  *domain.Subscription
	w    *brokertest.Waker

	mu         sync.Mutex
	last       uint64 // last seq delivered or announced; 0 before the first
	seqs       []uint64
	gaps       [][2]uint64
	violations []string
	end        domain.EndReason
	lost       uint64 // events discarded by the end, as the batch that ended it reported
	stop       chan struct{}
	done       chan struct{}
}

// info is the part of a notice frame the checker reads.
type info struct {
	Msg     string `json:"msg"`
	FromSeq uint64 `json:"from_seq"`
	ToSeq   uint64 `json:"to_seq"`
	Epoch   string `json:"epoch"`
}

// follow starts draining sub (already released), expecting its first seq after `after`.
func follow(name string, sub *domain.Subscription, w *brokertest.Waker, after uint64) *follower {
	f := &follower{name: name, sub: sub, w: w, last: after, stop: make(chan struct{}), done: make(chan struct{})}
	go f.run()
	return f
}

func (f *follower) run() {
	defer close(f.done)
	var buf []*domain.Event
	for {
		for f.sub.Pending() {
			b := f.sub.Drain(buf[:0], 16)
			f.take(b)
			if b.End != domain.Live || b.Overflow {
				f.mu.Lock()
				f.end, f.lost = b.End, b.Lost
				f.mu.Unlock()
				return
			}
		}
		select {
		case <-f.w.C():
		case <-f.stop:
			return
		}
	}
}

func (f *follower) take(b domain.Batch) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if b.Dropped > 0 {
		f.violations = append(f.violations, fmt.Sprintf("%d events dropped by the queue", b.Dropped))
	}
	for _, ev := range b.Events {
		if ev.Seq == 0 {
			var in info
			if err := json.Unmarshal(ev.Frame, &in); err != nil {
				f.violations = append(f.violations, fmt.Sprintf("notice %q: %v", ev.Frame, err))
				continue
			}
			switch in.Msg {
			case "gap":
				if in.FromSeq != f.last+1 || in.ToSeq < in.FromSeq {
					f.violations = append(f.violations, fmt.Sprintf("gap %d..%d after seq %d", in.FromSeq, in.ToSeq, f.last))
				}
				f.gaps = append(f.gaps, [2]uint64{in.FromSeq, in.ToSeq})
				f.last = in.ToSeq
			case "discontinuity":
				f.last = 0 // a new stream: the next seq is whatever it goes on from
				f.gaps = append(f.gaps, [2]uint64{0, 0})
			default:
				f.violations = append(f.violations, fmt.Sprintf("unknown notice %q", ev.Frame))
			}
			continue
		}
		if f.last != 0 && ev.Seq != f.last+1 {
			f.violations = append(f.violations, fmt.Sprintf("seq %d after %d", ev.Seq, f.last))
		}
		f.last = ev.Seq
		f.seqs = append(f.seqs, ev.Seq)
	}
}

// waitFor waits until the follower has seen seq (delivered or announced), or fails the test.
func (f *follower) waitFor(t *testing.T, seq uint64) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		f.mu.Lock()
		last, end := f.last, f.end
		f.mu.Unlock()
		if last >= seq {
			return
		}
		if end != domain.Live || time.Now().After(deadline) {
			t.Fatalf("%s: saw up to seq %d (end %v), want %d", f.name, last, end, seq)
		}
		waitTick()
	}
}

// waitEnd waits until the follower's subscription has ended, and returns why.
func (f *follower) waitEnd(t *testing.T) domain.EndReason {
	end, _ := f.waitEndLost(t)
	return end
}

// waitEndLost is waitEnd that also returns how many queued events the end discarded.
func (f *follower) waitEndLost(t *testing.T) (domain.EndReason, uint64) {
	t.Helper()
	select {
	case <-f.done:
	case <-time.After(20 * time.Second):
		t.Fatalf("%s: the subscription did not end", f.name)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.end, f.lost
}

// check stops the follower and fails the test on any violation of the invariant.
func (f *follower) check(t *testing.T) (seqs []uint64, gaps [][2]uint64) {
	t.Helper()
	select {
	case <-f.done:
	default:
		close(f.stop)
		<-f.done
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, v := range f.violations {
		t.Errorf("%s: %s", f.name, v)
	}
	return f.seqs, f.gaps
}

// waitTick is the polling step of waits on state another goroutine changes without a signal we
// can select on (a follower's progress is checked under its lock); it is bounded by a deadline
// in every caller.
func waitTick() { time.Sleep(5 * time.Millisecond) }

// countingObserver counts what the engine reports.
type countingObserver struct {
	redisNop
	gaps, repairsOK, repairsFailed, overflows, anomalies, reconnects, probes atomic.Int64
	takeovers                                                                atomic.Int64 // calls to another replica's channel
}

func (o *countingObserver) StartCall(ctx context.Context, op string) (context.Context, func(error)) {
	if op == "takeover" {
		o.takeovers.Add(1)
	}
	return ctx, func(error) {}
}

func (o *countingObserver) Repaired(ok bool) {
	if ok {
		o.repairsOK.Add(1)
	} else {
		o.repairsFailed.Add(1)
	}
}
func (o *countingObserver) GapAnnounced()   { o.gaps.Add(1) }
func (o *countingObserver) WorkerOverflow() { o.overflows.Add(1) }
func (o *countingObserver) Anomaly()        { o.anomalies.Add(1) }
func (o *countingObserver) Reconnected()    { o.reconnects.Add(1) }
func (o *countingObserver) ProbeRestart()   { o.probes.Add(1) }
