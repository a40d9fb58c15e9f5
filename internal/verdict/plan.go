package verdict

import (
	"math"
	"slices"
	"sort"
)

// The aim of a planned sequential test: regressions it should catch, each
// by a deadline (a look) with a weight. Whatever these are, the exact
// calculation keeps false alarms within α; they only choose which
// regressions the test is quickest on. Deadlines are counted in probes per
// allowed failure (1/rate: 20 probes at 5%), since that is what it takes
// to tell a regression from noise, whatever the length of the watch. They
// were chosen with the quality benchmark (testdata/quality.txt): with the
// default limits, a clear regression is caught by probe 28 in most
// watches and by probe 90 in nearly all, a gross one within the first 8,
// and as many small ones as possible by the end.
var aims = []aim{
	{times: 10, within: 0.4, weight: 0.02}, // a gross regression: within the first few probes
	{times: 4, within: 1.4, weight: 0.5},   // a clear one: soon...
	{times: 4, within: 4.5, weight: 0.5},   // ...or at least well before the end
	{times: 2, weight: 1},                  // a small one: by the end of the watch
}

// An aim rewards catching a build that fails times× as often as allowed
// within its look, within/rate probes (0: the whole watch), with weight.
type aim struct {
	times, within, weight float64
}

// look is the probe by which an aim wants its catch, within 1..horizon,
// for the allowed rate q0.
func (a aim) look(q0 float64, horizon int) int {
	if a.within == 0 {
		return horizon
	}
	// The slack keeps 1.4/0.05 at 28, not 27.
	return min(max(int(a.within/q0+1e-9), 1), horizon)
}

// regressedRate is the failure rate of a build times× worse than q0, kept
// below 1 (and rising with times) for large q0.
func regressedRate(q0, times float64) float64 {
	return math.Min(times*q0, q0+(1-q0)*(times-1)/times)
}

// minBad is the fewest bad requests a rate verdict may rest on, so that an
// unlucky pair of timeouts never rolls back on its own.
const minBad = 3

// never is a limit no count reaches.
const never = math.MaxInt64

// plan is a planned sequential test: "the share of bad probes is above
// rate", with a false-alarm allowance alpha, for a watch of horizon probes.
// The test regresses after n probes when the bad count reaches limit(n).
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
	horizon int // planned probes

	limits []int // limits[n] for n = 1..horizon

	// work counts the planner's steps; past budget it gives up.
	work, budget int64

	finals map[int64]int64 // finalLimit's answers, by number of probes
}

// overBudget is what the planner panics with when it runs out of work.
type overBudget struct{}

// spend accounts for work steps of planning.
func (p *plan) spend(steps int) {
	p.work += int64(steps)
	if p.work > p.budget {
		panic(overBudget{})
	}
}

// newPlan plans a test for a known horizon within budget steps of work (a
// step is one cell of a dynamic programme, a few nanoseconds), and
// returns the plan and the work it took, or nil when planning would cost
// more than budget. rate must be below 1.
func newPlan(rate, alpha float64, runLen, horizon int, budget int64) (p *plan, work int64) {
	p = &plan{rate: rate, alpha: alpha, runLen: runLen, horizon: horizon, budget: budget, finals: map[int64]int64{}}
	defer func() {
		if r := recover(); r != nil {
			if _, ok := r.(overBudget); !ok {
				panic(r)
			}
			p = nil
		}
	}()
	p.limits = p.plan()
	return p, p.work
}

// trips reports whether bad of n probes regress, during the watch or at
// its end (final). A planned test judges probes, which are independent:
// it is never tempered.
func (p *plan) trips(n, bad int64, final bool, _ float64) bool { return bad >= p.limit(n, final, 1) }

// limit is the bad count that regresses after n probes: during the watch,
// or when the watch ends there (final: the remaining allowance goes to a
// last fixed-sample look). At the horizon that is the planned limit; past
// it, the verdict was already given at the horizon.
func (p *plan) limit(n int64, final bool, _ float64) int64 {
	switch {
	case n <= 0 || n > int64(p.horizon):
		return never
	case !final || n == int64(p.horizon):
		return int64(p.limits[n])
	}
	if lim, ok := p.finals[n]; ok {
		return lim
	}
	m := int(n)
	d := newDistribution(p.runLen, m)
	for i := 1; i < m; i++ {
		d.step(p.rate)
		d.absorb(p.limits[i])
	}
	d.step(p.rate)
	lim := int64(d.lowestWithin(p.limits[m], p.alpha, minBad))
	p.finals[n] = lim
	return lim
}

// plan computes the limits for a known horizon H: the stopping rule that
// best serves the aims, given that false alarms must stay within α.
//
// This is the textbook way to optimise a sequential test, a Bayes problem
// with a price λ on false alarms (a Lagrange multiplier): for a given λ,
// backward induction over (probes, bad count) finds where stopping is worth
// more than going on; λ is then the lowest price whose limits keep false
// alarms within α, found by bisection with the exact calculation, and what
// that leaves of α is spent on small regressions (spend). The optimisation
// leaves the consecutive-failures rule aside (it would make the limits
// depend on the current run); the false-alarm count does not.
func (p *plan) plan() []int {
	// Bracket log λ between lo (over α) and hi (within α), then bisect. A
	// higher λ stops at fewer counts, never more, so the rules in between
	// lie between those of lo and hi: once these differ by one count after
	// one number of probes, hi's rule is the one. λ is handled by its
	// logarithm because sure-to-be-caught aims (a small regression that is
	// far from the allowed rate over a long watch) can need a price far
	// below the smallest float64 (or above the largest). The bracket's
	// steps double, since long watches can need e^±1000.
	const far = 1e5
	lo, hi := math.Log(1/p.alpha), math.Log(1/p.alpha)
	var loRule, hiRule []int
	step := 2.77 // e^2.77 ≈ 16
	for hiRule = p.stopRule(hi); !p.within(hiRule) && hi < far; hiRule = p.stopRule(hi) {
		lo, loRule = hi, hiRule
		hi += step
		step *= 2
	}
	for step = 2.77; loRule == nil; step *= 2 {
		lo -= step
		r := p.stopRule(lo)
		if !p.within(r) {
			loRule = r
			break
		}
		hi, hiRule = lo, r
		if lo < -far || slices.Max(r[1:]) == minBad {
			loRule = r // stopping at every chance fits: nothing lower to try
		}
	}
	for hi-lo > 1e-6*(1+math.Abs(hi)) {
		gap := 0
		for n := range hiRule {
			gap += hiRule[n] - loRule[n]
		}
		if gap <= 1 {
			break
		}
		mid := (lo + hi) / 2
		if r := p.stopRule(mid); p.within(r) {
			hi, hiRule = mid, r
		} else {
			lo, loRule = mid, r
		}
	}
	return p.fill(p.mix(hiRule, loRule))
}

// within reports whether the limits keep false alarms within α, exactly.
func (p *plan) within(limits []int) bool {
	d := newDistribution(p.runLen, p.horizon)
	for n := 1; n <= p.horizon; n++ {
		p.spend((d.top + 2) * d.runs)
		d.step(p.rate)
		d.absorb(limits[n])
		if d.spent > p.alpha*(1+1e-9) {
			return false
		}
	}
	return true
}

// mix spends what the price leaves of α. λ moves the rule in steps, and
// at the last step the rule within α (fits) and the one over it (over)
// can differ after many numbers of probes at once. mix takes over's limits
// up to the latest number of probes that keeps false alarms within α, and
// fits' after it (a sequential form of the randomised test that
// textbooks use to spend α exactly).
func (p *plan) mix(fits, over []int) []int {
	mixed := slices.Clone(fits)
	upTo := func(b int) []int {
		copy(mixed, fits)
		copy(mixed[:b+1], over[:b+1])
		return mixed
	}
	// The more of over's limits, the more false alarms; upTo(0) is fits.
	last := sort.Search(p.horizon, func(b int) bool { return !p.within(upTo(b + 1)) })
	return upTo(last)
}

// fill spends what is still left of α on the stretch after the last look
// before the horizon, where small regressions show: it brings that
// stretch's limits down to the lowest count that fits. A single price
// cannot always do this: where an early look is worth much to a clear
// regression but costs much in false alarms, the price that drops it
// leaves the end of the watch far too strict.
func (p *plan) fill(limits []int) []int {
	from := 1
	for _, a := range aims {
		if n := a.look(p.rate, p.horizon); n < p.horizon {
			from = max(from, n+1)
		}
	}
	floor := minBad
	if from > 1 {
		floor = max(floor, limits[from-1])
	}
	capped := slices.Clone(limits)
	capAt := func(v int) []int {
		for n := from; n <= p.horizon; n++ {
			capped[n] = min(limits[n], v)
		}
		return capped
	}
	// The lower the cap, the more false alarms; limits[horizon] fits.
	lowest := floor + sort.Search(limits[p.horizon]-floor, func(i int) bool { return p.within(capAt(floor + i)) })
	return capAt(lowest)
}

// stopRule is the optimal rule when a false alarm costs λ = e^logLambda,
// as limits on the bad count (never below minBad, never lower for more
// probes).
//
// Values are counted per sequence of probes, relative to that sequence's
// probability under the allowed rate q0, so that every aim enters through
// its likelihood ratio Λ(n, bad) against q0. Stopping after n probes earns
// the weight times Λ of every aim whose look is n or later, and costs λ (a
// false alarm, if the rate is q0).
//
// The programme keeps what going on is worth over stopping now (its
// saving), in units of λ, which is 0 where stopping is best. Λ is a
// martingale under q0, so λ and the aims still ahead cancel out of the
// saving: after n probes it is what the next probe's saving is expected to
// be, less what the aims whose look is n earn (going on forfeits them).
// Between looks nothing is forfeited, so a count stops exactly where both
// next counts do: the limit stays flat from one look back to the one
// before, and the test rolls back as soon as the count reaches the next
// look's limit. Kept apart from λ, the tiny savings near the end keep
// their precision, and the rule only stops at fewer counts as λ grows, as
// it should.
func (p *plan) stopRule(logLambda float64) []int {
	h, q0 := p.horizon, p.rate
	// forfeits[n] are the aims whose look is n: Λ = exp(n·perProbe +
	// bad·perBad), earned with weight.
	type forfeit struct{ perProbe, perBad, weight float64 }
	forfeits := make(map[int][]forfeit, len(aims))
	for _, a := range aims {
		q := regressedRate(q0, a.times)
		perProbe := math.Log((1 - q) / (1 - q0))
		perBad := math.Log(q/q0) - perProbe
		n := a.look(q0, h)
		forfeits[n] = append(forfeits[n], forfeit{perProbe, perBad, a.weight})
	}
	// forfeited is what aims fs, whose look is n, earn, in units of λ.
	forfeited := func(fs []forfeit, n, bad int) float64 {
		v := 0.0
		for _, f := range fs {
			// Beyond e^700 (unrepresentable) stopping wins anyway.
			v += f.weight * math.Exp(min(float64(n)*f.perProbe+float64(bad)*f.perBad-logLambda, 700))
		}
		return v
	}

	limits := make([]int, h+1)
	// save[s] is the saving with s bad probes after n probes, for s below
	// the lowest count where stopping is best; from there on it is 0. It
	// falls as s rises, since Λ rises with every bad probe.
	save := make([]float64, 0, h+2)
	for s := 0; s <= h; s++ {
		d := 1 - forfeited(forfeits[h], h, s)
		if d <= 0 {
			break
		}
		save = append(save, d)
	}
	limits[h] = len(save)
	p.spend(len(save) + 1)
	next := make([]float64, 0, h+2)
	for n := h - 1; n >= 1; n-- {
		// Going on from s bad probes leads to s+1 or s after n+1 probes.
		// Where both stop, so does s.
		stops := len(save)
		save = append(save, 0)
		next = next[:0]
		p.spend(stops + 1)
		fs := forfeits[n]
		for s := 0; s <= n && s < stops; s++ {
			d := q0*save[s+1] + (1-q0)*save[s]
			if fs != nil {
				d -= forfeited(fs, n, s)
			}
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
