package action

import (
	"context"
	"fmt"
	"time"

	"github.com/immune-cd/immune/internal/recorder"
	"github.com/immune-cd/immune/internal/report"
	"github.com/immune-cd/immune/internal/run"
	"github.com/immune-cd/immune/internal/sha"
)

// awaitEnvironment waits, up to lock-timeout, while another run of immune
// holds the environment: one of its deployments is queued or in progress
// within the time its run may take. GitHub's concurrency groups cannot be
// relied on for this: a group keeps one pending job and cancels the older
// pending one when another queues, and two workflows may use two groups.
//
// before limits the wait to deployments older than this run's own (0
// before this run created one): when two runs start at once, both record a
// queued deployment, and the younger one waits for the older one.
//
// ok is false when the run must end: it gave up waiting (verdict skipped)
// or ctx ended; waited says whether it waited at all (the history is then
// worth reading again). When GitHub cannot answer, the run goes ahead:
// GitHub never stops a deploy.
func (r *runner) awaitEnvironment(ctx context.Context, before int64) (ok, waited bool) {
	if !r.rec.Enabled() {
		return true, false
	}
	start := r.d.Clock.Now()
	deadline := start.Add(r.cfg.LockTimeout)
	var waitingFor int64
	for {
		holders, err := r.rec.Holders(ctx, before)
		if err != nil || len(holders) == 0 {
			if waitingFor != 0 && err == nil {
				r.log.Printf("The environment is free after %s; reading the history again.", report.FormatDuration(r.d.Clock.Now().Sub(start)))
			}
			return true, waitingFor != 0
		}
		h := holders[0]
		now := r.d.Clock.Now()
		if h.ID != waitingFor {
			waitingFor = h.ID
			r.log.Printf("Waiting for another run of immune: %s holds %s; waiting up to %s (lock-timeout).",
				describeHolder(h), r.cfg.Environment, report.FormatDuration(deadline.Sub(now)))
		}
		if !now.Before(deadline) {
			msg := fmt.Sprintf("not deployed: %s still held %s after %s (lock-timeout)", describeHolder(h), r.cfg.Environment, report.FormatDuration(r.cfg.LockTimeout))
			r.end(run.Skipped, ExitRegressed, msg)
			r.log.Error("Environment busy", msg)
			return false, true
		}
		select {
		case <-ctx.Done():
			return false, true
		case <-r.d.Clock.After(min(r.d.LockPoll, deadline.Sub(now))):
		}
	}
}

// describeHolder names a deployment that holds the environment, and its run.
func describeHolder(d recorder.Deployment) string {
	s := fmt.Sprintf("deployment %d (%s of %s, %s since %s", d.ID, d.Task, sha.Short(d.SHA),
		recorder.StateName(d.State), d.CreatedAt.UTC().Format(time.TimeOnly+" MST"))
	if d.Payload.RunURL != "" {
		s += ", run " + d.Payload.RunURL
	}
	return s + ")"
}

// holdFor is how long this run may keep a deployment queued or in
// progress: the wait for the environment, the command and the watch it
// covers, and a minute of slack for GitHub's records.
func (r *runner) holdFor(watch time.Duration) time.Duration {
	return r.cfg.LockTimeout + r.cfg.DeployTimeout + r.cfg.BaselineDuration + watch + time.Minute
}

// raceWait is the longest the deploy waits for GitHub to record its
// deployment, before it checks for a run that started at the same instant.
const raceWait = 2 * time.Second

// startDeployment records this run's deployment of commit, queued, waits
// for any older run that holds the environment, and then marks it in
// progress. ok is false when the run must end (see awaitEnvironment): the
// deployment is then closed as not deployed, unless ctx ended, which the
// cancellation handles. GitHub holds the deploy up for raceWait at most: if
// it has not answered the create by then, the race check is skipped.
func (r *runner) startDeployment(ctx context.Context, task recorder.Task, commit string, p recorder.Payload, watch time.Duration, desc string) (dep *recorder.Handle, waited, ok bool) {
	p.HoldSeconds = int64(r.holdFor(watch) / time.Second)
	dep = r.rec.Create(task, commit, p, recorder.StateQueued, "waiting for "+r.cfg.Environment+" to be free")
	if dep == nil {
		return nil, false, true
	}
	ok = true
	if d, known := dep.Wait(ctx, raceWait); known {
		ok, waited = r.awaitEnvironment(ctx, d.ID)
	} else if ctx.Err() == nil {
		r.log.Printf("GitHub has not recorded the deployment yet; going ahead without checking for a run that started at the same instant.")
	}
	switch {
	case ctx.Err() != nil:
	case !ok:
		r.rec.SetStatus(dep, recorder.StateError, recorder.NotDeployed+r.out.Reason)
	default:
		r.rec.SetStatus(dep, recorder.StateInProgress, desc)
	}
	return dep, waited, ok
}
