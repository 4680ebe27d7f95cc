// Command promrule writes the Prometheus Operator's PrometheusRule from the
// plain Prometheus rules file, so both carry the same rules and the plain
// file stays the one to edit. Run it through `go generate ./...` in
// k8s/schemacheck; a test fails when its committed output is stale.
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"

	"github.com/pubsubd/pubsub/k8s/schemacheck"
)

func main() {
	in := flag.String("in", "../monitoring/pubsub-rules.yaml", "plain Prometheus rules file (the source)")
	out := flag.String("out", "../monitoring/prometheusrule.yaml", "PrometheusRule manifest to write")
	name := flag.String("name", "pubsub", "metadata.name of the PrometheusRule")
	flag.Parse()
	if err := run(*in, *out, *name); err != nil {
		fmt.Fprintln(os.Stderr, "promrule:", err)
		os.Exit(1)
	}
}

func run(in, out, name string) error {
	src, err := os.ReadFile(in)
	if err != nil {
		return err
	}
	generated, err := schemacheck.GeneratePrometheusRule(src, name, filepath.Base(in))
	if err != nil {
		return err
	}
	return os.WriteFile(out, generated, 0o644)
}
