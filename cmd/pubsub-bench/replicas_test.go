package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestParseConfigServerLists(t *testing.T) {
	c, err := parseConfig([]string{"-url", "http://127.0.0.1:1/a/, ws://127.0.0.1:2/ws,http://localhost:3",
		"-server-pid", "11, 12,13"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	want := []endpoint{
		{rest: "http://127.0.0.1:1/a", ws: "ws://127.0.0.1:1/a/ws"},
		{rest: "http://127.0.0.1:2", ws: "ws://127.0.0.1:2/ws"},
		{rest: "http://localhost:3", ws: "ws://localhost:3/ws"},
	}
	if !slices.Equal(c.servers, want) {
		t.Errorf("servers %v, want %v", c.servers, want)
	}
	if c.restURL != want[0].rest || c.wsURL != want[0].ws {
		t.Errorf("first server %q %q, want %v", c.restURL, c.wsURL, want[0])
	}
	// The one default metrics endpoint cannot stand for three servers.
	if c.MetricsURL != "" || c.metricsURLs != nil {
		t.Errorf("metrics %q %v, want none by default with several servers", c.MetricsURL, c.metricsURLs)
	}
	if !slices.Equal(c.pids, []int{11, 12, 13}) || !slices.Equal(c.ServerPIDs, []int{11, 12, 13}) || c.ServerPID != 0 {
		t.Errorf("pids %v / %v / %d", c.pids, c.ServerPIDs, c.ServerPID)
	}

	c, err = parseConfig([]string{"-url", "http://127.0.0.1:1,http://127.0.0.1:2",
		"-metrics-url", "http://127.0.0.1:9/metrics,http://127.0.0.1:10/metrics"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(c.metricsURLs, []string{"http://127.0.0.1:9/metrics", "http://127.0.0.1:10/metrics"}) {
		t.Errorf("metrics URLs %v", c.metricsURLs)
	}

	// One server: as before the lists, and so is the JSON of the config.
	for _, args := range [][]string{nil, {"-server-pid", "7"}, {"-server-pid", "0"}} {
		c, err = parseConfig(args, io.Discard)
		if err != nil {
			t.Fatal(err)
		}
		if len(c.servers) != 1 || !slices.Equal(c.metricsURLs, []string{defaultMetricsURL}) || c.ServerPIDs != nil {
			t.Errorf("%v: servers %v metrics %v pids %v", args, c.servers, c.metricsURLs, c.ServerPIDs)
		}
		b, err := json.Marshal(c)
		if err != nil {
			t.Fatal(err)
		}
		for _, key := range []string{"server_pids", "topic_wait"} {
			if strings.Contains(string(b), key) {
				t.Errorf("%v: one server's config JSON has %q: %s", args, key, b)
			}
		}
	}
	if c, _ := parseConfig([]string{"-server-pid", "7"}, io.Discard); c.ServerPID != 7 || !slices.Equal(c.pids, []int{7}) {
		t.Errorf("-server-pid 7: %d %v", c.ServerPID, c.pids)
	}
	if c, _ := parseConfig([]string{"-server-pid", "0"}, io.Discard); c.ServerPID != 0 || c.pids != nil {
		t.Errorf("-server-pid 0: %d %v, want none", c.ServerPID, c.pids)
	}
}

func TestParseConfigRejectsBadServerLists(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"-url", "http://127.0.0.1:1,,http://127.0.0.1:2"}, "empty entry"},
		{[]string{"-url", "http://127.0.0.1:1,"}, "empty entry"},
		{[]string{"-url", "http://127.0.0.1:1,ws://127.0.0.1:1/ws"}, "listed twice"},
		{[]string{"-url", "http://127.0.0.1:1,http://10.1.2.3:2"}, "not a loopback"},
		{[]string{"-url", "http://127.0.0.1:1,ftp://127.0.0.1:2"}, "scheme"},
		{[]string{"-url", "http://127.0.0.1:1,http://127.0.0.1:2", "-metrics-url", "http://127.0.0.1:9/metrics"}, "1 endpoints for 2 servers"},
		{[]string{"-url", "http://127.0.0.1:1,http://127.0.0.1:2", "-metrics-url", "http://127.0.0.1:9/m,http://127.0.0.1:9/m"}, "listed twice"},
		{[]string{"-url", "http://127.0.0.1:1,http://127.0.0.1:2", "-metrics-url", "http://127.0.0.1:9/m,http://192.0.2.1:9/m"}, "not a loopback"},
		{[]string{"-server-pid", "12,12"}, "given twice"},
		{[]string{"-server-pid", "12,x"}, "not a process id"},
		{[]string{"-server-pid", "12,0"}, "not a process id"},
		{[]string{"-server-pid", "12,"}, "not a process id"},
		{[]string{"-topic-wait", "0s"}, "-topic-wait"},
	}
	for _, tc := range tests {
		_, err := parseConfig(tc.args, io.Discard)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: error %v, want one containing %q", tc.args, err, tc.want)
		}
	}
}

func TestBenchAcrossReplicas(t *testing.T) {
	f := newFakeCluster(t, 3, 0)
	// Replication lags: the bench must wait, or subscribers on the other
	// replicas are refused with TOPIC_NOT_FOUND and -check fails.
	f.hideListings = 3
	urls, metrics := f.urls()
	r, code, stderr := f.runBench(t, "-url", urls, "-metrics-url", metrics,
		"-pubs", "2", "-subs", "7", "-count", "100", "-window", "16", "-duration", "5s", "-check")
	if code != 0 {
		t.Fatalf("exit %d; stderr %s; violations %q", code, stderr, r.Violations)
	}
	g := r.Groups[0]
	if g.Deliveries != 1400 || g.Lost != 0 || g.Duplicates != 0 || g.Reordered != 0 {
		t.Errorf("deliveries %d lost %d dup %d reordered %d; want 1400 and none", g.Deliveries, g.Lost, g.Duplicates, g.Reordered)
	}
	// Subscribers 0..6 and publishers 0..1 go to the servers in turn.
	wantSubs, wantPubs := []int{3, 2, 2}, []int{1, 1, 0}
	if len(r.Servers) != 3 {
		t.Fatalf("servers %+v", r.Servers)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	for i, sh := range r.Servers {
		host := f.srvs[i].Listener.Addr().String()
		if sh.URL != f.srvs[i].URL || sh.Subscribers != wantSubs[i] || sh.Publishers != wantPubs[i] || sh.Failed != 0 {
			t.Errorf("server %d: %+v, want %s with %d subscribers and %d publishers", i, sh, f.srvs[i].URL, wantSubs[i], wantPubs[i])
		}
		if f.subsOn[host] != wantSubs[i] {
			t.Errorf("server %d took %d subscriptions, want %d", i, f.subsOn[host], wantSubs[i])
		}
		if sh.Deliveries != int64(wantSubs[i])*200 || sh.E2E.Count != uint64(sh.Deliveries) {
			t.Errorf("server %d: %d deliveries, %d latencies, want %d", i, sh.Deliveries, sh.E2E.Count, wantSubs[i]*200)
		}
	}
	// Only the third server has no publisher: its 2 subscribers' 400
	// deliveries all crossed from another server.
	if c := r.CrossServerE2E; c == nil || c.Count != 400 || c.P99 <= 0 {
		t.Errorf("cross-server latency %+v, want 400 samples", r.CrossServerE2E)
	}
	// Every replica's metrics say one CPU second passed during the phase.
	s := r.Server
	if s == nil || s.CPUSec != 3 || s.Source != "metrics" || len(s.Processes) != 3 {
		t.Fatalf("server stats %+v, want 3 CPU seconds summed over 3 endpoints", s)
	}
	if want := round3(3.0 / 1400 * 1e6); s.CPUPerMDeliveries != want {
		t.Errorf("CPU per 1M deliveries %g, want %g (the sum over the servers)", s.CPUPerMDeliveries, want)
	}
	for i, p := range s.Processes {
		if p.Name != f.srvs[i].URL+"/metrics" || p.CPUSec != 1 || p.RSSMiB != 1 {
			t.Errorf("process %d: %+v", i, p)
		}
	}
	if len(f.topics) != 0 {
		t.Errorf("%d topics left behind", len(f.topics))
	}
}

func TestBenchTopicsScenarioAcrossReplicas(t *testing.T) {
	f := newFakeCluster(t, 2, 0)
	urls, _ := f.urls()
	// Five topics: the fake lists two per page, so waiting for them pages.
	r, code, stderr := f.runBench(t, "-url", urls, "-scenario", "topics", "-topics", "5", "-pubs", "1", "-subs", "2", "-count", "20", "-check")
	if code != 0 {
		t.Fatalf("exit %d; stderr %s; violations %q", code, stderr, r.Violations)
	}
	g := r.Groups[0]
	if g.Subscribers != 10 || g.Deliveries != 200 || g.Lost != 0 || g.Leaks != 0 {
		t.Errorf("subs %d deliveries %d lost %d leaks %d", g.Subscribers, g.Deliveries, g.Lost, g.Leaks)
	}
	if len(r.Servers) != 2 || r.Servers[0].Subscribers != 5 || r.Servers[1].Subscribers != 5 ||
		r.Servers[0].Publishers != 3 || r.Servers[1].Publishers != 2 {
		t.Errorf("servers %+v", r.Servers)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.listingOn[f.srv.Listener.Addr().String()] != 0 || f.listingOn[f.srvs[1].Listener.Addr().String()] < 3 {
		t.Errorf("GET /topics served %v: want pages from the second server only", f.listingOn)
	}
}

func TestBenchFailsWhenAReplicaNeverSeesTheTopics(t *testing.T) {
	f := newFakeCluster(t, 2, 0)
	f.hideListings = math.MaxInt
	urls, _ := f.urls()
	_, code, stderr := f.runBench(t, "-url", urls, "-topic-wait", "200ms")
	if code != 1 || !strings.Contains(stderr, "did not list the run's topics") || !strings.Contains(stderr, f.srvs[1].URL) {
		t.Fatalf("exit %d, stderr %q; want 1 and an error naming the second server", code, stderr)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(f.topics) != 0 || f.subsOn[f.srv.Listener.Addr().String()] != 0 {
		t.Errorf("%d topics left, %d subscriptions taken; want none", len(f.topics), f.subsOn[f.srv.Listener.Addr().String()])
	}
}

func TestTableOutputAcrossReplicas(t *testing.T) {
	f := newFakeCluster(t, 2, 0)
	urls, metrics := f.urls()
	var out strings.Builder
	code := run(t.Context(), []string{"-url", urls, "-metrics-url", metrics, "-subs", "2", "-count", "10"}, &out, io.Discard)
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	for _, want := range []string{"e2e p99 µs", f.srvs[1].URL, "cross-server 10 deliveries", "server cpu   summed over " + f.srvs[0].URL + "/metrics 1.00s, "} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, out.String())
		}
	}
	// One server prints none of it.
	f1 := newFakeServer(t, 0)
	out.Reset()
	if code := run(t.Context(), []string{"-url", f1.srv.URL, "-metrics-url", f1.srv.URL + "/metrics", "-subs", "2", "-count", "10", "-json"}, &out, io.Discard); code != 0 {
		t.Fatalf("exit %d", code)
	}
	for _, key := range []string{`"servers"`, "cross_server", `"processes"`} {
		if strings.Contains(out.String(), key) {
			t.Errorf("one server's JSON has %s: %s", key, out.String())
		}
	}
}

func TestSamplerSumsEveryServer(t *testing.T) {
	metrics := func(cpu, rss, delivered float64) *httptest.Server {
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
			fmt.Fprintf(w, "process_cpu_seconds_total %g\nprocess_resident_memory_bytes %g\npubsub_messages_delivered_total{x=\"1\"} %g\n", cpu, rss, delivered)
		}))
		t.Cleanup(srv.Close)
		return srv
	}
	a, b := metrics(1.5, 1<<20, 10), metrics(2.25, 3<<20, 5)
	s := &sampler{metricsURLs: []string{a.URL, b.URL}, http: http.DefaultClient}
	got, err := s.sample(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if got.cpuSec != 3.75 || got.rssBytes != 4<<20 || got.source != "metrics" || got.counters["pubsub_messages_delivered_total"] != 15 {
		t.Errorf("sample %+v, want cpu 3.75, rss 4 MiB and 15 deliveries summed", got)
	}
	if len(got.procs) != 2 || got.procs[0] != (procSample{name: a.URL, cpuSec: 1.5, rssBytes: 1 << 20}) {
		t.Errorf("per endpoint %+v", got.procs)
	}

	// One endpoint down: no sum that silently leaves a server out.
	down := httptest.NewServer(http.NotFoundHandler())
	down.Close()
	s.metricsURLs = append(s.metricsURLs, down.URL)
	if got, err := s.sample(t.Context()); err == nil || got.ok {
		t.Errorf("a sum missing one server was accepted: %+v", got)
	}

	if _, err := os.Stat("/proc/self/stat"); err != nil {
		t.Skip("no /proc on this system")
	}
	// Processes: /proc wins over the metrics for CPU, the counters still
	// come from the metrics, and a vanished process fails the sample.
	s = &sampler{pids: []int{os.Getpid()}, metricsURLs: []string{a.URL}, http: http.DefaultClient}
	got, err = s.sample(t.Context())
	if err != nil || got.source != "proc" || got.procs != nil || got.counters["pubsub_messages_delivered_total"] != 10 {
		t.Errorf("one pid: %+v, %v", got, err)
	}
	s.pids = append(s.pids, deadPID(t))
	if got, err := s.sample(t.Context()); err == nil || got.ok {
		t.Errorf("a sum missing one process was accepted: %+v", got)
	}
}

// deadPID returns the pid of a process that has exited and been reaped.
func deadPID(t *testing.T) int {
	t.Helper()
	p, err := os.StartProcess("/bin/true", []string{"true"}, &os.ProcAttr{})
	if err != nil {
		t.Skipf("cannot start /bin/true: %v", err)
	}
	if _, err := p.Wait(); err != nil {
		t.Fatal(err)
	}
	return p.Pid
}

func TestProcessDeltas(t *testing.T) {
	before := serverSample{procs: []procSample{{name: "pid 1", cpuSec: 1}, {name: "pid 2", cpuSec: 10}}}
	after := serverSample{procs: []procSample{{name: "pid 1", cpuSec: 1.5, rssBytes: 2 << 20}, {name: "pid 2", cpuSec: 12}}}
	got := processDeltas(before, after)
	want := []processCPU{{Name: "pid 1", CPUSec: 0.5, RSSMiB: 2}, {Name: "pid 2", CPUSec: 2}}
	if !slices.Equal(got, want) {
		t.Errorf("processDeltas = %+v, want %+v", got, want)
	}
	if got := processDeltas(serverSample{}, after); got != nil {
		t.Errorf("without a before reading: %+v", got)
	}
}

func TestListTopicsPagesFromThePrefix(t *testing.T) {
	var afters []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		after := r.URL.Query().Get("after")
		afters = append(afters, after)
		switch after {
		case "bench.x.":
			fmt.Fprint(w, `{"topics":[{"name":"bench.x.0"},{"name":"bench.x.1"}],"next":"bench.x.1"}`)
		case "bench.x.1":
			fmt.Fprint(w, `{"topics":[{"name":"bench.x.2"},{"name":"orders"}],"next":"orders"}`)
		default:
			t.Errorf("asked for the page after %q", after)
		}
	}))
	defer srv.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	names, err := newRESTClient(srv.URL, nil).listTopics(ctx, "bench.x.")
	if err != nil || !slices.Equal(names, []string{"bench.x.0", "bench.x.1", "bench.x.2"}) {
		t.Fatalf("listTopics = %v, %v", names, err)
	}
	// It stops at the first name past the prefix, without asking for more.
	if !slices.Equal(afters, []string{"bench.x.", "bench.x.1"}) {
		t.Errorf("pages asked %q", afters)
	}
}

func TestListTopicsFollowsAnUnsortedServer(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Query().Get("after") {
		case "bench.x.":
			fmt.Fprint(w, `{"topics":[{"name":"zeta"},{"name":"bench.x.1"}],"next":"zeta"}`)
		case "zeta":
			fmt.Fprint(w, `{"topics":[{"name":"bench.x.0"}]}`)
		}
	}))
	defer srv.Close()
	names, err := newRESTClient(srv.URL, nil).listTopics(t.Context(), "bench.x.")
	if err != nil || !slices.Equal(names, []string{"bench.x.1", "bench.x.0"}) {
		t.Fatalf("listTopics = %v, %v; want both names, the second page included", names, err)
	}
}
