package main

import (
	"math"
	"math/bits"
)

// The histogram is HDR-style log-linear: values below 2*histSub land in
// exact unit buckets; above that, each power of two is split into histSub
// equal buckets, so a bucket's width is at most 1/histSub of its lower bound
// (0.8 % for histSub=128). Reporting a bucket's midpoint halves that error.
// Values are nanoseconds; anything at or above 2^histMaxBits (~68 s) is
// clamped into the last bucket, while the exact maximum is kept separately.
const (
	histSubBits  = 7
	histSub      = 1 << histSubBits
	histMaxBits  = 36
	histMaxValue = 1<<histMaxBits - 1
	histBuckets  = 2*histSub + (histMaxBits-histSubBits-1)*histSub
)

// histogram records non-negative int64 samples (nanoseconds) with bounded
// relative error and no allocation per sample. The zero value is empty and
// ready to use; the bucket array is allocated on the first record so idle
// subscribers (the conns scenario holds tens of thousands) cost nothing.
// A histogram is owned by one goroutine; merge them after that goroutine ends.
type histogram struct {
	counts []uint64
	n      uint64
	sum    float64
	min    int64
	max    int64
}

// bucketOf maps a value to its bucket index.
func bucketOf(v int64) int {
	if v < 0 {
		v = 0
	}
	if v > histMaxValue {
		v = histMaxValue
	}
	u := uint64(v)
	if u < 2*histSub {
		return int(u)
	}
	shift := bits.Len64(u) - (histSubBits + 1)
	mantissa := u >> uint(shift) // in [histSub, 2*histSub)
	return 2*histSub + (shift-1)*histSub + int(mantissa-histSub)
}

// bucketBounds returns the smallest and largest value that map to bucket i.
func bucketBounds(i int) (lo, hi int64) {
	if i < 2*histSub {
		return int64(i), int64(i)
	}
	shift := (i-2*histSub)/histSub + 1
	mantissa := int64(histSub + (i-2*histSub)%histSub)
	lo = mantissa << uint(shift)
	return lo, lo + (1 << uint(shift)) - 1
}

func (h *histogram) record(v int64) {
	if h.counts == nil {
		h.counts = make([]uint64, histBuckets)
		h.min = math.MaxInt64
	}
	if v < 0 {
		v = 0 // a clock step cannot make latency negative; count it as 0
	}
	h.counts[bucketOf(v)]++
	h.n++
	h.sum += float64(v)
	if v < h.min {
		h.min = v
	}
	if v > h.max {
		h.max = v
	}
}

// merge adds o's samples into h.
func (h *histogram) merge(o *histogram) {
	if o.n == 0 {
		return
	}
	if h.counts == nil {
		h.counts = make([]uint64, histBuckets)
		h.min = math.MaxInt64
	}
	for i, c := range o.counts {
		h.counts[i] += c
	}
	h.n += o.n
	h.sum += o.sum
	h.min = min(h.min, o.min)
	h.max = max(h.max, o.max)
}

// quantile returns the value at quantile q in [0,1]: the midpoint of the
// bucket holding the ceil(q*n)-th smallest sample, clamped to the exact
// observed min and max; the first and last ranks are the exact min and
// max. An empty
// histogram returns 0.
func (h *histogram) quantile(q float64) int64 {
	if h.n == 0 {
		return 0
	}
	rank := uint64(math.Ceil(q * float64(h.n)))
	rank = min(max(rank, 1), h.n)
	switch rank {
	case 1:
		return h.min
	case h.n:
		return h.max
	}
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen >= rank {
			lo, hi := bucketBounds(i)
			v := lo + (hi-lo)/2
			return min(max(v, h.min), h.max)
		}
	}
	return h.max
}

func (h *histogram) mean() float64 {
	if h.n == 0 {
		return 0
	}
	return h.sum / float64(h.n)
}

// latencySummary is the reported form of a histogram, in microseconds.
type latencySummary struct {
	Count uint64  `json:"count"`
	Mean  float64 `json:"mean_us"`
	P50   float64 `json:"p50_us"`
	P99   float64 `json:"p99_us"`
	P999  float64 `json:"p99_9_us"`
	Max   float64 `json:"max_us"`
}

func (h *histogram) summary() latencySummary {
	us := func(ns int64) float64 { return math.Round(float64(ns)/10) / 100 }
	return latencySummary{
		Count: h.n,
		Mean:  math.Round(h.mean()/10) / 100,
		P50:   us(h.quantile(0.50)),
		P99:   us(h.quantile(0.99)),
		P999:  us(h.quantile(0.999)),
		Max:   us(h.max),
	}
}
