package action

import (
	"context"
	"fmt"

	"github.com/immune-cd/immune/internal/recorder"
	"github.com/immune-cd/immune/internal/run"
	"github.com/immune-cd/immune/internal/sha"
	"github.com/immune-cd/immune/internal/target"
	"github.com/immune-cd/immune/internal/version"
	"github.com/immune-cd/immune/internal/watch"
)

// validateRollback (manual rollback, workflow_dispatch): waits for the
// environment, then finds what runs now and the commit to roll back to:
// the sha input, or one step back.
func (r *runner) validateRollback(ctx context.Context) run.Phase {
	cfg := r.cfg
	if !r.checkStateFile() || !r.checkDeployer(ctx) {
		return run.Done
	}
	if !r.awaitEnvironment(ctx) {
		return run.Done
	}
	current, err := r.targets().Current(ctx)
	if err != nil {
		return r.refuse("Rollback not started", err.Error())
	}
	target, source, err := r.targets().Manual(ctx, current)
	if err != nil {
		return r.refuse("Rollback not started", err.Error())
	}
	if !r.checkMetrics(ctx, target, current, false) {
		return run.Done
	}
	r.current, r.target = current, target
	r.out.SHA, r.out.PreviousSHA, r.out.PreviousSource = target, current, source
	r.out.Links.Commit, r.out.Links.PreviousCommit = r.ev.CommitURL(target), r.ev.CommitURL(current)
	r.out.Reason = cfg.Reason
	replacing := "what runs now is unknown"
	if current != "" {
		replacing = "replacing " + current
	}
	r.log.Printf("immune %s: rolling %s back to %s (%s); %s", version.String(), cfg.Environment, target, source, replacing)
	if cfg.Reason != "" {
		r.log.Printf("Reason: %s", cfg.Reason)
	}
	return run.Rollback
}

// targets finds what runs and what to roll back to (package target).
func (r *runner) targets() target.Finder {
	return target.Finder{Config: r.cfg, Records: r.rec, Before: r.ev.Before, Warn: r.Warn,
		Resolve: func(ctx context.Context, want string) (string, error) {
			return r.resolve(ctx, want, "check that %s is a commit of this repository: %w")
		}}
}

// manualRollback records the rollback deployment and rolls back.
func (r *runner) manualRollback(ctx context.Context) run.Phase {
	cfg := r.cfg
	p := r.payload()
	p.RolledBackFrom, p.Reason, p.Manual = r.current, cfg.Reason, true
	dep, waited, ok := r.startDeployment(ctx, recorder.TaskRollback, r.target, p, cfg.StartupTimeout+cfg.Duration,
		"rolling "+cfg.Environment+" back to "+sha.Short(r.target)+" by hand")
	r.rollback.dep = dep
	if !ok || ctx.Err() != nil {
		return run.Done
	}
	if waited {
		r.Note(fmt.Sprintf("another run deployed to %s while this one waited; the rollback still goes to %s, as asked", cfg.Environment, r.target))
	}
	r.setPending(r.target, fmt.Sprintf("rolling %s back to %s", cfg.Environment, sha.Short(r.target)))
	step := r.rollBack(ctx, r.current)
	if ctx.Err() != nil {
		return run.Done
	}
	if step.Error != "" {
		r.why = r.failedWhy("rollback")
		r.end(run.RollbackFailed, ExitRegressed, fmt.Sprintf("%s for %s failed: %s", r.cfg.Deployer.Step("rollback"), r.target, step.Error))
		return run.Record
	}
	return run.Confirm
}

// confirmManual watches the build rolled back to.
func (r *runner) confirmManual(ctx context.Context) run.Phase {
	w := r.watch.Run(ctx, watch.Target{Title: "Watching the rollback to " + sha.Short(r.target), SHA: r.target, Previous: r.current, Duration: r.cfg.Duration})
	if ctx.Err() != nil {
		return run.Done
	}
	r.out.Watch = w
	if w.Verdict == run.Inconclusive {
		r.why = w.Why
		r.end(run.Inconclusive, ExitRegressed, fmt.Sprintf("%s was rolled back to %s, but its watch was inconclusive: %s", r.cfg.Environment, r.target, w.Reason))
		r.log.Error("Rollback not confirmed", r.out.Reason)
		return run.Record
	}
	if w.Verdict != run.Healthy {
		r.why = w.Why
		r.end(run.RollbackFailed, ExitRegressed, fmt.Sprintf("%s is not healthy after the rollback: %s", r.target, w.Reason))
		return run.Record
	}
	reason := r.cfg.Reason
	if reason == "" {
		reason = w.Reason
	}
	r.end(run.RolledBack, ExitOK, reason)
	r.log.Printf("Rolled %s back to %s: %s", r.cfg.Environment, r.target, w.Reason)
	return run.Record
}
