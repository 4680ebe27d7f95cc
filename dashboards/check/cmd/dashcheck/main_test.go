package main

import (
	"context"
	"strings"
	"testing"
)

func noEnv(string) string { return "" }

func TestRunPassesOnCommittedArtefacts(t *testing.T) {
	var out strings.Builder
	err := run(context.Background(), []string{"-dashboards", "../../..", "-rules", "../../../../k8s/monitoring/pubsub-rules.yaml", "-metrics-url", "../../lint/testdata/metrics.txt"}, noEnv, &out)
	if err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), "compared metric names") {
		t.Errorf("the metric check did not run:\n%s", out.String())
	}
}

func TestRunFailsOnBrokenArtefacts(t *testing.T) {
	var out strings.Builder
	err := run(context.Background(), []string{"-drift=false", "-dashboards", "../../lint/testdata", "-rules", "../../lint/testdata/bad-rules.yaml"},
		func(k string) string {
			if k == "PUBSUB_METRICS_URL" {
				return "../../lint/testdata/metrics.txt"
			}
			return ""
		}, &out)
	if err == nil {
		t.Fatalf("run passed on broken artefacts:\n%s", out.String())
	}
	for _, want := range []string{"'titel'", "'examplar'", "unitt", "unclosed left parenthesis", "FixtureBroken", "pubsub_delivery_latency_bucket"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("output does not report %s:\n%s", want, out.String())
		}
	}
}

// An explicit -rules path that does not exist is an error, not a skipped check.
func TestRunRequiresExplicitRulesFile(t *testing.T) {
	var out strings.Builder
	if err := run(context.Background(), []string{"-dashboards", "../../..", "-rules", "../../lint/testdata/missing.yaml"}, noEnv, &out); err == nil {
		t.Fatal("run passed with a missing explicit rules file")
	}
}
