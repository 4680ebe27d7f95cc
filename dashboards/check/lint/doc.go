// Package lint checks the monitoring artefacts of pubsub: that each Grafana dashboard is accepted
// by Grafana's schema (strict decoding with the Grafana Foundation SDK), that every PromQL
// expression of the dashboards and of the Prometheus rule files parses, and that every metric name
// those expressions use is exported by the service (compared against a /metrics scrape).
//
// Each check returns Problems rather than stopping at the first one, so a CI log lists everything
// to fix in one run.
package lint

import "fmt"

// Problem is one finding of a check: the file, where in it, and what is wrong.
type Problem struct {
	File  string
	Where string
	Msg   string
}

func (p Problem) String() string {
	if p.Where == "" {
		return fmt.Sprintf("%s: %s", p.File, p.Msg)
	}
	return fmt.Sprintf("%s: %s: %s", p.File, p.Where, p.Msg)
}
