package watch

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/immune-cd/immune/internal/health"
	"github.com/immune-cd/immune/internal/metrics"
	"github.com/immune-cd/immune/internal/pct"
	"github.com/immune-cd/immune/internal/report"
	"github.com/immune-cd/immune/internal/run"
	"github.com/immune-cd/immune/internal/verdict"
)

// Baseline is production before the deploy, the yardstick the new build is
// judged against (baseline-duration).
type Baseline struct {
	// Watch is what the baseline's watch saw.
	Watch *report.Watch
	// engine judges the new build's probes against production's; nil for
	// the absolute limits (no health URLs, or production already failing).
	engine *verdict.Engine
	// metrics are production's rate metrics; nil without.
	metrics *metrics.Baselines
}

// Baseline probes the current production, which runs target, for
// baseline-duration before the deploy (and reads its rate metrics). Without
// a baseline configured, or anything to read, it returns nil; the new build
// is then judged by the absolute limits.
func (w *Watcher) Baseline(ctx context.Context, target string) *Baseline {
	cfg := w.cfg
	d := cfg.BaselineDuration
	if d <= 0 {
		return nil
	}
	probing := len(cfg.HealthURLs) > 0
	mw := w.metricsBaseline(target)
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
	w.d.Log.Printf("Baseline: %s the current production for %s before the deploy.", strings.Join(what, " and "), d)
	var b *verdict.Baseline
	if probing {
		b = verdict.NewBaseline(w.limits(d))
	}
	log := report.NewProbeLog(w.d.Clock.Now(), 0, cfg.LatencyPercentile)
	hw := w.healthWatch(cfg.HealthURLs, target, d, 0)
	hw.VersionAware = false
	hw.Judge = func(p health.Probe) bool { b.Observe(observation(p)); return false }
	hw.Record = log.Add
	if mw != nil {
		hw.Look = mw.look
	}
	res := hw.Run(ctx)
	rw := &report.Watch{SHA: target, Start: res.Start, End: res.End, Planned: d}
	log.Fill(rw)
	out := &Baseline{Watch: rw}
	if ctx.Err() != nil {
		record(rw, Outcome{Verdict: run.Cancelled, Reason: "the baseline was cancelled"})
		return out
	}
	var reasons []string
	if mw != nil {
		var outcomes []metrics.Outcome
		rw.Metrics, outcomes = mw.finish(res.End, true)
		out.metrics = mw.base
		for _, o := range outcomes {
			line := fmt.Sprintf("metric %s: %d of %d requests failed (%s); %s", o.Metric, o.Errors, o.Requests, ratioText(o.Errors, o.Requests), o.Baseline)
			w.d.Log.Printf("Baseline: %s.", line)
			reasons = append(reasons, line)
		}
	}
	if !probing {
		record(rw, Outcome{Verdict: run.Healthy, Reason: strings.Join(reasons, "; ")})
		return out
	}
	if bad, why := b.Unhealthy(); bad {
		record(rw, Outcome{Verdict: run.Regressed, Reason: strings.Join(append([]string{why}, reasons...), "; ")})
		w.d.Log.Warn("Production was already unhealthy", why+"; the deploy goes ahead (it may be the fix) and is judged by the absolute limits")
		return out
	}
	probes := fmt.Sprintf("%d of %d probes failed (%s); p%s latency %s", b.Failures(), b.Probes(), pct.Of(b.FailureRate(), 1),
		trimFloat(cfg.LatencyPercentile), report.FormatDuration(b.Latency(cfg.LatencyPercentile)))
	record(rw, Outcome{Verdict: run.Healthy, Reason: strings.Join(append([]string{probes}, reasons...), "; ")})
	w.d.Log.Printf("Baseline: %s. The new build is judged against it.", probes)
	out.engine = verdict.NewWithBaseline(w.limits(cfg.Duration), b)
	return out
}

// ratioText says bad out of n as a percentage, or that there were no
// requests.
func ratioText(bad, n int64) string {
	if n == 0 {
		return "no requests"
	}
	return pct.Ratio(bad, n, 1)
}

// trimFloat prints a percentile as its name shows it: 95, 99.9.
func trimFloat(f float64) string { return strconv.FormatFloat(f, 'f', -1, 64) }
