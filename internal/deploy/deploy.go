// Package deploy puts a commit live, through one of three Deployers.
//
// Command runs the user's deploy and rollback commands as real child
// processes: in their own process group, with the commit passed in the
// environment (never spliced into the command), output streamed, and a
// timeout or cancellation that stops the whole group: SIGTERM, then, after
// a grace period, SIGKILL to every member still there, and Deploy returns
// only once no member is left. A process that leaves the group on purpose
// (setsid) is the one way to outlive it.
//
// Workflow dispatches the user's deploy workflow and awaits its run; a run
// still going at the timeout or when the job is cancelled is cancelled
// through the API, and a dispatch is never sent twice for one deploy.
//
// Hook POSTs the request, signed, to a deploy hook, with bounded retries
// under one idempotency key.
package deploy

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Reasons passed to the command as IMMUNE_REASON.
const (
	ReasonDeploy   = "deploy"
	ReasonRollback = "rollback"
	// ReasonBisect deploys one step of a bisection: a commit of a batch
	// that regressed, judged and then removed.
	ReasonBisect = "bisect"
)

// Request says what to deploy.
type Request struct {
	SHA         string
	PreviousSHA string
	Environment string
	Reason      string // ReasonDeploy, ReasonRollback or ReasonBisect
	// Stage is IMMUNE_STAGE: "canary" for the canary subset, "full" for the
	// whole fleet (the canary included); empty leaves it unset.
	Stage string
}

// Deployer puts a commit live.
type Deployer interface {
	Deploy(ctx context.Context, req Request) error
}

// Command deploys by running a shell command with /bin/sh -c.
type Command struct {
	Script  string
	Dir     string
	Env     []string // the environment the command starts from
	Timeout time.Duration
	// Grace is how long the group gets between SIGTERM and SIGKILL after a
	// timeout, and how long output from leftover background processes of a
	// successful command is awaited. Default 5s.
	Grace time.Duration
	// CancelGrace replaces Grace when ctx is cancelled (the job was
	// cancelled: the runner kills the container seconds later). Default
	// Grace.
	CancelGrace time.Duration
	Output      io.Writer
}

// Deploy runs the command and waits for it. A non-zero exit, a timeout or a
// cancelled ctx is an error.
func (c *Command) Deploy(ctx context.Context, req Request) error {
	cmd := exec.Command("/bin/sh", "-c", c.Script)
	cmd.Dir = c.Dir
	cmd.Env = append(append([]string{}, c.Env...),
		"IMMUNE_SHA="+req.SHA,
		"IMMUNE_PREVIOUS_SHA="+req.PreviousSHA,
		"IMMUNE_ENVIRONMENT="+req.Environment,
		"IMMUNE_REASON="+req.Reason,
	)
	if req.Stage != "" {
		cmd.Env = append(cmd.Env, "IMMUNE_STAGE="+req.Stage)
	}
	cmd.Stdout, cmd.Stderr = c.Output, c.Output
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	grace := c.Grace
	if grace <= 0 {
		grace = 5 * time.Second
	}
	cmd.WaitDelay = grace

	if err := cmd.Start(); err != nil {
		return fmt.Errorf("start command: %w", err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()

	ctx, cancel := context.WithTimeout(ctx, c.Timeout)
	defer cancel()
	select {
	case err := <-done:
		return exitError(err)
	case <-ctx.Done():
	}

	timedOut := errors.Is(ctx.Err(), context.DeadlineExceeded)
	if !timedOut && c.CancelGrace > 0 {
		grace = c.CancelGrace
	}
	left := stopGroup(cmd.Process.Pid, grace, done)
	var err error
	if timedOut {
		err = fmt.Errorf("command did not finish within %s; its process group was killed", c.Timeout)
	} else {
		err = fmt.Errorf("command was cancelled; its process group was killed: %w", ctx.Err())
	}
	if len(left) > 0 {
		err = fmt.Errorf("%w, but processes %v were still there after SIGKILL", err, left)
	}
	return err
}

// stopGroup stops process group pgid, whose leader's Wait reports on done:
// SIGTERM to the group; once the group is empty or grace has passed,
// SIGKILL to whatever is left, whether or not the leader is gone (a child
// that ignores SIGTERM must not finish a deploy after a rollback); then it
// waits for the leader and for every member to be gone. It returns the
// members still alive after a bounded wait, normally none.
func stopGroup(pgid int, grace time.Duration, done <-chan error) (left []int) {
	_ = syscall.Kill(-pgid, syscall.SIGTERM)
	deadline := time.Now().Add(grace)
	for len(groupMembers(pgid)) > 0 && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	_ = syscall.Kill(-pgid, syscall.SIGKILL)
	<-done
	// SIGKILL cannot be ignored, but delivery takes a moment.
	deadline = time.Now().Add(5 * time.Second)
	for {
		left = groupMembers(pgid)
		if len(left) == 0 || time.Now().After(deadline) {
			return left
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// groupMembers lists the live processes of group pgid. Zombies do not
// count: an orphan that died stays one until whoever adopted it reaps it,
// which the first process of some containers never does.
func groupMembers(pgid int) []int {
	entries, err := os.ReadDir("/proc")
	if err != nil {
		// No /proc: ask the kernel whether the group has any process.
		if syscall.Kill(-pgid, 0) == nil {
			return []int{-pgid}
		}
		return nil
	}
	var pids []int
	for _, e := range entries {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		// pid (comm) state ppid pgrp ...; comm may hold spaces and parentheses.
		i := bytes.LastIndexByte(stat, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(stat[i+1:]))
		if len(f) < 3 || f[0] == "Z" || f[0] == "X" {
			continue
		}
		if g, _ := strconv.Atoi(f[2]); g == pgid {
			pids = append(pids, pid)
		}
	}
	return pids
}

func exitError(err error) error {
	var exit *exec.ExitError
	switch {
	case err == nil, errors.Is(err, exec.ErrWaitDelay):
		// ErrWaitDelay: the command succeeded but left a background process
		// holding its output; the deploy itself is done.
		return nil
	case errors.As(err, &exit) && exit.Exited():
		return fmt.Errorf("command exited with status %d", exit.ExitCode())
	case errors.As(err, &exit):
		return fmt.Errorf("command was killed by %s", exit.String())
	}
	return fmt.Errorf("command: %w", err)
}

// AfterCancel is a context for a step that must still run after ctx is
// cancelled (putting something back): it ends budget after ctx does. stop
// releases it.
func AfterCancel(ctx context.Context, budget time.Duration) (context.Context, func()) {
	rctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	// The budget's timer is set on the goroutine AfterFunc starts, and
	// released by stop on the caller's: mu orders the two.
	var (
		mu       sync.Mutex
		timer    *time.Timer
		released bool
	)
	stop := context.AfterFunc(ctx, func() {
		mu.Lock()
		defer mu.Unlock()
		if !released {
			timer = time.AfterFunc(budget, cancel)
		}
	})
	return rctx, func() {
		stop()
		mu.Lock()
		released = true
		if timer != nil {
			timer.Stop()
		}
		mu.Unlock()
		cancel()
	}
}
