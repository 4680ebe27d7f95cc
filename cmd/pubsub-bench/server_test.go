package main

import (
	"os"
	"strings"
	"testing"
)

func TestParseMetrics(t *testing.T) {
	text := `# HELP process_cpu_seconds_total Total user and system CPU time spent in seconds.
# TYPE process_cpu_seconds_total counter
process_cpu_seconds_total 12.5
process_resident_memory_bytes 1.048576e+07
pubsub_messages_dropped_total{reason="overflow_drop_oldest"} 7
pubsub_messages_dropped_total{reason="we{ird} \"quoted\""} 3 1700000000000
pubsub_messages_delivered_total_other 99
pubsub_messages_delivered_total 1000
# EOF
`
	want := map[string]bool{"process_cpu_seconds_total": true, "process_resident_memory_bytes": true,
		"pubsub_messages_dropped_total": true, "pubsub_messages_delivered_total": true, "absent": true}
	got, err := parseMetrics(strings.NewReader(text), want)
	if err != nil {
		t.Fatal(err)
	}
	exp := map[string]float64{"process_cpu_seconds_total": 12.5, "process_resident_memory_bytes": 10485760,
		"pubsub_messages_dropped_total": 10, "pubsub_messages_delivered_total": 1000}
	if len(got) != len(exp) {
		t.Fatalf("got %v, want %v", got, exp)
	}
	for k, v := range exp {
		if got[k] != v {
			t.Errorf("%s = %g, want %g", k, got[k], v)
		}
	}
}

func TestParseProcStat(t *testing.T) {
	// The command name may contain spaces and ')'.
	stat := "4242 (pub sub) d) S 1 4242 4242 0 -1 4194560 1000 0 0 0 250 130 0 0 20 0 8 0 100 1000000 2000 18446744073709551615\n"
	got, err := parseProcStat([]byte(stat))
	if err != nil || got != 3.8 {
		t.Fatalf("parseProcStat = %g, %v; want 3.8", got, err)
	}
	if _, err := parseProcStat([]byte("4242 (x) S 1 2")); err == nil {
		t.Fatal("short stat line accepted")
	}
}

func TestParseVmRSS(t *testing.T) {
	got, err := parseVmRSS([]byte("Name:\tpubsubd\nVmPeak:\t  9000 kB\nVmRSS:\t    2048 kB\nThreads: 8\n"))
	if err != nil || got != 2048*1024 {
		t.Fatalf("parseVmRSS = %g, %v", got, err)
	}
	if _, err := parseVmRSS([]byte("Name:\tx\n")); err == nil {
		t.Fatal("status without VmRSS accepted")
	}
}

func TestReadProcOfSelf(t *testing.T) {
	if _, err := os.Stat("/proc/self/stat"); err != nil {
		t.Skip("no /proc on this system")
	}
	cpu, rss, err := readProc(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if cpu < 0 || rss < 1<<20 {
		t.Fatalf("own cpu %g s, rss %g bytes: implausible", cpu, rss)
	}
}

func TestRaiseFileLimitReachesSmallNeed(t *testing.T) {
	got, err := raiseFileLimit(64)
	if err != nil || got < 64 {
		t.Fatalf("raiseFileLimit(64) = %d, %v", got, err)
	}
}
