package ghapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/google/go-github/v60/github"

	"github.com/immune-cd/immune/internal/sha"
)

// Deployment is a GitHub deployment with its latest status.
type Deployment struct {
	ID          int64
	SHA         string
	Ref         string
	Task        string
	Environment string
	Description string
	Creator     string // login
	CreatedAt   time.Time
	Payload     map[string]any // nil when the payload is not a JSON object
	URL         string         // API URL

	// Latest deployment status: its state ("" when the deployment has no
	// status; else error, failure, inactive, in_progress, queued, pending
	// or success), when it was set, its description and its log URL.
	LatestState       string
	LatestStatusAt    time.Time
	LatestDescription string
	LogURL            string
}

// DeploymentRequest describes a deployment to create.
type DeploymentRequest struct {
	SHA                   string // the commit being deployed (required)
	Ref                   string // what GitHub records as deployed; default SHA
	Environment           string // default "production", as GitHub's
	Task                  string // default "deploy", as GitHub's
	Description           string
	Payload               map[string]any
	ProductionEnvironment *bool
	TransientEnvironment  *bool
	// Same, when set, makes the create safe to retry: when an attempt's
	// answer is lost (a 5xx, a reset, a timeout), GitHub may have made the
	// deployment all the same, so before trying again CreateDeployment
	// looks among the environment's newest deployments for one that Same
	// recognises (by a request id in its payload) and returns it.
	Same func(Deployment) bool
}

// DeploymentStatus is a status to set on a deployment.
type DeploymentStatus struct {
	State          string // error, failure, inactive, in_progress, queued, pending or success
	Description    string // truncated to 140 characters
	LogURL         string
	EnvironmentURL string
	Environment    string // changes the deployment's environment when set
	// AutoInactive: nil leaves GitHub's default (true): a success status
	// marks earlier non-production, non-transient deployments of the
	// environment inactive.
	AutoInactive *bool
}

const (
	// DefaultHistory is how many deployments Deployments and LastKnownGood
	// examine when asked for 0.
	DefaultHistory = 100
	// MaxHistory bounds how many deployments one call examines.
	MaxHistory = 1000
	perPage    = 100
)

// What the deployment operations need.
func deploymentsWrite(op string) access {
	return access{op: op, permission: "deployments: write", notFound: true}
}

func deploymentsRead(op string) access {
	return access{op: op, permission: "deployments: read", notFound: true}
}

// CreateDeployment records a deployment of r.SHA. It never asks GitHub to
// merge the default branch (auto_merge: false) and bypasses commit status
// checks (required_contexts: []): immune decides what to deploy. When Ref is
// a branch that moved on, GitHub deploys its new head; CreateDeployment
// then returns the deployment together with an error, so that the caller
// can mark it failed.
func (c *Client) CreateDeployment(ctx context.Context, r DeploymentRequest) (Deployment, error) {
	if r.SHA == "" {
		return Deployment{}, errors.New("create deployment: no commit SHA given")
	}
	env := r.Environment
	if env == "" {
		env = "production"
	}
	ref := r.Ref
	if ref == "" {
		ref = r.SHA
	}
	req := &github.DeploymentRequest{
		Ref:                   github.String(ref),
		AutoMerge:             github.Bool(false),
		RequiredContexts:      &[]string{},
		Environment:           github.String(env),
		ProductionEnvironment: r.ProductionEnvironment,
		TransientEnvironment:  r.TransientEnvironment,
	}
	if r.Task != "" {
		req.Task = github.String(r.Task)
	}
	if r.Description != "" {
		req.Description = github.String(r.Description)
	}
	if r.Payload != nil {
		req.Payload = r.Payload
	}
	d, err := c.createOnce(ctx, env, req, r.Same)
	if err != nil {
		return Deployment{}, c.wrap(err, deploymentsWrite("create deployment"), "create deployment of %s to %s", sha.Short(r.SHA), env)
	}
	out := fromGitHub(d)
	if !sha.Same(out.SHA, r.SHA) {
		return out, fmt.Errorf("create deployment of %s to %s: GitHub resolved ref %q to %s instead (deployment %d)",
			sha.Short(r.SHA), env, ref, sha.Short(out.SHA), out.ID)
	}
	return out, nil
}

// createOnce creates the deployment, making sure that retries never make a
// second one: each attempt goes out once, and after a failed one the
// environment's newest deployments are searched for what it made.
func (c *Client) createOnce(ctx context.Context, env string, req *github.DeploymentRequest, same func(Deployment) bool) (*github.Deployment, error) {
	if same == nil {
		d, _, err := c.gh().Repositories.CreateDeployment(ctx, c.owner, c.repo, req)
		return d, err
	}
	for attempt := 1; ; attempt++ {
		d, _, err := c.gh().Repositories.CreateDeployment(withoutRetries(ctx), c.owner, c.repo, req)
		var ue *UnavailableError
		if err == nil || !errors.As(err, &ue) || attempt > c.maxRetries || ctx.Err() != nil {
			return d, err
		}
		var found *github.Deployment
		opts := &github.DeploymentsListOptions{Environment: env, ListOptions: github.ListOptions{PerPage: 30}}
		if list, _, lerr := c.gh().Repositories.ListDeployments(ctx, c.owner, c.repo, opts); lerr == nil {
			for _, gd := range list {
				if same(fromGitHub(gd)) {
					found = gd
					break
				}
			}
		}
		if found != nil {
			c.logf("GitHub: the create of a deployment failed (%v), but GitHub had made it: using deployment %d", err, found.GetID())
			return found, nil
		}
		wait := backoff(attempt)
		c.logf("GitHub: the create of a deployment failed (%v) and GitHub has none from it; retrying in %s (attempt %d of %d)", err, wait, attempt+1, c.maxRetries+1)
		if err := c.sleep(ctx, wait); err != nil {
			return nil, err
		}
	}
}

// SetDeploymentStatus adds a status to deployment id.
func (c *Client) SetDeploymentStatus(ctx context.Context, id int64, s DeploymentStatus) error {
	req := &github.DeploymentStatusRequest{
		State:        github.String(s.State),
		AutoInactive: s.AutoInactive,
	}
	if s.Description != "" {
		req.Description = github.String(TruncateDescription(s.Description))
	}
	if s.LogURL != "" {
		req.LogURL = github.String(s.LogURL)
	}
	if s.EnvironmentURL != "" {
		req.EnvironmentURL = github.String(s.EnvironmentURL)
	}
	if s.Environment != "" {
		req.Environment = github.String(s.Environment)
	}
	_, _, err := c.gh().Repositories.CreateDeploymentStatus(ctx, c.owner, c.repo, id, req)
	a := access{op: "create deployment status", permission: "deployments: write", item: fmt.Sprintf("deployment %d", id)}
	return c.wrap(err, a, "set status of deployment %d to %s", id, s.State)
}

// Deployments returns up to max deployments of environment (all
// environments when empty), newest first, each with its latest status.
// max <= 0 means DefaultHistory; it is capped at MaxHistory.
func (c *Client) Deployments(ctx context.Context, environment string, max int) ([]Deployment, error) {
	var out []Deployment
	err := c.walk(ctx, environment, history(max), func(d *Deployment) (bool, error) {
		if err := c.latestStatus(ctx, d); err != nil {
			return false, err
		}
		out = append(out, *d)
		return true, nil
	})
	if err != nil {
		return nil, c.wrap(err, deploymentsRead("list deployments"), "list deployments of %s", envName(environment))
	}
	return out, nil
}

// WalkDeployments lists the deployments of environment (all environments
// when empty) newest first, page by page, calling fn for each until it
// returns false or limit deployments were seen (limit <= 0 means
// DefaultHistory; it is capped at MaxHistory). Pages are fetched only as
// fn asks for more, and statuses not at all: fn calls LatestStatus for the
// deployments it needs to judge.
func (c *Client) WalkDeployments(ctx context.Context, environment string, limit int, fn func(*Deployment) (bool, error)) error {
	if err := c.walk(ctx, environment, history(limit), fn); err != nil {
		return c.wrap(err, deploymentsRead("list deployments"), "list deployments of %s", envName(environment))
	}
	return nil
}

// walk lists deployments newest first, page by page, calling fn for each
// until it returns false or limit deployments were seen.
func (c *Client) walk(ctx context.Context, environment string, limit int, fn func(*Deployment) (bool, error)) error {
	opts := &github.DeploymentsListOptions{
		Environment: environment,
		ListOptions: github.ListOptions{PerPage: min(perPage, limit), Page: 1},
	}
	seen := 0
	for {
		page, resp, err := c.gh().Repositories.ListDeployments(ctx, c.owner, c.repo, opts)
		if err != nil {
			return err
		}
		for _, gd := range page {
			d := fromGitHub(gd)
			seen++
			more, err := fn(&d)
			if err != nil {
				return err
			}
			if !more || seen >= limit {
				return nil
			}
		}
		if resp.NextPage == 0 || len(page) == 0 {
			return nil
		}
		opts.Page = resp.NextPage
	}
}

// LatestStatus fills in d's latest status (LatestState, LatestStatusAt,
// LogURL); GitHub lists statuses newest first.
func (c *Client) LatestStatus(ctx context.Context, d *Deployment) error {
	if err := c.latestStatus(ctx, d); err != nil {
		return c.wrap(err, deploymentsRead("list deployment statuses"), "read the status of deployment %d", d.ID)
	}
	return nil
}

func (c *Client) latestStatus(ctx context.Context, d *Deployment) error {
	ss, _, err := c.gh().Repositories.ListDeploymentStatuses(ctx, c.owner, c.repo, d.ID, &github.ListOptions{PerPage: 1})
	if err != nil {
		return fmt.Errorf("deployment %d: %w", d.ID, err)
	}
	if len(ss) == 0 {
		return nil
	}
	s := ss[0]
	d.LatestState = s.GetState()
	d.LatestStatusAt = s.GetCreatedAt().Time
	d.LatestDescription = s.GetDescription()
	d.LogURL = s.GetLogURL()
	if d.LogURL == "" {
		d.LogURL = s.GetTargetURL()
	}
	return nil
}

func fromGitHub(d *github.Deployment) Deployment {
	return Deployment{
		ID:          d.GetID(),
		SHA:         d.GetSHA(),
		Ref:         d.GetRef(),
		Task:        d.GetTask(),
		Environment: d.GetEnvironment(),
		Description: d.GetDescription(),
		Creator:     d.GetCreator().GetLogin(),
		CreatedAt:   d.GetCreatedAt().Time,
		Payload:     payload(d.Payload),
		URL:         d.GetURL(),
	}
}

// payload decodes a deployment payload: a JSON object, or a string holding
// one (GitHub accepts both).
func payload(raw json.RawMessage) map[string]any {
	if len(raw) == 0 {
		return nil
	}
	var m map[string]any
	if json.Unmarshal(raw, &m) == nil {
		return m
	}
	var s string
	if json.Unmarshal(raw, &s) == nil && json.Unmarshal([]byte(s), &m) == nil {
		return m
	}
	return nil
}

func history(max int) int {
	if max <= 0 {
		return DefaultHistory
	}
	return min(max, MaxHistory)
}

func envName(env string) string {
	if env == "" {
		return "all environments"
	}
	return fmt.Sprintf("environment %q", env)
}
