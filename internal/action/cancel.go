package action

import (
	"context"
	"fmt"
	"time"

	"github.com/immune-cd/immune/internal/outcome"
	"github.com/immune-cd/immune/internal/run"
)

// cancelBudget bounds the GitHub calls a cancelled run still makes: the
// runner kills the container seconds after it signals the cancel.
const cancelBudget = 3 * time.Second

// cancelled ends a run whose job was cancelled during phase ph. What was
// running has been stopped by then (the command's process group, the
// watch); nothing new starts. It says what state production is in, marks
// the records in flight "error", and records nothing as healthy.
func (r *runner) cancelled(ctx context.Context, ph run.Phase) {
	r.abort(ctx, ph, run.Cancelled, ExitRegressed, "the job was cancelled", "Cancelled", "cancelled during "+string(ph))
}

// abort ends a run that stopped in phase ph without finishing it (a
// cancel, or immune failing): the verdict, the reason with what production
// runs, and the records in flight closed with desc, as package outcome
// decides.
func (r *runner) abort(ctx context.Context, ph run.Phase, v run.Verdict, code int, what, title, desc string) {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cancelBudget)
	defer cancel()
	r.phase = ph
	r.out.StoppedIn = ph
	f := r.facts()
	f.Stopped, f.StoppedDesc = ph, desc
	o := outcome.Decide(f)
	// What people hear (a bisection's batch, which regressed and was
	// rolled back) is told as the run stood, before the stop's reason
	// replaces the regression's.
	r.tellEnd(o)
	r.end(v, code, fmt.Sprintf("%s during the %s phase: %s", what, ph, o.Production))
	r.apply(o)
	// The records are written now, within the cancel's budget: the runner
	// kills the container soon.
	r.rec.Flush(ctx)
	r.log.Error(title, r.out.Reason)
}

func orUnknown(s string) string {
	if s == "" {
		return "an unknown build"
	}
	return s
}
