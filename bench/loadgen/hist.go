package main

import (
	"math/bits"
	"sort"
	"time"
)

// hist is a log-linear latency histogram in the manner of HdrHistogram:
// values below 256 ns are exact, above that each power of two is split in 128
// buckets, so any recorded value is known to within 0.8%. Recording is a few
// instructions and no allocation, and histograms of many goroutines merge
// by addition.
type hist struct {
	counts [64 * subBuckets]uint64
	n      uint64
	sum    uint64
	max    uint64
}

const subBits = 7
const subBuckets = 1 << subBits

func bucketOf(v uint64) int {
	if v < 2*subBuckets {
		return int(v)
	}
	shift := bits.Len64(v) - subBits - 1 // keep the top 8 bits
	return (shift+1)*subBuckets + int(v>>shift) - subBuckets
}

// bucketValue is the middle of bucket i.
func bucketValue(i int) uint64 {
	if i < 2*subBuckets {
		return uint64(i)
	}
	shift := i/subBuckets - 1
	low := uint64(i%subBuckets+subBuckets) << shift
	return low + (uint64(1)<<shift)/2
}

func (h *hist) record(d time.Duration) {
	v := uint64(max(d, 0))
	h.counts[bucketOf(v)]++
	h.n++
	h.sum += v
	h.max = max(h.max, v)
}

func (h *hist) merge(o *hist) {
	for i, c := range o.counts {
		h.counts[i] += c
	}
	h.n += o.n
	h.sum += o.sum
	h.max = max(h.max, o.max)
}

// quantile returns the value at q (0..1).
func (h *hist) quantile(q float64) time.Duration {
	if h.n == 0 {
		return 0
	}
	rank := uint64(q*float64(h.n) + 0.5)
	rank = min(max(rank, 1), h.n)
	var seen uint64
	for i, c := range h.counts {
		seen += c
		if seen >= rank {
			return time.Duration(min(bucketValue(i), h.max))
		}
	}
	return time.Duration(h.max)
}

func (h *hist) mean() time.Duration {
	if h.n == 0 {
		return 0
	}
	return time.Duration(h.sum / h.n)
}

func ms(d time.Duration) float64 { return round3(float64(d) / float64(time.Millisecond)) }

func round3(f float64) float64 {
	return float64(int64(f*1000+0.5)) / 1000
}

// latencyValues adds the usual percentiles under prefix ("p50_ms", ...).
func latencyValues(v map[string]any, prefix string, h *hist) {
	v[prefix+"p50_ms"] = ms(h.quantile(0.50))
	v[prefix+"p90_ms"] = ms(h.quantile(0.90))
	v[prefix+"p99_ms"] = ms(h.quantile(0.99))
	v[prefix+"p999_ms"] = ms(h.quantile(0.999))
	v[prefix+"max_ms"] = ms(time.Duration(h.max))
	v[prefix+"mean_ms"] = ms(h.mean())
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}
