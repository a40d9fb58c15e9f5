package action

// The metrics side of a canary's watch: each metric read for both tracks in
// the same look (${TRACK} = canary, then stable), judged by
// metrics.CanaryJudge; what is measured is internal/metrics', what it means
// internal/verdict's. The control's track is read for the rate metrics only:
// the threshold metrics judge the canary alone, by their bounds.

import (
	"context"
	"fmt"
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
	r                     *runner
	canarySrc, controlSrc *metrics.Source
	judge                 *metrics.CanaryJudge
	canaryLog, controlLog *report.MetricLog
	start                 time.Time
	interval              time.Duration
	totals                []struct{ cr, ce, sr, se int64 } // per rate metric
}

// canarySignals counts the canary watch's signals that run an error-rate
// test: the canary's probes, if any, and each rate metric.
func (r *runner) canarySignals() int { return r.countSignals(r.cfg.CanaryHealthURLs) }

// newCanaryMetrics reads the metrics of both tracks from now on.
func (r *runner) newCanaryMetrics() (*canaryMetrics, error) {
	specs := r.metricSpecs()
	canaryVars := r.metricVars(r.cfg.SHA, r.target)
	canaryVars.Track = trackCanary
	controlVars := canaryVars
	controlVars.Track = trackStable
	canarySrc, err := r.newSource(specs, canaryVars)
	if err != nil {
		return nil, err
	}
	rates := metrics.RateSpecs(specs)
	var controlSrc *metrics.Source
	if len(rates) > 0 {
		if controlSrc, err = r.newSource(rates, controlVars); err != nil {
			return nil, err
		}
	}
	start := r.d.Clock.Now()
	return &canaryMetrics{
		r: r, canarySrc: canarySrc, controlSrc: controlSrc, start: start, interval: r.cfg.Interval,
		judge: metrics.NewCanaryJudge(specs, metrics.JudgeOptions{
			Confidence:  r.cfg.Confidence,
			Signals:     r.canarySignals(),
			MinRequests: int64(r.cfg.MinRequests),
			Start:       start,
			Grace:       max(r.cfg.StartupTimeout, 2*r.cfg.Interval),
		}, r.cfg.CanaryPromoteEarly),
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
	m.r.log.Printf("  %7s  metrics  %s", "+"+report.FormatDuration(canary.At.Sub(m.start)), strings.Join(parts, " · "))
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
