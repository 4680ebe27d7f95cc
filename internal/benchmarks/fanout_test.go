package benchmarks

import (
	"context"
	"fmt"
	"io"
	"testing"

	"github.com/google/uuid"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/pubsubd/pubsub/internal/broker/memory"
	"github.com/pubsubd/pubsub/internal/domain"
	"github.com/pubsubd/pubsub/internal/service"
	"github.com/pubsubd/pubsub/internal/transport/wire"
	"github.com/pubsubd/pubsub/telemetry"
)

type nopWaker struct{}

func (nopWaker) Wake() {}

// mode is how much telemetry wraps the service.
type mode struct {
	name    string
	sampler sdktrace.Sampler // nil: tracing off
	metrics bool
}

var modes = []mode{
	{name: "telemetry=off"},
	{name: "telemetry=metrics", metrics: true},
	{name: "telemetry=default", metrics: true, sampler: sdktrace.ParentBased(sdktrace.TraceIDRatioBased(telemetry.DefaultSampleRatio))},
	{name: "telemetry=always", metrics: true, sampler: sdktrace.AlwaysSample()},
}

func setup(b *testing.B, m mode, subs int) (service.API, []*domain.Subscription) {
	b.Helper()
	ctx := context.Background()
	cfg := telemetry.Config{LogOutput: io.Discard, LogFormat: "json", DeliverySpans: 16,
		Labels: telemetry.Labels{Codes: wire.Codes, ClientTypes: wire.ClientTypes, ServerTypes: wire.ServerTypes}}
	if m.sampler != nil {
		// A batch processor in front of an exporter that keeps nothing: the cost measured is
		// the service's own (span creation, attributes, queueing), not an exporter's.
		cfg.SpanProcessor = sdktrace.NewBatchSpanProcessor(tracetest.NewNoopExporter())
		cfg.Sampler = m.sampler
	}
	tel, err := telemetry.Setup(ctx, cfg)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = tel.Shutdown(ctx) })
	broker := memory.New(domain.TopicConfig{HistorySize: 100, QueueSize: 1024, Encoder: wire.EventEncoder})
	opts := service.Options{}
	if m.metrics {
		opts.Observer = tel.Observer()
	}
	var api service.API = service.New(broker, opts)
	if m.metrics {
		api = tel.Instrument(api, wire.CodeOf)
	}
	if err := api.CreateTopic(ctx, "bench"); err != nil {
		b.Fatal(err)
	}
	out := make([]*domain.Subscription, subs)
	for i := range out {
		res, err := api.Subscribe(ctx, service.SubscribeRequest{Topic: "bench", ClientID: fmt.Sprint(i), Owner: nopWaker{}})
		if err != nil {
			b.Fatal(err)
		}
		res.Sub.Release()
		out[i] = res.Sub
	}
	return api, out
}

// BenchmarkPublishFanout is the cost of one publish to N subscribers: encoding once, history
// append, and a non-blocking enqueue per subscriber, plus (so that the enqueue path, not the drop
// path, is measured) the dequeue each subscriber's writer would do, every 512 publishes, inside the
// timer: the figures are an upper bound on the publisher's share. Stopping the timer instead would
// measure ReadMemStats' stop-the-world pauses. ns/sub is the per-subscriber share of ns/op.
func BenchmarkPublishFanout(b *testing.B) {
	payload := []byte(`{"order":12345,"item":"widget","qty":3,"note":"one hundred bytes of payload, give or take...."}`)
	for _, m := range modes {
		for _, subs := range []int{1, 100, 1000, 10000} {
			b.Run(fmt.Sprintf("%s/subs=%d", m.name, subs), func(b *testing.B) {
				api, queues := setup(b, m, subs)
				ctx := context.Background()
				req := service.PublishRequest{Topic: "bench", Message: domain.Message{ID: uuid.New(), Payload: payload}}
				buf := make([]*domain.Event, 0, 1024)
				drain := func() {
					for _, q := range queues {
						buf = q.Drain(buf[:0], 1024).Events
					}
				}
				// Warm up: grow every queue to its working size so its one-time growth is not
				// counted as a per-publish allocation.
				for i := 0; i < 512; i++ {
					if _, err := api.Publish(ctx, req); err != nil {
						b.Fatal(err)
					}
				}
				drain()
				b.ReportAllocs()
				b.ResetTimer()
				for i := 0; i < b.N; i++ {
					if _, err := api.Publish(ctx, req); err != nil {
						b.Fatal(err)
					}
					if i%512 == 511 {
						drain()
					}
				}
				b.StopTimer()
				b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/float64(subs), "ns/sub")
			})
		}
	}
}
