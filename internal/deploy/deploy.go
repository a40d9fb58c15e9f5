// Package deploy runs the user's deploy and rollback commands as real child
// processes: in their own process group, with the commit passed in the
// environment (never spliced into the command), output streamed, and a
// timeout that kills the whole group.
package deploy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"syscall"
	"time"
)

// Reasons passed to the command as IMMUNE_REASON.
const (
	ReasonDeploy   = "deploy"
	ReasonRollback = "rollback"
)

// Request says what to deploy.
type Request struct {
	SHA         string
	PreviousSHA string
	Environment string
	Reason      string // ReasonDeploy or ReasonRollback
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
	// Grace is how long the group gets between SIGTERM and SIGKILL, and how
	// long output from leftover background processes is awaited.
	Grace  time.Duration
	Output io.Writer
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

	// Kill the whole group: a shell's children would otherwise live on.
	pgid := cmd.Process.Pid
	_ = syscall.Kill(-pgid, syscall.SIGTERM)
	select {
	case <-done:
	case <-time.After(grace):
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
		<-done
	}
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		return fmt.Errorf("command did not finish within %s; its process group was killed", c.Timeout)
	}
	return fmt.Errorf("command was cancelled; its process group was killed: %w", ctx.Err())
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
