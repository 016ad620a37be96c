package bench

import (
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

func TestBucketsCoverInOrder(t *testing.T) {
	t.Parallel()
	prev := -1
	for _, v := range []uint64{0, 1, 63, 64, 65, 127, 128, 1000, 1 << 20, 1<<40 - 1} {
		b := bucketOf(v)
		if b < prev || b >= numBuckets {
			t.Fatalf("bucketOf(%d) = %d after %d (of %d)", v, b, prev, numBuckets)
		}
		prev = b
		if mid := bucketMid(b); v >= 64 && (float64(mid) < float64(v)*0.96 || float64(mid) > float64(v)*1.04) {
			t.Errorf("bucketMid(bucketOf(%d)) = %d, more than 4%% off", v, mid)
		}
	}
	if bucketOf(1<<50) != numBuckets-1 {
		t.Errorf("values past the range must land in the last bucket")
	}
}

func TestQuantilesMatchSortedSamples(t *testing.T) {
	t.Parallel()
	var h histogram
	r := rand.New(rand.NewPCG(1, 2))
	samples := make([]time.Duration, 100000)
	for i := range samples {
		samples[i] = time.Duration(r.ExpFloat64() * float64(200*time.Microsecond))
		h.record(samples[i])
	}
	slices.Sort(samples)
	for _, q := range []float64{0.5, 0.9, 0.99, 0.999} {
		want := samples[int(q*float64(len(samples)))-1]
		got := h.quantile(q)
		if d := float64(got-want) / float64(want); d > 0.04 || d < -0.04 {
			t.Errorf("q%.3f = %v, want %v within 4%%", q, got, want)
		}
	}
	if h.quantile(1) != samples[len(samples)-1] {
		t.Errorf("q1 = %v, want the max %v", h.quantile(1), samples[len(samples)-1])
	}
}
