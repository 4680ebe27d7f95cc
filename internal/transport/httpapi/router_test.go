package httpapi_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/pubsubd/pubsub/internal/broker/memory"
	"github.com/pubsubd/pubsub/internal/domain"
	"github.com/pubsubd/pubsub/internal/logbuffer"
	"github.com/pubsubd/pubsub/internal/service"
	"github.com/pubsubd/pubsub/internal/transport/httpapi"
	"github.com/pubsubd/pubsub/internal/transport/wire"
	"github.com/pubsubd/pubsub/telemetry"
	"github.com/pubsubd/pubsub/telemetry/telemetrytest"
)

// Client trace context used to check that REST spans continue an incoming traceparent.
const (
	clientTraceID = "4bf92f3577b34da6a3ce929d0e0e4736"
	clientSpanID  = "00f067aa0ba902b7"
)

// waitFor bounds every wait: generous for a loaded CI machine, short enough to fail a hang quickly.
const waitFor = 10 * time.Second

type fixture struct {
	url   string
	tel   *telemetry.Telemetry
	spans *tracetest.SpanRecorder
	logs  *logbuffer.Buffer
	ready atomic.Bool
}

// newFixture serves the router over the real service, memory broker and telemetry, with every
// trace recorded. wrap, when set, decorates the API the router calls.
func newFixture(t *testing.T, wrap func(service.API) service.API) *fixture {
	t.Helper()
	return newFixtureWith(t, httpapi.Options{}, wrap)
}

// newFixtureWith is newFixture with the router's other options (limits, authentication) from o;
// API, Telemetry, WS and Ready are filled in.
func newFixtureWith(t *testing.T, o httpapi.Options, wrap func(service.API) service.API) *fixture {
	t.Helper()
	f := &fixture{spans: tracetest.NewSpanRecorder(), logs: &logbuffer.Buffer{}}
	f.ready.Store(true)
	tel, err := telemetry.Setup(context.Background(), telemetry.Config{
		Labels:    telemetry.Labels{Codes: wire.Codes, ClientTypes: wire.ClientTypes, ServerTypes: wire.ServerTypes},
		LogOutput: f.logs, LogFormat: "json", LogLevel: slog.LevelDebug,
		SpanProcessor: f.spans, Sampler: sdktrace.ParentBased(sdktrace.AlwaysSample()),
	})
	if err != nil {
		t.Fatal(err)
	}
	f.tel = tel
	broker := memory.New(domain.TopicConfig{HistorySize: 10, QueueSize: 10, Encoder: wire.EventEncoder})
	o.API = tel.Instrument(service.New(broker, service.Options{Observer: tel.Observer()}), wire.CodeOf)
	if wrap != nil {
		o.API = wrap(o.API)
	}
	// /ws belongs to the ws package, which this one must not import; a plain handler stands in.
	o.WS = http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusUpgradeRequired) })
	o.Telemetry = tel
	o.Ready = func(context.Context) error {
		if f.ready.Load() {
			return nil
		}
		return domain.Errorf(domain.KindUnavailable, "server is shutting down")
	}
	srv := httptest.NewServer(httpapi.NewRouter(o))
	f.url = srv.URL
	t.Cleanup(func() {
		srv.Close()
		if t.Failed() {
			t.Logf("server log:\n%s", f.logs.String())
		}
	})
	return f
}

// do sends a request (with extra headers) and returns the status and the raw body.
func (f *fixture) do(t *testing.T, method, path, body string, header ...string) (int, http.Header, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, f.url+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, resp.Header, raw
}

// counter reads one child of a counter family (0 when it does not exist).
func (f *fixture) counter(t *testing.T, name string, labels map[string]string) float64 {
	t.Helper()
	m, err := telemetrytest.Series(f.tel.Metrics.Registry, name, labels)
	if err != nil {
		t.Fatal(err)
	}
	return telemetrytest.Value(m)
}

// expectCounter waits, with a deadline, for a counter to reach want: the middleware counts after
// the handler has returned, which may be just after the client has its response.
func (f *fixture) expectCounter(t *testing.T, name string, labels map[string]string, want float64) {
	t.Helper()
	deadline := time.Now().Add(waitFor)
	for {
		got := f.counter(t, name, labels)
		if got == want {
			return
		}
		if time.Now().After(deadline) {
			t.Errorf("%s%v = %v, want %v", name, labels, got, want)
			return
		}
		time.Sleep(time.Millisecond) // polling a condition with a deadline
	}
}

func (f *fixture) spansNamed(name string) []sdktrace.ReadOnlySpan {
	var out []sdktrace.ReadOnlySpan
	for _, s := range f.spans.Ended() {
		if s.Name() == name {
			out = append(out, s)
		}
	}
	return out
}

func attrs(s sdktrace.ReadOnlySpan) map[attribute.Key]attribute.Value {
	out := map[attribute.Key]attribute.Value{}
	for _, kv := range s.Attributes() {
		out[kv.Key] = kv.Value
	}
	return out
}

func one(t *testing.T, f *fixture, name string) sdktrace.ReadOnlySpan {
	t.Helper()
	ss := f.spansNamed(name)
	if len(ss) != 1 {
		var names []string
		for _, s := range f.spans.Ended() {
			names = append(names, s.Name())
		}
		t.Fatalf("%d spans named %q, want 1; spans: %v", len(ss), name, names)
	}
	return ss[0]
}

func httpCount(route, method, code string) map[string]string {
	return map[string]string{"route": route, "method": method, "code": code}
}

// TestRESTSpansByRouteTemplate: each request is one server span named by its route template (never
// the raw path, which would make one span name per topic), continuing the client's traceparent,
// with the operation's span as its child.
func TestRESTSpansByRouteTemplate(t *testing.T) {
	f := newFixture(t, nil)
	tp := "00-" + clientTraceID + "-" + clientSpanID + "-01"
	if code, _, body := f.do(t, "POST", "/topics", `{"name":"orders"}`, "traceparent", tp); code != 201 {
		t.Fatalf("create: %d %s", code, body)
	}
	if code, _, _ := f.do(t, "DELETE", "/topics/orders", ""); code != 200 {
		t.Fatalf("delete: %d", code)
	}
	if code, _, _ := f.do(t, "DELETE", "/topics/missing", ""); code != 404 {
		t.Fatalf("delete missing: %d", code)
	}

	post := one(t, f, "POST /topics")
	if post.SpanKind() != trace.SpanKindServer {
		t.Errorf("kind %v", post.SpanKind())
	}
	if post.SpanContext().TraceID().String() != clientTraceID || post.Parent().SpanID().String() != clientSpanID || !post.Parent().IsRemote() {
		t.Errorf("POST /topics did not continue the client's trace: trace %s parent %s", post.SpanContext().TraceID(), post.Parent().SpanID())
	}
	a := attrs(post)
	if a["http.route"].AsString() != "/topics" || a["http.request.method"].AsString() != "POST" || a["http.response.status_code"].AsInt64() != 201 {
		t.Errorf("POST /topics attributes %v", a)
	}
	create := one(t, f, "topic.create orders")
	if create.Parent().SpanID() != post.SpanContext().SpanID() || create.SpanContext().TraceID() != post.SpanContext().TraceID() {
		t.Errorf("topic.create is not a child of the REST span")
	}

	dels := f.spansNamed("DELETE /topics/{name}")
	if len(dels) != 2 {
		t.Fatalf("%d DELETE /topics/{name} spans, want 2", len(dels))
	}
	for _, d := range dels {
		if attrs(d)["http.route"].AsString() != "/topics/{name}" {
			t.Errorf("http.route %v", attrs(d)["http.route"])
		}
		if d.Parent().IsValid() {
			t.Errorf("a request without traceparent got a parent: %v", d.Parent())
		}
		// A 4xx is the client's mistake, not the server's: the span status stays unset.
		if d.Status().Code == codes.Error {
			t.Errorf("status %v for %v", d.Status(), attrs(d)["http.response.status_code"])
		}
	}
	miss := one(t, f, "topic.delete missing")
	if miss.Status().Code != codes.Error || attrs(miss)["pubsub.error.code"].AsString() != "TOPIC_NOT_FOUND" {
		t.Errorf("failed operation span: status %v attrs %v", miss.Status(), attrs(miss))
	}
	for _, c := range []struct {
		labels map[string]string
		want   float64
	}{
		{httpCount("/topics", "POST", "201"), 1},
		{httpCount("/topics/{name}", "DELETE", "200"), 1},
		{httpCount("/topics/{name}", "DELETE", "404"), 1},
	} {
		f.expectCounter(t, "pubsub_http_requests_total", c.labels, c.want)
	}
	f.expectCounter(t, "pubsub_errors_total", map[string]string{"code": "TOPIC_NOT_FOUND"}, 1)
}

// TestProbesAreCountedNotTraced: probes arrive every few seconds from the kubelet; a span each
// would bury real traces, but their counts show the probe traffic and readiness flips.
func TestProbesAreCountedNotTraced(t *testing.T) {
	f := newFixture(t, nil)
	tp := "00-" + clientTraceID + "-" + clientSpanID + "-01"
	if code, _, _ := f.do(t, "GET", "/livez", "", "traceparent", tp); code != 200 {
		t.Fatalf("livez %d", code)
	}
	if code, _, _ := f.do(t, "GET", "/readyz", "", "traceparent", tp); code != 200 {
		t.Fatalf("readyz %d", code)
	}
	f.ready.Store(false)
	code, _, body := f.do(t, "GET", "/readyz", "")
	if code != 503 || !strings.Contains(string(body), `"UNAVAILABLE"`) {
		t.Fatalf("readyz while draining: %d %s", code, body)
	}
	if ss := f.spans.Ended(); len(ss) != 0 {
		t.Fatalf("probes were traced: %d spans, first %q", len(ss), ss[0].Name())
	}
	for _, c := range []struct {
		labels map[string]string
		want   float64
	}{
		{httpCount("/livez", "GET", "200"), 1},
		{httpCount("/readyz", "GET", "200"), 1},
		{httpCount("/readyz", "GET", "503"), 1},
	} {
		f.expectCounter(t, "pubsub_http_requests_total", c.labels, c.want)
	}
}

// TestUnroutedRequestsAreCountedAsOther: scanners and typos are traffic too. They are counted
// under route "other", and a made-up method cannot mint a new label value.
func TestUnroutedRequestsAreCountedAsOther(t *testing.T) {
	f := newFixture(t, nil)
	if code, _, body := f.do(t, "GET", "/wp-login.php", ""); code != 404 || !json.Valid(body) {
		t.Fatalf("unknown path: %d %s", code, body)
	}
	if code, _, body := f.do(t, "PUT", "/topics", ""); code != 405 || !json.Valid(body) {
		t.Fatalf("wrong method: %d %s", code, body)
	}
	if code, _, _ := f.do(t, "BREW", "/pot", ""); code != 404 {
		t.Fatalf("made-up method: %d", code)
	}
	for _, c := range []struct {
		labels map[string]string
		want   float64
	}{
		{httpCount("other", "GET", "404"), 1},
		{httpCount("other", "PUT", "405"), 1},
		{httpCount("other", "_OTHER", "404"), 1},
	} {
		f.expectCounter(t, "pubsub_http_requests_total", c.labels, c.want)
	}
}

// panicking makes topic creation panic, as a bug in a handler's dependencies would.
type panicking struct{ service.API }

func (panicking) CreateTopic(context.Context, domain.TopicName) error { panic("boom") }

// TestPanicBecomes500: a panic in a request is the contract's INTERNAL error, not a dropped
// connection; it is counted, logged with the request's trace, and marks the span as an error.
func TestPanicBecomes500(t *testing.T) {
	f := newFixture(t, func(a service.API) service.API { return panicking{a} })
	code, header, body := f.do(t, "POST", "/topics", `{"name":"orders"}`)
	if code != 500 {
		t.Fatalf("status %d, want 500", code)
	}
	if ct := header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q", ct)
	}
	var got struct {
		Error struct{ Code, Message string } `json:"error"`
	}
	if err := json.Unmarshal(body, &got); err != nil || got.Error.Code != "INTERNAL" || got.Error.Message == "" {
		t.Fatalf("body %s: want {\"error\":{\"code\":\"INTERNAL\",...}} (%v)", body, err)
	}
	if strings.Contains(string(body), "boom") {
		t.Errorf("the panic value leaked to the client: %s", body)
	}
	// The server is still serving.
	if code, _, _ := f.do(t, "GET", "/topics", ""); code != 200 {
		t.Fatalf("after the panic: %d", code)
	}
	f.expectCounter(t, "pubsub_errors_total", map[string]string{"code": "INTERNAL"}, 1)
	f.expectCounter(t, "pubsub_panics_total", map[string]string{"component": "http"}, 1)
	f.expectCounter(t, "pubsub_http_requests_total", httpCount("/topics", "POST", "500"), 1)
	span := one(t, f, "POST /topics")
	if span.Status().Code != codes.Error || attrs(span)["http.response.status_code"].AsInt64() != 500 {
		t.Errorf("span status %v, status code %v", span.Status(), attrs(span)["http.response.status_code"])
	}
	var logged map[string]any
	for _, line := range strings.Split(strings.TrimSpace(f.logs.String()), "\n") {
		var rec map[string]any
		if json.Unmarshal([]byte(line), &rec) == nil && rec["msg"] == "panic while serving a request" {
			logged = rec
		}
	}
	if logged == nil || !strings.Contains(logged["stack"].(string), "CreateTopic") {
		t.Fatalf("panic not logged with its stack: %v", logged)
	}
	if logged["trace_id"] != span.SpanContext().TraceID().String() {
		t.Errorf("panic log trace_id %v, want the request's %s", logged["trace_id"], span.SpanContext().TraceID())
	}
}
