package main

import "testing"

func TestBitset(t *testing.T) {
	var s bitset
	for _, n := range []int64{1, 2, 64, 65, 1000} {
		if s.set(n) {
			t.Fatalf("set(%d) reported a duplicate on first insert", n)
		}
	}
	if !s.set(64) {
		t.Fatal("set(64) twice did not report a duplicate")
	}
	if !s.has(1000) || s.has(999) || s.has(1<<20) {
		t.Fatal("has() disagrees with what was set")
	}
	if s.count() != 5 {
		t.Fatalf("count = %d, want 5", s.count())
	}
	var want bitset
	for _, n := range []int64{1, 3, 64, 5000} {
		want.set(n)
	}
	if got := s.missing(want); got != 2 { // 3 and 5000
		t.Fatalf("missing = %d, want 2", got)
	}
	if got := s.extra(want); got != 3 { // 2, 65, 1000
		t.Fatalf("extra = %d, want 3", got)
	}
}

// event is one delivery as a subscriber sees it.
type event struct {
	pub int
	seq int64 // bench sequence of that publisher
	srv int64 // server seq, 0 = absent
}

func TestStreamTrackerAccounting(t *testing.T) {
	tests := []struct {
		name     string
		pubs     int
		acked    [][]int64 // per publisher: acked bench sequences
		events   []event
		notices  []int64 // SLOW_CONSUMER drop counts
		accepted int64
		want     streamTracker // only the counters are compared
		loss     lossReport
	}{
		{
			name: "clean stream from two publishers",
			pubs: 2, acked: [][]int64{{1, 2}, {1, 2}}, accepted: 4,
			events: []event{{0, 1, 1}, {1, 1, 2}, {0, 2, 3}, {1, 2, 4}},
			want:   streamTracker{received: 4, lastSeq: 4},
			loss:   lossReport{expected: 4},
		},
		{
			name: "drops announced by SLOW_CONSUMER show as a seq gap",
			pubs: 1, acked: [][]int64{{1, 2, 3, 4, 5, 6}}, accepted: 6, notices: []int64{3},
			events: []event{{0, 1, 1}, {0, 5, 5}, {0, 6, 6}},
			want:   streamTracker{received: 3, lastSeq: 6, seqGaps: 1, seqMissed: 3, dropNotices: 1, dropsReported: 3},
			loss:   lossReport{expected: 6, lost: 3},
		},
		{
			name: "undelivered tail after the last event",
			pubs: 1, acked: [][]int64{{1, 2, 3, 4}}, accepted: 4,
			events: []event{{0, 1, 1}, {0, 2, 2}},
			want:   streamTracker{received: 2, lastSeq: 2},
			loss:   lossReport{expected: 4, lost: 2, tail: 2},
		},
		{
			name: "duplicate delivery",
			pubs: 1, acked: [][]int64{{1, 2}}, accepted: 2,
			events: []event{{0, 1, 1}, {0, 2, 2}, {0, 2, 2}},
			want:   streamTracker{received: 3, duplicates: 1, lastSeq: 2, seqBack: 1},
			loss:   lossReport{expected: 2},
		},
		{
			name: "reordered delivery",
			pubs: 1, acked: [][]int64{{1, 2, 3}}, accepted: 3,
			events: []event{{0, 1, 1}, {0, 3, 3}, {0, 2, 2}},
			want:   streamTracker{received: 3, reordered: 1, lastSeq: 3, seqGaps: 1, seqMissed: 1, seqBack: 1},
			loss:   lossReport{expected: 3},
		},
		{
			name: "silent loss: payload missing though seq is contiguous",
			pubs: 1, acked: [][]int64{{1, 2, 3}}, accepted: 3,
			events: []event{{0, 1, 1}, {0, 3, 2}},
			want:   streamTracker{received: 2, lastSeq: 2},
			loss:   lossReport{expected: 3, lost: 1, tail: 1},
		},
		{
			name: "received a message whose publish was never acked",
			pubs: 1, acked: [][]int64{{1}}, accepted: 1,
			events: []event{{0, 1, 1}, {0, 2, 2}},
			want:   streamTracker{received: 2, lastSeq: 2},
			loss:   lossReport{expected: 1, unacked: 1},
		},
		{
			name: "server without the seq extension",
			pubs: 1, acked: [][]int64{{1, 2}}, accepted: 2,
			events: []event{{0, 1, 0}, {0, 2, 0}},
			want:   streamTracker{received: 2, noSeq: 2},
			loss:   lossReport{expected: 2},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tr := newStreamTracker(tc.pubs)
			for _, e := range tc.events {
				tr.observeSeq(e.srv, e.srv > 0)
				tr.observe(e.pub, e.seq)
			}
			for _, n := range tc.notices {
				tr.observeDropNotice(n)
			}
			if got := counters(tr); got != counters(tc.want) {
				t.Errorf("counters %+v\nwant     %+v", got, counters(tc.want))
			}
			acked := make([]bitset, tc.pubs)
			for p, seqs := range tc.acked {
				for _, s := range seqs {
					acked[p].set(s)
				}
			}
			if l := tr.loss(acked, tc.accepted); l != tc.loss {
				t.Errorf("loss %+v, want %+v", l, tc.loss)
			}
			wantProgress := tc.want.lastSeq
			if wantProgress == 0 {
				wantProgress = tc.want.received
			}
			if tr.progress() != wantProgress {
				t.Errorf("progress %d, want %d", tr.progress(), wantProgress)
			}
		})
	}
}

// counters is the comparable part of a streamTracker.
func counters(t streamTracker) [10]int64 {
	return [10]int64{t.received, t.duplicates, t.reordered, t.lastSeq, t.seqGaps, t.seqMissed,
		t.seqBack, t.noSeq, t.dropNotices, t.dropsReported}
}
