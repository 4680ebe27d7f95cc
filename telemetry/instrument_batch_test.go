package telemetry_test

import (
	"context"
	"strings"
	"testing"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/pubsubd/pubsub/internal/domain"
	"github.com/pubsubd/pubsub/internal/service"
	"github.com/pubsubd/pubsub/telemetry"
	"github.com/pubsubd/pubsub/telemetry/telemetrytest"
)

// batchAPI answers a batch: item 1 fails, the others get seqs; it keeps what it was given.
type batchAPI struct {
	service.API
	got []service.PublishItem
}

func (a *batchAPI) PublishBatch(items []service.PublishItem) {
	a.got = append(a.got, items...)
	for i := range items {
		if i == 1 {
			items[i].Err = domain.Errorf(domain.KindNotFound, "no topic")
			continue
		}
		items[i].Event = &domain.Event{Topic: items[i].Req.Topic, Seq: uint64(i + 1)}
	}
}

// Every publish of a batch gets what a lone publish gets: its own producer span, a child of its
// own frame's context, whose trace context its message carries, and its own count.
func TestPublishBatchIsInstrumentedPerItem(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tel := setup(t, telemetry.Config{SpanProcessor: rec, Sampler: sdktrace.AlwaysSample()})
	next := &batchAPI{}
	api := tel.Instrument(next, func(error) string { return "TOPIC_NOT_FOUND" })
	count := func(result string) float64 {
		t.Helper()
		s, err := telemetrytest.Series(tel.Metrics.Registry, "pubsub_operations_total", map[string]string{"operation": "publish", "result": result})
		if err != nil || s == nil {
			return 0
		}
		return telemetrytest.Value(s)
	}
	items := make([]service.PublishItem, 3)
	frames := make([]trace.Span, 3)
	for i := range items {
		var ctx context.Context
		ctx, frames[i] = tel.Tracer.Start(context.Background(), "frame") // a root per frame
		items[i] = service.PublishItem{Ctx: ctx, Req: service.PublishRequest{Topic: "t", Message: domain.Message{Payload: []byte("1")}}}
	}
	api.PublishBatch(items)
	for _, f := range frames {
		f.End()
	}

	if len(next.got) != 3 {
		t.Fatalf("the service got %d items, want 3", len(next.got))
	}
	publishes := map[trace.SpanID]sdktrace.ReadOnlySpan{}
	for _, s := range rec.Ended() {
		if strings.HasPrefix(s.Name(), "publish") {
			publishes[s.SpanContext().SpanID()] = s
		}
	}
	if len(publishes) != 3 {
		t.Fatalf("%d publish spans, want one per item", len(publishes))
	}
	for i, it := range next.got {
		sc := trace.SpanContextFromContext(it.Ctx)
		s, ok := publishes[sc.SpanID()]
		if !ok {
			t.Fatalf("item %d reached the service without its publish span", i)
		}
		if s.Parent().SpanID() != frames[i].SpanContext().SpanID() || s.SpanKind() != trace.SpanKindProducer {
			t.Fatalf("item %d: span %s kind %v parent %v, want a producer under its frame", i, s.Name(), s.SpanKind(), s.Parent().SpanID())
		}
		if tp := it.Req.Message.Headers["traceparent"]; !strings.Contains(tp, sc.SpanID().String()) {
			t.Fatalf("item %d carries traceparent %q, want its span %s", i, tp, sc.SpanID())
		}
		if failed := s.Status().Code != 0 && s.Status().Description != ""; failed != (i == 1) {
			t.Fatalf("item %d: span status %v", i, s.Status())
		}
	}
	if ok, failed := count("ok"), count("error"); ok != 2 || failed != 1 {
		t.Fatalf("publish operations ok %v error %v, want 2 and 1", ok, failed)
	}
}
