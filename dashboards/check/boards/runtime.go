package boards

import (
	"github.com/grafana/grafana-foundation-sdk/go/common"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
)

// Runtime shows the Go runtime and process collectors of each pod: goroutines, heap, GC, CPU, file
// descriptors, and the panics its goroutines recovered. Each WebSocket connection holds one file
// descriptor, and a reader goroutine only while it is not parked (plus a writer only while its
// socket is full), so goroutines follow the busy connections, not all of them.
func Runtime() (dashboard.Dashboard, error) {
	b := base("pubsub-runtime", "PubSub / Runtime",
		"Go runtime and process metrics per pod: goroutines, heap, GC, CPU, file descriptors, restarts, versions and recovered panics.").
		WithRow(row("Versions")).
		WithPanel(single("Versions running", "Pods per build (pubsub_build_info); more than one line means a rollout in progress.", "none", full,
			q(`count by (version, revision, goversion) (pubsub_build_info{`+Sel+`})`, "{{version}} ({{revision}}, {{goversion}})")).
			TextMode(common.BigValueTextModeValueAndName).
			GraphMode(common.BigValueGraphModeNone)).
		WithRow(row("Go runtime")).
		WithPanel(graph("Goroutines and connections", "Goroutines per pod beside its WebSocket connections and those of them parked: a busy connection has a reader goroutine (and a writer while its socket is full), a parked idle one none. Goroutines well above the unparked connections point at a leak.", "none", third, tall,
			q(`sum by (pod) (go_goroutines{`+Sel+`})`, "goroutines {{pod}}"),
			q(`sum by (pod) (pubsub_ws_connections{`+Sel+`})`, "connections {{pod}}"),
			q(`sum by (pod) (pubsub_ws_readers_parked{`+Sel+`})`, "parked {{pod}}"))).
		WithPanel(graph("Heap", "Heap in use and the heap size that triggers the next GC, per pod.", "bytes", third, tall,
			q(`sum by (pod) (go_memstats_heap_inuse_bytes{`+Sel+`})`, "in use {{pod}}"),
			q(`sum by (pod) (go_memstats_next_gc_bytes{`+Sel+`})`, "next GC {{pod}}"))).
		WithPanel(graph("Allocation rate", "Bytes allocated on the heap per second, per pod: the fan-out hot path should stay flat as subscribers grow.", "Bps", third, tall,
			q(`sum by (pod) (rate(go_memstats_alloc_bytes_total{`+Sel+`}[$__rate_interval]))`, "{{pod}}"))).
		WithPanel(graph("GC cycles", "Completed GC cycles per second, per pod.", "short", third, tall,
			q(`sum by (pod) (rate(go_gc_duration_seconds_count{`+Sel+`}[$__rate_interval]))`, "{{pod}}"))).
		WithPanel(graph("GC pause", "Mean stop-the-world pause per cycle, and the longest recent pause, per pod.", "s", third, tall,
			q(`sum by (pod) (rate(go_gc_duration_seconds_sum{`+Sel+`}[$__rate_interval])) / sum by (pod) (rate(go_gc_duration_seconds_count{`+Sel+`}[$__rate_interval]))`, "mean {{pod}}"),
			// The quantile label reads "1" when scraped as text and "1.0" as OpenMetrics (which
			// Prometheus prefers, and before 3.0 does not normalise).
			q(`max by (pod) (go_gc_duration_seconds{`+Sel+`, quantile=~"1|1.0"})`, "max {{pod}}"))).
		WithPanel(graph("OS threads and GOMAXPROCS", "OS threads created by the runtime, and GOMAXPROCS, per pod.", "none", third, tall,
			q(`sum by (pod) (go_threads{`+Sel+`})`, "threads {{pod}}"),
			q(`sum by (pod) (go_sched_gomaxprocs_threads{`+Sel+`})`, "GOMAXPROCS {{pod}}"))).
		WithRow(row("Process")).
		WithPanel(graph("CPU", "CPU time used per second (cores), per pod.", "short", third, tall,
			q(`sum by (pod) (rate(process_cpu_seconds_total{`+Sel+`}[$__rate_interval]))`, "{{pod}}"))).
		WithPanel(graph("Resident memory", "Resident set size, per pod.", "bytes", third, tall,
			q(`sum by (pod) (process_resident_memory_bytes{`+Sel+`})`, "{{pod}}"))).
		WithPanel(graph("File descriptors", "Open file descriptors as a share of the limit, per pod. Each WebSocket connection holds one.", "percentunit", third, tall,
			q(`max by (pod) (process_open_fds{`+Sel+`} / process_max_fds{`+Sel+`})`, "{{pod}}")).
			Min(0)).
		WithPanel(graph("Open file descriptors", "Open file descriptors, per pod.", "none", half, tall,
			q(`sum by (pod) (process_open_fds{`+Sel+`})`, "{{pod}}"))).
		WithPanel(graph("Uptime", "Seconds since the process started, per pod: a drop to zero is a restart.", "s", half, tall,
			q(`max by (pod) (time() - process_start_time_seconds{`+Sel+`})`, "{{pod}}"))).
		// Last, so the panels above keep their ids (and viewPanel links).
		WithRow(row("Panics")).
		WithPanel(stacked("Recovered panics by component", "Panics recovered in each rate interval, by the goroutine that recovered them (reader, writer, flusher, clock, parker, http, other) and pod. The process keeps running, but each is a bug: the connection is closed with 1011 or the request answered 500, and the ERROR log line holds the stack. PubsubPanicsRecovered fires on any.", "none", full, tall,
			q(`sum by (pod, component) (increase(pubsub_panics_total{`+Sel+`}[$__rate_interval]))`, "{{component}} {{pod}}")).
			Min(0))
	return build(b)
}
