package lint

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"sort"
	"strings"
	"time"
)

// Exported is the set of series names a /metrics scrape offers, as PromQL can select them.
type Exported map[string]bool

// ParseExposition reads a scrape in the Prometheus text format (0.0.4) or OpenMetrics and returns
// the names a query may select. From each `# TYPE` line it derives the names of the family's
// series: a histogram `h` gives h_bucket, h_sum, h_count and h itself (a native histogram is
// selected by its bare name); a summary gives s, s_sum and s_count; an OpenMetrics counter family
// `c` (exposed without its suffix) gives c_total. Every sample line's name counts too.
//
// Quoted UTF-8 metric names (`{"name"}`) are not understood: pubsub exports none.
func ParseExposition(r io.Reader) (Exported, error) {
	out := Exported{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64*1024), 4*1024*1024)
	lines := 0
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		lines++
		if strings.HasPrefix(line, "#") {
			f := strings.Fields(line)
			if len(f) >= 4 && f[1] == "TYPE" {
				addFamily(out, f[2], f[3])
			}
			continue
		}
		name := line
		if i := strings.IndexAny(line, "{ \t"); i >= 0 {
			name = line[:i]
		}
		if name == "" {
			return nil, fmt.Errorf("line %q: no metric name", line)
		}
		out[name] = true
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if lines == 0 {
		return nil, fmt.Errorf("empty scrape")
	}
	return out, nil
}

func addFamily(out Exported, name, typ string) {
	out[name] = true
	switch typ {
	case "counter":
		if !strings.HasSuffix(name, "_total") {
			out[name+"_total"] = true
		}
	case "histogram", "gaugehistogram":
		out[name+"_bucket"] = true
		out[name+"_sum"] = true
		out[name+"_count"] = true
	case "summary":
		out[name+"_sum"] = true
		out[name+"_count"] = true
	case "info":
		out[name+"_info"] = true
	}
}

// LoadScrape reads a scrape from an http(s) URL (GET, bounded by timeout) or from a file path.
func LoadScrape(ctx context.Context, src string, timeout time.Duration) (Exported, error) {
	if !strings.HasPrefix(src, "http://") && !strings.HasPrefix(src, "https://") {
		f, err := os.Open(src)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		return ParseExposition(f)
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, src, nil)
	if err != nil {
		return nil, err
	}
	// Ask for OpenMetrics first, as Prometheus does, so the check sees what Prometheus scrapes.
	req.Header.Set("Accept", "application/openmetrics-text;version=1.0.0;q=0.9,text/plain;version=0.0.4;q=0.5")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: %s", src, resp.Status)
	}
	return ParseExposition(resp.Body)
}

// synthetic are the series Prometheus writes itself, for every target or alert, which no /metrics
// page contains. The alert rules use `up`.
var synthetic = []string{
	"up", "scrape_duration_seconds", "scrape_samples_scraped", "scrape_samples_post_metric_relabeling",
	"scrape_series_added", "ALERTS", "ALERTS_FOR_STATE",
}

// CheckMetrics reports every metric name an expression selects that the scrape does not export,
// no rule records and Prometheus does not synthesise. Each missing name is reported once per file,
// with the number of places using it and the first one.
func CheckMetrics(parsed []Parsed, exported Exported, recorded []string) []Problem {
	known := map[string]bool{}
	for _, s := range synthetic {
		known[s] = true
	}
	for _, r := range recorded {
		known[r] = true
	}
	type key struct{ file, name string }
	uses := map[key][]string{}
	for _, p := range parsed {
		for _, m := range p.Metrics {
			if exported[m] || known[m] {
				continue
			}
			k := key{p.File, m}
			uses[k] = append(uses[k], p.Where)
		}
	}
	keys := make([]key, 0, len(uses))
	for k := range uses {
		keys = append(keys, k)
	}
	sort.Slice(keys, func(i, j int) bool {
		if keys[i].file != keys[j].file {
			return keys[i].file < keys[j].file
		}
		return keys[i].name < keys[j].name
	})
	var out []Problem
	for _, k := range keys {
		out = append(out, Problem{File: k.file, Where: k.name,
			Msg: fmt.Sprintf("metric not exported by the service (used %d times, first at %s)", len(uses[k]), uses[k][0])})
	}
	return out
}
