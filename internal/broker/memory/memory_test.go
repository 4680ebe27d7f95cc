package memory_test

import (
	"testing"

	"go.uber.org/goleak"

	"github.com/pubsubd/pubsub/internal/broker/brokertest"
	"github.com/pubsubd/pubsub/internal/broker/memory"
	"github.com/pubsubd/pubsub/internal/domain"
	"github.com/pubsubd/pubsub/internal/service"
)

// The contract suite starts publishers and followers; goleak proves each one returns.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// The compiler checks that the memory engine is a service.Broker; the suite checks it keeps the
// contract.
var _ service.Broker = (*memory.Broker)(nil)

func TestBrokerContract(t *testing.T) {
	brokertest.Run(t, func(_ *testing.T, cfg domain.TopicConfig) service.Broker {
		return memory.New(cfg) // nothing to clean up: it is garbage once the test drops it
	})
}
