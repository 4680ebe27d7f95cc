// Package telemetrytest reads metrics back in tests: the one place that knows how to find a series in
// a registry and what its value is, for every package whose tests check the metrics it records.
package telemetrytest

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// Series returns the one series of family name whose labels include labels; nil when there is none,
// and an error when several match (the test named too few labels) or gathering fails.
func Series(g prometheus.Gatherer, name string, labels map[string]string) (*dto.Metric, error) {
	mfs, err := g.Gather()
	if err != nil {
		return nil, err
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		var found *dto.Metric
		for _, m := range mf.GetMetric() {
			have := Labels(m)
			ok := true
			for k, v := range labels {
				ok = ok && have[k] == v
			}
			if !ok {
				continue
			}
			if found != nil {
				return nil, fmt.Errorf("%s%v matches more than one series", name, labels)
			}
			found = m
		}
		return found, nil
	}
	return nil, nil
}

// Labels returns a series' labels as a map.
func Labels(m *dto.Metric) map[string]string {
	out := make(map[string]string, len(m.GetLabel()))
	for _, lp := range m.GetLabel() {
		out[lp.GetName()] = lp.GetValue()
	}
	return out
}

// Value is a counter's or gauge's value or a histogram's sample count; 0 for a nil series, -1 for
// any other kind.
func Value(m *dto.Metric) float64 {
	switch {
	case m == nil:
		return 0
	case m.Counter != nil:
		return m.Counter.GetValue()
	case m.Gauge != nil:
		return m.Gauge.GetValue()
	case m.Histogram != nil:
		return float64(m.Histogram.GetSampleCount())
	}
	return -1
}
