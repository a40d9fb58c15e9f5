// Package action sequences a run: deploy -> watch -> verdict -> rollback ->
// report. It is the one place that knows the order; the steps themselves
// live in their own packages.
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
	"github.com/immune-cd/immune/internal/health"
	"github.com/immune-cd/immune/internal/report"
	"github.com/immune-cd/immune/internal/state"
	"github.com/immune-cd/immune/internal/verdict"
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
	run    *report.Run
}

// Run executes cfg and returns the exit code.
func Run(ctx context.Context, d Deps, cfg *config.Config) int {
	r := &runner{
		cfg: cfg,
		d:   d,
		log: &logger{gha: d.GHA, w: d.Stdout, plain: d.Plain},
		run: &report.Run{
			Mode:        string(cfg.Mode),
			Environment: cfg.Environment,
			SHA:         cfg.SHA,
			Start:       d.Clock.Now(),
		},
	}
	r.log.Mask(cfg.Token)
	for _, h := range cfg.Headers {
		r.log.Mask(h.Value)
	}
	for _, w := range cfg.Warnings {
		r.warn("Unused input", w)
	}
	r.prober = r.newProber()

	var code int
	switch cfg.Mode {
	case config.ModeDeploy:
		code = r.deployAndWatch(ctx)
	case config.ModeWatch:
		code = r.watchOnly(ctx)
	default:
		r.log.Error("Not available yet", fmt.Sprintf("mode %s is not available in this version", cfg.Mode))
		return ExitConfig
	}
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

// deployAndWatch is deploy mode: deploy, watch, and roll back a regression.
func (r *runner) deployAndWatch(ctx context.Context) int {
	cfg := r.cfg
	target, source := r.rollbackTarget()
	r.run.PreviousSHA, r.run.PreviousSource = target, source
	if target != "" {
		r.log.Printf("immune %s: deploying %s to %s; rollback target %s (from %s)", Version, cfg.SHA, cfg.Environment, target, source)
	} else {
		r.log.Printf("immune %s: deploying %s to %s; no rollback target known", Version, cfg.SHA, cfg.Environment)
	}

	step := r.runCommand(ctx, "Deploy", cfg.DeployCommand, deploy.Request{
		SHA: cfg.SHA, PreviousSHA: target, Environment: cfg.Environment, Reason: deploy.ReasonDeploy,
	})
	r.run.Deploy = step
	if step.Error != "" {
		r.run.Verdict = report.Regressed
		r.run.Reason = "the deploy command failed: " + step.Error
	} else {
		w := r.watch(ctx, "Watching "+report.Short(cfg.SHA), cfg.SHA, cfg.Duration)
		r.run.Watch = w
		r.run.Verdict, r.run.Reason = w.Verdict, w.Reason
		if ctx.Err() != nil {
			return r.cancelled()
		}
	}

	if r.run.Verdict == report.Healthy {
		r.record(cfg.SHA, state.Healthy)
		if !r.d.Plain {
			r.log.Printf("Verdict: healthy. %s", r.run.Reason)
		}
		r.warnIfDegraded()
		return ExitOK
	}
	r.record(cfg.SHA, report.Regressed)
	r.log.Error(fmt.Sprintf("%s regressed on %s", report.Short(cfg.SHA), cfg.Environment), r.run.Reason)
	switch {
	case !cfg.AutoRollback:
		r.note("auto-rollback is false: nothing was rolled back")
	case target == "":
		r.note("nothing was rolled back: no previous-sha input, no healthy deploy in the state file, and no usable before in the push event")
	default:
		r.rollback(ctx, target)
	}
	return ExitRegressed
}

// rollback redeploys target and watches it.
func (r *runner) rollback(ctx context.Context, target string) {
	cfg := r.cfg
	step := r.runCommand(ctx, "Roll back", cfg.RollbackCommand, deploy.Request{
		SHA: target, PreviousSHA: cfg.SHA, Environment: cfg.Environment, Reason: deploy.ReasonRollback,
	})
	r.run.Rollback = step
	r.run.RolledBack = true
	if step.Error != "" {
		r.run.Verdict = report.RollbackFailed
		r.log.Error("Rollback failed", fmt.Sprintf("the rollback command for %s failed: %s; %s may be down", target, step.Error, cfg.Environment))
		return
	}
	w := r.watch(ctx, "Watching the rollback to "+report.Short(target), target, cfg.RollbackDuration)
	r.run.RollbackWatch = w
	if w.Verdict != report.Healthy {
		r.run.Verdict = report.RollbackFailed
		r.log.Error("Rollback failed", fmt.Sprintf("%s is not healthy after the rollback: %s; %s may be down", target, w.Reason, cfg.Environment))
		return
	}
	r.run.Verdict = report.RolledBack
	r.log.Printf("Rolled back to %s: %s", target, w.Reason)
}

// watchOnly is watch mode: judge what is already deployed.
func (r *runner) watchOnly(ctx context.Context) int {
	r.log.Printf("immune %s: watching %s on %s", Version, r.cfg.SHA, r.cfg.Environment)
	w := r.watch(ctx, "Watching "+report.Short(r.cfg.SHA), r.cfg.SHA, r.cfg.Duration)
	r.run.Watch = w
	r.run.Verdict, r.run.Reason = w.Verdict, w.Reason
	if ctx.Err() != nil {
		return r.cancelled()
	}
	if w.Verdict == report.Healthy {
		r.record(r.cfg.SHA, state.Healthy)
		if !r.d.Plain {
			r.log.Printf("Verdict: healthy. %s", w.Reason)
		}
		r.warnIfDegraded()
		return ExitOK
	}
	r.log.Error(fmt.Sprintf("%s regressed on %s", report.Short(r.cfg.SHA), r.cfg.Environment), w.Reason)
	return ExitRegressed
}

func (r *runner) cancelled() int {
	r.run.Verdict = "cancelled"
	r.run.Reason = "the run was cancelled before a verdict; nothing was rolled back"
	r.log.Error("Cancelled", r.run.Reason)
	return ExitRegressed
}

func (r *runner) note(msg string) {
	r.run.Notes = append(r.run.Notes, msg)
	r.log.Printf("Note: %s", msg)
}

// warnIfDegraded flags a healthy build whose numbers are above the limits,
// but not yet with the confidence needed to roll back.
func (r *runner) warnIfDegraded() {
	w := r.run.Watch
	if w == nil {
		return
	}
	var why []string
	if w.Stats.ErrorRate > r.cfg.MaxErrorRate {
		why = append(why, fmt.Sprintf("%d of %d probes failed (%s), above the allowed %s", w.Stats.Failed, w.Stats.Probes, pct(w.Stats.ErrorRate), pct(r.cfg.MaxErrorRate)))
	}
	if r.cfg.MaxLatency > 0 && w.Stats.P95 > r.cfg.MaxLatency {
		why = append(why, fmt.Sprintf("p95 latency %s is above max-latency %s", report.FormatDuration(w.Stats.P95), report.FormatDuration(r.cfg.MaxLatency)))
	}
	if len(why) > 0 {
		r.warn("Degraded but passing", strings.Join(why, "; ")+"; not enough evidence to call it a regression")
	}
}

func pct(f float64) string {
	return strings.TrimSuffix(fmt.Sprintf("%.1f", f*100), ".0") + "%"
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
	if err != nil {
		step.Error = err.Error()
		r.log.Printf("%s of %s failed after %s: %s", verb, report.Short(req.SHA), report.FormatDuration(step.End.Sub(step.Start)), err)
	} else {
		r.log.Printf("%s of %s finished in %s.", verb, report.Short(req.SHA), report.FormatDuration(step.End.Sub(step.Start)))
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

// limits are the verdict engine's limits from the configuration.
func (r *runner) limits(d time.Duration) verdict.Limits {
	c := r.cfg
	return verdict.Limits{
		MaxErrorRate:        c.MaxErrorRate,
		ConsecutiveFailures: c.ConsecutiveFailures,
		MaxLatency:          c.MaxLatency,
		LatencyPercentile:   c.LatencyPercentile,
		Confidence:          c.Confidence,
		MaxLatencyIncrease:  c.MaxLatencyIncrease,
		Horizon:             int((d + c.Interval - 1) / c.Interval),
	}
}

// watch watches sha for d and returns what it saw and decided.
func (r *runner) watch(ctx context.Context, title, sha string, d time.Duration) *report.Watch {
	eng := verdict.New(r.limits(d))
	var last verdict.Decision
	startup := min(r.cfg.StartupTimeout, d)
	r.log.Printf("%s: %d URL(s) every %s for %s (startup grace %s).", title, len(r.cfg.HealthURLs), r.cfg.Interval, d, startup)
	w := &health.Watch{
		Probe:          r.prober.Probe,
		Clock:          r.d.Clock,
		URLs:           r.cfg.HealthURLs,
		Want:           sha,
		VersionAware:   r.cfg.ExpectVersion.Kind != "",
		Interval:       r.cfg.Interval,
		Duration:       d,
		StartupTimeout: startup,
		Judge: func(p health.Probe) bool {
			o := verdict.Observation{Target: p.URL, Failed: p.Failed}
			if p.Answered {
				o.Latency = p.Latency
			}
			last = eng.Observe(o)
			return last.Outcome == verdict.Regressed
		},
		OnRound: r.progress(),
	}
	res := w.Run(ctx)
	rw := &report.Watch{
		SHA: sha, Start: res.Start, End: res.End, Planned: d,
		Probes: res.Probes, LiveAfter: res.LiveAfter, Stats: report.StatsOf(res.Probes),
	}
	switch {
	case res.Err != nil:
		rw.Verdict, rw.Reason = "cancelled", "the watch was cancelled"
	case len(res.NotLive) > 0:
		rw.Verdict, rw.Rule, rw.Detected = report.Regressed, "startup-timeout", true
		rw.Reason = fmt.Sprintf("no healthy answer from %s within the startup timeout of %s%s",
			strings.Join(res.NotLive, ", "), report.FormatDuration(startup), lastError(res.Probes, res.NotLive[0]))
	case res.Stopped:
		rw.Verdict, rw.Rule, rw.Reason, rw.Detected = report.Regressed, last.Rule, last.Reason, true
	default:
		last = eng.Finish()
		rw.Rule, rw.Reason = last.Rule, last.Reason
		rw.Verdict = report.Healthy
		if last.Outcome == verdict.Regressed {
			rw.Verdict, rw.Detected = report.Regressed, true
		}
	}
	return rw
}

// lastError describes the last answer a URL gave, for a startup failure.
func lastError(probes []health.Probe, url string) string {
	for i := len(probes) - 1; i >= 0; i-- {
		if p := probes[i]; p.URL == url && p.Error != "" {
			return " (last answer: " + p.Error + ")"
		}
	}
	return ""
}

// progress prints one compact line per round.
func (r *runner) progress() func(health.Round) {
	var judged, failed int
	var latencies []time.Duration
	return func(round health.Round) {
		var marks strings.Builder
		firstErr := ""
		for _, p := range round.Probes {
			switch {
			case p.Phase == health.PhaseStartup:
				marks.WriteString("·")
			case p.Failed:
				marks.WriteString("✗")
			default:
				marks.WriteString("✓")
			}
			if p.Phase == health.PhaseLive {
				judged++
				if p.Failed {
					failed++
				}
				if p.Answered {
					latencies = append(latencies, p.Latency)
				}
			}
			if firstErr == "" && p.Error != "" {
				firstErr = fmt.Sprintf("  %s: %s", p.URL, p.Error)
			}
		}
		line := fmt.Sprintf("  %7s  round %-3d %s", "+"+report.FormatDuration(round.Elapsed), round.N, marks.String())
		if judged > 0 {
			line += fmt.Sprintf("  failed %d/%d (%s)  p95 %s", failed, judged, pct(float64(failed)/float64(judged)), report.FormatDuration(report.Quantile(latencies, 0.95)))
		} else {
			line += "  not live yet"
		}
		r.log.Printf("%s%s", line, firstErr)
	}
}

// rollbackTarget finds the commit to roll back to, and says where from.
func (r *runner) rollbackTarget() (sha, source string) {
	if r.cfg.PreviousSHA != "" {
		return r.cfg.PreviousSHA, "the previous-sha input"
	}
	sf := &state.File{Path: r.cfg.StateFile}
	if sha, err := sf.LastGood(r.cfg.Environment, r.cfg.SHA); err != nil {
		r.warn("State file unreadable", err.Error())
	} else if sha != "" {
		return sha, "the state file"
	}
	if before := r.pushBefore(); before != "" {
		return before, "the push event's before"
	}
	return "", ""
}

// pushBefore returns the push event's before, unless it is all zeros (a new
// branch) or the commit being deployed.
func (r *runner) pushBefore() string {
	ghctx, err := r.d.GHA.Context()
	if err != nil || ghctx.EventName != "push" {
		return ""
	}
	before, _ := ghctx.Event["before"].(string)
	if strings.Trim(before, "0") == "" || before == r.cfg.SHA || !config.ValidRef(before) {
		return ""
	}
	return before
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
	outputs := report.Outputs(r.run, shown)
	if r.d.Getenv("GITHUB_OUTPUT") != "" {
		for _, o := range outputs {
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
