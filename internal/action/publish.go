package action

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/immune-cd/immune/internal/report"
)

// maxSummary is GitHub's limit on a step summary.
const maxSummary = 1 << 20

// publish writes the step outputs, then the job summary, then the JSON
// report: the outputs first, since later steps branch on them. A failure
// of one does not stop the others; all failures are returned together. The
// files are written here rather than by the actions library, which panics
// on a write error.
func (r *runner) publish() error {
	path := filepath.Join(r.cfg.Workspace, ".immune", "report.json")
	shown := path
	if rel, err := filepath.Rel(r.cfg.Workspace, path); err == nil && !strings.HasPrefix(rel, "..") {
		shown = rel
	}
	var errs []error
	if p := r.d.Getenv("GITHUB_OUTPUT"); p != "" {
		if err := writeOutputs(p, report.Outputs(r.out, shown)); err != nil {
			errs = append(errs, fmt.Errorf("step outputs (GITHUB_OUTPUT): %w", err))
		}
	}
	if p := r.d.Getenv("GITHUB_STEP_SUMMARY"); p != "" {
		summary := report.Summary(r.out)
		if len(summary) > maxSummary {
			summary = summary[:maxSummary-200] + "\n\n… the summary was cut at GitHub's limit of 1 MiB; the JSON report has everything.\n"
		}
		if err := appendFile(p, []byte(summary)); err != nil {
			errs = append(errs, fmt.Errorf("job summary (GITHUB_STEP_SUMMARY): %w", err))
		}
	}
	if err := writeReport(path, r.out); err != nil {
		errs = append(errs, err)
	}
	if r.d.Plain {
		fmt.Fprint(r.d.Stdout, report.Text(r.out))
		fmt.Fprintf(r.d.Stdout, "Report: %s\n", path)
	}
	return errors.Join(errs...)
}

// writeOutputs appends outputs to a GITHUB_OUTPUT file in the runner's
// multi-line form, name<<DELIMITER, with a delimiter no value holds.
func writeOutputs(path string, outputs []report.Output) error {
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
func writeReport(path string, run *report.Run) error {
	data, err := report.JSON(run)
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
