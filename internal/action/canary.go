package action

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/immune-cd/immune/internal/config"
	"github.com/immune-cd/immune/internal/deploy"
	"github.com/immune-cd/immune/internal/health"
	"github.com/immune-cd/immune/internal/metrics"
	"github.com/immune-cd/immune/internal/recorder"
	"github.com/immune-cd/immune/internal/report"
	"github.com/immune-cd/immune/internal/run"
	"github.com/immune-cd/immune/internal/sha"
	"github.com/immune-cd/immune/internal/verdict"
)

// The canary stage of a deploy (with canary-command): canary-deploy runs the
// canary command (IMMUNE_STAGE=canary) under a deploy:canary deployment;
// canary-watch probes the canary's URLs and the control's (health-url, the
// stable fleet) in the same rounds and judges them with verdict.Canary; a
// canary that passes goes on to the deploy phase (deploy-command with
// IMMUNE_STAGE=full) and the full watch; one that regresses goes to
// canary-rollback, which removes it, and the run ends there: nothing
// reached the rest of the fleet.

// canaryStage is what the canary's phases hand on.
type canaryStage struct {
	dep      *recorder.Handle // the deploy:canary deployment
	open     bool             // its record is still in flight
	started  bool             // the canary command was started
	removing bool             // the canary's removal was started
}

// hasCanary reports whether this run deploys a canary first.
func (r *runner) hasCanary() bool {
	return r.cfg.Mode == config.ModeDeploy && r.cfg.CanaryCommand != ""
}

// firstDeploy is the phase that deploys first: the canary's, or the
// whole fleet's.
func (r *runner) firstDeploy() run.Phase {
	if r.hasCanary() {
		return run.CanaryDeploy
	}
	return run.Deploy
}

// canaryDeploy records the deploy:canary deployment and runs the canary
// command.
func (r *runner) canaryDeploy(ctx context.Context) run.Phase {
	cfg := r.cfg
	r.out.Canary = &report.Canary{}
	p := r.payload()
	p.PreviousSHA = r.target
	dep, waited, ok := r.startDeployment(ctx, recorder.TaskCanary, cfg.SHA, p, cfg.StartupTimeout+cfg.CanaryDuration,
		"immune is deploying a canary of "+sha.Short(cfg.SHA)+" and comparing it with the rest of "+cfg.Environment)
	r.canary.dep, r.canary.open = dep, dep != nil
	if !ok || ctx.Err() != nil {
		// Closed as not deployed when the run gave up waiting; left to the
		// cancel to close when ctx ended.
		r.canary.open = dep != nil && ctx.Err() != nil
		return run.Done
	}
	if waited {
		r.findTarget(ctx)
	}
	r.setPending(cfg.SHA, fmt.Sprintf("canary of %s on %s: comparing it with the stable fleet", sha.Short(cfg.SHA), cfg.Environment))
	r.canary.started = true
	step := r.runCommandAs(ctx, fmt.Sprintf("Canary: deploy %s to part of %s", sha.Short(cfg.SHA), cfg.Environment),
		"The canary's deploy of "+sha.Short(cfg.SHA), cfg.CanaryCommand, deploy.Request{
			SHA: cfg.SHA, PreviousSHA: r.target, Environment: cfg.Environment, Reason: deploy.ReasonDeploy, Stage: string(run.StageCanary),
		})
	r.out.Canary.Deploy = step
	if ctx.Err() != nil {
		return run.Done
	}
	if step.Error != "" {
		// A canary command that failed may have half-applied: the canary is
		// removed like one that regressed.
		r.end(run.Regressed, ExitRegressed, "the canary command failed: "+step.Error)
		r.why = "canary command failed"
		return r.canaryFailed()
	}
	return run.CanaryWatch
}

// canaryWatch judges the canary against the control; a canary that passes
// is promoted to the whole fleet.
func (r *runner) canaryWatch(ctx context.Context) run.Phase {
	cw, ctl, last := r.watchCanary(ctx)
	if ctx.Err() != nil {
		return run.Done
	}
	c := r.out.Canary
	c.Watch, c.Control = cw, ctl
	if cw.Verdict == run.Healthy {
		c.Promoted, c.Early = true, last.Rule == verdict.RuleCanaryNoWorse
		how := "passed"
		if c.Early {
			how = "passed early"
		}
		r.log.Printf("Canary %s: %s. Deploying %s to the whole of %s.", how, cw.Reason, sha.Short(r.cfg.SHA), r.cfg.Environment)
		if e := cw.Evidence; e != nil && e.Canary != nil && e.Judged > 0 && e.ErrorRate > e.AllowedErrorRate {
			r.warn("Canary worse than the control, but passing", fmt.Sprintf("the canary failed %s of its probes against the control's %s, more than the allowed %s points over it; not enough evidence to call it a regression",
				pct(e.ErrorRate), pct(e.Canary.ControlErrorRate), strings.TrimSuffix(pct(e.Canary.Margin), "%")))
		}
		return run.Deploy
	}
	r.why = shortWhy(cw)
	if cw.Verdict == run.Inconclusive {
		// A canary that could not be judged is not passed on to everyone;
		// it is removed like one that regressed, and the run says why.
		r.end(run.Inconclusive, ExitRegressed, cw.Reason)
		r.log.Error(fmt.Sprintf("The canary of %s on %s could not be judged", sha.Short(r.cfg.SHA), r.cfg.Environment), cw.Reason+"; the rest of the fleet was not deployed")
		if !r.cfg.AutoRollback {
			r.note(fmt.Sprintf("auto-rollback is false: the canary was not removed, so part of %s still runs %s", r.cfg.Environment, sha.Short(r.cfg.SHA)))
			return run.Record
		}
		return run.CanaryRollback
	}
	r.end(run.Regressed, ExitRegressed, cw.Reason)
	return r.canaryFailed()
}

// canaryFailed decides what follows a canary that regressed or whose
// command failed: its removal, unless auto-rollback is off.
func (r *runner) canaryFailed() run.Phase {
	r.log.Error(fmt.Sprintf("%s regressed as a canary on %s", sha.Short(r.cfg.SHA), r.cfg.Environment), r.out.Reason+"; the rest of the fleet was not deployed")
	r.tellRegressed()
	if !r.cfg.AutoRollback {
		r.note(fmt.Sprintf("auto-rollback is false: the canary was not removed, so part of %s still runs %s", r.cfg.Environment, sha.Short(r.cfg.SHA)))
		return run.Record
	}
	return run.CanaryRollback
}

// canaryRollback removes the canary: canary-rollback-command with
// IMMUNE_STAGE=canary and IMMUNE_SHA the stable build. It is not watched:
// a removed canary's URLs may answer nothing at all.
func (r *runner) canaryRollback(ctx context.Context) run.Phase {
	cfg := r.cfg
	if r.target == "" {
		r.note("the stable build is not known (no previous-sha input, no healthy deployment in GitHub or the state file, no push event's before): the canary's removal gets an empty IMMUNE_SHA")
	}
	r.canary.removing = true
	step := r.runCommandAs(ctx, fmt.Sprintf("Canary removal: put the canary of %s back on %s", cfg.Environment, orUnknown(sha.Short(r.target))),
		"The canary's removal", cfg.CanaryRollbackCommand, deploy.Request{
			SHA: r.target, PreviousSHA: cfg.SHA, Environment: cfg.Environment, Reason: deploy.ReasonRollback, Stage: string(run.StageCanary),
		})
	r.out.Canary.Removal, r.out.RolledBack = step, true
	if ctx.Err() != nil {
		return run.Done
	}
	if step.Error != "" {
		r.end(run.RollbackFailed, ExitRegressed, r.out.Reason)
		r.log.Error("Canary removal failed", fmt.Sprintf("the canary-rollback-command failed: %s; part of %s may still run %s (the rest of the fleet never got it)", step.Error, cfg.Environment, sha.Short(cfg.SHA)))
		return run.Record
	}
	if r.out.Verdict != run.Inconclusive {
		r.end(run.RolledBack, ExitRegressed, r.out.Reason)
	}
	r.log.Printf("Removed the canary of %s: the rest of %s never ran it.", sha.Short(cfg.SHA), cfg.Environment)
	return run.Record
}

// recordCanary writes the final records of a run that ended in the
// canary stage: the deploy:canary deployment failed, and so did the
// commit status.
func (r *runner) recordCanary() run.Phase {
	cfg := r.cfg
	if r.out.Verdict == run.Inconclusive {
		// Not judged: neither healthy nor regressed, and no stop of the
		// line (see recorder.Inconclusive).
		r.remember(cfg.SHA, run.Inconclusive)
		desc := recorder.Inconclusive + "canary not judged: " + r.why
		if r.out.Canary != nil && r.out.Canary.Removal != nil && r.out.Canary.Removal.Error == "" {
			desc += "; removed"
		}
		r.closeCanary(recorder.StateError, desc)
		r.rec.CommitStatus(cfg.SHA, recorder.CommitError, desc)
		return run.Done
	}
	r.remember(cfg.SHA, run.Regressed)
	desc := "canary regressed: " + r.why
	switch r.out.Verdict {
	case run.RolledBack:
		desc += "; removed"
	case run.RollbackFailed:
		desc += "; its removal failed"
	default:
		desc += "; not removed"
	}
	r.closeCanary(recorder.StateFailure, desc)
	r.rec.CommitStatus(cfg.SHA, recorder.CommitFailure, desc)
	return run.Done
}

// closeCanary sets the final status of the deploy:canary deployment.
func (r *runner) closeCanary(state recorder.State, desc string) {
	if !r.canary.open {
		return
	}
	r.canary.open = false
	if state == recorder.StateError && !r.canary.started {
		desc = recorder.NotDeployed + desc
	}
	r.rec.SetStatus(r.canary.dep, state, desc)
}

// openDeployment records the deploy of the whole fleet. After a canary
// that passed, this run already holds the environment through the canary's
// deployment: the deploy's record is created in progress first, then the
// canary's is closed, so that another run never finds the environment free
// in between.
func (r *runner) openDeployment(ctx context.Context, p recorder.Payload, desc string) (dep *recorder.Handle, waited, ok bool) {
	cfg := r.cfg
	watch := cfg.StartupTimeout + cfg.Duration
	if !r.canary.open {
		return r.startDeployment(ctx, recorder.TaskDeploy, cfg.SHA, p, watch, desc)
	}
	p.HoldSeconds = int64(r.hold(watch) / time.Second)
	dep = r.rec.Create(recorder.TaskDeploy, cfg.SHA, p, recorder.StateInProgress, desc)
	r.closeCanary(recorder.StateSuccess, "canary healthy against the control: "+shortHealthy(r.out.Canary.Watch)+"; promoted")
	return dep, false, true
}

// watchCanary probes the canary's URLs and the control's in the same
// rounds, and reads the metrics of both tracks in the same looks, for
// canary-duration, judging each round with the canary's judgment and each
// look with the metrics'. It returns both tracks' watches (the canary's
// with the verdict) and the last decision.
func (r *runner) watchCanary(ctx context.Context) (canaryWatch, controlWatch *report.Watch, last verdict.Decision) {
	cfg := r.cfg
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
		l := r.limits(cfg.CanaryDuration)
		l.Targets, l.Signals = len(cfg.CanaryHealthURLs), r.canarySignals()
		eng = verdict.NewCanary(l, verdict.CanaryOptions{PromoteEarly: cfg.CanaryPromoteEarly})
	}
	var cm *canaryMetrics
	var metricsErr error
	if r.hasMetrics() {
		if cm, metricsErr = r.newCanaryMetrics(); metricsErr != nil {
			r.log.Error("Metrics not read", metricsErr.Error())
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
	r.log.Printf("Canary: %s, every %s for %s (startup grace %s).", strings.Join(signals, " and "), cfg.Interval, d, startup)
	canaryLog := report.NewProbeLog(r.d.Clock.Now(), 0, cfg.LatencyPercentile)
	controlLog := report.NewProbeLog(r.d.Clock.Now(), 0, cfg.LatencyPercentile)
	series := &report.CanarySeries{}
	r.out.Canary.Series = series
	asNew := 0 // control probes answered by the new build
	versionAware := cfg.ExpectVersion.Kind != ""
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
	w := &health.Watch{
		Probe:          r.probe,
		Go:             r.d.Go,
		Clock:          r.d.Clock,
		URLs:           urls,
		Steady:         steady,
		Want:           cfg.SHA,
		VersionAware:   versionAware,
		Interval:       cfg.Interval,
		Duration:       d,
		StartupTimeout: startup,
		JudgeRound: func(round health.Round) bool {
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
		},
		Record: func(p health.Probe) {
			if isCanary[p.URL] {
				canaryLog.Add(p)
				return
			}
			if versionAware && p.VersionMatch && p.Answered {
				asNew++
			}
			controlLog.Add(p)
		},
		OnRound: r.progress(),
	}
	if cm != nil {
		w.Look = func(ctx context.Context) func() bool {
			apply := cm.look(ctx)
			return func() bool { return apply() || promote() }
		}
	}
	if eng == nil {
		w.JudgeRound = nil
	}
	res := w.Run(ctx)
	canaryWatch = &report.Watch{SHA: cfg.SHA, Start: res.Start, End: res.End, Planned: d, LiveAfter: res.LiveAfter}
	canaryLog.Fill(canaryWatch)
	controlWatch = &report.Watch{SHA: r.target, Start: res.Start, End: res.End, Planned: d}
	controlLog.Fill(controlWatch)
	if asNew > 0 {
		r.warn("The control answered as the new build", fmt.Sprintf("%d of the control's probes were answered by %s, the canary's build: does canary-command deploy to the stable fleet too, or do canary-health-url and health-url reach the same servers? The comparison means little then", asNew, sha.Short(cfg.SHA)))
	}
	r.noteSkipped(res, "canary ")
	var mreg *metrics.Regression
	if cm != nil {
		mreg = cm.judge.Regression()
	}
	final := res.Err == nil && len(res.NotLive) == 0 && !res.Stopped
	switch {
	case settle(canaryWatch, res, last, mreg, startup, "the canary"):
		if mreg != nil && res.Stopped && last.Outcome != verdict.Regressed {
			last = verdict.Decision{Outcome: verdict.Regressed, Rule: mreg.Rule, Reason: mreg.Reason}
		}
	case res.Stopped && promoted.Outcome == verdict.Healthy:
		last = promoted
		canaryWatch.Verdict, canaryWatch.Rule, canaryWatch.Reason = run.Healthy, last.Rule, "the canary is no worse than the control: "+strings.TrimPrefix(last.Reason, "the canary is no worse than the control: ")
		if eng != nil {
			canaryWatch.Evidence = &last.Evidence
		}
	default:
		var healthy, why []string
		if eng != nil {
			last = eng.Finish()
			canaryWatch.Rule, canaryWatch.Reason, canaryWatch.Evidence = last.Rule, last.Reason, &last.Evidence
			healthy = append(healthy, last.Reason)
		}
		canaryWatch.Verdict = run.Healthy
		if cm != nil {
			var outcomes []metrics.Outcome
			var summaries []string
			canaryWatch.Metrics, controlWatch.Metrics, outcomes, summaries = cm.finish(res.End, true)
			why = metrics.Inconclusive(outcomes)
			healthy = append(healthy, summaries...)
		}
		if metricsErr != nil {
			why = append([]string{"the metrics could not be read: " + metricsErr.Error()}, why...)
		}
		if len(why) > 0 {
			canaryWatch.Verdict, canaryWatch.Rule = run.Inconclusive, "inconclusive"
			canaryWatch.Reason = "the canary was not judged: " + strings.Join(why, "; ")
		} else if len(healthy) > 0 {
			canaryWatch.Reason = strings.Join(healthy, "; ")
		}
		last.Reason = canaryWatch.Reason
	}
	if cm != nil && canaryWatch.Metrics == nil {
		canaryWatch.Metrics, controlWatch.Metrics, _, _ = cm.finish(res.End, final)
	}
	return canaryWatch, controlWatch, last
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

// canaryProduction says what production runs after a cancel in phase ph,
// where the canary changes the answer; ok is false elsewhere.
func (r *runner) canaryProduction(ph run.Phase) (msg string, ok bool) {
	if !r.hasCanary() {
		return "", false
	}
	env, sh, target := r.cfg.Environment, sha.Short(r.cfg.SHA), orUnknown(sha.Short(r.target))
	switch ph {
	case run.CanaryDeploy:
		if !r.canary.started {
			return fmt.Sprintf("nothing was deployed; %s still runs what it ran before", env), true
		}
		return fmt.Sprintf("the canary command was stopped midway, so the canary subset of %s may run %s in part; the rest of %s never got it, and nothing was rolled back", env, sh, env), true
	case run.CanaryWatch:
		return fmt.Sprintf("%s is live on the canary subset of %s, unjudged, and was not removed; the rest of %s never got it", sh, env, env), true
	case run.CanaryRollback:
		if r.canary.removing {
			return fmt.Sprintf("%s regressed as a canary and its removal was stopped midway, so the canary subset's state is unknown: it was being put back on %s; the rest of %s never got %s", sh, target, env, sh), true
		}
		return fmt.Sprintf("%s regressed as a canary and is still live on the canary subset of %s: its removal was not started; the rest of %s never got it", sh, env, env), true
	case run.Deploy:
		if !r.deployStarted && r.out.Canary != nil && r.out.Canary.Promoted {
			return fmt.Sprintf("%s passed as a canary and is live on the canary subset of %s; the deploy to the whole fleet was not started", sh, env), true
		}
	case run.Record:
		if r.out.Stage == run.StageCanary && r.out.Canary != nil && r.out.Canary.Removal != nil {
			return fmt.Sprintf("%s regressed as a canary and was removed; the rest of %s never got it", sh, env), true
		}
	}
	return "", false
}
