package domain

// Ring keeps the most recent events of a topic for last_n replay. It is not safe for concurrent use:
// its Topic guards it.
type Ring struct {
	buf   []*Event
	start int // index of the oldest event
	n     int
}

// NewRing returns a ring holding up to capacity events; a capacity of 0 keeps no history.
func NewRing(capacity int) *Ring {
	return &Ring{buf: make([]*Event, capacity)}
}

// Push appends ev, evicting the oldest event when full.
func (r *Ring) Push(ev *Event) {
	c := len(r.buf)
	if c == 0 {
		return
	}
	if r.n < c {
		r.buf[(r.start+r.n)%c] = ev
		r.n++
		return
	}
	r.buf[r.start] = ev
	r.start = (r.start + 1) % c
}

// Len returns how many events the ring holds.
func (r *Ring) Len() int { return r.n }

// Last returns a new slice with up to n of the newest events, oldest first. n larger than the
// history returns the whole history; n <= 0 returns nil.
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
