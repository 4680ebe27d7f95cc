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

// op runs one operation inside its span and records its metrics. attrs is only called for a span
// that records, so an unsampled operation builds no attributes.
func (in *instrumented) op(ctx context.Context, op, name string, kind trace.SpanKind, attrs func() []attribute.KeyValue,
	fn func(context.Context) error) {
	start := time.Now()
	ctx, span := in.t.Tracer.Start(ctx, name, trace.WithSpanKind(kind), trace.WithTimestamp(start))
	recording := span.IsRecording()
	if recording && attrs != nil {
		span.SetAttributes(attrs()...)
	}
	err := fn(ctx)
	end := time.Now()
	if err != nil && recording {
		code := in.codeOf(err)
		span.SetAttributes(attrErrorType.String(code), attrErrorCode.String(code))
		span.SetStatus(codes.Error, err.Error())
	}
	span.End(trace.WithTimestamp(end))
	in.t.Metrics.Operation(op, err, end.Sub(start), span.SpanContext())
}

func (in *instrumented) CreateTopic(ctx context.Context, name domain.TopicName) (err error) {
	in.op(ctx, OpTopicCreate, "topic.create "+string(name), trace.SpanKindInternal,
		func() []attribute.KeyValue {
			return []attribute.KeyValue{systemPubsub, attrDestination.String(string(name))}
		},
		func(ctx context.Context) error { err = in.next.CreateTopic(ctx, name); return err })
	return err
}

func (in *instrumented) DeleteTopic(ctx context.Context, name domain.TopicName) (err error) {
	in.op(ctx, OpTopicDelete, "topic.delete "+string(name), trace.SpanKindInternal,
		func() []attribute.KeyValue {
			return []attribute.KeyValue{systemPubsub, attrDestination.String(string(name))}
		},
		func(ctx context.Context) error { err = in.next.DeleteTopic(ctx, name); return err })
	return err
}

func (in *instrumented) ListTopics(ctx context.Context) (out []domain.TopicStats, err error) {
	in.op(ctx, OpTopicList, "topic.list", trace.SpanKindInternal, nil,
		func(ctx context.Context) error { out, err = in.next.ListTopics(ctx); return err })
	return out, err
}

func (in *instrumented) Stats(ctx context.Context) (out []domain.TopicStats, err error) {
	in.op(ctx, OpStats, "stats", trace.SpanKindInternal, nil,
		func(ctx context.Context) error { out, err = in.next.Stats(ctx); return err })
	return out, err
}

// Health is read by probes every few seconds; it is neither traced nor counted as an operation.
func (in *instrumented) Health(ctx context.Context) (service.Health, error) {
	return in.next.Health(ctx)
}

func (in *instrumented) Subscribe(ctx context.Context, req service.SubscribeRequest) (res domain.SubscribeResult, err error) {
	in.op(ctx, OpSubscribe, "subscribe "+string(req.Topic), trace.SpanKindServer,
		func() []attribute.KeyValue {
			return []attribute.KeyValue{systemPubsub, attrDestination.String(string(req.Topic)), attrOpType.String("receive"),
				attrOpName.String("subscribe"), attrClientID.String(req.ClientID), attrLastN.Int(req.LastN)}
		},
		func(ctx context.Context) error {
			res, err = in.next.Subscribe(ctx, req)
			if err == nil {
				trace.SpanFromContext(ctx).SetAttributes(attrReplayed.Int(res.Replayed))
			}
			return err
		})
	return res, err
}

func (in *instrumented) Unsubscribe(ctx context.Context, req service.UnsubscribeRequest) (err error) {
	in.op(ctx, OpUnsubscribe, "unsubscribe "+string(req.Topic), trace.SpanKindServer,
		func() []attribute.KeyValue {
			return []attribute.KeyValue{systemPubsub, attrDestination.String(string(req.Topic)), attrOpName.String("unsubscribe"),
				attrClientID.String(req.ClientID)}
		},
		func(ctx context.Context) error { err = in.next.Unsubscribe(ctx, req); return err })
	return err
}

// Publish is a producer span. Its context is written into the message's traceparent header, so the
// event every subscriber receives names the publish span, and delivery spans can join its trace.
func (in *instrumented) Publish(ctx context.Context, req service.PublishRequest) (ev *domain.Event, err error) {
	in.op(ctx, OpPublish, "publish "+string(req.Topic), trace.SpanKindProducer,
		func() []attribute.KeyValue {
			return []attribute.KeyValue{systemPubsub, attrDestination.String(string(req.Topic)), attrOpType.String("send"),
				attrOpName.String("publish"), attrMessageID.String(req.Message.ID.String()),
				attrBodySize.Int(len(req.Message.Payload))}
		},
		func(ctx context.Context) error {
			if sc := trace.SpanContextFromContext(ctx); sc.IsValid() {
				// Subscribers get the publish span's trace context; baggage stays between the
				// client and the server.
				h := make(map[string]string, len(req.Message.Headers)+1)
				maps.Copy(h, req.Message.Headers)
				h["traceparent"] = traceparent(sc)
				delete(h, "tracestate")
				if ts := sc.TraceState().String(); ts != "" {
					h["tracestate"] = ts
				}
				req.Message.Headers = h
			}
			ev, err = in.next.Publish(ctx, req)
			if err == nil {
				trace.SpanFromContext(ctx).SetAttributes(attrSeq.Int64(int64(ev.Seq)))
			}
			return err
		})
	return ev, err
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
