package metrics

import (
	"fmt"
	"math"
	"testing"
	"time"

	"pgregory.net/rapid"
)

func TestCountersObserve(t *testing.T) {
	t.Parallel()
	// A look: each series' value, and the restarts Prometheus saw since
	// the previous look (evidence) when the look has it.
	type look struct {
		values   map[string]float64
		resets   map[string]int
		evidence bool
		away     bool // the evidence starts after the previous look
	}
	plain := func(v map[string]float64) look { return look{values: v} }
	told := func(v map[string]float64, resets map[string]int) look {
		return look{values: v, resets: resets, evidence: true}
	}
	tests := []struct {
		name  string
		looks []look
		want  []increase
	}{
		{
			name:  "first look is a starting point",
			looks: []look{plain(map[string]float64{"a": 100, "b": 7}), plain(map[string]float64{"a": 130, "b": 7})},
			want:  []increase{{series: 2, fresh: 2}, {delta: 30, series: 2}},
		},
		{
			name:  "without evidence, a counter lower than before is a restart counted from zero",
			looks: []look{plain(map[string]float64{"a": 100}), plain(map[string]float64{"a": 120}), plain(map[string]float64{"a": 5}), plain(map[string]float64{"a": 9})},
			want:  []increase{{series: 1, fresh: 1}, {delta: 20, series: 1}, {delta: 5, series: 1, resets: 1}, {delta: 4, series: 1}},
		},
		{
			name:  "a restart back to zero counts nothing",
			looks: []look{plain(map[string]float64{"a": 100}), told(map[string]float64{"a": 0}, map[string]int{"a": 1})},
			want:  []increase{{series: 1, fresh: 1}, {series: 1, resets: 1}},
		},
		{
			name: "a series first seen after the first look was born during the watch: counted from zero",
			looks: []look{plain(map[string]float64{"a": 10}), told(map[string]float64{"a": 20, "b": 3}, nil),
				told(map[string]float64{"a": 20, "b": 5}, nil)},
			want: []increase{{series: 1, fresh: 1}, {delta: 13, series: 2, born: 1}, {delta: 2, series: 2}},
		},
		{
			name:  "an empty first look is a look: what appears after it was born",
			looks: []look{plain(nil), plain(map[string]float64{"500": 1}), plain(map[string]float64{"500": 2})},
			want:  []increase{{}, {delta: 1, series: 1, born: 1}, {delta: 1, series: 1}},
		},
		{
			name: "a replica behind reads lower with no restart: nothing counted until the counter passes the mark",
			looks: []look{plain(map[string]float64{"a": 5000}), told(map[string]float64{"a": 6000}, nil),
				told(map[string]float64{"a": 5100}, nil), told(map[string]float64{"a": 7000}, nil),
				told(map[string]float64{"a": 6100}, nil), told(map[string]float64{"a": 6900}, nil), told(map[string]float64{"a": 8000}, nil)},
			want: []increase{{series: 1, fresh: 1}, {delta: 1000, series: 1}, {series: 1, lagging: 1}, {delta: 1000, series: 1},
				{series: 1, lagging: 1}, {series: 1, lagging: 1}, {delta: 1000, series: 1}},
		},
		{
			name: "Prometheus saw a restart: counted from zero, even above the old value",
			looks: []look{plain(map[string]float64{"a": 2}), told(map[string]float64{"a": 3}, map[string]int{"a": 1}),
				told(map[string]float64{"a": 4}, map[string]int{"a": 0})},
			want: []increase{{series: 1, fresh: 1}, {delta: 3, series: 1, resets: 1}, {delta: 1, series: 1}},
		},
		{
			name: "lower and Prometheus saw the restart",
			looks: []look{plain(map[string]float64{"a": 100}), told(map[string]float64{"a": 7}, map[string]int{"a": 1}),
				told(map[string]float64{"a": 9}, nil)},
			want: []increase{{series: 1, fresh: 1}, {delta: 7, series: 1, resets: 1}, {delta: 2, series: 1}},
		},
		{
			name: "a series that disappears adds nothing, and comes back where it was",
			looks: []look{plain(map[string]float64{"a": 10, "b": 10}), told(map[string]float64{"a": 15}, nil),
				told(map[string]float64{"a": 16, "b": 40}, nil)},
			want: []increase{{series: 2, fresh: 2}, {delta: 5, series: 1}, {delta: 31, series: 2}},
		},
		{
			name: "a series that comes back lower restarted while away, as Prometheus says",
			looks: []look{plain(map[string]float64{"a": 10, "b": 10}), told(map[string]float64{"a": 15}, nil),
				told(map[string]float64{"a": 16, "b": 4}, map[string]int{"b": 1})},
			want: []increase{{series: 2, fresh: 2}, {delta: 5, series: 1}, {delta: 5, series: 2, resets: 1}},
		},
		{
			name: "a series away for longer than the evidence reaches back is restarted when lower",
			looks: []look{plain(map[string]float64{"a": 10, "b": 10}), told(map[string]float64{"a": 15}, nil),
				{values: map[string]float64{"a": 16, "b": 4}, evidence: true, away: true}},
			want: []increase{{series: 2, fresh: 2}, {delta: 5, series: 1}, {delta: 5, series: 2, resets: 1}},
		},
		{
			name:  "fractional values are rounded before subtracting, so nothing drifts",
			looks: []look{plain(map[string]float64{"a": 0.4}), plain(map[string]float64{"a": 1.6}), plain(map[string]float64{"a": 2.4}), plain(map[string]float64{"a": 3.5})},
			want:  []increase{{series: 1, fresh: 1}, {delta: 2, series: 1}, {delta: 0, series: 1}, {delta: 2, series: 1}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var c counters
			t0 := time.Unix(1760000000, 0)
			for i, l := range tt.looks {
				var ss []sample
				for k, v := range l.values {
					ss = append(ss, sample{key: k, value: v, resets: l.resets[k]})
				}
				at := t0.Add(time.Duration(i) * 15 * time.Second)
				var from time.Time
				switch {
				case l.away:
					from = at.Add(-time.Second)
				case l.evidence:
					from = at.Add(-15*time.Second - evidenceReach)
				}
				if got := c.observe(ss, at, from); got != tt.want[i] {
					t.Errorf("look %d: observe() = %+v, want %+v", i+1, got, tt.want[i])
				}
			}
		})
	}
}

// TestCountersExact: whatever the scrapes miss (series absent from some
// looks), however often processes restart, wherever their new lives start,
// and whichever replica answers (one behind the other by any amount), the
// increases add up exactly to the requests served after each series was
// first seen, or since it was born during the watch. That is the contract
// (see counters), given what it relies on: the first look sees every series
// that exists, each life's last value is read before its restart,
// Prometheus says which series restarted since the previous look, and a
// replica behind is one on a series read in the last minutes.
func TestCountersExact(t *testing.T) {
	t.Parallel()
	rapid.Check(t, func(t *rapid.T) {
		nSeries := rapid.IntRange(1, 4).Draw(t, "series")
		value := make([]int64, nSeries) // each series' live counter
		exists := make([]bool, nSeries)
		restarted := make([]int, nSeries) // restarts since the last look that read the series
		for i := range nSeries {
			exists[i] = rapid.Bool().Draw(t, "exists before the watch")
			if exists[i] {
				value[i] = rapid.Int64Range(0, 1e6).Draw(t, "value before the watch")
			}
		}
		var want, got int64
		var c counters
		at := time.Unix(1760000000, 0)
		lastRead := make([]time.Time, nSeries)
		observe := func(present func(i int) bool, behind int64) {
			var ss []sample
			for i := range nSeries {
				if exists[i] && present(i) {
					v := value[i]
					if at.Sub(lastRead[i]) < evidenceReach {
						// A replica behind, on a series whose restarts
						// Prometheus would report.
						v -= min(behind, value[i])
					}
					lastRead[i] = at.Add(15 * time.Second)
					if restarted[i] > 0 {
						v = value[i] // a replica that saw the restart saw the new life
					}
					ss = append(ss, sample{key: fmt.Sprint("s", i), value: float64(v), resets: restarted[i]})
					restarted[i] = 0
				}
			}
			var from time.Time
			if c.looks > 0 {
				from = at.Add(-evidenceReach)
			}
			at = at.Add(15 * time.Second)
			got += c.observe(ss, at, from).delta
		}
		observe(func(int) bool { return true }, 0)
		for range rapid.IntRange(1, 60).Draw(t, "steps") {
			i := rapid.IntRange(0, nSeries-1).Draw(t, "which")
			switch rapid.IntRange(0, 9).Draw(t, "event") {
			case 0: // restart: the old life is read to its end, the new one starts anywhere
				if !exists[i] {
					continue
				}
				observe(func(j int) bool { return j == i }, 0)
				value[i] = rapid.Int64Range(0, 2*value[i]+10).Draw(t, "after restart")
				restarted[i]++
				want += value[i]
				observe(func(j int) bool { return j == i }, 0)
			case 1, 2: // a look where each series may be missing, from a replica that may be behind
				mask := rapid.IntRange(0, 1<<nSeries-1).Draw(t, "present")
				behind := rapid.Int64Range(0, 5000).Draw(t, "behind")
				observe(func(j int) bool { return mask&(1<<j) != 0 }, behind)
			case 3: // a series born during the watch
				if exists[i] {
					continue
				}
				exists[i] = true
				value[i] = rapid.Int64Range(1, 100).Draw(t, "first value")
				want += value[i]
			default: // traffic
				if !exists[i] {
					continue
				}
				n := rapid.Int64Range(0, 1000).Draw(t, "requests")
				value[i] += n
				want += n
			}
		}
		// The last look is read from a replica up to date.
		observe(func(int) bool { return true }, 0)
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
