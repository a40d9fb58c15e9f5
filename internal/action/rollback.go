package action

import (
	"context"
	"errors"
	"fmt"

	"github.com/immune-cd/immune/internal/config"
	"github.com/immune-cd/immune/internal/deploy"
	"github.com/immune-cd/immune/internal/ghapi"
	"github.com/immune-cd/immune/internal/report"
	"github.com/immune-cd/immune/internal/state"
)

// rollbackMode rolls the environment back by hand (workflow_dispatch): to
// the sha input, or one step back from what runs now.
func (r *runner) rollbackMode(ctx context.Context) int {
	cfg := r.cfg
	current, err := r.currentSHA(ctx)
	if err != nil {
		return r.refuse("Rollback not started", err.Error())
	}
	target, source, err := r.manualTarget(ctx, current)
	if err != nil {
		return r.refuse("Rollback not started", err.Error())
	}
	r.run.SHA, r.run.PreviousSHA, r.run.PreviousSource = target, current, source
	r.run.Links.Commit, r.run.Links.PreviousCommit = r.commitURL(target), r.commitURL(current)
	r.run.Reason = cfg.Reason
	replacing := "what runs now is unknown"
	if current != "" {
		replacing = "replacing " + current
	}
	r.log.Printf("immune %s: rolling %s back to %s (%s); %s", Version, cfg.Environment, target, source, replacing)
	if cfg.Reason != "" {
		r.log.Printf("Reason: %s", cfg.Reason)
	}

	payload := map[string]any{"rolled_back_from": current, "manual": true}
	if cfg.Reason != "" {
		payload["reason"] = cfg.Reason
	}
	if r.ghctx.Actor != "" {
		payload["actor"] = r.ghctx.Actor
	}
	dep := r.startDeployment(ctx, target, "deploy:rollback", payload)
	r.run.DeploymentID = dep.ID
	r.commitStatus(ctx, target, "pending", fmt.Sprintf("rolling %s back to %s", cfg.Environment, report.Short(target)))

	step := r.runCommand(ctx, "Roll back", cfg.RollbackCommand, deploy.Request{
		SHA: target, PreviousSHA: current, Environment: cfg.Environment, Reason: deploy.ReasonRollback,
	})
	r.run.Rollback = step
	r.run.RolledBack = true
	fail := func(why, long string) int {
		r.run.Verdict = report.RollbackFailed
		r.run.Reason = long
		r.deploymentStatus(ctx, dep, "failure", why)
		r.commitStatus(ctx, target, "failure", "rollback failed: "+why)
		r.log.Error("Rollback failed — "+cfg.Environment+" may be down", long)
		return ExitRegressed
	}
	if step.Error != "" {
		return fail("rollback command failed", fmt.Sprintf("the rollback command for %s failed: %s", target, step.Error))
	}
	w := r.watch(ctx, "Watching the rollback to "+report.Short(target), target, cfg.Duration, nil)
	r.run.Watch = w
	if ctx.Err() != nil {
		return r.cancelled(ctx, dep)
	}
	if w.Verdict != report.Healthy {
		return fail(shortWhy(w, cfg.MaxLatency), fmt.Sprintf("%s is not healthy after the rollback: %s", target, w.Reason))
	}
	r.run.Verdict = report.RolledBack
	if cfg.Reason == "" {
		r.run.Reason = w.Reason
	}
	r.record(target, state.Healthy)
	r.deploymentStatus(ctx, dep, "success", "manual rollback: "+shortHealthy(w))
	r.commitStatus(ctx, target, "success", "rolled back here by hand: "+shortHealthy(w))
	r.log.Printf("Rolled %s back to %s: %s", cfg.Environment, target, w.Reason)
	return ExitOK
}

// refuse ends a run that could not start, before anything was deployed.
func (r *runner) refuse(title, msg string) int {
	r.run.Verdict, r.run.Reason = "", msg // no verdict: nothing was deployed
	r.log.Error(title, msg)
	return ExitConfig
}

// currentSHA is what the environment runs now: the newest deployment's
// commit in GitHub, else the newest entry of the state file.
func (r *runner) currentSHA(ctx context.Context) (string, error) {
	if r.gh.enabled() {
		var deps []ghapi.Deployment
		err := r.gh.call("list the deployments of "+r.cfg.Environment, func(gh GitHub) (err error) {
			deps, err = gh.Deployments(ctx, r.cfg.Environment, 1)
			return err
		})
		if err != nil {
			if r.cfg.SHA == "" {
				return "", fmt.Errorf("cannot find what %s runs, so cannot pick the commit one step back: %w; pass the sha input", r.cfg.Environment, err)
			}
			return "", nil
		}
		if len(deps) > 0 {
			return deps[0].SHA, nil
		}
	}
	sf := &state.File{Path: r.cfg.StateFile}
	return sf.Current(r.cfg.Environment)
}

// manualTarget is the commit a manual rollback deploys.
func (r *runner) manualTarget(ctx context.Context, current string) (sha, source string, err error) {
	if want := r.cfg.SHA; want != "" {
		full, err := r.resolve(ctx, want)
		if err != nil {
			return "", "", err
		}
		if current != "" && full == current {
			return "", "", fmt.Errorf("input sha: %s already runs %s; nothing to roll back", r.cfg.Environment, full)
		}
		return full, "the sha input", nil
	}
	if r.gh.enabled() {
		var good ghapi.Deployment
		var found bool
		err := r.gh.call("read the last successful deployment", func(gh GitHub) (err error) {
			good, found, err = gh.LastKnownGood(ctx, r.cfg.Environment, current, historyLimit)
			return err
		})
		if err != nil {
			return "", "", fmt.Errorf("cannot read the deployments of %s to pick a target: %w; pass the sha input", r.cfg.Environment, err)
		}
		if found {
			return good.SHA, fmt.Sprintf("GitHub deployment %d, the last successful one before %s", good.ID, report.Short(current)), nil
		}
	}
	sf := &state.File{Path: r.cfg.StateFile}
	if sha, err := sf.LastGood(r.cfg.Environment, current); err == nil && sha != "" {
		return sha, "the state file", nil
	}
	return "", "", fmt.Errorf("no earlier successful deployment of %s to roll back to; pass the sha input", r.cfg.Environment)
}

// resolve turns a short or full SHA into the full SHA of a commit of this
// repository.
func (r *runner) resolve(ctx context.Context, sha string) (string, error) {
	if !r.gh.enabled() {
		if len(sha) != 40 {
			return "", fmt.Errorf("input sha: %q is a short SHA; without a github-token only a full 40-character SHA can be used", sha)
		}
		return sha, nil
	}
	var full string
	err := r.gh.call("resolve "+sha, func(gh GitHub) (err error) {
		full, err = gh.ResolveCommit(ctx, sha)
		return err
	})
	switch {
	case errors.Is(err, ghapi.ErrNoSuchCommit):
		return "", fmt.Errorf("input sha: %s is not a commit of %s", sha, r.ghctx.Repository)
	case err != nil:
		return "", fmt.Errorf("input sha: cannot check that %s is a commit of this repository: %w", sha, err)
	case !config.ValidShortSHA(full):
		return "", fmt.Errorf("input sha: GitHub resolved %s to %q, which is not a commit SHA", sha, full)
	}
	return full, nil
}
