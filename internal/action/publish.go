package action

import (
	"path/filepath"
	"strings"

	"github.com/immune-cd/immune/internal/report"
)

// publish writes the step outputs, the job summary and the JSON report
// (see report.Publish), and in a terminal the run in plain text.
func (r *runner) publish() error {
	path := filepath.Join(r.cfg.Workspace, ".immune", "report.json")
	shown := path
	if rel, err := filepath.Rel(r.cfg.Workspace, path); err == nil && !strings.HasPrefix(rel, "..") {
		shown = rel
	}
	to := report.Destinations{Outputs: r.d.Getenv("GITHUB_OUTPUT"), Summary: r.d.Getenv("GITHUB_STEP_SUMMARY"), Report: path, ShownReport: shown}
	if r.d.Plain {
		to.Text = r.d.Stdout
	}
	return report.Publish(r.out, to)
}
