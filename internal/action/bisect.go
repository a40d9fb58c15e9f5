package action

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/immune-cd/immune/internal/bisect"
	"github.com/immune-cd/immune/internal/deploy"
	"github.com/immune-cd/immune/internal/outcome"
	"github.com/immune-cd/immune/internal/recorder"
	"github.com/immune-cd/immune/internal/report"
	"github.com/immune-cd/immune/internal/run"
	"github.com/immune-cd/immune/internal/sha"
	"github.com/immune-cd/immune/internal/watch"
)

// The bisection of a batch (bisect: true). A deploy of more than one
// commit that regressed and was rolled back (its canary removed, or the
// whole fleet rolled back and confirmed) goes on to the bisect phase: the
// batch's commits are read (GitHub's comparison, else the workspace's git
// history, in first-parent order), and each step deploys the middle of
// what is in doubt to the canary (canary-command, IMMUNE_REASON=bisect),
// judges it against the control exactly as a canary is judged
// (watch.Watcher.Canary), and removes it; package bisect picks the steps.
// With bisect-production the steps go to the whole fleet (deploy-command,
// watched as a deploy, then rolled back). Each step is a deploy:bisect
// deployment, never last known good nor what runs now. Then the newest
// commit found good goes through the deploy, watch and decide phases like
// any deploy, under a deploy deployment whose payload names the culprit:
// the line stays stopped for it, and only its author is told.

// bisection is a bisection under way.
type bisection struct {
	search *bisect.Search
	out    *report.Bisection
	// open is the record of the last step, still in progress: it holds the
	// environment until the next record is created, and closing sets
	// status on it (see closeStep).
	open    *recorder.Handle
	closing outcome.Status
	// The step in flight, for a cancel: its commit, whether its deploy
	// started, whether it was put back.
	step                     string
	stepStarted, stepRemoved bool
	removalFailed            bool
	// The batch's verdict, kept while the good part ships; batch is the
	// batch's deploy, watch and rollback while the good part's are in
	// r.out.
	verdict  run.Verdict
	stage    run.Stage
	reason   string
	why      string
	shipping bool
	batch    report.Pass
}

// afterRollback follows a batch that was rolled back: to the bisection
// when one is asked for and the batch can be read and has more than one
// commit; else to the records.
func (r *runner) afterRollback(ctx context.Context) run.Phase {
	if !r.cfg.Bisect || r.bis != nil || r.out.Verdict != run.RolledBack {
		return run.Record
	}
	if r.target == "" {
		r.Warn("Not bisected", fmt.Sprintf("the batch of %s cannot be bisected: the last good commit before it is unknown", sha.Short(r.sha)))
		return run.Record
	}
	var compare bisect.Comparer
	if r.rec.Enabled() && !r.rec.Down() {
		compare = r.rec.Batch
	}
	batch, good, source, err := bisect.Read(ctx, compare, r.d.Git, r.cfg.Workspace, r.target, r.sha)
	if err == nil {
		r.target = good
	}
	switch {
	case ctx.Err() != nil:
		return run.Record
	case err != nil:
		r.Warn("Not bisected", fmt.Sprintf("could not read the commits between %s and %s, so the batch was rolled back whole: %v", sha.Short(r.target), sha.Short(r.sha), err))
		return run.Record
	case len(batch) == 0:
		r.Warn("Not bisected", fmt.Sprintf("%s is not after %s: there is no batch to bisect", sha.Short(r.sha), sha.Short(r.target)))
		return run.Record
	case len(batch) == 1:
		r.out.Culprit = r.sha
		r.Note(fmt.Sprintf("the batch was one commit, %s: it is the culprit, with nothing to bisect", sha.Short(r.sha)))
		return run.Record
	}
	r.bis = &bisection{
		search: bisect.New(batch),
		out: &report.Bisection{Good: r.target, Batch: batch, Source: source, Production: !r.hasCanary(),
			MaxSteps: bisect.MaxSteps(len(batch)), Steps: []report.BisectStep{}},
	}
	r.out.Bisect = r.bis.out
	return run.Bisect
}

// removalBudget bounds a step's removal once the job was cancelled: the
// runner stops a cancelled job's container seconds later.
const removalBudget = 7 * time.Second

// bisectPhase runs the steps, within bisect-timeout, then ships the newest
// commit found good (to the deploy phase), or goes to the records.
func (r *runner) bisectPhase(ctx context.Context) run.Phase {
	b, cfg := r.bis, r.cfg
	b.verdict, b.stage, b.reason, b.why = r.out.Verdict, r.out.Stage, r.out.Reason, r.why
	on := "the canary"
	watchFor := cfg.CanaryDuration
	if b.out.Production {
		on, watchFor = "the whole fleet", cfg.Duration
	}
	n := len(b.out.Batch)
	r.log.Printf("Bisecting the batch of %d commits after %s, up to %s (from %s): at most %d steps on %s, within %s (bisect-timeout).",
		n, sha.Short(r.target), sha.Short(r.sha), b.out.Source, b.out.MaxSteps, on, report.FormatDuration(cfg.BisectTimeout))
	deadline := r.d.Clock.Now().Add(cfg.BisectTimeout)
	var slowest time.Duration // the longest a step's commands took
	for {
		i, mid, ok := b.search.Next()
		if !ok {
			break
		}
		if left := deadline.Sub(r.d.Clock.Now()); left < watchFor+slowest {
			b.search.Stop()
			b.out.Stopped = fmt.Sprintf("bisect-timeout (%s) left %s, less than a step takes", report.FormatDuration(cfg.BisectTimeout), report.FormatDuration(max(left, 0)))
			break
		}
		step := r.bisectStep(ctx, i, mid)
		if ctx.Err() != nil {
			return run.Done
		}
		for _, s := range []*report.Step{step.Deploy, step.Removal} {
			if s != nil {
				slowest = max(slowest, s.End.Sub(s.Start))
			}
		}
		res := bisect.Undecided
		if step.Deploy.Error == "" && step.Watch != nil {
			switch step.Watch.Verdict {
			case run.Healthy:
				res = bisect.Good
			case run.Regressed:
				res = bisect.Bad
			}
		}
		_ = b.search.Record(i, res)
		culprit := res == bisect.Bad && b.search.Culprit() == mid
		last := &b.out.Steps[len(b.out.Steps)-1]
		last.Result, last.Culprit = res.String(), culprit
		v, why := run.Inconclusive, ""
		switch {
		case step.Deploy.Error != "":
			why = "its deploy failed"
		case step.Watch != nil:
			v, why = step.Watch.Verdict, step.Watch.Why
			if v == run.Healthy {
				why = watch.Healthy(step.Watch)
			}
		}
		removal := ""
		if step.Removal != nil {
			removal = step.Removal.Error
		}
		st, cs := outcome.Step(mid, r.sha, v, why, culprit, removal)
		b.closing = st
		r.rec.CommitStatus(cs.SHA, cs.State, cs.Description)
		r.log.Printf("Step %d: %s is %s%s.", len(b.out.Steps), sha.Short(mid), res, map[bool]string{true: ": the first bad commit", false: ""}[culprit])
		if b.removalFailed {
			r.closeStep()
			r.end(run.RollbackFailed, ExitRegressed, fmt.Sprintf("%s; then a step of the bisection could not be removed: %s may still run %s", b.reason, on, sha.Short(mid)))
			r.log.Error("Bisection step not removed", fmt.Sprintf("removing %s from %s failed: %s; the bisection stopped there", sha.Short(mid), on, removal))
			return run.Record
		}
		if res == bisect.Undecided {
			b.out.Stopped = fmt.Sprintf("the step on %s could not decide (%s)", sha.Short(mid), orUnknown(why))
		}
	}
	b.step = ""
	return r.concludeBisection()
}

// concludeBisection says what the search found, and ships the good part.
func (r *runner) concludeBisection() run.Phase {
	b := r.bis
	s := b.search
	if c := s.Culprit(); c != "" {
		b.out.Culprit, r.out.Culprit = c, c
		r.log.Printf("Bisection: %s is the first bad commit of the batch (%d steps).", c, len(b.out.Steps))
	} else {
		b.out.Suspects = s.Suspects()
		r.Note(fmt.Sprintf("the bisection could not name the culprit: %s; it is one of %d commits, %s to %s", b.out.Stopped, len(b.out.Suspects), sha.Short(b.out.Suspects[0]), sha.Short(s.OldestBad())))
	}
	good := s.Good()
	if good == "" {
		r.closeStep()
		r.Note(fmt.Sprintf("no commit of the batch was found good: %s still runs %s", r.cfg.Environment, sha.Short(r.target)))
		return run.Record
	}
	b.out.Shipped, b.shipping = good, true
	b.batch = report.Pass{Deploy: r.out.Deploy, Watch: r.out.Watch, Rollback: r.out.Rollback, RollbackWatch: r.out.RollbackWatch}
	r.out.Deploy, r.out.Watch, r.out.Rollback, r.out.RollbackWatch = nil, nil, nil, nil
	r.sha = good
	r.deploy, r.rollback, r.pendingOn, r.held, r.heldWhy, r.why = record{}, record{}, "", outcome.NotHeld, "", ""
	r.log.Printf("Shipping %s, the part of the batch found good, to the whole of %s.", good, r.cfg.Environment)
	return run.Deploy
}

// bisectStep deploys commit mid (the index-th of the batch) for one step,
// judges it, and removes it, whatever happened: a cancelled run too, within
// removalBudget. Its record's final status waits in b.closing.
func (r *runner) bisectStep(ctx context.Context, index int, mid string) report.BisectStep {
	b, cfg := r.bis, r.cfg
	stage := run.StageCanary
	where, span := "the canary of "+cfg.Environment, cfg.StartupTimeout+cfg.CanaryDuration
	if b.out.Production {
		stage = run.StageFull
		where, span = cfg.Environment, cfg.StartupTimeout+cfg.Duration
	}
	step := report.BisectStep{SHA: mid, Index: index, Start: r.d.Clock.Now()}
	b.step, b.stepStarted, b.stepRemoved = mid, false, false
	p := r.payload()
	p.PreviousSHA = r.target
	p.HoldSeconds = int64(r.holdFor(span+cfg.DeployTimeout) / time.Second)
	n := len(b.out.Steps) + 1
	h := r.rec.Create(recorder.TaskBisect, mid, p, recorder.StateInProgress,
		fmt.Sprintf("bisecting %s's batch: step %d, %s on %s", sha.Short(r.sha), n, sha.Short(mid), where))
	if n == 1 {
		// The batch's records close once the first step holds the
		// environment; people hear when the bisection ends.
		r.apply(outcome.Batch(r.facts()))
	} else {
		r.closeStep()
	}
	b.open = h
	r.rec.CommitStatus(mid, recorder.CommitPending, fmt.Sprintf("bisection of %s's batch: judging %s on %s", sha.Short(r.sha), sha.Short(mid), where))
	if ctx.Err() != nil {
		// Cancelled before the step deployed anything.
		step.End = r.d.Clock.Now()
		b.out.Steps = append(b.out.Steps, step)
		return step
	}
	b.stepStarted = true
	step.Deploy = r.runStepAs(ctx, fmt.Sprintf("Bisection step %d: deploy %s (%d of %d) to %s", n, sha.Short(mid), index+1, len(b.out.Batch), where),
		fmt.Sprintf("Step %d's deploy of %s", n, sha.Short(mid)), deploy.Request{
			SHA: mid, PreviousSHA: r.target, Environment: cfg.Environment, Reason: deploy.ReasonBisect, Stage: string(stage),
		})
	if ctx.Err() == nil && step.Deploy.Error == "" {
		if b.out.Production {
			step.Watch = r.watch.Run(ctx, watch.Target{Title: fmt.Sprintf("Bisection step %d: watching %s", n, sha.Short(mid)), SHA: mid, Previous: r.target, Duration: cfg.Duration, Baseline: r.baseline})
		} else {
			step.Watch, step.Control, _ = r.watch.Canary(ctx, mid, r.target, &report.CanarySeries{})
		}
	}
	rctx, stop := deploy.AfterCancel(ctx, removalBudget)
	step.Removal = r.runStepAs(rctx, fmt.Sprintf("Bisection step %d: put %s back on %s", n, where, sha.Short(r.target)),
		fmt.Sprintf("Step %d's removal", n), deploy.Request{
			SHA: r.target, PreviousSHA: mid, Environment: cfg.Environment, Reason: deploy.ReasonRollback, Stage: string(stage),
		})
	stop()
	b.stepRemoved = step.Removal.Error == ""
	b.removalFailed = !b.stepRemoved && ctx.Err() == nil
	step.End = r.d.Clock.Now()
	b.out.Steps = append(b.out.Steps, step)
	return step
}

// closeStep closes the last step's record with its final status.
func (r *runner) closeStep() {
	b := r.bis
	if b == nil || b.open == nil {
		return
	}
	r.rec.SetStatus(b.open, b.closing.State, b.closing.Description)
	b.open = nil
}

// bisectFacts are what the outcome needs of the bisection.
func (r *runner) bisectFacts() *outcome.Bisection {
	b := r.bis
	if b == nil || b.out.Steps == nil {
		return nil
	}
	f := &outcome.Bisection{
		Head: r.cfg.SHA, Culprit: b.search.Culprit(), Suspect: b.search.OldestBad(), Shipped: b.out.Shipped,
		Production: b.out.Production, Step: b.step, StepStarted: b.stepStarted, StepRemoved: b.stepRemoved,
		RemovalFailed: b.removalFailed,
	}
	return f
}

// settleBisection puts the batch's deploy, watch and rollback back in the
// report and the good part's under the bisection, and gives the run its
// verdict: the batch's (it regressed and was rolled back), unless the good
// part regressed too. Run once, by finish.
func (r *runner) settleBisection() {
	b := r.bis
	if b == nil || !b.shipping {
		return
	}
	b.shipping = false
	ship := &report.Pass{Deploy: r.out.Deploy, Watch: r.out.Watch, Rollback: r.out.Rollback, RollbackWatch: r.out.RollbackWatch}
	r.out.Deploy, r.out.Watch, r.out.Rollback, r.out.RollbackWatch = b.batch.Deploy, b.batch.Watch, b.batch.Rollback, b.batch.RollbackWatch
	b.out.Ship = ship
	// The stage says how far the batch's head went.
	r.out.Stage = b.stage
	v := r.out.Verdict
	switch v {
	case run.Cancelled, run.None:
		return
	case run.Healthy, run.Inconclusive:
		ship.Verdict = v
		if v == run.Healthy {
			r.out.Shipped = r.sha
		}
		r.end(b.verdict, ExitRegressed, b.reason)
		if v == run.Inconclusive {
			r.Note(fmt.Sprintf("%s, the good part of the batch, was deployed, but its watch could not judge it: %s", sha.Short(r.sha), reasonOf(ship.Watch)))
		}
	default:
		ship.Verdict = v
		r.out.Culprit = ""
		r.end(v, ExitRegressed, fmt.Sprintf("%s; then %s, the part of the batch the bisection found good, regressed on the whole fleet too: %s", b.reason, sha.Short(r.sha), r.out.Reason))
	}
}

func reasonOf(w *report.Watch) string {
	if w == nil {
		return "not watched"
	}
	return strings.TrimSuffix(w.Reason, ".")
}

// bisectStory makes s the story of what the bisection found: the culprit
// (or the oldest commit seen to regress, with the suspects before it), the
// step that judged it, and what runs now.
func (r *runner) bisectStory(s *report.Story) {
	b := r.bis
	if b == nil {
		return
	}
	found := b.search.Culprit()
	s.BadSHA = b.search.OldestBad()
	s.RunningSHA = r.target
	shipped := b.out.Ship == nil && b.shipping || b.out.Ship != nil && b.out.Ship.Verdict != "" && b.out.Ship.Verdict != run.Cancelled
	if b.out.Shipped != "" && shipped {
		s.RunningSHA = b.out.Shipped
	}
	s.Watch, s.Chart = nil, report.BisectChart(r.out)
	for _, st := range b.out.Steps {
		if sha.Same(st.SHA, s.BadSHA) && st.Watch != nil {
			s.Watch, s.Reason = st.Watch, st.Watch.Reason
		}
	}
	if s.Watch == nil {
		// The head itself: its watch, or its canary's.
		s.Watch, s.Reason = r.out.Watch, b.reason
		if b.shipping {
			s.Watch = b.batch.Watch
		}
		if s.Watch == nil && r.out.Canary != nil {
			s.Watch = r.out.Canary.Watch
		}
	}
	s.Bisect = &report.BisectStory{
		Head: r.cfg.SHA, Commits: len(b.out.Batch), Steps: len(b.out.Steps), Production: b.out.Production,
		Named: found != "", Suspects: len(b.search.Suspects()), Shipped: s.RunningSHA != r.target,
		Stopped: r.out.StoppedIn == run.Bisect,
	}
}
