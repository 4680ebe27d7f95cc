// Package memory is the in-memory Broker: one process, no other service needed. It is the default
// engine and the reference the broker contract tests are written against.
package memory

import (
	"context"

	"github.com/pubsubd/pubsub/internal/domain"
)

// Broker keeps every topic in a domain.Registry.
type Broker struct {
	reg *domain.Registry
}

// New returns an empty in-memory broker whose topics are created with cfg.
func New(cfg domain.TopicConfig) *Broker {
	return &Broker{reg: domain.NewRegistry(cfg)}
}

// CreateTopic creates a topic or fails with domain.KindExists.
func (b *Broker) CreateTopic(_ context.Context, name domain.TopicName) error {
	_, err := b.reg.Create(name)
	return err
}

// DeleteTopic deletes a topic or fails with domain.KindNotFound.
func (b *Broker) DeleteTopic(_ context.Context, name domain.TopicName) error {
	return b.reg.Delete(name)
}

// Publish hands msg to the topic.
func (b *Broker) Publish(_ context.Context, name domain.TopicName, msg domain.Message) (*domain.Event, domain.PublishStats, error) {
	t, err := b.reg.Get(name)
	if err != nil {
		return nil, domain.PublishStats{}, err
	}
	return t.Publish(msg)
}

// Subscribe registers clientID on the topic.
func (b *Broker) Subscribe(_ context.Context, name domain.TopicName, clientID string, owner domain.Waker, lastN int) (domain.SubscribeResult, error) {
	t, err := b.reg.Get(name)
	if err != nil {
		return domain.SubscribeResult{}, err
	}
	return t.Subscribe(clientID, owner, lastN)
}

// Unsubscribe ends clientID's subscription to the topic, if any, for by (see domain.Topic.Unsubscribe).
func (b *Broker) Unsubscribe(_ context.Context, name domain.TopicName, clientID string, by domain.Waker) error {
	t, err := b.reg.Get(name)
	if err != nil {
		return err
	}
	_, err = t.Unsubscribe(clientID, by)
	return err
}

// Detach drops sub if its topic still has it.
func (b *Broker) Detach(sub *domain.Subscription) {
	if t, err := b.reg.Get(sub.Topic); err == nil {
		t.Detach(sub)
	}
}

// Topics returns every topic's stats, sorted by name.
func (b *Broker) Topics() []domain.TopicStats { return b.reg.Stats() }

// Counts returns the number of topics and subscriptions.
func (b *Broker) Counts() (int, int) { return b.reg.Counts() }
