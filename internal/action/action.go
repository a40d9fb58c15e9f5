// Package action runs one run of immune as an explicit machine of phases:
// validate → baseline → deploy → watch → decide → rollback → confirm →
// record (the manual rollback and the watch mode use a part of it; the
// pull-request gate is one decision). It is the one place that knows the
// order, and the one place that checks for cancellation, between phases and
// after each one returns. The phases call packages that each do one thing:
// target says what runs and what to roll back to, deploy puts commits live
// (a command, a dispatched workflow or a hook; the choice is made in
// deployer.go), watch runs and judges the watches, outcome decides what a
// finished run records, recorder owns the GitHub records, gate decides the
// gate, report renders.
//
// A new mode adds its plan (run, below), its phases, and its rows in
// package outcome.
package action

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"time"

	"github.com/sethvargo/go-githubactions"

	"github.com/immune-cd/immune/internal/bisect"
	"github.com/immune-cd/immune/internal/clock"
	"github.com/immune-cd/immune/internal/config"
	"github.com/immune-cd/immune/internal/deploy"
	"github.com/immune-cd/immune/internal/event"
	"github.com/immune-cd/immune/internal/health"
	"github.com/immune-cd/immune/internal/logline"
	"github.com/immune-cd/immune/internal/notify"
	"github.com/immune-cd/immune/internal/outcome"
	"github.com/immune-cd/immune/internal/recorder"
	"github.com/immune-cd/immune/internal/report"
	"github.com/immune-cd/immune/internal/run"
	"github.com/immune-cd/immune/internal/tell"
	"github.com/immune-cd/immune/internal/version"
	"github.com/immune-cd/immune/internal/watch"
)

// Exit codes.
const (
	ExitOK        = 0 // healthy, or the rollback or gate passed, or nothing to do
	ExitRegressed = 1 // regressed, rolled back, rollback failed, cancelled, or the gate is closed
	ExitConfig    = 2 // invalid configuration, found before anything was deployed
	ExitError     = 3 // the tool itself failed
	ExitPublish   = 4 // the run finished and its records were written, but its outputs, summary or report could not be
)

// Deps are the real-world dependencies of a run.
type Deps struct {
	GHA     *githubactions.Action // workflow commands, outputs, summary, event
	Getenv  func(string) string
	Stdout  io.Writer
	HTTP    *http.Client
	Clock   clock.Clock
	Environ []string // environment the deploy command starts from
	// GitHub is the GitHub API client, nil when there is no token.
	GitHub recorder.GitHub
	// Plain is true outside GitHub Actions: plain log lines, no workflow
	// commands, outputs and summary files only when their paths are set.
	Plain bool
	// Grace is how long a command that ran past deploy-timeout gets between
	// SIGTERM and SIGKILL; CancelGrace, one stopped because the job was
	// cancelled (the runner kills the container seconds later).
	Grace, CancelGrace time.Duration
	// LockPoll is how often a run waiting for the environment looks again.
	// Default: the probe interval, between 2s and 10s.
	LockPoll time.Duration
	// Workflows dispatches and follows the deploy workflow's runs (the
	// GitHub client); nil when there is no token.
	Workflows deploy.WorkflowAPI
	// Deployer, when set, replaces the shell command deployer (in-process
	// tests use a fake); it gets the command the step would run.
	Deployer func(script string) deploy.Deployer
	// Probe, when set, replaces HTTP probes (in-process tests).
	Probe func(ctx context.Context, url, want string) health.Probe
	// Go starts a probe (see health.Watch.Go); nil starts each on a
	// goroutine of its own. In-process tests on a stepped clock run probes
	// inline, so that the watch is deterministic.
	Go func(probe func())
	// Git runs git, for a bisection's batch read from the workspace's
	// history (default bisect.ExecGit).
	Git bisect.Git
}

// runner is one run: its configuration, its dependencies, and what the
// phases hand on to each other.
type runner struct {
	cfg   *config.Config
	d     Deps
	log   *logline.Logger
	watch *watch.Watcher
	steps deploy.Setup // puts the run's steps live
	rec   *recorder.Recorder
	ev    event.Event
	out   *report.Run
	phase run.Phase
	code  int

	// What the phases hand on.
	// sha is the commit the deploy phases deploy: the sha input, or, after
	// a bisection, the good part of the batch.
	sha                  string
	target, targetSource string          // the rollback target and where it came from
	current              string          // rollback mode: what runs now
	baseline             *watch.Baseline // production before the deploy; nil without
	pendingOn            string          // the commit whose status this run set pending
	// The run's deployments.
	deploy, rollback, canary record
	canaryRemoving           bool // the canary's removal was started
	// why says in a few words why the build regressed or was not judged,
	// for GitHub's 140-character descriptions.
	why string
	// held says why a regression was not rolled back; heldWhy, in words.
	held    outcome.Held
	heldWhy string
	// A shadow run's first "would have" (shadow.go): its verdict, reason
	// and why in a few words.
	shadowVerdict           run.Verdict
	shadowReason, shadowWhy string

	tell *tell.Teller // what people are told (tell.go)
	bis  *bisection   // the bisection, once one began (bisect.go)
}

// record is one of the run's deployments: its GitHub record (nil when
// nothing is recorded), whether it is still in flight, and whether its
// command was started.
type record struct {
	dep     *recorder.Handle
	open    bool
	started bool
}

// reportPath is where the JSON report goes, in the workspace.
const reportPath = ".immune/report.json"

// plan maps each phase of a mode to the function that runs it; each returns
// the next phase, or run.Done.
type plan map[run.Phase]func(context.Context) run.Phase

// Run executes cfg and returns the exit code.
func Run(ctx context.Context, d Deps, cfg *config.Config) int {
	return newRunner(d, cfg).run(ctx)
}

// run runs the mode's phases, then publishes. A panic is a bug of immune's,
// but it must not leave production's records in flight and the run without
// outputs: it is recovered here, reported with what production runs, and
// the run still publishes what it can.
func (r *runner) run(ctx context.Context) (code int) {
	defer func() {
		if p := recover(); p != nil {
			ph := r.phase
			if ph == run.Done {
				ph = run.Record
			}
			r.abort(ctx, ph, run.None, ExitError, fmt.Sprintf("immune itself failed (%v)", p), "immune failed", "immune failed during "+string(ph))
			code = ExitError
			defer func() {
				if p := recover(); p != nil {
					fmt.Fprintf(r.d.Stdout, "immune: could not publish the results either: %v\n", p)
				}
			}()
			r.finish()
		}
	}()
	cfg := r.cfg
	for _, w := range cfg.Warnings {
		r.Warn("Unused input", w)
	}
	r.watch.WarnLoopback()
	switch cfg.Mode {
	case run.ModeDeploy:
		r.out.Stage = run.StageFull
		if r.hasCanary() {
			r.out.Stage = run.StageCanary
		}
		r.drive(ctx, plan{
			run.Validate:       r.validateDeploy,
			run.Baseline:       r.baselinePhase,
			run.CanaryDeploy:   r.canaryDeploy,
			run.CanaryWatch:    r.canaryWatch,
			run.CanaryRollback: r.canaryRollback,
			run.Deploy:         r.deployPhase,
			run.Watch:          r.watchPhase,
			run.Decide:         r.decide,
			run.Rollback:       r.rollbackPhase,
			run.Confirm:        r.confirm,
			run.Bisect:         r.bisectPhase,
			run.Record:         r.recordPhase,
		})
	case run.ModeWatch:
		r.drive(ctx, plan{
			run.Validate: r.validateWatch,
			run.Watch:    r.watchPhase,
			run.Decide:   r.decide,
			run.Record:   r.recordPhase,
		})
	case run.ModeRollback:
		r.drive(ctx, plan{
			run.Validate: r.validateRollback,
			run.Rollback: r.manualRollback,
			run.Confirm:  r.confirmManual,
			run.Record:   r.recordPhase,
		})
	case run.ModeGate:
		r.gateMode(ctx)
	}
	r.finish()
	return r.code
}

func newRunner(d Deps, cfg *config.Config) *runner {
	log := &logline.Logger{GHA: d.GHA, W: d.Stdout, Plain: d.Plain}
	ghctx, err := d.GHA.Context()
	if err != nil {
		// A broken event file only costs the push event's before.
		log.Printf("Note: could not read the GitHub context: %v", err)
		ghctx = &githubactions.GitHubContext{}
	}
	if d.LockPoll <= 0 {
		// As often as the watch probes, within bounds that spare GitHub's
		// rate limit (GITHUB_TOKEN gets 1,000 requests an hour per
		// repository) and notice a free environment soon enough.
		d.LockPoll = min(max(cfg.Interval, 2*time.Second), 10*time.Second)
	}
	if d.Git == nil {
		d.Git = bisect.ExecGit
	}
	r := &runner{cfg: cfg, d: d, log: log, ev: event.From(ghctx), sha: cfg.SHA}
	r.out = &report.Run{
		Mode:        string(cfg.Mode),
		Environment: cfg.Environment,
		SHA:         cfg.SHA,
		Start:       d.Clock.Now(),
		Shadow:      cfg.Shadow && cfg.Mode == run.ModeDeploy,
	}
	r.out.Links.Run = r.ev.RunURL()
	// The background's lines (the recorder's lanes, the webhook) are
	// printed at the end of the run.
	lines := &tell.Lines{}
	r.rec = recorder.New(recorder.Options{
		GitHub:         d.GitHub,
		Environment:    cfg.Environment,
		RunURL:         r.out.Links.Run,
		EnvironmentURL: cfg.EnvironmentURL,
		Logf:           log.Printf,
		TellLogf:       lines.Logf,
		Now:            d.Clock.Now,
	})
	var hook *notify.Notifier
	if cfg.NotifyWebhook != "" && cfg.Mode != run.ModeGate {
		hook = notify.Start(notify.Options{
			URL: cfg.NotifyWebhook, Secret: cfg.NotifySecret, Client: d.HTTP, Clock: d.Clock,
			Timeout: cfg.NotifyTimeout, UserAgent: "immune/" + version.String(), Logf: lines.Logf,
		})
	}
	r.tell = tell.New(r.rec, hook, lines)
	r.watch = watch.New(cfg, watch.Deps{Probe: d.Probe, Go: d.Go, Clock: d.Clock, HTTP: d.HTTP, Log: r})
	r.steps = deploy.Setup{Config: cfg, Environ: d.Environ, Workflows: d.Workflows, HTTP: d.HTTP, Clock: d.Clock,
		Grace: d.Grace, CancelGrace: d.CancelGrace, UserAgent: "immune/" + version.String(), Command: d.Deployer}
	return r
}

// drive runs the phases of a plan from Validate until one returns Done.
// Cancellation is checked here and only here: before each phase, and after
// each one returns (a phase stops what it runs when ctx ends, and returns
// without acting on the half-finished result). Record always runs once the
// run got there: the verdict is in, only the records are left.
func (r *runner) drive(ctx context.Context, p plan) {
	for ph := run.Validate; ph != run.Done; {
		if ctx.Err() != nil && ph != run.Record {
			r.cancelled(ctx, ph)
			return
		}
		r.phase = ph
		r.out.Phases = append(r.out.Phases, ph)
		next := p[ph](ctx)
		if ctx.Err() != nil && ph != run.Record {
			r.cancelled(ctx, ph)
			return
		}
		ph = next
	}
}

// end sets the run's verdict, reason and exit code.
func (r *runner) end(v run.Verdict, code int, reason string) {
	r.out.Verdict, r.out.Reason, r.code = v, reason, code
}

// refuse ends a run that could not start, before anything was deployed.
func (r *runner) refuse(title, msg string) run.Phase {
	r.end(run.None, ExitConfig, msg)
	r.log.Error(title, msg)
	return run.Done
}

// finish ends every run: it waits for GitHub to take the records (bounded),
// gives one warning for what GitHub did not record, then writes the
// outputs, the summary and the report.
func (r *runner) finish() {
	ctx, cancel := context.WithTimeout(context.Background(), 3*r.rec.Budget())
	r.rec.Flush(ctx)
	cancel()
	r.tellFinish()
	if missing, down := r.rec.Missing(); len(missing) > 0 {
		msg := "the deploy, watch and rollback ran, but GitHub could not record or answer: " + strings.Join(missing, "; ")
		if down != nil {
			msg += fmt.Sprintf(" (%v)", down)
		}
		r.Warn("GitHub records incomplete", msg)
	}
	r.settleBisection()
	r.out.End = r.d.Clock.Now()
	// The deployment this run made: the deploy's (or its canary's), or the
	// manual rollback's.
	own := r.deploy.dep
	if own == nil {
		own = r.canary.dep
	}
	if r.cfg.Mode == run.ModeRollback {
		own = r.rollback.dep
	}
	if d, ok := own.Known(); ok {
		r.out.DeploymentID, r.out.Links.Deployment = d.ID, r.ev.DeploymentsURL()
	}
	// The step outputs, the job summary and the JSON report, and in a
	// terminal the run in plain text.
	to := report.Destinations{Outputs: r.d.Getenv("GITHUB_OUTPUT"), Summary: r.d.Getenv("GITHUB_STEP_SUMMARY"),
		Report: filepath.Join(r.cfg.Workspace, reportPath), ShownReport: reportPath}
	if r.d.Plain {
		to.Text = r.d.Stdout
	}
	if err := report.Publish(r.out, to); err != nil {
		r.log.Error("Could not publish the results", fmt.Sprintf("%v; the verdict was %s (%s)", err, orUnknown(string(r.out.Verdict)), r.out.Reason))
		if r.code == ExitOK || r.code == ExitRegressed {
			r.code = ExitPublish
		}
	}
}

// Warn gives a warning, in the log and the report.
func (r *runner) Warn(title, msg string) {
	r.out.Warnings = append(r.out.Warnings, msg)
	r.log.Warning(title, msg)
}

// Note notes something worth knowing, in the log and the report.
func (r *runner) Note(msg string) {
	r.out.Notes = append(r.out.Notes, msg)
	r.log.Printf("Note: %s", msg)
}

// Printf and Error write to the log (for the watches).
func (r *runner) Printf(format string, args ...any) { r.log.Printf(format, args...) }
func (r *runner) Error(title, msg string)           { r.log.Error(title, msg) }

// payload is the payload of a deployment this run creates.
func (r *runner) payload() recorder.Payload {
	return recorder.Payload{
		Tool:       recorder.Tool,
		Version:    version.String(),
		Actor:      r.ev.Actor,
		RunURL:     r.out.Links.Run,
		RunID:      r.ev.RunID,
		RunAttempt: r.ev.RunAttempt,
	}
}
