package telemetry_test

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"regexp"
	"runtime"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	dto "github.com/prometheus/client_model/go"
	"go.opentelemetry.io/otel/trace"

	"github.com/pubsubd/pubsub/internal/transport/wire"
	"github.com/pubsubd/pubsub/telemetry"
	"github.com/pubsubd/pubsub/telemetry/telemetrytest"
)

// contractRow is one row of metrics.md: a series, its type, its labels and the values the page
// lists for them (a label with no listed values is not constrained here).
type contractRow struct {
	name, typ string
	labels    []string
	values    map[string][]string
}

var backticked = regexp.MustCompile("`([^`]+)`")

func ticks(s string) []string {
	var out []string
	for _, m := range backticked.FindAllStringSubmatch(s, -1) {
		out = append(out, m[1])
	}
	return out
}

// readContract parses the table of metrics.md. Label values are read from the meaning column:
// "`label`: `a`, `b`" lists a named label's values; otherwise the backticked words belong to the
// first label; "same `type` values as frames received" refers to that row.
func readContract(t *testing.T) []contractRow {
	t.Helper()
	doc, err := os.ReadFile("metrics.md")
	if err != nil {
		t.Fatal(err)
	}
	var rows []contractRow
	byName := map[string]*contractRow{}
	sameAs := regexp.MustCompile(`same .* as (frames received|frames sent)`)
	for _, line := range strings.Split(string(doc), "\n") {
		if !strings.HasPrefix(line, "| `") {
			continue
		}
		cols := strings.Split(line, "|")
		if len(cols) < 6 {
			t.Fatalf("metrics.md row %q: want 4 columns", line)
		}
		name := ticks(cols[1])[0]
		if strings.Contains(name, "*") { // go_*, process_*: the standard collectors, checked apart
			continue
		}
		r := contractRow{name: name, typ: strings.TrimSpace(cols[2]), labels: ticks(cols[3]), values: map[string][]string{}}
		meaning := cols[4]
		if m := sameAs.FindStringSubmatch(meaning); m != nil {
			ref := "pubsub_ws_" + strings.ReplaceAll(m[1], " ", "_") + "_total"
			if byName[ref] == nil {
				t.Fatalf("%s refers to %s, which the page has not defined above it", name, ref)
			}
			r.values[r.labels[0]] = byName[ref].values[r.labels[0]]
		} else if len(r.labels) > 0 {
			named := false
			for _, seg := range strings.Split(meaning, ";") {
				for _, l := range r.labels {
					if _, after, ok := strings.Cut(seg, "`"+l+"`:"); ok {
						r.values[l] = ticks(after)
						named = true
					}
				}
			}
			if !named {
				if vs := ticks(meaning); len(vs) > 0 {
					r.values[r.labels[0]] = vs
				}
			}
		}
		rows = append(rows, r)
		byName[name] = &rows[len(rows)-1]
	}
	if len(rows) < 20 {
		t.Fatalf("parsed only %d rows from metrics.md", len(rows))
	}
	return rows
}

// newMetrics builds the registry with the label values main passes in.
func newMetrics() *telemetry.Metrics {
	return telemetry.NewMetrics(telemetry.BuildInfo{Version: "v9.9.9", Revision: "abc123"},
		telemetry.Labels{Codes: wire.Codes, ClientTypes: wire.ClientTypes, ServerTypes: wire.ServerTypes})
}

func gather(t *testing.T, g prometheus.Gatherer) map[string]*dto.MetricFamily {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := make(map[string]*dto.MetricFamily, len(mfs))
	for _, mf := range mfs {
		out[mf.GetName()] = mf
	}
	return out
}

// combinations expands the listed values of the constrained labels into every label set.
func combinations(r contractRow) []map[string]string {
	out := []map[string]string{{}}
	for _, l := range r.labels {
		vs := r.values[l]
		if len(vs) == 0 {
			continue
		}
		var next []map[string]string
		for _, base := range out {
			for _, v := range vs {
				m := map[string]string{l: v}
				for k, bv := range base {
					m[k] = bv
				}
				next = append(next, m)
			}
		}
		out = next
	}
	return out
}

func matches(m *dto.Metric, want map[string]string) bool {
	have := telemetrytest.Labels(m)
	for k, v := range want {
		if have[k] != v {
			return false
		}
	}
	return true
}

// TestMetricContract: every series of metrics.md exists on the first scrape, with its type, its
// labels, every listed label value at zero and no value the page does not list; nothing
// undocumented is exported besides the Go and process collectors.
func TestMetricContract(t *testing.T) {
	rows := readContract(t)
	// The Redis engine's series are registered when it asks for its observer, as app does in
	// Redis mode: the page documents both modes, so the scrape is a Redis replica's.
	tel := setup(t, telemetry.Config{Build: telemetry.BuildInfo{Version: "v9.9.9", Revision: "abc123"},
		Labels: telemetry.Labels{Codes: wire.Codes, ClientTypes: wire.ClientTypes, ServerTypes: wire.ServerTypes}})
	tel.Backplane()
	fams := gather(t, tel.Metrics.Registry)
	documented := map[string]bool{}
	for _, r := range rows {
		documented[r.name] = true
		t.Run(r.name, func(t *testing.T) {
			mf := fams[r.name]
			if mf == nil {
				t.Fatal("not exported on the first scrape")
			}
			wantType := map[string]dto.MetricType{"counter": dto.MetricType_COUNTER, "gauge": dto.MetricType_GAUGE}[r.typ]
			if strings.HasPrefix(r.typ, "histogram") {
				wantType = dto.MetricType_HISTOGRAM
			}
			if mf.GetType() != wantType {
				t.Fatalf("type %v, metrics.md says %s", mf.GetType(), r.typ)
			}
			for _, m := range mf.GetMetric() {
				have := telemetrytest.Labels(m)
				if len(have) != len(r.labels) {
					t.Fatalf("labels %v, metrics.md says %v", have, r.labels)
				}
				for _, l := range r.labels {
					v, ok := have[l]
					if !ok {
						t.Fatalf("labels %v, metrics.md says %v", have, r.labels)
					}
					if listed := r.values[l]; len(listed) > 0 && !slices.Contains(listed, v) {
						t.Errorf("%s=%q is not a value metrics.md lists (%v)", l, v, listed)
					}
				}
				if strings.Contains(r.typ, "native") && m.GetHistogram().Schema == nil {
					t.Errorf("%v: not a native histogram", have)
				}
				want := 0.0
				if r.name == "pubsub_build_info" {
					want = 1
				}
				if telemetrytest.Value(m) != want {
					t.Errorf("%v = %v on the first scrape, want %v", have, telemetrytest.Value(m), want)
				}
			}
			for _, want := range combinations(r) {
				if !slices.ContainsFunc(mf.GetMetric(), func(m *dto.Metric) bool { return matches(m, want) }) {
					t.Errorf("no series %v on the first scrape", want)
				}
			}
		})
	}
	for name := range fams {
		if !documented[name] && !strings.HasPrefix(name, "go_") && !strings.HasPrefix(name, "process_") {
			t.Errorf("%s is exported but not in metrics.md", name)
		}
	}
	for _, prefix := range []string{"go_goroutines", "process_cpu_seconds_total"} {
		if fams[prefix] == nil {
			t.Errorf("%s missing: the Go and process collectors are part of the contract", prefix)
		}
	}
	build := fams["pubsub_build_info"].GetMetric()[0]
	if l := telemetrytest.Labels(build); l["version"] != "v9.9.9" || l["revision"] != "abc123" || l["goversion"] != runtime.Version() {
		t.Errorf("pubsub_build_info labels %v", l)
	}
}

// TestMetricHelpers: the typed recording methods move exactly the child they name and ignore
// label values outside the contract instead of minting new series.
func TestMetricHelpers(t *testing.T) {
	m := newMetrics()
	m.Error(wire.CodeTopicExists)
	m.Error("NOT_A_CODE")
	m.Dropped(telemetry.DropTopicDeleted, 3)
	m.Dropped("bogus", 1)
	m.FrameIn(wire.TypePublish, 120)
	m.FrameIn("bogus", 5)
	m.FramesOut(wire.TypeEvent, 4, 400)
	m.ConnClosed(1008)
	m.ConnClosed(4000)
	m.Operation(telemetry.OpPublish, nil, time.Millisecond, sampledSpanContext(t))
	m.Operation(telemetry.OpPublish, io.EOF, time.Millisecond, sampledSpanContext(t))
	m.HTTPRequest("/topics/{name}", "DELETE", 404, time.Millisecond, sampledSpanContext(t))

	fams := gather(t, m.Registry)
	for _, c := range []struct {
		name   string
		labels map[string]string
		want   float64
	}{
		{"pubsub_errors_total", map[string]string{"code": "TOPIC_EXISTS"}, 1},
		{"pubsub_messages_dropped_total", map[string]string{"reason": "topic_deleted"}, 3},
		{"pubsub_ws_frames_received_total", map[string]string{"type": "publish"}, 1},
		{"pubsub_ws_received_bytes_total", map[string]string{"type": "publish"}, 120},
		{"pubsub_ws_frames_sent_total", map[string]string{"type": "event"}, 4},
		{"pubsub_ws_sent_bytes_total", map[string]string{"type": "event"}, 400},
		{"pubsub_ws_connections_closed_total", map[string]string{"code": "1008"}, 1},
		{"pubsub_ws_connections_closed_total", map[string]string{"code": "other"}, 1},
		{"pubsub_operations_total", map[string]string{"operation": "publish", "result": "ok"}, 1},
		{"pubsub_operations_total", map[string]string{"operation": "publish", "result": "error"}, 1},
		{"pubsub_operation_duration_seconds", map[string]string{"operation": "publish"}, 2},
		{"pubsub_http_requests_total", map[string]string{"route": "/topics/{name}", "method": "DELETE", "code": "404"}, 1},
	} {
		var got float64
		n := 0
		for _, mm := range fams[c.name].GetMetric() {
			if matches(mm, c.labels) {
				got += telemetrytest.Value(mm)
				n++
			}
		}
		if n != 1 || got != c.want {
			t.Errorf("%s%v = %v over %d series, want %v in one", c.name, c.labels, got, n, c.want)
		}
	}
	// Unknown values were ignored: the families still hold only the contract's children.
	if n := len(fams["pubsub_errors_total"].GetMetric()); n != len(wire.Codes) {
		t.Errorf("pubsub_errors_total has %d children, want %d", n, len(wire.Codes))
	}
	if n := len(fams["pubsub_messages_dropped_total"].GetMetric()); n != 4 {
		t.Errorf("pubsub_messages_dropped_total has %d children, want 4", n)
	}
	if n := len(fams["pubsub_ws_frames_received_total"].GetMetric()); n != len(wire.ClientTypes) {
		t.Errorf("pubsub_ws_frames_received_total has %d children", n)
	}
	// A sampled observation carries its trace id as an exemplar.
	if ex := exemplars(fams["pubsub_operation_duration_seconds"]); !slices.Contains(ex, sampledSpanContext(t).TraceID().String()) {
		t.Errorf("operation duration exemplars %v lack the trace id", ex)
	}
}

// sampledSpanContext is the span context of a sampled operation.
func sampledSpanContext(t *testing.T) trace.SpanContext {
	_, sc := spanContext(t)
	return sc
}

// exemplars lists the trace_id of every exemplar of a histogram family, classic or native.
func exemplars(mf *dto.MetricFamily) []string {
	var out []string
	for _, m := range mf.GetMetric() {
		h := m.GetHistogram()
		var exs []*dto.Exemplar
		for _, b := range h.GetBucket() {
			if b.Exemplar != nil {
				exs = append(exs, b.Exemplar)
			}
		}
		exs = append(exs, h.GetExemplars()...)
		for _, e := range exs {
			for _, lp := range e.GetLabel() {
				if lp.GetName() == "trace_id" {
					out = append(out, lp.GetValue())
				}
			}
		}
	}
	return out
}

// scrape fetches /metrics from h with the given Accept header.
func scrape(t *testing.T, url, accept string) (string, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if accept != "" {
		req.Header.Set("Accept", accept)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("scrape: %d %v", resp.StatusCode, err)
	}
	return resp.Header.Get("Content-Type"), string(body)
}

// TestScrapeFormats serves the registry as the admin listener does: OpenMetrics when asked for (the
// only text format that carries exemplars), the classic text format otherwise, which must pass
// promtool's lint.
func TestScrapeFormats(t *testing.T) {
	m := newMetrics()
	m.Operation(telemetry.OpPublish, nil, 3*time.Millisecond, sampledSpanContext(t))
	srv := httptest.NewServer(promhttp.HandlerFor(m.Registry, promhttp.HandlerOpts{EnableOpenMetrics: true}))
	defer srv.Close()

	ct, body := scrape(t, srv.URL, "application/openmetrics-text;version=1.0.0")
	if !strings.HasPrefix(ct, "application/openmetrics-text") || !strings.HasSuffix(body, "# EOF\n") {
		t.Fatalf("OpenMetrics scrape: Content-Type %q, body ends %q", ct, body[max(len(body)-40, 0):])
	}
	if !strings.Contains(body, `# {trace_id="`+sampledSpanContext(t).TraceID().String()+`"}`) {
		t.Errorf("OpenMetrics scrape has no exemplar for the sampled observation")
	}

	ct, text := scrape(t, srv.URL, "")
	if !strings.HasPrefix(ct, "text/plain") {
		t.Fatalf("default scrape Content-Type %q", ct)
	}
	promtool, err := exec.LookPath("promtool")
	if err != nil {
		t.Skip("promtool is not installed (Debian: apt-get install prometheus); skipping the lint of the scrape")
	}
	cmd := exec.Command(promtool, "check", "metrics")
	cmd.Stdin = strings.NewReader(text)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil || out.Len() > 0 {
		t.Fatalf("promtool check metrics: %v\n%s", err, out.String())
	}
}

// TestPublisherStallAndPanicMetrics: the stall counter and histogram and every panic component
// exist at zero on a fresh registry, and each recording method moves exactly its own series; a
// component outside the enum counts as other instead of minting a series.
func TestPublisherStallAndPanicMetrics(t *testing.T) {
	m := newMetrics()
	value := func(name string, labels map[string]string) float64 {
		t.Helper()
		s, err := telemetrytest.Series(m.Registry, name, labels)
		if err != nil {
			t.Fatal(err)
		}
		if s == nil {
			t.Fatalf("no series %s%v", name, labels)
		}
		return telemetrytest.Value(s)
	}
	components := []string{telemetry.PanicReader, telemetry.PanicWriter, telemetry.PanicFlusher, telemetry.PanicClock,
		telemetry.PanicParker, telemetry.PanicHTTP, telemetry.PanicOther}
	for _, c := range components {
		if v := value("pubsub_panics_total", map[string]string{"component": c}); v != 0 {
			t.Errorf("pubsub_panics_total{component=%q} = %v on a fresh registry", c, v)
		}
	}
	if v := value("pubsub_publisher_stalls_total", nil); v != 0 {
		t.Errorf("pubsub_publisher_stalls_total = %v on a fresh registry", v)
	}
	if v := value("pubsub_publisher_stall_seconds", nil); v != 0 {
		t.Errorf("pubsub_publisher_stall_seconds count = %v on a fresh registry", v)
	}

	m.PublisherStalled(20 * time.Millisecond)
	m.PublisherStalled(100 * time.Microsecond)
	m.Panicked(telemetry.PanicWriter)
	m.Panicked(telemetry.PanicWriter)
	m.Panicked(telemetry.PanicHTTP)
	m.Panicked("not_a_component")

	if v := value("pubsub_publisher_stalls_total", nil); v != 2 {
		t.Errorf("pubsub_publisher_stalls_total = %v, want 2", v)
	}
	stall, err := telemetrytest.Series(m.Registry, "pubsub_publisher_stall_seconds", nil)
	if err != nil || stall == nil {
		t.Fatalf("pubsub_publisher_stall_seconds: %v %v", stall, err)
	}
	h := stall.GetHistogram()
	if h.GetSampleCount() != 2 || h.GetSampleSum() < 0.0201-1e-9 || h.GetSampleSum() > 0.0201+1e-9 {
		t.Errorf("stall histogram count %d sum %v, want 2 and 0.0201", h.GetSampleCount(), h.GetSampleSum())
	}
	// The classic buckets resolve the range a bounded stall lives in: 100 µs and 20 ms land in
	// different buckets, both below the top one.
	var below100us, below20ms uint64
	for _, b := range h.GetBucket() {
		switch {
		case b.GetUpperBound() == 0.0001:
			below100us = b.GetCumulativeCount()
		case b.GetUpperBound() == 0.0256:
			below20ms = b.GetCumulativeCount()
		}
	}
	if below100us != 1 || below20ms != 2 || len(h.GetBucket()) != 16 || h.GetBucket()[0].GetUpperBound() != 0.00005 {
		t.Errorf("stall buckets %v: want 16 doubling from 50µs, with 1 sample ≤100µs and 2 ≤25.6ms", h.GetBucket())
	}
	if h.Schema == nil {
		t.Error("pubsub_publisher_stall_seconds is not a native histogram")
	}
	for c, want := range map[string]float64{telemetry.PanicWriter: 2, telemetry.PanicHTTP: 1, telemetry.PanicOther: 1, telemetry.PanicReader: 0} {
		if v := value("pubsub_panics_total", map[string]string{"component": c}); v != want {
			t.Errorf("pubsub_panics_total{component=%q} = %v, want %v", c, v, want)
		}
	}
	if n := len(gather(t, m.Registry)["pubsub_panics_total"].GetMetric()); n != len(components) {
		t.Errorf("pubsub_panics_total has %d children, want %d", n, len(components))
	}
}

// The transport records stalls and panics on its own goroutines: neither method may allocate.
func TestPublisherStallAndPanicDoNotAllocate(t *testing.T) {
	m := newMetrics()
	m.PublisherStalled(15 * time.Millisecond) // the first sample in a native bucket creates it
	if n := testing.AllocsPerRun(1000, func() {
		m.PublisherStalled(15 * time.Millisecond)
		m.Panicked(telemetry.PanicReader)
		m.Panicked("unknown")
	}); n != 0 {
		t.Errorf("PublisherStalled and Panicked allocate %v times per call", n)
	}
}
