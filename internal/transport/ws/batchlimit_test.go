package ws

import (
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/pubsubd/pubsub/internal/domain"
)

// publishSized publishes n messages whose payload is a JSON string of size bytes.
func publishSized(t *testing.T, top *domain.Topic, n, size int) {
	t.Helper()
	payload := []byte(`"` + strings.Repeat("x", size-2) + `"`)
	for range n {
		if _, _, err := top.Publish(domain.Message{ID: uuid.New(), Payload: payload}); err != nil {
			t.Fatal(err)
		}
	}
}

// drainAll builds batches until one asks for no more, and returns the seqs of each subscription's
// events in the order written, and the largest batch.
func drainAll(t *testing.T, b *batch, subs []*domain.Subscription) (seqs []uint64, largest int) {
	t.Helper()
	for i := 0; ; i++ {
		if i == 10_000 {
			t.Fatal("batches never ended")
		}
		b.build(subs, nil, false, time.Now(), nil)
		largest = max(largest, len(b.buf))
		seqs = append(seqs, seqsOf(parseFrames(t, b.buf))...)
		more := b.more
		b.reset()
		if !more {
			return seqs, largest
		}
	}
}

// A batch takes events up to its byte limit, leaves the rest queued in order, and an event larger
// than the limit goes out alone.
func TestBatchLimitBytes(t *testing.T) {
	tests := []struct {
		name        string
		n, size     int
		limit       int
		wantLargest int // at most
	}{
		{"small events", 100, 1 << 10, 8 << 10, 8<<10 + 1<<10 + 16},
		{"events larger than the limit, one per batch", 5, 64 << 10, 16 << 10, 64<<10 + 300},
		{"no limit", 50, 1 << 10, 0, 1 << 20},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, top := newTopic(t, 1000, domain.DropOldest)
			sub := subscribeLive(t, top, "c", 0)
			sub.Release()
			publishSized(t, top, tt.n, tt.size)
			b := batch{limit: tt.limit}
			defer b.release()
			seqs, largest := drainAll(t, &b, []*domain.Subscription{sub})
			if len(seqs) != tt.n {
				t.Fatalf("%d events written, want %d", len(seqs), tt.n)
			}
			for i, s := range seqs {
				if s != uint64(i+1) {
					t.Fatalf("event %d has seq %d: out of order", i, s)
				}
			}
			if largest > tt.wantLargest {
				t.Fatalf("largest batch %d bytes, want at most %d", largest, tt.wantLargest)
			}
		})
	}
}

// When the limit cuts a batch short, the next one starts with the subscriptions it left out: a
// busy subscription first in the list does not keep the others waiting.
func TestBatchLimitRotates(t *testing.T) {
	_, top := newTopic(t, 1000, domain.DropOldest)
	_, other := newTopic2(t)
	busy := subscribeLive(t, top, "busy", 0)
	busy.Release()
	quiet := subscribeLive(t, other, "quiet", 0)
	quiet.Release()
	publishSized(t, top, 100, 1<<10)
	publishSized(t, other, 1, 100)
	b := batch{limit: 4 << 10}
	defer b.release()
	subs := []*domain.Subscription{busy, quiet}
	// Both topics start at seq 1: the quiet one's event is the second seq 1 written.
	ones := 0
	for range 2 {
		b.build(subs, nil, false, time.Now(), nil)
		for _, s := range seqsOf(parseFrames(t, b.buf)) {
			if s == 1 {
				ones++
			}
		}
		b.reset()
	}
	if ones != 2 {
		t.Fatal("the quiet subscription's event did not go out within 2 batches while the busy one had 100 KiB waiting")
	}
}

// newTopic2 returns a second topic, of its own registry, named differently from newTopic's.
func newTopic2(t *testing.T) (*domain.Registry, *domain.Topic) {
	t.Helper()
	reg, _ := newTopic(t, 1000, domain.DropOldest)
	top, err := reg.Create("quiet", "epoch-1")
	if err != nil {
		t.Fatal(err)
	}
	return reg, top
}

// Growth past the connection's allowance is taken from the budget and given back on release; a
// refused growth keeps the batch at its size and is reported, and nothing is lost.
func TestBatchBudget(t *testing.T) {
	_, top := newTopic(t, 1000, domain.DropOldest)
	sub := subscribeLive(t, top, "c", 0)
	sub.Release()
	publishSized(t, top, 64, 4<<10) // 256 KiB

	budget := domain.NewBudget(1 << 20)
	b := batch{limit: 128 << 10, budget: budget}
	b.build([]*domain.Subscription{sub}, nil, false, time.Now(), nil)
	first := seqsOf(parseFrames(t, b.buf))
	if len(first) == 0 || len(first) == 64 {
		t.Fatalf("first batch of 256 KiB waiting, limit 128 KiB: %d events", len(first))
	}
	if b.refused || budget.Used() == 0 || budget.Used() != b.held || b.held < int64(cap(b.buf)-writeAllowance) {
		t.Fatalf("granted growth: refused %v, budget used %d, held %d, buffer cap %d", b.refused, budget.Used(), b.held, cap(b.buf))
	}
	b.release()
	if budget.Used() != 0 {
		t.Fatalf("after release the budget holds %d bytes, want 0", budget.Used())
	}

	tight := domain.NewBudget(1)
	b = batch{limit: 128 << 10, budget: tight}
	defer b.release()
	seqs, largest := drainAll(t, &b, []*domain.Subscription{sub})
	if len(seqs) == 0 || seqs[len(seqs)-1] != 64 {
		t.Fatalf("under a refusing budget the rest went out as %v; want every event up to seq 64", seqs)
	}
	if !b.refused && largest > writeAllowance {
		t.Fatal("a batch grew past the allowance without the budget")
	}
	if largest > writeAllowance+4<<10+64 {
		t.Fatalf("largest batch %d bytes under a refusing budget, want about the allowance (%d)", largest, writeAllowance)
	}
}
