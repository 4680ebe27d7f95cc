package redis_test

import (
	"fmt"
	"sync/atomic"
	"testing"

	"github.com/pubsubd/pubsub/internal/broker/brokertest"
	"github.com/pubsubd/pubsub/internal/domain"
)

// BenchmarkPublish measures an acknowledged publish on one replica, with no local subscriber (the
// script's round trip) and with one (the round trip plus this replica's own delivery, which the ack
// waits for), from one caller and from 64 concurrent callers (automatic pipelining).
func BenchmarkPublish(b *testing.B) {
	for _, subs := range []int{0, 1} {
		for _, callers := range []int{1, 64} {
			b.Run(fmt.Sprintf("subscribers=%d/callers=%d", subs, callers), func(b *testing.B) {
				e := newEngine(b, testConfig(100, 1<<20), options(newPrefix(), "bench"))
				if err := e.CreateTopic(b.Context(), "t"); err != nil {
					b.Fatal(err)
				}
				if subs > 0 {
					res, err := e.Subscribe(b.Context(), "t", domain.SubscribeSpec{ClientID: "s", Owner: brokertest.NewWaker()})
					if err != nil {
						b.Fatal(err)
					}
					res.Sub.Release()
					b.Cleanup(func() { res.Sub.Abandon() })
					go func() { // a reader that keeps the queue short, as a writer would
						for res.Sub.Ended() == domain.Live {
							res.Sub.Drain(nil, 1024)
							waitTick()
						}
					}()
				}
				b.SetParallelism(callers)
				b.ReportAllocs()
				var n atomic.Uint64
				b.RunParallel(func(pb *testing.PB) {
					for pb.Next() {
						if _, _, err := e.Publish(b.Context(), "t", msg(n.Add(1))); err != nil {
							b.Error(err)
							return
						}
					}
				})
			})
		}
	}
}
