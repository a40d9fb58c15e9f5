package action

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/immune-cd/immune/internal/deploy"
	"github.com/immune-cd/immune/internal/outcome"
	"github.com/immune-cd/immune/internal/recorder"
	"github.com/immune-cd/immune/internal/report"
	"github.com/immune-cd/immune/internal/run"
	"github.com/immune-cd/immune/internal/sha"
	"github.com/immune-cd/immune/internal/version"
	"github.com/immune-cd/immune/internal/watch"
)

// validateDeploy: nothing to deploy for a deleted ref; the commit must be
// one GitHub knows (a short SHA is resolved); the environment must be free;
// then the rollback target is read.
func (r *runner) validateDeploy(ctx context.Context) run.Phase {
	if r.ev.Deleted {
		r.end(run.Skipped, ExitOK, fmt.Sprintf("the push deleted %s: there is nothing to deploy", orUnknown(r.ev.Ref)))
		r.log.Printf("Skipped: %s.", r.out.Reason)
		return run.Done
	}
	if !r.checkStateFile() || !r.resolveSHA(ctx) || !r.checkDeployer(ctx) {
		return run.Done
	}
	if !r.awaitEnvironment(ctx) {
		return run.Done
	}
	r.findTarget(ctx)
	if !r.checkMetrics(ctx, r.cfg.SHA, r.target, true) {
		return run.Done
	}
	if r.cfg.BaselineDuration > 0 {
		return run.Baseline
	}
	return r.firstDeploy()
}

// resolveSHA makes cfg.SHA a full commit id when GitHub can say which
// commit it is: commit statuses need one, and a short SHA must not be
// deployed as something else. Without GitHub (the CLI), refs are deployed
// as given.
func (r *runner) resolveSHA(ctx context.Context) bool {
	if sha.IsFull(r.cfg.SHA) || !r.rec.Enabled() {
		return true
	}
	full, err := r.resolve(ctx, r.cfg.SHA, "tell which commit %s is, so nothing was deployed: %v; pass the full 40-character SHA")
	if err != nil {
		r.refuse("Invalid input", err.Error())
		return false
	}
	r.log.Printf("Resolved %s to %s.", r.cfg.SHA, full)
	r.cfg.SHA, r.out.SHA, r.sha = full, full, full
	return true
}

// resolve returns the full SHA of the commit want of this repository,
// through GitHub; cannot says, with want and the error, what could not be
// done when GitHub cannot tell.
func (r *runner) resolve(ctx context.Context, want, cannot string) (string, error) {
	full, err := r.rec.Resolve(ctx, want)
	switch {
	case errors.Is(err, recorder.ErrNoSuchCommit):
		return "", fmt.Errorf("input sha: %s is not a commit of %s", want, r.ev.Repository)
	case err != nil:
		return "", fmt.Errorf("input sha: cannot "+cannot, want, err)
	}
	return full, nil
}

// findTarget finds the commit to roll back to, and says where from.
func (r *runner) findTarget(ctx context.Context) {
	r.target, r.targetSource = r.targets().Rollback(ctx)
	r.out.PreviousSHA, r.out.PreviousSource = r.target, r.targetSource
	r.out.Links.Commit, r.out.Links.PreviousCommit = r.ev.CommitURL(r.cfg.SHA), r.ev.CommitURL(r.target)
	if r.target != "" {
		r.log.Printf("immune %s: deploying %s to %s; rollback target %s (from %s)", version.String(), r.cfg.SHA, r.cfg.Environment, r.target, r.targetSource)
	} else {
		r.log.Printf("immune %s: deploying %s to %s; no rollback target known", version.String(), r.cfg.SHA, r.cfg.Environment)
	}
}

// baseline probes the current production, to judge the new build against.
func (r *runner) baselinePhase(ctx context.Context) run.Phase {
	r.baseline = r.watch.Baseline(ctx, r.target)
	if r.baseline != nil {
		r.out.Baseline = r.baseline.Watch
	}
	return r.firstDeploy()
}

// deployPhase records the deployment and deploys.
func (r *runner) deployPhase(ctx context.Context) run.Phase {
	cfg := r.cfg
	p := r.payload()
	p.PreviousSHA = r.target
	if b := r.bis; b != nil {
		p.Culprit = b.search.OldestBad()
	}
	dep, waited, ok := r.openDeployment(ctx, p, "immune is deploying and watching "+sha.Short(r.sha))
	r.deploy.dep = dep
	if !ok || ctx.Err() != nil {
		return run.Done
	}
	if waited {
		// Another run deployed meanwhile: it may be the better target now.
		r.findTarget(ctx)
	}
	r.setPending(r.sha, fmt.Sprintf("watching %s on %s", sha.Short(r.sha), cfg.Environment))

	r.deploy.started = true
	r.out.Stage = run.StageFull
	step := r.runStep(ctx, "Deploy", deploy.Request{
		SHA: r.sha, PreviousSHA: r.target, Environment: cfg.Environment, Reason: deploy.ReasonDeploy, Stage: string(run.StageFull),
	})
	r.out.Deploy = step
	if ctx.Err() != nil {
		return run.Done
	}
	if step.NotStarted && !r.canary.started && r.bis == nil {
		return r.notStarted("deploy", step)
	}
	if step.Error != "" {
		// A failed deploy may have half-applied: it is rolled back like a
		// regression.
		r.end(run.Regressed, ExitRegressed, r.failed("deploy")+": "+step.Error)
		r.why = r.failedWhy("deploy")
		return run.Decide
	}
	return run.Watch
}

// notStarted ends a run whose first step the deployer refused before
// anything began (GitHub refused the dispatch; the hook refused the call):
// production is as it was, so there is nothing to roll back or remove, and
// the build was not judged. The run fails, and says so; the line is not
// stopped, for no build regressed.
func (r *runner) notStarted(step string, s *report.Step) run.Phase {
	what := r.cfg.Deployer.Step(step)
	r.end(run.Inconclusive, ExitRegressed, fmt.Sprintf("%s was not started, so nothing was deployed and %s still runs what it ran: %s", what, r.cfg.Environment, s.Error))
	r.why = strings.TrimPrefix(what, "the ") + " not started"
	return run.Decide
}

// setPending sets the commit status pending and remembers on which commit,
// so that a cancel can close it.
func (r *runner) setPending(commit, desc string) {
	r.rec.CommitStatus(commit, recorder.CommitPending, desc)
	r.pendingOn = commit
}

// watchPhase watches the new build (deploy and watch modes).
func (r *runner) watchPhase(ctx context.Context) run.Phase {
	cfg := r.cfg
	// Without sha (watch mode from the CLI, no version expected) the watch
	// judges whatever answers, and there is no commit to mark or remember.
	what := sha.Short(r.sha)
	if what == "" {
		what = "what runs"
	} else if r.pendingOn == "" {
		r.setPending(r.sha, fmt.Sprintf("watching %s on %s", what, cfg.Environment))
	}
	t := watch.Target{Title: "Watching " + what, SHA: r.sha, Duration: cfg.Duration, Baseline: r.baseline}
	if cfg.Mode == run.ModeDeploy {
		t.Previous = r.target
	}
	w := r.watch.Run(ctx, t)
	if ctx.Err() != nil {
		return run.Done
	}
	r.out.Watch = w
	code := ExitOK
	if w.Verdict != run.Healthy {
		code = ExitRegressed
		r.why = w.Why
	}
	r.end(w.Verdict, code, w.Reason)
	return run.Decide
}

// decide acts on the verdict: a healthy build is recorded; a regression is
// rolled back unless auto-rollback is off, there is no target, or a newer
// deploy superseded this one.
func (r *runner) decide(ctx context.Context) run.Phase {
	if r.shadow() {
		r.shadowDecide()
		if r.out.WouldHave != nil {
			return run.Record
		}
	}
	switch r.out.Verdict {
	case run.Healthy:
		if !r.d.Plain {
			r.log.Printf("Verdict: healthy. %s", r.out.Reason)
		}
		return run.Record
	case run.Inconclusive:
		// Not seen to regress: nothing to roll back. Not seen healthy
		// either: the records say so, and the job fails.
		r.log.Error(fmt.Sprintf("%s on %s: inconclusive", orUnknown(sha.Short(r.sha)), r.cfg.Environment),
			r.out.Reason+"; the build was not judged healthy: nothing was rolled back, and it is not recorded as healthy")
		return run.Record
	}
	what := sha.Short(r.sha)
	if what == "" {
		what = "what runs" // a watch of an unnamed build
	}
	r.log.Error(fmt.Sprintf("%s regressed on %s", what, r.cfg.Environment), r.out.Reason)
	r.tellRegressed()
	if r.cfg.Mode != run.ModeDeploy {
		return run.Record
	}
	switch {
	case !r.cfg.AutoRollback:
		r.hold(outcome.AutoRollback, "auto-rollback is false: nothing was rolled back")
	case r.target == "":
		r.hold(outcome.NoTarget, "nothing was rolled back: no "+strings.TrimPrefix(r.cfg.Input("previous-sha"), "the ")+", no healthy GitHub deployment of immune's, no healthy deploy in the state file, and no usable before in the push event")
	case r.superseded(ctx):
		// superseded said why.
	default:
		return run.Rollback
	}
	return run.Record
}

// hold notes why a regression is not rolled back.
func (r *runner) hold(h outcome.Held, why string) {
	r.held, r.heldWhy = h, why
	r.Note(why)
}

// superseded reports whether something newer was deployed after this run's
// deployment (see recorder.Superseding), and holds the rollback if so.
func (r *runner) superseded(ctx context.Context) bool {
	n, ok := r.rec.Superseding(ctx, r.deploy.dep)
	if !ok {
		return false
	}
	by := "by another run"
	if n.Origin != recorder.Ours {
		by = "by hand or by another tool"
	}
	why := fmt.Sprintf("%s was deployed to %s after this deploy started (deployment %d, %s, %s); rolling back would undo it",
		n.SHA, r.cfg.Environment, n.ID, n.CreatedAt.UTC().Format("15:04:05 MST"), by)
	r.held, r.heldWhy = outcome.Superseded, why
	r.Note("not rolling back: " + why)
	r.log.Error("Superseded", fmt.Sprintf("a newer deployment of %s exists; %s was not rolled back", sha.Short(n.SHA), sha.Short(r.sha)))
	return true
}

// rollbackPhase records the rollback deployment, closes the regressed one,
// and rolls back.
func (r *runner) rollbackPhase(ctx context.Context) run.Phase {
	if !r.cfg.Bisect {
		// With bisect, who is told waits for the bisection: the culprit's
		// author alone, if it names one.
		r.tellRollingBack()
	}
	cfg := r.cfg
	p := r.payload()
	p.RolledBackFrom, p.Reason = r.sha, r.out.Reason
	p.HoldSeconds = int64(r.holdFor(cfg.RollbackDuration).Seconds())
	// The rollback's record comes before the regressed deploy's failure, so
	// that another run never finds the environment free in between.
	r.rollback.dep = r.rec.Create(recorder.TaskRollback, r.target, p, recorder.StateInProgress, "rolling back from "+sha.Short(r.sha))
	if r.rollback.dep != nil {
		r.out.Links.RollbackDeployment = r.ev.DeploymentsURL()
	}
	r.rec.SetStatus(r.deploy.dep, recorder.StateFailure, "regressed: "+r.why)
	step := r.rollBack(ctx, r.sha)
	if ctx.Err() != nil {
		return run.Done
	}
	if step.Error != "" {
		r.end(run.RollbackFailed, ExitRegressed, r.out.Reason)
		r.log.Error("Rollback failed", fmt.Sprintf("%s for %s failed: %s; %s may be down", r.cfg.Deployer.Step("rollback"), r.target, step.Error, cfg.Environment))
		return run.Record
	}
	return run.Confirm
}

// confirm watches the rolled-back build.
func (r *runner) confirm(ctx context.Context) run.Phase {
	w := r.watch.Run(ctx, watch.Target{Title: "Watching the rollback to " + sha.Short(r.target), SHA: r.target, Previous: r.sha, Duration: r.cfg.RollbackDuration})
	if ctx.Err() != nil {
		return run.Done
	}
	r.out.RollbackWatch = w
	if w.Verdict == run.Inconclusive {
		// The regression was rolled back, but the rolled-back build was not
		// seen healthy: neither rolled-back nor rollback-failed.
		r.end(run.Inconclusive, ExitRegressed, fmt.Sprintf("%s; rolled back to %s, whose watch was inconclusive: %s", r.out.Reason, r.target, w.Reason))
		r.log.Error("Rollback not confirmed", fmt.Sprintf("%s was rolled back to %s, but the rollback's watch was inconclusive: %s", sha.Short(r.sha), r.target, w.Reason))
		return run.Record
	}
	if w.Verdict != run.Healthy {
		r.end(run.RollbackFailed, ExitRegressed, r.out.Reason)
		r.log.Error("Rollback failed", fmt.Sprintf("%s is not healthy after the rollback: %s; %s may be down", r.target, w.Reason, r.cfg.Environment))
		return run.Record
	}
	r.end(run.RolledBack, ExitRegressed, r.out.Reason)
	r.log.Printf("Rolled back to %s: %s", r.target, w.Reason)
	return r.afterRollback(ctx)
}

// validateWatch: the watched commit is resolved for its commit status.
func (r *runner) validateWatch(ctx context.Context) run.Phase {
	if !r.checkStateFile() || !r.resolveSHA(ctx) || !r.checkMetrics(ctx, r.cfg.SHA, "", true) {
		return run.Done
	}
	r.out.Links.Commit = r.ev.CommitURL(r.cfg.SHA)
	r.log.Printf("immune %s: watching %s on %s", version.String(), orUnknown(r.cfg.SHA), r.cfg.Environment)
	return run.Watch
}
