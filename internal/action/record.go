package action

import (
	"context"

	"github.com/immune-cd/immune/internal/outcome"
	"github.com/immune-cd/immune/internal/recorder"
	"github.com/immune-cd/immune/internal/run"
	"github.com/immune-cd/immune/internal/watch"
)

// recordPhase writes what a finished run leaves behind, as package outcome
// decides it from the run's facts: the final statuses, the commit status,
// the state file, and what people are told.
func (r *runner) recordPhase(ctx context.Context) run.Phase {
	o := outcome.Decide(r.facts())
	r.apply(o)
	if r.cfg.Mode == run.ModeDeploy && r.bis == nil && r.out.Verdict == run.Healthy {
		r.out.Shipped = r.sha
	}
	if o.WarnDegraded && r.out.Verdict == run.Healthy {
		r.watch.WarnIfDegraded(r.out.Watch)
	}
	if r.cfg.Mode == run.ModeRollback && r.out.Verdict == run.RollbackFailed {
		r.log.Error("Rollback failed — "+r.cfg.Environment+" may be down", r.out.Reason)
	}
	r.tellEnd(o)
	r.shadowExit()
	return run.Done
}

// facts are what the run knows now, for package outcome.
func (r *runner) facts() outcome.Facts {
	f := outcome.Facts{
		Mode: r.cfg.Mode, Stage: r.out.Stage, Verdict: r.out.Verdict, Environment: r.cfg.Environment, Deployer: r.cfg.Deployer,
		SHA: r.sha, Target: r.target, Current: r.current, PendingOn: r.pendingOn,
		HasDeploy: r.deploy.dep != nil, DeployStarted: r.deploy.started,
		HasRollback: r.rollback.dep != nil, RollbackRan: r.rollback.started,
		CanaryOpen: r.canary.open, CanaryStarted: r.canary.started, CanaryRemoving: r.canaryRemoving,
		CanaryPromoted: r.out.Canary != nil && r.out.Canary.Promoted,
		RolledBack:     r.out.RolledBack, Held: r.held,
		Why: r.why, Healthy: watch.Healthy(r.out.Watch), RollbackHealthy: watch.Healthy(r.out.RollbackWatch),
		Bisect: r.bisectFacts(), BisectOpen: r.bis != nil && r.bis.open != nil,
	}
	if rw := r.out.RollbackWatch; rw != nil {
		f.RollbackWhy = rw.Why
	}
	f.Shadow, f.WouldHave = r.shadow(), r.shadowRecord()
	f.DeployFailed = r.out.Deploy != nil && r.out.Deploy.Error != ""
	if r.cfg.Mode == run.ModeRollback {
		f.SHA = r.target
	}
	return f
}

// apply writes an outcome: what the state file remembers, the final
// statuses of the run's deployments, and the commit status.
func (r *runner) apply(o outcome.Outcome) {
	for _, m := range o.Remember {
		r.remember(m.SHA, m.Verdict)
	}
	for _, s := range o.Statuses {
		var h *recorder.Handle
		switch s.Of {
		case outcome.DeployRecord:
			h = r.deploy.dep
		case outcome.RollbackRecord:
			h = r.rollback.dep
		case outcome.CanaryRecord:
			h, r.canary.open = r.canary.dep, false
		case outcome.BisectRecord:
			if r.bis != nil {
				h, r.bis.open = r.bis.open, nil
			}
		}
		r.rec.SetStatus(h, s.State, s.Description)
	}
	if c := o.Commit; c != nil {
		r.rec.CommitStatus(c.SHA, c.State, c.Description)
	}
}
