package ws

import (
	"testing"
	"time"
)

// TestTokenBucket: a burst at once, then one token per 1/rate, never more than the burst saved up;
// time going backwards (a clock step) takes nothing; rate 0 is no limit.
func TestTokenBucket(t *testing.T) {
	start := time.Unix(1000, 0).UnixNano()
	b := newTokenBucket(10, 3, start) // 10 a second: one per 100ms
	for i := range 3 {
		if !b.take(start) {
			t.Fatalf("burst token %d refused", i)
		}
	}
	if b.take(start) {
		t.Fatal("a 4th token at once")
	}
	if b.take(start + int64(99*time.Millisecond)) {
		t.Fatal("a token before 1/rate")
	}
	if !b.take(start + int64(100*time.Millisecond)) {
		t.Fatal("no token after 1/rate")
	}
	later := start + int64(time.Hour)
	n := 0
	for b.take(later) {
		n++
	}
	if n != 3 {
		t.Fatalf("%d tokens after an hour idle, want the burst of 3", n)
	}
	if b.take(later - int64(time.Second)) {
		t.Fatal("a clock step back gave a token")
	}
	off := newTokenBucket(0, 0, start)
	for range 1000 {
		if !off.take(start) {
			t.Fatal("rate 0 refused")
		}
	}
}

func BenchmarkTokenBucket(b *testing.B) {
	tb := newTokenBucket(1e9, 1000, 0)
	now := int64(0)
	for b.Loop() {
		now += 10
		tb.take(now)
	}
}
