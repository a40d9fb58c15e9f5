package latency

import (
	"math"
	"math/rand/v2"
	"testing"
	"time"
)

func ms(n ...int) []time.Duration {
	var ds []time.Duration
	for _, v := range n {
		ds = append(ds, time.Duration(v)*time.Millisecond)
	}
	return ds
}

func TestQuantileNearestRank(t *testing.T) {
	tests := []struct {
		in   []time.Duration
		q    float64
		want time.Duration
	}{
		{nil, 0.95, 0},
		{ms(5), 0.95, 5 * time.Millisecond},
		{ms(1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20), 0.95, 19 * time.Millisecond},
		{ms(3, 1, 2), 0.5, 2 * time.Millisecond},
		{ms(3, 1, 2), 1, 3 * time.Millisecond},
	}
	for _, tt := range tests {
		if got := Quantile(tt.in, tt.q); got != tt.want {
			t.Errorf("Quantile(%v, %v) = %v, want %v", tt.in, tt.q, got, tt.want)
		}
		var s Sketch
		for _, d := range tt.in {
			s.Add(d)
		}
		if got := s.Quantile(tt.q); got != tt.want {
			t.Errorf("Sketch of %v: Quantile(%v) = %v, want %v", tt.in, tt.q, got, tt.want)
		}
	}
}

// TestSketchAccuracy: past ExactLimit, quantiles stay within 1% of the
// exact nearest-rank values and counts stay exact, also after merging.
func TestSketchAccuracy(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, n := range []int{10, ExactLimit, ExactLimit + 1, 5000, 100_000} {
		var all []time.Duration
		var a, b Sketch
		for i := range n {
			d := time.Duration(20e6 * math.Exp(0.7*rng.NormFloat64()))
			if i%97 == 0 {
				d = 0 // an unmeasured answer
			}
			all = append(all, d)
			if i%3 == 0 {
				a.Add(d)
			} else {
				b.Add(d)
			}
		}
		var s Sketch
		s.Merge(&a)
		s.Merge(&b)
		if s.Count() != int64(n) {
			t.Fatalf("n=%d: Count = %d", n, s.Count())
		}
		for _, q := range []float64{0.01, 0.5, 0.9, 0.95, 0.99, 1} {
			want := Quantile(all, q)
			got := s.Quantile(q)
			if math.Abs(float64(got-want)) > 0.01*float64(want) {
				t.Errorf("n=%d q=%v: %v, want %v within 1%%", n, q, got, want)
			}
			if n <= ExactLimit && got != want {
				t.Errorf("n=%d q=%v: %v, want exactly %v", n, q, got, want)
			}
		}
		limit := 40 * time.Millisecond
		var above int64
		for _, d := range all {
			if d > limit {
				above++
			}
		}
		if got := s.Above(limit); math.Abs(float64(got-above)) > 0.02*float64(n) {
			t.Errorf("n=%d: Above = %d, want about %d", n, got, above)
		}
	}
}

func TestSketchLargeCounts(t *testing.T) {
	var s Sketch
	s.AddN(10*time.Millisecond, 1e12)
	s.AddN(2*time.Second, 1e10)
	if s.Count() != 1e12+1e10 {
		t.Fatalf("Count = %d", s.Count())
	}
	if got := s.Quantile(0.5); got < 9900*time.Microsecond || got > 10100*time.Microsecond {
		t.Errorf("p50 = %v", got)
	}
	if got := s.Quantile(0.999); got < 1980*time.Millisecond || got > 2*time.Second {
		t.Errorf("p99.9 = %v", got)
	}
}

func BenchmarkSketchAdd(b *testing.B) {
	var s Sketch
	d := 12 * time.Millisecond
	for b.Loop() {
		s.Add(d)
		d += 1013
	}
}
