package metrics

import (
	"fmt"
	"github.com/immune-cd/immune/internal/pct"
	"strings"
	"time"

	"github.com/immune-cd/immune/internal/verdict"
)

// RuleThreshold is the rule of a threshold metric that regressed:
// Consecutive looks in a row out of bounds.
const RuleThreshold = "threshold"

// JudgeOptions configure a Judge.
type JudgeOptions struct {
	// Confidence is the verdict engine's (e.g. 0.99).
	Confidence float64
	// Signals is how many signals of the watch run an error-rate test (see
	// verdict.Limits.Signals): the health probes, if any, and each rate
	// metric. The rate metrics' engines take their share of the allowance.
	Signals int
	// MinRequests is the fewest requests a rate metric must see over the
	// watch for the build to be judged healthy on it.
	MinRequests int64
	// Start is when the watch started; Grace how long a metric may go
	// without data at its start or at its end (startup-timeout, but at
	// least two looks).
	Start time.Time
	Grace time.Duration
	// Baselines, when set, are production's rate metrics read before the
	// deploy: rate metrics are then judged against them.
	Baselines *Baselines
}

// Judge judges one watch's looks at a set of metrics. Rate metrics feed the
// verdict engine's count test, each with an engine of its own, at its own
// allowed rate, with the evidence tempered by the looks' over-dispersion
// (errors in bursts). Threshold metrics regress by their consecutive rule
// (see Reading.Regressed). It also keeps what makes a run inconclusive: a
// rate metric with fewer than MinRequests requests over the whole watch, or
// a metric without data for longer than Grace at the start or at the end
// of the watch. It is pure: no I/O, no clock.
type Judge struct {
	opt     JudgeOptions
	metrics []*judged
	regress *Regression // the first regression, sticky
}

// A shadow metric (Spec.Shadow) is judged in the same looks, by the same
// rules, but its regression is kept apart (Outcome.Shadowed): it never
// becomes the watch's regression, and a shadow metric without data or
// with too few requests never makes the watch inconclusive.

// judged is one metric's book.
type judged struct {
	spec     Spec
	target   string          // the spec's name as the engine's target
	engine   *verdict.Engine // rate metrics
	baseline string          // how the rate metric is judged: against production, or why not
	looks    int
	noData   map[NoData]int
	lastWhy  string // the last look without data: why
	first    time.Time
	last     time.Time // looks with data
	requests int64
	errors   int64
	// Threshold metrics.
	value, worst float64
	out          int // looks with data out of bounds
	longest      int // longest streak
	// shadowed is a shadow metric's regression, kept apart.
	shadowed *Regression
}

// Regression is a metric that regressed the build.
type Regression struct {
	Metric string
	// Rule is the verdict engine's (error-rate, baseline-error-rate) for a
	// rate metric, RuleThreshold for a threshold metric.
	Rule   string
	Reason string
	// Evidence is the verdict engine's numbers (rate metrics).
	Evidence *verdict.Evidence
	// At is the look that showed it.
	At time.Time
}

// Outcome is what the watch made of one metric.
type Outcome struct {
	Metric string
	Kind   Kind
	// Looks, and how many had no data, by reason.
	Looks  int
	NoData map[NoData]int
	// Regressed: this metric regressed the build. Inconclusive, when set,
	// says why this metric could not clear it.
	Regressed    bool
	Inconclusive string
	// Shadow: a shadow metric (Spec.Shadow). Shadowed is the regression
	// it would have called, had it been live; Inconclusive then says why
	// it could not have cleared the build, without keeping it from being
	// cleared.
	Shadow   bool
	Shadowed *Regression
	// Rate metrics: the requests and errors counted over the watch, the
	// allowed rate, and how it was judged (against production or not).
	Requests, Errors int64
	Allowed          float64
	Baseline         string
	// Threshold metrics: the last value and the one furthest out of (or
	// closest to) bounds, and the looks out of bounds.
	Value, Worst float64
	OutOfBounds  int
	Max, Min     *float64
	Consecutive  int
}

// NewJudge starts judging specs.
func NewJudge(specs []Spec, opt JudgeOptions) *Judge {
	j := &Judge{opt: opt}
	for _, s := range specs {
		m := &judged{spec: s, target: target(s.Name), noData: map[NoData]int{}}
		if s.Kind() == KindRate {
			signals := opt.Signals
			if s.Shadow {
				// As if it were live: one signal more.
				signals++
			}
			l := RateLimits(s, opt.Confidence, signals)
			m.baseline = "absolute"
			if base, why := opt.Baselines.usable(s.Name, opt.MinRequests); base != nil {
				m.engine = verdict.NewWithBaseline(l, base)
				m.baseline = "against production"
			} else {
				m.engine = verdict.New(l)
				if why != "" {
					m.baseline = why
				}
			}
		}
		j.metrics = append(j.metrics, m)
	}
	return j
}

// RateLimits are the verdict engine's limits for a rate metric: its
// allowed rate, counts with the dispersion correction, no in-a-row rule
// (a look's requests have no order), one target.
func RateLimits(s Spec, confidence float64, signals int) verdict.Limits {
	return verdict.Limits{
		MaxErrorRate: s.MaxErrorRate,
		Confidence:   confidence,
		Signals:      signals,
		Dispersion:   true,
	}
}

// Observe takes one look and returns the regression it shows, or nil. Once
// a metric has regressed, every later call returns the same regression
// (the looks still count).
func (j *Judge) Observe(l Look) *Regression {
	for i, r := range l.Readings {
		if i >= len(j.metrics) {
			break
		}
		m := j.metrics[i]
		m.looks++
		if !r.HasData() {
			m.noData[r.NoData]++
			m.lastWhy = string(r.NoData)
			if r.Error != "" {
				m.lastWhy += ": " + r.Error
			}
			continue
		}
		firstData := m.first.IsZero()
		if firstData {
			m.first = l.At
		}
		m.last = l.At
		switch m.spec.Kind() {
		case KindRate:
			m.requests += r.Requests
			m.errors += r.Errors
			d := m.engine.Observe(verdict.Count(m.target, r.Requests, r.Errors, nil))
			if d.Outcome == verdict.Regressed {
				ev := d.Evidence
				keep(&Regression{Metric: m.spec.Name, Rule: d.Rule, Reason: d.Reason, Evidence: &ev, At: l.At}, m.spec.Shadow, &m.shadowed, &j.regress)
			}
		case KindThreshold:
			m.value = r.Value
			if firstData || m.spec.Excess(r.Value) > m.spec.Excess(m.worst) {
				m.worst = r.Value
			}
			if r.OutOfBounds {
				m.out++
			}
			m.longest = max(m.longest, r.Streak)
			if r.Regressed {
				keep(&Regression{Metric: m.spec.Name, Rule: RuleThreshold, Reason: m.thresholdReason(r), At: l.At}, m.spec.Shadow, &m.shadowed, &j.regress)
			}
		}
	}
	return j.regress
}

// keep keeps a metric's regression: a shadow metric's first one in its own
// place, apart; a live metric's in the watch's, when it is the watch's
// first. A Judge and a CanaryJudge keep them alike.
func keep(reg *Regression, shadow bool, own, watch **Regression) {
	switch {
	case shadow:
		if *own == nil {
			*own = reg
		}
	case *watch == nil:
		*watch = reg
	}
}

// target names a rate metric in the verdict engine's reasons: "on metric
// http-errors, 52 of 1000 requests failed".
func target(name string) string { return "metric " + name }

func (m *judged) thresholdReason(r Reading) string {
	return fmt.Sprintf("metric %s is %s, %s, in %d looks in a row (consecutive: %d)",
		m.spec.Name, formatValue(r.Value), m.spec.boundsText(), r.Streak, m.spec.consecutive())
}

// Regression returns the regression so far, or nil.
func (j *Judge) Regression() *Regression { return j.regress }

// Finish ends the watch at end and returns each metric's outcome, in
// configuration order. final says that the watch ran its course with no
// other signal regressing the build: only then can a metric be
// inconclusive. A watch that regressed was judged, and one that was
// cancelled was not judged at all.
func (j *Judge) Finish(end time.Time, final bool) []Outcome {
	out := make([]Outcome, len(j.metrics))
	for i, m := range j.metrics {
		o := Outcome{Metric: m.spec.Name, Kind: m.spec.Kind(), Looks: m.looks, NoData: m.noData, Shadow: m.spec.Shadow, Shadowed: m.shadowed}
		o.Regressed = !m.spec.Shadow && j.regress != nil && j.regress.Metric == m.spec.Name
		switch o.Kind {
		case KindRate:
			o.Requests, o.Errors, o.Allowed, o.Baseline = m.requests, m.errors, m.spec.MaxErrorRate, m.baseline
		case KindThreshold:
			o.Value, o.Worst, o.OutOfBounds = m.value, m.worst, m.out
			o.Max, o.Min, o.Consecutive = m.spec.Max, m.spec.Min, m.spec.consecutive()
		}
		if final && j.regress == nil && m.shadowed == nil {
			o.Inconclusive = j.inconclusive(m, end)
		}
		out[i] = o
	}
	return out
}

// inconclusive says why metric m cannot clear the build, or "".
func (j *Judge) inconclusive(m *judged, end time.Time) string {
	grace := j.opt.Grace
	switch {
	case m.first.IsZero():
		why := "no look had data"
		if m.lastWhy != "" {
			why += " (the last: " + m.lastWhy + ")"
		}
		return fmt.Sprintf("metric %s: %s", m.spec.Name, why)
	case m.first.Sub(j.opt.Start) > grace:
		return fmt.Sprintf("metric %s had no data for the first %s of the watch, longer than the startup grace of %s",
			m.spec.Name, formatDuration(m.first.Sub(j.opt.Start)), formatDuration(grace))
	case end.Sub(m.last) > grace:
		why := ""
		if m.lastWhy != "" {
			why = " (" + m.lastWhy + ")"
		}
		return fmt.Sprintf("metric %s had no data for the last %s of the watch%s, longer than the startup grace of %s",
			m.spec.Name, formatDuration(end.Sub(m.last)), why, formatDuration(grace))
	case m.spec.Kind() == KindRate && m.requests < j.opt.MinRequests:
		return fmt.Sprintf("metric %s counted %d requests over the watch, fewer than min-requests (%d): too few to clear the build",
			m.spec.Name, m.requests, j.opt.MinRequests)
	}
	return ""
}

// Summary says in a few words what the watch made of a metric that cleared
// the build (or would have): its counts against its limit, or its values
// against its bounds.
func (o Outcome) Summary() string {
	if o.Kind == KindRate {
		s := fmt.Sprintf("metric %s: %d of %d requests failed (%s)", o.Metric, o.Errors, o.Requests, ratioText(o.Errors, o.Requests))
		if o.Baseline == "against production" {
			unit := "points"
			if o.Allowed == 0.01 {
				unit = "point"
			}
			return s + fmt.Sprintf(", at most %s %s above production's rate", formatValue(o.Allowed*100), unit)
		}
		if float64(o.Errors) > o.Allowed*float64(o.Requests) {
			return s + fmt.Sprintf(", above the allowed %s%% but without the evidence for a regression", formatValue(o.Allowed*100))
		}
		return s + fmt.Sprintf(", within the allowed %s%%", formatValue(o.Allowed*100))
	}
	spec := Spec{Max: o.Max, Min: o.Min}
	if o.Looks == o.NoDataLooks() {
		return fmt.Sprintf("metric %s: no look had data", o.Metric)
	}
	s := fmt.Sprintf("metric %s: worst %s in %d looks", o.Metric, formatValue(o.Worst), o.Looks-o.NoDataLooks())
	if o.OutOfBounds == 0 {
		return s + ", " + strings.Replace(spec.boundsText(), "above", "within", 1)
	}
	return s + fmt.Sprintf(", %s in %d of them, never %d in a row", spec.boundsText(), o.OutOfBounds, o.Consecutive)
}

// ratioText says bad out of n as a percentage, or that there were no
// requests.
func ratioText(bad, n int64) string {
	if n == 0 {
		return "no requests"
	}
	return pct.Ratio(bad, n, 2)
}

// Inconclusive lists why the watch cannot clear the build, one reason per
// metric that cannot, from outcomes; shadow metrics never keep it from
// being cleared.
func Inconclusive(outcomes []Outcome) []string {
	var why []string
	for _, o := range outcomes {
		if o.Inconclusive != "" && !o.Shadow {
			why = append(why, o.Inconclusive)
		}
	}
	return why
}

// Baselines are production's rate metrics, read before the deploy: the
// counts each saw, as a verdict.Baseline.
type Baselines struct {
	by    map[string]*verdict.Baseline
	order []string
	specs []Spec
}

// NewBaselines starts reading production's rate metrics among specs (the
// threshold metrics are absolute and have no baseline).
func NewBaselines(specs []Spec, confidence float64, signals int) *Baselines {
	b := &Baselines{by: map[string]*verdict.Baseline{}}
	for _, s := range specs {
		if s.Kind() != KindRate {
			continue
		}
		b.by[s.Name] = verdict.NewBaseline(RateLimits(s, confidence, signals))
		b.order = append(b.order, s.Name)
		b.specs = append(b.specs, s)
	}
	return b
}

// Specs are the metrics a baseline reads: the rate metrics.
func (b *Baselines) Specs() []Spec { return b.specs }

// Observe takes one look at production.
func (b *Baselines) Observe(l Look) {
	for _, r := range l.Readings {
		if base := b.by[r.Metric]; base != nil && r.HasData() && r.Kind == KindRate {
			base.Observe(verdict.Count(target(r.Metric), r.Requests, r.Errors, nil))
		}
	}
}

// Counts returns what production's metric saw: requests and errors.
func (b *Baselines) Counts(name string) (requests, errors int64) {
	if base := b.by[name]; base != nil {
		return base.Probes(), base.Failures()
	}
	return 0, 0
}

// Names lists the metrics read, in configuration order.
func (b *Baselines) Names() []string { return b.order }

// usable returns production's baseline of metric name, or nil and why it
// cannot be a yardstick ("" when there is no baseline at all).
func (b *Baselines) usable(name string, minRequests int64) (*verdict.Baseline, string) {
	if b == nil || b.by[name] == nil {
		return nil, ""
	}
	base := b.by[name]
	if base.Probes() < minRequests {
		return nil, fmt.Sprintf("absolute: production's metric counted %d requests before the deploy, fewer than min-requests (%d)", base.Probes(), minRequests)
	}
	if bad, why := base.Unhealthy(); bad {
		return nil, "absolute: " + why
	}
	return base, ""
}

// Usable reports whether production's metric name can be a yardstick, and
// if not why (for the log, before the deploy).
func (b *Baselines) Usable(name string, minRequests int64) (bool, string) {
	base, why := b.usable(name, minRequests)
	return base != nil, strings.TrimPrefix(why, "absolute: ")
}

func (s Spec) consecutive() int {
	if s.Consecutive <= 0 {
		return DefaultConsecutive
	}
	return s.Consecutive
}

// Excess is how far v lies beyond a threshold metric's bounds: positive
// outside, zero or negative inside.
func (s Spec) Excess(v float64) float64 { return bounds{max: s.Max, min: s.Min}.excess(v) }

// NoDataLooks counts the looks without data.
func (o Outcome) NoDataLooks() int {
	n := 0
	for _, c := range o.NoData {
		n += c
	}
	return n
}

// boundsText says what the bounds are: "above its max of 0.3".
func (s Spec) boundsText() string {
	switch {
	case s.Max != nil && s.Min != nil:
		return fmt.Sprintf("outside its bounds of %s to %s", formatValue(*s.Min), formatValue(*s.Max))
	case s.Max != nil:
		return "above its max of " + formatValue(*s.Max)
	case s.Min != nil:
		return "below its min of " + formatValue(*s.Min)
	}
	return "within no bounds"
}

// formatValue prints a query's value for people: 0.3, 1234.5, 1.2e-05.
func formatValue(v float64) string { return fmt.Sprintf("%.4g", v) }

func formatDuration(d time.Duration) string {
	switch {
	case d < time.Second:
		return d.Round(time.Millisecond).String()
	case d < time.Minute:
		return d.Round(100 * time.Millisecond).String()
	}
	return d.Round(time.Second).String()
}

// Signals counts a watch's signals that run an error-rate test: the health
// probes (all URLs together) when it probes, and each rate metric that is
// not a shadow one. Each takes an equal share of the error rule's
// false-alarm allowance (see verdict.Limits.Signals). At least 1.
func Signals(probing bool, specs []Spec) int {
	n := 0
	if probing {
		n++
	}
	for _, s := range specs {
		if s.Kind() == KindRate && !s.Shadow {
			n++
		}
	}
	return max(n, 1)
}
