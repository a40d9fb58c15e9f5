package report

import (
	"errors"
	"fmt"
	"io"

	"github.com/immune-cd/immune/internal/jobfiles"
)

// Destinations are where a run's results go; an empty path is skipped.
type Destinations struct {
	// Outputs is the GITHUB_OUTPUT file; Summary the GITHUB_STEP_SUMMARY
	// file; Report the JSON report's path, shown as ShownReport.
	Outputs, Summary, Report, ShownReport string
	// Text, when set, gets the run in plain text (outside GitHub Actions).
	Text io.Writer
}

// Publish writes the step outputs, then the job summary, then the JSON
// report (atomically), through package jobfiles: the outputs first, since
// later steps branch on them. A failure of one does not stop the others;
// all failures are returned together.
func Publish(run *Run, to Destinations) error {
	var errs []error
	if to.Outputs != "" {
		var outputs []jobfiles.Output
		for _, o := range Outputs(run, to.ShownReport) {
			outputs = append(outputs, jobfiles.Output{Name: o.Name, Value: o.Value})
		}
		if err := jobfiles.WriteOutputs(to.Outputs, outputs); err != nil {
			errs = append(errs, fmt.Errorf("step outputs (GITHUB_OUTPUT): %w", err))
		}
	}
	if to.Summary != "" {
		if err := jobfiles.AppendSummary(to.Summary, Summary(run), "the JSON report has everything."); err != nil {
			errs = append(errs, fmt.Errorf("job summary (GITHUB_STEP_SUMMARY): %w", err))
		}
	}
	if data, err := JSON(run); err != nil {
		errs = append(errs, fmt.Errorf("report: %w", err))
	} else if err := jobfiles.WriteAtomic(to.Report, append(data, '\n')); err != nil {
		errs = append(errs, fmt.Errorf("report %s: %w", to.Report, err))
	}
	if to.Text != nil {
		fmt.Fprint(to.Text, Text(run))
		fmt.Fprintf(to.Text, "Report: %s\n", to.Report)
	}
	return errors.Join(errs...)
}
