// Package backtest asks what a metrics configuration would have decided on
// an environment's past deploys. For each of immune's last deploys it reads
// the metrics over the deploy's watch window from Prometheus (range queries
// at the configured interval, ${SHA} and ${PREVIOUS_SHA} filled from the
// deployment: metrics.Source.Replay), feeds the looks to the live judge
// (metrics.Judge, with the options a live watch gives it) and sets what
// this configuration decides, and when, beside what was recorded then.
//
// What it can and cannot replay:
//   - Only metrics: health probes and latency are not kept anywhere to be
//     read back. A configuration that also probes keeps their share of
//     the false-alarm allowance, as it would live.
//   - Live, a watch starts when the deploy command ends, which no record
//     says. The replay reads from the deploy's start (its in_progress
//     status, set before the command ran) and starts the watch at the
//     first look where one of the build's metrics has data (the build
//     serving), if that comes within deploy-timeout; else at the start,
//     and the startup grace judges it as live. The watch then lasts
//     duration, and ends early where the next deployment started: after
//     that, production ran something else.
//   - With baseline-duration, production's rate metrics are read over the
//     stretch just before the deploy's start, with ${SHA} = the previous
//     SHA recorded in the deployment.
//   - Canaries and rollbacks are not replayed; GitHub's job deployments and
//     foreign ones are not read (history's rules).
//
// Plan is pure; Run reads GitHub and Prometheus.
package backtest

import (
	"context"
	"fmt"
	"github.com/immune-cd/immune/internal/pct"
	"net/http"
	"strings"
	"time"

	"github.com/immune-cd/immune/internal/clock"
	"github.com/immune-cd/immune/internal/config"
	"github.com/immune-cd/immune/internal/history"
	"github.com/immune-cd/immune/internal/metrics"
	"github.com/immune-cd/immune/internal/promql"
	"github.com/immune-cd/immune/internal/sha"
)

// Settings are the parts of a configuration a backtest replays.
type Settings struct {
	Environment      string
	Specs            []metrics.Spec
	Interval         time.Duration
	Duration         time.Duration
	DeployTimeout    time.Duration
	StartupTimeout   time.Duration
	BaselineDuration time.Duration
	Confidence       float64
	MinRequests      int64
	// Probing: the configuration also probes health URLs. They are not
	// replayed, but take their share of the false-alarm allowance.
	Probing bool
	// Track fills ${TRACK}: "stable" for a configuration with a canary,
	// whose full watch reads the stable fleet.
	Track string
}

// SettingsOf takes a backtest's settings from a configuration, its
// metrics entries as package metrics takes them (watch.Specs).
func SettingsOf(c *config.Config, specs []metrics.Spec) Settings {
	s := Settings{
		Specs:            specs,
		Environment:      c.Environment,
		Interval:         c.Interval,
		Duration:         c.Duration,
		DeployTimeout:    c.DeployTimeout,
		StartupTimeout:   min(c.StartupTimeout, c.Duration),
		BaselineDuration: c.BaselineDuration,
		Confidence:       c.Confidence,
		MinRequests:      int64(c.MinRequests),
		Probing:          len(c.HealthURLs) > 0,
	}
	if c.Canary {
		s.Track = "stable"
	}
	return s
}

// grace is how long a metric may go without data at the start or the end
// of a watch, as the live watch allows.
func (s Settings) grace() time.Duration { return max(s.StartupTimeout, 2*s.Interval) }

// Verdict is what the configuration decides on one deploy now.
type Verdict string

// The verdicts.
const (
	WouldRollBack Verdict = "would-roll-back"
	WouldPass     Verdict = "would-pass"
	// Inconclusive: the judge could not clear the build (too little data).
	Inconclusive Verdict = "inconclusive"
	// Undecided: the build was replaced before the watch would have ended,
	// and nothing regressed it until then.
	Undecided Verdict = "undecided"
	// NotReplayed: the deploy could not be replayed (still running, a
	// query with no value to fill in).
	NotReplayed Verdict = "not-replayed"
)

// Agreement compares the verdict now with the record.
type Agreement string

// The agreements. Empty when the two cannot be compared.
const (
	Agrees Agreement = "agrees"
	// NewAlarm: recorded healthy, would be rolled back now: a false alarm,
	// unless the build really regressed and the record missed it.
	NewAlarm Agreement = "new-alarm"
	// Missed: recorded as regressed, would pass now.
	Missed Agreement = "missed"
)

// Case is one deploy to replay and what is read of it.
type Case struct {
	Deployment history.Deployment
	// Start is the deploy's start; Limit the latest its watch can have
	// ended: deploy-timeout and duration later, or earlier where Cut says.
	Start, Limit time.Time
	Cut          *Cut
	// Skip, when set, says why it is not replayed.
	Skip string
}

// Plan picks the last n of immune's deploys that ran from h (oldest
// first) and lays out the watch each is replayed over. A window never
// reaches past now.
func Plan(h history.Read, n int, s Settings, now time.Time) []Case {
	var idx []int
	for i, d := range h.Deployments {
		if d.Kind == history.KindDeploy && d.Ran() {
			idx = append(idx, i)
		}
	}
	if len(idx) > n {
		idx = idx[len(idx)-n:]
	}
	cases := make([]Case, 0, len(idx))
	for _, i := range idx {
		d := h.Deployments[i]
		c := Case{Deployment: d, Start: d.LiveSince()}
		c.Limit = c.Start.Add(s.DeployTimeout + s.Duration)
		if d.Outcome == history.Running {
			c.Skip = "still running"
		}
		for _, e := range h.Deployments[i+1:] {
			at := e.LiveSince()
			if at.After(c.Start) && at.Before(c.Limit) && (e.Ran() || e.Outcome == history.Running) {
				c.Limit = at
				c.Cut = &Cut{By: describe(e), ID: e.ID, After: at.Sub(c.Start)}
				break
			}
		}
		if now.Before(c.Limit) {
			c.Limit = now
			c.Cut = &Cut{By: CutByNow, After: now.Sub(c.Start)}
		}
		cases = append(cases, c)
	}
	return cases
}

func describe(d history.Deployment) string {
	switch d.Kind {
	case history.KindRollback:
		return "rollback"
	case history.KindCanary:
		return "canary"
	case history.KindBisect:
		return "bisection step"
	}
	return "deploy"
}

// Cut is what ended a replayed watch early.
type Cut struct {
	// By is the kind of the deployment that replaced the build (deploy,
	// rollback, canary), or CutByNow.
	By string `json:"by"`
	// ID is that deployment's.
	ID int64 `json:"deployment_id,omitempty"`
	// After is when, from the watch's start.
	After time.Duration `json:"-"`
}

// CutByNow: the watch would end after now.
const CutByNow = "now"

// Result is what the configuration decides on one deploy, beside the
// record.
type Result struct {
	ID          int64     `json:"deployment_id"`
	SHA         string    `json:"sha"`
	PreviousSHA string    `json:"previous_sha,omitempty"`
	RunURL      string    `json:"run_url,omitempty"`
	Start       time.Time `json:"deploy_start"`
	// Serving is when the watch replayed started, from the deploy's
	// start: the first look where the build's metrics had data.
	Serving time.Duration `json:"-"`
	// Watched is how long the replayed watch lasted (Cut: why shorter).
	Watched time.Duration `json:"-"`
	Cut     *Cut          `json:"cut,omitempty"`
	Looks   int           `json:"looks"`

	Recorded history.Outcome `json:"recorded"`
	// RecordedAfter is when the record ended, from the watch's start
	// (regressed deploys: when it was found to regress).
	RecordedAfter  time.Duration `json:"-"`
	RecordedReason string        `json:"recorded_reason,omitempty"`
	// RecordedShadow: a run in shadow mode recorded it (a regression it
	// would have rolled back, and did not).
	RecordedShadow bool `json:"recorded_in_shadow_mode,omitempty"`

	Verdict Verdict `json:"verdict"`
	// After is when it would have regressed, from the watch's start.
	After     time.Duration `json:"-"`
	Reason    string        `json:"reason"`
	Metrics   []Metric      `json:"metrics,omitempty"`
	Agreement Agreement     `json:"agreement,omitempty"`
	// Baseline says how rate metrics were judged: against production's
	// baseline, or why not.
	Baseline string `json:"baseline,omitempty"`

	// The durations in seconds, for scripts.
	ServingSeconds       float64  `json:"serving_after_seconds"`
	WatchedSeconds       float64  `json:"watched_seconds"`
	RecordedAfterSeconds *float64 `json:"recorded_after_seconds,omitempty"`
	AfterSeconds         *float64 `json:"after_seconds,omitempty"`
}

// Metric is what the replayed watch made of one metric.
type Metric struct {
	Name         string       `json:"name"`
	Kind         metrics.Kind `json:"kind"`
	Looks        int          `json:"looks"`
	NoDataLooks  int          `json:"no_data_looks"`
	Regressed    bool         `json:"regressed,omitempty"`
	Inconclusive string       `json:"inconclusive,omitempty"`
	Summary      string       `json:"summary"`
}

// Report is a backtest of one configuration on one environment.
type Report struct {
	Environment string `json:"environment"`
	// Asked is how many deploys were asked for; Results holds those found,
	// newest first.
	Asked   int      `json:"asked"`
	Results []Result `json:"results"`
	Counts  Counts   `json:"counts"`
	// Config describes the configuration replayed, for people.
	Config []string `json:"config"`
	// Skipped counts the deployments read but not replayed: GitHub's job
	// deployments, foreign ones, and immune's rollbacks, canaries and
	// deploys that never ran.
	SkippedJobs    int `json:"skipped_jobs"`
	SkippedForeign int `json:"skipped_foreign"`
	SkippedOther   int `json:"skipped_other"`
	// Notes say what limits the answer.
	Notes []string `json:"notes,omitempty"`
}

// Counts tallies the verdicts and how they compare with the records.
type Counts struct {
	WouldRollBack int `json:"would_roll_back"`
	WouldPass     int `json:"would_pass"`
	Inconclusive  int `json:"inconclusive"`
	Undecided     int `json:"undecided"`
	NotReplayed   int `json:"not_replayed"`
	Agrees        int `json:"agrees"`
	NewAlarms     int `json:"new_alarms"`
	Missed        int `json:"missed"`
}

// Sources builds a metrics source for specs with vars.
type Sources func(specs []metrics.Spec, vars promql.Vars) (*metrics.Source, error)

// Run reads the history, replays the last n deploys and reports.
func Run(ctx context.Context, r history.Reader, sources Sources, s Settings, n int, now time.Time) (Report, error) {
	h, err := r.History(ctx, history.Query{Max: readMax(n)})
	if err != nil {
		return Report{}, err
	}
	rep := Report{Environment: s.Environment, Asked: n, SkippedJobs: h.Jobs, SkippedForeign: h.Foreign, Config: describeSettings(s)}
	cases := Plan(h, n, s, now)
	rep.SkippedOther = len(h.Deployments) - len(cases)
	if len(cases) < n {
		note := fmt.Sprintf("asked for the last %d deploys, found %d of immune's that ran", n, len(cases))
		if h.Limited != "" {
			note += " (" + h.Limited + ")"
		}
		rep.Notes = append(rep.Notes, note)
	}
	if s.Probing {
		rep.Notes = append(rep.Notes, "health-url is probed live but cannot be replayed: only the metrics are judged here (the probes keep their share of the false-alarm allowance)")
	}
	for i := len(cases) - 1; i >= 0; i-- { // newest first
		if ctx.Err() != nil {
			return rep, ctx.Err()
		}
		res := replay(ctx, sources, s, cases[i])
		rep.Results = append(rep.Results, res)
		rep.Counts.add(res)
	}
	if len(rep.Results) > 0 && rep.Counts.Inconclusive+rep.Counts.NotReplayed == len(rep.Results) {
		rep.Notes = append(rep.Notes, "too little data: no deploy could be judged; check that Prometheus keeps metrics as long as the history goes back, and that the queries match the series of those builds")
	}
	return rep, nil
}

// readMax is how many of immune's deployments are read to find n deploys:
// rollbacks and canaries come between them.
func readMax(n int) int { return min(max(3*n, n+20), history.DefaultMax) }

func (c *Counts) add(r Result) {
	switch r.Verdict {
	case WouldRollBack:
		c.WouldRollBack++
	case WouldPass:
		c.WouldPass++
	case Inconclusive:
		c.Inconclusive++
	case Undecided:
		c.Undecided++
	default:
		c.NotReplayed++
	}
	switch r.Agreement {
	case Agrees:
		c.Agrees++
	case NewAlarm:
		c.NewAlarms++
	case Missed:
		c.Missed++
	}
}

// replay replays one case.
func replay(ctx context.Context, sources Sources, s Settings, c Case) (r Result) {
	d := c.Deployment
	r = Result{ID: d.ID, SHA: d.SHA, PreviousSHA: d.PreviousSHA, RunURL: d.RunURL, Start: c.Start, Cut: c.Cut,
		Recorded: d.Outcome, RecordedReason: d.Description, RecordedShadow: d.Shadow}
	if !d.Ended.IsZero() {
		r.RecordedAfter = d.Ended.Sub(c.Start)
		sec := r.RecordedAfter.Seconds()
		r.RecordedAfterSeconds = &sec
	}
	defer func() {
		r.ServingSeconds, r.WatchedSeconds = r.Serving.Seconds(), r.Watched.Seconds()
		if r.Verdict == WouldRollBack {
			sec := r.After.Seconds()
			r.AfterSeconds = &sec
		}
		r.Agreement = agreement(r.Recorded, r.Verdict)
	}()
	if c.Skip != "" {
		r.Verdict, r.Reason = NotReplayed, c.Skip
		return r
	}
	vars := promql.Vars{SHA: d.SHA, PreviousSHA: d.PreviousSHA, Environment: s.Environment, Track: s.Track}
	src, err := sources(s.Specs, vars)
	if err != nil {
		r.Verdict, r.Reason = NotReplayed, "the metrics cannot be read for this deploy: "+err.Error()
		return r
	}
	base, why := baseline(ctx, sources, s, c)
	r.Baseline = why
	looks := src.Replay(ctx, c.Start, s.Interval, steps(c.Limit.Sub(c.Start), s.Interval))
	start := serving(looks, c.Start, s.DeployTimeout)
	r.Serving = start.Sub(c.Start)
	end := start.Add(s.Duration)
	if c.Cut == nil || end.Before(c.Limit) {
		r.Cut = nil
	} else {
		end = c.Limit
	}
	r.Watched = end.Sub(start)
	j := metrics.NewJudge(s.Specs, metrics.JudgeOptions{
		Confidence:  s.Confidence,
		Signals:     metrics.Signals(s.Probing, s.Specs),
		MinRequests: s.MinRequests,
		Start:       start,
		Grace:       s.grace(),
		Baselines:   base,
	})
	var reg *metrics.Regression
	var outcomes []metrics.Outcome
	for _, l := range looks {
		if l.At.Before(start) {
			continue
		}
		if !l.At.Before(end) {
			break
		}
		r.Looks++
		if reg = j.Observe(l); reg != nil {
			r.After, r.Watched = l.At.Sub(c.Start), l.At.Sub(start)
			outcomes = j.Finish(l.At, false)
			break
		}
	}
	if reg == nil {
		outcomes = j.Finish(end, true)
	}
	r.Metrics = metricsOf(outcomes)
	switch why := metrics.Inconclusive(outcomes); {
	case reg != nil:
		r.Verdict, r.Reason = WouldRollBack, reg.Reason
	case r.Cut != nil:
		// The reasons a shortened watch cannot clear the build are the
		// cut's, not the data's.
		r.Verdict = Undecided
		r.Reason = "so far: " + summaries(outcomes)
	case len(why) > 0:
		r.Verdict, r.Reason = Inconclusive, strings.Join(why, "; ")
	default:
		r.Verdict, r.Reason = WouldPass, summaries(outcomes)
	}
	return r
}

func summaries(outcomes []metrics.Outcome) string {
	parts := make([]string, 0, len(outcomes))
	for _, o := range outcomes {
		parts = append(parts, o.Summary())
	}
	return strings.Join(parts, "; ")
}

// serving is when the replayed watch starts: the first look where one of
// the build's metrics has data, if that comes within deployTimeout of the
// deploy's start (the deploy command ran until then, at most that long);
// else the start, where the startup grace judges the silence as live.
func serving(looks []metrics.Look, start time.Time, deployTimeout time.Duration) time.Time {
	for _, l := range looks {
		if l.At.Sub(start) > deployTimeout {
			break
		}
		for _, rd := range l.Readings {
			if rd.HasData() {
				return l.At
			}
		}
	}
	return start
}

// baseline reads production's rate metrics before the deploy, as the live
// baseline does, when the configuration has one.
func baseline(ctx context.Context, sources Sources, s Settings, c Case) (*metrics.Baselines, string) {
	if s.BaselineDuration <= 0 {
		return nil, ""
	}
	base := metrics.NewBaselines(s.Specs, s.Confidence, metrics.Signals(s.Probing, s.Specs))
	if len(base.Specs()) == 0 {
		return nil, ""
	}
	prev := c.Deployment.PreviousSHA
	if prev == "" {
		return nil, "no metrics baseline: the deployment records no previous SHA to fill ${SHA} with; the rate metrics are judged by their absolute limits"
	}
	src, err := sources(base.Specs(), promql.Vars{SHA: prev, Environment: s.Environment, Track: s.Track})
	if err != nil {
		return nil, "no metrics baseline: " + err.Error()
	}
	for _, l := range src.Replay(ctx, c.Start.Add(-s.BaselineDuration), s.Interval, steps(s.BaselineDuration, s.Interval)) {
		base.Observe(l)
	}
	var parts []string
	for _, name := range base.Names() {
		if ok, why := base.Usable(name, s.MinRequests); ok {
			parts = append(parts, fmt.Sprintf("%s against production (%s)", name, sha.Short(prev)))
		} else {
			parts = append(parts, fmt.Sprintf("%s absolute: %s", name, why))
		}
	}
	return base, strings.Join(parts, "; ")
}

// steps is how many looks a watch of d makes at interval: one at its start
// and one every interval while the watch lasts.
func steps(d, interval time.Duration) int {
	if d <= 0 {
		return 0
	}
	return int((d + interval - 1) / interval)
}

func agreement(recorded history.Outcome, now Verdict) Agreement {
	switch {
	case recorded == history.Healthy && now == WouldPass, recorded == history.Failed && now == WouldRollBack:
		return Agrees
	case recorded == history.Healthy && now == WouldRollBack:
		return NewAlarm
	case recorded == history.Failed && now == WouldPass:
		return Missed
	}
	return ""
}

func metricsOf(outcomes []metrics.Outcome) []Metric {
	out := make([]Metric, 0, len(outcomes))
	for _, o := range outcomes {
		out = append(out, Metric{Name: o.Metric, Kind: o.Kind, Looks: o.Looks, NoDataLooks: o.NoDataLooks(),
			Regressed: o.Regressed, Inconclusive: o.Inconclusive, Summary: o.Summary()})
	}
	return out
}

// describeSettings says what is replayed, for people.
func describeSettings(s Settings) []string {
	out := []string{fmt.Sprintf("a look every %s for %s (startup grace %s), confidence %s", short(s.Interval), short(s.Duration), short(s.grace()), pct.Of(s.Confidence, 4))}
	for _, m := range s.Specs {
		if m.Kind() == metrics.KindRate {
			out = append(out, fmt.Sprintf("metric %s: errors at most %s", m.Name, pct.Of(m.MaxErrorRate, 4)))
			continue
		}
		var b []string
		if m.Min != nil {
			b = append(b, fmt.Sprintf("at least %g", *m.Min))
		}
		if m.Max != nil {
			b = append(b, fmt.Sprintf("at most %g", *m.Max))
		}
		c := m.Consecutive
		if c <= 0 {
			c = metrics.DefaultConsecutive
		}
		out = append(out, fmt.Sprintf("metric %s: %s, %d looks in a row", m.Name, strings.Join(b, " and "), c))
	}
	if s.BaselineDuration > 0 {
		out = append(out, fmt.Sprintf("rate metrics judged against production's %s before each deploy", short(s.BaselineDuration)))
	}
	return out
}

// short is a configured duration as written: 30s, 15m, 1h30m.
func short(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}

// PrometheusSources reads the metrics from the Prometheus c names (its
// URL and headers), each request bounded by timeout.
func PrometheusSources(c *config.Config, hc *http.Client, clk clock.Clock, timeout time.Duration) Sources {
	header := http.Header{}
	for _, h := range c.PrometheusHeaders {
		header.Add(h.Name, h.Value)
	}
	return func(specs []metrics.Spec, vars promql.Vars) (*metrics.Source, error) {
		return metrics.New(specs, vars, metrics.Options{URL: c.PrometheusURL, Header: header, HTTP: hc, Clock: clk, RequestTimeout: timeout})
	}
}
