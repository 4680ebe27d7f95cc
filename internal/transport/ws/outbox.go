package ws

import (
	"slices"
	"sync"
	"sync/atomic"

	"github.com/pubsubd/pubsub/internal/domain"
)

// outbox is what waits to be written for a connection, and the token that says who writes it.
//
// Who writes: one party at a time owns the connection's write side (writeSide): a flusher of the
// server's pool, which writes what is ready without ever waiting for the socket, or the connection's
// own writer goroutine, started when a write must wait (the socket is full, a slow-consumer
// disconnect) or the work is more than writing (shutdown, teardown). writing is the token: whoever
// turns it from false to true owns the write side until it stores false or hands the connection on
// (to the ready queue or to a writer goroutine); the atomic hand-over orders everything one owner
// did before the next one starts.
//
// Who wakes whom: the fan-out (Wake, Backlogged), the reader (replies, shutdown) and the server's
// clock (pings, heartbeats, stats, retirement) set a request flag and call conn.Wake, which leaves a
// token in wake and, when nobody owns the write side, puts the connection on the ready queue.
//
// replies and subs are guarded by mu: the reader adds, the write side's owner takes. The flags are
// set by the parties named and consumed by the write side's owner.
type outbox struct {
	mu         sync.Mutex
	replies    []reply
	replyBytes int // the payload bytes of replies
	subs       []*domain.Subscription

	wake    chan struct{} // cap 1: "there is something to write"
	room    chan struct{} // cap 1: the owner took the replies; a reader waiting for room looks again
	writing atomic.Bool   // the write side is owned

	pingDue      atomic.Bool   // clock: a WebSocket ping is due
	beatDue      atomic.Bool   // clock: an info heartbeat is due
	statsDue     atomic.Bool   // clock: publish the stats window
	retire       atomic.Bool   // clock: the writer goroutine has been idle a whole period; it may exit
	busy         atomic.Bool   // owner: wrote since the clock last looked
	stopping     atomic.Bool   // Server.Shutdown: say goodbye and close
	readerExited atomic.Bool   // reader: reading is over; tear down
	behind       atomic.Bool   // fan-out sets, owner clears: counted in the server's stall gate
	backlogs     atomic.Uint32 // fan-out: half-full crossings, so the owner never clears one it has not drained
	stuck        atomic.Bool   // owner: a write waited a stall bound for room, and none has fitted since
}

func newOutbox() outbox { return outbox{wake: make(chan struct{}, 1), room: make(chan struct{}, 1)} }

// madeRoom wakes a reader waiting for room in the replies, if there is one.
func (o *outbox) madeRoom() {
	select {
	case o.room <- struct{}{}:
	default:
	}
}

// signal leaves the wake token; many signals before the owner looks are one.
func (o *outbox) signal() {
	select {
	case o.wake <- struct{}{}:
	default:
	}
}

// add queues a reply unless max replies are waiting already, or it would take the waiting replies'
// bytes past maxBytes (maxBytes <= 0: no byte bound); it reports whether it did. A reply alone is
// never refused for its size: the read side bounds what one request can make it.
func (o *outbox) add(r reply, max, maxBytes int) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	if len(o.replies) >= max || (maxBytes > 0 && len(o.replies) > 0 && o.replyBytes+len(r.data) > maxBytes) {
		return false
	}
	o.replies = append(o.replies, r)
	o.replyBytes += len(r.data)
	return true
}

// addSub makes sub one of the connection's subscriptions.
func (o *outbox) addSub(sub *domain.Subscription) {
	o.mu.Lock()
	o.subs = append(o.subs, sub)
	o.mu.Unlock()
}

// take returns the replies waiting, and copies the subscriptions into snapshot (reused, so a batch
// allocates nothing for it).
func (o *outbox) take(snapshot *[]*domain.Subscription) []reply {
	o.mu.Lock()
	replies := o.replies
	o.replies, o.replyBytes = nil, 0
	*snapshot = append((*snapshot)[:0], o.subs...)
	o.mu.Unlock()
	if len(replies) > 0 {
		o.madeRoom()
	}
	return replies
}

// forget removes subscriptions that have ended.
func (o *outbox) forget(ended []*domain.Subscription) {
	o.mu.Lock()
	o.subs = slices.DeleteFunc(o.subs, func(s *domain.Subscription) bool { return slices.Contains(ended, s) })
	o.mu.Unlock()
}

// close empties the outbox for teardown and returns the subscriptions it held.
func (o *outbox) close() []*domain.Subscription {
	o.mu.Lock()
	defer o.mu.Unlock()
	subs := o.subs
	o.subs, o.replies, o.replyBytes = nil, nil, 0
	o.madeRoom() // a reader waiting for room need not wait for a writer that is gone
	return subs
}
