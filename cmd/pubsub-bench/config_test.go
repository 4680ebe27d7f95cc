package main

import (
	"io"
	"strings"
	"testing"
	"time"
)

func TestParseConfigDefaultsPerScenario(t *testing.T) {
	tests := []struct {
		args                      []string
		topics, pubs, subs, conns int
		count                     int64
	}{
		{args: nil, topics: 1, pubs: 1, subs: 100},
		{args: []string{"-scenario", "topics"}, topics: 100, pubs: 1, subs: 2},
		{args: []string{"-scenario", "topics", "-topics", "5", "-subs", "0"}, topics: 5, pubs: 1, subs: 0},
		{args: []string{"-scenario", "slow"}, topics: 1, pubs: 1, subs: 10},
		{args: []string{"-scenario", "conns"}, topics: 1, pubs: 1, conns: 10000, count: 1},
		{args: []string{"-scenario", "conns", "-count", "3", "-conns", "20"}, topics: 1, pubs: 1, conns: 20, count: 3},
	}
	for _, tc := range tests {
		c, err := parseConfig(tc.args, io.Discard)
		if err != nil {
			t.Errorf("%v: %v", tc.args, err)
			continue
		}
		if c.Topics != tc.topics || c.Pubs != tc.pubs || c.Subs != tc.subs || c.Conns != tc.conns || c.Count != tc.count {
			t.Errorf("%v: topics/pubs/subs/conns/count = %d/%d/%d/%d/%d, want %d/%d/%d/%d/%d", tc.args,
				c.Topics, c.Pubs, c.Subs, c.Conns, c.Count, tc.topics, tc.pubs, tc.subs, tc.conns, tc.count)
		}
	}
	c, err := parseConfig([]string{"-url", "http://127.0.0.1:9/base/", "-scenario", "slow"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if c.wsURL != "ws://127.0.0.1:9/base/ws" || c.restURL != "http://127.0.0.1:9/base" {
		t.Errorf("ws/rest URL %q %q", c.wsURL, c.restURL)
	}
	if c.SlowSubs != 2 || c.StalledSubs != 2 || c.SlowDelay != 10*time.Millisecond || c.Duration != 10*time.Second {
		t.Errorf("slow defaults: %+v", c)
	}
}

func TestParseConfigRejects(t *testing.T) {
	tests := []struct {
		args []string
		want string // substring of the error
	}{
		{[]string{"-scenario", "nope"}, "-scenario"},
		{[]string{"-duration", "0s"}, "-duration"},
		{[]string{"-drain", "-1s"}, "-drain"},
		{[]string{"-count", "-1"}, "-count"},
		{[]string{"-rate", "-5"}, "-rate"},
		{[]string{"-size", "-1"}, "-size"},
		{[]string{"-size", "2000000"}, "-size"},
		{[]string{"-window", "0"}, "-window"},
		{[]string{"-pubs", "0"}, "-pubs"},
		{[]string{"-subs", "-1"}, "-subs"},
		{[]string{"-topics", "3"}, "one topic"},
		{[]string{"-scenario", "slow", "-topics", "2"}, "one topic"},
		{[]string{"-scenario", "topics", "-topics", "0"}, "-topics"},
		{[]string{"-scenario", "slow", "-slow-subs", "0", "-stalled-subs", "0"}, "slow scenario needs"},
		{[]string{"-scenario", "slow", "-slow-delay", "-1ms"}, "-slow-delay"},
		{[]string{"-scenario", "conns", "-conns", "0"}, "-conns"},
		{[]string{"-scenario", "conns", "-subs", "5"}, "takes -conns"},
		{[]string{"-dial-concurrency", "0"}, "-dial-concurrency"},
		{[]string{"-server-pid", "-3"}, "-server-pid"},
		{[]string{"-scenario", "topics", "-topics", "1000", "-pubs", "20"}, "-pubs x -topics"},
		{[]string{"-url", "ftp://127.0.0.1:8080"}, "scheme"},
		{[]string{"-url", "http://"}, "no host"},
		{[]string{"-url", "http://10.1.2.3:8080"}, "not a loopback"},
		{[]string{"-url", "http://[2001:db8::1]:8080"}, "not a loopback"},
		{[]string{"-metrics-url", "http://192.0.2.1:9464/metrics"}, "not a loopback"},
		{[]string{"-metrics-url", "127.0.0.1:9464"}, "-metrics-url"},
		{[]string{"extra"}, "unexpected arguments"},
		{[]string{"-bogus"}, "not defined"},
	}
	for _, tc := range tests {
		_, err := parseConfig(tc.args, io.Discard)
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: error %v, want one containing %q", tc.args, err, tc.want)
		}
	}
}

func TestParseConfigAllowsLoopbackAndExplicitRemote(t *testing.T) {
	for _, args := range [][]string{
		{"-url", "http://127.0.0.1:8080"},
		{"-url", "ws://127.0.0.2:8080/ws"},
		{"-url", "http://[::1]:8080", "-metrics-url", "http://[::1]:9464/metrics"},
		{"-url", "http://localhost:8080", "-metrics-url", ""},
		{"-url", "http://10.1.2.3:8080", "-metrics-url", "http://10.1.2.3:9464/metrics", "-allow-remote"},
	} {
		if _, err := parseConfig(args, io.Discard); err != nil {
			t.Errorf("%v: %v", args, err)
		}
	}
}

func TestRunExitCodesForFlags(t *testing.T) {
	var out, errOut strings.Builder
	if code := run(t.Context(), []string{"-h"}, &out, &errOut); code != 0 {
		t.Errorf("-h exit %d, want 0", code)
	}
	if !strings.Contains(errOut.String(), "Scenarios") {
		t.Errorf("-h printed no usage: %q", errOut.String())
	}
	if code := run(t.Context(), []string{"-window", "0"}, &out, io.Discard); code != 2 {
		t.Errorf("bad flag exit %d, want 2", code)
	}
}
