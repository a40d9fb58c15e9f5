package action

import (
	"context"
	"fmt"
	"time"

	"github.com/immune-cd/immune/internal/config"
	"github.com/immune-cd/immune/internal/recorder"
	"github.com/immune-cd/immune/internal/run"
	"github.com/immune-cd/immune/internal/sha"
)

// cancelBudget bounds the GitHub calls a cancelled run still makes: the
// runner kills the container seconds after it signals the cancel.
const cancelBudget = 3 * time.Second

// detached is the context for the records a cancelled run still writes.
func detached(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), cancelBudget)
}

// cancelled ends a run whose job was cancelled during phase ph. What was
// running has been stopped by then (the command's process group, the
// watch); nothing new starts. It says what state production is in, marks
// the records in flight "error", and records nothing as healthy.
func (r *runner) cancelled(ctx context.Context, ph run.Phase) {
	r.abort(ctx, ph, run.Cancelled, ExitRegressed, "the job was cancelled", "Cancelled", "cancelled during "+string(ph))
}

// abort ends a run that stopped in phase ph without finishing it (a
// cancel, or immune failing): the verdict, the reason with what production
// runs, and the records in flight closed with desc.
func (r *runner) abort(ctx context.Context, ph run.Phase, v run.Verdict, code int, what, title, desc string) {
	ctx, cancel := detached(ctx)
	defer cancel()
	r.phase = ph
	r.out.StoppedIn = ph
	r.end(v, code, fmt.Sprintf("%s during the %s phase: %s", what, ph, r.production(ph)))
	switch {
	case r.canary.open:
		r.closeCanary(recorder.StateError, desc)
	case r.rollbackDep != nil && !r.rollbackStarted:
		r.rec.SetStatus(r.rollbackDep, recorder.StateError, recorder.NotDeployed+desc)
	case r.rollbackDep != nil:
		r.rec.SetStatus(r.rollbackDep, recorder.StateError, desc)
	case r.dep != nil && !r.deployStarted:
		r.rec.SetStatus(r.dep, recorder.StateError, recorder.NotDeployed+desc)
	case r.dep != nil:
		r.rec.SetStatus(r.dep, recorder.StateError, desc)
	}
	if r.pendingOn != "" {
		r.rec.CommitStatus(r.pendingOn, recorder.CommitError, desc)
	}
	// The records are written now, within the cancel's budget: the runner
	// kills the container soon.
	r.rec.Flush(ctx)
	r.log.Error(title, r.out.Reason)
}

// production says what production runs after a cancel in phase ph.
func (r *runner) production(ph run.Phase) string {
	if msg, ok := r.canaryProduction(ph); ok {
		return msg
	}
	env, sh, target := r.cfg.Environment, sha.Short(r.cfg.SHA), sha.Short(r.target)
	switch r.cfg.Mode {
	case config.ModeWatch:
		if ph == run.Validate {
			return "nothing was watched"
		}
		return fmt.Sprintf("the watch of %s did not finish, so it was not judged", sh)
	case config.ModeRollback:
		to, from := sha.Short(r.out.SHA), sha.Short(r.current)
		switch {
		case ph == run.Confirm:
			return fmt.Sprintf("%s was rolled back to %s, but the rollback was not confirmed healthy", env, to)
		case r.rollbackStarted:
			return fmt.Sprintf("the rollback command was stopped midway, so %s's state is unknown: it was being restored to %s (replacing %s)", env, to, orUnknown(from))
		}
		return fmt.Sprintf("nothing was rolled back; %s still runs %s", env, orUnknown(from))
	}
	switch {
	case ph == run.Confirm:
		return fmt.Sprintf("%s regressed and %s was rolled back to %s, but the rollback was not confirmed healthy", sh, env, target)
	case ph == run.Rollback && r.rollbackStarted:
		return fmt.Sprintf("%s regressed, and the rollback command was stopped midway, so %s's state is unknown: it was being restored to %s", sh, env, target)
	case ph == run.Rollback:
		return fmt.Sprintf("%s regressed and is still live on %s: the rollback to %s was not started", sh, env, target)
	case ph == run.Watch || ph == run.Decide:
		return fmt.Sprintf("%s is live on %s, but its watch did not finish: it was not judged, and nothing was rolled back", sh, env)
	case ph == run.Deploy && r.deployStarted:
		return fmt.Sprintf("the deploy command was stopped midway, so %s may run %s in part, or still %s; nothing was rolled back", env, sh, orUnknown(target))
	}
	return fmt.Sprintf("nothing was deployed; %s still runs what it ran before", env)
}

func orUnknown(s string) string {
	if s == "" {
		return "an unknown build"
	}
	return s
}
