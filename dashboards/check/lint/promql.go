package lint

import (
	"fmt"
	"regexp"
	"sort"

	"github.com/prometheus/prometheus/model/labels"
	"github.com/prometheus/prometheus/promql/parser"
)

// builtins are Grafana's interval variables, replaced by durations or numbers that keep a query
// valid wherever Grafana allows them (a range selector, a subquery, offset, or arithmetic).
var builtins = map[string]string{
	"__rate_interval":    "5m",
	"__interval":         "1m",
	"__range":            "1h",
	"__interval_ms":      "60000",
	"__rate_interval_ms": "300000",
	"__range_ms":         "3600000",
	"__range_s":          "3600",
}

// placeholder replaces a dashboard's own template variables ($namespace, $pod ...). Those appear
// inside label matcher strings, where any text parses; one used where PromQL needs a number or a
// duration fails to parse here, which is a query worth looking at anyway.
const placeholder = "grafana_variable"

// varRe matches the three forms of Grafana variables: ${name} or ${name:format}, $name, and the
// deprecated [[name]] or [[name:format]].
var varRe = regexp.MustCompile(`\$\{([A-Za-z0-9_]+)(?::[^}]*)?\}|\$([A-Za-z_][A-Za-z0-9_]*)|\[\[([A-Za-z0-9_]+)(?::[^\]]*)?\]\]`)

// Substitute replaces Grafana variables in a dashboard query with values PromQL accepts.
func Substitute(q string) string {
	return varRe.ReplaceAllStringFunc(q, func(m string) string {
		sub := varRe.FindStringSubmatch(m)
		name := sub[1] + sub[2] + sub[3]
		if v, ok := builtins[name]; ok {
			return v
		}
		return placeholder
	})
}

// promqlParser uses the default options: no experimental functions, as a Prometheus server runs by
// default, so a query that needs a feature flag fails here.
var promqlParser = parser.NewParser(parser.Options{})

// Parse parses one expression, after substituting Grafana variables when it comes from a dashboard.
func Parse(e Expr) (parser.Expr, error) {
	q := e.Query
	if e.Templated {
		q = Substitute(q)
	}
	return promqlParser.ParseExpr(q)
}

// Parsed is an expression that parsed, with the metric names it selects.
type Parsed struct {
	Expr
	Metrics []string
}

// CheckExprs parses every expression and reports those PromQL rejects.
func CheckExprs(exprs []Expr) ([]Parsed, []Problem) {
	var ok []Parsed
	var bad []Problem
	for _, e := range exprs {
		ast, err := Parse(e)
		if err != nil {
			bad = append(bad, Problem{File: e.File, Where: e.Where, Msg: fmt.Sprintf("PromQL does not parse: %v\n\tquery: %s", err, e.Query)})
			continue
		}
		ok = append(ok, Parsed{Expr: e, Metrics: MetricNames(ast)})
	}
	return ok, bad
}

// MetricNames returns the sorted, distinct metric names an expression selects, from the selector
// name (`foo{...}`) or an equality matcher on __name__. A regular expression on __name__ names no
// single metric and is left out.
func MetricNames(e parser.Expr) []string {
	seen := map[string]bool{}
	parser.Inspect(e, func(n parser.Node, _ []parser.Node) error {
		vs, ok := n.(*parser.VectorSelector)
		if !ok {
			return nil
		}
		if vs.Name != "" {
			seen[vs.Name] = true
			return nil
		}
		for _, m := range vs.LabelMatchers {
			if m.Name == labels.MetricName && m.Type == labels.MatchEqual {
				seen[m.Value] = true
			}
		}
		return nil
	})
	names := make([]string, 0, len(seen))
	for n := range seen {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}
