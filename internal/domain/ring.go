package domain

// Ring keeps the most recent events of a topic for last_n replay, bounded by count and by bytes.
// It holds one reference to each event it keeps and drops it when the event is evicted. It is not
// safe for concurrent use: its Topic guards it.
type Ring struct {
	buf      []*Event
	start    int // index of the oldest event
	n        int
	bytes    int64 // sum of the Size of the events held
	maxBytes int64 // 0: no byte bound
}

// NewRing returns a ring holding up to capacity events; a capacity of 0 keeps no history.
func NewRing(capacity int) *Ring {
	return &Ring{buf: make([]*Event, capacity)}
}

// newRingBytes returns a ring bounded by capacity events and by maxBytes (0: no byte bound).
func newRingBytes(capacity int, maxBytes int64) *Ring {
	r := NewRing(capacity)
	r.maxBytes = maxBytes
	return r
}

// Push appends ev, which hands the ring one reference to it, and evicts the oldest events while the
// ring is over its count or its byte bound. The newest event always stays, even when it alone is
// larger than the byte bound: the ack of a publish says the message is in the history, so the
// history holds at most max(maxBytes, the newest event).
func (r *Ring) Push(ev *Event) {
	c := len(r.buf)
	if c == 0 {
		ev.release(1)
		return
	}
	if r.n == c {
		r.DropOldest()
	}
	r.buf[(r.start+r.n)%c] = ev
	r.n++
	r.bytes += ev.size
	for r.maxBytes > 0 && r.bytes > r.maxBytes && r.n > 1 {
		r.DropOldest()
	}
}

// DropOldest evicts the oldest event, if any, and reports whether there was one.
func (r *Ring) DropOldest() bool {
	if r.n == 0 {
		return false
	}
	ev := r.buf[r.start]
	r.buf[r.start] = nil
	r.start = (r.start + 1) % len(r.buf)
	r.n--
	r.bytes -= ev.size
	ev.release(1)
	return true
}

// Len returns how many events the ring holds.
func (r *Ring) Len() int { return r.n }

// Bytes returns the sum of the sizes of the events the ring holds.
func (r *Ring) Bytes() int64 { return r.bytes }

// clear evicts every event.
func (r *Ring) clear() {
	for r.DropOldest() {
	}
}

// Last returns a new slice with up to n of the newest events, oldest first. n larger than the
// history returns the whole history; n <= 0 returns nil. The slice holds no references of its own:
// a caller that keeps the events takes them (hold).
func (r *Ring) Last(n int) []*Event {
	if n > r.n {
		n = r.n
	}
	if n <= 0 {
		return nil
	}
	out := make([]*Event, n)
	c := len(r.buf)
	first := r.start + r.n - n
	for i := range out {
		out[i] = r.buf[(first+i)%c]
	}
	return out
}
