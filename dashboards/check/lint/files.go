package lint

import (
	"os"
	"path/filepath"
)

// ReadDashboards reads every *.json file directly in dir, keyed by its path.
func ReadDashboards(dir string) (map[string][]byte, error) {
	paths, err := filepath.Glob(filepath.Join(dir, "*.json"))
	if err != nil {
		return nil, err
	}
	out := make(map[string][]byte, len(paths))
	for _, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil {
			return nil, err
		}
		out[p] = b
	}
	return out, nil
}

// CollectExprs gathers the expressions of all dashboards and rule files, and the series names the
// rules record (which a dashboard may use although the service does not export them). A file
// whose expressions cannot be extracted is reported and skipped.
func CollectExprs(dashboards, rules map[string][]byte) (exprs []Expr, recorded []string, problems []Problem) {
	for _, name := range sortedKeys(dashboards) {
		es, err := DashboardExprs(name, dashboards[name])
		if err != nil {
			problems = append(problems, Problem{File: name, Msg: err.Error()})
			continue
		}
		exprs = append(exprs, es...)
	}
	for _, name := range sortedKeys(rules) {
		es, rec, err := RuleExprs(name, rules[name])
		if err != nil {
			problems = append(problems, Problem{File: name, Msg: err.Error()})
			continue
		}
		exprs = append(exprs, es...)
		recorded = append(recorded, rec...)
	}
	return exprs, recorded, problems
}
