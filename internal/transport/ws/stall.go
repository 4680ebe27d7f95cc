package ws

import (
	"hash/maphash"
	"sync"
	"sync/atomic"
	"time"
)

// stallGate is how delivery that falls behind slows the publishers, after the NATS server's
// "stalled producer": when a subscriber whose socket takes what we write has a queue half full (the
// domain says so through Backlogged), the server's own delivery is behind its publishers, and a
// publishing connection's reader pauses before its next frame until no such subscriber is left, or
// for a bounded time. A subscriber that does not read is not waited for: once a write to it has had no
// room for half the bound it leaves the gate, and its queue's overflow policy applies as before.
//
// The gate is server-wide: the flushers and the readers share the same cores, so a reader that keeps
// publishing to another topic takes CPU from the delivery that fell behind just the same.
//
// behind is read by every publish and moved by every connection that enters or leaves, with one
// atomic add: a crossing of 1,000 subscribers' queues is 1,000 of them, too many for a lock. mu is taken only when behind moves between
// zero and one, to make or close the channel that waiters wait on; clear is non-nil while someone
// may be behind.
type stallGate struct {
	behind atomic.Int64
	mu     sync.Mutex
	clear  chan struct{} // closed when behind falls to zero
}

// enter counts one connection as behind.
func (g *stallGate) enter() {
	if g.behind.Add(1) == 1 {
		g.mu.Lock()
		if g.clear == nil {
			g.clear = make(chan struct{})
		}
		g.mu.Unlock()
	}
}

// leave counts one connection as caught up (or as not worth waiting for).
func (g *stallGate) leave() {
	if g.behind.Add(-1) == 0 {
		g.mu.Lock()
		if g.behind.Load() == 0 && g.clear != nil { // not entered again meanwhile
			close(g.clear)
			g.clear = nil
		}
		g.mu.Unlock()
	}
}

// wait pauses the caller while some connection is behind, for at most max, and returns how long it
// waited: zero when nobody was behind.
func (g *stallGate) wait(max time.Duration) time.Duration {
	if max <= 0 || g.behind.Load() == 0 {
		return 0
	}
	g.mu.Lock()
	ch := g.clear
	g.mu.Unlock()
	if ch == nil {
		return 0
	}
	start := time.Now()
	t := time.NewTimer(max)
	select {
	case <-ch:
	case <-t.C:
	}
	t.Stop()
	return time.Since(start)
}

// publishStripes is how many locks publishes to different topics are spread over.
const publishStripes = 64

// publishLocks make a publisher's look at the gate and its publish one step, per topic. Without
// them, the readers of a hundred publishing connections queue on the topic's own lock after they
// have found the gate open: when it closes, every one of them still publishes, and a queue of a
// hundred overflows from its high-water mark. Publishes to one topic are serialised by the topic
// anyway; two topics share a lock only when their names hash alike.
type publishLocks struct {
	seed  maphash.Seed
	locks [publishStripes]sync.Mutex
}

func (p *publishLocks) of(topic string) *sync.Mutex {
	return &p.locks[maphash.String(p.seed, topic)%publishStripes]
}

// admit waits, holding mu when it returns, until nobody is behind or max has passed since it
// started; it returns how long it waited. mu is held while it looks at the gate, and released
// while it waits.
func (g *stallGate) admit(mu *sync.Mutex, max time.Duration) time.Duration {
	mu.Lock()
	if max <= 0 || g.behind.Load() == 0 {
		return 0
	}
	start := time.Now()
	for {
		left := max - time.Since(start)
		if left <= 0 || g.behind.Load() == 0 {
			return time.Since(start)
		}
		mu.Unlock()
		g.wait(left)
		mu.Lock()
	}
}
