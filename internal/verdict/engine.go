package verdict

import (
	"fmt"
	"math"
	"time"

	"github.com/immune-cd/immune/internal/latency"
	"github.com/immune-cd/immune/internal/pct"
)

// planBudget bounds the work an Engine may spend planning its tests, in
// steps of the planner's dynamic programmes (a few nanoseconds each: about
// 10 ms in all on a 2020s server core). A test whose plan would cost more is
// a mixture test instead; see the package comment.
const planBudget = 3_000_000

// Engine judges one watch. Feed it every look with Observe, then call
// Finish when the watch ends. It is not safe for concurrent use.
type Engine struct {
	limits Limits

	// What the rate tests compare against: absolute limits, or production's
	// numbers in baseline mode.
	errorRule   string
	allowedRate float64 // failure rate the error test allows
	latencyRule string
	slowerThan  time.Duration // a request slower than this is slow; 0 = no latency test
	base        *Baseline     // nil unless baseline mode

	overall stream
	targets map[string]*stream
	order   []*stream // targets in the order first seen
	unit    string    // "probes", or "requests" once a look held several

	// The tests: each target's own, and the fleet's over all targets (nil
	// with one target, whose own test is the fleet's).
	errorTarget, errorFleet     rateTest
	errAlpha, errPerTarget      float64 // the error rule's allowance: each signal's, each target's
	latencyTarget, latencyFleet rateTest
	tests                       map[testKey]rateTest // tests are immutable; engines may share this memo
	budget                      int64                // planning work left

	verdict Decision // sticky once Regressed, or once Finish has run
}

// rateTest is a sequential test of "the share of bad requests is above
// rate": a planned test or a mixture test.
type rateTest interface {
	// trips reports whether bad of n requests regress, during the watch or
	// at its end (final), with the evidence divided by temper (≥ 1; see
	// Limits.Dispersion).
	trips(n, bad int64, final bool, temper float64) bool
	// limit is the lowest bad count that trips after n requests.
	limit(n int64, final bool, temper float64) int64
}

// testKey is what a test depends on.
type testKey struct {
	rate, alpha     float64
	runLen, horizon int
}

// stream holds the counts of one target, or of all of them.
type stream struct {
	target    string
	n         int64
	failures  int64
	run       int64 // current consecutive failures
	answered  int64
	slow      int64
	latencies latency.Sketch // answered requests
	disp      dispersion     // with Limits.Dispersion
	count     *countTest     // its error test, with Limits.Dispersion outside baseline mode
}

func (s *stream) counts(percentile float64) Counts {
	return Counts{
		Probes:     s.n,
		Failures:   s.failures,
		Answered:   s.answered,
		Slow:       s.slow,
		P50:        s.latencies.Quantile(0.50),
		P95:        s.latencies.Quantile(0.95),
		Percentile: s.latencies.Quantile(percentile / 100),
	}
}

// New returns an engine judging against absolute limits. Zero fields of l
// take their defaults (see [Limits]). New panics if l is invalid: validate
// user input with [Limits.Validate] first. Its tests are chosen and planned
// here, within planBudget.
func New(l Limits) *Engine { return build(l, nil, nil) }

// NewWithBaseline returns an engine judging relative to production: it
// regresses when the new build's failure rate is above the baseline's by
// more than MaxErrorRate (in points), or its LatencyPercentile is above
// MaxLatencyIncrease times the baseline's. The consecutive-failures rule
// stays absolute; MaxLatency is not used. If b is unhealthy (see
// [Baseline.Unhealthy]), use New instead: a failing production is no
// yardstick.
//
// Production's failure rate is not taken as known: the error test judges
// the new build against every rate production's looks allow (baseline.go),
// so that a build exactly MaxErrorRate points worse than production is
// rolled back by it in at most 1 − Confidence of watches however short the
// baseline. Production's latency percentile is taken as measured, so a
// short baseline's noise adds false alarms to the latency rule.
func NewWithBaseline(l Limits, b *Baseline) *Engine { return build(l, b, nil) }

// build makes an engine, in baseline mode when b is set. tests, when set,
// is a memo of tests shared with other engines.
func build(l Limits, b *Baseline, tests map[testKey]rateTest) *Engine {
	l = l.withDefaults()
	if err := l.Validate(); err != nil {
		panic("verdict: " + err.Error())
	}
	if tests == nil {
		tests = map[testKey]rateTest{}
	}
	e := &Engine{
		limits:      l,
		errorRule:   RuleErrorRate,
		allowedRate: l.MaxErrorRate,
		latencyRule: RuleLatency,
		slowerThan:  l.MaxLatency,
		targets:     make(map[string]*stream, l.Targets),
		unit:        "probes",
		tests:       tests,
		budget:      planBudget,
	}
	if b != nil {
		e.base = b
		e.errorRule = RuleBaselineErrorRate
		e.allowedRate = b.FailureRate() + l.MaxErrorRate
		e.latencyRule = RuleBaselineLatency
		e.slowerThan = 0
		if p := b.Latency(l.LatencyPercentile); p > 0 {
			e.slowerThan = time.Duration(float64(p) * l.MaxLatencyIncrease)
		}
	}
	e.plan()
	return e
}

// plan chooses the tests: the targets' first (a single target's test is
// the one that benefits most from planning), then the fleet's.
func (e *Engine) plan() {
	k := e.limits.Targets
	alpha := 1 - e.limits.Confidence
	// The error-rate rule shares its allowance with the watch's other
	// signals; the latency rule is this engine's alone.
	errAlpha := alpha / float64(e.limits.Signals)
	perTarget, errPerTarget := alpha, errAlpha
	if k > 1 {
		perTarget, errPerTarget = alpha/2/float64(k), errAlpha/2/float64(k)
	}
	h := e.limits.Horizon
	if e.limits.Dispersion {
		h = 0 // tempered evidence needs the mixture test
	}
	slowRate := 1 - e.limits.LatencyPercentile/100
	e.errAlpha, e.errPerTarget = errAlpha, errPerTarget
	e.overall.disp.rate = e.allowedRate
	if e.limits.Dispersion && e.base == nil && k > 1 {
		// With several targets the counts of all of them have a test of
		// their own; with one, the target's test is the fleet's.
		e.overall.count = newCountTest(e.allowedRate, errAlpha/2)
	}
	switch {
	case e.base != nil:
		// Production's own counts are a sample too: the new build is judged
		// against every rate production's looks allow (baseline.go).
		e.errorTarget = newBaselineTest(e.base, e.limits.MaxErrorRate, errPerTarget)
	case !e.limits.Dispersion:
		e.errorTarget = e.test(testKey{e.allowedRate, errPerTarget, e.limits.ConsecutiveFailures, h})
	}
	if e.slowerThan > 0 {
		e.latencyTarget = e.test(testKey{slowRate, perTarget, 0, h})
	}
	if k > 1 {
		// No overlap with the per-target consecutive rule is assumed here:
		// the fleet test is charged for every false alarm.
		switch {
		case e.base != nil:
			e.errorFleet = newBaselineTest(e.base, e.limits.MaxErrorRate, errAlpha/2)
		case !e.limits.Dispersion:
			e.errorFleet = e.test(testKey{e.allowedRate, errAlpha / 2, 0, h * k})
		}
		if e.slowerThan > 0 {
			e.latencyFleet = e.test(testKey{slowRate, alpha / 2, 0, h * k})
		}
	}
}

// test returns the planned test for k when its horizon is known and the
// plan fits in what is left of the budget, else the mixture test.
func (e *Engine) test(k testKey) rateTest {
	if t := e.tests[k]; t != nil {
		return t
	}
	var t rateTest
	// Planning takes more than 50·h²·rate steps: a plan that would surely
	// not fit is not even tried.
	if k.horizon > 0 && k.rate < 1 && 50*float64(k.horizon)*float64(k.horizon)*k.rate <= float64(e.budget) {
		if p, work := newPlan(k.rate, k.alpha, k.runLen, k.horizon, e.budget); p != nil {
			e.budget -= work
			t = p
		} else {
			e.budget -= work
		}
	}
	if t == nil {
		t = newMixture(k.rate, k.alpha)
	}
	e.tests[k] = t
	return t
}

// Observe records one look and says whether the build has regressed. Once
// it has, every later call returns the same decision (the look still
// counts in Stats). It panics on an impossible observation (more failures
// than requests) or on more targets than Limits.Targets.
func (e *Engine) Observe(o Observation) Decision {
	o.check()
	t := e.targets[o.Target]
	if t == nil {
		if len(e.order) == e.limits.Targets {
			panic(fmt.Sprintf("verdict: target %s is one more than Limits.Targets (%d)", o.Target, e.limits.Targets))
		}
		t = e.newStream(o.Target)
		e.targets[o.Target] = t
		e.order = append(e.order, t)
	}
	if o.N == 0 {
		return e.current()
	}
	if o.N > 1 {
		e.unit = "requests"
	}
	answered, slow := e.latencies(o, t)
	for _, s := range [2]*stream{t, &e.overall} {
		s.n += o.N
		s.failures += o.Failed
		s.answered += answered
		s.slow += slow
		if e.limits.Dispersion {
			s.disp.observe(o.N, o.Failed)
			if s.count != nil {
				s.count.look(o.N, o.Failed, s.disp.phi())
			}
		}
	}
	switch {
	case o.Failed == o.N:
		t.run += o.N
	default:
		t.run = 0
	}
	if e.verdict.Outcome != Continue {
		return e.verdict
	}
	// A look without failures (or slow answers) can only lower a test's
	// ratio, or keep its count under a limit that never falls; but it can
	// lower the estimated over-dispersion, and with it the tempering.
	if d, ok := e.check(t, o.Failed > 0 || e.limits.Dispersion, slow > 0); ok {
		e.verdict = d
		return d
	}
	return Decision{Outcome: Continue}
}

// newStream starts the counts of a target: with Limits.Dispersion, its
// dispersion estimate and (outside baseline mode) its error test.
func (e *Engine) newStream(target string) *stream {
	s := &stream{target: target}
	s.disp.rate = e.allowedRate
	if e.limits.Dispersion && e.base == nil {
		s.count = newCountTest(e.allowedRate, e.errPerTarget)
	}
	return s
}

func (e *Engine) current() Decision {
	if e.verdict.Outcome != Continue {
		return e.verdict
	}
	return Decision{Outcome: Continue}
}

// latencies records a look's latencies in t and the overall stream, and
// counts its answered and slow requests.
func (e *Engine) latencies(o Observation, t *stream) (answered, slow int64) {
	if o.Latencies != nil {
		answered = o.Latencies.Count()
		if e.slowerThan > 0 {
			slow = o.Latencies.Above(e.slowerThan)
		}
		t.latencies.Merge(o.Latencies)
		e.overall.latencies.Merge(o.Latencies)
		return answered, slow
	}
	if o.N != 1 || (o.Latency <= 0 && o.Failed == 1) {
		return 0, 0
	}
	if e.slowerThan > 0 && o.Latency > e.slowerThan {
		slow = 1
	}
	t.latencies.Add(o.Latency)
	e.overall.latencies.Add(o.Latency)
	return 1, slow
}

// Finish ends the watch: Regressed if a rule tripped during it or the final
// look of a rate test trips now, Healthy otherwise.
func (e *Engine) Finish() Decision {
	if e.verdict.Outcome != Continue {
		return e.verdict
	}
	for _, t := range e.order {
		if d, ok := e.final(t); ok {
			e.verdict = d
			return d
		}
	}
	if len(e.order) > 1 {
		if d, ok := e.final(nil); ok {
			e.verdict = d
			return d
		}
	}
	e.verdict = Decision{Outcome: Healthy, Reason: e.healthyReason(), Evidence: e.healthyEvidence()}
	return e.verdict
}

// Stats returns the counts so far.
func (e *Engine) Stats() Stats {
	percentile := e.limits.LatencyPercentile
	s := Stats{Overall: e.overall.counts(percentile)}
	for _, t := range e.order {
		s.Targets = append(s.Targets, TargetCounts{Target: t.target, Counts: t.counts(percentile)})
	}
	return s
}

// check applies the rules to target t and to the fleet after a look, in
// order of how plainly they can be checked. failed and slow say whether
// the look had failed and slow requests.
func (e *Engine) check(t *stream, failed, slow bool) (Decision, bool) {
	if k := int64(e.limits.ConsecutiveFailures); k > 0 && t.run >= k && failed {
		return Decision{
			Outcome: Regressed,
			Rule:    RuleConsecutiveFailures,
			Target:  t.target,
			Reason:  fmt.Sprintf("%d %s in a row failed%s", t.run, e.unit, atTarget(t.target)),
			Evidence: Evidence{
				Judged: t.n, Bad: t.run, Limit: k, ErrorRate: rate(t.failures, t.n), AllowedErrorRate: e.allowedRate,
				Confidence: e.limits.Confidence,
			},
		}, true
	}
	if failed {
		for _, s := range [2]*stream{t, &e.overall} {
			if s.count != nil && s.count.trips() {
				return e.countRegressed(s), true
			}
		}
		if d, ok := e.tryError(e.errorTarget, t, false); ok {
			return d, true
		}
		if d, ok := e.tryError(e.errorFleet, &e.overall, false); ok {
			return d, true
		}
	}
	if slow {
		if d, ok := e.tryLatency(e.latencyTarget, t, false); ok {
			return d, true
		}
		if d, ok := e.tryLatency(e.latencyFleet, &e.overall, false); ok {
			return d, true
		}
	}
	return Decision{}, false
}

// final is the end-of-watch look of target t's tests, or of the fleet's
// when t is nil.
func (e *Engine) final(t *stream) (Decision, bool) {
	errTest, latTest := e.errorTarget, e.latencyTarget
	if t == nil {
		t, errTest, latTest = &e.overall, e.errorFleet, e.latencyFleet
	}
	if d, ok := e.tryError(errTest, t, true); ok {
		return d, true
	}
	return e.tryLatency(latTest, t, true)
}

func (e *Engine) tryError(test rateTest, s *stream, final bool) (Decision, bool) {
	phi := e.temper(s)
	if test == nil || !test.trips(s.n, s.failures, final, phi) {
		return Decision{}, false
	}
	lim := test.limit(s.n, final, phi)
	ev := Evidence{
		Judged: s.n, Bad: s.failures, Limit: lim, Final: final,
		ErrorRate: rate(s.failures, s.n), AllowedErrorRate: e.allowedRate, Confidence: e.limits.Confidence,
		Dispersion: phi,
	}
	e.withBaseline(&ev)
	return Decision{Outcome: Regressed, Rule: e.errorRule, Target: e.targetOf(s), Reason: e.errorReason(s, lim, final, phi), Evidence: ev}, true
}

// temper is what the error evidence of s is divided by: its estimated
// over-dispersion with Limits.Dispersion, else 1.
func (e *Engine) temper(s *stream) float64 {
	if !e.limits.Dispersion {
		return 1
	}
	return s.disp.phi()
}

func (e *Engine) tryLatency(test rateTest, s *stream, final bool) (Decision, bool) {
	if test == nil || !test.trips(s.answered, s.slow, final, 1) {
		return Decision{}, false
	}
	lim := test.limit(s.answered, final, 1)
	percentile := e.limits.LatencyPercentile
	ev := Evidence{
		Judged: s.answered, Bad: s.slow, Limit: lim, Final: final,
		Percentile: percentile, Latency: s.latencies.Quantile(percentile / 100), MaxLatency: e.slowerThan, Confidence: e.limits.Confidence,
	}
	e.withBaseline(&ev)
	return Decision{Outcome: Regressed, Rule: e.latencyRule, Target: e.targetOf(s), Reason: e.latencyReason(s, lim, final), Evidence: ev}, true
}

// countRegressed is the decision of a count test that tripped on s.
func (e *Engine) countRegressed(s *stream) Decision {
	t := s.count
	logM, late := t.ratio()
	ev := Evidence{
		Judged: s.n, Bad: s.failures, ErrorRate: rate(s.failures, s.n), AllowedErrorRate: e.allowedRate,
		Confidence: e.limits.Confidence, Dispersion: t.phi,
	}
	got := fmt.Sprintf("%s%d of %d %s failed (%s)", e.scope(s), s.failures, s.n, e.unit, pct.Ratio(s.failures, s.n, 1))
	if o := t.onset(); late && o.look > 1 {
		got = fmt.Sprintf("%s%d of %d %s failed in the last %s (%s), after %d of %d (%s) before", e.scope(s), o.x, o.n, e.unit,
			plural(t.looks-o.look+1, "look"), pct.Ratio(o.x, o.n, 1), s.failures-o.x, s.n-o.n, pct.Ratio(s.failures-o.x, s.n-o.n, 1))
	}
	tempered := ""
	if t.phi >= 1.05 {
		tempered = fmt.Sprintf(", the evidence divided by the errors' over-dispersion (%.1f)", t.phi)
	}
	return Decision{
		Outcome: Regressed, Rule: e.errorRule, Target: e.targetOf(s), Evidence: ev,
		Reason: fmt.Sprintf("%s; the failure rate is above the allowed %s with %s confidence (the sequential test's likelihood ratio is %s, at least %s%s)",
			got, pct.Of(e.limits.MaxErrorRate, 2), pct.Of(e.limits.Confidence, 2), ratioText(math.Exp(min(logM, 700))), trimFloat(roundTo(math.Exp(t.logBound), 2)), tempered),
	}
}

// plural counts things: "1 look", "3 looks".
func plural(n int64, thing string) string {
	if n == 1 {
		return "1 " + thing
	}
	return fmt.Sprintf("%d %ss", n, thing)
}

func (e *Engine) withBaseline(ev *Evidence) {
	if e.base == nil {
		return
	}
	ev.Baseline = true
	ev.BaselineErrorRate = e.base.FailureRate()
	ev.BaselineLatency = e.base.Latency(e.limits.LatencyPercentile)
	if ev.Percentile == 0 {
		ev.Percentile = e.limits.LatencyPercentile
	}
}

func (e *Engine) healthyEvidence() Evidence {
	s, percentile := &e.overall, e.limits.LatencyPercentile
	ev := Evidence{
		Judged: s.n, Bad: s.failures, ErrorRate: rate(s.failures, s.n), AllowedErrorRate: e.allowedRate,
		Percentile: percentile, Latency: s.latencies.Quantile(percentile / 100), MaxLatency: e.slowerThan, Confidence: e.limits.Confidence,
		Dispersion: e.temper(s),
	}
	e.withBaseline(&ev)
	return ev
}

// targetOf names the target a stream counts, "" for the fleet.
func (e *Engine) targetOf(s *stream) string {
	if s == &e.overall {
		return ""
	}
	return s.target
}

func rate(bad, n int64) float64 {
	if n == 0 {
		return 0
	}
	return float64(bad) / float64(n)
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
func when(n, lim int64, final bool, what string) string {
	if final {
		return fmt.Sprintf("at the end of the watch the limit for %d %s is %d", n, what, lim)
	}
	return fmt.Sprintf("the sequential test's limit after %d %s is %d", n, what, lim)
}

func (e *Engine) errorReason(s *stream, lim int64, final bool, phi float64) string {
	conf := pct.Of(e.limits.Confidence, 2)
	tempered := ""
	if phi >= 1.05 {
		tempered = fmt.Sprintf(", the evidence divided by the errors' over-dispersion (%.1f)", phi)
	}
	got := fmt.Sprintf("%s%d of %d %s failed (%s)", e.scope(s), s.failures, s.n, e.unit, pct.Ratio(s.failures, s.n, 1))
	if e.base != nil {
		return fmt.Sprintf("%s, against %d of %d (%s) in production before the deploy; the failure rate is more than %s points above production's, at any rate its own %s allow, with %s confidence (%s%s)",
			got, e.base.failures, e.base.n, pct.Ratio(e.base.failures, e.base.n, 1), pct.Points(e.limits.MaxErrorRate, 2), e.unit, conf, when(s.n, lim, final, e.unit), tempered)
	}
	return fmt.Sprintf("%s; the failure rate is above the allowed %s with %s confidence (%s%s)",
		got, pct.Of(e.limits.MaxErrorRate, 2), conf, when(s.n, lim, final, e.unit), tempered)
}

func (e *Engine) latencyReason(s *stream, lim int64, final bool) string {
	percentile := e.limits.LatencyPercentile
	name := "p" + trimFloat(percentile)
	got := s.latencies.Quantile(percentile / 100)
	allowed := fmt.Sprintf("the allowed %s", duration(e.slowerThan))
	if e.base != nil {
		allowed = fmt.Sprintf("%s× production's %s (%s)", trimFloat(e.limits.MaxLatencyIncrease), duration(e.base.Latency(percentile)), duration(e.slowerThan))
	}
	answered := "answered " + e.unit
	return fmt.Sprintf("%sthe %s latency is %s, above %s: %d of %d %s were slower than %s, more than the %s a %s allows, with %s confidence (%s)",
		e.scope(s), name, duration(got), allowed, s.slow, s.answered, answered, duration(e.slowerThan),
		pct.Of(1-percentile/100, 2), name, pct.Of(e.limits.Confidence, 2), when(s.answered, lim, final, answered))
}

func (e *Engine) healthyReason() string {
	s := &e.overall
	if s.n == 0 {
		return "no " + e.unit + " were made"
	}
	r := fmt.Sprintf("%d of %d %s failed (%s)", s.failures, s.n, e.unit, pct.Ratio(s.failures, s.n, 1))
	if e.base != nil {
		r += fmt.Sprintf(", against %d of %d (%s) in production, within the allowed %s points more",
			e.base.failures, e.base.n, pct.Ratio(e.base.failures, e.base.n, 1), pct.Points(e.limits.MaxErrorRate, 2))
	} else if float64(s.failures) > e.limits.MaxErrorRate*float64(s.n) {
		r += fmt.Sprintf(", above the allowed %s but not with %s confidence over so few %s",
			pct.Of(e.limits.MaxErrorRate, 2), pct.Of(e.limits.Confidence, 2), e.unit)
	} else {
		r += ", within the allowed " + pct.Of(e.limits.MaxErrorRate, 2)
	}
	if s.answered == 0 {
		return r
	}
	percentile := e.limits.LatencyPercentile
	name := "p" + trimFloat(percentile)
	got := s.latencies.Quantile(percentile / 100)
	r += fmt.Sprintf("; %s latency %s", name, duration(got))
	switch {
	case e.base != nil && e.slowerThan > 0:
		r += fmt.Sprintf(", against %s in production (allowed %s)", duration(e.base.Latency(percentile)), duration(e.slowerThan))
	case e.slowerThan > 0 && got > e.slowerThan:
		r += fmt.Sprintf(", above the allowed %s but not with %s confidence", duration(e.slowerThan), pct.Of(e.limits.Confidence, 2))
	case e.slowerThan > 0:
		r += fmt.Sprintf(", within the allowed %s", duration(e.slowerThan))
	}
	return r
}
