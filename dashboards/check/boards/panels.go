// Package boards defines the pubsub Grafana dashboards as Go code built with the Grafana Foundation
// SDK. The JSON files under dashboards/ are rendered from these definitions (see cmd/dashcheck
// -write), and a test fails when the committed JSON drifts from what this package renders.
//
// Why code and not hand-edited JSON: the boards share their variables, their datasource
// references, the namespace/pod selector and the exemplar settings of every latency query. In JSON
// that is copy-paste over a couple of thousand lines, where one panel missing the pod matcher or
// `exemplar: true` is invisible in review; here each is one helper, and the SDK builders only accept
// fields its Grafana schema knows.
package boards

import (
	"fmt"

	"github.com/grafana/grafana-foundation-sdk/go/cog"
	"github.com/grafana/grafana-foundation-sdk/go/common"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
	"github.com/grafana/grafana-foundation-sdk/go/prometheus"
	"github.com/grafana/grafana-foundation-sdk/go/stat"
	"github.com/grafana/grafana-foundation-sdk/go/timeseries"
)

// Job is the scrape job of pubsub: k8s/monitoring's ServiceMonitor sets it (and the alert rules
// select it). It keeps go_* and process_* series of other containers in the same pod (a service
// mesh sidecar, say) off the runtime board.
const Job = `job="pubsub"`

// Sel is the label matcher every query carries, so each panel follows the namespace and pod
// variables. namespace and pod are the labels the Prometheus Operator's ServiceMonitor (and
// Prometheus' Kubernetes discovery with the usual relabelling) attach to every scraped series.
// The pod variable's All value is `.*`, which also matches series without a pod label.
const Sel = Job + `, namespace="$namespace", pod=~"$pod"`

// Grid geometry: Grafana's grid is 24 columns wide.
const (
	full    = 24
	half    = 12
	third   = 8
	quarter = 6
	tall    = 8
	short   = 4
)

// The datasources of dashboards/provisioning/datasources/pubsub.yaml (a test keeps them in step).
// The boards select the Prometheus one by default; its exemplars link to the Jaeger one.
const (
	PrometheusUID  = "pubsub-prometheus"
	PrometheusName = "pubsub Prometheus"
	JaegerUID      = "pubsub-jaeger"
)

// promDS refers to the Prometheus datasource chosen by the dashboard's datasource variable.
func promDS() common.DataSourceRef {
	return common.DataSourceRef{Type: cog.ToPtr("prometheus"), Uid: cog.ToPtr("${datasource}")}
}

// query is one PromQL target of a panel.
type query struct {
	expr   string
	legend string
	// exemplar asks Grafana to fetch exemplars with the query: set on every latency (histogram
	// bucket) query so its points link to the trace in Jaeger.
	exemplar bool
	// instant evaluates the query once, at the end of the time range: for totals over $__range,
	// where a series of points would only repeat the same sum over sliding windows.
	instant bool
}

func q(expr, legend string) query { return query{expr: expr, legend: legend} }

// latency is a target over a *_seconds_bucket series; it always asks for exemplars.
func latency(expr, legend string) query { return query{expr: expr, legend: legend, exemplar: true} }

// total is an instant query for a stat that shows one number for the whole time range.
func total(expr, legend string) query { return query{expr: expr, legend: legend, instant: true} }

// target turns a query into an SDK dataquery builder with a stable refId (A, B, ...).
func target(i int, qq query) *prometheus.DataqueryBuilder {
	b := prometheus.NewDataqueryBuilder().
		Datasource(promDS()).
		RefId(string(rune('A' + i))).
		Expr(qq.expr).
		LegendFormat(qq.legend)
	if qq.instant {
		b = b.Instant()
	} else {
		b = b.Range()
	}
	if qq.exemplar {
		b = b.Exemplar(true)
	}
	return b
}

// quantiles returns p50, p90 and p99 targets over a histogram's buckets. Latency histograms ask
// for exemplars; count histograms (fan-out width, queue depth) have none worth linking.
func quantiles(metric string, exemplar bool) []query {
	var out []query
	for _, p := range []struct{ phi, name string }{{"0.5", "p50"}, {"0.9", "p90"}, {"0.99", "p99"}} {
		out = append(out, query{
			expr:     fmt.Sprintf(`histogram_quantile(%s, sum by (le) (rate(%s_bucket{%s}[$__rate_interval])))`, p.phi, metric, Sel),
			legend:   p.name,
			exemplar: exemplar,
		})
	}
	return out
}

// graph is a time series panel.
func graph(title, desc, unit string, w, h uint32, qs ...query) *timeseries.PanelBuilder {
	b := timeseries.NewPanelBuilder().
		Title(title).
		Description(desc).
		Datasource(promDS()).
		Unit(unit).
		Span(w).
		Height(h).
		FillOpacity(10).
		ShowPoints(common.VisibilityModeNever).
		Legend(common.NewVizLegendOptionsBuilder().
			DisplayMode(common.LegendDisplayModeList).
			Placement(common.LegendPlacementBottom).
			ShowLegend(true)).
		Tooltip(common.NewVizTooltipOptionsBuilder().
			Mode(common.TooltipDisplayModeMulti).
			Sort(common.SortOrderDescending))
	for i, qq := range qs {
		b = b.WithTarget(target(i, qq))
	}
	return b
}

// stacked is a time series panel whose series add up (rates by label value).
func stacked(title, desc, unit string, w, h uint32, qs ...query) *timeseries.PanelBuilder {
	return graph(title, desc, unit, w, h, qs...).
		Stacking(common.NewStackingConfigBuilder().Mode(common.StackingModeNormal)).
		FillOpacity(40)
}

// single is a stat panel showing the latest value of one expression.
func single(title, desc, unit string, w uint32, qq query) *stat.PanelBuilder {
	return stat.NewPanelBuilder().
		Title(title).
		Description(desc).
		Datasource(promDS()).
		Unit(unit).
		Span(w).
		Height(short).
		GraphMode(common.BigValueGraphModeArea).
		ColorMode(common.BigValueColorModeValue).
		Orientation(common.VizOrientationAuto).
		ReduceOptions(common.NewReduceDataOptionsBuilder().Calcs([]string{"lastNotNull"})).
		WithTarget(target(0, qq))
}

// row is a full-width, non-collapsed section header: its panels follow it at the top level.
func row(title string) *dashboard.RowBuilder {
	return dashboard.NewRowBuilder(title)
}

// base starts a dashboard with the settings and the variables every pubsub board shares:
// datasource (any Prometheus, pubsub's by default), namespace (one) and pod (several, default all).
func base(uid, title, desc string) *dashboard.DashboardBuilder {
	return dashboard.NewDashboardBuilder(title).
		Uid(uid).
		Description(desc).
		Tags([]string{"pubsub"}).
		Editable().
		Tooltip(dashboard.DashboardCursorSyncCrosshair).
		Refresh("30s").
		Time("now-1h", "now").
		Timezone("browser").
		Link(dashboard.NewDashboardLinkBuilder("pubsub").
			Type(dashboard.DashboardLinkTypeDashboards).
			Tags([]string{"pubsub"}).
			AsDropdown(true).
			IncludeVars(true).
			KeepTime(true)).
		WithVariable(dashboard.NewDatasourceVariableBuilder("datasource").
			Label("Data source").
			Type("prometheus").
			Current(dashboard.VariableOption{
				Text:  dashboard.StringOrArrayOfString{String: cog.ToPtr(PrometheusName)},
				Value: dashboard.StringOrArrayOfString{String: cog.ToPtr(PrometheusUID)},
			})).
		WithVariable(dashboard.NewQueryVariableBuilder("namespace").
			Label("Namespace").
			Datasource(promDS()).
			Query(dashboard.StringOrMap{String: cog.ToPtr(`label_values(pubsub_build_info{` + Job + `}, namespace)`)}).
			Refresh(dashboard.VariableRefreshOnTimeRangeChanged).
			Sort(dashboard.VariableSortAlphabeticalAsc)).
		WithVariable(dashboard.NewQueryVariableBuilder("pod").
			Label("Pod").
			Datasource(promDS()).
			Query(dashboard.StringOrMap{String: cog.ToPtr(`label_values(pubsub_build_info{` + Job + `, namespace="$namespace"}, pod)`)}).
			Refresh(dashboard.VariableRefreshOnTimeRangeChanged).
			Sort(dashboard.VariableSortAlphabeticalAsc).
			Multi(true).
			IncludeAll(true).
			AllValue(".*"))
}

// build finishes a dashboard, shows its links in the header, and numbers its panels 1..n in order, so the rendered JSON is stable
// and panel links (viewPanel=N) survive regeneration.
func build(b *dashboard.DashboardBuilder) (dashboard.Dashboard, error) {
	d, err := b.Build()
	if err != nil {
		return dashboard.Dashboard{}, err
	}
	// The SDK defaults dashboard links to the controls menu (Grafana 12); older Grafana versions
	// show them in the header, which is where an operator looks for the sibling boards.
	for i := range d.Links {
		d.Links[i].Placement = nil
	}
	var id uint32
	for _, p := range d.Panels {
		id++
		switch {
		case p.Panel != nil:
			p.Panel.Id = cog.ToPtr(id)
		case p.RowPanel != nil:
			p.RowPanel.Id = id
		}
	}
	return d, nil
}
