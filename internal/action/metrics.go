package action

// The metrics side of a run, wired to the phases: the Prometheus source,
// checked before anything is deployed; one look per interval on the watch's
// schedule (health.Watch.Look); the looks judged by metrics.Judge, or kept
// as production's baseline by metrics.Baselines. What is measured is
// internal/metrics', what it means internal/verdict's; this file only
// connects them to the run, its log and its report.

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/immune-cd/immune/internal/config"
	"github.com/immune-cd/immune/internal/metrics"
	"github.com/immune-cd/immune/internal/promql"
	"github.com/immune-cd/immune/internal/redact"
	"github.com/immune-cd/immune/internal/report"
)

// hasMetrics reports whether the run reads metrics.
func (r *runner) hasMetrics() bool { return len(r.cfg.Metrics) > 0 }

// metricSpecs are the metrics input as package metrics takes them.
func (r *runner) metricSpecs() []metrics.Spec {
	specs := make([]metrics.Spec, len(r.cfg.Metrics))
	for i, m := range r.cfg.Metrics {
		specs[i] = metrics.Spec{Name: m.Name, Errors: m.Errors, Total: m.Total, MaxErrorRate: m.MaxErrorRate,
			Query: m.Query, Max: m.Max, Min: m.Min, Consecutive: m.Consecutive}
		if m.Kind == config.MetricThreshold {
			specs[i].Errors, specs[i].Total = "", ""
		}
	}
	return specs
}

// signals counts the watch's signals that run an error-rate test: the
// health probes (all URLs together) and each rate metric. Each takes an
// equal share of the error rule's false-alarm allowance (see
// verdict.Limits.Signals).
func (r *runner) signals() int { return r.countSignals(r.cfg.HealthURLs) }

// countSignals counts the signals of a watch that probes urls.
func (r *runner) countSignals(urls []string) int {
	n := 0
	if len(urls) > 0 {
		n++
	}
	for _, m := range r.cfg.Metrics {
		if m.Kind == config.MetricRate {
			n++
		}
	}
	return max(n, 1)
}

// metricVars fills in the placeholders of a watch of commit, which
// replaced previous.
func (r *runner) metricVars(commit, previous string) promql.Vars {
	v := promql.Vars{SHA: commit, PreviousSHA: previous, Environment: r.cfg.Environment}
	if r.hasCanary() {
		// Outside the canary's own watch (canarymetrics.go), a deploy with
		// a canary reads the stable fleet: production before the deploy,
		// the whole fleet after it, and the rollback.
		v.Track = trackStable
	}
	return v
}

// newSource reads specs with vars from prometheus-url.
func (r *runner) newSource(specs []metrics.Spec, vars promql.Vars) (*metrics.Source, error) {
	header := http.Header{}
	for _, h := range r.cfg.PrometheusHeaders {
		header.Add(h.Name, h.Value)
	}
	client := r.d.HTTP
	if client == nil {
		client = http.DefaultClient
	}
	return metrics.New(specs, vars, metrics.Options{
		URL:    r.cfg.PrometheusURL,
		Header: header,
		HTTP:   client,
		Clock:  r.d.Clock,
		// Prometheus's warnings and the retries; its text goes through the
		// logger, which escapes every line.
		Log:            func(msg string) { r.log.Printf("Prometheus: %s", msg) },
		RequestTimeout: r.cfg.Timeout,
		Backoff:        min(250*time.Millisecond, r.cfg.Interval/4),
	})
}

// checkMetrics sends every query once, with the placeholders of a watch of
// commit (which replaces previous), before anything is deployed. A query
// Prometheus rejects, or one whose placeholders have no value in this run,
// is invalid input (exit 2). Prometheus unreachable is not: the deploy
// goes ahead, the watch keeps trying, and a metric that stays without data
// makes the run inconclusive, never healthy.
func (r *runner) checkMetrics(ctx context.Context, commit, previous string) bool {
	if !r.hasMetrics() {
		return true
	}
	src, err := r.newSource(r.metricSpecs(), r.metricVars(commit, previous))
	if err != nil {
		r.refuse("Invalid input", "input metrics: "+err.Error())
		return false
	}
	var rejected, down []string
	for _, e := range unjoin(src.Check(ctx)) {
		var qe *metrics.QueryError
		switch {
		case errors.As(e, &qe) && qe.NoData == metrics.NoDataUnreachable:
			down = append(down, e.Error())
		default:
			rejected = append(rejected, e.Error())
		}
	}
	if ctx.Err() != nil {
		return true // the machine reports the cancel
	}
	if len(rejected) > 0 {
		r.refuse("Invalid input", "input metrics: Prometheus at "+redact.URL(r.cfg.PrometheusURL)+" cannot run them: "+strings.Join(rejected, "; "))
		return false
	}
	if len(down) > 0 {
		r.warn("Prometheus unreachable", fmt.Sprintf("%s; the deploy goes ahead: the watch keeps trying, and a metric without data past startup-timeout makes the run inconclusive, never healthy",
			strings.Join(down, "; ")))
	}
	var names []string
	for _, m := range r.cfg.Metrics {
		if m.Kind == config.MetricRate {
			names = append(names, fmt.Sprintf("%s (errors at most %s)", m.Name, pct(m.MaxErrorRate)))
		} else {
			names = append(names, fmt.Sprintf("%s (%s)", m.Name, boundsText(m)))
		}
	}
	r.log.Printf("Metrics from %s: %s.", redact.URL(r.cfg.PrometheusURL), strings.Join(names, ", "))
	return true
}

func boundsText(m config.Metric) string {
	var b []string
	if m.Min != nil {
		b = append(b, fmt.Sprintf("at least %g", *m.Min))
	}
	if m.Max != nil {
		b = append(b, fmt.Sprintf("at most %g", *m.Max))
	}
	return fmt.Sprintf("%s, %d looks in a row", strings.Join(b, " and "), m.Consecutive)
}

// unjoin splits an errors.Join.
func unjoin(err error) []error {
	if err == nil {
		return nil
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}

// metricWatch is the metrics side of one watch: the source, the log of its
// looks for the report, and what judges them: a Judge, or, before the
// deploy, production's Baselines.
type metricWatch struct {
	r        *runner
	src      *metrics.Source
	log      *report.MetricLog
	judge    *metrics.Judge
	base     *metrics.Baselines
	start    time.Time
	interval time.Duration
	totals   []struct{ requests, errors int64 }
}

// newMetricWatch reads specs for a watch of commit that replaced previous,
// starting now, judged (against production's baselines when set), or,
// with judge false, kept as a baseline.
func (r *runner) newMetricWatch(specs []metrics.Spec, commit, previous string, base *metrics.Baselines, judge bool) (*metricWatch, error) {
	src, err := r.newSource(specs, r.metricVars(commit, previous))
	if err != nil {
		return nil, err
	}
	start := r.d.Clock.Now()
	m := &metricWatch{r: r, src: src, start: start, interval: r.cfg.Interval,
		log: report.NewMetricLog(start, specs, 0), totals: make([]struct{ requests, errors int64 }, len(specs))}
	if judge {
		m.judge = metrics.NewJudge(specs, metrics.JudgeOptions{
			Confidence:  r.cfg.Confidence,
			Signals:     r.signals(),
			MinRequests: int64(r.cfg.MinRequests),
			Start:       start,
			Grace:       max(r.cfg.StartupTimeout, 2*r.cfg.Interval),
			Baselines:   base,
		})
	} else {
		m.base = base
	}
	return m, nil
}

// look is the watch's Look: it reads every metric, within one interval,
// and returns what the watch applies in order: the log, the progress line
// and the judgment.
func (m *metricWatch) look(ctx context.Context) func() bool {
	ctx, cancel := context.WithTimeout(ctx, m.interval)
	defer cancel()
	l := m.src.Look(ctx)
	return func() bool {
		m.log.Add(l)
		m.progress(l)
		if m.judge == nil {
			m.base.Observe(l)
			return false
		}
		return m.judge.Observe(l) != nil
	}
}

// progress prints one line per look: each metric's counts since the last
// look and so far, its value, or why it had no data.
func (m *metricWatch) progress(l metrics.Look) {
	parts := make([]string, 0, len(l.Readings))
	for i, rd := range l.Readings {
		switch {
		case !rd.HasData():
			why := string(rd.NoData)
			if rd.Error != "" {
				why += ": " + rd.Error
			}
			parts = append(parts, fmt.Sprintf("%s no data (%s)", rd.Metric, why))
		case rd.Kind == metrics.KindRate:
			t := &m.totals[i]
			t.requests += rd.Requests
			t.errors += rd.Errors
			s := fmt.Sprintf("%s +%d/%d failed, so far %d of %d", rd.Metric, rd.Errors, rd.Requests, t.errors, t.requests)
			if rd.NewSeries > 0 && t.requests == 0 {
				s += fmt.Sprintf(" (%d new series: a starting point)", rd.NewSeries)
			}
			if rd.Resets > 0 {
				s += fmt.Sprintf(" (%d counter reset)", rd.Resets)
			}
			parts = append(parts, s)
		default:
			mark := "✓"
			if rd.OutOfBounds {
				mark = fmt.Sprintf("✗ %d in a row", rd.Streak)
			}
			parts = append(parts, fmt.Sprintf("%s %.4g %s", rd.Metric, rd.Value, mark))
		}
	}
	m.r.log.Printf("  %7s  metrics  %s", "+"+report.FormatDuration(l.At.Sub(m.start)), strings.Join(parts, " · "))
}

// finish ends the watch at end and returns what it saw of each metric, and
// the outcomes. final: see metrics.Judge.Finish.
func (m *metricWatch) finish(end time.Time, final bool) ([]report.MetricWatch, []metrics.Outcome) {
	var outcomes []metrics.Outcome
	if m.judge != nil {
		outcomes = m.judge.Finish(end, final)
	} else {
		for _, name := range m.base.Names() {
			req, errs := m.base.Counts(name)
			o := metrics.Outcome{Metric: name, Kind: metrics.KindRate, Requests: req, Errors: errs}
			if ok, why := m.base.Usable(name, int64(m.r.cfg.MinRequests)); ok {
				o.Baseline = "the new build is judged against it"
			} else {
				o.Baseline = "not a yardstick: " + why
			}
			outcomes = append(outcomes, o)
		}
	}
	return m.log.Metrics(outcomes, m.src.Metrics()), outcomes
}

// metricsBaseline reads production's rate metrics (with ${SHA} = target,
// the build production runs) for the baseline, on the baseline watch's
// schedule. Without a target, or when a query cannot be filled in, there is
// no metrics baseline and the rate metrics are judged by their absolute
// limits; the run says so.
func (r *runner) metricsBaseline(target string) *metricWatch {
	if !r.hasMetrics() {
		return nil
	}
	base := metrics.NewBaselines(r.metricSpecs(), r.cfg.Confidence, r.signals())
	if len(base.Specs()) == 0 {
		return nil
	}
	if target == "" {
		r.note("no metrics baseline: the commit production runs is not known, so ${SHA} cannot be filled in; the rate metrics are judged by their absolute limits")
		return nil
	}
	mw, err := r.newMetricWatch(base.Specs(), target, "", base, false)
	if err != nil {
		r.note(fmt.Sprintf("no metrics baseline: %v; the rate metrics are judged by their absolute limits", err))
		return nil
	}
	return mw
}
