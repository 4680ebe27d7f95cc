package redis_test

import (
	"testing"

	"github.com/pubsubd/pubsub/internal/broker/brokertest"
	"github.com/pubsubd/pubsub/internal/broker/redis"
	"github.com/pubsubd/pubsub/internal/domain"
	"github.com/pubsubd/pubsub/internal/service"
)

var _ service.Broker = (*redis.Engine)(nil)

// One replica: the contract of the memory engine, unchanged.
func TestContractOneReplica(t *testing.T) {
	brokertest.Run(t, func(t *testing.T, cfg domain.TopicConfig) service.Broker {
		return newEngine(t, cfg, options(newPrefix(), "solo"))
	})
}
