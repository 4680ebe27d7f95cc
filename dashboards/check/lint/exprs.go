package lint

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// Expr is one PromQL expression found in a dashboard or a rule file.
type Expr struct {
	File  string
	Where string // JSON path of the target, or group/rule of the rule
	Query string // as written in the file
	// Templated is true for dashboard queries, which may hold Grafana variables ($__rate_interval,
	// $pod ...) that must be replaced before PromQL can parse them. Rule expressions are plain
	// PromQL and are parsed as they are.
	Templated bool
}

// DashboardExprs returns every PromQL expression of a dashboard: the `expr` of each target (in
// panels, rows and annotations, at any depth) and the selector inside each Prometheus query
// variable (`label_values(<selector>, <label>)`, `query_result(<query>)`).
//
// It walks the JSON rather than the SDK types so that it sees targets of every datasource type and
// panels nested in collapsed rows alike.
func DashboardExprs(file string, raw []byte) ([]Expr, error) {
	var doc any
	if err := json.Unmarshal(raw, &doc); err != nil {
		return nil, fmt.Errorf("%s: %w", file, err)
	}
	var out []Expr
	var walk func(v any, path string)
	walk = func(v any, path string) {
		switch x := v.(type) {
		case map[string]any:
			if e, ok := x["expr"].(string); ok {
				out = append(out, Expr{File: file, Where: path + ".expr", Query: e, Templated: true})
			}
			for _, k := range sortedKeys(x) {
				walk(x[k], path+"."+k)
			}
		case []any:
			for i, item := range x {
				walk(item, path+"["+strconv.Itoa(i)+"]")
			}
		}
	}
	root, _ := doc.(map[string]any)
	walk(root["panels"], "panels")
	walk(root["annotations"], "annotations")

	templating, _ := root["templating"].(map[string]any)
	vars, _ := templating["list"].([]any)
	for i, v := range vars {
		variable, _ := v.(map[string]any)
		if variable["type"] != "query" {
			continue
		}
		where := fmt.Sprintf("templating.list[%d](%v).query", i, variable["name"])
		q := variable["query"]
		if m, ok := q.(map[string]any); ok { // newer Grafana stores {"query": "...", "refId": ...}
			q = m["query"]
		}
		s, _ := q.(string)
		sel, err := variableSelector(s)
		if err != nil {
			return nil, fmt.Errorf("%s: %s: %w", file, where, err)
		}
		if sel != "" {
			out = append(out, Expr{File: file, Where: where, Query: sel, Templated: true})
		}
	}
	return out, nil
}

var (
	labelValuesRe = regexp.MustCompile(`^\s*label_values\(\s*(.*),\s*[A-Za-z_][A-Za-z0-9_]*\s*\)\s*$`)
	labelOnlyRe   = regexp.MustCompile(`^\s*label_values\(\s*[A-Za-z_][A-Za-z0-9_]*\s*\)\s*$`)
	queryResultRe = regexp.MustCompile(`^\s*query_result\((.*)\)\s*$`)
)

// variableSelector returns the PromQL inside a Grafana Prometheus variable query, "" when the
// query holds none (label_values(label)), and an error for query functions this check does not
// understand, so that a new kind of variable is looked at rather than silently skipped.
func variableSelector(q string) (string, error) {
	switch {
	case strings.TrimSpace(q) == "":
		return "", errors.New("empty variable query")
	case labelOnlyRe.MatchString(q):
		return "", nil
	case labelValuesRe.MatchString(q):
		return labelValuesRe.FindStringSubmatch(q)[1], nil
	case queryResultRe.MatchString(q):
		return queryResultRe.FindStringSubmatch(q)[1], nil
	}
	return "", fmt.Errorf("unsupported variable query %q (expected label_values or query_result)", q)
}

// RuleExprs returns the expressions and the recorded series names of a Prometheus rule file. It
// accepts a plain rule file (`groups:` at the top, as promtool reads it) and Prometheus Operator
// PrometheusRule objects (`spec.groups`), in any number of YAML documents.
func RuleExprs(file string, raw []byte) (exprs []Expr, recorded []string, err error) {
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	groupsSeen := false
	for doc := 0; ; doc++ {
		var d struct {
			Groups []ruleGroup `yaml:"groups"`
			Spec   struct {
				Groups []ruleGroup `yaml:"groups"`
			} `yaml:"spec"`
		}
		if err := dec.Decode(&d); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			return nil, nil, fmt.Errorf("%s: document %d: %w", file, doc, err)
		}
		for _, g := range append(d.Groups, d.Spec.Groups...) {
			groupsSeen = true
			for i, r := range g.Rules {
				name := r.Alert
				if r.Record != "" {
					name = r.Record
					recorded = append(recorded, r.Record)
				}
				where := fmt.Sprintf("group %q rule %d (%s)", g.Name, i, name)
				if strings.TrimSpace(r.Expr) == "" {
					return nil, nil, fmt.Errorf("%s: %s: empty expr", file, where)
				}
				exprs = append(exprs, Expr{File: file, Where: where, Query: r.Expr})
			}
		}
	}
	if !groupsSeen {
		return nil, nil, fmt.Errorf("%s: no rule groups (neither groups nor spec.groups)", file)
	}
	return exprs, recorded, nil
}

type ruleGroup struct {
	Name  string `yaml:"name"`
	Rules []struct {
		Alert  string `yaml:"alert"`
		Record string `yaml:"record"`
		Expr   string `yaml:"expr"`
	} `yaml:"rules"`
}
