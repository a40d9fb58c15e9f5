// Package action sequences a run: deploy -> watch -> verdict -> rollback ->
// report, plus the manual rollback and the pull-request gate. It is the one
// place that knows the order; the steps live in their own packages, and
// GitHub sits behind the small GitHub interface.
package action

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/sethvargo/go-githubactions"

	"github.com/immune-cd/immune/internal/clock"
	"github.com/immune-cd/immune/internal/config"
	"github.com/immune-cd/immune/internal/deploy"
	"github.com/immune-cd/immune/internal/ghapi"
	"github.com/immune-cd/immune/internal/health"
	"github.com/immune-cd/immune/internal/report"
	"github.com/immune-cd/immune/internal/state"
)

// Exit codes.
const (
	ExitOK        = 0 // healthy, or the rollback or gate passed
	ExitRegressed = 1 // regressed, rolled back, rollback failed, or the gate is closed
	ExitConfig    = 2 // invalid configuration, found before anything was deployed
	ExitError     = 3 // the tool itself failed (e.g. cannot write its outputs)
)

// Version is the tool's version, shown in the log and the User-Agent.
const Version = "0.1.0"

// Deps are the real-world dependencies of a run.
type Deps struct {
	GHA     *githubactions.Action // workflow commands, outputs, summary, event
	Getenv  func(string) string
	Stdout  io.Writer
	HTTP    *http.Client
	Clock   clock.Clock
	Environ []string // environment the deploy command starts from
	// GitHub is the GitHub API client, nil when there is no token.
	GitHub GitHub
	// Plain is true outside GitHub Actions: plain log lines, no workflow
	// commands, outputs and summary files only when their paths are set.
	Plain bool
	// Grace is how long a killed command gets between SIGTERM and SIGKILL.
	Grace time.Duration
}

// runner holds one run's state.
type runner struct {
	cfg    *config.Config
	d      Deps
	log    *logger
	prober *health.Prober
	gh     *records
	ghctx  *githubactions.GitHubContext
	run    *report.Run
}

// Run executes cfg and returns the exit code.
func Run(ctx context.Context, d Deps, cfg *config.Config) int {
	log := &logger{gha: d.GHA, w: d.Stdout, plain: d.Plain}
	ghctx, err := d.GHA.Context()
	if err != nil {
		// A broken event file only costs the push event's before.
		log.Printf("Note: could not read the GitHub context: %v", err)
		ghctx = &githubactions.GitHubContext{}
	}
	r := &runner{
		cfg:   cfg,
		d:     d,
		log:   log,
		gh:    &records{gh: d.GitHub, log: log},
		ghctx: ghctx,
		run: &report.Run{
			Mode:        string(cfg.Mode),
			Environment: cfg.Environment,
			SHA:         cfg.SHA,
			Start:       d.Clock.Now(),
		},
	}
	r.run.Links.Run = r.runURL()
	for _, w := range cfg.Warnings {
		r.warn("Unused input", w)
	}
	r.prober = r.newProber()

	var code int
	switch cfg.Mode {
	case config.ModeDeploy:
		code = r.deployMode(ctx)
	case config.ModeWatch:
		code = r.watchMode(ctx)
	case config.ModeRollback:
		code = r.rollbackMode(ctx)
	case config.ModeGate:
		code = r.gateMode(ctx)
	}
	r.gh.warnMissing(r.warn)
	r.run.End = d.Clock.Now()
	if err := r.publish(); err != nil {
		r.log.Error("Could not write the report", err.Error())
		if code == ExitOK {
			code = ExitError
		}
	}
	return code
}

func (r *runner) newProber() *health.Prober {
	header := http.Header{}
	for _, h := range r.cfg.Headers {
		header.Add(h.Name, h.Value)
	}
	return &health.Prober{
		Client:    health.NoRedirects(r.d.HTTP),
		Clock:     r.d.Clock,
		Timeout:   r.cfg.Timeout,
		Header:    header,
		Accept:    r.cfg.ExpectStatus.Contains,
		Body:      r.cfg.ExpectBody,
		Version:   health.VersionSource(r.cfg.ExpectVersion),
		UserAgent: "immune/" + Version,
	}
}

func (r *runner) warn(title, msg string) {
	r.run.Warnings = append(r.run.Warnings, msg)
	r.log.Warning(title, msg)
}

func (r *runner) note(msg string) {
	r.run.Notes = append(r.run.Notes, msg)
	r.log.Printf("Note: %s", msg)
}

// runURL links to this workflow run, when running in one.
func (r *runner) runURL() string {
	if r.ghctx.Repository == "" || r.ghctx.RunID == 0 {
		return ""
	}
	return ghapi.RunURL(r.ghctx.ServerURL, r.ghctx.Repository, r.ghctx.RunID)
}

func (r *runner) commitURL(sha string) string {
	if r.ghctx.Repository == "" || sha == "" || !config.ValidShortSHA(sha) {
		return ""
	}
	return ghapi.CommitURL(r.ghctx.ServerURL, r.ghctx.Repository, sha)
}

// deploymentsURL links to the repository's deployments page.
func (r *runner) deploymentsURL() string {
	if r.ghctx.Repository == "" {
		return ""
	}
	return strings.TrimSuffix(r.ghctx.ServerURL, "/") + "/" + r.ghctx.Repository + "/deployments"
}

// runCommand runs a deploy or rollback command inside a log group.
func (r *runner) runCommand(ctx context.Context, verb, script string, req deploy.Request) *report.Step {
	step := &report.Step{SHA: req.SHA, Start: r.d.Clock.Now()}
	cmd := &deploy.Command{
		Script:  script,
		Dir:     r.cfg.Workspace,
		Env:     commandEnv(r.d.Environ),
		Timeout: r.cfg.DeployTimeout,
		Grace:   r.d.Grace,
		Output:  r.d.Stdout,
	}
	r.log.Group(fmt.Sprintf("%s %s to %s", verb, report.Short(req.SHA), req.Environment))
	err := cmd.Deploy(ctx, req)
	r.log.EndGroup()
	step.End = r.d.Clock.Now()
	took := report.FormatDuration(step.End.Sub(step.Start))
	if err != nil {
		step.Error = err.Error()
		r.log.Printf("%s of %s failed after %s: %s", verb, report.Short(req.SHA), took, err)
	} else {
		r.log.Printf("%s of %s finished in %s.", verb, report.Short(req.SHA), took)
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

// record remembers a verdict in the state file.
func (r *runner) record(sha, verdictName string) {
	sf := &state.File{Path: r.cfg.StateFile}
	if err := sf.Record(r.cfg.Environment, state.Entry{SHA: sha, Verdict: verdictName, At: r.d.Clock.Now().UTC()}); err != nil {
		r.warn("State file not updated", err.Error())
	}
}

// publish writes the JSON report, the step outputs and the job summary.
func (r *runner) publish() error {
	path := filepath.Join(r.cfg.Workspace, ".immune", "report.json")
	data, err := report.JSON(r.run)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("write report: %w", err)
	}
	if err := os.WriteFile(path, append(data, '\n'), 0o644); err != nil {
		return fmt.Errorf("write report: %w", err)
	}
	shown := path
	if rel, err := filepath.Rel(r.cfg.Workspace, path); err == nil && !strings.HasPrefix(rel, "..") {
		shown = rel
	}
	if r.d.Getenv("GITHUB_OUTPUT") != "" {
		for _, o := range report.Outputs(r.run, shown) {
			r.d.GHA.SetOutput(o.Name, o.Value)
		}
	}
	if r.d.Getenv("GITHUB_STEP_SUMMARY") != "" {
		r.d.GHA.AddStepSummary(report.Summary(r.run))
	}
	if r.d.Plain {
		fmt.Fprint(r.d.Stdout, report.Text(r.run))
		fmt.Fprintf(r.d.Stdout, "Report: %s\n", path)
	}
	return nil
}
