package redis_test

import (
	"testing"
	"time"
)

// The store lost acknowledged writes and new publishes took their seqs before this replica
// looked (another replica published them): the topic's seq is not behind what this replica
// delivered, but the history holds other messages at seqs it delivered. The replica must see it,
// rotate the epoch and tell its subscribers with a discontinuity: the new messages at those seqs
// never reach them as if nothing happened, silently.
func TestSeqRewrittenRotatesEpoch(t *testing.T) {
	p := newPrefix()
	a := newEngine(t, testConfig(100, 100), options(p, "a"))
	b := newEngine(t, testConfig(100, 100), options(p, "b")) // follows no topic: publishes only
	if err := a.CreateTopic(t.Context(), "t"); err != nil {
		t.Fatal(err)
	}
	f, res := subscribe(t, a, "t", "s", 0)
	for n := range 5 {
		if _, _, err := a.Publish(t.Context(), "t", msg(uint64(n))); err != nil {
			t.Fatal(err)
		}
	}
	f.waitFor(t, 5)
	// Redis forgets seqs 4 and 5, as a failover to a lagging replica would; then three new
	// messages take seqs 4, 5 and 6.
	if _, err := srv.Do("HSET", p+"{t}:m", "s", "3"); err != nil {
		t.Fatal(err)
	}
	if _, err := srv.Do("XDEL", p+"{t}:h", "4-0", "5-0"); err != nil {
		t.Fatal(err)
	}
	if _, err := srv.Do("XSETID", p+"{t}:h", "3-0"); err != nil { // the stream forgets them too
		t.Fatal(err)
	}
	for n := range 3 {
		ev, _, err := b.Publish(t.Context(), "t", msg(uint64(100+n)))
		if err != nil || ev.Seq != uint64(4+n) {
			t.Fatalf("publish after the loss: %v, %v; want seq %d", ev, err, 4+n)
		}
	}
	deadline := time.Now().Add(20 * time.Second)
	for {
		e, err := srv.Do("HGET", p+"{t}:m", "e")
		if err != nil {
			t.Fatal(err)
		}
		if e != res.Epoch {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the epoch was not rotated: the replica did not see that seqs 4 and 5 name other messages")
		}
		waitTick()
	}
	ev, _, err := b.Publish(t.Context(), "t", msg(200))
	if err != nil {
		t.Fatal(err)
	}
	f.waitFor(t, ev.Seq)
	seqs, notices := f.check(t)
	if len(notices) != 1 || notices[0] != [2]uint64{} {
		t.Fatalf("seqs %v, notices %v: want one discontinuity", seqs, notices)
	}
	if !equalSeqs(seqs[:5], []uint64{1, 2, 3, 4, 5}) || seqs[len(seqs)-1] != ev.Seq {
		t.Fatalf("seqs %v: want 1..5 first and %d last", seqs, ev.Seq)
	}
}

func equalSeqs(a, b []uint64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}
