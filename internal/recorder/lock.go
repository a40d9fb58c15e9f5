package recorder

import (
	"context"
	"fmt"
	"time"

	"github.com/immune-cd/immune/internal/clock"
	"github.com/immune-cd/immune/internal/sha"
)

// Lock is how a run waits while another run of immune holds the
// environment: one of its deployments is queued or in progress within the
// time its run may take. GitHub's concurrency groups cannot be relied on
// for this: a group keeps one pending job and cancels the older pending one
// when another queues, and two workflows may use two groups.
type Lock struct {
	// Timeout is lock-timeout; Poll how often the history is read again.
	Timeout, Poll time.Duration
	Clock         clock.Clock
	// Waiting is told each time the run starts waiting for a holder, with
	// the time left; Free when the environment is free after a wait.
	Waiting func(holder Deployment, left time.Duration)
	Free    func(waited time.Duration)
}

// Await waits, up to l.Timeout, while another run holds the environment.
// before limits the wait to deployments older than this run's own (0
// before this run created one): when two runs start at once, both record a
// queued deployment, and the younger one waits for the older one. waited
// says whether it waited at all (the history is then worth reading again);
// held is the deployment that still held the environment at the timeout
// (the run must end then), nil otherwise; err is set when ctx ended. When
// GitHub cannot answer, the run goes ahead: GitHub never stops a deploy.
func (r *Recorder) Await(ctx context.Context, before int64, l Lock) (waited bool, held *Deployment, err error) {
	if !r.Enabled() {
		return false, nil, nil
	}
	start := l.Clock.Now()
	deadline := start.Add(l.Timeout)
	var waitingFor int64
	for {
		holders, err := r.Holders(ctx, before)
		if err != nil || len(holders) == 0 {
			if waitingFor != 0 && err == nil && l.Free != nil {
				l.Free(l.Clock.Now().Sub(start))
			}
			return waitingFor != 0, nil, nil
		}
		h := holders[0]
		now := l.Clock.Now()
		if h.ID != waitingFor {
			waitingFor = h.ID
			if l.Waiting != nil {
				l.Waiting(h, deadline.Sub(now))
			}
		}
		if !now.Before(deadline) {
			return true, &h, nil
		}
		select {
		case <-ctx.Done():
			return true, nil, ctx.Err()
		case <-l.Clock.After(min(l.Poll, deadline.Sub(now))):
		}
	}
}

// Describe names a deployment that holds the environment, and its run.
func (d Deployment) Describe() string {
	s := fmt.Sprintf("deployment %d (%s of %s, %s since %s", d.ID, d.Task, sha.Short(d.SHA),
		StateName(d.State), d.CreatedAt.UTC().Format(time.TimeOnly+" MST"))
	if d.Payload.RunURL != "" {
		s += ", run " + d.Payload.RunURL
	}
	return s + ")"
}

// supersededBudget bounds the one read of GitHub between a verdict and the
// rollback.
const supersededBudget = time.Second

// Superseding is the newest deployment made after mine that went live or
// is going live, by immune or not (jobs' excepted): rolling mine back would
// undo it. Other runs of immune wait for this one, so this is about deploys
// made by hand or by other tools; the read gets one second at most, since
// it stands between the verdict and the rollback.
func (r *Recorder) Superseding(ctx context.Context, mine *Handle) (Deployment, bool) {
	d, ok := mine.Known()
	if !ok || r.Down() {
		return Deployment{}, false
	}
	ctx, cancel := context.WithTimeout(ctx, supersededBudget)
	defer cancel()
	newer, err := r.Newer(ctx, d)
	if err != nil || len(newer) == 0 {
		return Deployment{}, false
	}
	return newer[0], true
}

// raceWait is the longest a deploy waits for GitHub to record its
// deployment, before it checks for a run that started at the same instant.
const raceWait = 2 * time.Second

// Start records a deployment of commit, queued, waits (Await) for any
// older run that holds the environment, and then marks it in progress with
// desc. GitHub holds the deploy up for raceWait at most: if it has not
// answered the create by then, the race check is skipped and unrecorded is
// told. held and err are Await's: when held is set, the run must end and
// closes dep; when err is set, ctx ended. dep is nil without GitHub.
func (r *Recorder) Start(ctx context.Context, task Task, commit string, p Payload, desc string, l Lock, unrecorded func()) (dep *Handle, waited bool, held *Deployment, err error) {
	r.learnName(ctx)
	dep = r.Create(task, commit, p, StateQueued, "waiting for "+r.env()+" to be free")
	if dep == nil {
		return nil, false, nil, nil
	}
	if d, known := dep.Wait(ctx, raceWait); known {
		waited, held, err = r.Await(ctx, d.ID, l)
	} else if ctx.Err() == nil {
		unrecorded()
	}
	if ctx.Err() == nil && held == nil {
		r.SetStatus(dep, StateInProgress, desc)
	}
	return dep, waited, held, ctx.Err()
}
