package main

import "math/bits"

// bitset is a growable set of sequence numbers (>= 1), one bit each: exact
// loss and duplicate counts for millions of messages cost deliveries/8
// bytes, far less than a map.
type bitset []uint64

// set adds n and reports whether it was already present.
func (s *bitset) set(n int64) (was bool) {
	w := int(n >> 6)
	if w >= len(*s) {
		grown := make(bitset, max(w+1, 2*len(*s)))
		copy(grown, *s)
		*s = grown
	}
	m := uint64(1) << uint(n&63)
	was = (*s)[w]&m != 0
	(*s)[w] |= m
	return was
}

func (s bitset) has(n int64) bool {
	w := int(n >> 6)
	return w < len(s) && s[w]&(uint64(1)<<uint(n&63)) != 0
}

func (s bitset) count() int64 {
	var c int
	for _, w := range s {
		c += bits.OnesCount64(w)
	}
	return int64(c)
}

// missing returns how many members of want are absent from s.
func (s bitset) missing(want bitset) int64 {
	var c int
	for i, w := range want {
		if i < len(s) {
			w &^= s[i]
		}
		c += bits.OnesCount64(w)
	}
	return int64(c)
}

// extra returns how many members of s are absent from want.
func (s bitset) extra(want bitset) int64 { return want.missing(s) }

// streamTracker accounts for what one subscriber received from the
// publishers of its topic. It is owned by the subscriber's reading
// goroutine (no locks or shared atomics per message) and read after that
// goroutine has ended.
type streamTracker struct {
	recv    []bitset // per publisher: bench sequence numbers received
	lastPub []int64  // per publisher: highest bench sequence received
	// Counters over all publishers.
	received   int64 // events attributed to a publisher (duplicates included)
	duplicates int64 // a (publisher, sequence) seen before
	reordered  int64 // a sequence lower than one already seen from that publisher
	// The server's per-topic seq extension.
	lastSeq   int64 // highest seq seen; the topic is fresh, so it starts at 0
	seqGaps   int64 // jumps forward by more than one
	seqMissed int64 // seq numbers skipped by those jumps
	seqBack   int64 // a seq not above the previous one
	noSeq     int64 // events without a usable seq
	// SLOW_CONSUMER notices: how many messages the server said it dropped.
	dropNotices   int64
	dropsReported int64
}

func newStreamTracker(publishers int) streamTracker {
	return streamTracker{recv: make([]bitset, publishers), lastPub: make([]int64, publishers)}
}

// observe records one event from publisher pub with bench sequence seq.
// The caller has checked that pub is in range and seq >= 1.
func (t *streamTracker) observe(pub int, seq int64) {
	t.received++
	if t.recv[pub].set(seq) {
		t.duplicates++
		return
	}
	if seq < t.lastPub[pub] {
		t.reordered++
	} else {
		t.lastPub[pub] = seq
	}
}

// observeSeq records the server's seq of one event.
func (t *streamTracker) observeSeq(seq int64, ok bool) {
	switch {
	case !ok:
		t.noSeq++
	case seq <= t.lastSeq:
		t.seqBack++
	default:
		if d := seq - t.lastSeq - 1; d > 0 {
			t.seqGaps++
			t.seqMissed += d
		}
		t.lastSeq = seq
	}
}

// observeDropNotice records a SLOW_CONSUMER notice for n dropped messages.
func (t *streamTracker) observeDropNotice(n int64) {
	t.dropNotices++
	t.dropsReported += n
}

// lossReport compares what a subscriber received with what the server
// accepted (the publishers' acked sets).
type lossReport struct {
	expected int64 // accepted messages the subscriber should have received
	lost     int64 // accepted but never received
	unacked  int64 // received but never acknowledged to the publisher
	tail     int64 // accepted after the last seq seen: undelivered when the run ended
}

// loss computes the subscriber's loss against acked, the per-publisher set
// of sequence numbers the server acknowledged, and accepted, the number of
// messages the topic accepted (its last seq, as the topic starts empty).
func (t *streamTracker) loss(acked []bitset, accepted int64) lossReport {
	var r lossReport
	for p, a := range acked {
		var got bitset
		if p < len(t.recv) {
			got = t.recv[p]
		}
		r.expected += a.count()
		r.lost += got.missing(a)
		r.unacked += got.extra(a)
	}
	if t.lastSeq > 0 || t.noSeq == 0 {
		r.tail = max(accepted-t.lastSeq, 0)
	}
	return r
}

// progress is what the drain phase compares with the topic's accepted
// count: the highest seq seen, or the number received if the server does
// not send seq.
func (t *streamTracker) progress() int64 {
	if t.lastSeq > 0 {
		return t.lastSeq
	}
	return t.received
}
