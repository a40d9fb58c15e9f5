package verdict

import (
	"math"
)

// Tuning of the sequential test. They were chosen by exact calculation for
// the default limits (see testdata/quality.txt) and are sound for any
// limits: whatever their values, the exact calculation keeps false alarms
// within α.
const (
	// sprtAlternative: the SPRT weighs "the rate is p" against "the rate
	// is sprtAlternative·p", the size of regression it is quickest on.
	sprtAlternative = 4
	// spendPower shapes how the α the SPRT leaves unused is spent: by probe
	// n of a horizon H, a share (n/H)^spendPower. Late spending is what
	// catches regressions too small to show early.
	spendPower = 4
	// minBad is the fewest bad probes a rate verdict may rest on, so that an
	// unlucky pair of timeouts never rolls back on its own.
	minBad = 3
)

// never is a limit no count reaches.
const never = math.MaxInt

// plan is one sequential test: "the share of bad probes is above rate",
// with a false-alarm allowance alpha. The test regresses after n probes
// when the bad count reaches limit(n).
//
// The false alarms are counted exactly, with a dynamic programme over the
// distribution of (bad count, current run of bad probes) among watches
// still going, for a build whose probes are independently bad with
// probability rate. When the test runs beside a consecutive-failures rule
// (runLen > 0), watches that rule has already ended are not charged to the
// test, as Limits.Confidence documents.
type plan struct {
	rate    float64
	alpha   float64
	runLen  int // length of the consecutive-failures rule beside this test; 0 = none
	horizon int // planned probes; 0 = open-ended

	// SPRT boundary: bad >= sprtBase + sprtSlope·n.
	sprtBase, sprtSlope float64

	limits []int // limits[n] for n = 1..horizon; nil when open-ended
}

// newPlan plans a test. A rate of 1 or more can never be exceeded: the
// test then never regresses.
func newPlan(rate, alpha float64, runLen, horizon int) *plan {
	p := &plan{rate: rate, alpha: alpha, runLen: runLen, horizon: horizon}
	if rate >= 1 {
		p.horizon = 0
		p.sprtSlope = math.Inf(1)
		return p
	}
	// Wald's SPRT of rate q0 against q1 regresses when the log likelihood
	// ratio bad·log(q1/q0) + good·log((1-q1)/(1-q0)) reaches log(1/α).
	q0 := rate
	q1 := math.Min(sprtAlternative*q0, (1+q0)/2)
	perBad := math.Log(q1 / q0)
	perGood := math.Log((1 - q1) / (1 - q0)) // negative
	p.sprtBase = math.Log(1/alpha) / (perBad - perGood)
	p.sprtSlope = -perGood / (perBad - perGood)
	if horizon > 0 {
		p.limits = p.plan()
	}
	return p
}

// sprtLimit is the SPRT's limit after n probes.
func (p *plan) sprtLimit(n int) int {
	x := p.sprtBase + p.sprtSlope*float64(n)
	if math.IsInf(x, 1) || x > float64(n)+1 {
		return max(minBad, n+1) // more than n probes can hold
	}
	// The tiny slack keeps exact integers (e.g. 3.0000000001) where they
	// belong.
	return max(minBad, int(math.Ceil(x-1e-9)))
}

// limit is the bad count that regresses after n probes during the watch.
func (p *plan) limit(n int) int {
	switch {
	case n <= 0:
		return never
	case p.limits == nil:
		return p.sprtLimit(n)
	case n > p.horizon:
		return never
	}
	return p.limits[n]
}

// finalLimit is the bad count that regresses when the watch ends after n
// probes: the remaining allowance goes to a last fixed-sample look. At the
// horizon that is the planned limit; past it, the verdict was already
// given at the horizon.
func (p *plan) finalLimit(n int) int {
	switch {
	case n <= 0 || math.IsInf(p.sprtSlope, 1):
		return never
	case p.limits != nil && n >= p.horizon:
		if n == p.horizon {
			return p.limits[n]
		}
		return never
	}
	d := newDistribution(p.runLen, n)
	for m := 1; m < n; m++ {
		d.step(p.rate)
		d.absorb(p.limit(m))
	}
	d.step(p.rate)
	return d.lowestWithin(p.limit(n), p.alpha, minBad)
}

// plan computes the limits for a known horizon: the SPRT's limits, lowered
// wherever the α the SPRT leaves unused allows, the more so the nearer the
// end.
func (p *plan) plan() []int {
	h := p.horizon
	// First the SPRT alone, to learn what it spends by each probe.
	sprtSpent := make([]float64, h+1)
	d := newDistribution(p.runLen, h)
	for n := 1; n <= h; n++ {
		d.step(p.rate)
		d.absorb(p.sprtLimit(n))
		sprtSpent[n] = d.spent
	}
	leftover := p.alpha - sprtSpent[h]

	limits := make([]int, h+1)
	d = newDistribution(p.runLen, h)
	floor := minBad // limits never decrease: more probes never need fewer failures
	for n := 1; n <= h; n++ {
		d.step(p.rate)
		budget := sprtSpent[n] + leftover*math.Pow(float64(n)/float64(h), spendPower)
		if n == h {
			budget = p.alpha
		}
		lim := d.lowestWithin(p.sprtLimit(n), budget, floor)
		d.absorb(lim)
		limits[n] = lim
		floor = lim
	}
	return limits
}

// distribution is the probability of each (bad count, current run) among
// watches still going, for the dynamic programme in plan.
type distribution struct {
	runs   int       // run states: 0..runs-1
	runLen int       // a run this long ends the watch; 0 = no such rule
	mass   []float64 // mass[bad*runs+run]
	next   []float64 // scratch for step
	top    int       // highest bad count with mass
	spent  float64   // mass absorbed by the test so far
}

func newDistribution(runLen, maxProbes int) *distribution {
	runs := max(runLen, 1)
	size := (maxProbes + 2) * runs
	d := &distribution{runs: runs, runLen: runLen, mass: make([]float64, size), next: make([]float64, size)}
	d.mass[0] = 1
	return d
}

// step adds one probe that is bad with probability q. A bad probe that
// completes a run of runLen ends the watch by the consecutive-failures
// rule; that mass leaves without being charged to the test.
func (d *distribution) step(q float64) {
	r := d.runs
	next := d.next[:(d.top+2)*r]
	clear(next)
	for bad := 0; bad <= d.top; bad++ {
		for run, m := range d.mass[bad*r : (bad+1)*r] {
			if m == 0 {
				continue
			}
			next[bad*r] += m * (1 - q)
			switch {
			case d.runLen == 0:
				next[(bad+1)*r] += m * q
			case run+1 < d.runLen:
				next[(bad+1)*r+run+1] += m * q
			}
		}
	}
	d.top++
	d.mass, d.next = d.next, d.mass
	clear(d.next[:(d.top+1)*r])
}

// at is the mass with exactly bad bad probes.
func (d *distribution) at(bad int) float64 {
	if bad < 0 || bad > d.top {
		return 0
	}
	s := 0.0
	for _, m := range d.mass[bad*d.runs : (bad+1)*d.runs] {
		s += m
	}
	return s
}

// absorb ends, charging the test, every watch with at least lim bad probes.
func (d *distribution) absorb(lim int) {
	for bad := lim; bad <= d.top; bad++ {
		d.spent += d.at(bad)
		clear(d.mass[bad*d.runs : (bad+1)*d.runs])
	}
	d.top = min(d.top, max(lim-1, 0))
}

// lowestWithin is the lowest limit, between floor and from, whose total
// charge (spent so far plus what it would absorb now) stays within budget.
// Limits above every live count charge nothing, so the search starts at
// the lower of from and top+1, but never below floor.
func (d *distribution) lowestWithin(from int, budget float64, floor int) int {
	lim := max(min(from, d.top+1), floor)
	tail := 0.0
	for bad := lim; bad <= d.top; bad++ {
		tail += d.at(bad)
	}
	// The relative slack absorbs rounding in the sums.
	for lim-1 >= floor && d.spent+tail+d.at(lim-1) <= budget*(1+1e-9) {
		lim--
		tail += d.at(lim)
	}
	return lim
}
