package recorder

// The history as the stats and the backtest read it: immune's deployments
// with every status, by the rules above (OriginOf, PayloadOf, the wire
// format's states and prefixes).

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/immune-cd/immune/internal/ghapi"
	"github.com/immune-cd/immune/internal/history"
	"github.com/immune-cd/immune/internal/sha"
)

// maxCommitFailures is how many commit reads may fail in a row before the
// rest are given up on (a missing permission fails them all).
const maxCommitFailures = 3

// History reads immune's deployments of the environment for the stats and
// the backtest (package history): each with all its statuses (one request
// each), and, with q.Commits, the commit times of the deploys seen healthy
// (one request per commit). The deployments GitHub Actions made for jobs
// and those made by hand or by other tools are counted, not read.
func (r *Recorder) History(ctx context.Context, q history.Query) (history.Read, error) {
	max := q.Max
	if max <= 0 {
		max = history.DefaultMax
	}
	r.learnName(ctx)
	out := history.Read{Environment: r.env()}
	var ours []ghapi.Deployment
	seen, reachedStart := 0, false
	walk := func(ctx context.Context, gh GitHub) error {
		return gh.WalkDeployments(ctx, r.env(), ghapi.MaxHistory, func(d *ghapi.Deployment) (bool, error) {
			seen++
			if !q.Since.IsZero() && d.CreatedAt.Before(q.Since) {
				reachedStart = true
				return false, nil // newest first: the rest is older
			}
			if !q.Until.IsZero() && !d.CreatedAt.Before(q.Until) {
				return true, nil
			}
			switch OriginOf(*d) {
			case Job:
				out.Jobs++
			case Foreign:
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
	}
	if err := r.call(ctx, "read the deployments of "+r.env(), walk); err != nil {
		return out, fmt.Errorf("read the deployments of %s: %w", r.env(), err)
	}
	if out.Limited == "" && !reachedStart && seen >= ghapi.MaxHistory {
		out.Limited = fmt.Sprintf("read the newest %d deployments of the environment (GitHub's listing limit for one read) and stopped there", ghapi.MaxHistory)
	}
	for i := len(ours) - 1; i >= 0; i-- { // oldest first
		d := ours[i]
		var statuses []ghapi.Status
		err := r.call(ctx, fmt.Sprintf("read the statuses of deployment %d", d.ID), func(ctx context.Context, gh GitHub) (err error) {
			statuses, err = gh.DeploymentStatuses(ctx, d.ID)
			return err
		})
		if err != nil {
			return out, fmt.Errorf("read the history of %s: %w", r.env(), err)
		}
		out.Deployments = append(out.Deployments, pastOf(d, statuses))
	}
	if q.Commits {
		out.Missing = append(out.Missing, r.commitTimes(ctx, out.Deployments)...)
	}
	return out, nil
}

// commitTimes fills in the commit times of the deploys seen healthy, one
// read per commit, and says what it could not read.
func (r *Recorder) commitTimes(ctx context.Context, ds []history.Deployment) []string {
	times := map[string]time.Time{}
	failed, inARow := 0, 0
	var last error
	for i := range ds {
		d := &ds[i]
		if d.Kind != history.KindDeploy || d.Outcome != history.Healthy {
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
		var t time.Time
		err := r.c.do(ctx, forRecords, "read the time of commit "+sha.Short(d.SHA), "", func(ctx context.Context, gh GitHub) (err error) {
			t, err = gh.CommitTime(ctx, d.SHA)
			return err
		})
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

// pastOf reads one of immune's deployments and its statuses (newest first
// by id) for the history.
func pastOf(d ghapi.Deployment, statuses []ghapi.Status) history.Deployment {
	p, _ := PayloadOf(d)
	out := history.Deployment{
		ID:             d.ID,
		SHA:            d.SHA,
		Kind:           kindOf(Task(d.Task)),
		PreviousSHA:    p.PreviousSHA,
		RolledBackFrom: p.RolledBackFrom,
		Manual:         p.Manual,
		Created:        d.CreatedAt,
		RunURL:         p.RunURL,
		Outcome:        history.Running,
	}
	// Statuses come newest first by id, the order they were made in
	// (times have whole seconds: the id, not the time, tells apart
	// statuses of the same second).
	for _, s := range reversed(statuses) {
		switch State(s.State) {
		case StateInProgress:
			if out.Started.IsZero() {
				out.Started = s.CreatedAt
			}
		case StateSuccess, StateFailure, StateError, StateInactive:
			if out.Ended.IsZero() {
				out.Ended, out.Description = s.CreatedAt, s.Description
				out.Outcome = outcomeOf(State(s.State), s.Description)
				out.Shadow = strings.HasPrefix(s.Description, Shadow)
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
func outcomeOf(state State, desc string) history.Outcome {
	if strings.HasPrefix(desc, Shadow) {
		// A shadow run recorded what would have been acted on.
		return history.Failed
	}
	switch state {
	case StateSuccess, StateInactive:
		return history.Healthy
	case StateFailure:
		return history.Failed
	}
	switch {
	case strings.HasPrefix(desc, Inconclusive):
		return history.Inconclusive
	case strings.HasPrefix(desc, NotDeployed):
		return history.NotDeployed
	}
	return history.Errored
}

func kindOf(t Task) history.Kind {
	switch t {
	case TaskRollback:
		return history.KindRollback
	case TaskCanary:
		return history.KindCanary
	case TaskBisect:
		return history.KindBisect
	}
	return history.KindDeploy
}
