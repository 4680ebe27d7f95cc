package redis_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/pubsubd/pubsub/internal/broker/brokertest"
	"github.com/pubsubd/pubsub/internal/broker/redis"
	"github.com/pubsubd/pubsub/internal/domain"
	"github.com/pubsubd/pubsub/internal/service"
)

// cluster is three engines on one Redis, seen by the contract suite as one broker: subscribers
// on the first, publishers, creates and deletes on the second, the third following nothing (it
// still counts in the cluster-wide stats). Each write waits, as a barrier, until the subscribers'
// engine has applied it, and reports that engine's fan-out: the suite's synchronous clauses then
// hold across replicas.
type cluster struct {
	subs, pubs, idle *redis.Engine
}

var _ service.Broker = (*cluster)(nil)

func newCluster(t *testing.T, cfg domain.TopicConfig) *cluster {
	p := newPrefix()
	return &cluster{subs: newEngine(t, cfg, options(p, "a")), pubs: newEngine(t, cfg, options(p, "b")),
		idle: newEngine(t, cfg, options(p, "c"))}
}

func (c *cluster) CreateTopic(ctx context.Context, name domain.TopicName) error {
	return c.pubs.CreateTopic(ctx, name)
}

func (c *cluster) DeleteTopic(ctx context.Context, name domain.TopicName) error {
	if err := c.pubs.DeleteTopic(ctx, name); err != nil {
		return err
	}
	c.subs.AwaitGone(name, 10*time.Second)
	return nil
}

func (c *cluster) Publish(ctx context.Context, name domain.TopicName, msg domain.Message) (*domain.Event, domain.PublishStats, error) {
	ev, st, err := c.pubs.Publish(ctx, name, msg)
	if err != nil {
		return ev, st, err
	}
	if dst, ok := c.subs.AwaitDelivered(ctx, name, ev.Seq); ok {
		dst.Start = ev.Time
		return ev, dst, nil
	}
	return ev, st, nil
}

func (c *cluster) Subscribe(ctx context.Context, name domain.TopicName, spec domain.SubscribeSpec) (domain.SubscribeResult, error) {
	return c.subs.Subscribe(ctx, name, spec)
}

func (c *cluster) Unsubscribe(ctx context.Context, name domain.TopicName, clientID string, by domain.Waker) error {
	return c.subs.Unsubscribe(ctx, name, clientID, by)
}

func (c *cluster) Detach(sub *domain.Subscription) { c.subs.Detach(sub) }

// Topics and Counts ask the subscribers' engine, whose own counts are live; another engine sees
// them at its next heartbeat (TestStatsAcrossReplicas).
func (c *cluster) Topics(ctx context.Context) ([]domain.TopicStats, error) { return c.subs.Topics(ctx) }

func (c *cluster) Counts(ctx context.Context) (int, int, error) { return c.subs.Counts(ctx) }

func (c *cluster) LocalCounts() (int, int) { return c.subs.LocalCounts() }

func (c *cluster) Replicas(ctx context.Context) ([]domain.ReplicaStats, error) {
	return c.subs.Replicas(ctx)
}

func (c *cluster) Ready(ctx context.Context) error { return c.pubs.Ready(ctx) }

// Three replicas: the same contract, with subscribers and publishers on different engines.
//
// One clause is a property of one process and is left out: "event memory budget" refuses a publish
// that the publisher's own process cannot hold. Across replicas the publisher's replica does not
// hold the event of a topic it does not follow, and cannot make another replica's queues give
// back; a receiving replica whose budget is full announces the event as a gap to its subscribers
// instead (TestBudgetFullAnnouncesGap).
func TestContractThreeReplicas(t *testing.T) {
	brokertest.Run(t, func(t *testing.T, cfg domain.TopicConfig) service.Broker {
		if strings.HasSuffix(t.Name(), "/event_memory_budget") {
			t.Skip("the event budget is per process: see TestBudgetFullAnnouncesGap")
		}
		return newCluster(t, cfg)
	})
}
