package redis_test

import (
	"testing"

	"github.com/pubsubd/pubsub/internal/broker/brokertest"
	"github.com/pubsubd/pubsub/internal/broker/redis"
	"github.com/pubsubd/pubsub/internal/domain"
	"github.com/pubsubd/pubsub/internal/service"
)

var _ service.Broker = (*redis.Engine)(nil)

// One replica whose publishes wait for its own delivery (AwaitLocalDelivery): the contract of the
// memory engine, unchanged, ack included.
func TestContractOneReplica(t *testing.T) {
	brokertest.Run(t, func(t *testing.T, cfg domain.TopicConfig) service.Broker {
		o := options(newPrefix(), "solo")
		o.AwaitLocalDelivery = true
		return newEngine(t, cfg, o)
	})
}

// One replica as production runs it (publishes do not wait for the local delivery), with the
// suite's publishes followed by the barrier of the three-replica run.
func TestContractOneReplicaNoWait(t *testing.T) {
	brokertest.Run(t, func(t *testing.T, cfg domain.TopicConfig) service.Broker {
		e := newEngine(t, cfg, options(newPrefix(), "solo"))
		return &cluster{subs: e, pubs: e, idle: e}
	})
}
