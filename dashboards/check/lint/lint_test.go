package lint

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// The committed artefacts, relative to this package's directory.
const (
	dashboardsDir = "../.."
	rulesFile     = "../../../k8s/monitoring/pubsub-rules.yaml"
)

func readFiles(t *testing.T, paths ...string) map[string][]byte {
	t.Helper()
	out := map[string][]byte{}
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		out[p] = b
	}
	return out
}

func committedDashboards(t *testing.T) map[string][]byte {
	t.Helper()
	d, err := ReadDashboards(dashboardsDir)
	if err != nil {
		t.Fatal(err)
	}
	if len(d) < 3 {
		t.Fatalf("found %d dashboards in %s, want the overview, backpressure and runtime boards", len(d), dashboardsDir)
	}
	return d
}

// committedRules returns the alert rules file when the k8s/monitoring work has written it.
func committedRules(t *testing.T) map[string][]byte {
	t.Helper()
	b, err := os.ReadFile(rulesFile)
	if errors.Is(err, fs.ErrNotExist) {
		t.Logf("%s not present: rule expressions not checked here (cmd/dashcheck checks it once it exists)", rulesFile)
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	return map[string][]byte{rulesFile: b}
}

func requireNoProblems(t *testing.T, ps []Problem) {
	t.Helper()
	for _, p := range ps {
		t.Error(p)
	}
}

// requireProblem fails unless exactly one problem was found and it mentions every word.
func requireProblem(t *testing.T, ps []Problem, words ...string) {
	t.Helper()
	if len(ps) != 1 {
		t.Fatalf("got %d problems, want 1: %v", len(ps), ps)
	}
	for _, w := range words {
		if !strings.Contains(ps[0].String(), w) {
			t.Errorf("problem %q does not mention %q", ps[0], w)
		}
	}
}

// Check 1: the schema.

func TestCommittedDashboardsMatchGrafanaSchema(t *testing.T) {
	requireNoProblems(t, CheckSchema(committedDashboards(t)))
}

func TestSchemaAcceptsSmallDashboard(t *testing.T) {
	requireNoProblems(t, CheckSchema(readFiles(t, "testdata/good.json")))
}

func TestSchemaRejectsMisspeltFields(t *testing.T) {
	for _, tc := range []struct {
		file string
		// field is the misspelt name the report must point at.
		field string
	}{
		{"testdata/misspelt-panel-field.json", "titel"},
		{"testdata/misspelt-target-field.json", "examplar"},
		// Caught by the round trip, not by strict decoding: see DecodeDashboard.
		{"testdata/misspelt-fieldconfig-field.json", "unitt"},
	} {
		t.Run(filepath.Base(tc.file), func(t *testing.T) {
			requireProblem(t, CheckSchema(readFiles(t, tc.file)), tc.file, tc.field)
		})
	}
}

// Check 2: PromQL.

func TestCommittedExpressionsParse(t *testing.T) {
	exprs, _, ps := CollectExprs(committedDashboards(t), committedRules(t))
	requireNoProblems(t, ps)
	parsed, ps := CheckExprs(exprs)
	requireNoProblems(t, ps)
	if len(parsed) < 50 {
		t.Errorf("parsed only %d expressions from the committed dashboards; extraction is missing targets", len(parsed))
	}
}

func TestBadPromQLInDashboardReported(t *testing.T) {
	exprs, _, ps := CollectExprs(readFiles(t, "testdata/bad-promql.json"), nil)
	requireNoProblems(t, ps)
	_, ps = CheckExprs(exprs)
	requireProblem(t, ps, "bad-promql.json", "panels[1].targets[0].expr", "does not parse")
}

func TestBadPromQLInRulesReported(t *testing.T) {
	exprs, _, ps := CollectExprs(nil, readFiles(t, "testdata/bad-rules.yaml"))
	requireNoProblems(t, ps)
	_, ps = CheckExprs(exprs)
	requireProblem(t, ps, "bad-rules.yaml", "FixtureBroken", "does not parse")
}

func TestDashboardExprsFindsTargetsAndVariables(t *testing.T) {
	exprs, err := DashboardExprs("good.json", readFiles(t, "testdata/good.json")["testdata/good.json"])
	if err != nil {
		t.Fatal(err)
	}
	var where []string
	for _, e := range exprs {
		where = append(where, e.Where)
	}
	want := []string{"panels[1].targets[0].expr", "templating.list[1](pod).query"}
	if !slices.Equal(where, want) {
		t.Errorf("found expressions at %v, want %v", where, want)
	}
	if exprs[1].Query != `pubsub_build_info{namespace="$namespace"}` {
		t.Errorf("variable selector = %q", exprs[1].Query)
	}
}

func TestRuleExprsReadsPlainAndOperatorFiles(t *testing.T) {
	for _, file := range []string{"testdata/rules.yaml", "testdata/rules-operator.yaml"} {
		t.Run(filepath.Base(file), func(t *testing.T) {
			exprs, recorded, err := RuleExprs(file, readFiles(t, file)[file])
			if err != nil {
				t.Fatal(err)
			}
			if len(exprs) != 2 || !slices.Equal(recorded, []string{"namespace:pubsub_messages_delivered:rate5m"}) {
				t.Errorf("got %d expressions and recorded %v", len(exprs), recorded)
			}
		})
	}
	if _, _, err := RuleExprs("x.yaml", []byte("apiVersion: v1\nkind: ConfigMap\n")); err == nil {
		t.Error("a file without rule groups was accepted")
	}
}

func TestVariableSelector(t *testing.T) {
	for _, tc := range []struct {
		query, want string
		err         bool
	}{
		{query: `label_values(pubsub_build_info{job="pubsub"}, namespace)`, want: `pubsub_build_info{job="pubsub"}`},
		{query: `label_values(up{a="b", c=~"d"},pod)`, want: `up{a="b", c=~"d"}`},
		{query: `label_values(namespace)`, want: ``},
		{query: `query_result(topk(5, sum by (pod) (go_goroutines)))`, want: `topk(5, sum by (pod) (go_goroutines))`},
		{query: `metrics(pubsub_.*)`, err: true},
		{query: ``, err: true},
	} {
		got, err := variableSelector(tc.query)
		if (err != nil) != tc.err || got != tc.want {
			t.Errorf("variableSelector(%q) = %q, %v; want %q, error %v", tc.query, got, err, tc.want, tc.err)
		}
	}
}

func TestSubstitute(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{`rate(x[$__rate_interval])`, `rate(x[5m])`},
		{`x{pod=~"$pod", ns="${namespace}", a="${a:regex}", b="[[b]]"}`, `x{pod=~"grafana_variable", ns="grafana_variable", a="grafana_variable", b="grafana_variable"}`},
		{`increase(x[$__range]) / $__range_s`, `increase(x[1h]) / 3600`},
		{`sum_over_time(x[$__interval])`, `sum_over_time(x[1m])`},
	} {
		if got := Substitute(tc.in); got != tc.want {
			t.Errorf("Substitute(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestMetricNames(t *testing.T) {
	ast, err := Parse(Expr{Query: `sum(rate(a_total{x="1"}[5m])) / on() group_left {__name__="b"} + count({__name__=~"c.*"}) + absent(d)`})
	if err != nil {
		t.Fatal(err)
	}
	if got, want := MetricNames(ast), []string{"a_total", "b", "d"}; !slices.Equal(got, want) {
		t.Errorf("MetricNames = %v, want %v", got, want)
	}
}

// Check 3: metric names against a scrape.

func parsedExprs(t *testing.T, dashboards, rules map[string][]byte) ([]Parsed, []string) {
	t.Helper()
	exprs, recorded, ps := CollectExprs(dashboards, rules)
	requireNoProblems(t, ps)
	parsed, ps := CheckExprs(exprs)
	requireNoProblems(t, ps)
	return parsed, recorded
}

func loadFixture(t *testing.T, path string) Exported {
	t.Helper()
	exported, err := LoadScrape(context.Background(), path, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	return exported
}

// The contract in telemetry/metrics.md, as the fixture lists it, covers every name the dashboards
// and the alert rules use. TestCommittedMetricsAgainstLiveScrape does the same against the service.
func TestCommittedMetricsAgainstContractFixture(t *testing.T) {
	parsed, recorded := parsedExprs(t, committedDashboards(t), committedRules(t))
	requireNoProblems(t, CheckMetrics(parsed, loadFixture(t, "testdata/metrics.txt"), recorded))
}

// Set PUBSUB_METRICS_URL to a running pubsubd's admin /metrics URL (or a saved scrape file) to
// compare the committed dashboards and rules with what the service really exports.
func TestCommittedMetricsAgainstLiveScrape(t *testing.T) {
	src := os.Getenv("PUBSUB_METRICS_URL")
	if src == "" {
		t.Skip("PUBSUB_METRICS_URL not set: start pubsubd and set it to http://127.0.0.1:9464/metrics to compare the dashboards with a live scrape")
	}
	exported, err := LoadScrape(context.Background(), src, 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	parsed, recorded := parsedExprs(t, committedDashboards(t), committedRules(t))
	requireNoProblems(t, CheckMetrics(parsed, exported, recorded))
}

func TestUnknownMetricReported(t *testing.T) {
	parsed, _ := parsedExprs(t, readFiles(t, "testdata/unknown-metric.json"), nil)
	requireProblem(t, CheckMetrics(parsed, loadFixture(t, "testdata/metrics.txt"), nil),
		"unknown-metric.json", "pubsub_delivery_latency_bucket", "not exported")
}

func TestRecordedAndSyntheticSeriesAreKnown(t *testing.T) {
	parsed, recorded := parsedExprs(t, nil, readFiles(t, "testdata/rules.yaml"))
	requireNoProblems(t, CheckMetrics(parsed, loadFixture(t, "testdata/metrics.txt"), recorded))
	// Without the recording rule, its name is a metric nobody exports.
	requireProblem(t, CheckMetrics(parsed, loadFixture(t, "testdata/metrics.txt"), nil), "namespace:pubsub_messages_delivered:rate5m")
}

func TestParseExposition(t *testing.T) {
	text := loadFixture(t, "testdata/metrics.txt")
	om := loadFixture(t, "testdata/openmetrics.txt")
	for _, tc := range []struct {
		exported Exported
		name     string
		want     bool
	}{
		{text, "pubsub_operations_total", true},
		{text, "pubsub_delivery_latency_seconds_bucket", true},
		{text, "pubsub_delivery_latency_seconds", true}, // native histogram, selected by its bare name
		{text, "go_gc_duration_seconds_count", true},
		{text, "pubsub_operations", false},
		{om, "pubsub_messages_published_total", true}, // OpenMetrics counter family without _total
		{om, "pubsub_delivery_latency_seconds_count", true},
		{om, "go_gc_duration_seconds_sum", true},
		{om, "EOF", false},
	} {
		if tc.exported[tc.name] != tc.want {
			t.Errorf("exported[%q] = %v, want %v", tc.name, !tc.want, tc.want)
		}
	}
	if _, err := ParseExposition(strings.NewReader("")); err == nil {
		t.Error("an empty scrape was accepted")
	}
}
