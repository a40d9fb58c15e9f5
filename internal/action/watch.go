package action

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/immune-cd/immune/internal/health"
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

// baseline probes the current production before the deploy and returns an
// engine that judges the new build against it, or nil to use the absolute
// limits (no baseline configured, or production already failing).
func (r *runner) baselineEngine(ctx context.Context, target string) *verdict.Engine {
	d := r.cfg.BaselineDuration
	if d <= 0 {
		return nil
	}
	r.log.Printf("Baseline: probing the current production for %s before the deploy.", d)
	b := verdict.NewBaseline(r.limits(d))
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
	res := w.Run(ctx)
	rw := &report.Watch{SHA: target, Start: res.Start, End: res.End, Planned: d}
	log.Fill(rw)
	r.out.Baseline = rw
	if bad, why := b.Unhealthy(); bad {
		rw.Verdict, rw.Reason = run.Regressed, why
		r.warn("Production was already unhealthy", why+"; the deploy goes ahead (it may be the fix) and is judged by the absolute limits")
		return nil
	}
	rw.Verdict = run.Healthy
	rw.Reason = fmt.Sprintf("%d of %d probes failed (%s); p%s latency %s", b.Failures(), b.Probes(), pct(b.FailureRate()),
		strconv.FormatFloat(r.cfg.LatencyPercentile, 'f', -1, 64), report.FormatDuration(b.Latency(r.cfg.LatencyPercentile)))
	r.log.Printf("Baseline: %s. The new build is judged against it.", rw.Reason)
	return verdict.NewWithBaseline(r.limits(r.cfg.Duration), b)
}

// watch watches sha for d and returns what it saw and decided. eng may be
// nil for the absolute limits.
func (r *runner) watch(ctx context.Context, title, sha string, d time.Duration, eng *verdict.Engine) *report.Watch {
	if eng == nil {
		eng = verdict.New(r.limits(d))
	}
	var last verdict.Decision
	startup := min(r.cfg.StartupTimeout, d)
	r.log.Printf("%s: %d URL(s) every %s for %s (startup grace %s).", title, len(r.cfg.HealthURLs), r.cfg.Interval, d, startup)
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
	res := w.Run(ctx)
	rw := &report.Watch{SHA: sha, Start: res.Start, End: res.End, Planned: d, LiveAfter: res.LiveAfter}
	log.Fill(rw)
	if res.Skipped > 0 {
		r.note(fmt.Sprintf("%d of %d scheduled probes were skipped: the machine could not start them within half an interval of their time", res.Skipped, res.Skipped+res.Probes))
	}
	switch {
	case res.Err != nil:
		rw.Verdict, rw.Reason = run.Cancelled, "the watch was cancelled"
	case len(res.NotLive) > 0:
		rw.Verdict, rw.Rule, rw.Detected = run.Regressed, "startup-timeout", true
		last := ""
		if e := res.LastError[res.NotLive[0]]; e != "" {
			last = " (last answer: " + e + ")"
		}
		rw.Reason = fmt.Sprintf("no healthy answer from %s within the startup timeout of %s%s",
			strings.Join(res.NotLive, ", "), report.FormatDuration(startup), last)
	case res.Stopped:
		rw.Verdict, rw.Rule, rw.Reason, rw.Detected = run.Regressed, last.Rule, last.Reason, true
		rw.Evidence = &last.Evidence
	default:
		last = eng.Finish()
		rw.Rule, rw.Reason, rw.Evidence = last.Rule, last.Reason, &last.Evidence
		rw.Verdict = run.Healthy
		if last.Outcome == verdict.Regressed {
			rw.Verdict, rw.Detected = run.Regressed, true
		}
	}
	return rw
}

// shortWhy says in a few words why a watch regressed, for GitHub's
// 140-character descriptions.
func shortWhy(w *report.Watch) string {
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
	if len(why) > 0 {
		r.warn("Degraded but passing", strings.Join(why, "; ")+"; not enough evidence to call it a regression")
	}
}

func pct(f float64) string {
	return strings.TrimSuffix(fmt.Sprintf("%.1f", f*100), ".0") + "%"
}
