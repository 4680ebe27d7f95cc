package telemetry_test

import (
	"context"
	"errors"
	"testing"
	"time"

	sdktrace "go.opentelemetry.io/otel/sdk/trace"
	"go.opentelemetry.io/otel/sdk/trace/tracetest"

	"github.com/pubsubd/pubsub/telemetry"
)

// Every backplane metric exists from the first scrape, in every mode, under the names the
// dashboards and alerts use; the reports move them.
func TestBackplaneMetrics(t *testing.T) {
	tel := setup(t, telemetry.Config{})
	b := tel.Backplane()
	_, end := b.StartCall(context.Background(), "publish")
	end(nil)
	_, end = b.StartCall(context.Background(), "no such op")
	end(errors.New("down"))
	b.ReceiveLag(time.Millisecond)
	b.Reconnected()
	b.Resubscribed(time.Millisecond)
	b.Repaired(true)
	b.Repaired(false)
	b.GapAnnounced()
	b.WorkerOverflow()
	b.ProbeRestart()
	b.Anomaly()
	b.Up(true)
	b.Replicas(3)
	fams, err := tel.Metrics.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	for _, f := range fams {
		for _, m := range f.GetMetric() {
			v := m.GetCounter().GetValue() + m.GetGauge().GetValue() + float64(m.GetHistogram().GetSampleCount())
			key := f.GetName()
			for _, l := range m.GetLabel() {
				key += "," + l.GetName() + "=" + l.GetValue()
			}
			got[key] = v
		}
	}
	for key, want := range map[string]float64{
		"pubsub_redis_call_duration_seconds,operation=publish": 1,
		"pubsub_redis_call_duration_seconds,operation=other":   1,
		"pubsub_redis_errors_total,operation=other":            1,
		"pubsub_redis_errors_total,operation=read":             0,
		"pubsub_backplane_up":                                  1,
		"pubsub_backplane_receive_lag_seconds":                 1,
		"pubsub_backplane_reconnects_total":                    1,
		"pubsub_backplane_resubscribe_duration_seconds":        1,
		"pubsub_backplane_repairs_total,result=ok":             1,
		"pubsub_backplane_repairs_total,result=failed":         1,
		"pubsub_backplane_gaps_total":                          1,
		"pubsub_backplane_worker_overflows_total":              1,
		"pubsub_backplane_probe_restarts_total":                1,
		"pubsub_backplane_anomalies_total":                     1,
		"pubsub_backplane_replicas":                            3,
	} {
		if v, ok := got[key]; !ok || v != want {
			t.Errorf("%s = %v (present %v), want %v", key, v, ok, want)
		}
	}
}

// A Redis call inside a sampled trace gets a client span naming the store and the script.
func TestBackplaneSpans(t *testing.T) {
	rec := tracetest.NewSpanRecorder()
	tel := setup(t, telemetry.Config{SpanProcessor: rec, Sampler: sdktrace.AlwaysSample()})
	ctx, parent := tel.Tracer.Start(context.Background(), "pubsub.publish")
	_, end := tel.Backplane().StartCall(ctx, "publish")
	end(nil)
	parent.End()
	var found bool
	for _, s := range rec.Ended() {
		if s.Name() != "redis publish" {
			continue
		}
		found = true
		attrs := map[string]string{}
		for _, a := range s.Attributes() {
			attrs[string(a.Key)] = a.Value.String()
		}
		if attrs["db.system.name"] != "redis" || attrs["db.operation.name"] != "publish" || s.Parent().SpanID() != parent.SpanContext().SpanID() {
			t.Fatalf("span attributes %v, parent %v", attrs, s.Parent())
		}
	}
	if !found {
		t.Fatal("no span for the Redis call")
	}
}
