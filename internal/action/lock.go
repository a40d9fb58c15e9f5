package action

import (
	"context"
	"fmt"
	"time"

	"github.com/immune-cd/immune/internal/recorder"
	"github.com/immune-cd/immune/internal/report"
	"github.com/immune-cd/immune/internal/run"
)

// lock is how this run waits for the environment (lock-timeout), and what
// it says while it waits.
func (r *runner) lock() recorder.Lock {
	return recorder.Lock{
		Timeout: r.cfg.LockTimeout, Poll: r.d.LockPoll, Clock: r.d.Clock,
		Waiting: func(h recorder.Deployment, left time.Duration) {
			r.log.Printf("Waiting for another run of immune: %s holds %s; waiting up to %s (lock-timeout).", h.Describe(), r.cfg.Environment, report.FormatDuration(left))
		},
		Free: func(after time.Duration) {
			r.log.Printf("The environment is free after %s; reading the history again.", report.FormatDuration(after))
		},
	}
}

// awaitEnvironment waits, up to lock-timeout, while another run of immune
// holds the environment (see recorder.Await). ok is false when the run
// must end: it gave up waiting (verdict skipped) or ctx ended.
func (r *runner) awaitEnvironment(ctx context.Context) (ok bool) {
	_, held, err := r.rec.Await(ctx, 0, r.lock())
	r.busy(held)
	return held == nil && err == nil
}

// busy ends a run that gave up waiting for held, the environment's holder.
func (r *runner) busy(held *recorder.Deployment) {
	if held != nil {
		msg := fmt.Sprintf("not deployed: %s still held %s after %s (lock-timeout)", held.Describe(), r.cfg.Environment, report.FormatDuration(r.cfg.LockTimeout))
		r.end(run.Skipped, ExitRegressed, msg)
		r.log.Error("Environment busy", msg)
	}
}

// holdFor is how long this run may keep a deployment queued or in
// progress: the wait for the environment, the command and the watch it
// covers, and a minute of slack for GitHub's records.
func (r *runner) holdFor(watch time.Duration) time.Duration {
	return r.cfg.LockTimeout + r.cfg.DeployTimeout + r.cfg.BaselineDuration + watch + time.Minute
}

// startDeployment records this run's deployment of commit (see
// recorder.Start). ok is false when the run must end: the deployment is
// then closed as not deployed, unless ctx ended, which the cancellation
// handles.
func (r *runner) startDeployment(ctx context.Context, task recorder.Task, commit string, p recorder.Payload, watch time.Duration, desc string) (dep *recorder.Handle, waited, ok bool) {
	p.HoldSeconds = int64(r.holdFor(watch) / time.Second)
	dep, waited, held, err := r.rec.Start(ctx, task, commit, p, desc, r.lock(), func() {
		r.log.Printf("GitHub has not recorded the deployment yet; going ahead without checking for a run that started at the same instant.")
	})
	if held != nil {
		r.busy(held)
		r.rec.SetStatus(dep, recorder.StateError, recorder.NotDeployed+r.out.Reason)
	}
	return dep, waited, held == nil && err == nil
}
