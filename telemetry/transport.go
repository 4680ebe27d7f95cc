package telemetry

import (
	"context"
	"time"

	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/trace"

	"github.com/pubsubd/pubsub/internal/domain"
)

// FrameContext returns the context one WebSocket frame is handled in: a fresh root, or the trace
// the client sent (traceparent/tracestate), never the hours-long connection's.
func (t *Telemetry) FrameContext(ctx context.Context, traceparent, tracestate string) context.Context {
	if traceparent == "" || !t.tracing {
		return ctx
	}
	c := propagation.MapCarrier{"traceparent": traceparent}
	if tracestate != "" {
		c["tracestate"] = tracestate
	}
	return t.Propagator.Extract(ctx, c)
}

// Ping records a ping frame: a span when sampled, and the operation metrics.
func (t *Telemetry) Ping(ctx context.Context) {
	start := time.Now()
	_, span := t.Tracer.Start(ctx, "ping", trace.WithSpanKind(trace.SpanKindServer), trace.WithTimestamp(start),
		trace.WithAttributes(systemPubsub))
	span.End()
	t.Metrics.Operation(OpPing, nil, time.Since(start), span.SpanContext())
}

// eventSpanContext returns the span context in the event's traceparent header, if any.
func eventSpanContext(ev *domain.Event) trace.SpanContext {
	tp := ev.Message.Headers["traceparent"]
	if len(tp) != 55 {
		return trace.SpanContext{}
	}
	tid, err := trace.TraceIDFromHex(tp[3:35])
	if err != nil {
		return trace.SpanContext{}
	}
	sid, err := trace.SpanIDFromHex(tp[36:52])
	if err != nil {
		return trace.SpanContext{}
	}
	var flags trace.TraceFlags
	if sampledFlag(tp) {
		flags = trace.FlagsSampled
	}
	return trace.NewSpanContext(trace.SpanContextConfig{TraceID: tid, SpanID: sid, TraceFlags: flags, Remote: true})
}

// sampledFlag reads the sampled bit of a well-formed traceparent's flags.
func sampledFlag(tp string) bool {
	c := tp[54]
	v := c - '0'
	if c >= 'a' {
		v = c - 'a' + 10
	}
	return v&1 == 1
}

// Sampled reports whether ev belongs to a sampled trace, so that a transport only keeps such events
// for TraceDeliveries; it costs one map lookup.
func (t *Telemetry) Sampled(ev *domain.Event) bool { return t.tracing && sampled(ev) }

// sampled is the cheap test done before anything else: does the event carry a sampled trace
// context? Unsampled events cost one map lookup.
func sampled(ev *domain.Event) bool {
	tp := ev.Message.Headers["traceparent"]
	return len(tp) == 55 && sampledFlag(tp)
}

// Delivered records one flushed write batch of a connection: n events delivered, and the delivery
// latency of the oldest of them (with a trace exemplar when it was sampled). Recording once per
// batch rather than per event keeps the shared counters off the per-delivery path.
func (t *Telemetry) Delivered(n int, oldest *domain.Event, end time.Time) {
	if n == 0 || oldest == nil {
		return
	}
	t.Metrics.Delivered.Add(float64(n))
	var sc trace.SpanContext
	if t.tracing && sampled(oldest) {
		sc = eventSpanContext(oldest)
	}
	observe(t.Metrics.DeliveryLat, end.Sub(oldest.Time).Seconds(), sc)
}

// TraceDeliveries records a consumer span for each sampled event written to clientID's socket
// between start and end, as a child of (and linked to) the publish span named in the event, up to
// the per-publish cap. It costs nothing when tracing is off.
func (t *Telemetry) TraceDeliveries(events []*domain.Event, clientID string, start, end time.Time) {
	if !t.tracing {
		return
	}
	for _, ev := range events {
		if !sampled(ev) || ev.Traced.Add(1) > t.deliverySpans {
			continue
		}
		parent := eventSpanContext(ev)
		ctx := trace.ContextWithRemoteSpanContext(context.Background(), parent)
		_, span := t.Tracer.Start(ctx, "deliver "+string(ev.Topic), trace.WithSpanKind(trace.SpanKindConsumer),
			trace.WithTimestamp(start), trace.WithLinks(trace.Link{SpanContext: parent}),
			trace.WithAttributes(systemPubsub, attrDestination.String(string(ev.Topic)),
				attrOpType.String("process"), attrOpName.String("deliver"), attrMessageID.String(ev.Message.ID.String()),
				attrSeq.Int64(int64(ev.Seq)), attrClientID.String(clientID)))
		span.End(trace.WithTimestamp(end))
	}
}
