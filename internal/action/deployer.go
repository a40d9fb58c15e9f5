package action

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/immune-cd/immune/internal/deploy"
	"github.com/immune-cd/immune/internal/logline"
	"github.com/immune-cd/immune/internal/report"
	"github.com/immune-cd/immune/internal/run"
	"github.com/immune-cd/immune/internal/sha"
)

// runStep puts req live through the run's deployer, inside a log group:
// every deploy, rollback, canary and canary removal goes through here.
func (r *runner) runStep(ctx context.Context, verb string, req deploy.Request) *report.Step {
	return r.runStepAs(ctx, fmt.Sprintf("%s %s to %s", verb, sha.Short(req.SHA), req.Environment), verb+" of "+sha.Short(req.SHA), req)
}

// rollBack rolls the whole fleet back from the build from to the target,
// and puts the step in the outputs: the rollback after a regression and
// the one by hand run it alike.
func (r *runner) rollBack(ctx context.Context, from string) *report.Step {
	r.rollback.started = true
	step := r.runStep(ctx, "Roll back", deploy.Request{
		SHA: r.target, PreviousSHA: from, Environment: r.cfg.Environment, Reason: deploy.ReasonRollback, Stage: string(run.StageFull),
	})
	r.out.Rollback, r.out.RolledBack = step, true
	return step
}

// runStepAs is runStep with the log group's title; what names the step
// in the lines that say how it ended.
func (r *runner) runStepAs(ctx context.Context, title, what string, req deploy.Request) *report.Step {
	step := &report.Step{SHA: req.SHA, Start: r.d.Clock.Now(), By: r.cfg.Deployer}
	// The deployer's output (a command's, the workflow run's status) is
	// text immune does not control: escaped line by line, and its last
	// line ended before the group is.
	output := logline.NewWriter(r.d.Stdout)
	d := r.steps.For(req, output, func(run deploy.Run) { step.RunURL = run.URL })
	r.log.Group(title)
	err := d.Deploy(ctx, req)
	output.Close()
	r.log.EndGroup()
	step.End = r.d.Clock.Now()
	took := report.FormatDuration(step.End.Sub(step.Start))
	if step.RunURL != "" {
		r.log.Printf("%s: workflow run %s", what, step.RunURL)
	}
	if err != nil {
		step.Error = err.Error()
		step.NotStarted = errors.Is(err, deploy.ErrNotStarted)
		r.log.Printf("%s failed after %s: %s", what, took, err)
	} else {
		r.log.Printf("%s finished in %s.", what, took)
	}
	return step
}

// failed is how a failed step reads: "the deploy command failed", "the
// deploy workflow's rollback run failed".
func (r *runner) failed(step string) string { return r.cfg.Deployer.Step(step) + " failed" }

// failedWhy is the same in a few words, for GitHub's 140-character
// descriptions.
func (r *runner) failedWhy(step string) string { return strings.TrimPrefix(r.failed(step), "the ") }

// checkDeployer checks, before anything is deployed, that the deploy
// workflow is one GitHub knows and can run.
func (r *runner) checkDeployer(ctx context.Context) bool {
	err := r.steps.Check(ctx)
	var ie *deploy.InputError
	if errors.As(err, &ie) {
		r.refuse("Invalid input", err.Error())
	}
	return err == nil
}
