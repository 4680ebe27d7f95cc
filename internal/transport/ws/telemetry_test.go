package ws_test

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/gorilla/websocket"
	dto "github.com/prometheus/client_model/go"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/pubsubd/pubsub/internal/domain"
	"github.com/pubsubd/pubsub/internal/transport/ws"
	"github.com/pubsubd/pubsub/telemetry/telemetrytest"
)

// ---- spans ----

func tracedServer(t *testing.T, o serverOpts) (*testServer, *tracetest.SpanRecorder) {
	t.Helper()
	o.spans = tracetest.NewSpanRecorder()
	if o.sampler == nil {
		o.sampler = sdktrace.AlwaysSample()
	}
	return newServer(t, o), o.spans
}

func spansNamed(rec *tracetest.SpanRecorder, name string) []sdktrace.ReadOnlySpan {
	var out []sdktrace.ReadOnlySpan
	for _, s := range rec.Ended() {
		if s.Name() == name {
			out = append(out, s)
		}
	}
	return out
}

// oneSpan returns the only ended span called name.
func oneSpan(t *testing.T, rec *tracetest.SpanRecorder, name string) sdktrace.ReadOnlySpan {
	t.Helper()
	ss := spansNamed(rec, name)
	if len(ss) != 1 {
		var names []string
		for _, s := range rec.Ended() {
			names = append(names, s.Name())
		}
		t.Fatalf("%d spans named %q, want 1; all spans: %v", len(ss), name, names)
	}
	return ss[0]
}

func spanAttrs(s sdktrace.ReadOnlySpan) map[attribute.Key]attribute.Value {
	out := map[attribute.Key]attribute.Value{}
	for _, kv := range s.Attributes() {
		out[kv.Key] = kv.Value
	}
	return out
}

// checkAttrs compares the listed attributes of s (as emitted strings).
func checkAttrs(t *testing.T, s sdktrace.ReadOnlySpan, want map[string]string) {
	t.Helper()
	have := spanAttrs(s)
	for k, v := range want {
		got, ok := have[attribute.Key(k)]
		if !ok || got.String() != v {
			t.Errorf("span %q: %s = %q (set %v), want %q", s.Name(), k, got.String(), ok, v)
		}
	}
}

func isChildOf(child, parent sdktrace.ReadOnlySpan) bool {
	return child.Parent().SpanID() == parent.SpanContext().SpanID() &&
		child.SpanContext().TraceID() == parent.SpanContext().TraceID()
}

// publishWith sends a publish frame with a known message id, the given extra top-level fields and
// message headers, and waits for its ack.
func publishWith(c *client, topic string, id string, top map[string]any, headers map[string]string) {
	c.t.Helper()
	msg := map[string]any{"id": id, "payload": map[string]any{"n": 1}}
	if headers != nil {
		msg["headers"] = headers
	}
	f := map[string]any{"type": "publish", "topic": topic, "request_id": "pub-" + id, "message": msg}
	for k, v := range top {
		f[k] = v
	}
	c.send(f)
	ack := c.expect("ack")
	if ack.RequestID == nil || *ack.RequestID != "pub-"+id {
		c.t.Fatalf("publish ack: %s", ack.raw)
	}
}

// parseTraceparent splits a W3C traceparent into trace id, span id and flags.
func parseTraceparent(t *testing.T, tp string) (trace.TraceID, trace.SpanID, string) {
	t.Helper()
	parts := strings.Split(tp, "-")
	if len(parts) != 4 || parts[0] != "00" {
		t.Fatalf("traceparent %q is not W3C version 00", tp)
	}
	tid, err := trace.TraceIDFromHex(parts[1])
	if err != nil {
		t.Fatalf("traceparent %q: %v", tp, err)
	}
	sid, err := trace.SpanIDFromHex(parts[2])
	if err != nil {
		t.Fatalf("traceparent %q: %v", tp, err)
	}
	return tid, sid, parts[3]
}

// TestPublishSpanTree: one publish fanned out to three subscribers is one trace: the producer span,
// its history and fan-out steps, and one consumer span per subscriber socket write; the event each
// subscriber gets names the publish span.
func TestPublishSpanTree(t *testing.T) {
	s, rec := tracedServer(t, serverOpts{})
	s.createTopic(t, "orders")
	subs := make([]*client, 3)
	for i := range subs {
		subs[i] = s.dial(t)
		subs[i].subscribe("orders", fmt.Sprint("s", i), 0)
	}
	pub := s.dial(t)
	id := uuid.NewString()
	publishWith(pub, "orders", id, nil, nil)
	events := make([]frame, len(subs))
	for i, c := range subs {
		events[i] = c.expect("event")
		// The delivery span ends after the socket write; the pong of a later ping comes after it.
		c.barrier()
	}

	p := oneSpan(t, rec, "publish orders")
	if p.SpanKind() != trace.SpanKindProducer {
		t.Errorf("publish kind %v, want producer", p.SpanKind())
	}
	if p.Parent().IsValid() {
		t.Errorf("a frame without traceparent must start a root span; parent %v", p.Parent())
	}
	checkAttrs(t, p, map[string]string{"messaging.system": "pubsub", "messaging.destination.name": "orders",
		"messaging.operation.type": "send", "messaging.operation.name": "publish", "messaging.message.id": id,
		"pubsub.message.seq": "1"})
	if p.Status().Code == codes.Error {
		t.Errorf("publish status %v", p.Status())
	}

	h := oneSpan(t, rec, "history.append orders")
	fo := oneSpan(t, rec, "fanout orders")
	for _, c := range []sdktrace.ReadOnlySpan{h, fo} {
		if !isChildOf(c, p) {
			t.Errorf("%q is not a child of the publish span", c.Name())
		}
	}
	checkAttrs(t, fo, map[string]string{"pubsub.fanout.subscribers": "3", "pubsub.fanout.enqueued": "3",
		"pubsub.fanout.dropped": "0", "messaging.batch.message_count": "3", "pubsub.fanout.delivery_spans_omitted": "0",
		"messaging.destination.name": "orders"})
	if fo.StartTime().Before(h.EndTime()) && !fo.StartTime().Equal(h.EndTime()) {
		t.Errorf("fan-out starts %s before history append ends %s", fo.StartTime(), h.EndTime())
	}

	deliveries := spansNamed(rec, "deliver orders")
	if len(deliveries) != 3 {
		t.Fatalf("%d deliver spans, want 3", len(deliveries))
	}
	var clients []string
	for _, d := range deliveries {
		if d.SpanKind() != trace.SpanKindConsumer || !isChildOf(d, p) {
			t.Errorf("deliver span: kind %v, parent %s, want a consumer child of %s", d.SpanKind(), d.Parent().SpanID(), p.SpanContext().SpanID())
		}
		if links := d.Links(); len(links) != 1 || links[0].SpanContext.SpanID() != p.SpanContext().SpanID() ||
			links[0].SpanContext.TraceID() != p.SpanContext().TraceID() {
			t.Errorf("deliver span links %v, want one to the publish span", links)
		}
		checkAttrs(t, d, map[string]string{"messaging.system": "pubsub", "messaging.destination.name": "orders",
			"messaging.message.id": id})
		clients = append(clients, spanAttrs(d)["messaging.client.id"].AsString())
	}
	slices.Sort(clients)
	if !slices.Equal(clients, []string{"s0", "s1", "s2"}) {
		t.Errorf("deliver spans' messaging.client.id %v, want s0 s1 s2", clients)
	}

	want := fmt.Sprintf("00-%s-%s-01", p.SpanContext().TraceID(), p.SpanContext().SpanID())
	for i, ev := range events {
		if ev.Message == nil || ev.Message.Headers["traceparent"] != want {
			t.Errorf("subscriber %d: event %s, want message.headers.traceparent %s", i, ev.raw, want)
		}
	}
}

// TestClientTraceIsContinued: a traceparent sent by the publisher, in message.headers or at the
// top of the frame, makes the publish span part of the client's trace, under the client's span.
func TestClientTraceIsContinued(t *testing.T) {
	const tid, sid = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"
	tp := "00-" + tid + "-" + sid + "-01"
	for _, tc := range []struct {
		name    string
		top     map[string]any
		headers map[string]string
	}{
		{"message.headers", nil, map[string]string{"traceparent": tp, "tracestate": "vendor=abc", "x-app": "kept"}},
		{"top-level traceparent", map[string]any{"traceparent": tp}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, rec := tracedServer(t, serverOpts{})
			s.createTopic(t, "t")
			sub, pub := s.dial(t), s.dial(t)
			sub.subscribe("t", "s", 0)
			publishWith(pub, "t", uuid.NewString(), tc.top, tc.headers)
			ev := sub.expect("event")
			sub.barrier()

			p := oneSpan(t, rec, "publish t")
			if p.SpanContext().TraceID().String() != tid || p.Parent().SpanID().String() != sid || !p.Parent().IsRemote() {
				t.Fatalf("publish span trace %s parent %s (remote %v), want trace %s parent %s",
					p.SpanContext().TraceID(), p.Parent().SpanID(), p.Parent().IsRemote(), tid, sid)
			}
			gotTID, gotSID, flags := parseTraceparent(t, ev.Message.Headers["traceparent"])
			if gotTID.String() != tid || gotSID != p.SpanContext().SpanID() || flags != "01" {
				t.Errorf("event traceparent %q, want the publish span %s in trace %s", ev.Message.Headers["traceparent"], p.SpanContext().SpanID(), tid)
			}
			if d := oneSpan(t, rec, "deliver t"); d.SpanContext().TraceID().String() != tid {
				t.Errorf("deliver span in trace %s", d.SpanContext().TraceID())
			}
			if tc.headers != nil {
				if ev.Message.Headers["x-app"] != "kept" {
					t.Errorf("an application header was lost: %v", ev.Message.Headers)
				}
				if got := p.SpanContext().TraceState().Get("vendor"); got != "abc" {
					t.Errorf("tracestate not continued: %q", p.SpanContext().TraceState())
				}
				if ev.Message.Headers["tracestate"] != "vendor=abc" {
					t.Errorf("event tracestate %q", ev.Message.Headers["tracestate"])
				}
			}
		})
	}
}

// TestSubscribeSpans: a subscribe is a server span; its replay of last_n history is a child step.
func TestSubscribeSpans(t *testing.T) {
	s, rec := tracedServer(t, serverOpts{})
	s.createTopic(t, "h")
	pub := s.dial(t)
	for i := 0; i < 2; i++ {
		pub.publish("h", i, "p")
		pub.expect("ack")
	}
	c := s.dial(t)
	epoch := *resumeFields(t, c.subscribe("h", "late", 5)).Epoch
	c.expect("event")
	c.expect("event")
	sub := oneSpan(t, rec, "subscribe h")
	if sub.SpanKind() != trace.SpanKindServer {
		t.Errorf("subscribe kind %v", sub.SpanKind())
	}
	checkAttrs(t, sub, map[string]string{"messaging.system": "pubsub", "messaging.destination.name": "h",
		"messaging.operation.name": "subscribe", "messaging.client.id": "late", "pubsub.last_n": "5", "pubsub.replayed": "2"})
	rp := oneSpan(t, rec, "replay h")
	if !isChildOf(rp, sub) {
		t.Error("replay is not a child of subscribe")
	}
	checkAttrs(t, rp, map[string]string{"messaging.batch.message_count": "2"})

	// Without last_n there is nothing to replay, and no replay step.
	c2 := s.dial(t)
	c2.subscribe("h", "live-only", 0)
	if n := len(spansNamed(rec, "subscribe h")); n != 2 {
		t.Fatalf("%d subscribe spans, want 2", n)
	}
	if n := len(spansNamed(rec, "replay h")); n != 1 {
		t.Errorf("%d replay spans, want 1 (last_n 0 must not record one)", n)
	}
	// A resume says what it asked for and whether it recovered; its replay is a step as last_n's is.
	c3 := s.dial(t)
	c3.send(map[string]any{"type": "subscribe", "topic": "h", "client_id": "resumed", "since_seq": 1, "epoch": epoch})
	c3.expect("ack")
	c3.expect("event")
	resumed := spansNamed(rec, "subscribe h")
	if len(resumed) != 3 {
		t.Fatalf("%d subscribe spans, want 3", len(resumed))
	}
	checkAttrs(t, resumed[2], map[string]string{"messaging.client.id": "resumed", "pubsub.resume.since_seq": "1",
		"pubsub.resume.recovered": "true", "pubsub.replayed": "1"})
	if n := len(spansNamed(rec, "replay h")); n != 2 {
		t.Errorf("%d replay spans, want 2 (the resume records one)", n)
	}
	// The barrier's pings are spans of their own, never children of a connection span.
	c2.barrier()
	for _, p := range spansNamed(rec, "ping") {
		if p.SpanKind() != trace.SpanKindServer || p.Parent().IsValid() {
			t.Errorf("ping span kind %v parent %v", p.SpanKind(), p.Parent())
		}
	}
	if len(spansNamed(rec, "ping")) == 0 {
		t.Error("no ping span")
	}
}

func TestFailedOperationSpan(t *testing.T) {
	s, rec := tracedServer(t, serverOpts{})
	c := s.dial(t)
	c.publish("missing", 1, "p")
	if f := c.expect("error"); f.Error.Code != "TOPIC_NOT_FOUND" {
		t.Fatalf("error %s", f.raw)
	}
	p := oneSpan(t, rec, "publish missing")
	if p.Status().Code != codes.Error {
		t.Errorf("status %v, want Error", p.Status())
	}
	checkAttrs(t, p, map[string]string{"pubsub.error.code": "TOPIC_NOT_FOUND", "error.type": "TOPIC_NOT_FOUND"})
	if n := len(spansNamed(rec, "fanout missing")); n != 0 {
		t.Errorf("a rejected publish recorded %d fan-out spans", n)
	}
}

// TestDeliverySpanCap: a wide fan-out records at most DeliverySpans consumer spans per publish
// (16 in these tests), and the fan-out span says how many it left out.
func TestDeliverySpanCap(t *testing.T) {
	s, rec := tracedServer(t, serverOpts{})
	s.createTopic(t, "wide")
	subs := make([]*client, 20)
	for i := range subs {
		subs[i] = s.dial(t)
		subs[i].subscribe("wide", fmt.Sprint("s", i), 0)
	}
	pub := s.dial(t)
	publishWith(pub, "wide", uuid.NewString(), nil, nil)
	for _, c := range subs {
		c.expect("event")
		c.barrier() // every delivery attempt is over before the count
	}
	if n := len(spansNamed(rec, "deliver wide")); n != 16 {
		t.Errorf("%d deliver spans, want the cap of 16", n)
	}
	checkAttrs(t, oneSpan(t, rec, "fanout wide"), map[string]string{"pubsub.fanout.subscribers": "20",
		"pubsub.fanout.enqueued": "20", "pubsub.fanout.delivery_spans_omitted": "4"})
}

// TestUnsampledTracesStayOffTheWire: with the production sampler's semantics at ratio 0 (parent
// based), nothing is recorded and events carry no traceparent (there is no trace to join, and
// the header would cost every delivery its bytes); a client's sampled traceparent is still
// honoured, and its events do carry the server's publish span.
func TestUnsampledTracesStayOffTheWire(t *testing.T) {
	s, rec := tracedServer(t, serverOpts{sampler: sdktrace.ParentBased(sdktrace.NeverSample())})
	s.createTopic(t, "u")
	sub, pub := s.dial(t), s.dial(t)
	sub.subscribe("u", "s", 0)
	publishWith(pub, "u", uuid.NewString(), nil, nil)
	ev := sub.expect("event")
	sub.barrier()
	if ss := rec.Ended(); len(ss) != 0 {
		t.Fatalf("%d spans recorded with a never-sampling sampler, first %q", len(ss), ss[0].Name())
	}
	if tp, ok := ev.Message.Headers["traceparent"]; ok {
		t.Fatalf("unsampled event carries traceparent %q", tp)
	}

	// A client that samples its own trace gets the whole of it, whatever the ratio.
	const ctid = "0af7651916cd43dd8448eb211c80319c"
	publishWith(pub, "u", uuid.NewString(), map[string]any{"traceparent": "00-" + ctid + "-b7ad6b7169203331-01"}, nil)
	ev = sub.expect("event")
	sub.barrier()
	p := oneSpan(t, rec, "publish u")
	if tid, sid, flags := parseTraceparent(t, ev.Message.Headers["traceparent"]); tid.String() != ctid || sid != p.SpanContext().SpanID() || flags != "01" {
		t.Errorf("client-sampled event traceparent %q, want the publish span %s", ev.Message.Headers["traceparent"], p.SpanContext().SpanID())
	}
	if p.SpanContext().TraceID().String() != ctid || !p.SpanContext().IsSampled() {
		t.Errorf("client-sampled publish: trace %s sampled %v", p.SpanContext().TraceID(), p.SpanContext().IsSampled())
	}
	if n := len(spansNamed(rec, "deliver u")); n != 1 {
		t.Errorf("%d deliver spans for the client-sampled publish, want 1", n)
	}
}

// ---- metrics ----

// series finds the one child of family name whose labels include labels (name, value pairs); nil
// when absent.
func series(t *testing.T, s *testServer, name string, labels ...string) *dto.Metric {
	t.Helper()
	want := map[string]string{}
	for i := 0; i+1 < len(labels); i += 2 {
		want[labels[i]] = labels[i+1]
	}
	m, err := telemetrytest.Series(s.Tel.Metrics.Registry, name, want)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// metric is a counter's or gauge's value, or a histogram's sample count; 0 when the series is absent.
func metric(t *testing.T, s *testServer, name string, labels ...string) float64 {
	t.Helper()
	v := telemetrytest.Value(series(t, s, name, labels...))
	if v < 0 {
		t.Fatalf("%s: unexpected metric type", name)
	}
	return v
}

// waitMetric waits, with a deadline, until the value satisfies ok. Writers count a batch after the
// socket write and teardown counts after the close, so a client can be a moment ahead of the count.
func waitMetric(t *testing.T, s *testServer, desc string, ok func(float64) bool, name string, labels ...string) float64 {
	t.Helper()
	deadline := time.Now().Add(waitFor)
	for {
		v := metric(t, s, name, labels...)
		if ok(v) {
			return v
		}
		if time.Now().After(deadline) {
			t.Errorf("%s%v = %v, want %s", name, labels, v, desc)
			return v
		}
		time.Sleep(2 * time.Millisecond) // polling a condition with a deadline
	}
}

func expectMetric(t *testing.T, s *testServer, want float64, name string, labels ...string) {
	t.Helper()
	waitMetric(t, s, fmt.Sprint(want), func(v float64) bool { return v == want }, name, labels...)
}

func expectPositive(t *testing.T, s *testServer, name string, labels ...string) float64 {
	t.Helper()
	return waitMetric(t, s, "> 0", func(v float64) bool { return v > 0 }, name, labels...)
}

// TestOperationAndErrorMetrics: every operation is counted by result, every error by its code, and
// REST requests by route template.
func TestOperationAndErrorMetrics(t *testing.T) {
	s := newServer(t, serverOpts{})
	expectMetric(t, s, 1, "pubsub_ready")
	s.createTopic(t, "m")
	if code, _ := s.do(t, "POST", "/topics", `{"name":"m"}`); code != 409 {
		t.Fatalf("duplicate create: %d", code)
	}
	sub, pub := s.dial(t), s.dial(t)
	sub.subscribe("m", "s1", 0)
	expectMetric(t, s, 1, "pubsub_subscriptions")
	expectMetric(t, s, 1, "pubsub_topics")
	expectMetric(t, s, 2, "pubsub_ws_connections")
	for i := 0; i < 3; i++ {
		pub.publish("m", i, "p")
		pub.expect("ack")
	}
	pub.publish("missing", 0, "p")
	pub.expect("error")
	pub.sendRaw(`{"type":"subscribe"`)
	if f := pub.expect("error"); f.Error.Code != "BAD_REQUEST" {
		t.Fatalf("bad frame: %s", f.raw)
	}
	pub.barrier() // one ping
	// The three events first: an unsubscribe discards events not yet written, by design.
	sub.expect("event")
	sub.expect("event")
	sub.expect("event")
	sub.send(map[string]any{"type": "unsubscribe", "topic": "m", "client_id": "s1"})
	sub.expect("ack")
	expectMetric(t, s, 0, "pubsub_subscriptions")
	s.do(t, "GET", "/topics", "")
	s.do(t, "GET", "/stats", "")
	s.do(t, "GET", "/health", "")
	if code, _ := s.do(t, "DELETE", "/topics/m", ""); code != 200 {
		t.Fatal(code)
	}
	if code, _ := s.do(t, "DELETE", "/topics/m", ""); code != 404 {
		t.Fatal(code)
	}
	expectMetric(t, s, 0, "pubsub_topics")

	for _, c := range []struct {
		op, result string
		want       float64
	}{
		{"topic_create", "ok", 1}, {"topic_create", "error", 1},
		{"topic_delete", "ok", 1}, {"topic_delete", "error", 1},
		{"subscribe", "ok", 1}, {"unsubscribe", "ok", 1},
		{"publish", "ok", 3}, {"publish", "error", 1},
		{"ping", "ok", 1}, {"topic_list", "ok", 1}, {"stats", "ok", 1},
		{"subscribe", "error", 0}, // the malformed subscribe never reached the service
	} {
		expectMetric(t, s, c.want, "pubsub_operations_total", "operation", c.op, "result", c.result)
	}
	expectMetric(t, s, 4, "pubsub_operation_duration_seconds", "operation", "publish")
	for code, want := range map[string]float64{"TOPIC_EXISTS": 1, "TOPIC_NOT_FOUND": 2, "BAD_REQUEST": 1, "INTERNAL": 0} {
		expectMetric(t, s, want, "pubsub_errors_total", "code", code)
	}
	for _, c := range []struct {
		route, method, code string
		want                float64
	}{
		{"/topics", "POST", "201", 1}, {"/topics", "POST", "409", 1}, {"/topics", "GET", "200", 1},
		{"/topics/{name}", "DELETE", "200", 1}, {"/topics/{name}", "DELETE", "404", 1},
		{"/stats", "GET", "200", 1}, {"/health", "GET", "200", 1}, {"/ws", "GET", "101", 2},
	} {
		expectMetric(t, s, c.want, "pubsub_http_requests_total", "route", c.route, "method", c.method, "code", c.code)
	}
	expectMetric(t, s, 2, "pubsub_http_request_duration_seconds", "route", "/topics/{name}", "method", "DELETE")

	s.Svc.BeginDrain()
	expectMetric(t, s, 0, "pubsub_ready")
}

// counted sends raw frames and remembers how many bytes of each type it sent.
type counted struct {
	*client
	frames, bytes map[string]float64
}

func (c *counted) sendType(typ, data string) {
	c.sendRaw(data)
	c.frames[typ]++
	c.bytes[typ] += float64(len(data))
}

// readN reads n frames and tallies them (count, bytes) by type.
func (c *counted) readN(n int, into map[string][2]float64) []frame {
	var out []frame
	for i := 0; i < n; i++ {
		f := c.read()
		v := into[f.Type]
		into[f.Type] = [2]float64{v[0] + 1, v[1] + float64(len(f.raw))}
		out = append(out, f)
	}
	return out
}

// TestFrameAndConnectionMetrics: frames and bytes in both directions by frame type (a frame's bytes
// being its JSON payload), and connections opened and closed by close code.
func TestFrameAndConnectionMetrics(t *testing.T) {
	s := newServer(t, serverOpts{})
	s.createTopic(t, "f")
	newCounted := func() *counted {
		return &counted{client: s.dial(t), frames: map[string]float64{}, bytes: map[string]float64{}}
	}
	a, b := newCounted(), newCounted()
	got := map[string][2]float64{} // frames, bytes received by the clients, by type
	id := uuid.NewString()
	a.sendType("subscribe", `{"type":"subscribe","topic":"f","client_id":"a","request_id":"1"}`)
	a.readN(1, got) // ack
	b.sendType("publish", `{"type":"publish","topic":"f","message":{"id":"`+id+`","payload":[1,2,3]},"request_id":"2"}`)
	b.sendType("publish", `{"type":"publish","topic":"nope","message":{"id":"`+id+`","payload":null}}`)
	b.sendType("invalid", `{"type":"teleport"}`)
	b.sendType("ping", `{"type":"ping","request_id":"3"}`)
	b.readN(4, got) // ack, error, error, pong
	a.readN(1, got) // event
	a.sendType("unsubscribe", `{"type":"unsubscribe","topic":"f","client_id":"a"}`)
	a.sendType("ping", `{"type":"ping"}`)
	a.readN(2, got) // ack, pong
	for _, typ := range []string{"subscribe", "unsubscribe", "publish", "ping", "invalid"} {
		expectMetric(t, s, a.frames[typ]+b.frames[typ], "pubsub_ws_frames_received_total", "type", typ)
		expectMetric(t, s, a.bytes[typ]+b.bytes[typ], "pubsub_ws_received_bytes_total", "type", typ)
	}
	for _, typ := range []string{"ack", "event", "error", "pong", "info"} {
		expectMetric(t, s, got[typ][0], "pubsub_ws_frames_sent_total", "type", typ)
		expectMetric(t, s, got[typ][1], "pubsub_ws_sent_bytes_total", "type", typ)
	}
	if got["ack"][0] != 3 || got["event"][0] != 1 || got["error"][0] != 2 || got["pong"][0] != 2 {
		t.Fatalf("frames received by the clients %v", got)
	}

	expectMetric(t, s, 2, "pubsub_ws_connections_opened_total")
	// a says goodbye properly (1000); b just vanishes (1006).
	_ = a.conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(waitFor))
	if code, _ := a.expectClose(); code != websocket.CloseNormalClosure {
		t.Fatalf("close echo %d", code)
	}
	_ = b.conn.NetConn().Close()
	expectMetric(t, s, 1, "pubsub_ws_connections_closed_total", "code", "1000")
	expectMetric(t, s, 1, "pubsub_ws_connections_closed_total", "code", "1006")
	expectMetric(t, s, 0, "pubsub_ws_connections")
}

// TestMessageFlowMetrics: published, replayed and delivered counts, the fan-out histograms, and
// the delivery latency with the publish's trace as an exemplar.
func TestMessageFlowMetrics(t *testing.T) {
	s, rec := tracedServer(t, serverOpts{})
	s.createTopic(t, "flow")
	subs := []*client{s.dial(t), s.dial(t)}
	for i, c := range subs {
		c.subscribe("flow", fmt.Sprint("s", i), 0)
	}
	pub := s.dial(t)
	for i := 0; i < 3; i++ {
		pub.publish("flow", i, "p")
		pub.expect("ack")
	}
	late := s.dial(t)
	late.subscribe("flow", "late", 2)
	for _, c := range append(subs, late) {
		c.barrier()
	}
	expectMetric(t, s, 3, "pubsub_messages_published_total")
	expectMetric(t, s, 2, "pubsub_messages_replayed_total")
	expectMetric(t, s, 3*2+2, "pubsub_messages_delivered_total")
	expectMetric(t, s, 3, "pubsub_fanout_duration_seconds")
	expectMetric(t, s, 3, "pubsub_fanout_subscribers")
	expectMetric(t, s, 3, "pubsub_subscriber_queue_depth")
	if m := series(t, s, "pubsub_fanout_subscribers"); m.GetHistogram().GetSampleSum() != 6 {
		t.Errorf("fan-out width sum %v, want 3 publishes x 2 subscribers", m.GetHistogram().GetSampleSum())
	}
	expectPositive(t, s, "pubsub_delivery_latency_seconds")

	traces := map[string]bool{}
	for _, p := range spansNamed(rec, "publish flow") {
		traces[p.SpanContext().TraceID().String()] = true
	}
	h := series(t, s, "pubsub_delivery_latency_seconds").GetHistogram()
	var exemplars []*dto.Exemplar
	for _, b := range h.GetBucket() {
		if b.Exemplar != nil {
			exemplars = append(exemplars, b.Exemplar)
		}
	}
	exemplars = append(exemplars, h.GetExemplars()...)
	found := false
	for _, e := range exemplars {
		for _, lp := range e.GetLabel() {
			if lp.GetName() == "trace_id" {
				if !traces[lp.GetValue()] {
					t.Errorf("exemplar trace_id %s is not a publish trace", lp.GetValue())
				}
				found = true
			}
		}
	}
	if !found {
		t.Errorf("no trace_id exemplar on the delivery latency of sampled publishes (%d exemplars)", len(exemplars))
	}
}

// TestDropOldestMetrics: every message the drop_oldest policy discards is counted, and matches what
// the subscriber was told in its SLOW_CONSUMER notices.
func TestDropOldestMetrics(t *testing.T) {
	// The subscriber reads nothing while n messages are published: only drop_oldest may act on
	// that stall, never the write timeout, however long publishing takes.
	s := newServer(t, serverOpts{queue: 4, policy: domain.DropOldest, ws: wsConfig(func(c *wsCfg) { c.WriteTimeout = stalledPeerWriteTimeout(t) })})
	s.createTopic(t, "slow")
	slow, pub := s.dial(t), s.dial(t)
	slow.subscribe("slow", "slow", 0)
	const n = 300
	publishBig(t, pub, "slow", n, 32<<10) // ~10 MB: more than the socket buffers hold
	var announced, notices float64
	var last uint64
	for last < n {
		f := slow.read()
		switch f.Type {
		case "error":
			var k float64
			if _, err := fmt.Sscanf(f.Error.Message, "dropped %g messages", &k); err != nil {
				t.Fatalf("notice %s", f.raw)
			}
			announced += k
			notices++
		case "event":
			last = f.Seq
		}
	}
	if announced == 0 {
		t.Fatal("nothing was dropped; the test did not overflow the queue")
	}
	expectMetric(t, s, announced, "pubsub_messages_dropped_total", "reason", "overflow_drop_oldest")
	expectMetric(t, s, notices, "pubsub_errors_total", "code", "SLOW_CONSUMER")
	expectMetric(t, s, 0, "pubsub_slow_consumer_disconnects_total")
}

// TestDisconnectMetrics: the disconnect policy counts what the subscriber lost, the disconnect,
// the SLOW_CONSUMER error and a 1008 close, and does not count the loss twice at teardown.
func TestDisconnectMetrics(t *testing.T) {
	// A subscriber that reads one 32 KiB frame per 20 ms needs 80 ms for a batch of 4: far longer
	// than the 10 ms a write may wait before the client counts as too slow to wait for (half this
	// stall bound), so the policy, not a publisher stall, deals with it whatever the machine's load.
	s := newServer(t, serverOpts{queue: 4, policy: domain.Disconnect, ws: ws.Config{PublishStallMax: 20 * time.Millisecond}})
	s.createTopic(t, "d")
	slow, pub := s.dial(t), s.dial(t)
	slow.subscribe("d", "slow", 0)
	done := make(chan int, 1)
	go func() {
		for {
			time.Sleep(20 * time.Millisecond) // the slow reader's processing time, not synchronisation
			if _, err := slow.tryRead(waitFor); err != nil {
				code := 0
				if ce, ok := err.(*websocket.CloseError); ok {
					code = ce.Code
				}
				done <- code
				return
			}
		}
	}()
	publishUntilDisconnected(t, s, pub, "d")
	if code := <-done; code != websocket.ClosePolicyViolation {
		t.Fatalf("close code %d, want 1008", code)
	}
	expectMetric(t, s, 1, "pubsub_slow_consumer_disconnects_total")
	expectMetric(t, s, 1, "pubsub_ws_connections_closed_total", "code", "1008")
	expectMetric(t, s, 1, "pubsub_errors_total", "code", "SLOW_CONSUMER")
	expectPositive(t, s, "pubsub_messages_dropped_total", "reason", "overflow_disconnect")
	expectMetric(t, s, 0, "pubsub_messages_dropped_total", "reason", "connection_closed")
	expectMetric(t, s, 0, "pubsub_messages_dropped_total", "reason", "overflow_drop_oldest")
}

// backlog publishes large messages to topic while sub reads nothing, until the subscriber's queue
// holds more than 8 events (the queue-depth histogram sees it): the socket buffers are full and
// the writer is stuck, so those events stay queued. It returns how many it published. The server's
// write timeout must outlast the stall (see stalledPeerWriteTimeout), or the subscriber may be gone.
func backlog(t *testing.T, s *testServer, pub *client, topic string) int {
	t.Helper()
	payload := strings.Repeat("y", 64<<10)
	for n := 1; n <= 2000; n++ {
		pub.publish(topic, payload, "b")
		pub.expect("ack")
		if n%10 != 0 {
			continue
		}
		h := series(t, s, "pubsub_subscriber_queue_depth").GetHistogram()
		for _, b := range h.GetBucket() {
			if b.GetUpperBound() == 8 && b.GetCumulativeCount() < h.GetSampleCount() {
				return n
			}
		}
	}
	t.Fatal("the subscriber's queue never built up")
	return 0
}

// TestTopicDeletedDropMetrics: deleting a topic discards what its subscribers still had queued; the
// count is exactly what the subscriber never got.
func TestTopicDeletedDropMetrics(t *testing.T) {
	s := newServer(t, serverOpts{queue: 5000, ws: wsConfig(func(c *wsCfg) { c.WriteTimeout = stalledPeerWriteTimeout(t) })})
	s.createTopic(t, "del")
	sub, pub := s.dial(t), s.dial(t)
	sub.subscribe("del", "s", 0)
	published := backlog(t, s, pub, "del")
	if code, _ := s.do(t, "DELETE", "/topics/del", ""); code != 200 {
		t.Fatal(code)
	}
	received := 0
	for {
		f := sub.read()
		if f.Type == "event" {
			received++
			continue
		}
		if f.Type != "info" || f.Msg != "topic_deleted" {
			t.Fatalf("unexpected %s", f.raw)
		}
		break
	}
	if received >= published {
		t.Fatalf("received all %d messages: nothing was queued at the delete", published)
	}
	expectMetric(t, s, float64(published-received), "pubsub_messages_dropped_total", "reason", "topic_deleted")
}

// TestConnectionClosedDropMetrics: a subscriber that goes away with events queued has them counted
// as lost when its connection is torn down.
func TestConnectionClosedDropMetrics(t *testing.T) {
	// The close below, not the write timeout, must be what ends the stuck subscriber.
	s := newServer(t, serverOpts{queue: 5000, ws: wsConfig(func(c *wsCfg) { c.WriteTimeout = stalledPeerWriteTimeout(t) })})
	s.createTopic(t, "cc")
	sub, pub := s.dial(t), s.dial(t)
	sub.subscribe("cc", "s", 0)
	backlog(t, s, pub, "cc")
	_ = sub.conn.NetConn().Close()
	// Events were queued behind the stuck writer when the backlog returned; none can be delivered now.
	expectPositive(t, s, "pubsub_messages_dropped_total", "reason", "connection_closed")
	expectMetric(t, s, 1, "pubsub_ws_connections_closed_total", "code", "1006")
	expectMetric(t, s, 0, "pubsub_messages_dropped_total", "reason", "topic_deleted")
}
