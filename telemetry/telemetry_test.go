package telemetry_test

import (
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"go.opentelemetry.io/otel/attribute"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"
	"go.opentelemetry.io/otel/trace"

	"github.com/pubsubd/pubsub/telemetry"
)

// env returns a Getenv over a fixed map, so a test never depends on the machine's variables.
func env(vars map[string]string) func(string) string {
	return func(k string) string { return vars[k] }
}

func setup(t *testing.T, cfg telemetry.Config) *telemetry.Telemetry {
	t.Helper()
	cfg.LogOutput = &strings.Builder{}
	tel, err := telemetry.Setup(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = tel.Shutdown(ctx)
	})
	return tel
}

// TestTracingOff: without an endpoint, or when the OTel variables switch the SDK or the exporter
// off, tracing is off and the tracer records nothing (and builds no span context to propagate).
func TestTracingOff(t *testing.T) {
	const endpoint = "http://127.0.0.1:4318"
	for _, tc := range []struct {
		name string
		vars map[string]string
	}{
		{"no endpoint", nil},
		{"sdk disabled", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": endpoint, "OTEL_SDK_DISABLED": "true"}},
		{"exporter none", map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": endpoint, "OTEL_TRACES_EXPORTER": "none"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tel := setup(t, telemetry.Config{Getenv: env(tc.vars)})
			if tel.TracingEnabled() {
				t.Fatal("tracing is on")
			}
			_, span := tel.Tracer.Start(context.Background(), "x")
			defer span.End()
			if span.IsRecording() || span.SpanContext().IsValid() {
				t.Fatalf("the tracer is not a no-op: recording %v, span context %v", span.IsRecording(), span.SpanContext())
			}
			if err := tel.Shutdown(context.Background()); err != nil {
				t.Fatalf("shutdown with tracing off: %v", err)
			}
		})
	}
}

func TestBadOTLPProtocolIsRefused(t *testing.T) {
	for _, key := range []string{"OTEL_EXPORTER_OTLP_PROTOCOL", "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"} {
		t.Run(key, func(t *testing.T) {
			_, err := telemetry.Setup(context.Background(), telemetry.Config{LogOutput: &strings.Builder{},
				Getenv: env(map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:4318", key: "http/json"})})
			if err == nil || !strings.Contains(err.Error(), "grpc, http/protobuf") || !strings.Contains(err.Error(), "http/json") {
				t.Fatalf("err = %v, want one naming the bad value and the accepted ones", err)
			}
		})
	}
}

// TestUnreachableCollector: a collector that is down must neither fail the start nor hold the
// shutdown past its deadline, for both OTLP transports.
func TestUnreachableCollector(t *testing.T) {
	for _, proto := range []string{"http/protobuf", "grpc"} {
		t.Run(proto, func(t *testing.T) {
			vars := map[string]string{"OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:1", "OTEL_EXPORTER_OTLP_PROTOCOL": proto}
			for k, v := range vars { // the exporters read their own settings from the process environment
				t.Setenv(k, v)
			}
			tel, err := telemetry.Setup(context.Background(), telemetry.Config{LogOutput: &strings.Builder{}, Getenv: env(vars),
				Sampler: sdktrace.AlwaysSample()})
			if err != nil {
				t.Fatalf("setup with an unreachable collector: %v", err)
			}
			if !tel.TracingEnabled() {
				t.Fatal("tracing is off with an endpoint set")
			}
			_, span := tel.Tracer.Start(context.Background(), "pending export")
			if !span.IsRecording() {
				t.Fatal("span not recorded")
			}
			span.End() // something for the shutdown to try to flush
			const bound = 2 * time.Second
			ctx, cancel := context.WithTimeout(context.Background(), bound)
			defer cancel()
			start := time.Now()
			_ = tel.Shutdown(ctx) // an export error is expected; only the time matters here
			if d := time.Since(start); d > bound+3*time.Second {
				t.Fatalf("shutdown took %s with a %s deadline", d, bound)
			}
		})
	}
}

// TestSamplers: the default is parent-based at DefaultSampleRatio, so a client's sampled trace is
// always continued while few root traces are kept; OTEL_TRACES_SAMPLER replaces it.
func TestSamplers(t *testing.T) {
	remote := func(flags trace.TraceFlags) context.Context {
		_, sc := spanContext(t)
		sc = sc.WithTraceFlags(flags).WithRemote(true)
		return trace.ContextWithRemoteSpanContext(context.Background(), sc)
	}
	t.Run("default", func(t *testing.T) {
		rec := tracetest.NewSpanRecorder()
		tel := setup(t, telemetry.Config{SpanProcessor: rec, Getenv: env(nil)})
		_, span := tel.Tracer.Start(remote(trace.FlagsSampled), "child of sampled")
		span.End()
		if !span.SpanContext().IsSampled() {
			t.Error("a sampled parent's child was not sampled")
		}
		_, span = tel.Tracer.Start(remote(0), "child of unsampled")
		span.End()
		if span.SpanContext().IsSampled() {
			t.Error("an unsampled parent's child was sampled")
		}
		sampled := 0
		const roots = 2000
		for range roots {
			_, span := tel.Tracer.Start(context.Background(), "root")
			if span.SpanContext().IsSampled() {
				sampled++
			}
			span.End()
		}
		// Expected 20 at 1 %; 200 would be ten times the ratio, with a vanishing chance by luck.
		if sampled >= roots/10 {
			t.Errorf("%d of %d root spans sampled, want about %.0f", sampled, roots, roots*telemetry.DefaultSampleRatio)
		}
		if got := len(rec.Ended()); got != sampled+1 {
			t.Errorf("recorder has %d spans, want %d", got, sampled+1)
		}
	})
	t.Run("OTEL_TRACES_SAMPLER", func(t *testing.T) {
		t.Setenv("OTEL_TRACES_SAMPLER", "always_off") // the SDK reads it from the process environment
		rec := tracetest.NewSpanRecorder()
		tel := setup(t, telemetry.Config{SpanProcessor: rec, Getenv: os.Getenv})
		_, span := tel.Tracer.Start(remote(trace.FlagsSampled), "x")
		span.End()
		if span.IsRecording() || len(rec.Ended()) != 0 {
			t.Fatal("always_off recorded a span")
		}
	})
}

func TestServiceNameResource(t *testing.T) {
	for _, tc := range []struct{ name, envName, want string }{
		{"default", "", "pubsub"},
		{"OTEL_SERVICE_NAME", "orders-bus", "orders-bus"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			// Set even when empty, so the machine's own variables cannot leak in.
			t.Setenv("OTEL_SERVICE_NAME", tc.envName)
			t.Setenv("OTEL_RESOURCE_ATTRIBUTES", "")
			rec := tracetest.NewSpanRecorder()
			tel := setup(t, telemetry.Config{SpanProcessor: rec, Sampler: sdktrace.AlwaysSample(),
				Build: telemetry.BuildInfo{Version: "v1.2.3"}, Getenv: env(nil)})
			_, span := tel.Tracer.Start(context.Background(), "x")
			span.End()
			res := rec.Ended()[0].Resource()
			got := map[attribute.Key]string{}
			for _, kv := range res.Attributes() {
				got[kv.Key] = kv.Value.String()
			}
			if got["service.name"] != tc.want || got["service.version"] != "v1.2.3" {
				t.Fatalf("resource %v: want service.name %q, service.version v1.2.3", got, tc.want)
			}
		})
	}
}

// TestReplicaNamesSpansAndLogs: a replica's id is on its spans' resource (service.instance.id), so
// a trace through several replicas says which one recorded each span, and on every log record; a
// single process (no replica) has neither.
func TestReplicaNamesSpansAndLogs(t *testing.T) {
	t.Setenv("OTEL_SERVICE_NAME", "")
	t.Setenv("OTEL_RESOURCE_ATTRIBUTES", "")
	for _, replica := range []string{"pod-a-1f2e3d4c", ""} {
		t.Run("replica="+replica, func(t *testing.T) {
			rec := tracetest.NewSpanRecorder()
			var logs strings.Builder
			tel, err := telemetry.Setup(context.Background(), telemetry.Config{Replica: replica,
				SpanProcessor: rec, Sampler: sdktrace.AlwaysSample(), LogFormat: "json", LogOutput: &logs,
				Getenv: env(nil)})
			if err != nil {
				t.Fatal(err)
			}
			defer func() { _ = tel.Shutdown(context.Background()) }()
			_, span := tel.Tracer.Start(context.Background(), "x")
			span.End()
			tel.Logger.Info("hello")
			tel.Refusals.Warn(context.Background(), "refused", "reason", "test")

			var instance string
			var has bool
			for _, kv := range rec.Ended()[0].Resource().Attributes() {
				if kv.Key == "service.instance.id" {
					instance, has = kv.Value.AsString(), true
				}
			}
			lines := strings.Split(strings.TrimSpace(logs.String()), "\n")
			if len(lines) != 2 {
				t.Fatalf("got %d log lines, want 2 (the info and the refusal):\n%s", len(lines), logs.String())
			}
			if replica == "" {
				if has {
					t.Fatalf("service.instance.id = %q without a replica, want none", instance)
				}
				if strings.Contains(logs.String(), `"replica"`) {
					t.Fatalf("logs name a replica without one:\n%s", logs.String())
				}
				return
			}
			if instance != replica {
				t.Fatalf("service.instance.id = %q (present: %v), want %q", instance, has, replica)
			}
			for _, l := range lines {
				if !strings.Contains(l, `"replica":"`+replica+`"`) {
					t.Fatalf("log line without the replica %q: %s", replica, l)
				}
			}
		})
	}
}
