package service_test

import (
	"context"
	"slices"
	"strconv"
	"testing"

	"github.com/google/uuid"

	"github.com/pubsubd/pubsub/internal/broker/memory"
	"github.com/pubsubd/pubsub/internal/domain"
	"github.com/pubsubd/pubsub/internal/service"
)

// batchBroker is a memory broker that also takes batches (as the Redis engine does), noting each
// call's topic and size.
type batchBroker struct {
	*memory.Broker
	calls []string
}

func (b *batchBroker) PublishBatch(ctx context.Context, name domain.TopicName, entries []service.BatchEntry) {
	b.calls = append(b.calls, string(name)+":"+strconv.Itoa(len(entries)))
	for i := range entries {
		entries[i].Event, entries[i].Stats, entries[i].Err = b.Publish(ctx, name, entries[i].Msg)
	}
}

func TestPublishBatch(t *testing.T) {
	cfg := domain.TopicConfig{HistorySize: 10, QueueSize: 10}
	for _, tc := range []struct {
		name      string
		broker    func() service.Broker
		wantCalls []string // of a batchBroker
	}{
		{"engine without batches", func() service.Broker { return memory.New(cfg) }, nil},
		// Runs of one topic go together; what the service refuses itself never reaches the engine.
		{"engine with batches", func() service.Broker { return &batchBroker{Broker: memory.New(cfg)} },
			[]string{"a:2", "b:1", "c:1", "a:1"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b := tc.broker()
			obs := &fakeObserver{}
			svc := service.New(b, service.Options{Observer: obs})
			for _, name := range []domain.TopicName{"a", "b"} {
				if err := svc.CreateTopic(t.Context(), name); err != nil {
					t.Fatal(err)
				}
			}
			noID := domain.Message{Payload: []byte(`1`)}
			reqs := []struct {
				topic domain.TopicName
				msg   domain.Message
			}{{"a", msg()}, {"a", noID}, {"a", msg()}, {"b", msg()}, {"c", msg()}, {"a", msg()}}
			items := make([]service.PublishItem, len(reqs))
			for i, r := range reqs {
				items[i] = service.PublishItem{Ctx: context.WithValue(t.Context(), ctxKey{}, i),
					Req: service.PublishRequest{Topic: r.topic, Message: r.msg}}
			}
			svc.PublishBatch(items)
			if _, batches := b.(*batchBroker); svc.BatchesPublishes() != batches {
				t.Fatalf("BatchesPublishes() = %v over %T", svc.BatchesPublishes(), b)
			}

			want := []struct {
				seq  uint64
				kind domain.Kind
			}{{1, 0}, {0, domain.KindInvalid}, {2, 0}, {1, 0}, {0, domain.KindNotFound}, {3, 0}}
			for i, w := range want {
				it := items[i]
				if w.kind != 0 {
					if domain.KindOf(it.Err) != w.kind || it.Event != nil {
						t.Fatalf("item %d: %v %v, want an error of kind %v", i, it.Event, it.Err, w.kind)
					}
					continue
				}
				if it.Err != nil || it.Event == nil || it.Event.Seq != w.seq || it.Event.Topic != reqs[i].topic || it.Event.Message.ID != reqs[i].msg.ID {
					t.Fatalf("item %d: %+v %v, want seq %d of %s", i, it.Event, it.Err, w.seq, reqs[i].topic)
				}
			}
			// Every accepted item is observed, in order, with its own context.
			published, _ := obs.calls()
			var got []int
			for _, p := range published {
				got = append(got, p.ctx.Value(ctxKey{}).(int))
			}
			if want := []int{0, 2, 3, 5}; !slices.Equal(got, want) {
				t.Fatalf("observed items %v, want %v", got, want)
			}
			if bb, ok := b.(*batchBroker); ok && !slices.Equal(bb.calls, tc.wantCalls) {
				t.Fatalf("engine calls %v, want %v", bb.calls, tc.wantCalls)
			}
		})
	}
}

func TestPublishBatchWhileDraining(t *testing.T) {
	b := &batchBroker{Broker: memory.New(domain.TopicConfig{HistorySize: 10, QueueSize: 10})}
	svc := service.New(b, service.Options{})
	if err := svc.CreateTopic(t.Context(), "a"); err != nil {
		t.Fatal(err)
	}
	svc.BeginDrain()
	items := []service.PublishItem{
		{Ctx: t.Context(), Req: service.PublishRequest{Topic: "a", Message: domain.Message{ID: uuid.New()}}},
		{Ctx: t.Context(), Req: service.PublishRequest{Topic: "a", Message: domain.Message{ID: uuid.New()}}},
	}
	svc.PublishBatch(items)
	for i, it := range items {
		if domain.KindOf(it.Err) != domain.KindUnavailable {
			t.Fatalf("item %d while draining: %v", i, it.Err)
		}
	}
	if len(b.calls) != 0 {
		t.Fatalf("the engine was called while draining: %v", b.calls)
	}
}
