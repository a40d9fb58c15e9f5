package metrics

import (
	"fmt"
	"math"
	"testing"

	"pgregory.net/rapid"
)

func TestCountersObserve(t *testing.T) {
	t.Parallel()
	type look map[string]float64
	tests := []struct {
		name  string
		looks []look
		want  []increase
	}{
		{
			name:  "first look is a starting point",
			looks: []look{{"a": 100, "b": 7}, {"a": 130, "b": 7}},
			want:  []increase{{series: 2, fresh: 2}, {delta: 30, series: 2}},
		},
		{
			name:  "a counter lower than before is a restart counted from zero",
			looks: []look{{"a": 100}, {"a": 120}, {"a": 5}, {"a": 9}},
			want:  []increase{{series: 1, fresh: 1}, {delta: 20, series: 1}, {delta: 5, series: 1, resets: 1}, {delta: 4, series: 1}},
		},
		{
			name:  "a restart back to zero counts nothing",
			looks: []look{{"a": 100}, {"a": 0}},
			want:  []increase{{series: 1, fresh: 1}, {series: 1, resets: 1}},
		},
		{
			name:  "a new series mid-watch is a starting point",
			looks: []look{{"a": 10}, {"a": 20, "b": 500}, {"a": 20, "b": 503}},
			want:  []increase{{series: 1, fresh: 1}, {delta: 10, series: 2, fresh: 1}, {delta: 3, series: 2}},
		},
		{
			name:  "a series that disappears adds nothing, and comes back where it was",
			looks: []look{{"a": 10, "b": 10}, {"a": 15}, {"a": 16, "b": 40}},
			want:  []increase{{series: 2, fresh: 2}, {delta: 5, series: 1}, {delta: 31, series: 2}},
		},
		{
			name:  "a series that comes back lower restarted while away",
			looks: []look{{"a": 10, "b": 10}, {"a": 15}, {"a": 16, "b": 4}},
			want:  []increase{{series: 2, fresh: 2}, {delta: 5, series: 1}, {delta: 5, series: 2, resets: 1}},
		},
		{
			name:  "fractional values are rounded before subtracting, so nothing drifts",
			looks: []look{{"a": 0.4}, {"a": 1.6}, {"a": 2.4}, {"a": 3.5}},
			want:  []increase{{series: 1, fresh: 1}, {delta: 2, series: 1}, {delta: 0, series: 1}, {delta: 2, series: 1}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var c counters
			for i, l := range tt.looks {
				var ss []sample
				for k, v := range l {
					ss = append(ss, sample{key: k, value: v})
				}
				if got := c.observe(ss); got != tt.want[i] {
					t.Errorf("look %d: observe() = %+v, want %+v", i+1, got, tt.want[i])
				}
			}
		})
	}
}

// TestCountersExact: whatever the scrapes miss (series absent from some
// looks) and however often processes restart, the increases add up exactly
// to the requests served after each series was first seen, as long as each
// life's last value is seen before its restart and its successor is first
// seen below that value. That is the contract: nothing is lost, nothing is
// counted twice.
func TestCountersExact(t *testing.T) {
	t.Parallel()
	rapid.Check(t, func(t *rapid.T) {
		nSeries := rapid.IntRange(1, 4).Draw(t, "series")
		value := make([]int64, nSeries) // each series' live counter
		seen := make([]bool, nSeries)
		var want, got int64
		var c counters
		observe := func(present func(i int) bool) {
			var ss []sample
			for i := range nSeries {
				if present(i) {
					ss = append(ss, sample{key: fmt.Sprint("s", i), value: float64(value[i])})
				}
			}
			got += c.observe(ss).delta
			for i := range nSeries {
				if present(i) {
					seen[i] = true
				}
			}
		}
		for range rapid.IntRange(1, 60).Draw(t, "steps") {
			i := rapid.IntRange(0, nSeries-1).Draw(t, "which")
			switch rapid.IntRange(0, 9).Draw(t, "event") {
			case 0: // restart: the old life is seen to its end, the new one starts low
				observe(func(j int) bool { return j == i })
				value[i] = rapid.Int64Range(0, value[i]/2).Draw(t, "after restart")
				if seen[i] {
					want += value[i]
				}
				observe(func(j int) bool { return j == i })
			case 1, 2, 3: // a look where each series may be missing
				mask := rapid.IntRange(0, 1<<nSeries-1).Draw(t, "present")
				observe(func(j int) bool { return mask&(1<<j) != 0 })
			default: // traffic
				n := rapid.Int64Range(0, 1000).Draw(t, "requests")
				value[i] += n
				if seen[i] {
					want += n
				}
			}
		}
		// Requests served before a series' first look are not counted;
		// after it, all of them are.
		observe(func(int) bool { return true })
		if got != want {
			t.Fatalf("increases add up to %d, want %d", got, want)
		}
	})
}

func TestHoldBack(t *testing.T) {
	t.Parallel()
	var held int64
	steps := []struct{ errors, requests, want, held int64 }{
		{2, 10, 2, 0},
		{5, 3, 3, 2}, // errors scraped ahead of their requests
		{0, 1, 1, 1},
		{1, 100, 2, 0},
	}
	for i, s := range steps {
		if got := holdBack(s.errors, s.requests, &held); got != s.want || held != s.held {
			t.Errorf("step %d: holdBack(%d, %d) = %d held %d, want %d held %d", i, s.errors, s.requests, got, held, s.want, s.held)
		}
	}
}

func TestUsable(t *testing.T) {
	t.Parallel()
	for v, want := range map[float64]bool{0: true, 1e12: true, math.NaN(): false, math.Inf(1): false, math.Inf(-1): false, -1: false, 1 << 53: false} {
		if got := usable(v); got != want {
			t.Errorf("usable(%v) = %v, want %v", v, got, want)
		}
	}
}

func TestBoundsAndStreak(t *testing.T) {
	t.Parallel()
	f := func(v float64) *float64 { return &v }
	tests := []struct {
		b      bounds
		values []float64
		want   float64
		out    bool
	}{
		{bounds{max: f(0.3)}, []float64{0.1, 0.25}, 0.25, false},
		{bounds{max: f(0.3)}, []float64{0.1, 0.3}, 0.3, false}, // equal to the bound is inside
		{bounds{max: f(0.3)}, []float64{0.5, 0.1}, 0.5, true},
		{bounds{min: f(100)}, []float64{150, 90, 120}, 90, true},
		{bounds{min: f(1), max: f(2)}, []float64{1.5, 2.5, 0.1}, 0.1, true}, // 0.9 below beats 0.5 above
		{bounds{min: f(1), max: f(2)}, []float64{1.9, 1.2}, 1.9, false},
	}
	for _, tt := range tests {
		got, out := tt.b.worst(tt.values)
		if got != tt.want || out != tt.out {
			t.Errorf("worst(%v) = %v, %v; want %v, %v", tt.values, got, out, tt.want, tt.out)
		}
	}

	s := streak{need: 3}
	for i, step := range []struct {
		out       bool
		run       int
		regressed bool
	}{{true, 1, false}, {true, 2, false}, {false, 0, false}, {true, 1, false}, {true, 2, false}, {true, 3, true}, {true, 4, true}} {
		run, reg := s.observe(step.out)
		if run != step.run || reg != step.regressed {
			t.Errorf("look %d: observe(%v) = %d, %v; want %d, %v", i+1, step.out, run, reg, step.run, step.regressed)
		}
	}
}
