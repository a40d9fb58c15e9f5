package report

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
)

// maxSummary is GitHub's limit on a step summary.
const maxSummary = 1 << 20

// Destinations are where a run's results go; an empty path is skipped.
type Destinations struct {
	// Outputs is the GITHUB_OUTPUT file; Summary the GITHUB_STEP_SUMMARY
	// file; Report the JSON report's path, shown as ShownReport.
	Outputs, Summary, Report, ShownReport string
	// Text, when set, gets the run in plain text (outside GitHub Actions).
	Text io.Writer
}

// Publish writes the step outputs, then the job summary, then the JSON
// report: the outputs first, since later steps branch on them. A failure
// of one does not stop the others; all failures are returned together. The
// files are written here rather than by the actions library, which panics
// on a write error.
func Publish(run *Run, to Destinations) error {
	var errs []error
	if to.Outputs != "" {
		if err := writeOutputs(to.Outputs, Outputs(run, to.ShownReport)); err != nil {
			errs = append(errs, fmt.Errorf("step outputs (GITHUB_OUTPUT): %w", err))
		}
	}
	if to.Summary != "" {
		summary := Summary(run)
		if len(summary) > maxSummary {
			summary = summary[:maxSummary-200] + "\n\n… the summary was cut at GitHub's limit of 1 MiB; the JSON report has everything.\n"
		}
		if err := appendFile(to.Summary, []byte(summary)); err != nil {
			errs = append(errs, fmt.Errorf("job summary (GITHUB_STEP_SUMMARY): %w", err))
		}
	}
	if err := writeReport(to.Report, run); err != nil {
		errs = append(errs, err)
	}
	if to.Text != nil {
		fmt.Fprint(to.Text, Text(run))
		fmt.Fprintf(to.Text, "Report: %s\n", to.Report)
	}
	return errors.Join(errs...)
}

// writeOutputs appends outputs to a GITHUB_OUTPUT file in the runner's
// multi-line form, name<<DELIMITER, with a delimiter no value holds.
func writeOutputs(path string, outputs []Output) error {
	var b strings.Builder
	for _, o := range outputs {
		delim := delimiter()
		for strings.Contains(o.Value, delim) {
			delim = delimiter()
		}
		fmt.Fprintf(&b, "%s<<%s\n%s\n%s\n", o.Name, delim, o.Value, delim)
	}
	return appendFile(path, []byte(b.String()))
}

func delimiter() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return "ghadelimiter_" + hex.EncodeToString(b[:])
}

// appendFile appends data in one write and syncs it.
func appendFile(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	_, werr := f.Write(data)
	cerr := f.Close()
	return errors.Join(werr, cerr)
}

// writeReport writes the JSON report atomically: to a temporary file beside
// it, then renamed over it, so a full disk leaves the old report or none,
// never a truncated one.
func writeReport(path string, run *Run) error {
	data, err := JSON(run)
	if err != nil {
		return fmt.Errorf("report: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("report: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".report-*.json")
	if err != nil {
		return fmt.Errorf("report: %w", err)
	}
	_, werr := tmp.Write(append(data, '\n'))
	serr := tmp.Sync()
	cerr := tmp.Close()
	if err := errors.Join(werr, serr, cerr); err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("report %s: %w", path, err)
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("report %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		os.Remove(tmp.Name())
		return fmt.Errorf("report %s: %w", path, err)
	}
	return nil
}
