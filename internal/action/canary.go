package action

import (
	"context"
	"fmt"
	"time"

	"github.com/immune-cd/immune/internal/deploy"
	"github.com/immune-cd/immune/internal/outcome"
	"github.com/immune-cd/immune/internal/recorder"
	"github.com/immune-cd/immune/internal/report"
	"github.com/immune-cd/immune/internal/run"
	"github.com/immune-cd/immune/internal/sha"
	"github.com/immune-cd/immune/internal/watch"
)

// The canary stage of a deploy (with canary-command): canary-deploy runs the
// canary command (IMMUNE_STAGE=canary) under a deploy:canary deployment;
// canary-watch probes the canary's URLs and the control's (health-url, the
// stable fleet) in the same rounds and judges them with verdict.Canary; a
// canary that passes goes on to the deploy phase (deploy-command with
// IMMUNE_STAGE=full) and the full watch; one that regresses goes to
// canary-rollback, which removes it, and the run ends there: nothing
// reached the rest of the fleet.

// hasCanary reports whether this run deploys a canary first.
func (r *runner) hasCanary() bool {
	return r.cfg.Mode == run.ModeDeploy && r.cfg.Canary
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
	step := r.runStepAs(ctx, fmt.Sprintf("Canary: deploy %s to part of %s", sha.Short(cfg.SHA), cfg.Environment),
		"The canary's deploy of "+sha.Short(cfg.SHA), deploy.Request{
			SHA: cfg.SHA, PreviousSHA: r.target, Environment: cfg.Environment, Reason: deploy.ReasonDeploy, Stage: string(run.StageCanary),
		})
	r.out.Canary.Deploy = step
	if ctx.Err() != nil {
		return run.Done
	}
	if step.NotStarted {
		return r.notStarted("canary", step)
	}
	if step.Error != "" {
		// A canary command that failed may have half-applied: the canary is
		// removed like one that regressed.
		r.end(run.Regressed, ExitRegressed, r.failed("canary")+": "+step.Error)
		r.why = r.failedWhy("canary")
		return r.canaryFailed()
	}
	return run.CanaryWatch
}

// canaryWatch judges the canary against the control; a canary that passes
// is promoted to the whole fleet.
func (r *runner) canaryWatch(ctx context.Context) run.Phase {
	c := r.out.Canary
	c.Series = &report.CanarySeries{}
	cw, ctl, early := r.watch.Canary(ctx, r.cfg.SHA, r.target, c.Series)
	if ctx.Err() != nil {
		return run.Done
	}
	c.Watch, c.Control = cw, ctl
	if cw.Verdict == run.Healthy {
		c.Promoted, c.Early = true, early
		how := "passed"
		if c.Early {
			how = "passed early"
		}
		r.log.Printf("Canary %s: %s. Deploying %s to the whole of %s.", how, cw.Reason, sha.Short(r.cfg.SHA), r.cfg.Environment)
		return run.Deploy
	}
	r.why = cw.Why
	if r.shadow() {
		// A live run would remove the canary here; a shadow run promotes
		// it as if it had passed, so that the whole flow runs.
		r.wouldHave(report.ActionRemoveCanary, cw, cw.Verdict, cw.Reason, cw.Why)
		c.Promoted = true
		r.log.Printf("Canary (shadow mode): promoted as if it had passed. Deploying %s to the whole of %s.", sha.Short(r.cfg.SHA), r.cfg.Environment)
		return run.Deploy
	}
	if cw.Verdict == run.Inconclusive {
		// A canary that could not be judged is not passed on to everyone;
		// it is removed like one that regressed, and the run says why.
		r.end(run.Inconclusive, ExitRegressed, cw.Reason)
		r.log.Error(fmt.Sprintf("The canary of %s on %s could not be judged", sha.Short(r.cfg.SHA), r.cfg.Environment), cw.Reason+"; the rest of the fleet was not deployed")
		return r.removeCanary()
	}
	r.end(run.Regressed, ExitRegressed, cw.Reason)
	return r.canaryFailed()
}

// canaryFailed decides what follows a canary that regressed or whose
// command failed: its removal, unless auto-rollback is off (or, in shadow
// mode, the deploy of the whole fleet, as if it had passed).
func (r *runner) canaryFailed() run.Phase {
	if r.shadow() {
		r.wouldHave(report.ActionRemoveCanary, r.out.Canary.Watch, r.out.Verdict, r.out.Reason, r.why)
		r.out.Canary.Promoted = true
		return run.Deploy
	}
	r.log.Error(fmt.Sprintf("%s regressed as a canary on %s", sha.Short(r.cfg.SHA), r.cfg.Environment), r.out.Reason+"; the rest of the fleet was not deployed")
	r.tellRegressed()
	return r.removeCanary()
}

// removeCanary goes on to the canary's removal, unless auto-rollback is
// off.
func (r *runner) removeCanary() run.Phase {
	if !r.cfg.AutoRollback {
		r.hold(outcome.AutoRollback, fmt.Sprintf("auto-rollback is false: the canary was not removed, so part of %s still runs %s", r.cfg.Environment, sha.Short(r.cfg.SHA)))
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
		r.Note("the stable build is not known (no previous-sha input, no healthy deployment in GitHub or the state file, no push event's before): the canary's removal gets an empty IMMUNE_SHA")
	}
	r.canaryRemoving = true
	step := r.runStepAs(ctx, fmt.Sprintf("Canary removal: put the canary of %s back on %s", cfg.Environment, orUnknown(sha.Short(r.target))),
		"The canary's removal", deploy.Request{
			SHA: r.target, PreviousSHA: cfg.SHA, Environment: cfg.Environment, Reason: deploy.ReasonRollback, Stage: string(run.StageCanary),
		})
	r.out.Canary.Removal, r.out.RolledBack = step, true
	if ctx.Err() != nil {
		return run.Done
	}
	if step.Error != "" {
		r.end(run.RollbackFailed, ExitRegressed, r.out.Reason)
		r.log.Error("Canary removal failed", fmt.Sprintf("%s: %s; part of %s may still run %s (the rest of the fleet never got it)", r.failed("canary removal"), step.Error, cfg.Environment, sha.Short(cfg.SHA)))
		return run.Record
	}
	if r.out.Verdict != run.Inconclusive {
		r.end(run.RolledBack, ExitRegressed, r.out.Reason)
	}
	r.log.Printf("Removed the canary of %s: the rest of %s never ran it.", sha.Short(cfg.SHA), cfg.Environment)
	return r.afterRollback(ctx)
}

// openDeployment records the deploy of the whole fleet. After a canary
// that passed, this run already holds the environment through the canary's
// deployment: the deploy's record is created in progress first, then the
// canary's is closed, so that another run never finds the environment free
// in between.
func (r *runner) openDeployment(ctx context.Context, p recorder.Payload, desc string) (dep *recorder.Handle, waited, ok bool) {
	cfg := r.cfg
	span := cfg.StartupTimeout + cfg.Duration
	if r.bis != nil && r.bis.open != nil {
		// The good part of a bisected batch: the last step's record holds
		// the environment until this one is in progress.
		p.HoldSeconds = int64(r.holdFor(span) / time.Second)
		dep = r.rec.Create(recorder.TaskDeploy, r.sha, p, recorder.StateInProgress, desc)
		r.closeStep()
		return dep, false, true
	}
	if !r.canary.open {
		return r.startDeployment(ctx, recorder.TaskDeploy, r.sha, p, span, desc)
	}
	p.HoldSeconds = int64(r.holdFor(span) / time.Second)
	dep = r.rec.Create(recorder.TaskDeploy, r.sha, p, recorder.StateInProgress, desc)
	r.canary.open = false
	closing := "canary healthy against the control: " + watch.Healthy(r.out.Canary.Watch) + "; promoted"
	if r.out.WouldHave != nil {
		closing = recorder.Shadow + r.shadowRecord() + "; promoted"
	}
	r.rec.SetStatus(r.canary.dep, recorder.StateSuccess, closing)
	return dep, false, true
}
