package ghapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"sort"
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
	// lostCreateSearch is how many of the environment's newest deployments
	// are searched for one whose create lost its answer.
	lostCreateSearch = 30
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
	out := *d
	if !sha.Same(out.SHA, r.SHA) {
		return out, fmt.Errorf("create deployment of %s to %s: GitHub resolved ref %q to %s instead (deployment %d)",
			sha.Short(r.SHA), env, ref, sha.Short(out.SHA), out.ID)
	}
	return out, nil
}

// createOnce creates the deployment, making sure that retries never make a
// second one: each attempt goes out once, and after a failed one the
// environment's newest deployments are searched for what it made.
func (c *Client) createOnce(ctx context.Context, env string, req *github.DeploymentRequest, same func(Deployment) bool) (*Deployment, error) {
	create := func(ctx context.Context) (*Deployment, error) {
		d, _, err := c.gh().Repositories.CreateDeployment(ctx, c.owner, c.repo, req)
		if err != nil {
			return nil, err
		}
		out := fromGitHub(d)
		return &out, nil
	}
	if same == nil {
		return create(ctx)
	}
	return lookBeforeRetry(c, ctx, "a deployment", create, func(ctx context.Context) (*Deployment, string, bool) {
		var found *Deployment
		_ = c.walk(ctx, env, lostCreateSearch, func(d *Deployment) (bool, error) {
			if same(*d) {
				found = d
			}
			return found == nil, nil
		})
		if found == nil {
			return nil, "", false
		}
		return found, fmt.Sprintf("deployment %d", found.ID), true
	})
}

// lookBeforeRetry makes a create safe to retry when its answer may be lost
// after GitHub acted (a 5xx from a proxy in front of it, a dropped
// connection, a timeout): each attempt goes out once, without the
// transport's retries; after one that failed so, find looks for what it
// made, which is returned as made; only when there is none is the create
// tried again, after a backoff. what names the thing for the log, and find
// names what it found.
func lookBeforeRetry[T any](c *Client, ctx context.Context, what string, create func(context.Context) (T, error), find func(context.Context) (T, string, bool)) (T, error) {
	for attempt := 1; ; attempt++ {
		v, err := create(withoutRetries(ctx))
		var ue *UnavailableError
		if err == nil || !errors.As(err, &ue) || ctx.Err() != nil {
			return v, err
		}
		if found, name, ok := find(ctx); ok {
			c.logf("GitHub: the create of %s failed (%v), but GitHub had made it: using %s", what, err, name)
			return found, nil
		}
		if attempt > c.maxRetries {
			return v, err
		}
		wait := backoff(attempt)
		c.logf("GitHub: the create of %s failed (%v) and GitHub has none from it; retrying in %s (attempt %d of %d)", what, err, wait, attempt+1, c.maxRetries+1)
		if err := c.sleep(ctx, wait); err != nil {
			var zero T
			return zero, err
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

// walk lists deployments newest first, by id, page by page, calling fn
// for each until it returns false or limit deployments were seen.
//
// GitHub lists deployments newest first, but its REST description does not
// promise it, so the newest is taken by id, not by place: each page is
// ordered by id; a listing that runs oldest first is read from its last
// page back; and one in no order at all is read whole (up to limit) and
// ordered before fn sees any of it.
func (c *Client) walk(ctx context.Context, environment string, limit int, fn func(*Deployment) (bool, error)) error {
	per := min(perPage, limit)
	list := func(page int) ([]Deployment, *github.Response, error) {
		opts := &github.DeploymentsListOptions{Environment: environment, ListOptions: github.ListOptions{PerPage: per, Page: page}}
		gds, resp, err := c.gh().Repositories.ListDeployments(ctx, c.owner, c.repo, opts)
		if err != nil {
			return nil, nil, err
		}
		out := make([]Deployment, 0, len(gds))
		for _, gd := range gds {
			out = append(out, fromGitHub(gd))
		}
		return out, resp, nil
	}
	first, resp, err := list(1)
	if err != nil {
		return err
	}
	order := orderOf(first, func(d Deployment) int64 { return d.ID })
	if order == unordered || (order == unknownOrder && resp.NextPage != 0) {
		// Read what limit allows, then order it.
		all := first
		for next := resp.NextPage; next != 0 && len(all) < limit; {
			page, r, err := list(next)
			if err != nil {
				return err
			}
			all = append(all, page...)
			next = r.NextPage
			if len(page) == 0 {
				break
			}
		}
		return hand(newestFirst(all), limit, 0, fn)
	}
	seen := 0
	if order == oldestFirst && resp.LastPage > 1 {
		// The newest are on the last page.
		for p := resp.LastPage; p >= 1 && seen < limit; p-- {
			page := first
			if p > 1 {
				if page, _, err = list(p); err != nil {
					return err
				}
			}
			n, more, err := handPage(newestFirst(page), limit, seen, fn)
			if err != nil || !more {
				return err
			}
			seen = n
		}
		return nil
	}
	page := first
	for {
		n, more, err := handPage(newestFirst(page), limit, seen, fn)
		if err != nil || !more {
			return err
		}
		seen = n
		if resp.NextPage == 0 || len(page) == 0 {
			return nil
		}
		if page, resp, err = list(resp.NextPage); err != nil {
			return err
		}
	}
}

// handPage calls fn for each deployment of a page, counting from seen; more
// is false once fn or limit says to stop.
func handPage(page []Deployment, limit, seen int, fn func(*Deployment) (bool, error)) (int, bool, error) {
	for i := range page {
		seen++
		more, err := fn(&page[i])
		if err != nil {
			return seen, false, err
		}
		if !more || seen >= limit {
			return seen, false, nil
		}
	}
	return seen, true, nil
}

func hand(all []Deployment, limit, seen int, fn func(*Deployment) (bool, error)) error {
	_, _, err := handPage(all, limit, seen, fn)
	return err
}

// listOrder is how a page of a listing is ordered by id.
type listOrder int

const (
	unknownOrder listOrder = iota // fewer than two items
	newestFirstOrder
	oldestFirst
	unordered
)

// orderOf tells how items are ordered by id.
func orderOf[T any](items []T, id func(T) int64) listOrder {
	if len(items) < 2 {
		return unknownOrder
	}
	down, up := true, true
	for i := 1; i < len(items); i++ {
		a, b := id(items[i-1]), id(items[i])
		down = down && a > b
		up = up && a < b
	}
	switch {
	case down:
		return newestFirstOrder
	case up:
		return oldestFirst
	}
	return unordered
}

// newestFirst orders deployments by id, the highest (the newest) first.
func newestFirst(ds []Deployment) []Deployment {
	sort.SliceStable(ds, func(i, j int) bool { return ds[i].ID > ds[j].ID })
	return ds
}

// LatestStatus fills in d's latest status (LatestState, LatestStatusAt,
// LogURL): the one with the highest id, wherever GitHub lists it.
func (c *Client) LatestStatus(ctx context.Context, d *Deployment) error {
	if err := c.latestStatus(ctx, d); err != nil {
		return c.wrap(err, deploymentsRead("list deployment statuses"), "read the status of deployment %d", d.ID)
	}
	return nil
}

// latestStatus reads a page of a deployment's statuses (GitHub lists them
// newest first, so one page holds the newest) and takes the highest id; a
// listing that runs oldest first has the newest on its last page.
func (c *Client) latestStatus(ctx context.Context, d *Deployment) error {
	list := func(page int) ([]*github.DeploymentStatus, *github.Response, error) {
		ss, resp, err := c.gh().Repositories.ListDeploymentStatuses(ctx, c.owner, c.repo, d.ID, &github.ListOptions{PerPage: perPage, Page: page})
		if err != nil {
			return nil, nil, fmt.Errorf("deployment %d: %w", d.ID, err)
		}
		return ss, resp, nil
	}
	ss, resp, err := list(1)
	if err != nil {
		return err
	}
	if orderOf(ss, (*github.DeploymentStatus).GetID) == oldestFirst && resp.LastPage > 1 {
		if ss, _, err = list(resp.LastPage); err != nil {
			return err
		}
	}
	if len(ss) == 0 {
		return nil
	}
	s := ss[0]
	for _, x := range ss[1:] {
		if x.GetID() > s.GetID() {
			s = x
		}
	}
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

// ErrNoSuchEnvironment is wrapped by EnvironmentName's error when GitHub
// knows no environment of that name (it makes one with the first
// deployment that names it), or the token cannot see it.
var ErrNoSuchEnvironment = errors.New("no such environment")

// EnvironmentName returns the name GitHub has for the environment called
// name. GitHub's environment names do not depend on letter case
// ("Production" and "production" are one environment), so what comes back
// may differ from name in case only.
func (c *Client) EnvironmentName(ctx context.Context, name string) (string, error) {
	env, _, err := c.gh().Repositories.GetEnvironment(ctx, c.owner, c.repo, url.PathEscape(name))
	var ger *github.ErrorResponse
	if errors.As(err, &ger) && statusOf(ger.Response) == http.StatusNotFound {
		return "", fmt.Errorf("read %s: %w in %s", envName(name), ErrNoSuchEnvironment, c.Repository())
	}
	if err != nil {
		return "", c.wrap(err, access{op: "get environment", permission: "actions: read"}, "read %s", envName(name))
	}
	return env.GetName(), nil
}
