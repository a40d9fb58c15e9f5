package action

import (
	"context"
	"fmt"
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
	}
}

// observation turns a probe into what the verdict engine judges.
func observation(p health.Probe) verdict.Observation {
	o := verdict.Observation{Target: p.URL, Failed: p.Failed}
	if p.Answered {
		o.Latency = p.Latency
	}
	return o
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
	w := &health.Watch{
		Probe:    r.probe,
		Clock:    r.d.Clock,
		URLs:     r.cfg.HealthURLs,
		Want:     target,
		Interval: r.cfg.Interval,
		Duration: d,
		Judge:    func(health.Probe) bool { return false },
		OnRound:  r.progress(),
	}
	res := w.Run(ctx)
	var obs []verdict.Observation
	for _, p := range res.Probes {
		obs = append(obs, observation(p))
	}
	b := verdict.NewBaseline(obs)
	stats := report.StatsOf(res.Probes)
	rw := &report.Watch{SHA: target, Start: res.Start, End: res.End, Planned: d, Probes: res.Probes, Stats: stats}
	r.out.Baseline = rw
	limits := r.limits(r.cfg.Duration)
	if bad, why := b.Unhealthy(limits); bad {
		rw.Verdict, rw.Reason = run.Regressed, why
		r.warn("Production was already unhealthy", why+"; the deploy goes ahead (it may be the fix) and is judged by the absolute limits")
		return nil
	}
	rw.Verdict = run.Healthy
	rw.Reason = fmt.Sprintf("%d of %d probes failed (%s); p%s latency %s", stats.Failed, stats.Probes, pct(stats.ErrorRate),
		strings.TrimSuffix(fmt.Sprintf("%g", r.cfg.LatencyPercentile), ".0"), report.FormatDuration(b.Latency(r.cfg.LatencyPercentile)))
	r.log.Printf("Baseline: %s. The new build is judged against it.", rw.Reason)
	return verdict.NewWithBaseline(limits, b)
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
	w := &health.Watch{
		Probe:          r.probe,
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
		OnRound: r.progress(),
	}
	res := w.Run(ctx)
	rw := &report.Watch{
		SHA: sha, Start: res.Start, End: res.End, Planned: d,
		Probes: res.Probes, LiveAfter: res.LiveAfter, Stats: report.StatsOf(res.Probes),
	}
	switch {
	case res.Err != nil:
		rw.Verdict, rw.Reason = run.Cancelled, "the watch was cancelled"
	case len(res.NotLive) > 0:
		rw.Verdict, rw.Rule, rw.Detected = run.Regressed, "startup-timeout", true
		rw.Reason = fmt.Sprintf("no healthy answer from %s within the startup timeout of %s%s",
			strings.Join(res.NotLive, ", "), report.FormatDuration(startup), lastError(res.Probes, res.NotLive[0]))
	case res.Stopped:
		rw.Verdict, rw.Rule, rw.Reason, rw.Detected = run.Regressed, last.Rule, last.Reason, true
	default:
		last = eng.Finish()
		rw.Rule, rw.Reason = last.Rule, last.Reason
		rw.Verdict = run.Healthy
		if last.Outcome == verdict.Regressed {
			rw.Verdict, rw.Detected = run.Regressed, true
		}
	}
	return rw
}

// shortWhy says in a few words why a watch regressed, for GitHub's
// 140-character descriptions.
func shortWhy(w *report.Watch, maxLatency time.Duration) string {
	switch w.Rule {
	case "startup-timeout":
		return "no healthy answer within the startup timeout"
	case verdict.RuleLatency, verdict.RuleBaselineLatency:
		return fmt.Sprintf("p95 latency %s (limit %s)", report.FormatDuration(w.Stats.P95), report.FormatDuration(maxLatency))
	}
	return fmt.Sprintf("%d of %d probes failed", w.Stats.Failed, w.Stats.Probes)
}

// lastError describes the last answer a URL gave, for a startup failure.
func lastError(probes []health.Probe, url string) string {
	for i := len(probes) - 1; i >= 0; i-- {
		if p := probes[i]; p.URL == url && p.Error != "" {
			return " (last answer: " + p.Error + ")"
		}
	}
	return ""
}

// progress prints one compact line per round.
func (r *runner) progress() func(health.Round) {
	var judged, failed int
	var latencies []time.Duration
	return func(round health.Round) {
		var marks strings.Builder
		firstErr := ""
		for _, p := range round.Probes {
			switch {
			case p.Phase == health.PhaseStartup:
				marks.WriteString("·")
			case p.Failed:
				marks.WriteString("✗")
			default:
				marks.WriteString("✓")
			}
			if p.Phase == health.PhaseLive {
				judged++
				if p.Failed {
					failed++
				}
				if p.Answered {
					latencies = append(latencies, p.Latency)
				}
			}
			if firstErr == "" && p.Error != "" {
				firstErr = fmt.Sprintf("  %s: %s", p.URL, p.Error)
			}
		}
		line := fmt.Sprintf("  %7s  round %-3d %s", "+"+report.FormatDuration(round.Elapsed), round.N, marks.String())
		if judged > 0 {
			line += fmt.Sprintf("  failed %d/%d (%s)  p95 %s", failed, judged, pct(float64(failed)/float64(judged)), report.FormatDuration(report.Quantile(latencies, 0.95)))
		} else {
			line += "  not live yet"
		}
		r.log.Printf("%s%s", line, firstErr)
	}
}

// warnIfDegraded flags a healthy build whose numbers are above the limits,
// but not with the confidence needed to roll back.
func (r *runner) warnIfDegraded(w *report.Watch) {
	var why []string
	if w.Stats.ErrorRate > r.cfg.MaxErrorRate {
		why = append(why, fmt.Sprintf("%d of %d probes failed (%s), above the allowed %s", w.Stats.Failed, w.Stats.Probes, pct(w.Stats.ErrorRate), pct(r.cfg.MaxErrorRate)))
	}
	if r.cfg.MaxLatency > 0 && w.Stats.P95 > r.cfg.MaxLatency {
		why = append(why, fmt.Sprintf("p95 latency %s is above max-latency %s", report.FormatDuration(w.Stats.P95), report.FormatDuration(r.cfg.MaxLatency)))
	}
	if len(why) > 0 {
		r.warn("Degraded but passing", strings.Join(why, "; ")+"; not enough evidence to call it a regression")
	}
}

func pct(f float64) string {
	return strings.TrimSuffix(fmt.Sprintf("%.1f", f*100), ".0") + "%"
}
