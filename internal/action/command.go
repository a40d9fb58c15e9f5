package action

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/immune-cd/immune/internal/config"
	"github.com/immune-cd/immune/internal/deploy"
	"github.com/immune-cd/immune/internal/logline"
	"github.com/immune-cd/immune/internal/report"
	"github.com/immune-cd/immune/internal/run"
	"github.com/immune-cd/immune/internal/sha"
	"github.com/immune-cd/immune/internal/state"
)

// runCommand runs a deploy or rollback command inside a log group.
func (r *runner) runCommand(ctx context.Context, verb, script string, req deploy.Request) *report.Step {
	return r.runCommandAs(ctx, fmt.Sprintf("%s %s to %s", verb, sha.Short(req.SHA), req.Environment), verb+" of "+sha.Short(req.SHA), script, req)
}

// runCommandAs runs a command inside a log group with the given title; what
// names it in the lines that say how it ended.
func (r *runner) runCommandAs(ctx context.Context, title, what, script string, req deploy.Request) *report.Step {
	step := &report.Step{SHA: req.SHA, Start: r.d.Clock.Now()}
	// The command's output is text immune does not control: escaped line
	// by line, and its last line ended before the group is.
	output := logline.NewWriter(r.d.Stdout)
	var d deploy.Deployer = &deploy.Command{
		Script:      script,
		Dir:         r.cfg.Workspace,
		Env:         commandEnv(r.d.Environ),
		Timeout:     r.cfg.DeployTimeout,
		Grace:       r.d.Grace,
		CancelGrace: r.d.CancelGrace,
		Output:      output,
	}
	if r.d.Deployer != nil {
		d = r.d.Deployer(script)
	}
	r.log.Group(title)
	err := d.Deploy(ctx, req)
	output.Close()
	r.log.EndGroup()
	step.End = r.d.Clock.Now()
	took := report.FormatDuration(step.End.Sub(step.Start))
	if err != nil {
		step.Error = err.Error()
		r.log.Printf("%s failed after %s: %s", what, took, err)
	} else {
		r.log.Printf("%s finished in %s.", what, took)
	}
	return step
}

// commandEnv is the environment for deploy commands, without this tool's
// secret inputs: the command has no business reading the token.
func commandEnv(environ []string) []string {
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

// remember records a verdict about a commit in the state file.
func (r *runner) remember(commit string, v run.Verdict) {
	sf := &state.File{Path: r.cfg.StateFile}
	if err := sf.Record(r.cfg.Environment, state.Entry{SHA: commit, Verdict: v, At: r.d.Clock.Now().UTC()}); err != nil {
		r.Warn("State file not updated", err.Error())
	}
}

// checkStateFile refuses a state-file that is not immune's before anything
// is deployed: it would be neither read nor written.
func (r *runner) checkStateFile() bool {
	if err := (&state.File{Path: r.cfg.StateFile}).Check(); errors.Is(err, state.ErrNotOurs) {
		r.refuse("Invalid input", "input state-file: "+err.Error())
		return false
	}
	return true
}

// checkMetrics sends every metric's query once before anything is
// deployed (see watch.Watcher.Check); a query Prometheus cannot run is
// invalid input.
func (r *runner) checkMetrics(ctx context.Context, commit, previous string) bool {
	if err := r.watch.Check(ctx, commit, previous); err != nil {
		r.refuse("Invalid input", err.Error())
		return false
	}
	return true
}
