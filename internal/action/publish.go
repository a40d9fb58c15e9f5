package action

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/immune-cd/immune/internal/report"
)

// publish writes the step outputs, then the job summary, then the JSON
// report: the outputs first, since later steps branch on them. A failure
// of one does not stop the others; all failures are returned together.
func (r *runner) publish() error {
	path := filepath.Join(r.cfg.Workspace, ".immune", "report.json")
	shown := path
	if rel, err := filepath.Rel(r.cfg.Workspace, path); err == nil && !strings.HasPrefix(rel, "..") {
		shown = rel
	}
	var errs []error
	if r.d.Getenv("GITHUB_OUTPUT") != "" {
		for _, o := range report.Outputs(r.out, shown) {
			r.d.GHA.SetOutput(o.Name, o.Value)
		}
	}
	if r.d.Getenv("GITHUB_STEP_SUMMARY") != "" {
		r.d.GHA.AddStepSummary(report.Summary(r.out))
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

// writeReport writes the JSON report.
func writeReport(path string, run *report.Run) error {
	data, err := report.JSON(run)
	if err != nil {
		return fmt.Errorf("write report: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("write report: %w", err)
	}
	if err := os.WriteFile(path, append(data, '\n'), 0o644); err != nil {
		return fmt.Errorf("write report: %w", err)
	}
	return nil
}
