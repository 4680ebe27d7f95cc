package service_test

import (
	"testing"

	"github.com/pubsubd/pubsub/internal/broker/brokertest"
	"github.com/pubsubd/pubsub/internal/domain"
	"github.com/pubsubd/pubsub/internal/service"
)

// The engine's refusals reach the transports unchanged, naming their limit, and a refused publish
// is not observed as published.
func TestLimitRefusalsPassThrough(t *testing.T) {
	f := newFixture(t, domain.TopicConfig{HistorySize: 10, QueueSize: 10, MaxTopics: 1, MaxSubscriptions: 1,
		Events: domain.NewBudget(1)}, "orders")
	wantLimit := func(what string, err error, limit string) {
		t.Helper()
		if domain.KindOf(err) != domain.KindRateLimited || domain.LimitOf(err) != limit {
			t.Fatalf("%s: %v, want KindRateLimited naming %q", what, err, limit)
		}
	}
	wantLimit("a second topic", f.svc.CreateTopic(t.Context(), "other"), domain.LimitTopics)
	f.subscribe(t, "orders", "c1", brokertest.NewWaker(), 0)
	_, err := f.svc.Subscribe(t.Context(), service.SubscribeRequest{Topic: "orders", ClientID: "c2", Owner: brokertest.NewWaker()})
	wantLimit("a second subscription", err, domain.LimitSubscriptions)
	_, err = f.svc.Publish(t.Context(), service.PublishRequest{Topic: "orders", Message: msg()})
	wantLimit("a publish larger than the event budget", err, domain.LimitEventMemory)
	if pub, _ := f.obs.calls(); len(pub) != 0 {
		t.Fatalf("a refused publish was observed: %d calls", len(pub))
	}
}
