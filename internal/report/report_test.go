package report

import (
	"encoding/json"
	"flag"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/immune-cd/immune/internal/health"
	"github.com/immune-cd/immune/internal/metrics"
	"github.com/immune-cd/immune/internal/pct"
	"github.com/immune-cd/immune/internal/run"
	"github.com/immune-cd/immune/internal/verdict"
)

var update = flag.Bool("update", false, "rewrite the golden files")

const (
	newSHA  = "4d8b3f2e1c0a9b8c7d6e5f4a3b2c1d0e9f8a7b6c"
	goodSHA = "9f2c1e7a3b4d5c6e7f8091a2b3c4d5e6f7081920"
	// A batch's culprit and the good part before it.
	culpritSHA = "c3d4e5f60718293a4b5c6d7e8f9a0b1c2d3e4f50"
	shippedSHA = "2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e"
	url        = "https://shop.example.com/healthz"
)

var t0 = time.Date(2026, 11, 25, 10, 2, 30, 0, time.UTC)

// probes makes a watch's probes: one per 5s round, failing where pattern
// has an "x", with latencies from ms.
func probes(start time.Time, pattern string, ms ...int) []health.Probe {
	var ps []health.Probe
	for i, c := range pattern {
		p := health.Probe{
			Time: start.Add(time.Duration(i) * 5 * time.Second), Round: i + 1, URL: url,
			Status: 200, Answered: true, Phase: health.PhaseLive,
			Latency: time.Duration(ms[i%len(ms)]) * time.Millisecond,
		}
		if c == 'x' {
			p.Status, p.Failed, p.Error = 503, true, "status 503 is not an expected status"
		}
		if c == 's' {
			p.Phase, p.Failed, p.Error = PhaseStartupName, true, "connection refused"
			p.Answered, p.Status, p.Latency = false, 0, 0
		}
		ps = append(ps, p)
	}
	return ps
}

// PhaseStartupName is health.PhaseStartup, named for the table above.
const PhaseStartupName = health.PhaseStartup

func watchOf(commit string, start time.Time, planned time.Duration, pattern string, verdict run.Verdict, reason string, detected bool, ms ...int) *Watch {
	ps := probes(start, pattern, ms...)
	w := &Watch{SHA: commit, Start: start, End: ps[len(ps)-1].Time.Add(40 * time.Millisecond), Planned: planned, Probes: ps,
		Verdict: verdict, Reason: reason, Detected: detected, Stats: StatsOf(ps)}
	return w
}

// judge runs the verdict engine over a watch's probes as a watch does
// (startup probes are not judged): the watch stops at the first
// regression, whose probes after it are never made, and its verdict, reason
// and evidence are the engine's. The fixtures' numbers are what the real
// code makes of their probes, never written by hand.
func judge(w *Watch) *Watch {
	eng := verdict.New(limitsOf(w))
	var d verdict.Decision
	for i, p := range w.Probes {
		if p.Phase != health.PhaseLive {
			continue
		}
		d = eng.Observe(observe(p))
		if d.Outcome == verdict.Regressed {
			w.Probes, w.Detected, w.End = w.Probes[:i+1], true, p.Time.Add(40*time.Millisecond)
			break
		}
	}
	if d.Outcome != verdict.Regressed {
		d = eng.Finish()
	}
	w.Verdict, w.Rule, w.Reason = run.Healthy, "", d.Reason
	if d.Outcome == verdict.Regressed {
		w.Verdict, w.Rule = run.Regressed, d.Rule
	}
	ev := d.Evidence
	w.Evidence, w.Stats = &ev, StatsOf(w.Probes)
	w.LiveAfter = map[string]time.Duration{}
	for _, p := range w.Probes {
		if p.Phase == health.PhaseLive {
			w.LiveAfter[p.URL] = p.Time.Sub(w.Start)
			break
		}
	}
	return w
}

// limitsOf are the action's default limits for a watch of one URL every 5s.
func limitsOf(w *Watch) verdict.Limits {
	l := verdict.DefaultLimits()
	l.Horizon, l.Targets, l.Signals = int(w.Planned/(5*time.Second)), 1, 1
	return l
}

func observe(p health.Probe) verdict.Observation {
	var latency time.Duration
	if p.Answered {
		latency = p.Latency
	}
	return verdict.Probe(p.URL, p.Failed, latency)
}

// judgeCanary runs the canary's judgment over both tracks round by round,
// as a canary's watch does: it stops at a regression or, with early
// promotion, once the canary is shown no worse. The canary's watch gets
// the verdict and reason; both are cut to the rounds made, and the series
// is built from them.
func judgeCanary(c *Canary, early bool) {
	cw, ctl := c.Watch, c.Control
	eng := verdict.NewCanary(limitsOf(cw), verdict.CanaryOptions{PromoteEarly: early})
	d := verdict.Decision{Outcome: verdict.Continue}
	rounds := min(len(cw.Probes), len(ctl.Probes))
	series := &CanarySeries{}
	n := 0
	for n < rounds && d.Outcome == verdict.Continue {
		cp, xp := cw.Probes[n], ctl.Probes[n]
		pt := CanaryPoint{Elapsed: cp.Time.Sub(cw.Start)}
		var canary, control []verdict.Observation
		if cp.Phase == health.PhaseLive {
			canary = append(canary, observe(cp))
			pt.Canary++
			if cp.Failed {
				pt.CanaryFailed++
			}
			pt.CanarySlowest = cp.Latency
		}
		if xp.Phase == health.PhaseLive {
			control = append(control, observe(xp))
			pt.Control++
			if xp.Failed {
				pt.ControlFailed++
			}
			pt.ControlSlowest = xp.Latency
		}
		series.Add(pt)
		d = eng.Look(canary, control)
		if p, ok := eng.NoWorse(); ok && early && d.Outcome == verdict.Continue {
			d = p
			c.Promoted, c.Early = true, true
		}
		n++
	}
	if d.Outcome == verdict.Continue {
		d = eng.Finish()
		c.Promoted = d.Outcome == verdict.Healthy
	}
	cw.Probes, ctl.Probes = cw.Probes[:n], ctl.Probes[:n]
	end := cw.Probes[n-1].Time.Add(40 * time.Millisecond)
	cw.End, ctl.End = end, end
	cw.Verdict, cw.Reason, cw.Rule = run.Healthy, d.Reason, d.Rule
	if d.Outcome == verdict.Regressed {
		cw.Verdict, cw.Detected = run.Regressed, true
	}
	ev := d.Evidence
	cw.Evidence, cw.Stats, ctl.Stats = &ev, StatsOf(cw.Probes), StatsOf(ctl.Probes)
	c.Series = series
}

func links() Links {
	return Links{
		Run:                "https://github.com/octo-org/shop/actions/runs/7412345678",
		Commit:             "https://github.com/octo-org/shop/commit/" + newSHA,
		PreviousCommit:     "https://github.com/octo-org/shop/commit/" + goodSHA,
		Deployment:         "https://github.com/octo-org/shop/deployments",
		RollbackDeployment: "https://github.com/octo-org/shop/deployments",
	}
}

// canaryLinks are a canary run's links: no rollback deployment.
func canaryLinks() Links {
	l := links()
	l.RollbackDeployment = ""
	return l
}

func runs() map[string]*Run {
	deploy := &Step{SHA: newSHA, Start: t0, End: t0.Add(12 * time.Second)}
	watchStart := t0.Add(12 * time.Second)
	healthyWatch := judge(watchOf(newSHA, watchStart, time.Minute, "....x.......", "", "", false, 40, 42, 38, 61, 45))
	healthy := &Run{
		Mode: "deploy", Environment: "production", Stage: run.StageFull, SHA: newSHA, PreviousSHA: goodSHA, PreviousSource: "GitHub deployment 1000001",
		Verdict: healthyWatch.Verdict, Reason: healthyWatch.Reason,
		Start: t0, End: watchStart.Add(time.Minute), Deploy: deploy, Links: links(), DeploymentID: 1000002,
		Watch:    healthyWatch,
		Warnings: []string{fmt.Sprintf("%d of %d probes failed (%s), above the allowed 5%%; not enough evidence to call it a regression", healthyWatch.Stats.Failed, healthyWatch.Stats.Probes, pct.Of(healthyWatch.Stats.ErrorRate, 1))},
	}
	// 2 of every 5 probes fail once the build is up (never 3 in a row):
	// the error-rate test stops the watch.
	regressed := judge(watchOf(newSHA, watchStart, 5*time.Minute, "ss"+strings.Repeat(".x.x.", 12), "", "", false, 40, 180, 220, 390))
	rbStart := regressed.End.Add(8 * time.Second)
	rolledBack := &Run{
		Mode: "deploy", Environment: "production", Stage: run.StageFull, SHA: newSHA, PreviousSHA: goodSHA, PreviousSource: "GitHub deployment 1000001",
		Verdict: run.RolledBack, RolledBack: true, Reason: regressed.Reason,
		Start: t0, Deploy: deploy, Links: links(), DeploymentID: 1000002,
		Watch:         regressed,
		Rollback:      &Step{SHA: goodSHA, Start: regressed.End, End: rbStart},
		RollbackWatch: judge(watchOf(goodSHA, rbStart, time.Minute, "............", "", "", false, 39, 44)),
	}
	failed := &Run{
		Mode: "deploy", Environment: "production", Stage: run.StageFull, SHA: newSHA, PreviousSHA: goodSHA, PreviousSource: "the state file",
		Verdict: run.RollbackFailed, RolledBack: true,
		Start: t0, Deploy: deploy, Links: Links{Run: "https://github.com/octo-org/shop/actions/runs/7412345678"},
		Watch:         judge(watchOf(newSHA, watchStart, 5*time.Minute, "..xxxx", "", "", false, 35)),
		Rollback:      &Step{SHA: goodSHA, Start: watchStart.Add(25 * time.Second), End: watchStart.Add(31 * time.Second)},
		RollbackWatch: watchOf(goodSHA, watchStart.Add(31*time.Second), time.Minute, "ssssssssssss", run.Regressed, "no healthy answer from https://shop.example.com/healthz within the startup timeout of 1m00s (last answer: connection refused)", true, 0),
		Notes:         []string{"the rollback target came from the state file"},
	}
	failed.Reason = failed.Watch.Reason
	gate := &Run{
		Mode: "gate", Environment: "production", Verdict: run.Stopped,
		Reason: "production was rolled back from 4d8b3f2 to 9f2c1e7 at 2026-11-25T10:09:41Z; #123 is not marked as a fix. To merge the fix, add the label \"immune:fix\" to its pull request, or revert 4d8b3f2.",
		Start:  t0, Links: Links{Run: "https://github.com/octo-org/shop/actions/runs/7412345999"},
		Gate: &Gate{PullRequest: 123, BadSHA: newSHA, StoppedAt: "2026-11-25T10:09:41Z", StoppedBy: "was rolled back from 4d8b3f2 to 9f2c1e7",
			RunURL: "https://github.com/octo-org/shop/actions/runs/7412345678"},
	}
	// Judged by metrics: a rate metric whose errors jump, a latency
	// threshold, Prometheus down for two looks.
	mWatch := metricWatch(newSHA, watchStart, 5*time.Minute, 60, 250, 0.05)
	mRollStart := mWatch.End.Add(10 * time.Second)
	mRollback := metricWatch(goodSHA, mRollStart, time.Minute, 12, 250, 0)
	metricsRolledBack := &Run{
		Mode: "deploy", Environment: "production", Stage: run.StageFull, SHA: newSHA, PreviousSHA: goodSHA, PreviousSource: "GitHub deployment 1000001",
		Verdict: run.RolledBack, RolledBack: true, Reason: mWatch.Reason,
		Start: t0, Deploy: deploy, Links: links(), DeploymentID: 1000002, Watch: mWatch,
		Rollback:      &Step{SHA: goodSHA, Start: mWatch.End, End: mRollStart},
		RollbackWatch: mRollback,
	}
	// One request a look: too few to clear the build.
	iWatch := metricWatch(newSHA, watchStart, time.Minute, 12, 1, 0)
	inconclusive := &Run{
		Mode: "deploy", Environment: "production", Stage: run.StageFull, SHA: newSHA, PreviousSHA: goodSHA, PreviousSource: "GitHub deployment 1000001",
		Verdict: run.Inconclusive, Reason: iWatch.Reason, Start: t0, Deploy: deploy, Links: links(), DeploymentID: 1000002, Watch: iWatch,
	}
	inconclusive.Links.RollbackDeployment = ""
	canaryStep := &Step{SHA: newSHA, Start: t0, End: t0.Add(6 * time.Second)}
	canaryStart := t0.Add(6 * time.Second)
	bad := &Canary{
		Deploy:  canaryStep,
		Watch:   watchOf(newSHA, canaryStart, 5*time.Minute, "s"+strings.Repeat("..x.x", 12), "", "", false, 40, 45, 52),
		Control: watchOf(goodSHA, canaryStart, 5*time.Minute, strings.Repeat(".", 61), "", "", false, 38, 41),
	}
	judgeCanary(bad, false)
	bad.Removal = &Step{SHA: goodSHA, Start: bad.Watch.End, End: bad.Watch.End.Add(4 * time.Second)}
	removed := &Run{
		Mode: "deploy", Environment: "production", Stage: run.StageCanary, SHA: newSHA, PreviousSHA: goodSHA, PreviousSource: "GitHub deployment 1000001",
		Verdict: run.RolledBack, RolledBack: true, Reason: bad.Watch.Reason,
		Start: t0, Links: canaryLinks(), DeploymentID: 1000002, Canary: bad,
	}
	good := &Canary{
		Deploy:  canaryStep,
		Watch:   watchOf(newSHA, canaryStart, 5*time.Minute, strings.Repeat(".", 60), "", "", false, 40, 45),
		Control: watchOf(goodSHA, canaryStart, 5*time.Minute, strings.Repeat("....x.......", 5), "", "", false, 38, 41),
	}
	judgeCanary(good, true)
	fullStart := good.Watch.End.Add(10 * time.Second)
	full := judge(watchOf(newSHA, fullStart, time.Minute, "............", "", "", false, 39, 44))
	promoted := &Run{
		Mode: "deploy", Environment: "production", Stage: run.StageFull, SHA: newSHA, PreviousSHA: goodSHA, PreviousSource: "GitHub deployment 1000001",
		Verdict: full.Verdict, Reason: full.Reason,
		Start: t0, Deploy: &Step{SHA: newSHA, Start: good.Watch.End, End: fullStart}, Links: canaryLinks(), DeploymentID: 1000003,
		Canary: good, Watch: full,
	}
	// Shadow mode: the same regression, seen and let be.
	shadow := &Run{
		Mode: "deploy", Environment: "production", Stage: run.StageFull, SHA: newSHA, PreviousSHA: goodSHA, PreviousSource: "GitHub deployment 1000001",
		Verdict: run.Regressed, Reason: mWatch.Reason, Start: t0, Deploy: deploy, Links: links(), DeploymentID: 1000002, Watch: mWatch,
		Shadow: true, WouldHave: &WouldHave{Action: ActionRollBack, Target: goodSHA, After: mWatch.DetectedAfter(), AfterSeconds: mWatch.DetectedAfter().Seconds(), Reason: mWatch.Reason},
	}
	shadow.Links.RollbackDeployment = ""
	// Deployed through the deploy workflow: its deploy run failed, a
	// second run rolled back; both linked.
	runPage := "https://github.com/octo-org/shop/actions/runs/"
	workflow := &Run{
		Mode: "deploy", Environment: "production", Stage: run.StageFull, SHA: newSHA, PreviousSHA: goodSHA, PreviousSource: "GitHub deployment 1000001",
		Verdict: run.RolledBack, RolledBack: true,
		Reason: "the deploy workflow's deploy run failed: workflow run 7412345690 concluded failure: " + runPage + "7412345690",
		Start:  t0, Links: links(), DeploymentID: 1000002,
		Deploy: &Step{SHA: newSHA, Start: t0, End: t0.Add(3 * time.Minute), By: run.ByWorkflow, RunURL: runPage + "7412345690",
			Error: "workflow run 7412345690 concluded failure: " + runPage + "7412345690"},
		Rollback: &Step{SHA: goodSHA, Start: t0.Add(3 * time.Minute), End: t0.Add(5 * time.Minute), By: run.ByWorkflow, RunURL: runPage + "7412345702"},
		RollbackWatch: watchOf(goodSHA, t0.Add(5*time.Minute), time.Minute, "............", run.Healthy,
			"0 of 12 probes failed (0%), within the allowed 5%; p95 latency 44ms", false, 39, 44),
	}
	// Through a deploy workflow that does not declare immune's inputs:
	// GitHub refused the dispatch, nothing was deployed or rolled back.
	refusal := `dispatch workflow ship.yml on refs/heads/main: GitHub answered 422 Unprocessable Entity: Unexpected inputs provided: ["dispatch-id", "environment"]; deploy-workflow must name a workflow with an on: workflow_dispatch trigger that declares the inputs sha, previous-sha, environment, reason, stage, dispatch-id, and deploy-workflow-ref a branch or tag (nothing was started)`
	notStarted := &Run{
		Mode: "deploy", Environment: "production", Stage: run.StageFull, SHA: newSHA, PreviousSHA: goodSHA, PreviousSource: "GitHub deployment 1000001",
		Verdict: run.Inconclusive,
		Reason:  "the deploy workflow's deploy run was not started, so nothing was deployed and production still runs what it ran: " + refusal,
		Start:   t0, Links: links(), DeploymentID: 1000002,
		Deploy: &Step{SHA: newSHA, Start: t0, End: t0.Add(300 * time.Millisecond), By: run.ByWorkflow, Error: refusal, NotStarted: true},
	}
	notStarted.Links.RollbackDeployment = ""
	// The batch of removed, olderSHA…newSHA after goodSHA, bisected: two
	// steps on the canary name culpritSHA, and shippedSHA ships.
	bisected := *removed
	bisected.Culprit, bisected.Shipped, bisected.DeploymentID = culpritSHA, shippedSHA, 1000006
	stepAt := canaryStart.Add(80 * time.Second)
	bisected.Bisect = &Bisection{
		Good: goodSHA, Batch: []string{olderSHA, shippedSHA, culpritSHA, newSHA}, Source: "GitHub's comparison", MaxSteps: 2,
		Steps: []BisectStep{
			{SHA: shippedSHA, Index: 1, Result: StepGood, Start: stepAt, End: stepAt.Add(5*time.Minute + 8*time.Second),
				Deploy:  &Step{SHA: shippedSHA, Start: stepAt, End: stepAt.Add(4 * time.Second)},
				Watch:   watchOf(shippedSHA, stepAt.Add(4*time.Second), 5*time.Minute, "............", run.Healthy, "the canary failed 0 of 12 probes (0%), the control 0 of 12 (0%) in the same rounds, within the allowed 5 points more", false, 40),
				Control: watchOf(goodSHA, stepAt.Add(4*time.Second), 5*time.Minute, "............", "", "", false, 38),
				Removal: &Step{SHA: goodSHA, Start: stepAt.Add(5*time.Minute + 4*time.Second), End: stepAt.Add(5*time.Minute + 8*time.Second)}},
			{SHA: culpritSHA, Index: 2, Result: StepBad, Culprit: true, Start: stepAt.Add(6 * time.Minute), End: stepAt.Add(7 * time.Minute),
				Deploy:  &Step{SHA: culpritSHA, Start: stepAt.Add(6 * time.Minute), End: stepAt.Add(6*time.Minute + 4*time.Second)},
				Watch:   watchOf(culpritSHA, stepAt.Add(6*time.Minute+4*time.Second), 5*time.Minute, "..x.xx.x.xx", run.Regressed, "the canary failed 6 of 11 probes (55%), the control 0 of 11 (0%) in the same rounds; the canary's failure rate is more than 5 points above the control's with 99% confidence", true, 41),
				Control: watchOf(goodSHA, stepAt.Add(6*time.Minute+4*time.Second), 5*time.Minute, "...........", "", "", false, 39),
				Removal: &Step{SHA: goodSHA, Start: stepAt.Add(6*time.Minute + 56*time.Second), End: stepAt.Add(7 * time.Minute)}},
		},
		Culprit: culpritSHA, Shipped: shippedSHA,
		Ship: &Pass{Deploy: &Step{SHA: shippedSHA, Start: stepAt.Add(7 * time.Minute), End: stepAt.Add(7*time.Minute + 10*time.Second)},
			Watch:   watchOf(shippedSHA, stepAt.Add(7*time.Minute+10*time.Second), time.Minute, "............", run.Healthy, "0 of 12 probes failed (0%), within the allowed 5%", false, 42),
			Verdict: run.Healthy},
	}
	return map[string]*Run{"healthy": healthy, "rolled-back": rolledBack, "rollback-failed": failed, "gate-stopped": gate,
		"metrics-rolled-back": metricsRolledBack, "inconclusive": inconclusive,
		"canary-removed": removed, "canary-promoted": promoted, "shadow": shadow, "workflow-rolled-back": workflow, "bisected": &bisected,
		"workflow-not-started": notStarted}
}

// metricWatch is a watch judged by metrics alone: http-errors (a rate, 1%
// allowed) at errShare of perLook requests a look, and p99 (a threshold,
// at most 0.3), over looks 5s apart, the second and third without data
// (Prometheus down). The looks go to the real judge, as a watch's do: the
// watch stops at a regression, and its verdict and reason are the judge's.
func metricWatch(commit string, start time.Time, planned time.Duration, looks int, perLook int64, errShare float64) *Watch {
	max, p99 := 0.3, 0.1
	specs := []metrics.Spec{
		{Name: "http-errors", Errors: `x{code="500"}`, Total: "x", MaxErrorRate: 0.01},
		{Name: "p99", Query: "q", Max: &max, Consecutive: 3},
	}
	l := NewMetricLog(start, specs, 0)
	j := metrics.NewJudge(specs, metrics.JudgeOptions{Confidence: 0.99, Signals: 1, MinRequests: 20, Start: start, Grace: 30 * time.Second})
	w := &Watch{SHA: commit, Start: start, Planned: planned, Verdict: run.Healthy}
	var reg *metrics.Regression
	for i := range looks {
		at := start.Add(time.Duration(i) * 5 * time.Second)
		rate := metrics.Reading{Metric: "http-errors", Kind: metrics.KindRate, Attempts: 1}
		lat := metrics.Reading{Metric: "p99", Kind: metrics.KindThreshold, Attempts: 1, Value: p99}
		switch {
		case i == 0:
			rate.NewSeries = 1
		case i == 1 || i == 2:
			rate = metrics.Reading{Metric: "http-errors", Kind: metrics.KindRate, NoData: metrics.NoDataUnreachable, Error: "total: HTTP 503", Attempts: 3}
			lat = metrics.Reading{Metric: "p99", Kind: metrics.KindThreshold, NoData: metrics.NoDataUnreachable, Error: "HTTP 503", Attempts: 3}
		default:
			rate.Requests = perLook
			if i == 3 {
				rate.Requests = 3 * perLook // what the outage missed
			}
			rate.Errors = int64(float64(rate.Requests) * errShare)
			lat.Value = p99 + float64(i)/100
		}
		look := metrics.Look{At: at, Readings: []metrics.Reading{rate, lat}}
		l.Add(look)
		w.End = at
		if reg = j.Observe(look); reg != nil {
			break
		}
	}
	outcomes := j.Finish(w.End, reg == nil)
	switch {
	case reg != nil:
		w.Verdict, w.Rule, w.Metric, w.Reason, w.Detected, w.Evidence = run.Regressed, reg.Rule, reg.Metric, reg.Reason, true, reg.Evidence
	case len(metrics.Inconclusive(outcomes)) > 0:
		w.Verdict, w.Rule, w.Reason = run.Inconclusive, "inconclusive", "not judged: "+strings.Join(metrics.Inconclusive(outcomes), "; ")
	default:
		var why []string
		for _, o := range outcomes {
			why = append(why, o.Summary())
		}
		w.Reason = strings.Join(why, "; ")
	}
	w.Metrics = l.Metrics(outcomes, []metrics.Expanded{
		{Name: "http-errors", Kind: metrics.KindRate, Errors: `http_requests_total{version="` + commit + `",code=~"5.."}`, Total: `http_requests_total{version="` + commit + `"}`},
		{Name: "p99", Kind: metrics.KindThreshold, Query: "q"},
	})
	return w
}

// TestMetricLogBounded: past its cap a metric log keeps its looks per
// minute, and says so.
func TestMetricLogBounded(t *testing.T) {
	specs := []metrics.Spec{{Name: "e", Errors: "a", Total: "b"}}
	l := NewMetricLog(t0, specs, 10)
	for i := range 100 {
		l.Add(metrics.Look{At: t0.Add(time.Duration(i) * 5 * time.Second), Readings: []metrics.Reading{{Metric: "e", Kind: metrics.KindRate, Requests: 10, Errors: 1}}})
	}
	m := l.Metrics(nil, nil)[0]
	if len(m.LooksKept) != 10 || !m.Aggregated || m.Looks != 100 || len(m.Minutes) != 9 || m.Minutes[0].Requests != 120 || m.Minutes[0].Looks != 12 {
		t.Errorf("kept %d looks of %d, aggregated %v, %d minutes: %+v", len(m.LooksKept), m.Looks, m.Aggregated, len(m.Minutes), m.Minutes)
	}
	var b strings.Builder
	w := &Watch{Start: t0, Metrics: []MetricWatch{m}}
	writeMetricChart(&b, w, m, nil, nil)
	if !strings.Contains(b.String(), `x-axis ["deploy", "+1m", "+2m",`) || !strings.Contains(b.String(), "every minute") {
		t.Errorf("chart of an aggregated metric:\n%s", b.String())
	}
}

// TestMetricLogInfAndNotes: a threshold at +Inf (a quantile beyond every
// bucket) is in the JSON report as "+Inf" (JSON has no number for it) and
// at the top of the chart; what the looks said beyond their numbers is
// kept once per text, with how many looks said it, up to MaxNotes.
func TestMetricLogInfAndNotes(t *testing.T) {
	max := 1.0
	specs := []metrics.Spec{{Name: "p99", Query: "q", Max: &max, Consecutive: 3}}
	l := NewMetricLog(t0, specs, 0)
	for i := range 3 {
		notes := []string{"Prometheus warning: partial response"}
		for k := range MaxNotes {
			notes = append(notes, fmt.Sprintf("note %d-%d", i, k))
		}
		l.Add(metrics.Look{At: t0.Add(time.Duration(i) * 5 * time.Second), Readings: []metrics.Reading{
			{Metric: "p99", Kind: metrics.KindThreshold, Value: math.Inf(1), OutOfBounds: true, Streak: i + 1, Warnings: notes}}})
	}
	m := l.Metrics([]metrics.Outcome{{Metric: "p99", Kind: metrics.KindThreshold, Looks: 3, Value: math.Inf(1), Worst: math.Inf(1), Max: &max, Consecutive: 3, OutOfBounds: 3}}, nil)[0]
	data, err := JSON(&Run{Watch: &Watch{Start: t0, Metrics: []MetricWatch{m}}})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(data), `"worst": "+Inf"`) || !strings.Contains(string(data), `"value": "+Inf"`) {
		t.Errorf("JSON:\n%s", data)
	}
	if len(m.Notes) != MaxNotes || m.Notes[0].Text != "Prometheus warning: partial response" || m.Notes[0].Looks != 3 || m.NotesNotKept != 2*MaxNotes+1 {
		t.Errorf("notes %+v, %d not kept", m.Notes, m.NotesNotKept)
	}
	var b strings.Builder
	writeMetricChart(&b, &Watch{Start: t0}, m, nil, nil)
	if !strings.Contains(b.String(), `bar "worst look" [2, 2, 2]`) {
		t.Errorf("chart:\n%s", b.String())
	}
}

// TestMetricNotesInTheSummary: what the looks said is in the summary, each
// note once with its looks, Prometheus's words escaped, and past a few,
// counted.
func TestMetricNotesInTheSummary(t *testing.T) {
	specs := []metrics.Spec{{Name: "http-errors", Errors: "e", Total: "t", MaxErrorRate: 0.01}}
	l := NewMetricLog(t0, specs, 0)
	for i := range 2 {
		notes := []string{"Prometheus warning: <!channel> @octo-org/everyone\n# Hijacked `x`"}
		for k := range 7 {
			notes = append(notes, fmt.Sprintf("total: note %d", k))
		}
		l.Add(metrics.Look{At: t0.Add(time.Duration(i) * 5 * time.Second), Readings: []metrics.Reading{
			{Metric: "http-errors", Kind: metrics.KindRate, Requests: 10, Warnings: notes}}})
	}
	m := l.Metrics([]metrics.Outcome{{Metric: "http-errors", Kind: metrics.KindRate, Looks: 2, Requests: 20, Allowed: 0.01}}, nil)[0]
	var b strings.Builder
	writeMetrics(&b, &Run{Watch: &Watch{Start: t0, Metrics: []MetricWatch{m}}})
	got := b.String()
	for _, want := range []string{"**What the looks at the metrics said**", "- http-errors, 2 looks: Prometheus warning: ", "- http-errors: 3 more in the JSON report"} {
		if !strings.Contains(got, want) {
			t.Errorf("the summary lacks %q:\n%s", want, got)
		}
	}
	if strings.Contains(got, "<!channel>") || strings.Contains(got, "@octo-org/everyone") || strings.Contains(got, "\n# Hijacked") {
		t.Errorf("Prometheus's words are not escaped:\n%s", got)
	}
}

// golden compares got with testdata/name, or rewrites it with -update.
func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if got != string(want) {
		t.Errorf("%s differs from the golden file (go test ./internal/report -update to accept):\n--- got\n%s\n--- want\n%s", name, got, want)
	}
}

func TestSummaryGolden(t *testing.T) {
	for name, r := range runs() {
		t.Run(name, func(t *testing.T) {
			golden(t, "summary-"+name+".md", Summary(r))
		})
	}
}

func TestOutputsGolden(t *testing.T) {
	for name, r := range runs() {
		t.Run(name, func(t *testing.T) {
			var b strings.Builder
			for _, o := range Outputs(r, ".immune/report.json") {
				fmt.Fprintf(&b, "%s=%s\n", o.Name, o.Value)
			}
			golden(t, "outputs-"+name+".txt", b.String())
		})
	}
}

func TestJSONReportHasEveryProbe(t *testing.T) {
	rb := runs()["rolled-back"]
	data, err := JSON(rb)
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Verdict string `json:"verdict"`
		Reason  string `json:"reason"`
		Watch   struct {
			DetectedAfter float64 `json:"detected_after_seconds"`
			Probes        []struct {
				Time      time.Time `json:"time"`
				URL       string    `json:"url"`
				Status    int       `json:"status"`
				LatencyMS float64   `json:"latency_ms"`
				Error     string    `json:"error"`
				Phase     string    `json:"phase"`
			} `json:"probes"`
		} `json:"watch"`
		RollbackWatch struct {
			Probes []json.RawMessage `json:"probes"`
		} `json:"rollback_watch"`
	}
	if err := json.Unmarshal(data, &doc); err != nil {
		t.Fatal(err)
	}
	if doc.Verdict != string(run.RolledBack) || doc.Reason != rb.Reason || len(doc.Watch.Probes) != len(rb.Watch.Probes) || len(doc.RollbackWatch.Probes) != 12 {
		t.Fatalf("report = verdict %s, %d + %d probes", doc.Verdict, len(doc.Watch.Probes), len(doc.RollbackWatch.Probes))
	}
	p := doc.Watch.Probes[3]
	if p.URL != url || p.Status != 503 || p.LatencyMS != 390 || p.Error == "" || p.Phase != "live" || !p.Time.Equal(rb.Watch.Probes[3].Time) {
		t.Errorf("probe 4 = %+v", p)
	}
	if doc.Watch.DetectedAfter != rb.Watch.DetectedAfter().Seconds() {
		t.Errorf("detected_after_seconds = %v", doc.Watch.DetectedAfter)
	}
}

// The canary's series stays bounded however long the watch, and keeps
// every count.
func TestCanarySeriesIsBounded(t *testing.T) {
	s := &CanarySeries{}
	for i := range 100000 {
		s.Add(CanaryPoint{Elapsed: time.Duration(i) * time.Second, Canary: 1, CanaryFailed: i % 2, Control: 3})
	}
	canary, failed, control := 0, 0, 0
	for _, p := range s.Points {
		canary, failed, control = canary+p.Canary, failed+p.CanaryFailed, control+p.Control
	}
	if len(s.Points) > maxSeries || canary != 100000 || failed != 50000 || control != 300000 || s.Points[1].Elapsed != time.Duration(s.Per)*time.Second {
		t.Errorf("%d points of %d rounds: %d canary probes, %d failed, %d control; second point at %s", len(s.Points), s.Per, canary, failed, control, s.Points[1].Elapsed)
	}
}

// The JSON report has both tracks of a canary, each probe, and the
// evidence's control numbers.
func TestJSONReportHasTheCanary(t *testing.T) {
	r := runs()["canary-removed"]
	data, err := JSON(r)
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Stage  string `json:"stage"`
		Canary struct {
			Watch   struct{ Probes []json.RawMessage } `json:"watch"`
			Control struct{ Probes []json.RawMessage } `json:"control"`
			Removal struct{ SHA string }               `json:"removal"`
		} `json:"canary"`
	}
	if err := json.Unmarshal(data, &doc); err != nil {
		t.Fatal(err)
	}
	if doc.Stage != "canary" || len(doc.Canary.Watch.Probes) != len(r.Canary.Watch.Probes) || len(doc.Canary.Control.Probes) != len(r.Canary.Control.Probes) || doc.Canary.Removal.SHA != goodSHA {
		t.Errorf("report = %+v", doc)
	}
}

func TestQuantile(t *testing.T) {
	ms := func(n ...int) []time.Duration {
		var ds []time.Duration
		for _, v := range n {
			ds = append(ds, time.Duration(v)*time.Millisecond)
		}
		return ds
	}
	tests := []struct {
		in   []time.Duration
		q    float64
		want time.Duration
	}{
		{nil, 0.95, 0},
		{ms(5), 0.95, 5 * time.Millisecond},
		{ms(1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20), 0.95, 19 * time.Millisecond},
		{ms(3, 1, 2), 0.5, 2 * time.Millisecond},
	}
	for _, tt := range tests {
		if got := Quantile(tt.in, tt.q); got != tt.want {
			t.Errorf("Quantile(%v, %v) = %v, want %v", tt.in, tt.q, got, tt.want)
		}
	}
}
