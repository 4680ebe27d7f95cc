package schemacheck

import (
	"bytes"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"
)

const (
	rulesPath     = "../monitoring/pubsub-rules.yaml"
	rulesTestPath = "../monitoring/pubsub-rules.test.yaml"
	generatedPath = "../monitoring/prometheusrule.yaml"
	contractPath  = "../../telemetry/metrics.md"
	readmePath    = "../../README.md"
	// runbookBase is where the README's runbook sections are published;
	// GitHub makes a heading's anchor its lower-cased text.
	runbookBase = "https://github.com/pubsubd/pubsub/blob/main/README.md#"
)

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// The committed PrometheusRule must be what the generator makes from the
// plain rules file today: one source, no hand-edited copy drifting away.
func TestPrometheusRuleIsUpToDate(t *testing.T) {
	want, err := GeneratePrometheusRule(readFile(t, rulesPath), "pubsub", "pubsub-rules.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if got := readFile(t, generatedPath); !bytes.Equal(got, want) {
		t.Fatalf("%s is stale: run `go generate ./...` in k8s/schemacheck and commit the result", generatedPath)
	}
}

func TestGeneratePrometheusRuleRejects(t *testing.T) {
	tests := []struct {
		name, src, want string
	}{
		{"misspelt key", "groups:\n  - name: g\n    rules:\n      - alert: A\n        expr: up == 0\n        annotation: {}\n", `unknown field "groups[0].rules[0].annotation"`},
		{"wrong case", "groups:\n  - name: g\n    rules:\n      - Alert: A\n        expr: up == 0\n", `unknown field "groups[0].rules[0].Alert"`},
		{"duplicate key", "groups:\n  - name: g\n    rules:\n      - alert: A\n        expr: up == 0\n        expr: up == 1\n", `key "expr" already set`},
		{"alert and record", "groups:\n  - name: g\n    rules:\n      - alert: A\n        record: r\n        expr: up\n", "set exactly one of alert and record"},
		{"no groups", "groups: []\n", "groups: Required value"},
		{"second document", "groups:\n  - name: g\n    rules:\n      - alert: A\n        expr: up == 0\n---\ngroups: []\n", "single YAML document"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := GeneratePrometheusRule([]byte(tt.src), "x", "x.yaml")
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("got error %v, want one mentioning %q", err, tt.want)
			}
		})
	}
}

// metricContract reads the metric names (and types) the service promises.
func metricContract(t *testing.T) map[string]string {
	t.Helper()
	row := regexp.MustCompile("(?m)^\\| `(pubsub_[a-z0-9_]+)` \\| ([a-z]+)")
	contract := map[string]string{}
	for _, m := range row.FindAllStringSubmatch(string(readFile(t, contractPath)), -1) {
		contract[m[1]] = m[2]
	}
	if len(contract) < 10 {
		t.Fatalf("read only %d metrics from %s: has its table changed shape?", len(contract), contractPath)
	}
	return contract
}

// knownMetric reports whether name is a series the service exports: a
// contract metric (with its histogram suffixes), a Go runtime or process
// collector metric, or Prometheus's own up.
func knownMetric(contract map[string]string, name string) bool {
	if name == "up" || strings.HasPrefix(name, "go_") || strings.HasPrefix(name, "process_") {
		return true
	}
	if _, ok := contract[name]; ok {
		return true
	}
	for _, suffix := range []string{"_bucket", "_sum", "_count"} {
		if base, ok := strings.CutSuffix(name, suffix); ok && contract[base] == "histogram" {
			return true
		}
	}
	return false
}

var (
	selectorRE = regexp.MustCompile(`([a-zA-Z_:][a-zA-Z0-9_:]*)\s*\{([^}]*)\}`)
	metricRE   = regexp.MustCompile(`\b(?:pubsub|go|process)_[a-z0-9_]+\b|\bup\b`)
)

// TestAlertRules holds every alert to what on-call needs and to the metric
// contract: a severity, a summary, a description and a runbook link to the
// README section named after the alert; selectors scoped to job="pubsub"
// (other jobs may export go_* too) on metrics the service really exports.
func TestAlertRules(t *testing.T) {
	spec, err := ParseRules(readFile(t, rulesPath))
	if err != nil {
		t.Fatal(err)
	}
	contract := metricContract(t)
	seen := map[string]bool{}
	for _, g := range spec.Groups {
		for _, r := range g.Rules {
			if r.Alert == "" {
				continue
			}
			if seen[r.Alert] {
				t.Errorf("alert %s is defined twice", r.Alert)
			}
			seen[r.Alert] = true
			if s := r.Labels["severity"]; s != "critical" && s != "warning" {
				t.Errorf("%s: severity %q, want critical or warning", r.Alert, s)
			}
			for _, a := range []string{"summary", "description", "runbook_url"} {
				if strings.TrimSpace(r.Annotations[a]) == "" {
					t.Errorf("%s: no %s annotation", r.Alert, a)
				}
			}
			if want := runbookBase + strings.ToLower(r.Alert); r.Annotations["runbook_url"] != want {
				t.Errorf("%s: runbook_url %q, want %q (the README heading is the alert name)", r.Alert, r.Annotations["runbook_url"], want)
			}
			expr := r.Expr.String()
			selectors := selectorRE.FindAllStringSubmatch(expr, -1)
			for _, s := range selectors {
				if !knownMetric(contract, s[1]) {
					t.Errorf("%s: metric %s is not in %s", r.Alert, s[1], contractPath)
				}
				if !strings.Contains(s[2], `job="pubsub"`) {
					t.Errorf("%s: selector %s{%s} must match job=\"pubsub\"", r.Alert, s[1], s[2])
				}
			}
			if n := len(metricRE.FindAllString(expr, -1)); n != len(selectors) {
				t.Errorf("%s: %d metric names but %d {selectors}: write every metric as name{job=\"pubsub\",...}", r.Alert, n, len(selectors))
			}
		}
	}
	if len(seen) == 0 {
		t.Fatal("no alerts found")
	}
}

// Every alert needs a promtool unit test in which it fires and one in
// which it stays silent; promtool itself cannot tell an untested alert.
func TestEveryAlertIsUnitTested(t *testing.T) {
	var tests struct {
		RuleFiles []string `json:"rule_files"`
		Tests     []struct {
			AlertRuleTest []struct {
				Alertname string `json:"alertname"`
				ExpAlerts []any  `json:"exp_alerts"`
			} `json:"alert_rule_test"`
		} `json:"tests"`
	}
	if err := yaml.Unmarshal(readFile(t, rulesTestPath), &tests); err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(tests.RuleFiles, "pubsub-rules.yaml") {
		t.Fatalf("%s does not load pubsub-rules.yaml", rulesTestPath)
	}
	fires, silent := map[string]bool{}, map[string]bool{}
	for _, tc := range tests.Tests {
		for _, a := range tc.AlertRuleTest {
			if len(a.ExpAlerts) > 0 {
				fires[a.Alertname] = true
			} else {
				silent[a.Alertname] = true
			}
		}
	}
	spec, err := ParseRules(readFile(t, rulesPath))
	if err != nil {
		t.Fatal(err)
	}
	for _, g := range spec.Groups {
		for _, r := range g.Rules {
			if r.Alert == "" {
				continue
			}
			if !fires[r.Alert] {
				t.Errorf("%s: no promtool test where it fires", r.Alert)
			}
			if !silent[r.Alert] {
				t.Errorf("%s: no promtool test where it stays silent", r.Alert)
			}
		}
	}
}

// Every alert's runbook_url points at a README heading named after the
// alert: the heading must exist, or on-call lands at the top of the page.
func TestAlertRunbooksExist(t *testing.T) {
	spec, err := ParseRules(readFile(t, rulesPath))
	if err != nil {
		t.Fatal(err)
	}
	headings := map[string]bool{}
	for line := range strings.SplitSeq(string(readFile(t, readmePath)), "\n") {
		if h, ok := strings.CutPrefix(line, "### "); ok {
			headings[strings.ToLower(strings.TrimSpace(h))] = true
		}
	}
	for _, g := range spec.Groups {
		for _, r := range g.Rules {
			if r.Alert != "" && !headings[strings.ToLower(r.Alert)] {
				t.Errorf("%s: no \"### %s\" runbook heading in %s", r.Alert, r.Alert, readmePath)
			}
		}
	}
}
