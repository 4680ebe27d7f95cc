//go:build linux

package main_test

import (
	"encoding/json"
	"strings"
	"testing"
)

// The invariant checker itself: it passes what the contract allows and names every way a stream
// can break it, so a chaos test that passes says something.
func TestCheckStream(t *testing.T) {
	ack := `{"type":"ack","topic":"t","status":"ok","epoch":"e1","seq":0}`
	ev := func(seq, id string) string {
		return `{"type":"event","topic":"t","seq":` + seq + `,"message":{"id":"` + id + `"}}`
	}
	gap := func(from, to string) string {
		return `{"type":"info","topic":"t","msg":"gap","from_seq":` + from + `,"to_seq":` + to + `}`
	}
	seqOf := map[string]uint64{"a": 1, "b": 2, "c": 3, "d": 4}
	all := map[string]bool{"a": true, "b": true, "c": true, "d": true}
	tests := []struct {
		name      string
		frames    []string
		acked     map[string]bool
		violation string // what the first violation says; "" for none
		lost      int    // acked messages inside an announced gap
	}{
		{name: "every message in order", frames: []string{ack, ev("1", "a"), ev("2", "b"), ev("3", "c"), ev("4", "d")}, acked: all},
		{name: "a silent hole", frames: []string{ack, ev("1", "a"), ev("2", "b"), ev("4", "d")}, acked: all,
			violation: "seq 4 after 2 with no gap announced"},
		{name: "an announced gap", frames: []string{ack, ev("1", "a"), ev("2", "b"), gap("3", "3"), ev("4", "d")}, acked: all, lost: 1},
		{name: "a gap that does not start after the last seq", frames: []string{ack, ev("1", "a"), gap("3", "3"), ev("4", "d")}, acked: all,
			violation: "gap 3..3 announced after seq 1", lost: 1},
		{name: "a message twice", frames: []string{ack, ev("1", "a"), ev("2", "a")}, acked: map[string]bool{"a": true},
			violation: "message a (seq 2) delivered twice"},
		{name: "a seq twice", frames: []string{ack, ev("1", "a"), ev("1", "b")}, acked: map[string]bool{"a": true, "b": true},
			violation: "seq 1 delivered twice"},
		{name: "out of order", frames: []string{ack, ev("2", "b"), ev("1", "a")}, acked: map[string]bool{"a": true, "b": true},
			violation: "seq 2 after 0 with no gap announced"},
		{name: "the tail missing", frames: []string{ack, ev("1", "a"), ev("2", "b")}, acked: all,
			violation: "acked message c (seq 3) not received and no gap announced"},
		{name: "an acked message nobody has", frames: []string{ack, ev("1", "a")}, acked: map[string]bool{"a": true, "x": true},
			violation: "acked message x is lost"},
		{name: "an event before the ack", frames: []string{ev("1", "a"), ack}, acked: nil,
			violation: "before the subscribe's ack"},
		{name: "a resume not recovered", frames: []string{ack, ev("1", "a"), `{"type":"ack","topic":"t","status":"ok","epoch":"e1","seq":1,"recovered":false}`},
			acked: map[string]bool{"a": true}, violation: "a resume was not recovered"},
		{name: "a recovered resume goes on", frames: []string{ack, ev("1", "a"), `{"type":"ack","topic":"t","status":"ok","epoch":"e1","seq":3,"recovered":true}`,
			ev("2", "b"), ev("3", "c"), ev("4", "d")}, acked: all},
		{name: "an event after topic_deleted", frames: []string{ack, ev("1", "a"), `{"type":"info","topic":"t","msg":"topic_deleted"}`, ev("2", "b")},
			acked: map[string]bool{"a": true}, violation: "after topic_deleted"},
		{name: "a discontinuity starts a new stream", frames: []string{ack, ev("1", "a"), ev("2", "b"), `{"type":"info","topic":"t","msg":"discontinuity","epoch":"e2"}`, ev("2", "x"), ev("3", "c")},
			acked: map[string]bool{"a": true, "b": true, "c": true, "d": true, "lost": true}, lost: 2},
		{name: "SLOW_CONSUMER lets the seq jump ahead", frames: []string{ack, ev("1", "a"), `{"type":"error","topic":"t","error":{"code":"SLOW_CONSUMER","message":"dropped 2 messages"}}`, ev("4", "d")},
			acked: all, lost: 2},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			frames := make([]cframe, len(tc.frames))
			for i, s := range tc.frames {
				if err := json.Unmarshal([]byte(s), &frames[i]); err != nil {
					t.Fatal(err)
				}
			}
			v := checkStream(frames, tc.acked, seqOf)
			switch {
			case tc.violation == "" && len(v.violations) > 0:
				t.Fatalf("violations %q, want none", v.violations)
			case tc.violation != "" && (len(v.violations) == 0 || !strings.Contains(v.violations[0], tc.violation)):
				t.Fatalf("violations %q, want the first saying %q", v.violations, tc.violation)
			}
			if v.announcedLost != tc.lost {
				t.Fatalf("%d acked messages inside an announced loss, want %d", v.announcedLost, tc.lost)
			}
		})
	}
}
