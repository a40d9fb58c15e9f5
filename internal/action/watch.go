package action

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/immune-cd/immune/internal/health"
	"github.com/immune-cd/immune/internal/metrics"
	"github.com/immune-cd/immune/internal/report"
	"github.com/immune-cd/immune/internal/run"
	"github.com/immune-cd/immune/internal/verdict"
)

// limits are the verdict engine's limits for a watch of length d.
func (r *runner) limits(d time.Duration) verdict.Limits {
	c := r.cfg
	return verdict.Limits{
		MaxErrorRate:        c.MaxErrorRate,
		ConsecutiveFailures: c.ConsecutiveFailures,
		MaxLatency:          c.MaxLatency,
		LatencyPercentile:   c.LatencyPercentile,
		Confidence:          c.Confidence,
		MaxLatencyIncrease:  c.MaxLatencyIncrease,
		Horizon:             int((d + c.Interval - 1) / c.Interval),
		Targets:             len(c.HealthURLs),
		Signals:             r.signals(),
	}
}

// observation turns a probe into what the verdict engine judges.
func observation(p health.Probe) verdict.Observation {
	var latency time.Duration
	if p.Answered {
		latency = p.Latency
	}
	return verdict.Probe(p.URL, p.Failed, latency)
}

// baselineEngine probes the current production before the deploy (and
// reads its rate metrics, into r.metricBase) and returns an engine that
// judges the new build's probes against it, or nil to use the absolute
// limits (no baseline configured, no health URLs, or production already
// failing).
func (r *runner) baselineEngine(ctx context.Context, target string) *verdict.Engine {
	d := r.cfg.BaselineDuration
	if d <= 0 {
		return nil
	}
	probing := len(r.cfg.HealthURLs) > 0
	mw := r.metricsBaseline(target)
	var what []string
	if probing {
		what = append(what, "probing")
	}
	if mw != nil {
		what = append(what, "reading the rate metrics of")
	}
	if len(what) == 0 {
		return nil
	}
	r.log.Printf("Baseline: %s the current production for %s before the deploy.", strings.Join(what, " and "), d)
	var b *verdict.Baseline
	if probing {
		b = verdict.NewBaseline(r.limits(d))
	}
	log := report.NewProbeLog(r.d.Clock.Now(), 0, r.cfg.LatencyPercentile)
	w := &health.Watch{
		Probe:    r.probe,
		Go:       r.d.Go,
		Clock:    r.d.Clock,
		URLs:     r.cfg.HealthURLs,
		Want:     target,
		Interval: r.cfg.Interval,
		Duration: d,
		Judge:    func(p health.Probe) bool { b.Observe(observation(p)); return false },
		Record:   log.Add,
		OnRound:  r.progress(),
	}
	if mw != nil {
		w.Look = mw.look
	}
	res := w.Run(ctx)
	rw := &report.Watch{SHA: target, Start: res.Start, End: res.End, Planned: d}
	log.Fill(rw)
	r.out.Baseline = rw
	if ctx.Err() != nil {
		rw.Verdict, rw.Reason = run.Cancelled, "the baseline was cancelled"
		return nil
	}
	var reasons []string
	if mw != nil {
		var outcomes []metrics.Outcome
		rw.Metrics, outcomes = mw.finish(res.End, true)
		r.metricBase = mw.base
		for _, o := range outcomes {
			line := fmt.Sprintf("metric %s: %d of %d requests failed (%s); %s", o.Metric, o.Errors, o.Requests, ratioText(o.Errors, o.Requests), o.Baseline)
			r.log.Printf("Baseline: %s.", line)
			reasons = append(reasons, line)
		}
	}
	rw.Verdict = run.Healthy
	if !probing {
		rw.Reason = strings.Join(reasons, "; ")
		return nil
	}
	if bad, why := b.Unhealthy(); bad {
		rw.Verdict, rw.Reason = run.Regressed, strings.Join(append([]string{why}, reasons...), "; ")
		r.warn("Production was already unhealthy", why+"; the deploy goes ahead (it may be the fix) and is judged by the absolute limits")
		return nil
	}
	probes := fmt.Sprintf("%d of %d probes failed (%s); p%s latency %s", b.Failures(), b.Probes(), pct(b.FailureRate()),
		strconv.FormatFloat(r.cfg.LatencyPercentile, 'f', -1, 64), report.FormatDuration(b.Latency(r.cfg.LatencyPercentile)))
	rw.Reason = strings.Join(append([]string{probes}, reasons...), "; ")
	r.log.Printf("Baseline: %s. The new build is judged against it.", probes)
	return verdict.NewWithBaseline(r.limits(r.cfg.Duration), b)
}

func ratioText(bad, n int64) string {
	if n == 0 {
		return "no requests"
	}
	return pct(float64(bad) / float64(n))
}

// watch watches sha, which replaced previous, for d and returns what it
// saw and decided: with health URLs, their probes judged by eng (nil for
// the absolute limits); with metrics, a look per interval, judged against
// production's baselines when base is set. Either signal can regress the
// build; a metric that cannot clear it makes the watch inconclusive unless
// one did.
func (r *runner) watch(ctx context.Context, title, sha, previous string, d time.Duration, eng *verdict.Engine, base *metrics.Baselines) *report.Watch {
	probing := len(r.cfg.HealthURLs) > 0
	if eng == nil && probing {
		eng = verdict.New(r.limits(d))
	}
	var last verdict.Decision
	startup := min(r.cfg.StartupTimeout, d)
	var signals []string
	if probing {
		signals = append(signals, fmt.Sprintf("%d URL(s)", len(r.cfg.HealthURLs)))
	}
	if r.hasMetrics() {
		signals = append(signals, fmt.Sprintf("%d metric(s)", len(r.cfg.Metrics)))
	}
	r.log.Printf("%s: %s every %s for %s (startup grace %s).", title, strings.Join(signals, " and "), r.cfg.Interval, d, startup)
	log := report.NewProbeLog(r.d.Clock.Now(), 0, r.cfg.LatencyPercentile)
	w := &health.Watch{
		Probe:          r.probe,
		Go:             r.d.Go,
		Clock:          r.d.Clock,
		URLs:           r.cfg.HealthURLs,
		Want:           sha,
		VersionAware:   r.cfg.ExpectVersion.Kind != "",
		Interval:       r.cfg.Interval,
		Duration:       d,
		StartupTimeout: startup,
		Judge: func(p health.Probe) bool {
			last = eng.Observe(observation(p))
			return last.Outcome == verdict.Regressed
		},
		Record:  log.Add,
		OnRound: r.progress(),
	}
	var mw *metricWatch
	var metricsErr error
	if r.hasMetrics() {
		if mw, metricsErr = r.newMetricWatch(r.metricSpecs(), sha, previous, base, true); metricsErr == nil {
			w.Look = mw.look
		} else {
			r.log.Error("Metrics not read", metricsErr.Error())
		}
	}
	res := w.Run(ctx)
	rw := &report.Watch{SHA: sha, Start: res.Start, End: res.End, Planned: d, LiveAfter: res.LiveAfter}
	log.Fill(rw)
	r.noteSkipped(res, "")
	var mreg *metrics.Regression
	if mw != nil {
		mreg = mw.judge.Regression()
	}
	// final: the watch ran its course and no signal regressed the build.
	final := res.Err == nil && len(res.NotLive) == 0 && !res.Stopped
	switch {
	case settle(rw, res, last, mreg, startup, ""):
	default:
		var healthy []string
		if probing {
			last = eng.Finish()
			rw.Rule, rw.Reason, rw.Evidence = last.Rule, last.Reason, &last.Evidence
			if last.Outcome == verdict.Regressed {
				rw.Verdict, rw.Detected = run.Regressed, true
				final = false
				break
			}
			healthy = append(healthy, last.Reason)
		}
		rw.Verdict = run.Healthy
		var outcomes []metrics.Outcome
		if mw != nil {
			rw.Metrics, outcomes = mw.finish(res.End, true)
		}
		var why []string
		if metricsErr != nil {
			why = append(why, "the metrics could not be read: "+metricsErr.Error())
		}
		why = append(why, metrics.Inconclusive(outcomes)...)
		for _, o := range outcomes {
			healthy = append(healthy, o.Summary())
		}
		if len(why) > 0 {
			rw.Verdict, rw.Rule = run.Inconclusive, "inconclusive"
			rw.Reason = "not judged: " + strings.Join(why, "; ")
			if probing {
				rw.Reason += "; the health probes passed: " + healthy[0]
			}
		} else if len(healthy) > 0 {
			rw.Reason = strings.Join(healthy, "; ")
		}
	}
	if mw != nil && rw.Metrics == nil {
		rw.Metrics, _ = mw.finish(res.End, final)
	}
	return rw
}

// shortWhy says in a few words why a watch regressed, for GitHub's
// 140-character descriptions.
func shortWhy(w *report.Watch) string {
	switch {
	case w.Verdict == run.Inconclusive:
		why := strings.TrimPrefix(w.Reason, "not judged: ")
		if i := strings.Index(why, "; "); i > 0 {
			why = why[:i]
		}
		return why
	case w.Metric != "" && w.Rule == metrics.RuleThreshold:
		return fmt.Sprintf("metric %s out of bounds in a row", w.Metric)
	case w.Metric != "" && w.Evidence != nil:
		return fmt.Sprintf("metric %s: %d of %d requests failed", w.Metric, w.Evidence.Bad, w.Evidence.Judged)
	}
	switch w.Rule {
	case "startup-timeout":
		return "no healthy answer within the startup timeout"
	case verdict.RuleLatency, verdict.RuleBaselineLatency:
		if e := w.Evidence; e != nil {
			return fmt.Sprintf("p%s latency %s (limit %s)", strconv.FormatFloat(e.Percentile, 'f', -1, 64),
				report.FormatDuration(e.Latency), report.FormatDuration(e.MaxLatency))
		}
	}
	return fmt.Sprintf("%d of %d probes failed", w.Stats.Failed, w.Stats.Probes)
}

// progress prints one compact line per round.
func (r *runner) progress() func(health.Round) {
	p := report.NewProgress(r.cfg.LatencyPercentile)
	return func(round health.Round) { r.log.Printf("%s", p.Line(round)) }
}

// warnIfDegraded flags a healthy build whose numbers are above the limits,
// but not with the confidence needed to roll back.
func (r *runner) warnIfDegraded(w *report.Watch) {
	var why []string
	if w.Stats.ErrorRate > r.cfg.MaxErrorRate {
		why = append(why, fmt.Sprintf("%d of %d probes failed (%s), above the allowed %s", w.Stats.Failed, w.Stats.Probes, pct(w.Stats.ErrorRate), pct(r.cfg.MaxErrorRate)))
	}
	if e := w.Evidence; e != nil && e.MaxLatency > 0 && e.Latency > e.MaxLatency {
		why = append(why, fmt.Sprintf("p%s latency %s is above the allowed %s", strconv.FormatFloat(e.Percentile, 'f', -1, 64),
			report.FormatDuration(e.Latency), report.FormatDuration(e.MaxLatency)))
	}
	for _, m := range w.Metrics {
		switch {
		case m.Kind == metrics.KindRate && m.Judged == "absolute" && m.ErrorRate > m.Allowed:
			why = append(why, fmt.Sprintf("metric %s: %d of %d requests failed (%s), above the allowed %s", m.Name, m.Errors, m.Requests, pct(m.ErrorRate), pct(m.Allowed)))
		case m.Kind == metrics.KindThreshold && m.OutOfBounds > 0:
			why = append(why, fmt.Sprintf("metric %s was out of bounds in %d looks, never %d in a row", m.Name, m.OutOfBounds, m.Consecutive))
		}
	}
	if len(why) > 0 {
		r.warn("Degraded but passing", strings.Join(why, "; ")+"; not enough evidence to call it a regression")
	}
}

func pct(f float64) string {
	return strings.TrimSuffix(fmt.Sprintf("%.1f", f*100), ".0") + "%"
}

// noteSkipped notes the probes and looks a watch could not make on time
// (skipped, never made up in a burst). what names the watch ("canary ").
func (r *runner) noteSkipped(res health.Result, what string) {
	if res.Skipped > 0 {
		r.note(fmt.Sprintf("%d of %d scheduled probes of the %swatch were skipped: the machine could not start them within half an interval of their time", res.Skipped, res.Skipped+res.Probes, what))
	}
	if res.SkippedLooks > 0 {
		r.note(fmt.Sprintf("%d of %d scheduled looks at the %smetrics were skipped: a look took longer than the interval", res.SkippedLooks, res.SkippedLooks+res.Looks, what))
	}
}

// settle sets the verdict of a watch that ended early: cancelled, a URL
// that never came up, or a regression found by a rule (last) or a metric
// (mreg). It reports false when the watch ran its course, for the caller
// to finish. subject names what was watched in the reasons ("the canary"),
// "" for the build itself.
func settle(rw *report.Watch, res health.Result, last verdict.Decision, mreg *metrics.Regression, startup time.Duration, subject string) bool {
	switch {
	case res.Err != nil:
		rw.Verdict, rw.Reason = run.Cancelled, "the watch was cancelled"
		if subject != "" {
			rw.Reason = "the watch of " + subject + " was cancelled"
		}
	case len(res.NotLive) > 0:
		rw.Verdict, rw.Rule, rw.Detected = run.Regressed, "startup-timeout", true
		lastErr := ""
		if e := res.LastError[res.NotLive[0]]; e != "" {
			lastErr = " (last answer: " + e + ")"
		}
		rw.Reason = fmt.Sprintf("no healthy answer from %s within the startup timeout of %s%s",
			strings.Join(res.NotLive, ", "), report.FormatDuration(startup), lastErr)
		if subject != "" {
			rw.Reason = subject + ": " + rw.Reason
		}
	case res.Stopped && last.Outcome == verdict.Regressed:
		rw.Verdict, rw.Rule, rw.Reason, rw.Detected = run.Regressed, last.Rule, last.Reason, true
		rw.Evidence = &last.Evidence
	case res.Stopped && mreg != nil:
		rw.Verdict, rw.Rule, rw.Reason, rw.Detected, rw.Metric = run.Regressed, mreg.Rule, mreg.Reason, true, mreg.Metric
		rw.Evidence = mreg.Evidence
	default:
		return false
	}
	return true
}
