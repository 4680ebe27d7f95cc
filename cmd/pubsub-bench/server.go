package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// serverSample is one reading of the servers' resources and counters,
// summed over every process (-server-pid) or endpoint (-metrics-url).
type serverSample struct {
	cpuSec   float64 // user+system CPU seconds
	rssBytes float64
	ok       bool   // cpuSec and rssBytes are valid
	source   string // "proc" or "metrics"
	// Selected service counters from the metrics endpoints (when reachable).
	counters map[string]float64
	// procs holds each process's or endpoint's own reading, in flag order,
	// when there are several (nil otherwise).
	procs []procSample
}

// procSample is one process's share of a serverSample.
type procSample struct {
	name     string // "pid 1234" or the metrics URL
	cpuSec   float64
	rssBytes float64
}

// serverCounters are the series summed (over their labels) from /metrics
// to cross-check what the bench saw against what the server says it did.
var serverCounters = []string{
	"process_cpu_seconds_total",
	"process_resident_memory_bytes",
	"pubsub_messages_published_total",
	"pubsub_messages_delivered_total",
	"pubsub_messages_dropped_total",
	"pubsub_slow_consumer_disconnects_total",
	"pubsub_publisher_stalls_total",
	"pubsub_publisher_stall_seconds_sum",
}

// sampler reads the servers' resources: /proc/<pid> when pids are given
// (exact, and works without a metrics endpoint), else the Prometheus
// process collector at the metrics URLs. Several readings are summed: the
// cost of a delivery is what every server of the run spent on it.
type sampler struct {
	pids        []int
	metricsURLs []string
	http        *http.Client
}

func (s *sampler) sample(ctx context.Context) (serverSample, error) {
	out := serverSample{}
	var errs []string
	var fromMetrics, fromProc []procSample
	for _, u := range s.metricsURLs {
		m, err := s.scrape(ctx, u)
		if err != nil {
			errs = append(errs, err.Error())
			continue
		}
		if out.counters == nil {
			out.counters = map[string]float64{}
		}
		for k, v := range m {
			out.counters[k] += v
		}
		cpu, ok1 := m["process_cpu_seconds_total"]
		rss, ok2 := m["process_resident_memory_bytes"]
		if ok1 && ok2 {
			fromMetrics = append(fromMetrics, procSample{name: u, cpuSec: cpu, rssBytes: rss})
		}
	}
	for _, pid := range s.pids {
		cpu, rss, err := readProc(pid)
		if err != nil {
			errs = append(errs, err.Error())
			continue
		}
		fromProc = append(fromProc, procSample{name: "pid " + strconv.Itoa(pid), cpuSec: cpu, rssBytes: rss})
	}
	// A sum that misses one server would pass for a cheaper run: the
	// sample is valid only when every process of its source answered.
	switch {
	case len(s.pids) > 0 && len(fromProc) == len(s.pids):
		out.sum(fromProc, "proc")
	case len(s.pids) == 0 && len(s.metricsURLs) > 0 && len(fromMetrics) == len(s.metricsURLs):
		out.sum(fromMetrics, "metrics")
	}
	if !out.ok {
		if len(errs) == 0 && len(s.metricsURLs) > 0 {
			errs = append(errs, "no process CPU and RSS in the metrics")
		}
		return out, fmt.Errorf("server resources unavailable: %s", strings.Join(errs, "; "))
	}
	return out, nil
}

// sum sets the sample's totals from its processes' readings.
func (out *serverSample) sum(ps []procSample, source string) {
	out.cpuSec, out.rssBytes = 0, 0
	for _, p := range ps {
		out.cpuSec += p.cpuSec
		out.rssBytes += p.rssBytes
	}
	out.ok, out.source = true, source
	if len(ps) > 1 {
		out.procs = ps
	}
}

func (s *sampler) scrape(ctx context.Context, metricsURL string) (map[string]float64, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, metricsURL, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "text/plain;version=0.0.4")
	resp, err := s.http.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("GET %s: HTTP %d", metricsURL, resp.StatusCode)
	}
	want := map[string]bool{}
	for _, n := range serverCounters {
		want[n] = true
	}
	return parseMetrics(resp.Body, want)
}

// parseMetrics sums, per metric name in want, the values of all its series
// in a Prometheus text (or OpenMetrics) exposition.
func parseMetrics(r io.Reader, want map[string]bool) (map[string]float64, error) {
	out := map[string]float64{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Bytes()
		if len(line) == 0 || line[0] == '#' {
			continue
		}
		end := bytes.IndexAny(line, "{ ")
		if end <= 0 {
			continue
		}
		name := line[:end]
		if !want[string(name)] {
			continue
		}
		rest := line[end:]
		if rest[0] == '{' {
			closing := labelsEnd(rest)
			if closing < 0 {
				continue
			}
			rest = rest[closing+1:]
		}
		fields := strings.Fields(string(rest))
		if len(fields) == 0 {
			continue
		}
		v, err := strconv.ParseFloat(fields[0], 64)
		if err != nil {
			continue
		}
		out[string(name)] += v
	}
	return out, sc.Err()
}

// labelsEnd returns the index of the '}' closing a label set that starts
// at b[0], honouring quoted label values, or -1.
func labelsEnd(b []byte) int {
	inQuote := false
	for i := 1; i < len(b); i++ {
		switch {
		case inQuote && b[i] == '\\':
			i++
		case b[i] == '"':
			inQuote = !inQuote
		case !inQuote && b[i] == '}':
			return i
		}
	}
	return -1
}

// clockTicks is USER_HZ, the unit of /proc/<pid>/stat CPU times; Linux
// fixes it at 100 for user space on every architecture Go supports.
const clockTicks = 100

// readProc reads a process's CPU seconds (utime+stime) and VmRSS.
func readProc(pid int) (cpuSec, rssBytes float64, err error) {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0, 0, err
	}
	cpuSec, err = parseProcStat(stat)
	if err != nil {
		return 0, 0, err
	}
	status, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, 0, err
	}
	rssBytes, err = parseVmRSS(status)
	return cpuSec, rssBytes, err
}

// parseProcStat returns utime+stime in seconds. The command name (field 2)
// may hold spaces and parentheses, so fields are counted after its last ')'.
func parseProcStat(b []byte) (float64, error) {
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return 0, fmt.Errorf("/proc stat: no command field")
	}
	f := strings.Fields(string(b[i+1:]))
	// f[0] is field 3 (state); utime and stime are fields 14 and 15.
	if len(f) < 13 {
		return 0, fmt.Errorf("/proc stat: %d fields", len(f)+2)
	}
	ut, err1 := strconv.ParseUint(f[11], 10, 64)
	st, err2 := strconv.ParseUint(f[12], 10, 64)
	if err1 != nil || err2 != nil {
		return 0, fmt.Errorf("/proc stat: bad utime/stime %q %q", f[11], f[12])
	}
	return float64(ut+st) / clockTicks, nil
}

// parseVmRSS returns the VmRSS line of /proc/<pid>/status in bytes.
func parseVmRSS(b []byte) (float64, error) {
	for _, line := range strings.Split(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			f := strings.Fields(rest)
			if len(f) == 2 && f[1] == "kB" {
				kb, err := strconv.ParseFloat(f[0], 64)
				if err == nil {
					return kb * 1024, nil
				}
			}
			return 0, fmt.Errorf("/proc status: bad VmRSS line %q", line)
		}
	}
	return 0, fmt.Errorf("/proc status: no VmRSS line")
}

// selfCPU returns this process's user+system CPU seconds.
func selfCPU() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	tv := func(t syscall.Timeval) float64 { return float64(t.Sec) + float64(t.Usec)/1e6 }
	return tv(ru.Utime) + tv(ru.Stime)
}

// raiseFileLimit lifts RLIMIT_NOFILE's soft limit to the hard limit (and,
// when that is still below need, tries to lift the hard limit too, which
// root may do). It returns the resulting soft limit.
func raiseFileLimit(need uint64) (uint64, error) {
	var lim syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0, err
	}
	if lim.Cur >= need {
		return lim.Cur, nil
	}
	if lim.Max < need {
		want := syscall.Rlimit{Cur: need, Max: need}
		if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &want); err == nil {
			return need, nil
		}
	}
	lim.Cur = lim.Max
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		return 0, err
	}
	return lim.Cur, nil
}
