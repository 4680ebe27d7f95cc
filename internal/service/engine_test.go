package service_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/pubsubd/pubsub/internal/broker/brokertest"
	"github.com/pubsubd/pubsub/internal/broker/memory"
	"github.com/pubsubd/pubsub/internal/domain"
	"github.com/pubsubd/pubsub/internal/service"
)

// downBroker is a memory broker whose store is unreachable for the calls a shared engine makes
// over the network to answer: it is how the service must see a Redis outage.
type downBroker struct {
	*memory.Broker
	err error
	// readyDeadline records whether Ready was given a deadline, and how far off.
	readyDeadline time.Duration
}

func (b *downBroker) Topics(context.Context) ([]domain.TopicStats, error) { return nil, b.err }
func (b *downBroker) Counts(context.Context) (int, int, error)            { return 0, 0, b.err }
func (b *downBroker) Ready(ctx context.Context) error {
	if d, ok := ctx.Deadline(); ok {
		b.readyDeadline = time.Until(d)
	}
	return b.err
}

func TestEngineErrorsPassThrough(t *testing.T) {
	unreachable := domain.Errorf(domain.KindUnavailable, "the topic store (test) is unreachable: connection refused")
	b := &downBroker{Broker: memory.New(domain.TopicConfig{HistorySize: 10, QueueSize: 10}), err: unreachable}
	svc := service.New(b, service.Options{})
	ctx := t.Context()
	if _, err := svc.ListTopics(ctx); !errors.Is(err, unreachable) {
		t.Fatalf("ListTopics: %v, want the engine's error", err)
	}
	if _, err := svc.Stats(ctx); !errors.Is(err, unreachable) {
		t.Fatalf("Stats: %v, want the engine's error", err)
	}
	if h, err := svc.Health(ctx); !errors.Is(err, unreachable) || h != (service.Health{}) {
		t.Fatalf("Health: %+v, %v, want no numbers and the engine's error", h, err)
	}
	err := svc.Ready(ctx)
	if !errors.Is(err, unreachable) {
		t.Fatalf("Ready: %v, want the engine's error", err)
	}
	// A probe answers before its own deadline, however long the engine would take.
	if b.readyDeadline <= 0 || b.readyDeadline > time.Second {
		t.Fatalf("Ready gave the engine %v, want a deadline within a second", b.readyDeadline)
	}
	b.err = nil
	if err := svc.Ready(ctx); err != nil {
		t.Fatalf("Ready once the engine is back: %v", err)
	}
	svc.BeginDrain()
	if err := svc.Ready(ctx); domain.KindOf(err) != domain.KindUnavailable {
		t.Fatalf("Ready while draining: %v, want KindUnavailable", err)
	}
}

func TestSubscribeResume(t *testing.T) {
	obs := &fakeObserver{}
	b := memory.New(domain.TopicConfig{HistorySize: 10, QueueSize: 10})
	svc := service.New(b, service.Options{Observer: obs})
	ctx := t.Context()
	if err := svc.CreateTopic(ctx, "orders"); err != nil {
		t.Fatal(err)
	}
	first, err := svc.Subscribe(ctx, service.SubscribeRequest{Topic: "orders", ClientID: "c0", Owner: brokertest.NewWaker()})
	if err != nil {
		t.Fatal(err)
	}
	first.Sub.Release()
	for range 3 {
		if _, err := svc.Publish(ctx, service.PublishRequest{Topic: "orders", Message: domain.Message{ID: [16]byte{1}}}); err != nil {
			t.Fatal(err)
		}
	}

	t.Run("epoch is required", func(t *testing.T) {
		_, err := svc.Subscribe(ctx, service.SubscribeRequest{Topic: "orders", ClientID: "c1", Owner: brokertest.NewWaker(), Resume: true, SinceSeq: 1})
		if domain.KindOf(err) != domain.KindInvalid {
			t.Fatalf("resume without an epoch: %v, want KindInvalid", err)
		}
	})
	t.Run("recovered, and the replay is observed", func(t *testing.T) {
		res, err := svc.Subscribe(ctx, service.SubscribeRequest{Topic: "orders", ClientID: "c2", Owner: brokertest.NewWaker(),
			Resume: true, SinceSeq: 1, Epoch: first.Epoch})
		if err != nil {
			t.Fatal(err)
		}
		if !res.Resumed || !res.Recovered || res.Replayed != 2 || res.Seq != 3 {
			t.Fatalf("result %+v, want resumed, recovered, 2 replayed at seq 3", res)
		}
		_, replayed := obs.calls()
		if len(replayed) != 1 || replayed[0].n != 2 {
			t.Fatalf("observer heard %+v, want one replay of 2", replayed)
		}
	})
}
