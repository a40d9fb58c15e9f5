// Package hindsight runs the two modes that look back instead of
// deploying: stats (an environment's delivery record, package stats) and
// backtest (what a metrics configuration would have decided on the
// environment's last deploys, package backtest). It reads the history,
// computes, and publishes as a run does: in GitHub Actions the job summary,
// a JSON report in the workspace and its path as the report output; on a
// terminal the summary's Markdown, or the JSON.
package hindsight

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"time"

	"github.com/immune-cd/immune/internal/backtest"
	"github.com/immune-cd/immune/internal/clock"
	"github.com/immune-cd/immune/internal/config"
	"github.com/immune-cd/immune/internal/history"
	"github.com/immune-cd/immune/internal/jobfiles"
	"github.com/immune-cd/immune/internal/recorder"
	"github.com/immune-cd/immune/internal/report"
	"github.com/immune-cd/immune/internal/run"
	"github.com/immune-cd/immune/internal/stats"
	"github.com/immune-cd/immune/internal/watch"
)

// Deps are what the modes need from outside.
type Deps struct {
	// GitHub is the API the history is read from; nil without a token.
	GitHub recorder.GitHub
	HTTP   *http.Client
	Clock  clock.Clock
	Getenv func(string) string
	Stdout io.Writer
	// Log receives GitHub's failed calls (stderr on a terminal, where
	// stdout may carry the JSON).
	Log io.Writer
	// Plain: on a terminal, not in GitHub Actions. JSON prints the JSON
	// there instead of the Markdown.
	Plain, JSON bool
}

// PublishError is a result that was computed but could not be written.
type PublishError struct{ Err error }

func (e *PublishError) Error() string { return "publishing the result: " + e.Err.Error() }
func (e *PublishError) Unwrap() error { return e.Err }

// callBudget is how long one read of GitHub may take: a history is read in
// pages, and a run that deploys nothing waits for it.
const callBudget = time.Minute

// Run runs cfg's mode (backtest or stats).
func Run(ctx context.Context, d Deps, cfg *config.Config) error {
	if d.GitHub == nil {
		return history.ErrNoGitHub
	}
	if d.Log == nil {
		d.Log = d.Stdout
	}
	rec := recorder.New(recorder.Options{
		GitHub: d.GitHub, Environment: cfg.Environment, CallBudget: callBudget,
		Logf: func(format string, args ...any) { fmt.Fprintf(d.Log, format+"\n", args...) },
	})
	for _, w := range cfg.Warnings {
		fmt.Fprintf(d.Stdout, "warning: %s\n", w)
	}
	switch cfg.Mode {
	case run.ModeStats:
		return runStats(ctx, d, rec, cfg)
	case run.ModeBacktest:
		return runBacktest(ctx, d, rec, cfg)
	}
	return fmt.Errorf("hindsight: mode %s is not stats or backtest", cfg.Mode)
}

func runStats(ctx context.Context, d Deps, rec *recorder.Recorder, cfg *config.Config) error {
	now := d.Clock.Now()
	p := stats.Period{From: now.Add(-cfg.StatsPeriod), To: now}
	if !d.Plain {
		fmt.Fprintf(d.Stdout, "Reading the deployments of %s since %s.\n", cfg.Environment, p.From.UTC().Format(time.RFC3339))
	}
	h, err := rec.History(ctx, history.Query{Since: p.From, Until: p.To, Commits: true})
	if err != nil {
		return err
	}
	r := stats.Compute(h, p)
	data, err := report.StatsJSON(r)
	if err != nil {
		return err
	}
	return publish(d, cfg, "stats.json", report.StatsSummary(r), data)
}

func runBacktest(ctx context.Context, d Deps, rec *recorder.Recorder, cfg *config.Config) error {
	s := backtest.SettingsOf(cfg, watch.Specs(cfg.Metrics))
	// A range query reads a whole watch: it gets more time than one look.
	sources := backtest.PrometheusSources(cfg, d.HTTP, d.Clock, max(cfg.Timeout, 30*time.Second))
	if !d.Plain {
		fmt.Fprintf(d.Stdout, "Replaying the last %d deploys of %s against the metrics in %s.\n", cfg.BacktestDeployments, cfg.Environment, cfg.PrometheusURL)
	}
	r, err := backtest.Run(ctx, rec, sources, s, cfg.BacktestDeployments, d.Clock.Now())
	if err != nil {
		return err
	}
	data, err := report.BacktestJSON(r)
	if err != nil {
		return err
	}
	return publish(d, cfg, "backtest.json", report.BacktestSummary(r), data)
}

// publish prints the result on a terminal; in GitHub Actions it appends
// the summary to the job's and writes the JSON report and its output.
func publish(d Deps, cfg *config.Config, name, summary string, data []byte) error {
	data = append(data, '\n')
	if d.Plain {
		if d.JSON {
			_, err := d.Stdout.Write(data)
			return err
		}
		_, err := io.WriteString(d.Stdout, summary)
		return err
	}
	path := filepath.Join(cfg.Workspace, ".immune", name)
	shown := path
	if rel, err := filepath.Rel(cfg.Workspace, path); err == nil && !strings.HasPrefix(rel, "..") {
		shown = rel
	}
	var errs []error
	if err := jobfiles.WriteAtomic(path, data); err != nil {
		errs = append(errs, fmt.Errorf("report %s: %w", path, err))
	}
	if p := d.Getenv("GITHUB_OUTPUT"); p != "" {
		if err := jobfiles.WriteOutputs(p, []jobfiles.Output{{Name: "report", Value: shown}}); err != nil {
			errs = append(errs, fmt.Errorf("step outputs (GITHUB_OUTPUT): %w", err))
		}
	}
	if p := d.Getenv("GITHUB_STEP_SUMMARY"); p != "" {
		if err := jobfiles.AppendSummary(p, summary, "the JSON report ("+shown+") has everything."); err != nil {
			errs = append(errs, fmt.Errorf("job summary (GITHUB_STEP_SUMMARY): %w", err))
		}
	}
	fmt.Fprintf(d.Stdout, "Report: %s\n", shown)
	if err := errors.Join(errs...); err != nil {
		return &PublishError{Err: err}
	}
	return nil
}
