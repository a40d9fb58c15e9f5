package action

import (
	"fmt"

	"github.com/immune-cd/immune/internal/notify"
	"github.com/immune-cd/immune/internal/report"
	"github.com/immune-cd/immune/internal/run"
	"github.com/immune-cd/immune/internal/sha"
)

// Shadow mode (the shadow input, deploy mode): every watch runs and judges
// as usual, but where a live run would act, a shadow run notes what it
// would have done and goes on as if the build had passed: a canary that
// regressed is promoted, a regression is not rolled back. The first such
// point is the run's verdict (the live run would have stopped there); the
// webhook hears would-roll-back then, and nobody else is told. What the
// records say is package outcome's (its shadow rows); the exit code is 0
// for any verdict, 1 only when the deploy command itself failed.

// shadow reports whether this run is in shadow mode.
func (r *runner) shadow() bool { return r.cfg.Shadow && r.cfg.Mode == run.ModeDeploy }

// wouldHave notes what a live run would have done now: action, after the
// watch w found verdict for reason (why, in a few words). Only the first
// counts: the live run would have stopped there. It tells the webhook.
func (r *runner) wouldHave(action string, w *report.Watch, verdict run.Verdict, reason, why string) {
	if r.out.WouldHave != nil {
		return
	}
	after := w.DetectedAfter()
	if w == nil && r.out.Deploy != nil {
		after = r.out.Deploy.End.Sub(r.out.Deploy.Start)
	}
	r.out.WouldHave = &report.WouldHave{Action: action, Target: r.target, After: after, Reason: reason, AfterSeconds: after.Seconds()}
	r.shadowVerdict, r.shadowReason, r.shadowWhy = verdict, reason, why
	what := "rolled " + sha.Short(r.cfg.SHA) + " back"
	if r.target != "" {
		what += " to " + sha.Short(r.target)
	}
	if action == report.ActionRemoveCanary {
		what = "removed the canary of " + sha.Short(r.cfg.SHA)
	}
	r.log.Printf("Shadow mode: immune would have %s now (+%s): %s. It goes on as if it had passed.", what, report.FormatDuration(after), reason)
	s := r.story(report.WouldRollBack)
	s.WouldHave = r.out.WouldHave
	r.tell.Hear(notify.WouldRollBack, s)
}

// shadowDecide ends a shadow run's watches: its verdict is the first point
// where a live run would have acted, else the full watch's.
func (r *runner) shadowDecide() {
	if r.out.WouldHave == nil && r.out.Verdict != run.Healthy && r.out.Verdict != run.Inconclusive {
		r.wouldHave(report.ActionRollBack, r.out.Watch, r.out.Verdict, r.out.Reason, r.why)
	}
	if r.out.WouldHave == nil {
		return
	}
	if r.out.WouldHave.Action == report.ActionRemoveCanary && r.out.Watch != nil {
		r.Note(fmt.Sprintf("shadow mode: the canary was promoted as if it had passed; the whole fleet's watch after it was %s: %s", r.out.Watch.Verdict, r.out.Watch.Reason))
	}
	r.end(r.shadowVerdict, ExitOK, r.shadowReason)
	r.why = r.shadowWhy
}

// shadowRecord is what a shadow run's records say it would have done, in
// a few words: "would have rolled back at +45.0s: metric http-errors ...".
func (r *runner) shadowRecord() string {
	w := r.out.WouldHave
	if w == nil {
		return ""
	}
	short := *w
	short.Reason = r.shadowWhy
	return short.Text()
}

// shadowExit is the exit code of a finished shadow run: 0, save for a
// deploy command that failed, which fails the job as it would without
// immune.
func (r *runner) shadowExit() {
	if !r.shadow() || r.out.Verdict == run.Cancelled {
		return
	}
	r.code = ExitOK
	if r.out.Deploy != nil && r.out.Deploy.Error != "" {
		r.code = ExitRegressed
	}
}
