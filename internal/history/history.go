// Package history is one environment's deployment record as the stats and
// the backtest read it: immune's own deployments (deploys, canaries,
// rollbacks), each with when it was created, when it started, when it ended
// and in what, and, when asked for, when its commit was made. The
// deployments GitHub Actions makes for jobs and those made by hand or by
// other tools are counted, never read: the recorder's rules tell them apart
// (recorder.OriginOf), as they do for every other rule over the history.
//
// The types are plain data, so that what is computed over them (package
// stats, package backtest) is pure and tested on tables. A Reader reads
// them; the recorder reads them from GitHub (recorder.Recorder.History).
package history

import (
	"context"
	"errors"
	"time"
)

// Kind is what a deployment of immune's did.
type Kind string

// The kinds of immune's deployments (by their task).
const (
	KindDeploy   Kind = "deploy"
	KindCanary   Kind = "canary"
	KindRollback Kind = "rollback"
	// KindBisect is a step of a bisection: a commit of a batch that
	// regressed, tried on the canary (or the fleet) and removed. Not a
	// change, not a restore.
	KindBisect Kind = "bisect"
)

// Outcome is how one of immune's deployments ended, by the status that
// ended it.
type Outcome string

// The outcomes.
const (
	// Healthy: watched and seen healthy (success, or inactive after it:
	// GitHub marks older successes inactive).
	Healthy Outcome = "healthy"
	// Failed: a deploy or a canary that regressed (failure, "regressed:",
	// or a shadow run's "shadow:" status), or a rollback that failed.
	Failed Outcome = "failed"
	// Inconclusive: watched, neither seen healthy nor seen to regress.
	Inconclusive Outcome = "inconclusive"
	// NotDeployed: ended before its command ran (cancelled or gave up
	// while it waited for the environment).
	NotDeployed Outcome = "not-deployed"
	// Errored: ended in error after its command ran (a cancelled job).
	Errored Outcome = "error"
	// Running: no status has ended it yet.
	Running Outcome = "running"
)

// Deployment is one of immune's deployments.
type Deployment struct {
	ID   int64  `json:"id"`
	SHA  string `json:"sha"`
	Kind Kind   `json:"kind"`
	// PreviousSHA (deploys): the rollback target known when it was made.
	PreviousSHA string `json:"previous_sha,omitempty"`
	// RolledBackFrom (rollbacks): the commit it replaced; Manual: by hand.
	RolledBackFrom string `json:"rolled_back_from,omitempty"`
	Manual         bool   `json:"manual,omitempty"`
	// Created is when the run made the deployment; Started when it got the
	// environment and began (its first in_progress status: before the
	// command ran), zero when it never did; Ended when the status that
	// ended it was set, zero while it runs.
	Created time.Time `json:"created"`
	Started time.Time `json:"started,omitempty"`
	Ended   time.Time `json:"ended,omitempty"`
	Outcome Outcome   `json:"outcome"`
	// Description is that of the status that ended it ("regressed: ...").
	Description string `json:"description,omitempty"`
	// Shadow: a run in shadow mode ended it; Failed then means it would
	// have been rolled back, and was not.
	Shadow bool   `json:"shadow,omitempty"`
	RunURL string `json:"run_url,omitempty"`
	// Committed is when its commit was made (the committer's date), zero
	// when it was not read or GitHub did not say.
	Committed time.Time `json:"committed,omitempty"`
}

// Ran reports whether the deployment's command ran: it started, and did not
// end before deploying.
func (d Deployment) Ran() bool {
	return !d.Started.IsZero() && d.Outcome != NotDeployed
}

// LiveSince is when the deployment began to change the environment: when
// it started, or, for a record without that status, when it was made.
func (d Deployment) LiveSince() time.Time {
	if !d.Started.IsZero() {
		return d.Started
	}
	return d.Created
}

// Query says which part of an environment's history to read.
type Query struct {
	// Since and Until bound the deployments' creation: Since included,
	// Until excluded; zero means no bound.
	Since, Until time.Time
	// Max bounds how many of immune's deployments are read (the newest);
	// 0 means DefaultMax.
	Max int
	// Commits asks for the commit times of the deployments seen healthy
	// (one request per commit).
	Commits bool
}

// DefaultMax is how many of immune's deployments a read returns at most
// when Query.Max is 0. Each costs a request for its statuses.
const DefaultMax = 200

// Read is what a read of the history found.
type Read struct {
	Environment string `json:"environment"`
	// Deployments are immune's, oldest first.
	Deployments []Deployment `json:"deployments"`
	// Jobs and Foreign count the deployments of the environment, within
	// the period, that the rules skip: GitHub's job deployments, and those
	// made by hand or by another tool.
	Jobs    int `json:"skipped_jobs"`
	Foreign int `json:"skipped_foreign"`
	// Limited, when set, says why the read stopped before the start of
	// the period (Query.Max, or GitHub's listing limit).
	Limited string `json:"limited,omitempty"`
	// Missing lists what could not be read (a commit's time).
	Missing []string `json:"missing,omitempty"`
}

// Reader reads an environment's history.
type Reader interface {
	History(ctx context.Context, q Query) (Read, error)
}

// ErrNoGitHub is returned when there is no GitHub to read.
var ErrNoGitHub = errors.New("the history is read from GitHub's deployments: set github-token (GITHUB_TOKEN) and GITHUB_REPOSITORY")
