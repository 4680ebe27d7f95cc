// Command dashcheck renders the pubsub Grafana dashboards and checks them and the Prometheus alert
// rules:
//
//  1. drift: each committed dashboard JSON equals what package boards renders (-write rewrites them,
//     -drift=false skips this to check JSON files that are not rendered by package boards);
//  2. schema: each dashboard decodes strictly with the Grafana Foundation SDK;
//  3. PromQL: every expression of the dashboards and of the rules file parses;
//  4. metrics: every metric those expressions use is in a scrape of the running service's /metrics
//     (only with -metrics-url or PUBSUB_METRICS_URL, a URL or a file path).
//
// Run it from dashboards/check. It prints each problem and exits 1 if there is any.
package main

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/pubsubd/pubsub/dashboards/check/boards"
	"github.com/pubsubd/pubsub/dashboards/check/lint"
)

const defaultRules = "../../k8s/monitoring/pubsub-rules.yaml"

func main() {
	if err := run(context.Background(), os.Args[1:], os.Getenv, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "dashcheck:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, getenv func(string) string, stdout io.Writer) error {
	fl := flag.NewFlagSet("dashcheck", flag.ContinueOnError)
	dir := fl.String("dashboards", "..", "directory holding the dashboard JSON files")
	rules := fl.String("rules", defaultRules, "Prometheus rule file to check too; the default is skipped with a note when absent, an explicit path must exist")
	metricsURL := fl.String("metrics-url", getenv("PUBSUB_METRICS_URL"), "scrape of the service's /metrics: http(s) URL or file path (default $PUBSUB_METRICS_URL); empty skips the metric check")
	timeout := fl.Duration("timeout", 10*time.Second, "time limit for fetching -metrics-url")
	write := fl.Bool("write", false, "render the dashboards into -dashboards before checking")
	drift := fl.Bool("drift", true, "report dashboards that differ from what package boards renders (turn off to check other JSON files)")
	if err := fl.Parse(args); err != nil {
		return err
	}
	rulesExplicit := false
	fl.Visit(func(f *flag.Flag) { rulesExplicit = rulesExplicit || f.Name == "rules" })

	var problems []lint.Problem
	report := func(ps []lint.Problem) { problems = append(problems, ps...) }

	if *write || *drift {
		ps, err := renderAll(*dir, *write)
		if err != nil {
			return err
		}
		report(ps)
	}

	dashboards, err := lint.ReadDashboards(*dir)
	if err != nil {
		return err
	}
	if len(dashboards) == 0 {
		return fmt.Errorf("no *.json dashboards in %s", *dir)
	}
	report(lint.CheckSchema(dashboards))

	ruleFiles := map[string][]byte{}
	if *rules != "" {
		switch b, err := os.ReadFile(*rules); {
		case err == nil:
			ruleFiles[*rules] = b
		case errors.Is(err, fs.ErrNotExist) && !rulesExplicit:
			fmt.Fprintf(stdout, "note: %s not found; rule expressions not checked\n", *rules)
		default:
			return err
		}
	}
	exprs, recorded, ps := lint.CollectExprs(dashboards, ruleFiles)
	report(ps)
	parsed, ps := lint.CheckExprs(exprs)
	report(ps)
	fmt.Fprintf(stdout, "checked %d dashboards, %d rule files, %d PromQL expressions\n", len(dashboards), len(ruleFiles), len(exprs))

	if *metricsURL == "" {
		fmt.Fprintln(stdout, "note: no -metrics-url / PUBSUB_METRICS_URL; metric names not checked against the service")
	} else {
		exported, err := lint.LoadScrape(ctx, *metricsURL, *timeout)
		if err != nil {
			return fmt.Errorf("scrape: %w", err)
		}
		report(lint.CheckMetrics(parsed, exported, recorded))
		fmt.Fprintf(stdout, "compared metric names with %s (%d series names)\n", *metricsURL, len(exported))
	}

	for _, p := range problems {
		fmt.Fprintln(stdout, "FAIL", p)
	}
	if len(problems) > 0 {
		return fmt.Errorf("%d problems", len(problems))
	}
	fmt.Fprintln(stdout, "ok")
	return nil
}

// renderAll renders every board; with write it replaces the files, otherwise it reports each file
// that differs from its rendering.
func renderAll(dir string, write bool) ([]lint.Problem, error) {
	var out []lint.Problem
	for _, b := range boards.All() {
		d, err := b.Build()
		if err != nil {
			return nil, fmt.Errorf("build %s: %w", b.File, err)
		}
		want, err := boards.Render(d)
		if err != nil {
			return nil, err
		}
		path := filepath.Join(dir, b.File)
		if write {
			if err := os.WriteFile(path, want, 0o644); err != nil {
				return nil, err
			}
			continue
		}
		got, err := os.ReadFile(path)
		if err != nil || !bytes.Equal(got, want) {
			out = append(out, lint.Problem{File: path, Msg: "differs from what package boards renders; run `go run ./cmd/dashcheck -write` in dashboards/check and commit the result"})
		}
	}
	return out, nil
}
