// Package telemetry builds the service's tracer provider (OTLP), Prometheus registry and slog
// logger, and holds the instrumentation that wraps the service API and implements its Observer.
// Nothing here is global: Setup returns a *Telemetry that main injects, so every test builds its own.
package telemetry

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"sync"

	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracegrpc"
	"go.opentelemetry.io/otel/exporters/otlp/otlptrace/otlptracehttp"
	"go.opentelemetry.io/otel/propagation"
	"go.opentelemetry.io/otel/sdk/resource"
	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/trace"
	"go.opentelemetry.io/otel/trace/noop"
)

// DefaultSampleRatio is the share of root traces sampled when OTEL_TRACES_SAMPLER is not set. One in
// a hundred keeps a busy service's exporter, collector and Jaeger storage cheap while every
// operation is still represented within seconds; parent-based, so a client that sends a sampled
// traceparent always gets its whole trace.
const DefaultSampleRatio = 0.01

// Config says how to build Telemetry.
type Config struct {
	ServiceName string // service.name unless OTEL_SERVICE_NAME says otherwise; default "pubsub"
	// Replica names this process among the replicas of one service (the Redis engine's replica
	// id); empty for a single process. When set, every log record carries it as "replica" and
	// every span's resource as service.instance.id, so that a trace running through several
	// replicas says which one recorded each span, and its logs can be found from it.
	Replica   string
	Build     BuildInfo
	Labels    Labels
	LogLevel  slog.Level
	LogFormat string    // auto, text or json
	LogOutput io.Writer // where logs go; auto picks text when this is a terminal
	// DeliverySpans caps the delivery spans recorded per sampled publish.
	DeliverySpans int
	// Getenv reads OTEL_* variables; os.Getenv in production.
	Getenv func(string) string

	// For tests: when SpanProcessor is set, it replaces the OTLP exporter and tracing is on.
	SpanProcessor sdktrace.SpanProcessor
	Sampler       sdktrace.Sampler // overrides the sampler from the environment
}

// Telemetry is the service's tracer, propagator, metrics and logger. Safe for concurrent use.
type Telemetry struct {
	Tracer     trace.Tracer
	Propagator propagation.TextMapPropagator
	Metrics    *Metrics
	Logger     *slog.Logger
	// Refusals logs client errors and refusals at a bounded rate (10 a second, bursts of 20).
	Refusals *RefusalLog

	tracing       bool
	deliverySpans int32
	provider      *sdktrace.TracerProvider
	backplaneOnce sync.Once
	backplane     *Backplane
}

// Setup builds Telemetry from cfg and the standard OTEL_* variables. With no OTLP endpoint (or
// OTEL_SDK_DISABLED=true, or OTEL_TRACES_EXPORTER=none) tracing is off: the tracer is a no-op and
// costs nothing.
func Setup(ctx context.Context, cfg Config) (*Telemetry, error) {
	if cfg.Getenv == nil {
		cfg.Getenv = func(string) string { return "" }
	}
	if cfg.ServiceName == "" {
		cfg.ServiceName = "pubsub"
	}
	logger, err := NewLogger(cfg.LogOutput, cfg.LogFormat, cfg.LogLevel)
	if err != nil {
		return nil, err
	}
	if cfg.Replica != "" {
		logger = logger.With("replica", cfg.Replica)
	}
	t := &Telemetry{
		Propagator:    propagation.NewCompositeTextMapPropagator(propagation.TraceContext{}, propagation.Baggage{}),
		Metrics:       NewMetrics(cfg.Build, cfg.Labels),
		Logger:        logger,
		Refusals:      NewRefusalLog(logger, 10, 20),
		deliverySpans: int32(max(cfg.DeliverySpans, 0)),
		Tracer:        noop.NewTracerProvider().Tracer("pubsub"),
	}
	processor := cfg.SpanProcessor
	if processor == nil && tracingWanted(cfg.Getenv) {
		exp, err := newExporter(ctx, cfg.Getenv)
		if err != nil {
			return nil, err
		}
		processor = sdktrace.NewBatchSpanProcessor(exp)
	}
	if processor == nil {
		return t, nil
	}
	attrs := []attribute.KeyValue{attribute.String("service.name", cfg.ServiceName),
		attribute.String("service.version", cfg.Build.Version)}
	if cfg.Replica != "" {
		attrs = append(attrs, attribute.String("service.instance.id", cfg.Replica))
	}
	// WithFromEnv comes after, so OTEL_RESOURCE_ATTRIBUTES and OTEL_SERVICE_NAME still win.
	res, err := resource.New(ctx, resource.WithAttributes(attrs...),
		resource.WithFromEnv(), resource.WithTelemetrySDK(), resource.WithHost())
	if err != nil && !errors.Is(err, resource.ErrPartialResource) {
		return nil, fmt.Errorf("telemetry: resource: %w", err)
	}
	opts := []sdktrace.TracerProviderOption{sdktrace.WithResource(res), sdktrace.WithSpanProcessor(processor)}
	switch {
	case cfg.Sampler != nil:
		opts = append(opts, sdktrace.WithSampler(cfg.Sampler))
	case cfg.Getenv("OTEL_TRACES_SAMPLER") == "":
		opts = append(opts, sdktrace.WithSampler(sdktrace.ParentBased(sdktrace.TraceIDRatioBased(DefaultSampleRatio))))
	}
	// Otherwise the SDK reads OTEL_TRACES_SAMPLER and OTEL_TRACES_SAMPLER_ARG itself.
	t.provider = sdktrace.NewTracerProvider(opts...)
	t.Tracer = t.provider.Tracer("github.com/pubsubd/pubsub")
	t.tracing = true
	return t, nil
}

func tracingWanted(getenv func(string) string) bool {
	if b, _ := strconv.ParseBool(getenv("OTEL_SDK_DISABLED")); b {
		return false
	}
	if strings.EqualFold(getenv("OTEL_TRACES_EXPORTER"), "none") {
		return false
	}
	return getenv("OTEL_EXPORTER_OTLP_ENDPOINT") != "" || getenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") != ""
}

// newExporter picks gRPC or HTTP by OTEL_EXPORTER_OTLP(_TRACES)_PROTOCOL; both exporters read the
// endpoint, headers, timeout and TLS settings from the OTEL_* variables themselves.
func newExporter(ctx context.Context, getenv func(string) string) (sdktrace.SpanExporter, error) {
	proto := getenv("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
	if proto == "" {
		proto = getenv("OTEL_EXPORTER_OTLP_PROTOCOL")
	}
	switch proto {
	case "grpc":
		return otlptracegrpc.New(ctx)
	case "", "http/protobuf":
		return otlptracehttp.New(ctx)
	}
	return nil, fmt.Errorf("OTEL_EXPORTER_OTLP_PROTOCOL=%q: accepted values are grpc, http/protobuf", proto)
}

// TracingEnabled reports whether spans can be recorded at all.
func (t *Telemetry) TracingEnabled() bool { return t.tracing }

// Shutdown flushes spans still buffered; the caller bounds it with ctx.
func (t *Telemetry) Shutdown(ctx context.Context) error {
	if t.provider == nil {
		return nil
	}
	return t.provider.Shutdown(ctx)
}
