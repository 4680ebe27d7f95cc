package telemetry

import (
	"context"
	"encoding/hex"
	"maps"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"

	"github.com/pubsubd/pubsub/internal/domain"
	"github.com/pubsubd/pubsub/internal/service"
)

// Attribute keys of the OpenTelemetry messaging semantic conventions, and ours under pubsub.*.
const (
	attrSystem        = attribute.Key("messaging.system")
	attrDestination   = attribute.Key("messaging.destination.name")
	attrOpType        = attribute.Key("messaging.operation.type")
	attrOpName        = attribute.Key("messaging.operation.name")
	attrMessageID     = attribute.Key("messaging.message.id")
	attrClientID      = attribute.Key("messaging.client.id")
	attrBatchCount    = attribute.Key("messaging.batch.message_count")
	attrBodySize      = attribute.Key("messaging.message.body.size")
	attrErrorType     = attribute.Key("error.type")
	attrErrorCode     = attribute.Key("pubsub.error.code")
	attrSeq           = attribute.Key("pubsub.message.seq")
	attrLastN         = attribute.Key("pubsub.last_n")
	attrReplayed      = attribute.Key("pubsub.replayed")
	attrSinceSeq      = attribute.Key("pubsub.resume.since_seq")
	attrRecovered     = attribute.Key("pubsub.resume.recovered")
	attrSubscribers   = attribute.Key("pubsub.fanout.subscribers")
	attrEnqueued      = attribute.Key("pubsub.fanout.enqueued")
	attrDropped       = attribute.Key("pubsub.fanout.dropped")
	attrDisconnected  = attribute.Key("pubsub.fanout.disconnected")
	attrQueueDepthMax = attribute.Key("pubsub.fanout.queue_depth_max")
	attrOmitted       = attribute.Key("pubsub.fanout.delivery_spans_omitted")
)

var systemPubsub = attrSystem.String("pubsub")

// Instrument wraps api so that every operation gets a span, a duration observation and an
// ok/error count. codeOf names an error by its wire code (recorded on the span); it comes from the
// transport's error table so that there is still only one such table.
func (t *Telemetry) Instrument(api service.API, codeOf func(error) string) service.API {
	return &instrumented{next: api, t: t, codeOf: codeOf}
}

type instrumented struct {
	next   service.API
	t      *Telemetry
	codeOf func(error) string
}

// Span start options built once: building them per call allocates.
var (
	kindInternal = trace.WithSpanKind(trace.SpanKindInternal)
	kindServer   = trace.WithSpanKind(trace.SpanKindServer)
	kindProducer = trace.WithSpanKind(trace.SpanKindProducer)
)

// opSpan is one operation in flight: its context, span and start, for the metrics at its end.
type opSpan struct {
	in    *instrumented
	ctx   context.Context
	op    string
	topic domain.TopicName // for a limit refusal's incident
	start time.Time
	span  trace.Span
}

// begin starts an operation's span. The span is started under the constant op name and renamed
// only when it records: an unsampled operation (99 % with the default sampler) then pays for no
// name concatenation and no attributes.
func (in *instrumented) begin(ctx context.Context, op, verb string, topic domain.TopicName, kind trace.SpanStartOption) (context.Context, opSpan) {
	start := time.Now()
	ctx, span := in.t.Tracer.Start(ctx, verb, kind)
	if topic != "" && span.IsRecording() {
		span.SetName(verb + " " + string(topic))
		span.SetAttributes(systemPubsub, attrDestination.String(string(topic)))
	}
	return ctx, opSpan{in: in, ctx: ctx, op: op, topic: topic, start: start, span: span}
}

// end records the outcome: error attributes and status on a recording span, and the operation's
// count and duration (with the trace as exemplar when sampled). An error that names the limit which
// refused the operation (domain.LimitOf: the topic cap, the subscription cap, the event memory) is
// counted in pubsub_limit_rejections_total and logged at the refusal log's bounded rate; this is
// the one place those service-level refusals are counted.
func (o opSpan) end(err error) {
	d := time.Since(o.start)
	if err != nil && o.span.IsRecording() {
		code := o.in.codeOf(err)
		o.span.SetAttributes(attrErrorType.String(code), attrErrorCode.String(code))
		o.span.SetStatus(codes.Error, err.Error())
	}
	if err != nil {
		if limit := domain.LimitOf(err); limit != "" {
			o.in.t.Metrics.LimitRejectedFor(limit, string(o.topic), "")
			o.in.t.Refusals.Warn(o.ctx, "limit refused an operation", "operation", o.op, "limit", limit, "error", err.Error())
		}
	}
	o.span.End()
	o.in.t.Metrics.Operation(o.op, err, d, o.span.SpanContext())
}

func (in *instrumented) CreateTopic(ctx context.Context, name domain.TopicName) error {
	ctx, o := in.begin(ctx, OpTopicCreate, "topic.create", name, kindInternal)
	err := in.next.CreateTopic(ctx, name)
	o.end(err)
	return err
}

func (in *instrumented) DeleteTopic(ctx context.Context, name domain.TopicName) error {
	ctx, o := in.begin(ctx, OpTopicDelete, "topic.delete", name, kindInternal)
	err := in.next.DeleteTopic(ctx, name)
	o.end(err)
	return err
}

func (in *instrumented) ListTopics(ctx context.Context) ([]domain.TopicStats, error) {
	ctx, o := in.begin(ctx, OpTopicList, "topic.list", "", kindInternal)
	out, err := in.next.ListTopics(ctx)
	o.end(err)
	return out, err
}

func (in *instrumented) Stats(ctx context.Context) ([]domain.TopicStats, error) {
	ctx, o := in.begin(ctx, OpStats, "stats", "", kindInternal)
	out, err := in.next.Stats(ctx)
	o.end(err)
	return out, err
}

// Health is read by probes every few seconds; it is neither traced nor counted as an operation.
func (in *instrumented) Health(ctx context.Context) (service.Health, error) {
	return in.next.Health(ctx)
}

func (in *instrumented) Subscribe(ctx context.Context, req service.SubscribeRequest) (domain.SubscribeResult, error) {
	ctx, o := in.begin(ctx, OpSubscribe, "subscribe", req.Topic, kindServer)
	if o.span.IsRecording() {
		o.span.SetAttributes(attrOpType.String("receive"), attrOpName.String("subscribe"),
			attrClientID.String(req.ClientID), attrLastN.Int(req.LastN))
		if req.Resume {
			o.span.SetAttributes(attrSinceSeq.Int64(int64(req.SinceSeq)))
		}
	}
	res, err := in.next.Subscribe(ctx, req)
	if err == nil && o.span.IsRecording() {
		o.span.SetAttributes(attrReplayed.Int(res.Replayed))
		if res.Resumed {
			o.span.SetAttributes(attrRecovered.Bool(res.Recovered))
		}
	}
	o.end(err)
	return res, err
}

func (in *instrumented) Unsubscribe(ctx context.Context, req service.UnsubscribeRequest) error {
	ctx, o := in.begin(ctx, OpUnsubscribe, "unsubscribe", req.Topic, kindServer)
	if o.span.IsRecording() {
		o.span.SetAttributes(attrOpName.String("unsubscribe"), attrClientID.String(req.ClientID))
	}
	err := in.next.Unsubscribe(ctx, req)
	o.end(err)
	return err
}

// Publish is a producer span (see beginPublish).
func (in *instrumented) Publish(ctx context.Context, req service.PublishRequest) (*domain.Event, error) {
	ctx, req, o := in.beginPublish(ctx, req)
	ev, err := in.next.Publish(ctx, req)
	o.endPublish(ev, err)
	return ev, err
}

// PublishBatch gives every item what Publish gives one: its own producer span (a child of its
// frame's context), the trace context in its message, its count and duration. The items' spans
// are all open while the batch's one call to the engine runs, which is the time each publish waited.
func (in *instrumented) PublishBatch(items []service.PublishItem) {
	var buf [64]opSpan // a batch of the ws reader's size needs no allocation
	spans := buf[:0]
	if len(items) > len(buf) {
		spans = make([]opSpan, 0, len(items))
	}
	spans = spans[:len(items)]
	for i := range items {
		items[i].Ctx, items[i].Req, spans[i] = in.beginPublish(items[i].Ctx, items[i].Req)
	}
	in.next.PublishBatch(items)
	for i := range items {
		spans[i].endPublish(items[i].Event, items[i].Err)
	}
}

// BatchesPublishes is a property of the engine, not an operation.
func (in *instrumented) BatchesPublishes() bool { return in.next.BatchesPublishes() }

// beginPublish starts a publish's producer span. Its context is written into the message's
// traceparent header, so the event every subscriber receives names the publish span, and delivery
// spans can join its trace.
func (in *instrumented) beginPublish(ctx context.Context, req service.PublishRequest) (context.Context, service.PublishRequest, opSpan) {
	ctx, o := in.begin(ctx, OpPublish, "publish", req.Topic, kindProducer)
	if o.span.IsRecording() {
		o.span.SetAttributes(attrOpType.String("send"), attrOpName.String("publish"),
			attrMessageID.String(req.Message.ID.String()), attrBodySize.Int(len(req.Message.Payload)))
	}
	if sc := o.span.SpanContext(); sc.IsSampled() {
		// Subscribers of a sampled publish get its span's trace context, so the trace runs on to
		// them; baggage stays between the client and the server. An unsampled publish (99 % with
		// the default sampler) has no trace to join: its events stay as published, which spares
		// every delivery the header's bytes.
		h := make(map[string]string, len(req.Message.Headers)+1)
		maps.Copy(h, req.Message.Headers)
		h["traceparent"] = traceparent(sc)
		delete(h, "tracestate")
		if ts := sc.TraceState().String(); ts != "" {
			h["tracestate"] = ts
		}
		req.Message.Headers = h
	}
	return ctx, req, o
}

// endPublish ends a publish's span with its seq or its error.
func (o opSpan) endPublish(ev *domain.Event, err error) {
	if err == nil && o.span.IsRecording() {
		o.span.SetAttributes(attrSeq.Int64(int64(ev.Seq)))
	}
	o.end(err)
}

func (in *instrumented) Detach(subs []*domain.Subscription) uint64 { return in.next.Detach(subs) }

// traceparent formats sc as a W3C traceparent with one allocation; the propagator would take
// several on every publish.
func traceparent(sc trace.SpanContext) string {
	var b [55]byte
	tid, sid := sc.TraceID(), sc.SpanID()
	copy(b[:], "00-")
	hex.Encode(b[3:35], tid[:])
	b[35] = '-'
	hex.Encode(b[36:52], sid[:])
	b[52] = '-'
	hex.Encode(b[53:55], []byte{byte(sc.TraceFlags())})
	return string(b[:])
}

// Observer returns the service.Observer that turns the steps inside an operation into metrics and,
// for sampled operations, child spans.
func (t *Telemetry) Observer() service.Observer { return observer{t} }

type observer struct{ t *Telemetry }

func (o observer) Published(ctx context.Context, ev *domain.Event, st domain.PublishStats) {
	m := o.t.Metrics
	m.Published.Inc()
	observe(m.FanoutDuration, st.End.Sub(st.Appended).Seconds(), trace.SpanContextFromContext(ctx))
	m.FanoutWidth.Observe(float64(st.Subscribers))
	if st.Subscribers > 0 {
		m.QueueDepth.Observe(float64(st.MaxDepth))
	}
	if st.DroppedOldest > 0 {
		m.Dropped(DropOverflowOldest, uint64(st.DroppedOldest))
	}
	if !trace.SpanFromContext(ctx).IsRecording() {
		return
	}
	topic := string(ev.Topic)
	_, s := o.t.Tracer.Start(ctx, "history.append "+topic, trace.WithTimestamp(st.Start),
		trace.WithAttributes(systemPubsub, attrDestination.String(topic), attrSeq.Int64(int64(ev.Seq))))
	s.End(trace.WithTimestamp(st.Appended))
	omitted := max(st.Enqueued-int(o.t.deliverySpans), 0)
	_, s = o.t.Tracer.Start(ctx, "fanout "+topic, trace.WithTimestamp(st.Appended),
		trace.WithAttributes(systemPubsub, attrDestination.String(topic), attrBatchCount.Int(st.Subscribers),
			attrSubscribers.Int(st.Subscribers), attrEnqueued.Int(st.Enqueued), attrDropped.Int(st.DroppedOldest),
			attrDisconnected.Int(st.Overflowed), attrQueueDepthMax.Int(st.MaxDepth), attrOmitted.Int(omitted)))
	s.End(trace.WithTimestamp(st.End))
}

func (o observer) Replayed(ctx context.Context, topic domain.TopicName, n int, start, end time.Time) {
	o.t.Metrics.Replayed.Add(float64(n))
	if !trace.SpanFromContext(ctx).IsRecording() {
		return
	}
	_, s := o.t.Tracer.Start(ctx, "replay "+string(topic), trace.WithTimestamp(start),
		trace.WithAttributes(systemPubsub, attrDestination.String(string(topic)), attrBatchCount.Int(n)))
	s.End(trace.WithTimestamp(end))
}
