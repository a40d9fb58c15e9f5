package action

import (
	"context"
	"fmt"
	"time"

	"github.com/immune-cd/immune/internal/gate"
	"github.com/immune-cd/immune/internal/report"
	"github.com/immune-cd/immune/internal/run"
)

// gateMode passes or fails a pull request's check: the line is stopped
// while the environment's newest deployment (other than the jobs' ones) is
// a rollback or failed, and only a fix (labelled, or a revert of the bad
// commit) gets through. It reads what the decision needs from GitHub and
// leaves the decision to package gate.
func (r *runner) gateMode(ctx context.Context) {
	r.out.SHA = ""
	in := gate.Input{
		Environment:    r.cfg.Environment,
		FixLabel:       r.cfg.FixLabel,
		PullRequest:    r.ev.PullRequest,
		PullRequestErr: r.ev.PullRequestErr,
	}
	line, err := r.rec.Line(ctx)
	if err != nil {
		// Fail closed: merging while production may be broken is what the
		// gate exists to prevent.
		r.out.Gate = &report.Gate{PullRequest: in.PullRequest}
		msg := fmt.Sprintf("cannot tell whether the line is stopped, so the gate fails closed: %v. Re-run this check when GitHub answers.", err)
		r.end(run.Stopped, ExitRegressed, msg)
		r.log.Error("The line is stopped", msg)
		return
	}
	in.Line = line
	if line.Stopped {
		in.IssueURL = r.tell.TrackingIssueURL(ctx)
	}
	if line.Stopped && in.PullRequest != 0 {
		in.Labels, in.LabelsErr = r.rec.Labels(ctx, in.PullRequest)
		if gate.NeedsCommits(in) {
			in.Commits, in.CommitsErr = r.rec.Commits(ctx, in.PullRequest)
		}
	}
	d := gate.Decide(in)
	g := &report.Gate{PullRequest: in.PullRequest, Allowed: d.Allowed}
	if line.Stopped {
		g.BadSHA, g.StoppedBy, g.RunURL, g.IssueURL = line.BadSHA, line.How, line.RunURL, in.IssueURL
		g.StoppedAt = line.Newest.CreatedAt.UTC().Format(time.RFC3339)
	}
	r.out.Gate = g
	r.end(d.Verdict, ExitOK, d.Reason)
	switch d.Verdict {
	case run.Clear:
		r.log.Printf("The line is clear: %s.", d.Reason)
	case run.FixAllowed:
		r.log.Warning("Letting a fix through a stopped line", d.Reason)
	default:
		r.end(run.Stopped, ExitRegressed, d.Reason)
		r.log.Error("The line is stopped", d.Reason)
	}
}
