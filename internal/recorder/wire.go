// Package recorder owns immune's records in GitHub: their wire format (the
// deployment tasks, the payload schema, the status states and the commit
// status context) and the rules for reading the history back: which
// deployments are immune's, which GitHub Actions made for jobs, what runs
// now, what was last known good, whether the line is stopped, whether a
// newer deploy superseded this one, and which run holds the environment.
//
// It also writes what people are told: the comments on the pull requests
// of a rolled-back push and the tracking issue of a stopped line. Every
// call takes one path (call.go) and never lets GitHub stop a deploy, a
// watch or a rollback: a failed call becomes a line in the log and, at the
// end, one warning listing what could not be recorded or told; after GitHub
// proved unreachable or too slow, later calls are skipped rather than tried
// again; a refused optional permission is named once. It returns its own
// types: no other package of the run needs GitHub's.
package recorder

import (
	"time"

	"github.com/immune-cd/immune/internal/ghapi"
	"github.com/immune-cd/immune/internal/sha"
)

// Task is a deployment's task. GitHub's default, and what it uses for the
// deployments it makes for jobs, is "deploy".
type Task string

// The tasks of immune's deployments.
const (
	TaskDeploy   Task = "deploy"
	TaskRollback Task = "deploy:rollback"
	// TaskCanary is a canary: the new build on a subset of the
	// environment, judged against the rest. It is never what the
	// environment runs nor a rollback target, but a canary that failed
	// stops the line like a failed deploy.
	TaskCanary Task = "deploy:canary"
	// TaskBisect is one step of a bisection: a commit of a batch that
	// regressed, deployed to the canary (or, with bisect-production, the
	// whole fleet) to be judged, then removed. Like a canary it is never
	// what the environment runs nor a rollback target; the step that names
	// the culprit says so in its final status (CulpritPrefix).
	TaskBisect Task = "deploy:bisect"
)

// Subset reports whether deployments of task t put a build on part of the
// environment, or on it for a while only (canaries, bisection steps): they
// are never what the environment runs nor a rollback target.
func (t Task) Subset() bool { return t == TaskCanary || t == TaskBisect }

// State is a deployment status state.
type State string

// The deployment status states GitHub accepts.
const (
	StateQueued     State = "queued"
	StateInProgress State = "in_progress"
	StatePending    State = "pending"
	StateSuccess    State = "success"
	StateFailure    State = "failure"
	StateError      State = "error"
	StateInactive   State = "inactive"
)

// CommitState is a commit status state.
type CommitState string

// The commit status states GitHub accepts.
const (
	CommitPending CommitState = "pending"
	CommitSuccess CommitState = "success"
	CommitFailure CommitState = "failure"
	CommitError   CommitState = "error"
)

// Tool is the marker every payload of immune's carries in its "tool" field:
// the one sign that a deployment is immune's.
const Tool = "immune"

// Payload is the documented schema of the payload of immune's deployments.
// Every deployment immune creates has ref = the full commit SHA and this
// payload; others (by hand, by other tools, by GitHub for jobs) are told
// apart by it.
type Payload struct {
	// Tool is always "immune".
	Tool string `json:"tool"`
	// Version of immune that made the deployment.
	Version string `json:"version,omitempty"`
	// PreviousSHA (deploys): the rollback target known when the deployment
	// was created.
	PreviousSHA string `json:"previous_sha,omitempty"`
	// RolledBackFrom (rollbacks): the commit the rollback replaced.
	RolledBackFrom string `json:"rolled_back_from,omitempty"`
	// Culprit (deploys that ship the good part of a batch that regressed):
	// the commit this deploy leaves out, which regressed: the first bad
	// commit a bisection named, or, when a step could not decide, the
	// oldest commit seen to regress. The line stays stopped for it.
	Culprit string `json:"culprit,omitempty"`
	// Reason (rollbacks): why, in words.
	Reason string `json:"reason,omitempty"`
	// Manual (rollbacks): made by hand (workflow_dispatch), not after a
	// regression.
	Manual bool `json:"manual,omitempty"`
	// Actor who started the run.
	Actor string `json:"actor,omitempty"`
	// RunURL, RunID and RunAttempt identify the workflow run.
	RunURL     string `json:"run_url,omitempty"`
	RunID      int64  `json:"run_id,omitempty"`
	RunAttempt int    `json:"run_attempt,omitempty"`
	// HoldSeconds is how long the run may keep this deployment queued or in
	// progress (its lock timeout, command timeout and watches). Past it the
	// run is presumed dead and no longer holds the environment.
	HoldSeconds int64 `json:"hold_seconds,omitempty"`
	// RequestID is unique to each create: a create retried after GitHub's
	// answer was lost finds the deployment the first attempt made.
	RequestID string `json:"request_id,omitempty"`
}

// Map is the payload as sent to GitHub.
func (p Payload) Map() map[string]any {
	m := map[string]any{"tool": Tool}
	set := func(k string, v any, ok bool) {
		if ok {
			m[k] = v
		}
	}
	set("version", p.Version, p.Version != "")
	set("previous_sha", p.PreviousSHA, p.PreviousSHA != "")
	set("rolled_back_from", p.RolledBackFrom, p.RolledBackFrom != "")
	set("culprit", p.Culprit, p.Culprit != "")
	set("reason", p.Reason, p.Reason != "")
	set("manual", true, p.Manual)
	set("actor", p.Actor, p.Actor != "")
	set("run_url", p.RunURL, p.RunURL != "")
	set("run_id", p.RunID, p.RunID != 0)
	set("run_attempt", p.RunAttempt, p.RunAttempt != 0)
	set("hold_seconds", p.HoldSeconds, p.HoldSeconds != 0)
	set("request_id", p.RequestID, p.RequestID != "")
	return m
}

// PayloadOf reads immune's payload from a deployment; ok is false when the
// deployment is not immune's.
func PayloadOf(d ghapi.Deployment) (p Payload, ok bool) {
	if tool, _ := d.Payload["tool"].(string); tool != Tool {
		return Payload{}, false
	}
	str := func(k string) string { s, _ := d.Payload[k].(string); return s }
	num := func(k string) int64 { f, _ := d.Payload[k].(float64); return int64(f) }
	p = Payload{
		Tool:           Tool,
		Version:        str("version"),
		PreviousSHA:    str("previous_sha"),
		RolledBackFrom: str("rolled_back_from"),
		Culprit:        str("culprit"),
		Reason:         str("reason"),
		Actor:          str("actor"),
		RunURL:         str("run_url"),
		RunID:          num("run_id"),
		RunAttempt:     int(num("run_attempt")),
		HoldSeconds:    num("hold_seconds"),
		RequestID:      str("request_id"),
	}
	p.Manual, _ = d.Payload["manual"].(bool)
	// SHAs come from a file anyone with push access can write: only
	// commit ids are taken.
	if !sha.IsAbbrev(p.PreviousSHA) {
		p.PreviousSHA = ""
	}
	if !sha.IsAbbrev(p.RolledBackFrom) {
		p.RolledBackFrom = ""
	}
	if !sha.IsAbbrev(p.Culprit) {
		p.Culprit = ""
	}
	return p, true
}

// Hold is how long a deployment of a run may stay queued or in progress.
func (p Payload) Hold() time.Duration { return time.Duration(p.HoldSeconds) * time.Second }

// NotDeployed opens the description of the final status of a deployment
// whose command never started (the run was cancelled or gave up while it
// waited for the environment). Such a deployment never ran, so it is not
// "what runs now".
const NotDeployed = "not deployed: "

// Inconclusive opens the description of the final status (error) of a
// deployment whose watch could not judge it: live, neither seen healthy nor
// seen to regress. GitHub has no state for that; error is the terminal one
// that claims neither. Such a deployment is never a rollback target, and it
// does not stop the line.
const Inconclusive = "inconclusive: "

// Shadow opens the description of a status a run in shadow mode set where
// a live run would have acted (rolled back, removed a canary): the
// deployment stays success, or error when its deploy command failed, and
// the commit status is never failure. Such a deployment never stops the
// line and is never a rollback target; the history reads it as a
// regression that was not acted on.
const Shadow = "shadow: "

// CulpritPrefix opens the description of the final status (failure) of the
// bisection step that named the culprit: its commit is the first bad one of
// the batch, and the line stays stopped for it until a newer deployment.
const CulpritPrefix = "culprit: "

// MaxContext is GitHub's limit on a commit status context.
const MaxContext = 255

// StatusContext is the commit status context of an environment, which a
// repository can require in branch protection.
//
// GitHub compares contexts without letter case, as it does environment
// names: "Production" and "production" write one context. immune
// normalises rather than refuses: environments that differ only in letter
// case are one environment to it as well, wherever it compares names
// itself (the tracking issue, the pull-request comments, the state file),
// so that the two spellings share one line, one issue and one context
// instead of fighting over the context.
func StatusContext(environment string) string { return "immune/" + environment }
