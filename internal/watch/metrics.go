package watch

// The metrics side of a watch: the Prometheus source, checked before
// anything is deployed; one look per interval on the watch's schedule
// (health.Watch.Look); the looks judged by metrics.Judge, or kept as
// production's baseline by metrics.Baselines. What is measured is
// internal/metrics', what it means internal/verdict's; this file only
// connects them to the watch, the log and the report.

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/immune-cd/immune/internal/config"
	"github.com/immune-cd/immune/internal/metrics"
	"github.com/immune-cd/immune/internal/pct"
	"github.com/immune-cd/immune/internal/promql"
	"github.com/immune-cd/immune/internal/redact"
	"github.com/immune-cd/immune/internal/report"
	"github.com/immune-cd/immune/internal/run"
)

// hasMetrics reports whether the run reads metrics.
func (w *Watcher) hasMetrics() bool { return len(w.cfg.Metrics) > 0 }

// metricSpecs are the metrics input as package metrics takes them.
func (w *Watcher) metricSpecs() []metrics.Spec { return Specs(w.cfg.Metrics) }

// Specs are metrics entries as package metrics takes them.
func Specs(ms []config.Metric) []metrics.Spec {
	specs := make([]metrics.Spec, len(ms))
	for i, m := range ms {
		specs[i] = metrics.Spec{Name: m.Name, Errors: m.Errors, Total: m.Total, MaxErrorRate: m.MaxErrorRate,
			Query: m.Query, Max: m.Max, Min: m.Min, Consecutive: m.Consecutive, Shadow: m.Shadow}
		if m.Kind == config.MetricThreshold {
			specs[i].Errors, specs[i].Total = "", ""
		}
	}
	return specs
}

// metricVars fills in the placeholders of a watch of commit, which
// replaced previous.
func (w *Watcher) metricVars(commit, previous string) promql.Vars {
	v := promql.Vars{SHA: commit, PreviousSHA: previous, Environment: w.cfg.Environment}
	if w.cfg.Mode == run.ModeDeploy && w.cfg.Canary {
		// Outside the canary's own watch (canary.go), a deploy with
		// a canary reads the stable fleet: production before the deploy,
		// the whole fleet after it, and the rollback.
		v.Track = trackStable
	}
	return v
}

// newSource reads specs with vars from prometheus-url.
func (w *Watcher) newSource(specs []metrics.Spec, vars promql.Vars) (*metrics.Source, error) {
	header := http.Header{}
	for _, h := range w.cfg.PrometheusHeaders {
		header.Add(h.Name, h.Value)
	}
	client := w.d.HTTP
	if client == nil {
		client = http.DefaultClient
	}
	return metrics.New(specs, vars, metrics.Options{
		URL:    w.cfg.PrometheusURL,
		Header: header,
		HTTP:   client,
		Clock:  w.d.Clock,
		// Prometheus's warnings and the retries; its text goes through the
		// logger, which escapes every line.
		Log:            func(msg string) { w.d.Log.Printf("Prometheus: %s", msg) },
		RequestTimeout: w.cfg.Timeout,
		Backoff:        min(250*time.Millisecond, w.cfg.Interval/4),
		// Looks after the first are evaluated this far behind Prometheus's
		// now, for every scrape up to then to have landed.
		Settle: min(metrics.DefaultSettle, w.cfg.Interval/2),
	})
}

// Check sends every query once, with the placeholders of a watch of
// commit (which replaces previous), before anything is deployed. A query
// Prometheus rejects, or one whose placeholders have no value in this run,
// is invalid input: the error says so, for the run to refuse it (exit 2).
// Prometheus unreachable is not: the deploy goes ahead, the watch keeps
// trying, and a metric that stays without data makes the run inconclusive,
// never healthy; Check warns and returns nil.
func (w *Watcher) Check(ctx context.Context, commit, previous string) error {
	if !w.hasMetrics() {
		return nil
	}
	src, err := w.newSource(w.metricSpecs(), w.metricVars(commit, previous))
	if err != nil {
		return fmt.Errorf("input metrics: %w", err)
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
		return nil // the run reports the cancel
	}
	if len(rejected) > 0 {
		return fmt.Errorf("input metrics: Prometheus at %s cannot run them: %s", redact.URL(w.cfg.PrometheusURL), strings.Join(rejected, "; "))
	}
	if len(down) > 0 {
		w.d.Log.Warn("Prometheus unreachable", fmt.Sprintf("%s; the deploy goes ahead: the watch keeps trying, and a metric without data past startup-timeout makes the run inconclusive, never healthy",
			strings.Join(down, "; ")))
	}
	w.d.Log.Printf("Metrics from %s: %s.", redact.URL(w.cfg.PrometheusURL), w.metricNames())
	return nil
}

// Prepare checks what can be checked of the metrics of a watch of commit
// (which replaces previous) without asking Prometheus: their placeholders
// have values. A manual rollback runs it instead of Check: an emergency
// never waits on Prometheus, silent, slow or refusing; the watch after
// the rollback reads the metrics and says what it finds.
func (w *Watcher) Prepare(commit, previous string) error {
	if !w.hasMetrics() {
		return nil
	}
	if _, err := w.newSource(w.metricSpecs(), w.metricVars(commit, previous)); err != nil {
		return fmt.Errorf("input metrics: %w", err)
	}
	w.d.Log.Printf("Metrics from %s: %s; not checked before the rollback, which does not wait on Prometheus: its watch reads them.", redact.URL(w.cfg.PrometheusURL), w.metricNames())
	return nil
}

// metricNames says which metrics are read, and their limits.
func (w *Watcher) metricNames() string {
	var names []string
	for _, m := range w.cfg.Metrics {
		if m.Kind == config.MetricRate {
			names = append(names, fmt.Sprintf("%s (errors at most %s)", m.Name, pct.Of(m.MaxErrorRate, 1)))
		} else {
			names = append(names, fmt.Sprintf("%s (%s)", m.Name, boundsText(m)))
		}
	}
	return strings.Join(names, ", ")
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
	w        *Watcher
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
func (w *Watcher) newMetricWatch(specs []metrics.Spec, commit, previous string, base *metrics.Baselines, judge bool) (*metricWatch, error) {
	src, err := w.newSource(specs, w.metricVars(commit, previous))
	if err != nil {
		return nil, err
	}
	start := w.d.Clock.Now()
	m := &metricWatch{w: w, src: src, start: start, interval: w.cfg.Interval,
		log: report.NewMetricLog(start, specs, 0), totals: make([]struct{ requests, errors int64 }, len(specs))}
	if judge {
		m.judge = metrics.NewJudge(specs, metrics.JudgeOptions{
			Confidence:  w.cfg.Confidence,
			Signals:     w.countSignals(w.cfg.HealthURLs),
			MinRequests: int64(w.cfg.MinRequests),
			Start:       start,
			Grace:       max(w.cfg.StartupTimeout, 2*w.cfg.Interval),
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
			if c := rd.Counters(); c != "" {
				s += " (" + c + ")"
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
	m.w.d.Log.Printf("  %7s  metrics  %s", "+"+report.FormatDuration(l.At.Sub(m.start)), strings.Join(parts, " · "))
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
			if ok, why := m.base.Usable(name, int64(m.w.cfg.MinRequests)); ok {
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
func (w *Watcher) metricsBaseline(target string) *metricWatch {
	if !w.hasMetrics() {
		return nil
	}
	base := metrics.NewBaselines(w.metricSpecs(), w.cfg.Confidence, w.countSignals(w.cfg.HealthURLs))
	if len(base.Specs()) == 0 {
		return nil
	}
	if target == "" {
		w.d.Log.Note("no metrics baseline: the commit production runs is not known, so ${SHA} cannot be filled in; the rate metrics are judged by their absolute limits")
		return nil
	}
	mw, err := w.newMetricWatch(base.Specs(), target, "", base, false)
	if err != nil {
		w.d.Log.Note(fmt.Sprintf("no metrics baseline: %v; the rate metrics are judged by their absolute limits", err))
		return nil
	}
	return mw
}
