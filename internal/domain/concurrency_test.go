package domain

import (
	"encoding/binary"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
)

// chanWaker wakes its owner through a one-slot channel: a wake while one is pending is merged,
// exactly the contract of Waker (cheap, never blocks).
type chanWaker chan struct{}

func (w chanWaker) Wake() {
	select {
	case w <- struct{}{}:
	default:
	}
}

// received is what one draining subscriber saw.
type received struct {
	seqs    []uint64
	dropped uint64
	err     error
}

// drainUntil drains s whenever it is woken, until it has accounted for total events (received or
// reported dropped) or the deadline passes.
func drainUntil(s *Subscription, w chanWaker, total uint64, deadline <-chan time.Time) received {
	var r received
	buf := make([]*Event, 0, 16)
	for {
		for s.Pending() {
			b := s.Drain(buf[:0], 16)
			r.dropped += b.Dropped
			for _, e := range b.Events {
				r.seqs = append(r.seqs, e.Seq)
			}
			if b.End != Live || b.Overflow {
				r.err = fmt.Errorf("subscription ended: %+v", b)
				return r
			}
		}
		if uint64(len(r.seqs))+r.dropped >= total {
			return r
		}
		select {
		case <-w:
		case <-deadline:
			r.err = fmt.Errorf("timed out after %d events and %d drops of %d", len(r.seqs), r.dropped, total)
			return r
		}
	}
}

// Several publishers and draining subscribers run at once (run it with -race). Every subscriber
// with room for the whole stream gets every seq exactly once, in order; every subscriber with a
// small queue gets an increasing subsequence and is told of every event it lost. Each publisher's
// own messages keep their order in the topic.
func TestTopicConcurrentPublishAndDrain(t *testing.T) {
	const (
		publishers = 4
		perPub     = 500
		total      = publishers * perPub
		fullSubs   = 3
		smallSubs  = 2
	)
	r := NewRegistry(TopicConfig{HistorySize: 16, QueueSize: total, Policy: DropOldest})
	top, err := r.Create("orders", "epoch-1")
	if err != nil {
		t.Fatal(err)
	}
	deadline := time.After(30 * time.Second)

	type sub struct {
		s *Subscription
		w chanWaker
	}
	var subs []sub
	for i := range fullSubs + smallSubs {
		w := make(chanWaker, 1)
		res, err := top.Subscribe(SubscribeSpec{ClientID: fmt.Sprintf("c%d", i), Owner: w})
		if err != nil {
			t.Fatal(err)
		}
		if i >= fullSubs {
			res.Sub.limit = 4 // a slow consumer's queue, small enough to overflow under load
		}
		res.Sub.Release()
		subs = append(subs, sub{res.Sub, w})
	}

	results := make([]received, len(subs))
	var wg sync.WaitGroup
	for i, s := range subs {
		wg.Go(func() { results[i] = drainUntil(s.s, s.w, total, deadline) })
	}
	// A churning client subscribes and unsubscribes meanwhile: fan-out must not trip over it.
	stopChurn := make(chan struct{})
	churnDone := make(chan struct{})
	go func() {
		defer close(churnDone)
		w := make(chanWaker, 1)
		for {
			select {
			case <-stopChurn:
				return
			default:
			}
			if res, err := top.Subscribe(SubscribeSpec{ClientID: "churn", Owner: w, LastN: 3}); err == nil {
				res.Sub.Release()
				res.Sub.Drain(nil, 100)
			}
			_, _ = top.Unsubscribe("churn", w)
		}
	}()

	// Payload: publisher id and its own counter, to check per-publisher order.
	var pubs sync.WaitGroup
	for p := range publishers {
		pubs.Go(func() {
			for i := range perPub {
				payload := binary.BigEndian.AppendUint32([]byte{byte(p)}, uint32(i))
				if _, _, err := top.Publish(Message{ID: uuid.New(), Payload: payload}); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	pubs.Wait()
	close(stopChurn)
	<-churnDone
	wg.Wait()

	for i, res := range results {
		if res.err != nil {
			t.Fatalf("subscriber %d: %v", i, res.err)
		}
		for j := 1; j < len(res.seqs); j++ {
			if res.seqs[j] <= res.seqs[j-1] {
				t.Fatalf("subscriber %d: seq %d after %d", i, res.seqs[j], res.seqs[j-1])
			}
		}
		if i < fullSubs {
			if len(res.seqs) != total || res.dropped != 0 {
				t.Fatalf("subscriber %d got %d events and %d drops, want all %d", i, len(res.seqs), res.dropped, total)
			}
			for j, s := range res.seqs {
				if s != uint64(j+1) {
					t.Fatalf("subscriber %d: event %d has seq %d, want %d", i, j, s, j+1)
				}
			}
		} else if uint64(len(res.seqs))+res.dropped != total {
			t.Fatalf("slow subscriber %d: %d received + %d dropped != %d", i, len(res.seqs), res.dropped, total)
		}
	}

	// Every publish was accepted exactly once, churn or not.
	if st := top.Stats(); st.Messages != total {
		t.Fatalf("Messages = %d, want %d", st.Messages, total)
	}
}

// Each publisher's messages must appear in the topic in the order it published them.
func TestTopicConcurrentPublisherOrder(t *testing.T) {
	const publishers, perPub = 4, 300
	r := NewRegistry(TopicConfig{HistorySize: publishers * perPub, QueueSize: 1})
	top, err := r.Create("orders", "epoch-1")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for p := range publishers {
		wg.Go(func() {
			for i := range perPub {
				payload := binary.BigEndian.AppendUint32([]byte{byte(p)}, uint32(i))
				if _, _, err := top.Publish(Message{ID: uuid.New(), Payload: payload}); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	res, err := top.Subscribe(SubscribeSpec{ClientID: "reader", Owner: &countWaker{}, LastN: publishers * perPub})
	if err != nil {
		t.Fatal(err)
	}
	res.Sub.Release()
	b := res.Sub.Drain(nil, publishers*perPub)
	next := make([]uint32, publishers)
	for i, e := range b.Events {
		if e.Seq != uint64(i+1) {
			t.Fatalf("history position %d has seq %d", i, e.Seq)
		}
		p, n := e.Message.Payload[0], binary.BigEndian.Uint32(e.Message.Payload[1:])
		if n != next[p] {
			t.Fatalf("publisher %d: message %d arrived where %d was expected", p, n, next[p])
		}
		next[p]++
	}
	if len(b.Events) != publishers*perPub {
		t.Fatalf("history replayed %d events, want %d", len(b.Events), publishers*perPub)
	}
}
