package verdict

import (
	"math"
	"slices"
	"testing"
)

// mustPlan plans a test with all the work it needs.
func mustPlan(rate, alpha float64, runLen, horizon int) *plan {
	p, _ := newPlan(rate, alpha, runLen, horizon, math.MaxInt64)
	return p
}

// regressedBy returns, for a build whose probes fail independently with
// probability q, the exact probability that the watch has regressed by
// each probe 1..n (consecutive-failure rule of runLen included, 0 = off),
// and separately the part due to the test.
func regressedBy(p rateTest, q float64, runLen, n int) (all, byTest []float64) {
	d := newDistribution(runLen, n)
	all = make([]float64, n+1)
	byTest = make([]float64, n+1)
	for m := 1; m <= n; m++ {
		d.step(q)
		lim := p.limit(int64(m), false, 1)
		if m == n {
			lim = min(lim, p.limit(int64(n), true, 1))
		}
		d.absorb(int(min(lim, int64(n+1))))
		live := 0.0
		for bad := 0; bad <= d.top; bad++ {
			live += d.at(bad)
		}
		all[m] = 1 - live
		byTest[m] = d.spent
	}
	return all, byTest
}

func firstAtLeast(cdf []float64, share float64) int {
	for n, v := range cdf {
		if v >= share {
			return n
		}
	}
	return -1
}

func TestPlanSpendsAtMostAlpha(t *testing.T) {
	for _, tc := range []struct {
		rate, alpha     float64
		runLen, horizon int
		n               int  // watch length
		coarse          bool // the planned rule's next step spends more than α/2
	}{
		{0.05, 0.01, 3, 300, 300, false},
		{0.05, 0.01, 3, 300, 120, false}, // ended early
		{0.05, 0.01, 0, 300, 300, false},
		{0.05, 0.01, 3, 0, 300, false},  // open-ended: the mixture test
		{0.05, 0.01, 0, 0, 2000, false}, // open-ended, long
		{0.01, 0.001, 3, 0, 1000, false},
		{0.01, 0.05, 2, 1000, 1000, false},
		{0.2, 0.001, 5, 50, 50, false},
		{0.05, 0.005, 0, 600, 600, false},
		{0.3, 0.01, 5, 1000, 1000, false},
		{0.5, 0.001, 0, 600, 600, false},
		{0.9, 0.1, 0, 50, 50, true}, // one count of 50 probes holds ~18% of watches
	} {
		var p rateTest = newMixture(tc.rate, tc.alpha)
		if tc.horizon > 0 {
			p = mustPlan(tc.rate, tc.alpha, tc.runLen, tc.horizon)
		}
		_, byTest := regressedBy(p, tc.rate, tc.runLen, tc.n)
		size := byTest[tc.n]
		if size > tc.alpha*(1+1e-6) {
			t.Errorf("%+v: false alarms %.5f, above alpha", tc, size)
		}
		if tc.horizon > 0 && !tc.coarse && size < tc.alpha/2 {
			t.Errorf("%+v: false alarms %.5f, wasting most of alpha", tc, size)
		}
		last := int64(0)
		for n := int64(1); n <= int64(tc.n); n++ {
			l := p.limit(n, false, 1)
			if l == never && last == 0 {
				continue // not even n bad probes of n would trip yet
			}
			if l < last || l < minBad {
				t.Fatalf("%+v: limit(%d) = %d after %d", tc, n, l, last)
			}
			last = l
		}
	}
}

// TestPlanEnumeration checks the dynamic programme against brute force over
// every sequence of a short watch.
func TestPlanEnumeration(t *testing.T) {
	const n, q, runLen = 14, 0.2, 3
	p := mustPlan(q, 0.05, runLen, n)
	want := 0.0
	for seq := 0; seq < 1<<n; seq++ {
		bad, run, prob, rejected, stopped := 0, 0, 1.0, false, false
		for i := 1; i <= n; i++ {
			failed := seq>>(i-1)&1 == 1
			if failed {
				prob *= q
			} else {
				prob *= 1 - q
			}
			if stopped {
				continue
			}
			if failed {
				bad++
				run++
			} else {
				run = 0
			}
			if run >= runLen {
				stopped = true // the consecutive rule, not the test
				continue
			}
			if p.trips(int64(i), int64(bad), false, 1) || i == n && p.trips(int64(n), int64(bad), true, 1) {
				rejected, stopped = true, true
			}
		}
		if rejected {
			want += prob
		}
	}
	_, byTest := regressedBy(p, q, runLen, n)
	if got := byTest[n]; math.Abs(got-want) > 1e-12 {
		t.Fatalf("dynamic programme says %.12f, enumeration %.12f", got, want)
	}
	if want > 0.05 {
		t.Fatalf("enumerated false alarms %.4f above alpha", want)
	}
}

// TestPlanPriceOrdersRules checks what the search for the price of a false
// alarm rests on: a higher price never stops at a lower count.
func TestPlanPriceOrdersRules(t *testing.T) {
	for _, p := range []*plan{
		{rate: 0.05, alpha: 0.01, runLen: 3, horizon: 300, budget: math.MaxInt64},
		{rate: 0.5, alpha: 0.001, horizon: 2000, budget: math.MaxInt64},
	} {
		prev := p.stopRule(-20)
		for logLambda := -19.75; logLambda < 20; logLambda += 0.25 {
			next := p.stopRule(logLambda)
			for n := range next {
				if next[n] < prev[n] {
					t.Fatalf("rate %g: at price e^%g the limit after %d probes fell from %d to %d", p.rate, logLambda, n, prev[n], next[n])
				}
			}
			prev = next
		}
	}
}

// TestPlanDefaultsExact pins the default test (the README quotes its steps)
// and checks the quality targets on exact probabilities, free of the
// simulation's noise.
func TestPlanDefaultsExact(t *testing.T) {
	const h = 300
	p := mustPlan(0.05, 0.01, 3, h)
	type step struct{ limit, upTo int }
	var steps []step
	for n := 1; n <= h; n++ {
		if l := int(p.limit(int64(n), false, 1)); n == 1 || l != steps[len(steps)-1].limit {
			steps = append(steps, step{l, n})
		} else {
			steps[len(steps)-1].upTo = n
		}
	}
	want := []step{{3, 2}, {4, 8}, {6, 28}, {12, 90}, {25, 297}, {26, 300}}
	if !slices.Equal(steps, want) {
		t.Errorf("limits (count, up to probe): %v, want %v", steps, want)
	}

	all := map[float64][]float64{}
	for _, q := range []float64{0.01, 0.03, 0.05, 0.1, 0.2, 0.5} {
		var byTest []float64
		all[q], byTest = regressedBy(p, q, 3, h)
		t.Logf("q=%.2f regressed %.5f (test %.5f) median %d p95 %d", q, all[q][h], byTest[h],
			firstAtLeast(all[q], all[q][h]/2), firstAtLeast(all[q], all[q][h]*0.95))
	}
	for _, c := range []struct {
		what string
		ok   bool
	}{
		{"1% noise: false alarms ≤ 0.1%", all[0.01][h] <= 0.001},
		{"3% noise: false alarms ≤ 1.5%", all[0.03][h] <= 0.015},
		{"10%: caught in ≥ 85%", all[0.1][h] >= 0.85},
		{"20%: caught in ≥ 99.9%", all[0.2][h] >= 0.999},
		{"20%: median ≤ 29 (3× sooner than 3 in a row's 88)", firstAtLeast(all[0.2], 0.5) <= 29},
		{"20%: p95 ≤ 90", firstAtLeast(all[0.2], 0.95) <= 90},
		{"50%: median ≤ 8", firstAtLeast(all[0.5], 0.5) <= 8},
	} {
		if !c.ok {
			t.Error(c.what)
		}
	}
}
