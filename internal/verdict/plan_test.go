package verdict

import (
	"math"
	"testing"
)

// regressedBy returns, for a build whose probes fail independently with
// probability q, the exact probability that the watch has regressed by
// each probe 1..n (consecutive-failure rule of runLen included, 0 = off),
// and separately the part due to the plan's test.
func regressedBy(p *plan, q float64, runLen, n int) (all, byTest []float64) {
	d := newDistribution(runLen, n)
	all = make([]float64, n+1)
	byTest = make([]float64, n+1)
	for m := 1; m <= n; m++ {
		d.step(q)
		lim := p.limit(m)
		if m == n {
			lim = min(lim, p.finalLimit(n))
		}
		d.absorb(lim)
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
		n               int // watch length
	}{
		{0.05, 0.01, 3, 300, 300},
		{0.05, 0.01, 3, 300, 120}, // ended early
		{0.05, 0.01, 0, 300, 300},
		{0.05, 0.01, 3, 0, 300}, // open-ended
		{0.01, 0.05, 2, 1000, 1000},
		{0.2, 0.001, 5, 50, 50},
		{0.05, 0.005, 0, 600, 600},
		{0.3, 0.01, 5, 1000, 1000},
		{0.5, 0.001, 0, 600, 600},
		{0.9, 0.1, 0, 50, 50},
	} {
		p := newPlan(tc.rate, tc.alpha, tc.runLen, tc.horizon)
		_, byTest := regressedBy(p, tc.rate, tc.runLen, tc.n)
		size := byTest[tc.n]
		if size > tc.alpha*(1+1e-6) {
			t.Errorf("%+v: false alarms %.5f, above alpha", tc, size)
		}
		if tc.horizon > 0 && size < tc.alpha/2 {
			t.Errorf("%+v: false alarms %.5f, wasting most of alpha", tc, size)
		}
		last := 0
		for n := 1; n <= tc.n; n++ {
			l := p.limit(n)
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
	p := newPlan(q, 0.05, runLen, n)
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
			lim := p.limit(i)
			if i == n {
				lim = min(lim, p.finalLimit(n))
			}
			if bad >= lim {
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
		{rate: 0.05, alpha: 0.01, runLen: 3, horizon: 300},
		{rate: 0.5, alpha: 0.001, horizon: 2000},
	} {
		prev := p.stopRule(1)
		for lambda := 1.25; lambda < 1e7; lambda *= 1.25 {
			next := p.stopRule(lambda)
			for n := range next {
				if next[n] < prev[n] {
					t.Fatalf("rate %g: at price %g the limit after %d probes fell from %d to %d", p.rate, lambda, n, prev[n], next[n])
				}
			}
			prev = next
		}
	}
}

func TestPlanDefaultsExact(t *testing.T) {
	p := newPlan(0.05, 0.01, 3, 300)
	t.Logf("limits: n=3..10 %v, 20:%d 30:%d 60:%d 90:%d 150:%d 250:%d 300:%d",
		p.limits[3:11], p.limits[20], p.limits[30], p.limits[60], p.limits[90], p.limits[150], p.limits[250], p.limits[300])
	for _, q := range []float64{0.01, 0.03, 0.05, 0.1, 0.2, 0.5} {
		all, byTest := regressedBy(p, q, 3, 300)
		t.Logf("q=%.2f regressed %.5f (test %.5f) median %d p95 %d", q, all[300], byTest[300],
			firstAtLeast(all, all[300]/2), firstAtLeast(all, all[300]*0.95))
	}
}
