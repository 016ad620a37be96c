package bench

import (
	"math/bits"
	"time"
)

// histogram counts durations in log-linear buckets: exact below 64 ns, then
// 32 buckets per power of two (each at most 1/32 of its value wide, so a
// reported percentile is within about 3%). It covers up to 2^40 ns (18
// minutes); longer values count in the last bucket. 1,152 counters of 4
// bytes: small enough for one per subscriber, so recording needs no lock.
type histogram struct {
	counts [numBuckets]uint32
	n      uint64
	max    int64
}

const (
	histSubBits = 5
	histSub     = 1 << histSubBits // buckets per power of two
	histMaxBits = 40
	numBuckets  = 2*histSub + (histMaxBits-histSubBits-1)*histSub
)

func bucketOf(v uint64) int {
	if v < 2*histSub {
		return int(v)
	}
	if v >= 1<<histMaxBits {
		return numBuckets - 1
	}
	e := bits.Len64(v) - histSubBits - 1 // v>>e is in [histSub, 2*histSub)
	return 2*histSub + (e-1)*histSub + int(v>>e) - histSub
}

// bucketMid is the middle of bucket i, the value a percentile reports.
func bucketMid(i int) int64 {
	if i < 2*histSub {
		return int64(i)
	}
	e := (i-2*histSub)/histSub + 1
	lo := uint64((i-2*histSub)%histSub+histSub) << e
	return int64(lo + (uint64(1)<<e)/2)
}

func (h *histogram) record(d time.Duration) {
	if d < 0 {
		d = 0
	}
	h.counts[bucketOf(uint64(d))]++
	h.n++
	if int64(d) > h.max {
		h.max = int64(d)
	}
}

func (h *histogram) merge(o *histogram) {
	for i, c := range o.counts {
		h.counts[i] += c
	}
	h.n += o.n
	h.max = max(h.max, o.max)
}

// quantile returns the value below which a fraction q of the samples lie.
func (h *histogram) quantile(q float64) time.Duration {
	if h.n == 0 {
		return 0
	}
	rank := uint64(q*float64(h.n) + 0.5)
	rank = max(rank, 1)
	if rank >= h.n {
		return time.Duration(h.max)
	}
	var seen uint64
	for i, c := range h.counts {
		seen += uint64(c)
		if seen >= rank {
			return time.Duration(min(bucketMid(i), h.max))
		}
	}
	return time.Duration(h.max)
}
