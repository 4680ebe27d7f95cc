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

// serverSample is one reading of the server's resources and counters.
type serverSample struct {
	cpuSec   float64 // user+system CPU seconds
	rssBytes float64
	ok       bool   // cpuSec and rssBytes are valid
	source   string // "proc" or "metrics"
	// Selected service counters from the metrics endpoint (when reachable).
	counters map[string]float64
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

// sampler reads the server's resources: /proc/<pid> when a pid is given
// (exact, and works without a metrics endpoint), else the Prometheus
// process collector at the metrics URL.
type sampler struct {
	pid        int
	metricsURL string
	http       *http.Client
}

func (s *sampler) sample(ctx context.Context) (serverSample, error) {
	out := serverSample{}
	var errs []string
	if s.metricsURL != "" {
		m, err := s.scrape(ctx)
		if err != nil {
			errs = append(errs, err.Error())
		} else {
			out.counters = m
			cpu, ok1 := m["process_cpu_seconds_total"]
			rss, ok2 := m["process_resident_memory_bytes"]
			if s.pid == 0 && ok1 && ok2 {
				out.cpuSec, out.rssBytes, out.ok, out.source = cpu, rss, true, "metrics"
			}
		}
	}
	if s.pid > 0 {
		cpu, rss, err := readProc(s.pid)
		if err != nil {
			errs = append(errs, err.Error())
		} else {
			out.cpuSec, out.rssBytes, out.ok, out.source = cpu, rss, true, "proc"
		}
	}
	if !out.ok {
		return out, fmt.Errorf("server resources unavailable: %s", strings.Join(errs, "; "))
	}
	return out, nil
}

func (s *sampler) scrape(ctx context.Context) (map[string]float64, error) {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.metricsURL, nil)
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
		return nil, fmt.Errorf("GET %s: HTTP %d", s.metricsURL, resp.StatusCode)
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
