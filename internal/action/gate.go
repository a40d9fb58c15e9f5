package action

import (
	"context"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/immune-cd/immune/internal/ghapi"
	"github.com/immune-cd/immune/internal/health"
	"github.com/immune-cd/immune/internal/report"
)

// gateMode passes or fails a pull request's check: the line is stopped
// while the environment runs a rolled-back or failed build, and only a fix
// (labelled, or a revert of the bad commit) gets through.
func (r *runner) gateMode(ctx context.Context) int {
	cfg := r.cfg
	gate := &report.Gate{}
	r.run.Gate = gate
	r.run.SHA = ""
	closed := func(msg string) int {
		r.run.Verdict, r.run.Reason = report.Stopped, msg
		r.log.Error("The line is stopped", msg)
		return ExitRegressed
	}

	var deps []ghapi.Deployment
	err := r.gh.call("list the deployments of "+cfg.Environment, func(gh GitHub) (err error) {
		deps, err = gh.Deployments(ctx, cfg.Environment, 1)
		return err
	})
	if err != nil {
		// Fail closed: merging while production may be broken is what the
		// gate exists to prevent.
		return closed(fmt.Sprintf("cannot tell whether the line is stopped, so the gate fails closed: %v. Re-run this check when GitHub answers.", err))
	}
	if len(deps) == 0 || !stops(deps[0]) {
		r.run.Verdict = report.Clear
		if len(deps) == 0 {
			r.run.Reason = fmt.Sprintf("%s has no deployments yet", cfg.Environment)
		} else {
			r.run.Reason = fmt.Sprintf("the newest deployment of %s (%s, %s) is %s", cfg.Environment, report.Short(deps[0].SHA), deps[0].Task, stateName(deps[0].LatestState))
		}
		r.log.Printf("The line is clear: %s.", r.run.Reason)
		return ExitOK
	}

	newest := deps[0]
	gate.BadSHA, gate.StoppedBy = badCommit(newest)
	gate.StoppedAt = newest.CreatedAt.UTC().Format(time.RFC3339)
	gate.RunURL = payloadString(newest.Payload, "run_url")
	if gate.RunURL == "" {
		gate.RunURL = newest.LogURL
	}
	stopped := fmt.Sprintf("%s %s at %s", cfg.Environment, gate.StoppedBy, gate.StoppedAt)
	if gate.RunURL != "" {
		stopped += " (" + gate.RunURL + ")"
	}
	howTo := fmt.Sprintf("To merge the fix, add the label %q to its pull request, or revert %s (GitHub's revert button writes \"This reverts commit %s\").", cfg.FixLabel, report.Short(gate.BadSHA), gate.BadSHA)

	pr, err := r.pullRequestNumber()
	if err != nil {
		return closed(fmt.Sprintf("%s. %v. %s", stopped, err, howTo))
	}
	gate.PullRequest = pr

	var labels []string
	err = r.gh.call(fmt.Sprintf("read the labels of #%d", pr), func(gh GitHub) (err error) {
		labels, err = gh.PullRequestLabels(ctx, pr)
		return err
	})
	if err != nil {
		return closed(fmt.Sprintf("%s. Cannot read the labels of #%d, so the gate fails closed: %v. %s", stopped, pr, err, howTo))
	}
	for _, l := range labels {
		if l == cfg.FixLabel {
			return r.letThrough(gate, fmt.Sprintf("#%d carries the label %q", pr, cfg.FixLabel), stopped)
		}
	}
	var commits []ghapi.Commit
	err = r.gh.call(fmt.Sprintf("read the commits of #%d", pr), func(gh GitHub) (err error) {
		commits, err = gh.PullRequestCommits(ctx, pr)
		return err
	})
	if err != nil {
		return closed(fmt.Sprintf("%s. Cannot read the commits of #%d, so the gate fails closed: %v. %s", stopped, pr, err, howTo))
	}
	if gate.BadSHA != "" {
		for _, c := range commits {
			if reverts(c.Message, gate.BadSHA) {
				return r.letThrough(gate, fmt.Sprintf("commit %s of #%d reverts %s", report.Short(c.SHA), pr, report.Short(gate.BadSHA)), stopped)
			}
		}
	}
	return closed(fmt.Sprintf("%s; #%d is not marked as a fix. %s", stopped, pr, howTo))
}

func (r *runner) letThrough(gate *report.Gate, why, stopped string) int {
	gate.Allowed = why
	r.run.Verdict = report.FixAllowed
	r.run.Reason = fmt.Sprintf("%s, but %s, so it may go through as the fix", stopped, why)
	r.log.Warning("Letting a fix through a stopped line", r.run.Reason)
	return ExitOK
}

// stops reports whether a deployment, the newest of its environment, stops
// the line: a rollback (automatic or manual), or a failed or errored deploy.
func stops(d ghapi.Deployment) bool {
	return d.Task == "deploy:rollback" || d.LatestState == "failure" || d.LatestState == "error"
}

// badCommit names the commit that stopped the line, and how it did.
func badCommit(d ghapi.Deployment) (sha, how string) {
	if d.Task == "deploy:rollback" {
		from := payloadString(d.Payload, "rolled_back_from")
		kind := "was rolled back"
		if manual, _ := d.Payload["manual"].(bool); manual {
			kind = "was rolled back by hand"
		}
		if from == "" {
			return "", fmt.Sprintf("%s to %s", kind, report.Short(d.SHA))
		}
		return from, fmt.Sprintf("%s from %s to %s", kind, report.Short(from), report.Short(d.SHA))
	}
	return d.SHA, fmt.Sprintf("has a %s deployment of %s", stateName(d.LatestState), report.Short(d.SHA))
}

func stateName(s string) string {
	if s == "" {
		return "status-less"
	}
	return strings.ReplaceAll(s, "_", " ")
}

func payloadString(p map[string]any, key string) string {
	s, _ := p[key].(string)
	return s
}

var revertPattern = regexp.MustCompile(`This reverts commit ([0-9a-fA-F]{7,40})`)

// reverts reports whether a commit message reverts bad, as GitHub's revert
// button and git revert write it.
func reverts(message, bad string) bool {
	for _, m := range revertPattern.FindAllStringSubmatch(message, -1) {
		if health.SameVersion(m[1], bad) {
			return true
		}
	}
	return false
}

var mergeQueueRef = regexp.MustCompile(`/pr-(\d+)-[0-9a-fA-F]+$`)

// pullRequestNumber finds the pull request the check runs for, from the
// event: pull_request(_target) carries it; a merge_group names it in its
// head ref (refs/heads/gh-readonly-queue/main/pr-123-<sha>).
func (r *runner) pullRequestNumber() (int, error) {
	ev := r.ghctx.Event
	switch r.ghctx.EventName {
	case "pull_request", "pull_request_target":
		if pr, ok := ev["pull_request"].(map[string]any); ok {
			if n, ok := pr["number"].(float64); ok && n > 0 {
				return int(n), nil
			}
		}
		if n, ok := ev["number"].(float64); ok && n > 0 {
			return int(n), nil
		}
		return 0, fmt.Errorf("the %s event names no pull request", r.ghctx.EventName)
	case "merge_group":
		mg, _ := ev["merge_group"].(map[string]any)
		ref, _ := mg["head_ref"].(string)
		if m := mergeQueueRef.FindStringSubmatch(ref); m != nil {
			n, _ := strconv.Atoi(m[1])
			return n, nil
		}
		return 0, fmt.Errorf("cannot find the pull request in the merge group's head_ref %q", ref)
	}
	return 0, fmt.Errorf("gate mode needs a pull_request, pull_request_target or merge_group event to know the pull request (this is %q)", r.ghctx.EventName)
}
