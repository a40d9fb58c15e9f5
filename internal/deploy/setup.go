package deploy

import (
	"context"
	"io"
	"net/http"
	"strings"
	"time"

	"github.com/immune-cd/immune/internal/clock"
	"github.com/immune-cd/immune/internal/config"
	"github.com/immune-cd/immune/internal/run"
)

// Setup is the one place that picks how a run's steps go live: the deploy
// workflow, the deploy hook, or the command for each step's reason and
// stage, with what each needs of the world.
type Setup struct {
	Config *config.Config
	// Environ is the environment commands start from; the tool's secret
	// inputs are removed from it.
	Environ   []string
	Workflows WorkflowAPI // nil without GitHub
	HTTP      *http.Client
	Clock     clock.Clock
	// Grace is how long a command that ran past deploy-timeout gets between
	// SIGTERM and SIGKILL; CancelGrace, one stopped because the job was
	// cancelled.
	Grace, CancelGrace time.Duration
	UserAgent          string
	// Command, when set, replaces the shell command deployer (in-process
	// tests).
	Command func(script string) Deployer
}

// For returns the deployer that puts req live. output gets what it says; a
// dispatched workflow run is handed to started as soon as it is known.
func (s Setup) For(req Request, output io.Writer, started func(Run)) Deployer {
	cfg := s.Config
	switch cfg.Deployer {
	case run.ByWorkflow:
		return &Workflow{
			API: s.Workflows, Workflow: cfg.DeployWorkflow, Ref: cfg.DeployWorkflowRef, Timeout: cfg.DeployTimeout,
			Clock: s.Clock, Output: output, Started: started,
		}
	case run.ByHook:
		return &Hook{
			URL: cfg.DeployHook, Secret: cfg.DeployHookSecret, Client: s.HTTP, Clock: s.Clock,
			Timeout: cfg.DeployTimeout, UserAgent: s.UserAgent, Output: output,
		}
	}
	script := CommandFor(cfg, req)
	if s.Command != nil {
		return s.Command(script)
	}
	return &Command{
		Script:      script,
		Dir:         cfg.Workspace,
		Env:         withoutSecrets(s.Environ),
		Timeout:     cfg.DeployTimeout,
		Grace:       s.Grace,
		CancelGrace: s.CancelGrace,
		Output:      output,
	}
}

// CommandFor is the command that performs req: the canary's commands for
// stage canary, the rollback's for reason rollback.
func CommandFor(cfg *config.Config, req Request) string {
	rollback := req.Reason == ReasonRollback
	switch {
	case req.Stage == string(run.StageCanary) && rollback:
		return cfg.CanaryRollbackCommand
	case req.Stage == string(run.StageCanary):
		return cfg.CanaryCommand
	case rollback:
		return cfg.RollbackCommand
	}
	return cfg.DeployCommand
}

// Check checks, before anything is deployed, that the deploy workflow is
// one GitHub knows and can run; the error names the input.
func (s Setup) Check(ctx context.Context) error {
	if s.Config.Deployer != run.ByWorkflow {
		return nil
	}
	if s.Workflows == nil {
		return errInput("no GitHub client to dispatch it with: pass github-token (with actions: write)")
	}
	w := &Workflow{API: s.Workflows, Workflow: s.Config.DeployWorkflow}
	if err := w.Check(ctx); err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		return errInput(err.Error() + "; nothing was deployed")
	}
	return nil
}

// InputError is a deploy-workflow input that cannot be used.
type InputError struct{ msg string }

func (e *InputError) Error() string { return "input deploy-workflow: " + e.msg }

func errInput(msg string) error { return &InputError{msg: msg} }

// withoutSecrets is the environment for deploy commands, without this
// tool's secret inputs: the command has no business reading the token.
func withoutSecrets(environ []string) []string {
	var env []string
	for _, kv := range environ {
		name, _, _ := strings.Cut(kv, "=")
		if in, ok := config.Lookup(strings.ToLower(strings.TrimPrefix(name, "INPUT_"))); ok && in.Secret && strings.HasPrefix(name, "INPUT_") {
			continue
		}
		env = append(env, kv)
	}
	return env
}
