package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"time"
)

// config is the validated command line.
type config struct {
	Scenario     string        `json:"scenario"`
	URL          string        `json:"url"`
	MetricsURL   string        `json:"metrics_url"`
	ServerPID    int           `json:"server_pid,omitempty"`  // the one -server-pid
	ServerPIDs   []int         `json:"server_pids,omitempty"` // several -server-pid, summed
	AllowRemote  bool          `json:"allow_remote,omitempty"`
	Duration     time.Duration `json:"-"`
	Count        int64         `json:"count"`
	Rate         float64       `json:"rate"`
	Size         int           `json:"size"`
	Window       int           `json:"window"`
	Topics       int           `json:"topics"`
	Pubs         int           `json:"pubs"`
	Subs         int           `json:"subs"`
	SlowSubs     int           `json:"slow_subs,omitempty"`
	StalledSubs  int           `json:"stalled_subs,omitempty"`
	SlowDelay    time.Duration `json:"-"`
	Conns        int           `json:"conns,omitempty"`
	DialParallel int           `json:"dial_concurrency"`
	APIKey       string        `json:"-"` // never printed
	Pollers      int           `json:"pollers"`
	Drain        time.Duration `json:"-"`
	TopicWait    time.Duration `json:"-"`
	JSON         bool          `json:"-"`
	Check        bool          `json:"check,omitempty"`
	CPUProfile   string        `json:"-"`

	// Derived by parseConfig.
	wsURL string
	// header goes with every request and handshake: the API key when one is given.
	header  http.Header
	restURL string
	// servers are the -url entries in order; servers[0] is wsURL and
	// restURL, and creates and deletes the run's topics.
	servers []endpoint
	// pids are the processes whose CPU is summed (-server-pid), and
	// metricsURLs the endpoints whose counters are (-metrics-url).
	pids        []int
	metricsURLs []string
}

// endpoint is one server of the run: its REST base URL and its /ws URL.
type endpoint struct {
	rest, ws string
}

// MarshalJSON renders durations as Go duration strings.
func (c config) MarshalJSON() ([]byte, error) {
	type plain config // drops this method, avoiding recursion
	return json.Marshal(struct {
		plain
		Duration  string `json:"duration"`
		SlowDelay string `json:"slow_delay,omitempty"`
		Drain     string `json:"drain"`
		TopicWait string `json:"topic_wait,omitempty"`
	}{plain(c), c.Duration.String(), map[bool]string{true: c.SlowDelay.String()}[c.Scenario == "slow"], c.Drain.String(),
		map[bool]string{true: c.TopicWait.String()}[len(c.servers) > 1]})
}

// scenarioDefaults holds the per-scenario defaults of flags whose sensible
// value depends on the scenario; an explicitly given flag always wins.
var scenarioDefaults = map[string]struct{ topics, pubs, subs, count int }{
	"fanout": {topics: 1, pubs: 1, subs: 100},
	"topics": {topics: 100, pubs: 1, subs: 2},
	"slow":   {topics: 1, pubs: 1, subs: 10},
	"conns":  {topics: 1, pubs: 1, subs: 0, count: 1},
}

const usageText = `pubsub-bench drives a running pubsub service over its real protocol and
reports throughput, latency percentiles, exact loss and the server's cost.

Scenarios (-scenario):
  fanout  -pubs publishers and -subs subscribers on one topic
  topics  -topics topics, each with -pubs publishers and -subs subscribers;
          checks that no event reaches a subscription of another topic
  slow    -subs fast subscribers beside -slow-subs that sleep -slow-delay per
          event and -stalled-subs that stop reading until the drain phase;
          reports each group separately
  conns   -conns idle subscribed connections over -topics topics, held for
          -duration; reports server RSS per connection, then publishes -count
          messages per topic (default 1) and checks every connection got them

Several servers (-url a,b,c; replicas sharing their topics, e.g. through
Redis): the run's topics are created through the first, every other one
must list them (GET /topics) within -topic-wait, and then subscribers and
publishers are spread over the servers in turn. -server-pid takes a list
too, and the server CPU is the sum over those processes (redis-server's
may be among them); -metrics-url then lists one endpoint per server, or
none (its single default stands for one server only). The report adds
each server's share and the end-to-end latency of subscribers on a server
none of their topic's publishers is on.

With -rate 0, publishers send as fast as -window allows: a window larger
than the server's per-subscriber queue (PUBSUB_MAX_QUEUE_SIZE, 100) lets
bursts overflow even fast subscribers, which then show announced drops.

Flags:
`

// parseConfig parses and validates args. Usage and errors go to errOut.
func parseConfig(args []string, errOut io.Writer) (config, error) {
	var c config
	fs := flag.NewFlagSet("pubsub-bench", flag.ContinueOnError)
	fs.SetOutput(errOut)
	fs.Usage = func() {
		fmt.Fprint(errOut, usageText)
		fs.PrintDefaults()
	}
	fs.StringVar(&c.Scenario, "scenario", "fanout", "fanout | topics | slow | conns")
	fs.StringVar(&c.URL, "url", "http://127.0.0.1:8080", "service base URL (REST and /ws), or a comma-separated list of replicas")
	fs.StringVar(&c.MetricsURL, "metrics-url", defaultMetricsURL, "server metrics (process CPU/RSS, delivery counters); a comma-separated list is summed, and with several -url it lists one per entry; empty to skip")
	var pids pidList
	fs.Var(&pids, "server-pid", "read the server's CPU and RSS from /proc/<pid> instead of -metrics-url; a comma-separated list is summed")
	fs.BoolVar(&c.AllowRemote, "allow-remote", false, "allow a non-loopback -url / -metrics-url")
	fs.DurationVar(&c.Duration, "duration", 10*time.Second, "publishing time (conns: how long to hold the connections)")
	fs.Int64Var(&c.Count, "count", 0, "max messages per publisher, 0 = unbounded within -duration (conns default 1)")
	fs.Float64Var(&c.Rate, "rate", 0, "total publish rate over all publishers in msgs/s, 0 = as fast as acks allow")
	fs.IntVar(&c.Size, "size", 100, "payload size in bytes of JSON (at least the ~50 bytes of bench fields)")
	fs.IntVar(&c.Window, "window", 256, "max in-flight (unacknowledged) publishes per publisher")
	fs.IntVar(&c.Topics, "topics", 0, "topics (topics default 100, conns 1; fanout and slow use 1)")
	fs.IntVar(&c.Pubs, "pubs", 0, "publishers per topic (default 1)")
	fs.IntVar(&c.Subs, "subs", 0, "subscribers per topic (fanout default 100, topics 2, slow: fast ones, 10)")
	fs.IntVar(&c.SlowSubs, "slow-subs", 2, "slow scenario: subscribers that sleep -slow-delay after each event")
	fs.IntVar(&c.StalledSubs, "stalled-subs", 2, "slow scenario: subscribers that stop reading until the drain phase")
	fs.DurationVar(&c.SlowDelay, "slow-delay", 10*time.Millisecond, "slow scenario: sleep per event of a slow subscriber")
	fs.IntVar(&c.Conns, "conns", 10000, "conns scenario: idle subscribed connections")
	fs.IntVar(&c.DialParallel, "dial-concurrency", 64, "connections opened in parallel")
	fs.IntVar(&c.Pollers, "pollers", runtime.GOMAXPROCS(0), "epoll loops reading the fast subscribers (Linux, ws://); 0 = a goroutine per subscriber, through gorilla/websocket")
	fs.DurationVar(&c.Drain, "drain", 5*time.Second, "deadline for in-flight acks and deliveries after publishing stops")
	fs.DurationVar(&c.TopicWait, "topic-wait", 10*time.Second, "several -url: how long every server has to list the run's topics after they are created")
	fs.BoolVar(&c.JSON, "json", false, "print one JSON line instead of the table")
	fs.BoolVar(&c.Check, "check", false, "exit 1 if a protocol invariant broke (duplicates, reordering, leaks, silent loss, publish errors)")
	fs.StringVar(&c.APIKey, "api-key", os.Getenv("PUBSUB_API_KEY"), "API key sent as X-API-Key on REST and the WebSocket handshake (default $PUBSUB_API_KEY)")
	fs.StringVar(&c.CPUProfile, "cpuprofile", "", "write the bench's own CPU profile to this file")
	if err := fs.Parse(args); err != nil {
		return c, err
	}
	if fs.NArg() > 0 {
		return c, fmt.Errorf("unexpected arguments: %q", fs.Args())
	}
	d, ok := scenarioDefaults[c.Scenario]
	if !ok {
		return c, fmt.Errorf("-scenario %q: want fanout, topics, slow or conns", c.Scenario)
	}
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	c.pids = pids
	if len(pids) == 1 {
		c.ServerPID = pids[0]
	} else {
		c.ServerPIDs = pids
	}
	if !given["topics"] {
		c.Topics = d.topics
	}
	if !given["pubs"] {
		c.Pubs = d.pubs
	}
	if !given["subs"] {
		c.Subs = d.subs
	}
	if !given["count"] {
		c.Count = int64(d.count)
	}
	if c.Scenario != "slow" {
		c.SlowSubs, c.StalledSubs = 0, 0
	}
	if c.Scenario != "conns" {
		c.Conns = 0
	}
	if err := c.validate(given); err != nil {
		return c, err
	}
	return c, c.resolveURLs(given["metrics-url"])
}

// defaultMetricsURL is the admin listener of a server started with the
// default PUBSUB_ADMIN_ADDR.
const defaultMetricsURL = "http://127.0.0.1:9464/metrics"

// pidList is the -server-pid flag: process ids, comma-separated. A lone 0
// means none, as it did when the flag took one pid.
type pidList []int

func (l *pidList) String() string {
	if l == nil || len(*l) == 0 {
		return ""
	}
	s := make([]string, len(*l))
	for i, p := range *l {
		s[i] = strconv.Itoa(p)
	}
	return strings.Join(s, ",")
}

// Set parses the list, refusing a repeated pid: its CPU would count twice.
func (l *pidList) Set(v string) error {
	if strings.TrimSpace(v) == "0" {
		*l = nil
		return nil
	}
	var out pidList
	seen := map[int]bool{}
	for _, f := range strings.Split(v, ",") {
		p, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || p <= 0 {
			return fmt.Errorf("%q is not a process id (want positive integers, comma-separated)", f)
		}
		if seen[p] {
			return fmt.Errorf("pid %d given twice", p)
		}
		seen[p] = true
		out = append(out, p)
	}
	*l = out
	return nil
}

// splitList splits a comma-separated flag value into its trimmed entries,
// refusing empty ones (a stray comma is a typo, not a server).
func splitList(flagName, v string) ([]string, error) {
	var out []string
	for _, f := range strings.Split(v, ",") {
		f = strings.TrimSpace(f)
		if f == "" {
			return nil, fmt.Errorf("%s %q: empty entry in the list", flagName, v)
		}
		out = append(out, f)
	}
	return out, nil
}

func (c *config) validate(given map[string]bool) error {
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	if c.Duration <= 0 {
		bad("-duration must be positive, got %s", c.Duration)
	}
	if c.Drain <= 0 {
		bad("-drain must be positive, got %s", c.Drain)
	}
	if c.Count < 0 {
		bad("-count must be >= 0, got %d", c.Count)
	}
	if c.Rate < 0 {
		bad("-rate must be >= 0, got %g", c.Rate)
	}
	if c.Size < 0 || c.Size > 1<<20 {
		bad("-size must be in [0, 1048576], got %d", c.Size)
	}
	if c.Window < 1 || c.Window > 1<<16 {
		bad("-window must be in [1, 65536], got %d", c.Window)
	}
	if c.Topics < 1 {
		bad("-topics must be >= 1, got %d", c.Topics)
	}
	if (c.Scenario == "fanout" || c.Scenario == "slow") && c.Topics != 1 {
		bad("-topics: the %s scenario uses one topic (use -scenario topics)", c.Scenario)
	}
	if c.Pubs < 1 {
		bad("-pubs must be >= 1, got %d", c.Pubs)
	}
	if c.Subs < 0 {
		bad("-subs must be >= 0, got %d", c.Subs)
	}
	if c.Scenario == "conns" && given["subs"] {
		bad("-subs: the conns scenario takes -conns")
	}
	if c.SlowSubs < 0 || c.StalledSubs < 0 {
		bad("-slow-subs and -stalled-subs must be >= 0")
	}
	if c.Scenario == "slow" && c.SlowSubs+c.StalledSubs == 0 {
		bad("the slow scenario needs -slow-subs or -stalled-subs > 0")
	}
	if c.SlowDelay < 0 {
		bad("-slow-delay must be >= 0, got %s", c.SlowDelay)
	}
	if c.Scenario == "conns" && c.Conns < 1 {
		bad("-conns must be >= 1, got %d", c.Conns)
	}
	if c.Pollers < 0 {
		bad("-pollers must be >= 0, got %d", c.Pollers)
	}
	if c.DialParallel < 1 {
		bad("-dial-concurrency must be >= 1, got %d", c.DialParallel)
	}
	if c.TopicWait <= 0 {
		bad("-topic-wait must be positive, got %s", c.TopicWait)
	}
	if c.Pubs*c.Topics > maxPublishersTotal {
		bad("-pubs x -topics must be <= %d (message ids encode the publisher), got %d", maxPublishersTotal, c.Pubs*c.Topics)
	}
	return errors.Join(errs...)
}

// resolveURLs derives the REST and WebSocket URLs of every -url entry and
// the metrics endpoints, and refuses targets that are not on this machine
// unless -allow-remote: a load generator pointed at a shared service by a
// typo does real harm.
func (c *config) resolveURLs(metricsGiven bool) error {
	urls, err := splitList("-url", c.URL)
	if err != nil {
		return err
	}
	seen := map[string]bool{}
	for _, raw := range urls {
		e, host, err := resolveServer(raw)
		if err != nil {
			return err
		}
		if seen[e.rest] {
			// Its subscribers would be counted as another server's share.
			return fmt.Errorf("-url: %s is listed twice", e.rest)
		}
		seen[e.rest] = true
		if err := checkLoopback("-url", host, c.AllowRemote); err != nil {
			return err
		}
		c.servers = append(c.servers, e)
	}
	c.restURL, c.wsURL = c.servers[0].rest, c.servers[0].ws
	if c.APIKey != "" {
		c.header = http.Header{"X-Api-Key": []string{c.APIKey}}
	}
	if len(c.servers) > 1 && !metricsGiven {
		// The default is one server's admin listener; summed with the
		// others' CPU it would be neither one server nor all of them.
		c.MetricsURL = ""
	}
	if c.MetricsURL == "" {
		return nil
	}
	murls, err := splitList("-metrics-url", c.MetricsURL)
	if err != nil {
		return err
	}
	if len(c.servers) > 1 && len(murls) != len(c.servers) {
		return fmt.Errorf("-metrics-url: %d endpoints for %d servers; give one per -url entry, in the same order, or none", len(murls), len(c.servers))
	}
	for _, raw := range murls {
		m, err := url.Parse(raw)
		if err != nil || (m.Scheme != "http" && m.Scheme != "https") || m.Host == "" {
			return fmt.Errorf("-metrics-url %q: want an http(s) URL", raw)
		}
		if slices.Contains(c.metricsURLs, raw) {
			return fmt.Errorf("-metrics-url: %s is listed twice", raw)
		}
		if err := checkLoopback("-metrics-url", m.Hostname(), c.AllowRemote); err != nil {
			return err
		}
		c.metricsURLs = append(c.metricsURLs, raw)
	}
	return nil
}

// resolveServer derives one server's REST base and /ws URLs from a -url
// entry, and returns its host for the loopback check.
func resolveServer(raw string) (endpoint, string, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return endpoint{}, "", fmt.Errorf("-url: %w", err)
	}
	rest, ws := *u, *u
	switch u.Scheme {
	case "http", "ws":
		rest.Scheme, ws.Scheme = "http", "ws"
	case "https", "wss":
		rest.Scheme, ws.Scheme = "https", "wss"
	default:
		return endpoint{}, "", fmt.Errorf("-url %q: scheme must be http, https, ws or wss", raw)
	}
	if u.Host == "" {
		return endpoint{}, "", fmt.Errorf("-url %q: no host", raw)
	}
	rest.Path = strings.TrimSuffix(strings.TrimSuffix(u.Path, "/ws"), "/")
	ws.Path = rest.Path + "/ws"
	rest.RawQuery, ws.RawQuery = "", ""
	return endpoint{rest: rest.String(), ws: ws.String()}, u.Hostname(), nil
}

// checkLoopback accepts a loopback IP, or a name all of whose addresses are
// loopback.
func checkLoopback(flagName, host string, allowRemote bool) error {
	if allowRemote {
		return nil
	}
	if ip := net.ParseIP(host); ip != nil {
		if ip.IsLoopback() {
			return nil
		}
		return fmt.Errorf("%s: %s is not a loopback address (pass -allow-remote to target it)", flagName, host)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	addrs, err := net.DefaultResolver.LookupIPAddr(ctx, host)
	if err != nil {
		return fmt.Errorf("%s: resolve %s: %w", flagName, host, err)
	}
	for _, a := range addrs {
		if !a.IP.IsLoopback() {
			return fmt.Errorf("%s: %s resolves to %s, not loopback (pass -allow-remote to target it)", flagName, host, a.IP)
		}
	}
	if len(addrs) == 0 {
		return fmt.Errorf("%s: %s has no addresses", flagName, host)
	}
	return nil
}
