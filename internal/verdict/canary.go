package verdict

import (
	"fmt"
	"github.com/immune-cd/immune/internal/pct"
	"math"
	"time"
)

// Rule names of a canary's judgment, as found in Decision.Rule.
const (
	// RuleCanaryErrorRate: the canary's failure rate is above the control's
	// plus the allowed increase.
	RuleCanaryErrorRate = "canary-error-rate"
	// RuleCanaryLatency: the canary's share of slow answers is above the
	// control's plus the share the latency percentile allows.
	RuleCanaryLatency = "canary-latency"
	// RuleCanaryNoWorse: the canary is, with the required confidence, no
	// worse than the control plus the allowed increase (early promotion).
	RuleCanaryNoWorse = "canary-no-worse"
)

// CanaryEvidence is what a canary's decision rests on beyond the canary's
// own numbers (Evidence.Judged, Bad, ErrorRate): the control's numbers over
// the same looks, and the two-sample test's statistic.
type CanaryEvidence struct {
	// ControlJudged and ControlBad are the control's requests (answered
	// ones for the latency rule) and its bad ones, over the looks that held
	// both tracks; ControlErrorRate its failure rate.
	ControlJudged, ControlBad int64
	ControlErrorRate          float64
	// ControlLatency is the control's latency at Evidence.Percentile.
	ControlLatency time.Duration
	// Margin is the allowed increase over the control: MaxErrorRate in
	// points for the error rule, 1 − LatencyPercentile/100 of answers
	// slower than MaxLatency for the latency rule.
	Margin float64
	// Ratio is the test's likelihood ratio (the evidence), Bound the value
	// it had to reach: 1/(1 − Confidence) shared as the package comment
	// says.
	Ratio, Bound float64
}

// CanaryOptions are what a canary's judgment needs beyond Limits.
type CanaryOptions struct {
	// PromoteEarly also runs the downward tests, so that NoWorse can say
	// once the canary is shown to be no worse than the control plus the
	// allowed increase, with the same confidence (for early promotion).
	PromoteEarly bool
}

// Canary judges a canary against its control: the stable fleet, looked at
// in the same rounds (a round of probes, or one scrape of counters). It is
// the canary's counterpart of Engine, and it differs in what "regressed"
// means: not "worse than a limit" but "worse than the control, by more than
// the allowed increase, at the same time". Anything that changes both
// tracks at once (a downstream outage, a traffic spike) is not the canary's
// doing, and does not regress it.
//
// Rules, after every look:
//
//   - canary-error-rate: the two-sample sequential test of twosample.go
//     rejects "the canary's failure rate is at most the control's plus
//     MaxErrorRate (in points)", with at least three failed canary
//     requests.
//   - canary-latency (with MaxLatency): the same test on the share of
//     answered requests slower than MaxLatency, with margin 1 −
//     LatencyPercentile/100: at p95 the canary may have at most 5 points
//     more slow answers than the control.
//   - with PromoteEarly: once the downward tests have rejected "the canary
//     is worse than the control plus the margin" (for errors, and for
//     latency when it is judged), NoWorse says so, with the decision to
//     promote. The regression rules still judge every later look: the
//     caller decides when to stop (a watch of several signals promotes only
//     when all of them are no worse).
//
// There is no failures-in-a-row rule: it would be outside the bound, and a
// shared incident trips it (with the control failing 30% of its probes, a
// canary failing like it shows three failures in a row while the control
// answered in about two of five watches of 60 rounds), which is what a
// canary judged against its control exists to avoid. A canary that fails
// every probe from the start is regressed by the error test after four or
// five rounds.
//
// A control that never answered healthily cannot vouch for anything: a
// dead control URL makes every canary look no worse. Such a canary is
// neither promoted early nor healthy at the end: Finish says Inconclusive.
//
// Each test is valid at any stopping time, whatever the control's rate
// does: for a canary exactly at the control's rate plus the margin at every
// look, the error rule regresses it in at most (1 − Confidence)/Signals of
// watches, the latency rule in at most 1 − Confidence, and a canary that
// is at least the margin worse is promoted early in at most 1 − Confidence
// of watches (to within a hundredth: see twosample.go).
type Canary struct {
	limits  Limits
	opt     CanaryOptions
	slowest time.Duration // a request slower than this is slow; 0 = no latency rule

	errUp, errDown *twoSample
	latUp, latDown *twoSample

	canary, control stream     // totals over every look
	dispC, dispS    dispersion // the looks' over-dispersion, with Limits.Dispersion
	targets         map[string]*stream
	order           []*stream
	unit            string

	// temper divides the error rule's evidence (1 for independent
	// requests; see NewCanary).
	temper float64

	verdict                Decision // sticky once Regressed, or once Finish has run
	errNoWorse, latNoWorse bool     // the downward tests have rejected (sticky)
	controlAnswered        bool     // a control request succeeded
	promotion              Decision // once NoWorse
}

// NewCanary returns a canary's judgment. Limits.MaxErrorRate is the allowed
// increase over the control, in points; Horizon and MaxLatencyIncrease are
// not used, Targets counts the canary's targets, and Signals splits the
// error rule's allowance as in Engine. With Limits.Dispersion (counts of
// real traffic), each look's evidence is tempered by the over-dispersion
// the earlier looks of both tracks show (see dispersion.go): errors in
// bursts weigh as events, not as independent requests. It panics if l is
// invalid.
func NewCanary(l Limits, o CanaryOptions) *Canary {
	l = l.withDefaults()
	if err := l.Validate(); err != nil {
		panic("verdict: " + err.Error())
	}
	alpha := 1 - l.Confidence
	c := &Canary{limits: l, opt: o, slowest: l.MaxLatency, targets: map[string]*stream{}, unit: "probes", temper: 1}
	c.errUp = newTwoSample(l.MaxErrorRate, alpha/float64(l.Signals), true)
	slowShare := 1 - l.LatencyPercentile/100
	if l.MaxLatency > 0 {
		c.latUp = newTwoSample(slowShare, alpha, true)
	}
	if o.PromoteEarly {
		c.errDown = newTwoSample(l.MaxErrorRate, alpha, false)
		if l.MaxLatency > 0 {
			c.latDown = newTwoSample(slowShare, alpha, false)
		}
	}
	if l.Dispersion {
		// Before the first look, bursts of the prior's size.
		c.temper, c.errUp.phi = priorDispersion, priorDispersion
	}
	return c
}

// Look judges one look at both tracks: the canary's observations and the
// control's from the same round (or scrape), and says whether the canary
// has regressed, is promoted early, or the watch goes on. Observations of
// several requests (counts) are welcome on either side. Once a verdict is
// in, every later call returns it.
func (c *Canary) Look(canary, control []Observation) Decision {
	var nc, xc, ns, xs, ac, sc, as, ss int64
	for _, o := range control {
		o.check()
		a, s := c.measure(&c.control, o)
		ns, xs, as, ss = ns+o.N, xs+o.Failed, as+a, ss+s
		c.controlAnswered = c.controlAnswered || o.Failed < o.N
	}
	for _, o := range canary {
		o.check()
		t := c.targets[o.Target]
		if t == nil {
			if len(c.order) == c.limits.Targets {
				panic(fmt.Sprintf("verdict: canary target %s is one more than Limits.Targets (%d)", o.Target, c.limits.Targets))
			}
			t = &stream{target: o.Target}
			c.targets[o.Target] = t
			c.order = append(c.order, t)
		}
		if o.N > 1 {
			c.unit = "requests"
		}
		a, s := c.measure(&c.canary, o)
		t.n, t.failures, t.answered, t.slow = t.n+o.N, t.failures+o.Failed, t.answered+a, t.slow+s
		nc, xc, ac, sc = nc+o.N, xc+o.Failed, ac+a, sc+s
	}
	if c.verdict.Outcome != Continue {
		return c.verdict
	}
	// Errors in bursts: the evidence is divided by the over-dispersion
	// both tracks' looks show so far, each judged at the rate it is
	// allowed: the control's, and the canary's the control's plus the
	// margin.
	if c.limits.Dispersion {
		if ns > 0 {
			control := c.errUp.recentRate()
			c.dispS.rate, c.dispC.rate = control, control+c.limits.MaxErrorRate
		}
		c.dispC.observe(nc, xc)
		c.dispS.observe(ns, xs)
		c.temper = max(c.dispC.phi(), c.dispS.phi())
	}
	for _, t := range []*twoSample{c.errUp, c.errDown} {
		if t != nil {
			t.look(nc, xc, ns, xs, c.temper)
		}
	}
	for _, t := range []*twoSample{c.latUp, c.latDown} {
		if t != nil {
			t.look(ac, sc, as, ss, 1)
		}
	}
	switch {
	case c.errUp.rejects(c.temper):
		c.verdict = c.errorRegressed()
	case c.latUp != nil && c.latUp.rejects(1):
		c.verdict = c.latencyRegressed()
	default:
		if c.errDown != nil && !c.errNoWorse && c.errDown.rejects(c.temper) {
			c.errNoWorse = true
		}
		if c.latDown != nil && !c.latNoWorse && c.latDown.rejects(1) {
			c.latNoWorse = true
		}
		if c.promotion.Outcome == Continue && c.errNoWorse && (c.latDown == nil || c.latNoWorse) && c.controlAnswered {
			c.promotion = c.promoted()
		}
		return Decision{Outcome: Continue}
	}
	return c.verdict
}

// NoWorse returns the decision to promote the canary early (Outcome
// Healthy, rule RuleCanaryNoWorse) once, with PromoteEarly, it has been
// shown to be no worse than the control; ok is false before that, after a
// regression, and while the control has not answered healthily once.
func (c *Canary) NoWorse() (Decision, bool) {
	if c.verdict.Outcome == Regressed || c.promotion.Outcome != Healthy {
		return Decision{}, false
	}
	return c.promotion, true
}

// measure adds o to the track's totals and returns its answered and slow
// requests.
func (c *Canary) measure(s *stream, o Observation) (answered, slow int64) {
	switch {
	case o.Latencies != nil:
		answered = o.Latencies.Count()
		if c.slowest > 0 {
			slow = o.Latencies.Above(c.slowest)
		}
		s.latencies.Merge(o.Latencies)
	case o.N == 1 && (o.Latency > 0 || o.Failed == 0):
		answered = 1
		if c.slowest > 0 && o.Latency > c.slowest {
			slow = 1
		}
		s.latencies.Add(o.Latency)
	}
	s.n, s.failures, s.answered, s.slow = s.n+o.N, s.failures+o.Failed, s.answered+answered, s.slow+slow
	return answered, slow
}

// Finish ends the watch: the verdict reached during it, or Healthy.
// A canary whose control never answered healthily is Inconclusive: the
// control cannot vouch for it.
func (c *Canary) Finish() Decision {
	if c.verdict.Outcome != Continue {
		return c.verdict
	}
	if !c.controlAnswered {
		c.verdict = Decision{Outcome: Inconclusive, Reason: c.deadControl(), Evidence: c.errorEvidence(c.errUp)}
		return c.verdict
	}
	c.verdict = Decision{Outcome: Healthy, Reason: c.healthyReason(), Evidence: c.errorEvidence(c.errUp)}
	return c.verdict
}

// ControlAnswered reports whether a control request has succeeded: without
// one the control vouches for nothing.
func (c *Canary) ControlAnswered() bool { return c.controlAnswered }

// deadControl says why a canary beside a control that never answered
// healthily is not judged.
func (c *Canary) deadControl() string {
	if c.control.n == 0 {
		return fmt.Sprintf("the control was never looked at, so nothing vouches for the canary (it failed %d of %d %s)",
			c.canary.failures, c.canary.n, c.unit)
	}
	return fmt.Sprintf("the control never answered healthily (it failed %d of %d %s), so it cannot vouch for the canary, which failed %d of %d",
		c.control.failures, c.control.n, c.unit, c.canary.failures, c.canary.n)
}

// Stats returns the canary's and the control's counts so far.
func (c *Canary) Stats() (canary, control Counts) {
	percentile := c.limits.LatencyPercentile
	return c.canary.counts(percentile), c.control.counts(percentile)
}

func (c *Canary) errorEvidence(t *twoSample) Evidence {
	percentile := c.limits.LatencyPercentile
	return Evidence{
		Judged: t.nc, Bad: t.xc, ErrorRate: rate(t.xc, t.nc),
		AllowedErrorRate: rate(t.xs, t.ns) + c.limits.MaxErrorRate, Confidence: c.limits.Confidence,
		Percentile: percentile, Latency: c.canary.latencies.Quantile(percentile / 100), MaxLatency: c.slowest,
		Canary: &CanaryEvidence{
			ControlJudged: t.ns, ControlBad: t.xs, ControlErrorRate: rate(t.xs, t.ns),
			ControlLatency: c.control.latencies.Quantile(percentile / 100),
			Margin:         c.limits.MaxErrorRate, Ratio: t.ratio(c.temper), Bound: bound(t),
		},
	}
}

// bound is the ratio t must reach: 1/α.
func bound(t *twoSample) float64 { return roundTo(math.Exp(t.logBound), 2) }

func (c *Canary) errorRegressed() Decision {
	t := c.errUp
	return Decision{
		Outcome: Regressed, Rule: RuleCanaryErrorRate, Evidence: c.errorEvidence(t),
		Reason: fmt.Sprintf("%s; the canary's failure rate is more than %s above the control's with %s confidence (the two-sample test's likelihood ratio is %s, at least %s%s)",
			c.sideBySide(t, "failed"), pointsOf(c.limits.MaxErrorRate), pct.Of(c.limits.Confidence, 2), ratioText(t.ratio(c.temper)), trimFloat(bound(t)), c.tempered()),
	}
}

func (c *Canary) latencyRegressed() Decision {
	t := c.latUp
	percentile := c.limits.LatencyPercentile
	name := "p" + trimFloat(percentile)
	ev := c.errorEvidence(c.errUp)
	ev.Judged, ev.Bad, ev.ErrorRate = t.nc, t.xc, rate(t.xc, t.nc)
	ev.Canary.ControlJudged, ev.Canary.ControlBad, ev.Canary.ControlErrorRate = t.ns, t.xs, rate(t.xs, t.ns)
	ev.Canary.Margin, ev.Canary.Ratio, ev.Canary.Bound = t.margin, t.ratio(1), bound(t)
	return Decision{
		Outcome: Regressed, Rule: RuleCanaryLatency, Evidence: ev,
		Reason: fmt.Sprintf("the canary's %s latency is %s against the control's %s: %d of %d answered canary %s were slower than %s (%s), against %d of %d (%s) for the control; more than %s above the control's with %s confidence (likelihood ratio %s, at least %s)",
			name, duration(ev.Latency), duration(ev.Canary.ControlLatency), t.xc, t.nc, c.unit, duration(c.slowest), pct.Ratio(t.xc, t.nc, 1),
			t.xs, t.ns, pct.Ratio(t.xs, t.ns, 1), pointsOf(t.margin), pct.Of(c.limits.Confidence, 2), ratioText(t.ratio(1)), trimFloat(bound(t))),
	}
}

func (c *Canary) promoted() Decision {
	t := c.errDown
	reason := fmt.Sprintf("%s; the canary's failure rate is less than %s above the control's with %s confidence (likelihood ratio %s, at least %s)",
		c.sideBySide(t, "failed"), pointsOf(c.limits.MaxErrorRate), pct.Of(c.limits.Confidence, 2), ratioText(t.ratio(c.temper)), trimFloat(bound(t)))
	if l := c.latDown; l != nil {
		reason += fmt.Sprintf(", and at most %s more of its answers are slower than %s", pointsOf(l.margin), duration(c.slowest))
	}
	ev := c.errorEvidence(t)
	return Decision{Outcome: Healthy, Rule: RuleCanaryNoWorse, Reason: "the canary is no worse than the control: " + reason, Evidence: ev}
}

// sideBySide says what both tracks saw over the looks that held both.
func (c *Canary) sideBySide(t *twoSample, what string) string {
	same := "rounds"
	if c.unit == "requests" {
		same = "looks"
	}
	return fmt.Sprintf("the canary %s %d of %d %s (%s), the control %d of %d (%s) in the same %s",
		what, t.xc, t.nc, c.unit, pct.Ratio(t.xc, t.nc, 1), t.xs, t.ns, pct.Ratio(t.xs, t.ns, 1), same)
}

func (c *Canary) healthyReason() string {
	t := c.errUp
	if t.nc == 0 {
		return "no round held both a counted canary probe and a control probe; nothing was compared"
	}
	r := c.sideBySide(t, "failed")
	switch over := rate(t.xc, t.nc) - rate(t.xs, t.ns); {
	case over > c.limits.MaxErrorRate:
		r += fmt.Sprintf(": %s above the control's, more than the allowed %s but not with %s confidence over so few %s",
			trimFloat(over*100), pointsOf(c.limits.MaxErrorRate), pct.Of(c.limits.Confidence, 2), c.unit)
	default:
		r += fmt.Sprintf(", within the allowed %s more", pointsOf(c.limits.MaxErrorRate))
	}
	if c.canary.answered > 0 {
		percentile := c.limits.LatencyPercentile
		r += fmt.Sprintf("; p%s latency %s against the control's %s", trimFloat(percentile),
			duration(c.canary.latencies.Quantile(percentile/100)), duration(c.control.latencies.Quantile(percentile/100)))
	}
	return r
}

// ratioText prints a likelihood ratio for people: 143, 2.4e+06.
func ratioText(r float64) string {
	if r >= 1e6 {
		return fmt.Sprintf("%.1e", r)
	}
	return trimFloat(roundTo(r, 0))
}

// pointsOf prints an increase in points: "1 point", "0.5 points".
func pointsOf(x float64) string {
	if p := pct.Points(x, 2); p != "1" {
		return p + " points"
	}
	return "1 point"
}

// tempered says how the evidence was divided for errors in bursts, if it
// was.
func (c *Canary) tempered() string {
	if c.temper < 1.05 {
		return ""
	}
	return fmt.Sprintf(", the evidence divided by the errors' over-dispersion (%.1f)", c.temper)
}
