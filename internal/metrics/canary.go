package metrics

import (
	"fmt"
	"time"

	"github.com/immune-cd/immune/internal/verdict"
)

// CanaryJudge judges a canary's metrics against the stable fleet's, read in
// the same looks: the canary's with ${TRACK} = canary, the control's with
// ${TRACK} = stable. Each rate metric is a two-sample comparison
// (verdict.Canary): the canary regresses when its error rate is above the
// control's plus the metric's max-error-rate, in points, whatever the
// control's rate does, so an outage that hits both tracks is not the
// canary's. Threshold metrics are judged on the canary's track alone, by
// their bounds, as in Judge. Like Judge it is pure, and it keeps what makes
// the canary inconclusive.
//
// A look pairs both tracks' counts: when one track has data and the other
// not, its counts wait for the other's next look with data (the counters
// behind a look without data are not advanced, so that look counts the
// same span of time). Pairing depends only on which looks have data, never
// on what they show, which keeps the test valid.
type CanaryJudge struct {
	opt        JudgeOptions
	rates      []*canaryRate
	thresholds *Judge // the canary's threshold metrics
	thIndex    []int  // their positions among the specs
	regress    *Regression
}

// canaryRate is one rate metric's book.
type canaryRate struct {
	spec       Spec
	index      int // among the specs
	engine     *verdict.Canary
	canary     side
	control    side
	pc, xc     int64 // the canary's counts waiting for the control's
	ps, xs     int64 // and the control's waiting for the canary's
	hasC, hasS bool
	shadowed   *Regression // a shadow metric's regression, kept apart
}

// side is one track's looks at a rate metric.
type side struct {
	looks       int
	noData      map[NoData]int
	lastWhy     string
	first, last time.Time
	requests    int64
	errors      int64
}

func (s *side) observe(r Reading, at time.Time) bool {
	s.looks++
	if !r.HasData() {
		s.noData[r.NoData]++
		s.lastWhy = string(r.NoData)
		if r.Error != "" {
			s.lastWhy += ": " + r.Error
		}
		return false
	}
	if s.first.IsZero() {
		s.first = at
	}
	s.last = at
	s.requests += r.Requests
	s.errors += r.Errors
	return true
}

// NewCanaryJudge starts judging specs for a canary. opt.Baselines is not
// used: the control is the yardstick. promoteEarly runs the tests that can
// show the canary no worse (see NoWorse).
func NewCanaryJudge(specs []Spec, opt JudgeOptions, promoteEarly bool) *CanaryJudge {
	j := &CanaryJudge{opt: opt}
	var th []Spec
	for i, s := range specs {
		if s.Kind() != KindRate {
			th = append(th, s)
			j.thIndex = append(j.thIndex, i)
			continue
		}
		signals := opt.Signals
		if s.Shadow {
			signals++ // as if it were live
		}
		l := RateLimits(s, opt.Confidence, signals)
		l.Targets = 1
		j.rates = append(j.rates, &canaryRate{
			spec: s, index: i, engine: verdict.NewCanary(l, verdict.CanaryOptions{PromoteEarly: promoteEarly}),
			canary: side{noData: map[NoData]int{}}, control: side{noData: map[NoData]int{}},
		})
	}
	if len(th) > 0 {
		thOpt := opt
		thOpt.Baselines = nil
		j.thresholds = NewJudge(th, thOpt)
	}
	return j
}

// RateSpecs are the specs the control's track is read for: the rate
// metrics, in order.
func RateSpecs(specs []Spec) []Spec {
	var rates []Spec
	for _, s := range specs {
		if s.Kind() == KindRate {
			rates = append(rates, s)
		}
	}
	return rates
}

// Observe takes one look at both tracks: canary has a reading of every
// spec, control one of every rate spec (RateSpecs), in order. It returns
// the regression the canary shows, or nil; once there is one, every later
// call returns it.
func (j *CanaryJudge) Observe(canary, control Look) *Regression {
	if j.thresholds != nil {
		th := Look{At: canary.At}
		for _, i := range j.thIndex {
			if i < len(canary.Readings) {
				th.Readings = append(th.Readings, canary.Readings[i])
			}
		}
		if reg := j.thresholds.Observe(th); reg != nil && j.regress == nil {
			j.regress = reg
		}
	}
	for k, m := range j.rates {
		if m.index < len(canary.Readings) && m.canary.observe(canary.Readings[m.index], canary.At) {
			r := canary.Readings[m.index]
			m.pc, m.xc, m.hasC = m.pc+r.Requests, m.xc+r.Errors, true
		}
		if k < len(control.Readings) && m.control.observe(control.Readings[k], control.At) {
			r := control.Readings[k]
			m.ps, m.xs, m.hasS = m.ps+r.Requests, m.xs+r.Errors, true
		}
		if !m.hasC || !m.hasS {
			continue
		}
		d := m.engine.Look([]verdict.Observation{verdict.Count(target(m.spec.Name), m.pc, m.xc, nil)},
			[]verdict.Observation{verdict.Count("the control", m.ps, m.xs, nil)})
		m.pc, m.xc, m.ps, m.xs, m.hasC, m.hasS = 0, 0, 0, 0, false, false
		if d.Outcome == verdict.Regressed {
			ev := d.Evidence
			reg := &Regression{Metric: m.spec.Name, Rule: d.Rule, Reason: "on metric " + m.spec.Name + ", " + d.Reason, Evidence: &ev, At: canary.At}
			keep(reg, m.spec.Shadow, &m.shadowed, &j.regress)
		}
	}
	return j.regress
}

// Regression returns the regression so far, or nil.
func (j *CanaryJudge) Regression() *Regression { return j.regress }

// HasRates reports whether any metric is a rate metric, compared with the
// control.
func (j *CanaryJudge) HasRates() bool { return len(j.rates) > 0 }

// NoWorse reports whether every rate metric has shown the canary no worse
// than the control (with promoteEarly), and says so; false without rate
// metrics, or after a regression. Shadow metrics neither hold a promotion
// back nor make one.
func (j *CanaryJudge) NoWorse() (string, bool) {
	if j.regress != nil {
		return "", false
	}
	why := ""
	for _, m := range j.rates {
		if m.spec.Shadow {
			continue
		}
		d, ok := m.engine.NoWorse()
		if !ok {
			return "", false
		}
		if why != "" {
			why += "; "
		}
		why += "on metric " + m.spec.Name + ", " + d.Reason
	}
	return why, why != ""
}

// Finish ends the watch at end and returns each metric's outcome on the
// canary's track, in configuration order, and each rate metric's on the
// control's (in RateSpecs order). final: see Judge.Finish. A rate metric is
// inconclusive when either track had no data past the grace, or the canary
// counted fewer than MinRequests requests.
func (j *CanaryJudge) Finish(end time.Time, final bool) (canary, control []Outcome) {
	n := len(j.rates) + len(j.thIndex)
	canary = make([]Outcome, n)
	if j.thresholds != nil {
		for k, o := range j.thresholds.Finish(end, final && j.regress == nil) {
			canary[j.thIndex[k]] = o
		}
	}
	for _, m := range j.rates {
		o := m.outcome(&m.canary, j.regress)
		o.Shadow, o.Shadowed = m.spec.Shadow, m.shadowed
		o.Regressed = o.Regressed && !m.spec.Shadow
		c := m.outcome(&m.control, nil)
		c.Shadow = m.spec.Shadow
		if final && j.regress == nil && m.shadowed == nil {
			o.Inconclusive = j.inconclusive(m, end)
		}
		canary[m.index] = o
		control = append(control, c)
	}
	return canary, control
}

func (m *canaryRate) outcome(s *side, reg *Regression) Outcome {
	return Outcome{
		Metric: m.spec.Name, Kind: KindRate, Looks: s.looks, NoData: s.noData,
		Regressed: reg != nil && reg.Metric == m.spec.Name,
		Requests:  s.requests, Errors: s.errors, Allowed: m.spec.MaxErrorRate, Baseline: "against the control",
	}
}

// inconclusive says why rate metric m cannot clear the canary, or "".
func (j *CanaryJudge) inconclusive(m *canaryRate, end time.Time) string {
	grace := j.opt.Grace
	for _, t := range []struct {
		name string
		s    *side
	}{{"the canary's", &m.canary}, {"the control's", &m.control}} {
		s := t.s
		switch {
		case s.first.IsZero():
			why := "no look had data"
			if s.lastWhy != "" {
				why += " (the last: " + s.lastWhy + ")"
			}
			return fmt.Sprintf("metric %s, %s track: %s", m.spec.Name, t.name, why)
		case s.first.Sub(j.opt.Start) > grace:
			return fmt.Sprintf("metric %s, %s track, had no data for the first %s of the watch, longer than the startup grace of %s",
				m.spec.Name, t.name, formatDuration(s.first.Sub(j.opt.Start)), formatDuration(grace))
		case end.Sub(s.last) > grace:
			return fmt.Sprintf("metric %s, %s track, had no data for the last %s of the watch, longer than the startup grace of %s",
				m.spec.Name, t.name, formatDuration(end.Sub(s.last)), formatDuration(grace))
		}
	}
	if !m.engine.ControlAnswered() {
		return fmt.Sprintf("metric %s, the control's track, never counted a request that did not fail (%d of %d failed): the control cannot vouch for the canary",
			m.spec.Name, m.control.errors, m.control.requests)
	}
	if m.canary.requests < j.opt.MinRequests {
		return fmt.Sprintf("metric %s counted %d requests of the canary over the watch, fewer than min-requests (%d): too few to clear it",
			m.spec.Name, m.canary.requests, j.opt.MinRequests)
	}
	return ""
}

// CanarySummary says in a few words what the watch made of a rate metric
// that cleared the canary: both tracks' counts against the allowed
// increase.
func CanarySummary(canary, control Outcome) string {
	unit := "points"
	if canary.Allowed == 0.01 {
		unit = "point"
	}
	return fmt.Sprintf("metric %s: the canary %d of %d requests failed (%s), the control %d of %d (%s); at most %s %s more allowed",
		canary.Metric, canary.Errors, canary.Requests, ratioText(canary.Errors, canary.Requests),
		control.Errors, control.Requests, ratioText(control.Errors, control.Requests), formatValue(canary.Allowed*100), unit)
}
