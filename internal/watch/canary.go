package watch

// The canary's watch: its URLs (canary-health-url) probed in the same rounds
// as the control's (health-url, the stable fleet) and judged by
// verdict.Canary; each metric read for both tracks in the same look and
// judged by metrics.CanaryJudge. A canary that passes is promoted to the
// whole fleet; one that regresses is removed.
//
// The metrics side of a canary's watch: each metric read for both tracks in
// the same look (${TRACK} = canary, then stable), judged by
// metrics.CanaryJudge; what is measured is internal/metrics', what it means
// internal/verdict's. The control's track is read for the rate metrics only:
// the threshold metrics judge the canary alone, by their bounds.

import (
	"context"
	"fmt"
	"github.com/immune-cd/immune/internal/health"
	"github.com/immune-cd/immune/internal/pct"
	"github.com/immune-cd/immune/internal/run"
	"github.com/immune-cd/immune/internal/sha"
	"github.com/immune-cd/immune/internal/verdict"
	"strings"
	"sync"
	"time"

	"github.com/immune-cd/immune/internal/metrics"
	"github.com/immune-cd/immune/internal/report"
)

// The values of ${TRACK}.
const (
	trackCanary = "canary"
	trackStable = "stable"
)

// canaryMetrics is the metrics side of one canary watch.
type canaryMetrics struct {
	w                     *Watcher
	canarySrc, controlSrc *metrics.Source
	judge                 *metrics.CanaryJudge
	canaryLog, controlLog *report.MetricLog
	start                 time.Time
	interval              time.Duration
	totals                []struct{ cr, ce, sr, se int64 } // per rate metric
}

// newCanaryMetrics reads the metrics of both tracks from now on.
func (w *Watcher) newCanaryMetrics(build, target string) (*canaryMetrics, error) {
	specs := w.metricSpecs()
	canaryVars := w.metricVars(build, target)
	canaryVars.Track = trackCanary
	controlVars := canaryVars
	controlVars.Track = trackStable
	canarySrc, err := w.newSource(specs, canaryVars)
	if err != nil {
		return nil, err
	}
	rates := metrics.RateSpecs(specs)
	var controlSrc *metrics.Source
	if len(rates) > 0 {
		if controlSrc, err = w.newSource(rates, controlVars); err != nil {
			return nil, err
		}
	}
	start := w.d.Clock.Now()
	return &canaryMetrics{
		w: w, canarySrc: canarySrc, controlSrc: controlSrc, start: start, interval: w.cfg.Interval,
		judge: metrics.NewCanaryJudge(specs, metrics.JudgeOptions{
			Confidence:  w.cfg.Confidence,
			Signals:     w.countSignals(w.cfg.CanaryHealthURLs),
			MinRequests: int64(w.cfg.MinRequests),
			Start:       start,
			Grace:       max(w.cfg.StartupTimeout, 2*w.cfg.Interval),
		}, w.cfg.CanaryPromoteEarly),
		canaryLog:  report.NewMetricLog(start, specs, 0),
		controlLog: report.NewMetricLog(start, rates, 0),
		totals:     make([]struct{ cr, ce, sr, se int64 }, len(rates)),
	}, nil
}

// look reads both tracks at once, within one interval, and returns what the
// watch applies in order: the logs, the progress line and the judgment
// (true: the canary regressed).
func (m *canaryMetrics) look(ctx context.Context) func() bool {
	ctx, cancel := context.WithTimeout(ctx, m.interval)
	defer cancel()
	var canary, control metrics.Look
	var wg sync.WaitGroup
	wg.Go(func() { canary = m.canarySrc.Look(ctx) })
	if m.controlSrc != nil {
		wg.Go(func() { control = m.controlSrc.Look(ctx) })
	}
	wg.Wait()
	control.At = canary.At
	return func() bool {
		m.canaryLog.Add(canary)
		if m.controlSrc != nil {
			m.controlLog.Add(control)
		}
		m.progress(canary, control)
		return m.judge.Observe(canary, control) != nil
	}
}

// progress prints one line per look: each rate metric's counts on both
// tracks since the last look and so far, each threshold metric's value.
func (m *canaryMetrics) progress(canary, control metrics.Look) {
	var parts []string
	k := 0
	for _, rd := range canary.Readings {
		if rd.Kind != metrics.KindRate {
			switch {
			case !rd.HasData():
				parts = append(parts, fmt.Sprintf("%s no data (%s)", rd.Metric, rd.NoData))
			case rd.OutOfBounds:
				parts = append(parts, fmt.Sprintf("%s %.4g ✗ %d in a row", rd.Metric, rd.Value, rd.Streak))
			default:
				parts = append(parts, fmt.Sprintf("%s %.4g ✓", rd.Metric, rd.Value))
			}
			continue
		}
		t := &m.totals[k]
		side := func(rd metrics.Reading, req, errs *int64) string {
			if !rd.HasData() {
				return "no data (" + string(rd.NoData) + ")"
			}
			*req, *errs = *req+rd.Requests, *errs+rd.Errors
			return fmt.Sprintf("+%d/%d, so far %d of %d", rd.Errors, rd.Requests, *errs, *req)
		}
		c := side(rd, &t.cr, &t.ce)
		s := "not read"
		if k < len(control.Readings) {
			s = side(control.Readings[k], &t.sr, &t.se)
		}
		parts = append(parts, fmt.Sprintf("%s canary %s · control %s", rd.Metric, c, s))
		k++
	}
	m.w.d.Log.Printf("  %7s  metrics  %s", "+"+report.FormatDuration(canary.At.Sub(m.start)), strings.Join(parts, " · "))
}

// finish ends the watch at end and returns what each track saw of each
// metric, and the canary's outcomes (inconclusive ones among them when
// final).
func (m *canaryMetrics) finish(end time.Time, final bool) (canary, control []report.MetricWatch, outcomes []metrics.Outcome, summaries []string) {
	co, so := m.judge.Finish(end, final)
	canary = m.canaryLog.Metrics(co, m.canarySrc.Metrics())
	if m.controlSrc != nil {
		control = m.controlLog.Metrics(so, m.controlSrc.Metrics())
	}
	k := 0
	for _, o := range co {
		if o.Kind == metrics.KindRate {
			summaries = append(summaries, metrics.CanarySummary(o, so[k]))
			k++
		} else {
			summaries = append(summaries, o.Summary())
		}
	}
	return canary, control, co, summaries
}

// Canary probes the canary's URLs and the control's in the same rounds,
// and reads the metrics of both tracks in the same looks, for
// canary-duration: build on the canary, target on the control. It returns
// both tracks' watches (the canary's with the verdict), drawing the rounds
// into series as they come, and whether the canary was promoted early
// (canary-promote-early: every signal showed it no worse).
func (w *Watcher) Canary(ctx context.Context, build, target string, series *report.CanarySeries) (canary, control *report.Watch, early bool) {
	cfg := w.cfg
	var urls []string
	if len(cfg.CanaryHealthURLs) > 0 {
		urls = append(append(urls, cfg.CanaryHealthURLs...), cfg.HealthURLs...)
	}
	steady := make([]bool, len(urls))
	isCanary := map[string]bool{}
	for i, name := range health.DisplayNames(urls) {
		steady[i] = i >= len(cfg.CanaryHealthURLs)
		isCanary[name] = !steady[i]
	}
	var eng *verdict.Canary
	if len(urls) > 0 {
		l := w.limits(cfg.CanaryDuration)
		l.Targets, l.Signals = len(cfg.CanaryHealthURLs), w.countSignals(cfg.CanaryHealthURLs)
		eng = verdict.NewCanary(l, verdict.CanaryOptions{PromoteEarly: cfg.CanaryPromoteEarly})
	}
	var cm *canaryMetrics
	var metricsErr error
	if w.hasMetrics() {
		if cm, metricsErr = w.newCanaryMetrics(build, target); metricsErr != nil {
			w.d.Log.Error("Metrics not read", metricsErr.Error())
			cm = nil
		}
	}
	d, startup := cfg.CanaryDuration, min(cfg.StartupTimeout, cfg.CanaryDuration)
	var signals []string
	if eng != nil {
		signals = append(signals, fmt.Sprintf("%d canary URL(s) against %d of the stable fleet's (the control), in the same rounds", len(cfg.CanaryHealthURLs), len(cfg.HealthURLs)))
	}
	if cm != nil {
		signals = append(signals, fmt.Sprintf("%d metric(s) of both tracks, in the same looks", len(cfg.Metrics)))
	}
	w.d.Log.Printf("Canary: %s, every %s for %s (startup grace %s).", strings.Join(signals, " and "), cfg.Interval, d, startup)
	canaryLog := report.NewProbeLog(w.d.Clock.Now(), 0, cfg.LatencyPercentile)
	controlLog := report.NewProbeLog(w.d.Clock.Now(), 0, cfg.LatencyPercentile)
	asNew := 0 // control probes answered by the new build
	var last verdict.Decision
	// promote reports whether every signal has shown the canary no worse
	// (canary-promote-early), and says why.
	var promoted verdict.Decision
	promote := func() bool {
		if !cfg.CanaryPromoteEarly || promoted.Outcome == verdict.Healthy {
			return promoted.Outcome == verdict.Healthy
		}
		var why []string
		var ev verdict.Evidence
		if eng != nil {
			p, ok := eng.NoWorse()
			if !ok {
				return false
			}
			why, ev = append(why, p.Reason), p.Evidence
		}
		if cm != nil && cm.judge.HasRates() {
			m, ok := cm.judge.NoWorse()
			if !ok {
				return false
			}
			why = append(why, m)
		}
		if len(why) == 0 {
			return false // nothing compares the canary with the control
		}
		promoted = verdict.Decision{Outcome: verdict.Healthy, Rule: verdict.RuleCanaryNoWorse, Reason: strings.Join(why, "; "), Evidence: ev}
		return true
	}
	hw := w.healthWatch(urls, build, d, startup)
	hw.OnRound = w.canaryProgress()
	hw.Steady = steady
	if eng != nil {
		hw.JudgeRound = func(round health.Round) bool {
			var canary, control []verdict.Observation
			pt := report.CanaryPoint{Elapsed: round.Elapsed}
			for _, p := range round.Probes {
				if p.Phase != health.PhaseLive {
					continue
				}
				slowest := time.Duration(0)
				if p.Answered {
					slowest = p.Latency
				}
				if isCanary[p.URL] {
					canary = append(canary, observation(p))
					pt.Canary++
					pt.CanaryFailed += btoi(p.Failed)
					pt.CanarySlowest = max(pt.CanarySlowest, slowest)
				} else {
					control = append(control, observation(p))
					pt.Control++
					pt.ControlFailed += btoi(p.Failed)
					pt.ControlSlowest = max(pt.ControlSlowest, slowest)
				}
			}
			series.Add(pt)
			last = eng.Look(canary, control)
			return last.Outcome == verdict.Regressed || promote()
		}
	}
	hw.Record = func(p health.Probe) {
		if isCanary[p.URL] {
			canaryLog.Add(p)
			return
		}
		if hw.VersionAware && p.VersionMatch && p.Answered {
			asNew++
		}
		controlLog.Add(p)
	}
	if cm != nil {
		hw.Look = func(ctx context.Context) func() bool {
			apply := cm.look(ctx)
			return func() bool { return apply() || promote() }
		}
	}
	res := hw.Run(ctx)
	canary = &report.Watch{SHA: build, Start: res.Start, End: res.End, Planned: d, LiveAfter: res.LiveAfter}
	canaryLog.Fill(canary)
	control = &report.Watch{SHA: target, Start: res.Start, End: res.End, Planned: d}
	controlLog.Fill(control)
	if asNew > 0 {
		w.d.Log.Warn("The control answered as the new build", fmt.Sprintf("%d of the control's probes were answered by %s, the canary's build: does canary-command deploy to the stable fleet too, or do canary-health-url and health-url reach the same servers? The comparison means little then", asNew, sha.Short(build)))
	}
	w.noteSkipped(res, "canary ")
	final := res.Err == nil && len(res.NotLive) == 0 && !res.Stopped
	var outs []Outcome
	var mreg *metrics.Regression
	if cm != nil {
		mreg = cm.judge.Regression()
	}
	switch o, ok := ended(res, startup, "the canary"); {
	case ok:
		outs = append(outs, o)
	case res.Stopped && last.Outcome == verdict.Regressed:
		outs = append(outs, decided(last, true))
	case res.Stopped && mreg != nil:
		outs = append(outs, regressedOn(mreg))
	case res.Stopped && promoted.Outcome == verdict.Healthy:
		early = true
		o := decided(promoted, false)
		o.Reason = "the canary is no worse than the control: " + strings.TrimPrefix(o.Reason, "the canary is no worse than the control: ")
		if eng == nil {
			o.Evidence = nil
		}
		outs = append(outs, o)
	case eng != nil:
		outs = append(outs, decided(eng.Finish(), false))
	}
	if cm != nil {
		var outcomes []metrics.Outcome
		var sums []string
		canary.Metrics, control.Metrics, outcomes, sums = cm.finish(res.End, final)
		if final {
			outs = append(outs, metricOutcomes(nil, sums, outcomes)...)
		}
	} else if final && metricsErr != nil {
		outs = append(outs, metricOutcomes(metricsErr, nil, nil)...)
	}
	record(canary, Worst("the canary", outs...))
	if canary.Verdict == run.Healthy {
		if e := canary.Evidence; e != nil && e.Canary != nil && e.Judged > 0 && e.ErrorRate > e.AllowedErrorRate {
			w.d.Log.Warn("Canary worse than the control, but passing", fmt.Sprintf("the canary failed %s of its probes against the control's %s, more than the allowed %s points over it; not enough evidence to call it a regression",
				pct.Of(e.ErrorRate, 1), pct.Of(e.Canary.ControlErrorRate, 1), pct.Points(e.Canary.Margin, 1)))
		}
	}
	return canary, control, early
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}
