package history

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/immune-cd/immune/internal/ghapi"
	"github.com/immune-cd/immune/internal/recorder"
	"github.com/immune-cd/immune/internal/sha"
)

// GitHub is what reading the history needs of GitHub's API. *ghapi.Client
// implements it.
type GitHub interface {
	WalkDeployments(ctx context.Context, environment string, limit int, fn func(*ghapi.Deployment) (bool, error)) error
	DeploymentStatuses(ctx context.Context, id int64) ([]ghapi.Status, error)
	CommitTime(ctx context.Context, commit string) (time.Time, error)
}

// FromGitHub reads the history from GitHub's deployments.
func FromGitHub(gh GitHub) Reader { return githubReader{gh: gh} }

type githubReader struct{ gh GitHub }

// maxCommitFailures is how many commit reads may fail in a row before the
// rest are given up on (a missing permission fails them all).
const maxCommitFailures = 3

func (g githubReader) Read(ctx context.Context, q Query) (Read, error) {
	max := q.Max
	if max <= 0 {
		max = DefaultMax
	}
	out := Read{Environment: q.Environment}
	var ours []ghapi.Deployment
	seen, reachedStart := 0, false
	err := g.gh.WalkDeployments(ctx, q.Environment, ghapi.MaxHistory, func(d *ghapi.Deployment) (bool, error) {
		seen++
		if !q.Since.IsZero() && d.CreatedAt.Before(q.Since) {
			reachedStart = true
			return false, nil // newest first: the rest is older
		}
		if !q.Until.IsZero() && !d.CreatedAt.Before(q.Until) {
			return true, nil
		}
		switch recorder.OriginOf(*d) {
		case recorder.Job:
			out.Jobs++
		case recorder.Foreign:
			out.Foreign++
		default:
			if len(ours) == max {
				out.Limited = fmt.Sprintf("read the newest %d of immune's deployments and stopped there", max)
				return false, nil
			}
			ours = append(ours, *d)
		}
		return true, nil
	})
	if err != nil {
		return out, fmt.Errorf("read the deployments of %s: %w", q.Environment, err)
	}
	if out.Limited == "" && !reachedStart && seen >= ghapi.MaxHistory {
		out.Limited = fmt.Sprintf("read the newest %d deployments of the environment (GitHub's listing limit for one read) and stopped there", ghapi.MaxHistory)
	}
	for i := len(ours) - 1; i >= 0; i-- { // oldest first
		d := ours[i]
		statuses, err := g.gh.DeploymentStatuses(ctx, d.ID)
		if err != nil {
			return out, fmt.Errorf("read the history of %s: %w", q.Environment, err)
		}
		out.Deployments = append(out.Deployments, fromGitHub(d, statuses))
	}
	if q.Commits {
		out.Missing = append(out.Missing, g.commitTimes(ctx, out.Deployments)...)
	}
	return out, nil
}

// commitTimes fills in the commit times of the deploys seen healthy, one
// read per commit, and says what it could not read.
func (g githubReader) commitTimes(ctx context.Context, ds []Deployment) []string {
	times := map[string]time.Time{}
	failed, inARow := 0, 0
	var last error
	for i := range ds {
		d := &ds[i]
		if d.Kind != KindDeploy || d.Outcome != Healthy {
			continue
		}
		if t, ok := times[d.SHA]; ok {
			d.Committed = t
			continue
		}
		if inARow >= maxCommitFailures {
			failed++
			continue
		}
		t, err := g.gh.CommitTime(ctx, d.SHA)
		if err != nil {
			if ctx.Err() != nil {
				return []string{"commit times: " + ctx.Err().Error()}
			}
			failed++
			inARow++
			last = err
			continue
		}
		inARow = 0
		times[d.SHA] = t
		d.Committed = t
	}
	if failed == 0 {
		return nil
	}
	return []string{fmt.Sprintf("the commit times of %d healthy deploy(s) (the last error: %v)", failed, last)}
}

// fromGitHub reads one of immune's deployments and its statuses (newest
// first, as GitHub lists them).
func fromGitHub(d ghapi.Deployment, statuses []ghapi.Status) Deployment {
	p, _ := recorder.PayloadOf(d)
	out := Deployment{
		ID:             d.ID,
		SHA:            d.SHA,
		Kind:           kindOf(recorder.Task(d.Task)),
		PreviousSHA:    p.PreviousSHA,
		RolledBackFrom: p.RolledBackFrom,
		Manual:         p.Manual,
		Created:        d.CreatedAt,
		RunURL:         p.RunURL,
		Outcome:        Running,
	}
	// Statuses come newest first by id, the order they were made in
	// (times have whole seconds: the id, not the time, tells apart
	// statuses of the same second).
	for _, s := range reversed(statuses) {
		switch recorder.State(s.State) {
		case recorder.StateInProgress:
			if out.Started.IsZero() {
				out.Started = s.CreatedAt
			}
		case recorder.StateSuccess, recorder.StateFailure, recorder.StateError, recorder.StateInactive:
			if out.Ended.IsZero() {
				out.Ended, out.Description = s.CreatedAt, s.Description
				out.Outcome = outcomeOf(recorder.State(s.State), s.Description)
			}
		}
	}
	return out
}

func reversed(ss []ghapi.Status) []ghapi.Status {
	out := make([]ghapi.Status, len(ss))
	for i, s := range ss {
		out[len(ss)-1-i] = s
	}
	return out
}

// outcomeOf reads the status that ended a deployment by the recorder's
// wire format. GitHub only marks successes inactive (and immune never
// does), so an inactive first end was a success whose status was lost.
func outcomeOf(state recorder.State, desc string) Outcome {
	switch state {
	case recorder.StateSuccess, recorder.StateInactive:
		return Healthy
	case recorder.StateFailure:
		return Failed
	}
	switch {
	case strings.HasPrefix(desc, recorder.Inconclusive):
		return Inconclusive
	case strings.HasPrefix(desc, recorder.NotDeployed):
		return NotDeployed
	}
	return Errored
}

func kindOf(t recorder.Task) Kind {
	switch t {
	case recorder.TaskRollback:
		return KindRollback
	case recorder.TaskCanary:
		return KindCanary
	}
	return KindDeploy
}

// ErrNoGitHub is returned when there is no GitHub to read.
var ErrNoGitHub = errors.New("the history is read from GitHub's deployments: set github-token (GITHUB_TOKEN) and GITHUB_REPOSITORY")

// Short names a deployment for people: "1000007 (4d8b3f2)".
func (d Deployment) Short() string { return fmt.Sprintf("%d (%s)", d.ID, sha.Short(d.SHA)) }
