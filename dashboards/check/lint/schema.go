package lint

import (
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"sort"
	"strconv"
	"sync"

	"github.com/grafana/grafana-foundation-sdk/go/cog"
	"github.com/grafana/grafana-foundation-sdk/go/cog/plugins"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
)

// registerPlugins teaches the SDK's runtime the panel and datasource-query types (timeseries, stat,
// prometheus ...), without which panel options, custom field config and targets decode as untyped
// maps and nothing in them is checked. The runtime is process-wide, hence once.
var registerPlugins = sync.OnceFunc(plugins.RegisterDefaultPlugins)

// DecodeDashboard decodes a dashboard the way Grafana's schema describes it, and fails on anything
// the schema does not know.
//
// It takes three steps, because each one alone leaves a gap in SDK v0.0.22:
//   - UnmarshalJSONStrict rejects unknown fields, wrong types and missing required fields in the
//     dashboard, its variables, panels, panel options, custom field config and Prometheus targets.
//     Only its errors are used: on success it loses every panel, because a nested decoder returns
//     its empty error list as a non-nil error and the caller then skips the assignment;
//   - the ordinary decoder (UnmarshalJSON, lenient) gives the typed value, and Validate applies
//     the schema's constraints to it (non-empty panel type, ranges ...);
//   - a round trip (re-encode that value and look for anything of the input that did not survive)
//     catches what both decoders read leniently: fieldConfig outside `custom` (units, thresholds,
//     overrides) goes through plain encoding/json, which drops unknown keys silently.
func DecodeDashboard(raw []byte) (dashboard.Dashboard, error) {
	registerPlugins()
	var strict dashboard.Dashboard
	if err := noErrors(strict.UnmarshalJSONStrict(raw)); err != nil {
		return strict, fmt.Errorf("strict decode: %w", err)
	}
	var d dashboard.Dashboard
	if err := json.Unmarshal(raw, &d); err != nil {
		return d, fmt.Errorf("decode: %w", err)
	}
	if err := d.Validate(); err != nil {
		return d, fmt.Errorf("schema constraints: %w", err)
	}
	again, err := json.Marshal(d)
	if err != nil {
		return d, fmt.Errorf("re-encode: %w", err)
	}
	var in, out any
	if err := json.Unmarshal(raw, &in); err != nil {
		return d, err
	}
	if err := json.Unmarshal(again, &out); err != nil {
		return d, err
	}
	if lost := dropped(in, out, ""); len(lost) > 0 {
		return d, fmt.Errorf("fields the schema does not know (lost when decoded): %v", lost)
	}
	return d, nil
}

// noErrors turns the SDK's empty error list into nil: UnmarshalJSONStrict returns its (possibly
// empty) cog.BuildErrors as an error value, which is never == nil.
func noErrors(err error) error {
	var be cog.BuildErrors
	if errors.As(err, &be) && len(be) == 0 {
		return nil
	}
	return err
}

// CheckSchema strictly decodes every dashboard file and reports the ones Grafana's schema rejects.
func CheckSchema(files map[string][]byte) []Problem {
	var out []Problem
	for _, name := range sortedKeys(files) {
		if _, err := DecodeDashboard(files[name]); err != nil {
			out = append(out, Problem{File: name, Msg: err.Error()})
		}
	}
	return out
}

// dropped lists the JSON paths present in `in` but missing or different in `out`. A key whose
// input value is empty (null, "", 0, false, [] or {}) may legitimately vanish, because the SDK
// types omit empty optional fields when encoding.
func dropped(in, out any, path string) []string {
	switch iv := in.(type) {
	case map[string]any:
		ov, ok := out.(map[string]any)
		if !ok {
			return []string{path}
		}
		var lost []string
		for _, k := range sortedKeys(iv) {
			p := path + "." + k
			o, present := ov[k]
			if !present {
				if !isEmpty(iv[k]) {
					lost = append(lost, p)
				}
				continue
			}
			lost = append(lost, dropped(iv[k], o, p)...)
		}
		return lost
	case []any:
		ov, ok := out.([]any)
		if !ok || len(ov) != len(iv) {
			return []string{path}
		}
		var lost []string
		for i := range iv {
			lost = append(lost, dropped(iv[i], ov[i], path+"["+strconv.Itoa(i)+"]")...)
		}
		return lost
	default:
		if !reflect.DeepEqual(in, out) {
			return []string{path}
		}
		return nil
	}
}

func isEmpty(v any) bool {
	switch x := v.(type) {
	case nil:
		return true
	case string:
		return x == ""
	case float64:
		return x == 0
	case bool:
		return !x
	case []any:
		return len(x) == 0
	case map[string]any:
		return len(x) == 0
	}
	return false
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
