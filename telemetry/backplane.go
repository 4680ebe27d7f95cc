package telemetry

import (
	"context"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"go.opentelemetry.io/otel/trace"
)

// Redis operations, the values of the operation label of pubsub_redis_*: the engine's scripts and
// the other calls it makes. Any other name is counted as RedisOpOther.
var redisOps = []string{"create", "publish", "read", "delete", "rotate", "claim", "release", "takeover",
	"exists", "ping", "stats", "heartbeat", "probe", RedisOpOther}

// RedisOpOther is the operation label of a Redis call not in the list above.
const RedisOpOther = "other"

var (
	attrDBSystem = attribute.Key("db.system.name")
	attrDBOp     = attribute.Key("db.operation.name")
)

// Backplane turns what the Redis engine reports (its Observer) into metrics and spans. The engine
// declares the interface with standard types only, so this package never imports it. The metrics
// are registered in every mode, at zero with the memory engine, so that dashboards, alerts and
// promtool see them. Safe for concurrent use; its children are resolved once, so a report costs an
// atomic add.
type Backplane struct {
	tel *Telemetry

	callDur    map[string]prometheus.Observer
	callErrs   map[string]prometheus.Counter
	up         prometheus.Gauge
	lag        prometheus.Histogram
	reconnects prometheus.Counter
	resub      prometheus.Histogram
	repairsOK  prometheus.Counter
	repairsBad prometheus.Counter
	gaps       prometheus.Counter
	overflows  prometheus.Counter
	probes     prometheus.Counter
	anomalies  prometheus.Counter
	replicas   prometheus.Gauge
}

func newBackplane(t *Telemetry, reg prometheus.Registerer) *Backplane {
	dur := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "pubsub_redis_call_duration_seconds", Help: "Duration of the Redis engine's calls to Redis, by operation (a script's name, or ping, stats, heartbeat, ...).",
		Buckets: latencyBuckets, NativeHistogramBucketFactor: 1.1, NativeHistogramMaxBucketNumber: 160,
		NativeHistogramMinResetDuration: time.Hour,
	}, []string{"operation"})
	errs := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "pubsub_redis_errors_total", Help: "Redis calls of the Redis engine that failed, by operation.",
	}, []string{"operation"})
	repairs := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "pubsub_backplane_repairs_total", Help: "Ranges of missing events read back from a topic's history: ok when every event was there, failed when some were announced as a gap.",
	}, []string{"result"})
	b := &Backplane{tel: t, callDur: map[string]prometheus.Observer{}, callErrs: map[string]prometheus.Counter{},
		up: prometheus.NewGauge(prometheus.GaugeOpts{Name: "pubsub_backplane_up",
			Help: "1 while the Redis engine reaches Redis (its pub/sub connection is up), 0 while not. Exported by the Redis engine only."}),
		lag: newHistogram("pubsub_backplane_receive_lag_seconds",
			"Time from an event's publish on its replica to its receipt on this one, through Redis.", latencyBuckets),
		reconnects: prometheus.NewCounter(prometheus.CounterOpts{Name: "pubsub_backplane_reconnects_total",
			Help: "New pub/sub connections to Redis after one was lost."}),
		resub: newHistogram("pubsub_backplane_resubscribe_duration_seconds",
			"Time to resubscribe every followed topic after a reconnect.", latencyBuckets),
		repairsOK:  repairs.WithLabelValues("ok"),
		repairsBad: repairs.WithLabelValues("failed"),
		gaps: prometheus.NewCounter(prometheus.CounterOpts{Name: "pubsub_backplane_gaps_total",
			Help: "Gap notices sent to a topic's local subscribers: events that could not be delivered or repaired."}),
		overflows: prometheus.NewCounter(prometheus.CounterOpts{Name: "pubsub_backplane_worker_overflows_total",
			Help: "Messages the pub/sub callback could not hand to their topic's worker (the topic is then repaired from its history)."}),
		probes: prometheus.NewCounter(prometheus.CounterOpts{Name: "pubsub_backplane_probe_restarts_total",
			Help: "Pub/sub connections replaced because the idle probe got no echo."}),
		anomalies: prometheus.NewCounter(prometheus.CounterOpts{Name: "pubsub_backplane_anomalies_total",
			Help: "Messages the live rule could not explain (a seq already delivered outside a repair), skipped."}),
		replicas: prometheus.NewGauge(prometheus.GaugeOpts{Name: "pubsub_backplane_replicas",
			Help: "Replicas with a fresh heartbeat in Redis at this replica's last look. Exported by the Redis engine only."}),
	}
	for _, op := range redisOps {
		b.callDur[op] = dur.WithLabelValues(op)
		b.callErrs[op] = errs.WithLabelValues(op)
	}
	reg.MustRegister(dur, errs, repairs, b.up, b.lag, b.reconnects, b.resub, b.gaps, b.overflows, b.probes, b.anomalies, b.replicas)
	return b
}

// Backplane returns the Redis engine's observer, registering its metrics on first use: only a
// replica on the Redis engine exports them, so on the in-memory engine the backplane's board stays
// empty and its alerts (PubsubRedisUnreachable on pubsub_backplane_up == 0 among them) stay silent
// instead of reading a constant 0 as "Redis is down".
func (t *Telemetry) Backplane() *Backplane {
	t.backplaneOnce.Do(func() { t.backplane = newBackplane(t, t.Metrics.Registry) })
	return t.backplane
}

// StartCall times a Redis call and, when the caller's trace is sampled, wraps it in a client span
// named after the operation (db.system.name=redis, db.operation.name=op).
func (b *Backplane) StartCall(ctx context.Context, op string) (context.Context, func(error)) {
	dur, ok := b.callDur[op]
	if !ok {
		op, dur = RedisOpOther, b.callDur[RedisOpOther]
	}
	errs := b.callErrs[op]
	var span trace.Span
	if trace.SpanContextFromContext(ctx).IsSampled() {
		ctx, span = b.tel.Tracer.Start(ctx, "redis "+op, trace.WithSpanKind(trace.SpanKindClient),
			trace.WithAttributes(attrDBSystem.String("redis"), attrDBOp.String(op)))
	}
	start := time.Now()
	return ctx, func(err error) {
		dur.Observe(time.Since(start).Seconds())
		if err != nil {
			errs.Inc()
		}
		if span != nil {
			if err != nil {
				span.RecordError(err)
				span.SetStatus(codes.Error, err.Error())
			}
			span.End()
		}
	}
}

// ReceiveLag observes one event's publish-to-receipt time.
func (b *Backplane) ReceiveLag(d time.Duration) { b.lag.Observe(max(d, 0).Seconds()) }

// Reconnected counts a new pub/sub connection.
func (b *Backplane) Reconnected() { b.reconnects.Inc() }

// Resubscribed observes the time a resubscribe took.
func (b *Backplane) Resubscribed(d time.Duration) { b.resub.Observe(d.Seconds()) }

// Repaired counts a repair by result.
func (b *Backplane) Repaired(ok bool) {
	if ok {
		b.repairsOK.Inc()
	} else {
		b.repairsBad.Inc()
	}
}

// GapAnnounced counts a gap notice.
func (b *Backplane) GapAnnounced() { b.gaps.Inc() }

// WorkerOverflow counts a message a topic's worker could not take.
func (b *Backplane) WorkerOverflow() { b.overflows.Inc() }

// ProbeRestart counts a connection replaced by the probe.
func (b *Backplane) ProbeRestart() { b.probes.Inc() }

// Anomaly counts a message the live rule skipped.
func (b *Backplane) Anomaly() { b.anomalies.Inc() }

// Up sets pubsub_backplane_up.
func (b *Backplane) Up(up bool) {
	if up {
		b.up.Set(1)
	} else {
		b.up.Set(0)
	}
}

// Replicas sets pubsub_backplane_replicas.
func (b *Backplane) Replicas(n int) { b.replicas.Set(float64(n)) }
