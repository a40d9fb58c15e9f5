package verdict

import (
	"math"
)

// Tuning of the sequential test. Whatever their values, the exact
// calculation keeps false alarms within α; they only choose which
// regressions the test is quickest on. See testdata/quality.txt for what
// they give with the default limits, and plan for the trade-off they make.
const (
	// bigRegression is the regression, as a multiple of the allowed rate,
	// the test is to catch in as few probes as possible: a clear one.
	bigRegression = 4
	// smallRegression is the regression the test is to catch at all within
	// the watch: the smallest one worth a rollback.
	smallRegression = 2
	// missCost is what missing a small regression costs, in probes, as a
	// share of the horizon: against it the test weighs the probes a big one
	// serves before the rollback. More catches small regressions more often,
	// less catches big ones sooner.
	missCost = 0.4
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

	// SPRT boundary, for an open-ended watch: bad >= sprtBase + sprtSlope·n.
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
	q1 := bigRate(q0)
	perBad := math.Log(q1 / q0)
	perGood := math.Log((1 - q1) / (1 - q0)) // negative
	p.sprtBase = math.Log(1/alpha) / (perBad - perGood)
	p.sprtSlope = -perGood / (perBad - perGood)
	if horizon > 0 {
		p.limits = p.plan()
	}
	return p
}

// bigRate and smallRate are the failure rates of a big and a small
// regression over the allowed rate q0, kept below 1 for large q0.
func bigRate(q0 float64) float64 { return math.Min(bigRegression*q0, (1+q0)/2) }

func smallRate(q0 float64) float64 {
	return q0 + (bigRate(q0)-q0)*(smallRegression-1)/(bigRegression-1)
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

// plan computes the limits for a known horizon H: the stopping rule that
// best serves one stated aim, given that false alarms must stay within α.
// The aim: a big regression should serve as few probes as possible before
// the rollback (at most H), and every small regression the watch misses
// counts as missCost·H probes more.
//
// This is the textbook way to optimise a sequential test, a Bayes problem
// with a price λ on false alarms (a Lagrange multiplier): for a given λ,
// backward induction over (probes, bad count) finds where stopping costs
// less than going on; λ is then the lowest price whose limits keep false
// alarms within α, found by bisection with the exact calculation. The
// optimisation leaves the consecutive-failures rule aside (it would make
// the limits depend on the current run); the false-alarm count does not.
// Nothing in the aim is specific to the default limits: its terms scale
// with the rate and the horizon.
func (p *plan) plan() []int {
	// Bracket λ between lo (over α) and hi (within α), then bisect on a
	// log scale. A higher λ stops at fewer counts, never more, so the rules
	// in between lie between those of lo and hi: once these differ by one
	// count after one number of probes, hi's rule is the one.
	lo, hi := 1/p.alpha, 1/p.alpha
	var loRule, hiRule []int
	for hiRule = p.stopRule(hi); !p.within(hiRule); hiRule = p.stopRule(hi) {
		lo, loRule = hi, hiRule
		hi *= 16
	}
	for loRule == nil {
		lo /= 16
		if r := p.stopRule(lo); p.within(r) && lo > 1e-300 {
			hi, hiRule = lo, r
		} else {
			loRule = r
		}
	}
	for hi/lo > 1+1e-15 {
		gap := 0
		for n := range hiRule {
			gap += hiRule[n] - loRule[n]
		}
		if gap <= 1 {
			break
		}
		mid := math.Sqrt(lo * hi)
		if r := p.stopRule(mid); p.within(r) {
			hi, hiRule = mid, r
		} else {
			lo, loRule = mid, r
		}
	}
	return hiRule
}

// within reports whether the limits keep false alarms within α, exactly.
func (p *plan) within(limits []int) bool {
	d := newDistribution(p.runLen, p.horizon)
	for n := 1; n <= p.horizon; n++ {
		d.step(p.rate)
		d.absorb(limits[n])
		if d.spent > p.alpha*(1+1e-9) {
			return false
		}
	}
	return true
}

// stopRule is the optimal rule when a false alarm costs lambda, as limits
// on the bad count (never below minBad, never lower for more probes).
//
// Costs are counted per sequence of probes, relative to that sequence's
// probability under the allowed rate q0, so that every hypothesis enters
// through its likelihood ratio Λ(n, bad) against q0. Stopping costs lambda
// (a false alarm, if the rate is q0). Going on costs Λ_big (the big
// regression serves one more probe) plus what is expected from the next
// probe on. At the horizon, not stopping costs missCost·H·Λ_small.
//
// The programme keeps, instead of the cost of going on, what going on saves
// over stopping now (lambda minus that cost), which is 0 where stopping is
// best. Near the end of the watch many savings are tiny next to lambda;
// kept apart from lambda they keep their precision, and the rule only
// stops at fewer counts as lambda grows, as it should.
func (p *plan) stopRule(lambda float64) []int {
	h := p.horizon
	q0 := p.rate
	qb, qs := bigRate(q0), smallRate(q0)
	// log Λ(n, s) = n·perProbe + s·perBad
	bigProbe, bigBad := math.Log((1-qb)/(1-q0)), math.Log(qb/q0)-math.Log((1-qb)/(1-q0))
	smallProbe, smallBad := math.Log((1-qs)/(1-q0)), math.Log(qs/q0)-math.Log((1-qs)/(1-q0))
	miss := missCost * float64(h)

	// ratio yields Λ(n, s) = exp(n·perProbe + s·perBad) for s = 0, 1, ...
	// in turn, by one exponential and then products; values below e^-700
	// (too small to matter, and to represent) are 0.
	type ratio struct {
		s, first             int
		x, step, at0, perBad float64
	}
	newRatio := func(n int, perProbe, perBad float64) ratio {
		at0 := float64(n) * perProbe
		first := max(0, int(math.Ceil((-700-at0)/perBad)))
		return ratio{first: first, step: math.Exp(perBad), at0: at0, perBad: perBad}
	}
	nextRatio := func(r *ratio) float64 {
		switch {
		case r.s == r.first:
			r.x = math.Exp(r.at0 + float64(r.s)*r.perBad)
		case r.s > r.first:
			r.x *= r.step
		}
		r.s++
		return r.x
	}

	limits := make([]int, h+1)
	// save[s] is what going on saves with s bad probes after n probes, for
	// s below the lowest count where stopping is best; from there on it is
	// 0.
	save := make([]float64, 0, h+2)
	small := newRatio(h, smallProbe, smallBad)
	for s := 0; s <= h; s++ {
		d := lambda - miss*nextRatio(&small)
		if d <= 0 {
			break
		}
		save = append(save, d)
	}
	limits[h] = len(save)
	next := make([]float64, 0, h+2)
	for n := h - 1; n >= 1; n-- {
		// Going on from s bad probes leads to s+1 or s after n+1 probes.
		// Where both stop, so does s: going on saves nothing.
		stops := len(save)
		save = append(save, 0)
		next = next[:0]
		big := newRatio(n, bigProbe, bigBad)
		for s := 0; s <= n && s < stops; s++ {
			d := q0*save[s+1] + (1-q0)*save[s] - nextRatio(&big)
			if d <= 0 {
				break
			}
			next = append(next, d)
		}
		limits[n] = len(next)
		save, next = next, save
	}
	limits[h] = max(limits[h], minBad)
	for n := h - 1; n >= 1; n-- {
		limits[n] = max(min(limits[n], limits[n+1]), minBad)
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
	r, top := d.runs, d.top
	mass, next := d.mass[:(top+1)*r], d.next[:(top+2)*r]
	if d.runLen == 0 {
		next[0] = mass[0] * (1 - q)
		for bad := 1; bad <= top; bad++ {
			next[bad] = mass[bad]*(1-q) + mass[bad-1]*q
		}
		next[top+1] = mass[top] * q
	} else {
		for bad := 0; bad <= top+1; bad++ {
			row := next[bad*r : (bad+1)*r]
			// A good probe ends every run.
			good := 0.0
			if bad <= top {
				for _, m := range mass[bad*r : (bad+1)*r] {
					good += m
				}
			}
			row[0] = good * (1 - q)
			// A bad probe lengthens the run, unless that completes it.
			for run := 1; run < r; run++ {
				row[run] = 0
				if bad > 0 {
					row[run] = mass[(bad-1)*r+run-1] * q
				}
			}
		}
	}
	d.top++
	d.mass, d.next = d.next, d.mass
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
