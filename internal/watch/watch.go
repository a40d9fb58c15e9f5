// Package watch runs one watch of a build and judges it. Each signal — the
// health probes, each Prometheus metric, the startup — yields an Outcome (a
// verdict, the rule, the reason, the evidence), and Worst combines them, as
// Argo Rollouts' analysis assesses each metric and keeps the worst. One set
// of rules serves the watches of a run: the new build's (Run), production's
// before the deploy (Baseline), and a canary's against its control
// (Canary). The run hands a watch its configuration and dependencies and
// gets back what was seen and decided, as the report shows it.
package watch

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/immune-cd/immune/internal/clock"
	"github.com/immune-cd/immune/internal/config"
	"github.com/immune-cd/immune/internal/health"
	"github.com/immune-cd/immune/internal/metrics"
	"github.com/immune-cd/immune/internal/report"
	"github.com/immune-cd/immune/internal/run"
	"github.com/immune-cd/immune/internal/verdict"
	"github.com/immune-cd/immune/internal/version"
)

// Log is the run's log, as a watch writes to it.
type Log interface {
	Printf(format string, args ...any)
	Error(title, msg string)
	// Warn and Note also go into the report.
	Warn(title, msg string)
	Note(msg string)
}

// Deps are what a watch needs of the world.
type Deps struct {
	// Probe probes one URL, expecting the version want; nil probes over
	// HTTP as the configuration says.
	Probe func(ctx context.Context, url, want string) health.Probe
	// Go starts a probe (see health.Watch.Go); nil starts each on a
	// goroutine of its own.
	Go    func(probe func())
	Clock clock.Clock
	// HTTP reaches Prometheus.
	HTTP *http.Client
	Log  Log
}

// Watcher runs the watches of one run.
type Watcher struct {
	cfg *config.Config
	d   Deps
}

// New returns a Watcher for a run configured by cfg.
func New(cfg *config.Config, d Deps) *Watcher {
	if d.Probe == nil {
		d.Probe = prober(cfg, d).Probe
	}
	return &Watcher{cfg: cfg, d: d}
}

// prober probes the health URLs as the configuration says: its headers,
// expected statuses, body and version, without following redirects.
func prober(cfg *config.Config, d Deps) *health.Prober {
	header := http.Header{}
	for _, h := range cfg.Headers {
		header.Add(h.Name, h.Value)
	}
	client := d.HTTP
	if client == nil {
		client = http.DefaultClient
	}
	return &health.Prober{
		Client:    health.NoRedirects(client),
		Clock:     d.Clock,
		Timeout:   cfg.Timeout,
		Header:    header,
		Accept:    cfg.ExpectStatus.Contains,
		Body:      cfg.ExpectBody,
		Version:   health.VersionSource(cfg.ExpectVersion),
		UserAgent: "immune/" + version.String(),
	}
}

// Target is what one watch looks at.
type Target struct {
	// Title opens the watch's log line ("Watching 4d8b3f2").
	Title string
	// SHA is the build expected to answer, which replaced Previous ("" when
	// not known).
	SHA, Previous string
	Duration      time.Duration
	// Baseline, when set, judges the probes and the rate metrics against
	// production's, read before the deploy.
	Baseline *Baseline
}

// Signal names what an Outcome is about.
type Signal int

// The signals of a watch.
const (
	SignalWatch   Signal = iota // the watch as a whole: cancelled, or combined by Worst
	SignalStartup               // the build never answered healthy in time
	SignalProbes                // the health probes, all URLs together
	SignalMetrics               // the Prometheus metrics
)

// Outcome is what one signal, or the whole watch, made of the build.
type Outcome struct {
	Signal  Signal
	Verdict run.Verdict // healthy, regressed, inconclusive or cancelled
	Rule    string
	Reason  string
	// Why says it in a few words, for GitHub's 140-character descriptions
	// (regressed and inconclusive outcomes).
	Why      string
	Evidence *verdict.Evidence
	// Metric is the metric that regressed the build ("" for the probes).
	Metric string
	// Detected: the watch ended early on this regression.
	Detected bool
}

// rank orders verdicts from the best to the worst.
func rank(v run.Verdict) int {
	switch v {
	case run.Healthy:
		return 0
	case run.Inconclusive:
		return 1
	case run.Regressed:
		return 2
	}
	return 3 // cancelled
}

// Worst combines the outcomes of a watch's signals: the worst verdict
// decides. The first regression (in the order given: the startup, the
// probes, the metrics) is the watch's; outcomes that cannot clear the build
// make it inconclusive together, subject ("" or "the canary") saying what
// was not judged, with the probes' reason when they passed; healthy
// outcomes together say why the build is healthy.
func Worst(subject string, outs ...Outcome) Outcome {
	worst := Outcome{Signal: SignalWatch, Verdict: run.Healthy}
	var probes *Outcome
	for i, o := range outs {
		if rank(o.Verdict) > rank(worst.Verdict) {
			worst = o
		}
		if o.Signal == SignalProbes && probes == nil {
			probes = &outs[i]
		}
	}
	switch worst.Verdict {
	case run.Healthy:
		var why []string
		for _, o := range outs {
			if o.Reason != "" {
				why = append(why, o.Reason)
			}
		}
		if probes != nil {
			// The probes' rule and evidence stand behind a healthy watch.
			worst = *probes
		}
		worst.Reason = strings.Join(why, "; ")
	case run.Inconclusive:
		var why []string
		for _, o := range outs {
			if o.Verdict == run.Inconclusive {
				why = append(why, o.Why)
			}
		}
		prefix := "not judged: "
		if subject != "" {
			prefix = subject + " was not judged: "
		}
		worst = Outcome{Signal: SignalWatch, Verdict: run.Inconclusive, Rule: "inconclusive", Why: why[0],
			Reason: prefix + strings.Join(why, "; ")}
		if probes != nil {
			worst.Evidence = probes.Evidence
			if probes.Verdict == run.Healthy {
				worst.Reason += "; the health probes passed: " + probes.Reason
			}
		}
	}
	return worst
}

// record fills in a watch's record with the outcome that decided it: the
// one place a watch's verdict is set.
func record(rw *report.Watch, o Outcome) {
	rw.Verdict, rw.Rule, rw.Reason, rw.Why = o.Verdict, o.Rule, o.Reason, o.Why
	rw.Evidence, rw.Metric, rw.Detected = o.Evidence, o.Metric, o.Detected
	if o.Verdict == run.Regressed && rw.Why == "" {
		rw.Why = probesWhy(rw)
	}
}

// ended is the outcome of a watch that ended before its time for a reason
// of its own (cancelled, or a URL that never came up), and false when it
// did not. subject names what was watched in the reasons ("the canary"),
// "" for the build itself.
func ended(res health.Result, startup time.Duration, subject string) (Outcome, bool) {
	switch {
	case res.Err != nil:
		o := Outcome{Signal: SignalWatch, Verdict: run.Cancelled, Reason: "the watch was cancelled"}
		if subject != "" {
			o.Reason = "the watch of " + subject + " was cancelled"
		}
		return o, true
	case len(res.NotLive) > 0:
		lastErr := ""
		if e := res.LastError[res.NotLive[0]]; e != "" {
			lastErr = " (last answer: " + e + ")"
		}
		o := Outcome{Signal: SignalStartup, Verdict: run.Regressed, Rule: "startup-timeout", Detected: true,
			Why: "no healthy answer within the startup timeout",
			Reason: fmt.Sprintf("no healthy answer from %s within the startup timeout of %s%s",
				strings.Join(res.NotLive, ", "), report.FormatDuration(startup), lastErr)}
		if subject != "" {
			o.Reason = subject + ": " + o.Reason
		}
		return o, true
	}
	return Outcome{}, false
}

// decided is the outcome of a verdict engine's decision about the probes.
func decided(d verdict.Decision, detected bool) Outcome {
	o := Outcome{Signal: SignalProbes, Verdict: run.Healthy, Rule: d.Rule, Reason: d.Reason, Detected: detected}
	ev := d.Evidence
	o.Evidence = &ev
	switch d.Outcome {
	case verdict.Regressed:
		o.Verdict = run.Regressed
		o.Why = latencyWhy(d.Rule, &ev)
	case verdict.Inconclusive: // a canary's control that never answered healthily
		o.Verdict, o.Why = run.Inconclusive, d.Reason
	}
	return o
}

// regressedOn is the outcome of a metric that regressed the build.
func regressedOn(m *metrics.Regression) Outcome {
	o := Outcome{Signal: SignalMetrics, Verdict: run.Regressed, Rule: m.Rule, Reason: m.Reason, Evidence: m.Evidence,
		Metric: m.Metric, Detected: true}
	switch {
	case m.Rule == metrics.RuleThreshold:
		o.Why = fmt.Sprintf("metric %s out of bounds in a row", m.Metric)
	case m.Evidence != nil:
		o.Why = fmt.Sprintf("metric %s: %d of %d requests failed", m.Metric, m.Evidence.Bad, m.Evidence.Judged)
	}
	return o
}

// metricOutcomes are the outcomes of the metrics that did not regress the
// build: each inconclusive one, and the healthy ones with their summaries;
// err is why the metrics could not be read at all.
func metricOutcomes(err error, summaries []string, outcomes []metrics.Outcome) []Outcome {
	var outs []Outcome
	if err != nil {
		why := "the metrics could not be read: " + err.Error()
		outs = append(outs, Outcome{Signal: SignalMetrics, Verdict: run.Inconclusive, Why: why, Reason: why})
	}
	for _, why := range metrics.Inconclusive(outcomes) {
		outs = append(outs, Outcome{Signal: SignalMetrics, Verdict: run.Inconclusive, Why: why, Reason: why})
	}
	for _, s := range summaries {
		outs = append(outs, Outcome{Signal: SignalMetrics, Verdict: run.Healthy, Reason: s})
	}
	return outs
}

// latencyWhy says in a few words why the latency rules regressed a build,
// "" for the other rules.
func latencyWhy(rule string, e *verdict.Evidence) string {
	switch rule {
	case verdict.RuleLatency, verdict.RuleBaselineLatency:
		return fmt.Sprintf("p%s latency %s (limit %s)", trimFloat(e.Percentile), report.FormatDuration(e.Latency), report.FormatDuration(e.MaxLatency))
	}
	return ""
}

// probesWhy says in a few words how many probes failed.
func probesWhy(w *report.Watch) string {
	return fmt.Sprintf("%d of %d probes failed", w.Stats.Failed, w.Stats.Probes)
}

// Run watches t.SHA for t.Duration and returns what it saw and decided:
// with health URLs, their probes judged by the verdict engine (against the
// baseline when set); with metrics, a look per interval. Either signal can
// regress the build; a metric that cannot clear it makes the watch
// inconclusive unless one did.
func (w *Watcher) Run(ctx context.Context, t Target) *report.Watch {
	cfg := w.cfg
	probing := len(cfg.HealthURLs) > 0
	var eng *verdict.Engine
	var base *metrics.Baselines
	if t.Baseline != nil {
		eng, base = t.Baseline.engine, t.Baseline.metrics
	}
	if eng == nil && probing {
		eng = verdict.New(w.limits(t.Duration))
	}
	var last verdict.Decision
	startup := min(cfg.StartupTimeout, t.Duration)
	var signals []string
	if probing {
		signals = append(signals, fmt.Sprintf("%d URL(s)", len(cfg.HealthURLs)))
	}
	if w.hasMetrics() {
		signals = append(signals, fmt.Sprintf("%d metric(s)", len(cfg.Metrics)))
	}
	w.d.Log.Printf("%s: %s every %s for %s (startup grace %s).", t.Title, strings.Join(signals, " and "), cfg.Interval, t.Duration, startup)
	log := report.NewProbeLog(w.d.Clock.Now(), 0, cfg.LatencyPercentile)
	hw := w.healthWatch(cfg.HealthURLs, t.SHA, t.Duration, startup)
	hw.Judge = func(p health.Probe) bool {
		last = eng.Observe(observation(p))
		return last.Outcome == verdict.Regressed
	}
	hw.Record = log.Add
	var mw *metricWatch
	var metricsErr error
	if w.hasMetrics() {
		if mw, metricsErr = w.newMetricWatch(w.metricSpecs(), t.SHA, t.Previous, base, true); metricsErr == nil {
			hw.Look = mw.look
		} else {
			w.d.Log.Error("Metrics not read", metricsErr.Error())
		}
	}
	res := hw.Run(ctx)
	rw := &report.Watch{SHA: t.SHA, Start: res.Start, End: res.End, Planned: t.Duration, LiveAfter: res.LiveAfter}
	log.Fill(rw)
	w.noteSkipped(res, "")
	// final: the watch ran its course and no signal regressed the build;
	// only then can a metric be found inconclusive.
	final := res.Err == nil && len(res.NotLive) == 0 && !res.Stopped
	var mreg *metrics.Regression
	if mw != nil {
		mreg = mw.judge.Regression()
	}
	var outs []Outcome
	if o, ok := ended(res, startup, ""); ok {
		outs = append(outs, o)
	} else if res.Stopped && last.Outcome == verdict.Regressed {
		outs = append(outs, decided(last, true))
	} else if res.Stopped && mreg != nil {
		outs = append(outs, regressedOn(mreg))
	} else if probing {
		fin := eng.Finish()
		regressed := fin.Outcome == verdict.Regressed
		final = final && !regressed
		outs = append(outs, decided(fin, regressed))
	}
	if mw != nil {
		var outcomes []metrics.Outcome
		rw.Metrics, outcomes = mw.finish(res.End, final)
		if final {
			outs = append(outs, metricOutcomes(nil, summaries(outcomes), outcomes)...)
		}
	} else if final && metricsErr != nil {
		outs = append(outs, metricOutcomes(metricsErr, nil, nil)...)
	}
	record(rw, Worst("", outs...))
	return rw
}

func summaries(outcomes []metrics.Outcome) []string {
	var s []string
	for _, o := range outcomes {
		s = append(s, o.Summary())
	}
	return s
}

// healthWatch is the part of a health.Watch every watch shares.
func (w *Watcher) healthWatch(urls []string, want string, d, startup time.Duration) *health.Watch {
	return &health.Watch{
		Probe:          w.d.Probe,
		Go:             w.d.Go,
		Clock:          w.d.Clock,
		URLs:           urls,
		Want:           want,
		VersionAware:   w.cfg.ExpectVersion.Kind != "",
		Interval:       w.cfg.Interval,
		Duration:       d,
		StartupTimeout: startup,
		OnRound:        w.progress(),
	}
}

// limits are the verdict engine's limits for a watch of length d.
func (w *Watcher) limits(d time.Duration) verdict.Limits {
	c := w.cfg
	return verdict.Limits{
		MaxErrorRate:        c.MaxErrorRate,
		ConsecutiveFailures: c.ConsecutiveFailures,
		MaxLatency:          c.MaxLatency,
		LatencyPercentile:   c.LatencyPercentile,
		Confidence:          c.Confidence,
		MaxLatencyIncrease:  c.MaxLatencyIncrease,
		Horizon:             int((d + c.Interval - 1) / c.Interval),
		Targets:             len(c.HealthURLs),
		Signals:             w.countSignals(c.HealthURLs),
	}
}

// countSignals counts the signals of a watch that probes urls and run an
// error-rate test: the health probes (all URLs together) and each rate
// metric but the shadow ones (metrics.Signals). Each takes an equal share
// of the error rule's false-alarm allowance (see verdict.Limits.Signals).
func (w *Watcher) countSignals(urls []string) int {
	return metrics.Signals(len(urls) > 0, w.metricSpecs())
}

// observation turns a probe into what the verdict engine judges.
func observation(p health.Probe) verdict.Observation {
	var latency time.Duration
	if p.Answered {
		latency = p.Latency
	}
	return verdict.Probe(p.URL, p.Failed, latency)
}

// progress prints one compact line per round.
func (w *Watcher) progress() func(health.Round) {
	p := report.NewProgress(w.cfg.LatencyPercentile)
	return func(round health.Round) { w.d.Log.Printf("%s", p.Line(round)) }
}

// canaryProgress prints one line per round of a canary's watch, the
// canary's marks and counts apart from the control's.
func (w *Watcher) canaryProgress() func(health.Round) {
	p := report.NewCanaryProgress(w.cfg.LatencyPercentile, w.cfg.CanaryHealthURLs)
	return func(round health.Round) { w.d.Log.Printf("%s", p.Line(round)) }
}

// noteSkipped notes the probes and looks a watch could not make on time
// (skipped, never made up in a burst). what names the watch ("canary ").
func (w *Watcher) noteSkipped(res health.Result, what string) {
	if res.Skipped > 0 {
		w.d.Log.Note(fmt.Sprintf("%d of %d scheduled probes of the %swatch were skipped: the machine could not start them within half an interval of their time", res.Skipped, res.Skipped+res.Probes, what))
	}
	if res.SkippedLooks > 0 {
		w.d.Log.Note(fmt.Sprintf("%d of %d scheduled looks at the %smetrics were skipped: a look took longer than the interval", res.SkippedLooks, res.SkippedLooks+res.Looks, what))
	}
}
