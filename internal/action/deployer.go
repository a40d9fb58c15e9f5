package action

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/immune-cd/immune/internal/config"
	"github.com/immune-cd/immune/internal/deploy"
	"github.com/immune-cd/immune/internal/logline"
	"github.com/immune-cd/immune/internal/report"
	"github.com/immune-cd/immune/internal/run"
	"github.com/immune-cd/immune/internal/sha"
	"github.com/immune-cd/immune/internal/version"
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
	d := r.deployer(req, output, step)
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
		r.log.Printf("%s failed after %s: %s", what, took, err)
	} else {
		r.log.Printf("%s finished in %s.", what, took)
	}
	return step
}

// deployer is the one place that picks how req goes live: the deploy
// workflow, the deploy hook, or the command for req's reason and stage.
// The run's log gets what it says (output); a dispatched run is linked in
// step.
func (r *runner) deployer(req deploy.Request, output io.Writer, step *report.Step) deploy.Deployer {
	cfg := r.cfg
	switch cfg.Deployer {
	case run.ByWorkflow:
		return &deploy.Workflow{
			API: r.d.Workflows, Workflow: cfg.DeployWorkflow, Ref: cfg.DeployWorkflowRef, Timeout: cfg.DeployTimeout,
			Clock: r.d.Clock, Output: output, Started: func(run deploy.Run) { step.RunURL = run.URL },
		}
	case run.ByHook:
		return &deploy.Hook{
			URL: cfg.DeployHook, Secret: cfg.DeployHookSecret, Client: r.d.HTTP, Clock: r.d.Clock,
			Timeout: cfg.DeployTimeout, UserAgent: "immune/" + version.String(), Output: output,
		}
	}
	script := commandFor(cfg, req)
	if r.d.Deployer != nil {
		return r.d.Deployer(script)
	}
	return &deploy.Command{
		Script:      script,
		Dir:         cfg.Workspace,
		Env:         commandEnv(r.d.Environ),
		Timeout:     cfg.DeployTimeout,
		Grace:       r.d.Grace,
		CancelGrace: r.d.CancelGrace,
		Output:      output,
	}
}

// commandFor is the command that performs req: the canary's commands for
// stage canary, the rollback's for reason rollback.
func commandFor(cfg *config.Config, req deploy.Request) string {
	rollback := req.Reason == deploy.ReasonRollback
	switch {
	case req.Stage == string(run.StageCanary) && rollback:
		return cfg.CanaryRollbackCommand
	case req.Stage == string(run.StageCanary):
		return cfg.CanaryCommand
	case rollback:
		return cfg.RollbackCommand
	}
	return cfg.DeployCommand
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
	if r.cfg.Deployer != run.ByWorkflow {
		return true
	}
	if r.d.Workflows == nil {
		r.refuse("Invalid input", "input deploy-workflow: no GitHub client to dispatch it with: pass github-token (with actions: write)")
		return false
	}
	w := &deploy.Workflow{API: r.d.Workflows, Workflow: r.cfg.DeployWorkflow}
	err := w.Check(ctx)
	if errors.Is(err, context.Canceled) {
		return false
	}
	if err != nil {
		r.refuse("Invalid input", "input deploy-workflow: "+err.Error()+"; nothing was deployed")
		return false
	}
	return true
}

// commandEnv is the environment for deploy commands, without this tool's
// secret inputs: the command has no business reading the token.
func commandEnv(environ []string) []string {
	var env []string
	for _, kv := range environ {
		name, _, _ := strings.Cut(kv, "=")
		if in, ok := config.Lookup(strings.ToLower(strings.TrimPrefix(name, "INPUT_"))); ok && in.Secret && strings.HasPrefix(name, "INPUT_") {
			continue
		}
		env = append(env, kv)
	}
	return env
}
