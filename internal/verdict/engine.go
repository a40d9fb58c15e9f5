package verdict

import (
	"fmt"
	"math"
	"slices"
	"time"
)

// Engine judges one watch. Feed it every probe with Observe, then call
// Finish when the watch ends. It is not safe for concurrent use.
type Engine struct {
	limits Limits

	// What the rate tests compare against: absolute limits, or production's
	// numbers in baseline mode.
	errorRule   string
	allowedRate float64 // failure rate the error test allows
	latencyRule string
	slowerThan  time.Duration // a probe slower than this is slow; 0 = no latency test
	base        *Baseline     // nil unless baseline mode

	overall stream
	targets map[string]*stream
	order   []string // targets in the order first seen

	// Plans for the current number of targets; see replan.
	errorTarget, errorOverall     *plan
	latencyTarget, latencyOverall *plan
	plans                         map[planKey]*plan // plans are immutable; engines may share this memo

	verdict Decision // sticky once Regressed, or once Finish has run
}

// stream holds the counts of one target, or of all of them.
type stream struct {
	target    string
	probes    int
	failures  int
	run       int // current consecutive failures
	answered  int
	slow      int
	latencies []time.Duration // answered probes
}

func (s *stream) add(o Observation, slowerThan time.Duration) {
	s.probes++
	if o.Failed {
		s.failures++
		s.run++
	} else {
		s.run = 0
	}
	if !o.answered() {
		return
	}
	s.answered++
	s.latencies = append(s.latencies, o.Latency)
	if slowerThan > 0 && o.Latency > slowerThan {
		s.slow++
	}
}

func (s *stream) counts() Counts {
	return Counts{
		Probes:   s.probes,
		Failures: s.failures,
		Answered: s.answered,
		Slow:     s.slow,
		P50:      quantile(s.latencies, 50),
		P95:      quantile(s.latencies, 95),
	}
}

// New returns an engine judging against absolute limits. Zero fields of l
// take their defaults (see [Limits]). New panics if l is invalid: validate
// user input with [Limits.Validate] first.
func New(l Limits) *Engine {
	l = l.withDefaults()
	if err := l.Validate(); err != nil {
		panic("verdict.New: " + err.Error())
	}
	return &Engine{
		limits:      l,
		errorRule:   RuleErrorRate,
		allowedRate: l.MaxErrorRate,
		latencyRule: RuleLatency,
		slowerThan:  l.MaxLatency,
		targets:     map[string]*stream{},
		plans:       map[planKey]*plan{},
	}
}

// NewWithBaseline returns an engine judging relative to production: it
// regresses when the new build's failure rate is above the baseline's by
// more than MaxErrorRate (in points), or its LatencyPercentile is above
// MaxLatencyIncrease times the baseline's. The consecutive-failures rule
// stays absolute; MaxLatency is not used. If b is unhealthy (see
// [Baseline.Unhealthy]), use New instead: a failing production is no
// yardstick.
//
// Production's rate and percentile are taken as measured, so the noise of
// a short baseline adds false alarms beyond 1 − Confidence: with 60
// baseline probes at 2%, a build exactly 5 points worse is rolled back by
// the rate rule about 5% more often than by consecutive failures (see
// testdata/quality.txt). Take a few hundred baseline probes where the
// deploy allows.
func NewWithBaseline(l Limits, b Baseline) *Engine {
	e := New(l)
	l = e.limits
	e.base = &b
	e.errorRule = RuleBaselineErrorRate
	e.allowedRate = b.FailureRate() + l.MaxErrorRate
	e.latencyRule = RuleBaselineLatency
	e.slowerThan = 0
	if p := b.Latency(l.LatencyPercentile); p > 0 {
		e.slowerThan = time.Duration(float64(p) * l.MaxLatencyIncrease)
	}
	return e
}

// Observe records one probe and says whether the build has regressed. Once
// it has, every later call returns the same decision (the probe still
// counts in Stats).
func (e *Engine) Observe(o Observation) Decision {
	t := e.targets[o.Target]
	if t == nil {
		t = &stream{target: o.Target}
		e.targets[o.Target] = t
		e.order = append(e.order, o.Target)
		if e.verdict.Outcome == Continue {
			e.replan()
		}
	}
	t.add(o, e.slowerThan)
	e.overall.add(o, e.slowerThan)
	if e.verdict.Outcome != Continue {
		return e.verdict
	}
	if d, ok := e.check(t, false); ok {
		e.verdict = d
		return d
	}
	return Decision{Outcome: Continue}
}

// Finish ends the watch: Regressed if a rule tripped during it or the final
// look of a rate test trips now, Healthy otherwise.
func (e *Engine) Finish() Decision {
	if e.verdict.Outcome != Continue {
		return e.verdict
	}
	for _, name := range e.order {
		if d, ok := e.check(e.targets[name], true); ok {
			e.verdict = d
			return d
		}
	}
	e.verdict = Decision{Outcome: Healthy, Reason: e.healthyReason()}
	return e.verdict
}

// Stats returns the counts so far.
func (e *Engine) Stats() Stats {
	s := Stats{Overall: e.overall.counts()}
	for _, name := range e.order {
		s.Targets = append(s.Targets, TargetCounts{Target: name, Counts: e.targets[name].counts()})
	}
	return s
}

// replan plans the rate tests for the number of targets seen so far. With
// k targets there are k per-target tests and one overall test (with one
// target the overall test is the target's own); they split the allowance
// evenly, so that together they keep Limits.Confidence. Targets normally
// all appear in the first round of probes, before any test could trip.
func (e *Engine) replan() {
	k := len(e.order)
	alpha := 1 - e.limits.Confidence
	if k > 1 {
		alpha /= float64(k + 1)
	}
	h := e.limits.Horizon
	e.errorTarget = e.plan(planKey{e.allowedRate, alpha, e.limits.ConsecutiveFailures, h})
	e.errorOverall, e.latencyTarget, e.latencyOverall = nil, nil, nil
	if k > 1 {
		// No overlap with the per-target consecutive rule is assumed here:
		// the overall test is charged for every false alarm.
		e.errorOverall = e.plan(planKey{e.allowedRate, alpha, 0, h * k})
	}
	if e.slowerThan > 0 {
		slowRate := 1 - e.limits.LatencyPercentile/100
		e.latencyTarget = e.plan(planKey{slowRate, alpha, 0, h})
		if k > 1 {
			e.latencyOverall = e.plan(planKey{slowRate, alpha, 0, h * k})
		}
	}
}

// planKey is what a plan depends on.
type planKey struct {
	rate, alpha     float64
	runLen, horizon int
}

func (e *Engine) plan(k planKey) *plan {
	p := e.plans[k]
	if p == nil {
		p = newPlan(k.rate, k.alpha, k.runLen, k.horizon)
		e.plans[k] = p
	}
	return p
}

// check applies the rules to target t and to the overall counts, in order
// of how plainly they can be checked. final selects the end-of-watch look
// of the rate tests.
func (e *Engine) check(t *stream, final bool) (Decision, bool) {
	limit := (*plan).limit
	if final {
		limit = (*plan).finalLimit
	}
	if k := e.limits.ConsecutiveFailures; k > 0 && t.run >= k && !final {
		return Decision{
			Outcome: Regressed,
			Rule:    RuleConsecutiveFailures,
			Target:  t.target,
			Reason:  fmt.Sprintf("%d probes in a row failed%s", t.run, atTarget(t.target)),
		}, true
	}
	tests := []struct {
		p       *plan
		s       *stream
		latency bool
	}{
		{e.errorTarget, t, false},
		{e.errorOverall, &e.overall, false},
		{e.latencyTarget, t, true},
		{e.latencyOverall, &e.overall, true},
	}
	for _, tc := range tests {
		if tc.p == nil {
			continue
		}
		bad, n := tc.s.failures, tc.s.probes
		if tc.latency {
			bad, n = tc.s.slow, tc.s.answered
		}
		lim := limit(tc.p, n)
		if bad < lim {
			continue
		}
		target := tc.s.target
		if tc.s == &e.overall {
			target = ""
		}
		d := Decision{Outcome: Regressed, Target: target}
		if tc.latency {
			d.Rule = e.latencyRule
			d.Reason = e.latencyReason(tc.s, lim, final)
		} else {
			d.Rule = e.errorRule
			d.Reason = e.errorReason(tc.s, lim, final)
		}
		return d, true
	}
	return Decision{}, false
}

// atTarget places a target's URL at the end of a reason.
func atTarget(target string) string {
	if target == "" {
		return ""
	}
	return " on " + target
}

// scope opens a reason with what was counted: one target or all of them.
func (e *Engine) scope(s *stream) string {
	if s == &e.overall {
		return fmt.Sprintf("across all %d targets, ", len(e.order))
	}
	if s.target == "" {
		return ""
	}
	return "on " + s.target + ", "
}

// when says which look of the sequential test tripped, with its limit, so
// the numbers can be checked.
func when(n, lim int, final bool, what string) string {
	if final {
		return fmt.Sprintf("at the end of the watch the limit for %d %s is %d", n, what, lim)
	}
	return fmt.Sprintf("the sequential test's limit after %d %s is %d", n, what, lim)
}

func (e *Engine) errorReason(s *stream, lim int, final bool) string {
	conf := percent(e.limits.Confidence)
	got := fmt.Sprintf("%s%d of %d probes failed (%s)", e.scope(s), s.failures, s.probes, ratio(s.failures, s.probes))
	if e.base != nil {
		return fmt.Sprintf("%s, against %d of %d (%s) in production before the deploy; the failure rate is more than %s points above production's with %s confidence (%s)",
			got, e.base.failures, e.base.probes, ratio(e.base.failures, e.base.probes), points(e.limits.MaxErrorRate), conf, when(s.probes, lim, final, "probes"))
	}
	return fmt.Sprintf("%s; the failure rate is above the allowed %s with %s confidence (%s)",
		got, percent(e.limits.MaxErrorRate), conf, when(s.probes, lim, final, "probes"))
}

func (e *Engine) latencyReason(s *stream, lim int, final bool) string {
	pct := e.limits.LatencyPercentile
	name := "p" + trimFloat(pct)
	got := quantile(s.latencies, pct)
	allowed := fmt.Sprintf("the allowed %s", duration(e.slowerThan))
	if e.base != nil {
		allowed = fmt.Sprintf("%s× production's %s (%s)", trimFloat(e.limits.MaxLatencyIncrease), duration(e.base.Latency(pct)), duration(e.slowerThan))
	}
	return fmt.Sprintf("%sthe %s latency is %s, above %s: %d of %d answered probes were slower than %s, more than the %s a %s allows, with %s confidence (%s)",
		e.scope(s), name, duration(got), allowed, s.slow, s.answered, duration(e.slowerThan),
		percent(1-pct/100), name, percent(e.limits.Confidence), when(s.answered, lim, final, "answered probes"))
}

func (e *Engine) healthyReason() string {
	s := &e.overall
	if s.probes == 0 {
		return "no probes were made"
	}
	r := fmt.Sprintf("%d of %d probes failed (%s)", s.failures, s.probes, ratio(s.failures, s.probes))
	if e.base != nil {
		r += fmt.Sprintf(", against %d of %d (%s) in production, within the allowed %s points more",
			e.base.failures, e.base.probes, ratio(e.base.failures, e.base.probes), points(e.limits.MaxErrorRate))
	} else if float64(s.failures) > e.limits.MaxErrorRate*float64(s.probes) {
		r += fmt.Sprintf(", above the allowed %s but not with %s confidence over so few probes",
			percent(e.limits.MaxErrorRate), percent(e.limits.Confidence))
	} else {
		r += ", within the allowed " + percent(e.limits.MaxErrorRate)
	}
	if s.answered == 0 {
		return r
	}
	pct := e.limits.LatencyPercentile
	name := "p" + trimFloat(pct)
	r += fmt.Sprintf("; %s latency %s", name, duration(quantile(s.latencies, pct)))
	switch {
	case e.base != nil && e.slowerThan > 0:
		r += fmt.Sprintf(", against %s in production (allowed %s)", duration(e.base.Latency(pct)), duration(e.slowerThan))
	case e.slowerThan > 0 && quantile(s.latencies, pct) > e.slowerThan:
		r += fmt.Sprintf(", above the allowed %s but not with %s confidence", duration(e.slowerThan), percent(e.limits.Confidence))
	case e.slowerThan > 0:
		r += fmt.Sprintf(", within the allowed %s", duration(e.slowerThan))
	}
	return r
}

// quantile is the nearest-rank pct-th percentile: the smallest latency with
// at least pct% of the latencies at or below it. 0 when there are none.
func quantile(latencies []time.Duration, pct float64) time.Duration {
	if len(latencies) == 0 {
		return 0
	}
	sorted := slices.Clone(latencies)
	slices.Sort(sorted)
	// The slack keeps 95% of 20 at rank 19 despite rounding.
	rank := int(math.Ceil(pct*float64(len(sorted))/100 - 1e-9))
	return sorted[min(max(rank, 1), len(sorted))-1]
}
