package main

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

func TestBucketBoundsCoverEveryValue(t *testing.T) {
	// Buckets must tile [0, histMaxValue] without gaps or overlaps, and
	// each must be at most 1/histSub of its lower bound wide.
	prevHi := int64(-1)
	for i := range histBuckets {
		lo, hi := bucketBounds(i)
		if lo != prevHi+1 {
			t.Fatalf("bucket %d starts at %d, previous ended at %d", i, lo, prevHi)
		}
		if bucketOf(lo) != i || bucketOf(hi) != i {
			t.Fatalf("bucket %d [%d,%d]: bucketOf(lo)=%d bucketOf(hi)=%d", i, lo, hi, bucketOf(lo), bucketOf(hi))
		}
		if lo >= 2*histSub && float64(hi-lo+1) > float64(lo)/histSub {
			t.Fatalf("bucket %d [%d,%d] wider than 1/%d of its start", i, lo, hi, histSub)
		}
		prevHi = hi
	}
	if prevHi != histMaxValue {
		t.Fatalf("last bucket ends at %d, want %d", prevHi, int64(histMaxValue))
	}
	if got := bucketOf(math.MaxInt64); got != histBuckets-1 {
		t.Fatalf("bucketOf(MaxInt64) = %d, want the last bucket %d", got, histBuckets-1)
	}
	if got := bucketOf(-5); got != 0 {
		t.Fatalf("bucketOf(-5) = %d, want 0", got)
	}
}

func TestQuantilesMatchExactWithinBucketError(t *testing.T) {
	tests := []struct {
		name string
		gen  func(r *rand.Rand) int64
	}{
		{"uniform 0..1ms", func(r *rand.Rand) int64 { return r.Int64N(1_000_000) }},
		{"lognormal around 50µs", func(r *rand.Rand) int64 { return int64(math.Exp(r.NormFloat64()*1.5 + math.Log(50_000))) }},
		{"small integers", func(r *rand.Rand) int64 { return r.Int64N(300) }},
		{"bimodal", func(r *rand.Rand) int64 {
			if r.IntN(100) == 0 {
				return 5_000_000_000 + r.Int64N(1e9)
			}
			return 20_000 + r.Int64N(5_000)
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			r := rand.New(rand.NewPCG(1, 2))
			var h histogram
			samples := make([]int64, 100_000)
			for i := range samples {
				samples[i] = tc.gen(r)
				h.record(samples[i])
			}
			slices.Sort(samples)
			for _, q := range []float64{0, 0.5, 0.9, 0.99, 0.999, 1} {
				rank := max(int(math.Ceil(q*float64(len(samples)))), 1)
				exact := samples[rank-1]
				got := h.quantile(q)
				// Midpoint of a bucket at most exact/histSub wide.
				tol := float64(exact)/histSub/2 + 1
				if math.Abs(float64(got-exact)) > tol {
					t.Errorf("q=%g: got %d, exact %d (tolerance %.0f)", q, got, exact, tol)
				}
			}
			if h.quantile(1) != samples[len(samples)-1] || h.min != samples[0] {
				t.Errorf("max/min %d/%d, want exact %d/%d", h.quantile(1), h.min, samples[len(samples)-1], samples[0])
			}
		})
	}
}

func TestHistogramMergeEqualsCombinedRecording(t *testing.T) {
	var a, b, both histogram
	for i := int64(1); i <= 5000; i++ {
		v := i * i
		if i%3 == 0 {
			a.record(v)
		} else {
			b.record(v)
		}
		both.record(v)
	}
	var m histogram
	m.merge(&a)
	m.merge(&b)
	m.merge(&histogram{}) // merging an empty histogram changes nothing
	if m.n != both.n || m.min != both.min || m.max != both.max || m.sum != both.sum {
		t.Fatalf("merged n/min/max/sum %d/%d/%d/%g, want %d/%d/%d/%g", m.n, m.min, m.max, m.sum, both.n, both.min, both.max, both.sum)
	}
	if !slices.Equal(m.counts, both.counts) {
		t.Fatal("merged bucket counts differ from recording everything into one histogram")
	}
}

func TestHistogramEmptyAndClamped(t *testing.T) {
	var h histogram
	if h.quantile(0.99) != 0 || h.summary().Count != 0 || h.counts != nil {
		t.Fatal("an empty histogram must report zeros and allocate nothing")
	}
	h.record(-10) // a negative latency is counted as 0
	h.record(100 * 1e9)
	if h.min != 0 {
		t.Errorf("min = %d, want 0 for a negative sample", h.min)
	}
	if h.quantile(1) != 100*1e9 {
		t.Errorf("max = %d, want the exact 100s beyond the last bucket", h.quantile(1))
	}
	s := h.summary()
	if s.Count != 2 || s.Max != 100e6 {
		t.Errorf("summary %+v: want count 2, max 100e6 µs", s)
	}
}

func TestHistogramRecordDoesNotAllocate(t *testing.T) {
	var h histogram
	h.record(1)
	v := int64(0)
	if n := testing.AllocsPerRun(1000, func() { v += 997; h.record(v) }); n != 0 {
		t.Fatalf("record allocates %.1f times per call", n)
	}
}

func BenchmarkHistogramRecord(b *testing.B) {
	var h histogram
	for i := range b.N {
		h.record(int64(i) * 7919 % 10_000_000)
	}
}
