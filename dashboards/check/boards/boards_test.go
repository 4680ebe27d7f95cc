package boards_test

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
	"github.com/grafana/grafana-foundation-sdk/go/prometheus"
	"github.com/prometheus/prometheus/promql/parser"
	"gopkg.in/yaml.v3"

	"github.com/pubsubd/pubsub/dashboards/check/boards"
	"github.com/pubsubd/pubsub/dashboards/check/lint"
)

// dashboardsDir is dashboards/, relative to this package's directory.
const dashboardsDir = "../.."

type rendered struct {
	boards.Board
	dash dashboard.Dashboard
	json []byte
}

func renderAll(t *testing.T) []rendered {
	t.Helper()
	var out []rendered
	for _, b := range boards.All() {
		d, err := b.Build()
		if err != nil {
			t.Fatalf("%s: %v", b.File, err)
		}
		j, err := boards.Render(d)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, rendered{Board: b, dash: d, json: j})
	}
	return out
}

// The JSON Grafana loads is the JSON these definitions render: nobody edited one without the other.
func TestCommittedJSONIsRendered(t *testing.T) {
	for _, r := range renderAll(t) {
		got, err := os.ReadFile(filepath.Join(dashboardsDir, r.File))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, r.json) {
			t.Errorf("%s differs from what package boards renders: run `go run ./cmd/dashcheck -write` in dashboards/check", r.File)
		}
	}
}

// Every selector of every panel carries the job, namespace and pod matchers, so no panel shows
// another service's series or ignores the variables; the variable queries carry what precedes them.
func TestQueriesFollowVariables(t *testing.T) {
	for _, r := range renderAll(t) {
		exprs, err := lint.DashboardExprs(r.File, r.json)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range exprs {
			want := []string{"job", "namespace", "pod"}
			switch {
			case strings.Contains(e.Where, "(namespace)"):
				want = []string{"job"}
			case strings.Contains(e.Where, "(pod)"):
				want = []string{"job", "namespace"}
			}
			ast, err := lint.Parse(e)
			if err != nil {
				t.Fatalf("%s: %s: %v", e.File, e.Where, err)
			}
			parser.Inspect(ast, func(n parser.Node, _ []parser.Node) error {
				vs, ok := n.(*parser.VectorSelector)
				if !ok {
					return nil
				}
				have := map[string]bool{}
				for _, m := range vs.LabelMatchers {
					have[m.Name] = true
				}
				for _, l := range want {
					if !have[l] {
						t.Errorf("%s: %s: selector %s lacks a %s matcher", e.File, e.Where, vs, l)
					}
				}
				return nil
			})
		}
	}
}

var latencyBucket = regexp.MustCompile(`_seconds_bucket\b`)

// Latency panels fetch exemplars, which is what links their points to traces in Jaeger; and every
// panel and target reads the Prometheus datasource the dashboard's variable selects.
func TestTargetsUseDatasourceVariableAndLatencyExemplars(t *testing.T) {
	latencyTargets := 0
	for _, r := range renderAll(t) {
		for _, p := range r.dash.Panels {
			if p.Panel == nil {
				continue
			}
			title := r.File + ": " + *p.Panel.Title
			if ds := p.Panel.Datasource; ds == nil || *ds.Uid != "${datasource}" {
				t.Errorf("%s: panel datasource is not ${datasource}", title)
			}
			for _, tg := range p.Panel.Targets {
				q, ok := tg.(prometheus.Dataquery)
				if !ok {
					t.Fatalf("%s: target %T is not a Prometheus query", title, tg)
				}
				if q.Datasource == nil || *q.Datasource.Uid != "${datasource}" {
					t.Errorf("%s: target datasource is not ${datasource}", title)
				}
				wantExemplar := latencyBucket.MatchString(q.Expr) && (q.Format == nil || *q.Format != prometheus.PromQueryFormatHeatmap)
				if wantExemplar {
					latencyTargets++
				}
				if gotExemplar := q.Exemplar != nil && *q.Exemplar; gotExemplar != wantExemplar {
					t.Errorf("%s: %s: exemplar = %v, want %v", title, q.Expr, gotExemplar, wantExemplar)
				}
			}
		}
	}
	if latencyTargets == 0 {
		t.Error("no latency targets found")
	}
}

// Panels fit Grafana's 24-column grid and none covers another.
func TestPanelsDoNotOverlap(t *testing.T) {
	for _, r := range renderAll(t) {
		var seen []dashboard.GridPos
		for _, p := range r.dash.Panels {
			var g *dashboard.GridPos
			switch {
			case p.Panel != nil:
				g = p.Panel.GridPos
			case p.RowPanel != nil:
				g = p.RowPanel.GridPos
			}
			if g == nil || g.X+g.W > 24 || g.W == 0 || g.H == 0 {
				t.Fatalf("%s: panel %d has grid position %+v", r.File, len(seen), g)
			}
			for i, o := range seen {
				if g.X < o.X+o.W && o.X < g.X+g.W && g.Y < o.Y+o.H && o.Y < g.Y+g.H {
					t.Errorf("%s: panel %d %+v overlaps panel %d %+v", r.File, len(seen), *g, i, o)
				}
			}
			seen = append(seen, *g)
		}
	}
}

// The provisioned Prometheus datasource is the one the boards select, and its exemplars link to
// the provisioned Jaeger datasource by uid.
func TestProvisionedDatasourcesLinkExemplarsToJaeger(t *testing.T) {
	raw, err := os.ReadFile(filepath.Join(dashboardsDir, "provisioning/datasources/pubsub.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var file struct {
		Datasources []struct {
			Name, Type, UID string
			IsDefault       bool `yaml:"isDefault"`
			JSONData        struct {
				ExemplarTraceIDDestinations []struct {
					Name          string
					DatasourceUID string `yaml:"datasourceUid"`
				} `yaml:"exemplarTraceIdDestinations"`
			} `yaml:"jsonData"`
		}
	}
	if err := yaml.Unmarshal(raw, &file); err != nil {
		t.Fatal(err)
	}
	types := map[string]string{}
	linked := false
	for _, ds := range file.Datasources {
		types[ds.UID] = ds.Type
		if ds.IsDefault {
			t.Errorf("%s is marked default: it would clash with the default datasource of an existing Grafana", ds.Name)
		}
		if ds.UID == boards.PrometheusUID {
			if ds.Name != boards.PrometheusName {
				t.Errorf("Prometheus datasource is named %q, the boards select %q", ds.Name, boards.PrometheusName)
			}
			for _, d := range ds.JSONData.ExemplarTraceIDDestinations {
				linked = linked || (d.DatasourceUID == boards.JaegerUID && d.Name != "")
			}
		}
	}
	if types[boards.PrometheusUID] != "prometheus" || types[boards.JaegerUID] != "jaeger" {
		t.Errorf("provisioned datasource types by uid: %v", types)
	}
	if !linked {
		t.Errorf("the Prometheus datasource has no exemplarTraceIdDestinations entry for uid %s", boards.JaegerUID)
	}
}

// `kubectl kustomize dashboards` yields, for each board, a ConfigMap with a stable name and the
// label the Grafana sidecar watches, holding the committed JSON byte for byte.
func TestKustomizeRendersSidecarConfigMaps(t *testing.T) {
	kubectl, err := exec.LookPath("kubectl")
	if err != nil {
		t.Skip("kubectl not on PATH: cannot render dashboards/kustomization.yaml")
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, kubectl, "kustomize", dashboardsDir).Output()
	if err != nil {
		t.Fatalf("kubectl kustomize: %v", err)
	}
	type configMap struct {
		Kind     string
		Metadata struct {
			Name   string
			Labels map[string]string
		}
		Data map[string]string
	}
	byName := map[string]configMap{}
	dec := yaml.NewDecoder(bytes.NewReader(out))
	for {
		var cm configMap
		if err := dec.Decode(&cm); err != nil {
			break
		}
		byName[cm.Metadata.Name] = cm
	}
	for _, b := range boards.All() {
		name := "pubsub-dashboard-" + strings.TrimSuffix(strings.TrimPrefix(b.File, "pubsub-"), ".json")
		cm, ok := byName[name]
		if !ok || cm.Kind != "ConfigMap" {
			t.Errorf("no ConfigMap %s in the kustomize output", name)
			continue
		}
		if cm.Metadata.Labels["grafana_dashboard"] != "1" {
			t.Errorf("%s lacks the label grafana_dashboard: \"1\"", name)
		}
		want, err := os.ReadFile(filepath.Join(dashboardsDir, b.File))
		if err != nil {
			t.Fatal(err)
		}
		if cm.Data[b.File] != string(want) {
			t.Errorf("%s does not hold %s as committed", name, b.File)
		}
	}
	if ds := byName["pubsub-grafana-datasources"]; ds.Metadata.Labels["grafana_datasource"] != "1" {
		t.Error("no ConfigMap pubsub-grafana-datasources labelled grafana_datasource: \"1\"")
	}
}
