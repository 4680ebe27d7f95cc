// Package memory is the in-memory Broker: one process, no other service needed. It is the default
// engine and the reference the broker contract tests are written against.
package memory

import (
	"context"
	"crypto/rand"
	"encoding/hex"

	"github.com/pubsubd/pubsub/internal/domain"
)

// Broker keeps every topic in a domain.Registry. It never does I/O, so none of its methods fails
// for the engine's sake: the errors are the domain's.
type Broker struct {
	reg *domain.Registry
}

// New returns an empty in-memory broker whose topics are created with cfg.
func New(cfg domain.TopicConfig) *Broker {
	return &Broker{reg: domain.NewRegistry(cfg)}
}

// CreateTopic creates a topic with a new random epoch or fails with domain.KindExists.
func (b *Broker) CreateTopic(_ context.Context, name domain.TopicName) error {
	_, err := b.reg.Create(name, newEpoch())
	return err
}

// newEpoch returns 64 random bits in hex. Random rather than a counter, so that a client resuming
// against a restarted process (whose topics are new) is never told it recovered.
func newEpoch() string {
	var b [8]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (it crashes the program rather than return an error)
	return hex.EncodeToString(b[:])
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

// Subscribe registers spec.ClientID on the topic and queues its replay (see domain.Topic.Subscribe).
func (b *Broker) Subscribe(_ context.Context, name domain.TopicName, spec domain.SubscribeSpec) (domain.SubscribeResult, error) {
	t, err := b.reg.Get(name)
	if err != nil {
		return domain.SubscribeResult{}, err
	}
	return t.Subscribe(spec)
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
func (b *Broker) Topics(context.Context) ([]domain.TopicStats, error) { return b.reg.Stats(), nil }

// Counts returns the number of topics and subscriptions; this process is the whole cluster.
func (b *Broker) Counts(context.Context) (topics, subscriptions int, err error) {
	topics, subscriptions = b.reg.Counts()
	return topics, subscriptions, nil
}

// LocalCounts returns the number of topics and subscriptions, with no I/O.
func (b *Broker) LocalCounts() (topics, subscriptions int) { return b.reg.Counts() }

// Replicas returns the one process that holds every topic: this one.
func (b *Broker) Replicas(context.Context) ([]domain.ReplicaStats, error) {
	self := domain.ReplicaStats{Self: true}
	for _, t := range b.reg.Stats() {
		if t.Subscribers > 0 {
			self.Topics++
			self.Subscribers += t.Subscribers
		}
	}
	return []domain.ReplicaStats{self}, nil
}

// Ready is always nil: the engine is in the process and takes work as long as it runs.
func (b *Broker) Ready(context.Context) error { return nil }
