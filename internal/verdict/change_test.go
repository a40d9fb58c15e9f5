package verdict

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"
)

// watchCounts runs an engine judging counts as a rate metric over looks of
// n requests whose failure rate is rate(look) and whose errors come in
// bursts of burst; it returns the 1-based look that regressed (0: none)
// and the decision.
func watchCounts(rng *rand.Rand, looks, n int, rate func(int) float64, burst int) (int, Decision) {
	e := New(countLimits(0.01, true))
	tr := newTraffic(rng, rate(0), burst)
	for i := range looks {
		if r := rate(i); r != tr.rate {
			tr = newTrafficAt(tr, r)
		}
		if d := e.Observe(Count("m", int64(n), int64(tr.look(n)), nil)); d.Outcome == Regressed {
			return i + 1, d
		}
	}
	return 0, e.Finish()
}

// newTrafficAt continues t's requests at another rate.
func newTrafficAt(t *traffic, rate float64) *traffic {
	next := newTraffic(t.rng, rate, int(t.burst))
	next.at, next.next = t.at, t.at+next.next
	return next
}

// A regression that starts mid-watch is caught about as fast as one from
// the start: the healthy half counts for nothing against it, and its level
// shift is not read as bursts (at 10,000 requests a minute, 0.5% errors,
// then 2% from minute 30: the cumulative test caught 14% of them by the end
// of the hour).
func TestCountTestLateRegression(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(20, 1))
	step := func(from, to float64, at int) func(int) float64 {
		return func(i int) float64 {
			if i >= at {
				return to
			}
			return from
		}
	}
	for _, tc := range []struct {
		name     string
		n        int
		from, to float64
		within   int // looks after the onset
	}{
		{"10,000 a minute, 0.5% then 2%", 2500, 0.005, 0.02, 8},
		{"1,000 a minute, 0.2% then 3%", 250, 0.002, 0.03, 12},
	} {
		caught := 0
		var last Decision
		for range 100 {
			look, d := watchCounts(rng, 240, tc.n, step(tc.from, tc.to, 120), 1)
			if look > 120 && look <= 120+tc.within {
				caught++
				last = d
			}
		}
		if caught < 95 {
			t.Errorf("%s: caught within %d looks of the onset in %d of 100 watches", tc.name, tc.within, caught)
		}
		if !strings.Contains(last.Reason, "in the last ") || !strings.Contains(last.Reason, " before; the failure rate is above the allowed 1%") {
			t.Errorf("%s: the reason does not say since when: %s", tc.name, last.Reason)
		}
		if last.Evidence.Dispersion > 3 {
			t.Errorf("%s: the level shift read as over-dispersion %.1f", tc.name, last.Evidence.Dispersion)
		}
	}
}

// The onset part keeps the bound: a build healthy for half an hour and
// then exactly at the limit, with independent errors, is rolled back in
// far fewer than 1% of watches (the statistic is a nonnegative
// supermartingale under that null).
func TestCountTestLateAtTheLimitKeepsTheBound(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(20, 2))
	alarms := 0
	for range 400 {
		if look, _ := watchCounts(rng, 240, 250, func(i int) float64 {
			if i >= 120 {
				return 0.01
			}
			return 0.002
		}, 1); look > 0 {
			alarms++
		}
	}
	if alarms > 4 {
		t.Errorf("%d false alarms in 400 watches", alarms)
	}
}

// The statistic without tempering, at the limit, is a supermartingale of
// mean 1: its average over many watches at any look stays at most 1 (to
// within the sampling error).
func TestCountTestIsASupermartingale(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(20, 3))
	const watches, looks = 4000, 60
	var mean [looks]float64
	for range watches {
		ct := newCountTest(0.05, 0.01)
		ct.phi = 1
		for i := range looks {
			n := 1 + rng.IntN(40)
			ct.look(int64(n), int64(binomial(rng, n, 0.05)), 1)
			logM, _ := ct.ratio()
			mean[i] += min(expSafe(logM), 1e6) / watches
		}
	}
	for i, m := range mean {
		if m > 1.15 {
			t.Errorf("look %d: mean statistic %.3f, want at most 1", i+1, m)
		}
	}
}

func expSafe(x float64) float64 {
	if x > 700 {
		x = 700
	}
	return math.Exp(x)
}
