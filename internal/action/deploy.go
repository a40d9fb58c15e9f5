package action

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/immune-cd/immune/internal/config"
	"github.com/immune-cd/immune/internal/deploy"
	"github.com/immune-cd/immune/internal/ghapi"
	"github.com/immune-cd/immune/internal/report"
	"github.com/immune-cd/immune/internal/state"
)

// statusContext is the commit status context for an environment; a
// repository can require it in branch protection.
func statusContext(env string) string { return "immune/" + env }

// deployMode deploys cfg.SHA, watches it, and rolls back a regression.
func (r *runner) deployMode(ctx context.Context) int {
	cfg := r.cfg
	target, source := r.rollbackTarget(ctx)
	r.run.PreviousSHA, r.run.PreviousSource = target, source
	r.run.Links.Commit, r.run.Links.PreviousCommit = r.commitURL(cfg.SHA), r.commitURL(target)
	if target != "" {
		r.log.Printf("immune %s: deploying %s to %s; rollback target %s (from %s)", Version, cfg.SHA, cfg.Environment, target, source)
	} else {
		r.log.Printf("immune %s: deploying %s to %s; no rollback target known", Version, cfg.SHA, cfg.Environment)
	}

	baseline := r.baseline(ctx, target)
	dep := r.startDeployment(ctx, cfg.SHA, "deploy", map[string]any{"previous_sha": target})
	r.run.DeploymentID = dep.ID
	r.commitStatus(ctx, cfg.SHA, "pending", fmt.Sprintf("watching %s on %s", report.Short(cfg.SHA), cfg.Environment))

	step := r.runCommand(ctx, "Deploy", cfg.DeployCommand, deploy.Request{
		SHA: cfg.SHA, PreviousSHA: target, Environment: cfg.Environment, Reason: deploy.ReasonDeploy,
	})
	r.run.Deploy = step
	why := ""
	if step.Error != "" {
		r.run.Verdict = report.Regressed
		r.run.Reason = "the deploy command failed: " + step.Error
		why = "deploy command failed"
	} else {
		w := r.watch(ctx, "Watching "+report.Short(cfg.SHA), cfg.SHA, cfg.Duration, baseline)
		r.run.Watch = w
		r.run.Verdict, r.run.Reason = w.Verdict, w.Reason
		if ctx.Err() != nil {
			return r.cancelled(ctx, dep)
		}
		why = shortWhy(w, cfg.MaxLatency)
	}

	if r.run.Verdict == report.Healthy {
		r.record(cfg.SHA, state.Healthy)
		desc := "healthy: " + shortHealthy(r.run.Watch)
		r.deploymentStatus(ctx, dep, "success", desc)
		r.commitStatus(ctx, cfg.SHA, "success", desc)
		if !r.d.Plain {
			r.log.Printf("Verdict: healthy. %s", r.run.Reason)
		}
		r.warnIfDegraded(r.run.Watch)
		return ExitOK
	}

	r.record(cfg.SHA, report.Regressed)
	r.deploymentStatus(ctx, dep, "failure", "regressed: "+why)
	r.log.Error(fmt.Sprintf("%s regressed on %s", report.Short(cfg.SHA), cfg.Environment), r.run.Reason)
	switch {
	case !cfg.AutoRollback:
		r.note("auto-rollback is false: nothing was rolled back")
	case target == "":
		r.note("nothing was rolled back: no previous-sha input, no successful GitHub deployment, no healthy deploy in the state file, and no usable before in the push event")
	case r.superseded(ctx, dep):
		// superseded said why.
	default:
		r.rollback(ctx, target)
	}

	switch r.run.Verdict {
	case report.RolledBack:
		r.record(target, report.RolledBack)
		r.commitStatus(ctx, cfg.SHA, "failure", "rolled back: "+why)
	case report.RollbackFailed:
		r.record(target, report.RollbackFailed)
		r.commitStatus(ctx, cfg.SHA, "failure", "rollback failed after: "+why)
	default:
		r.commitStatus(ctx, cfg.SHA, "failure", "regressed: "+why)
	}
	return ExitRegressed
}

func shortHealthy(w *report.Watch) string {
	if w == nil {
		return ""
	}
	return fmt.Sprintf("%d of %d probes failed, p95 %s", w.Stats.Failed, w.Stats.Probes, report.FormatDuration(w.Stats.P95))
}

// superseded reports whether another run deployed something newer to the
// environment after dep was created; rolling back would then undo it.
func (r *runner) superseded(ctx context.Context, dep ghapi.Deployment) bool {
	if dep.ID == 0 {
		return false
	}
	var newer []ghapi.Deployment
	err := r.gh.call("check for newer deployments", func(gh GitHub) (err error) {
		newer, err = gh.NewerDeployments(ctx, r.cfg.Environment, dep)
		return err
	})
	if err != nil || len(newer) == 0 {
		return false
	}
	n := newer[0]
	r.note(fmt.Sprintf("not rolling back: %s was deployed to %s after this deploy started (deployment %d, %s, by another run); rolling back would undo it",
		n.SHA, r.cfg.Environment, n.ID, n.CreatedAt.UTC().Format("15:04:05 MST")))
	r.log.Error("Superseded", fmt.Sprintf("a newer deployment of %s exists; %s was not rolled back", report.Short(n.SHA), report.Short(r.cfg.SHA)))
	return true
}

// rollback redeploys target after cfg.SHA regressed and watches it.
func (r *runner) rollback(ctx context.Context, target string) {
	cfg := r.cfg
	dep := r.startDeployment(ctx, target, "deploy:rollback", map[string]any{
		"rolled_back_from": cfg.SHA,
		"reason":           r.run.Reason,
	})
	if dep.ID != 0 {
		r.run.Links.RollbackDeployment = r.deploymentsURL()
	}
	step := r.runCommand(ctx, "Roll back", cfg.RollbackCommand, deploy.Request{
		SHA: target, PreviousSHA: cfg.SHA, Environment: cfg.Environment, Reason: deploy.ReasonRollback,
	})
	r.run.Rollback = step
	r.run.RolledBack = true
	if step.Error != "" {
		r.run.Verdict = report.RollbackFailed
		r.deploymentStatus(ctx, dep, "failure", "rollback command failed")
		r.log.Error("Rollback failed", fmt.Sprintf("the rollback command for %s failed: %s; %s may be down", target, step.Error, cfg.Environment))
		return
	}
	w := r.watch(ctx, "Watching the rollback to "+report.Short(target), target, cfg.RollbackDuration, nil)
	r.run.RollbackWatch = w
	if w.Verdict != report.Healthy {
		r.run.Verdict = report.RollbackFailed
		r.deploymentStatus(ctx, dep, "failure", "rollback unhealthy: "+shortWhy(w, cfg.MaxLatency))
		r.log.Error("Rollback failed", fmt.Sprintf("%s is not healthy after the rollback: %s; %s may be down", target, w.Reason, cfg.Environment))
		return
	}
	r.run.Verdict = report.RolledBack
	r.deploymentStatus(ctx, dep, "success", "rolled back from "+report.Short(cfg.SHA)+": "+shortHealthy(w))
	r.log.Printf("Rolled back to %s: %s", target, w.Reason)
}

// watchMode judges what is already deployed.
func (r *runner) watchMode(ctx context.Context) int {
	cfg := r.cfg
	r.run.Links.Commit = r.commitURL(cfg.SHA)
	r.log.Printf("immune %s: watching %s on %s", Version, cfg.SHA, cfg.Environment)
	r.commitStatus(ctx, cfg.SHA, "pending", fmt.Sprintf("watching %s on %s", report.Short(cfg.SHA), cfg.Environment))
	w := r.watch(ctx, "Watching "+report.Short(cfg.SHA), cfg.SHA, cfg.Duration, nil)
	r.run.Watch = w
	r.run.Verdict, r.run.Reason = w.Verdict, w.Reason
	if ctx.Err() != nil {
		return r.cancelled(ctx, ghapi.Deployment{})
	}
	if w.Verdict == report.Healthy {
		r.record(cfg.SHA, state.Healthy)
		r.commitStatus(ctx, cfg.SHA, "success", "healthy: "+shortHealthy(w))
		if !r.d.Plain {
			r.log.Printf("Verdict: healthy. %s", w.Reason)
		}
		r.warnIfDegraded(w)
		return ExitOK
	}
	r.commitStatus(ctx, cfg.SHA, "failure", "regressed: "+shortWhy(w, cfg.MaxLatency))
	r.log.Error(fmt.Sprintf("%s regressed on %s", report.Short(cfg.SHA), cfg.Environment), w.Reason)
	return ExitRegressed
}

// cancelled ends a run whose context ended (the job was cancelled): no
// verdict and no rollback, since a newer run may already be deploying.
func (r *runner) cancelled(ctx context.Context, dep ghapi.Deployment) int {
	r.run.Verdict = "cancelled"
	r.run.Reason = "the run was cancelled before a verdict; nothing was rolled back"
	// The run's context is over; GitHub gets a short one of its own.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	r.deploymentStatus(ctx, dep, "error", "cancelled before a verdict")
	r.commitStatus(ctx, r.cfg.SHA, "error", "cancelled before a verdict")
	r.log.Error("Cancelled", r.run.Reason)
	return ExitRegressed
}

// rollbackTarget finds the commit to roll back to, and says where from.
func (r *runner) rollbackTarget(ctx context.Context) (sha, source string) {
	if r.cfg.PreviousSHA != "" {
		return r.cfg.PreviousSHA, "the previous-sha input"
	}
	if r.gh.enabled() {
		var good ghapi.Deployment
		var found bool
		err := r.gh.call("read the last successful deployment", func(gh GitHub) (err error) {
			good, found, err = gh.LastKnownGood(ctx, r.cfg.Environment, r.cfg.SHA, historyLimit)
			return err
		})
		if err == nil && found {
			return good.SHA, fmt.Sprintf("GitHub deployment %d", good.ID)
		}
	}
	sf := &state.File{Path: r.cfg.StateFile}
	if sha, err := sf.LastGood(r.cfg.Environment, r.cfg.SHA); err != nil {
		r.warn("State file unreadable", err.Error())
	} else if sha != "" {
		return sha, "the state file"
	}
	if before := r.pushBefore(); before != "" {
		return before, "the push event's before"
	}
	return "", ""
}

// pushBefore returns the push event's before, unless it is all zeros (a new
// branch) or the commit being deployed.
func (r *runner) pushBefore() string {
	if r.ghctx.EventName != "push" {
		return ""
	}
	before, _ := r.ghctx.Event["before"].(string)
	if strings.Trim(before, "0") == "" || before == r.cfg.SHA || !config.ValidRef(before) {
		return ""
	}
	return before
}

// startDeployment records a deployment of sha in GitHub and marks it in
// progress. The zero Deployment means nothing was recorded.
func (r *runner) startDeployment(ctx context.Context, sha, task string, payload map[string]any) ghapi.Deployment {
	if !r.gh.enabled() {
		return ghapi.Deployment{}
	}
	payload["tool"] = "immune"
	payload["version"] = Version
	if u := r.run.Links.Run; u != "" {
		payload["run_url"] = u
	}
	var dep ghapi.Deployment
	err := r.gh.call("create the "+task+" deployment of "+report.Short(sha), func(gh GitHub) (err error) {
		dep, err = gh.CreateDeployment(ctx, ghapi.DeploymentRequest{
			SHA:         sha,
			Environment: r.cfg.Environment,
			Task:        task,
			Description: fmt.Sprintf("immune %s of %s", task, report.Short(sha)),
			Payload:     payload,
		})
		return err
	})
	if err != nil && dep.ID == 0 {
		return ghapi.Deployment{}
	}
	if task == "deploy" {
		r.run.Links.Deployment = r.deploymentsURL()
	}
	r.deploymentStatus(ctx, dep, "in_progress", "immune is deploying and watching "+report.Short(sha))
	return dep
}

// deploymentStatus adds a status to a recorded deployment.
func (r *runner) deploymentStatus(ctx context.Context, dep ghapi.Deployment, state, desc string) {
	if dep.ID == 0 {
		return
	}
	s := ghapi.DeploymentStatus{
		State:          state,
		Description:    desc,
		LogURL:         r.run.Links.Run,
		EnvironmentURL: r.cfg.EnvironmentURL,
	}
	if state == "success" {
		// Keep earlier successes "success": they are the rollback targets
		// the next runs look for.
		no := false
		s.AutoInactive = &no
	}
	_ = r.gh.call(fmt.Sprintf("set deployment %d to %s", dep.ID, state), func(gh GitHub) error {
		return gh.SetDeploymentStatus(ctx, dep.ID, s)
	})
}

// commitStatus sets the immune/<environment> commit status on sha.
func (r *runner) commitStatus(ctx context.Context, sha, state, desc string) {
	if !r.gh.enabled() || !config.ValidShortSHA(sha) {
		return
	}
	_ = r.gh.call(fmt.Sprintf("set the %s commit status to %s", statusContext(r.cfg.Environment), state), func(gh GitHub) error {
		return gh.SetCommitStatus(ctx, ghapi.CommitStatus{
			SHA: sha, State: state, Context: statusContext(r.cfg.Environment), Description: desc, TargetURL: r.run.Links.Run,
		})
	})
}
