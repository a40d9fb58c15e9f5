package report

import (
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/immune-cd/immune/internal/pct"
	"github.com/immune-cd/immune/internal/run"
	"github.com/immune-cd/immune/internal/sha"
)

// Bisection is what the bisection of a batch that regressed did: the
// batch, each step (its commit deployed to the canary, or to the whole
// fleet, judged, and removed), what it named, and the deploy of the good
// part.
type Bisection struct {
	// Good is the last good commit before the batch (the rollback
	// target); Batch the batch's commits after it, oldest first, its head
	// last; Source where they were read.
	Good   string   `json:"good"`
	Batch  []string `json:"batch"`
	Source string   `json:"source"`
	// Production: the steps went to the whole fleet (bisect-production),
	// not to the canary.
	Production bool         `json:"production,omitempty"`
	MaxSteps   int          `json:"max_steps"`
	Steps      []BisectStep `json:"steps"`
	// Culprit is the first bad commit, when the bisection named it;
	// Suspects the commits still in doubt when it did not (Stopped says
	// why).
	Culprit  string   `json:"culprit,omitempty"`
	Suspects []string `json:"suspects,omitempty"`
	Stopped  string   `json:"stopped,omitempty"`
	// Shipped is the newest commit found good, deployed to the whole fleet
	// and watched ("" when none was); Ship that deploy, its watch and, when
	// it regressed, its rollback.
	Shipped string `json:"shipped,omitempty"`
	Ship    *Pass  `json:"ship,omitempty"`
}

// Pass is one deploy of the whole fleet and what followed it.
type Pass struct {
	Deploy        *Step       `json:"deploy,omitempty"`
	Watch         *Watch      `json:"-"`
	Rollback      *Step       `json:"rollback,omitempty"`
	RollbackWatch *Watch      `json:"-"`
	Verdict       run.Verdict `json:"verdict,omitempty"`
}

// BisectStep is one step of a bisection.
type BisectStep struct {
	SHA string `json:"sha"`
	// Index is the commit's place in the batch, 0 for the oldest.
	Index int `json:"index"`
	// Result is good, bad or undecided.
	Result string `json:"result"`
	// Culprit: this step named its commit the culprit.
	Culprit bool      `json:"culprit,omitempty"`
	Start   time.Time `json:"start"`
	End     time.Time `json:"end"`
	Deploy  *Step     `json:"deploy,omitempty"`
	// Watch is the step's commit's watch (with the verdict and the
	// reason); Control the control's, for a step on the canary.
	Watch   *Watch `json:"-"`
	Control *Watch `json:"-"`
	Removal *Step  `json:"removal,omitempty"`
}

// The results of a step, as BisectStep.Result says them.
const (
	StepGood      = "good"
	StepBad       = "bad"
	StepUndecided = "undecided"
)

// bisectHeadline says how a bisected run went; ok is false when it did
// not bisect, or the run's verdict says more (cancelled, failed).
func bisectHeadline(r *Run) (icon, text string, ok bool) {
	b := r.Bisect
	if b == nil || r.Verdict == run.Cancelled || r.Verdict == run.None {
		return "", "", false
	}
	head, env := sha.Short(r.SHA), r.Environment
	shipped := ""
	if b.Shipped != "" && b.Ship != nil && b.Ship.Verdict == run.Healthy {
		shipped = fmt.Sprintf(", and %s, the good part of its batch, shipped", sha.Short(b.Shipped))
	}
	switch {
	case b.Ship != nil && b.Ship.Verdict != run.Healthy && b.Ship.Verdict != "" && b.Ship.Verdict != run.Inconclusive:
		return "⏪", fmt.Sprintf("%s regressed on %s, and so did %s, the part of its batch the bisection found good", head, env, sha.Short(b.Shipped)), true
	case b.Culprit != "":
		return "🔎", fmt.Sprintf("%s regressed on %s: the bisection named %s the culprit%s", head, env, sha.Short(b.Culprit), shipped), true
	}
	return "🔎", fmt.Sprintf("%s regressed on %s: the bisection could not name the culprit among %d commits%s", head, env, len(b.Suspects), shipped), true
}

// bisectRows adds the bisection's rows to the summary's table.
func bisectRows(r *Run, row func(k, v string)) {
	b := r.Bisect
	if b == nil {
		return
	}
	on := "the canary"
	if b.Production {
		on = "the whole fleet"
	}
	row("Batch", fmt.Sprintf("%d commits after `%s` (%s, first-parent); %d of at most %d steps on %s", len(b.Batch), sha.Short(b.Good), md(b.Source, 0), len(b.Steps), b.MaxSteps, on))
	switch {
	case b.Culprit != "":
		row("Culprit", "`"+sha.Short(b.Culprit)+"`, the first bad commit")
	case len(b.Suspects) > 0:
		var s []string
		for _, c := range b.Suspects {
			s = append(s, "`"+sha.Short(c)+"`")
		}
		row("Suspects", strings.Join(s, " ")+": "+md(b.Stopped, maxReason))
	}
	if b.Shipped == "" {
		row("Shipped", "nothing: no commit of the batch was found good")
		return
	}
	p := b.Ship
	switch {
	case p == nil || p.Verdict == "":
		row("Shipped", "`"+sha.Short(b.Shipped)+"`: its deploy did not finish")
	case p.Verdict == run.Healthy:
		row("Shipped", fmt.Sprintf("✅ `%s` to the whole fleet, healthy: %s", sha.Short(b.Shipped), watchNumbers(p.Watch)))
	case p.Verdict == run.Inconclusive:
		row("Shipped", fmt.Sprintf("❔ `%s` to the whole fleet, not judged: %s", sha.Short(b.Shipped), md(reasonOf(p.Watch), maxReason)))
	default:
		row("Shipped", fmt.Sprintf("❌ `%s` regressed on the whole fleet too (%s): %s", sha.Short(b.Shipped), p.Verdict, md(reasonOf(p.Watch), maxReason)))
	}
}

func reasonOf(w *Watch) string {
	if w == nil {
		return ""
	}
	return w.Reason
}

// watchNumbers says what a watch saw in numbers.
func watchNumbers(w *Watch) string {
	if w == nil {
		return "not watched"
	}
	if w.Stats.Probes == 0 && len(w.Metrics) > 0 {
		return md(w.Reason, maxReason)
	}
	return fmt.Sprintf("%d probes, %d failed (%s)", w.Stats.Probes, w.Stats.Failed, pct.Of(w.Stats.ErrorRate, 1))
}

// writeBisection writes the steps: a table and a chart of each step's
// failed probes against the control's.
func writeBisection(b *strings.Builder, r *Run) {
	bs := r.Bisect
	if bs == nil || len(bs.Steps) == 0 {
		return
	}
	on := "canary"
	if bs.Production {
		on = "fleet"
	}
	b.WriteString("**Bisection**\n\n")
	fmt.Fprintf(b, "| Step | Commit | Result | Failed probes (%s · control) | Took | Why |\n|---|---|---|---|---|---|\n", on)
	for i, s := range bs.Steps {
		result := map[string]string{StepGood: "✅ good", StepBad: "❌ bad", StepUndecided: "❔ undecided"}[s.Result]
		if s.Culprit {
			result += ", the culprit"
		}
		failed := "—"
		if w := s.Watch; w != nil {
			failed = fmt.Sprintf("%d of %d (%s)", w.Stats.Failed, w.Stats.Probes, pct.Of(w.Stats.ErrorRate, 1))
			if c := s.Control; c != nil {
				failed += fmt.Sprintf(" · %d of %d (%s)", c.Stats.Failed, c.Stats.Probes, pct.Of(c.Stats.ErrorRate, 1))
			}
		}
		why := ""
		switch {
		case s.Deploy != nil && s.Deploy.Error != "":
			why = "the deploy failed: " + md(s.Deploy.Error, maxError)
		case s.Watch != nil:
			why = md(s.Watch.Reason, maxReason)
		}
		if s.Removal != nil && s.Removal.Error != "" {
			why += "; 🚨 the removal failed: " + md(s.Removal.Error, maxError)
		}
		fmt.Fprintf(b, "| %d | `%s` (%d of %d) | %s | %s | %s | %s |\n", i+1, sha.Short(s.SHA), s.Index+1, len(bs.Batch), result, failed, FormatDuration(s.End.Sub(s.Start)), why)
	}
	b.WriteString("\n")
	writeBisectChart(b, bs)
}

// BisectChart is the bisection's chart, "" when it took no step.
func BisectChart(r *Run) string {
	if r.Bisect == nil || len(r.Bisect.Steps) == 0 {
		return ""
	}
	var b strings.Builder
	writeBisectChart(&b, r.Bisect)
	return b.String()
}

// writeBisectChart draws each step's failed probes, the step's commit's
// (bars) against the control's (the grey line), in the style of the
// canary's chart.
func writeBisectChart(b *strings.Builder, bs *Bisection) {
	var labels []string
	var keep []bool
	var failed, control []float64
	hasControl := false
	for i, s := range bs.Steps {
		labels = append(labels, fmt.Sprintf("%d %s %s", i+1, sha.Short(s.SHA), s.Result))
		keep = append(keep, true)
		f, c := math.NaN(), math.NaN()
		if w := s.Watch; w != nil {
			f = shareOf(w.Stats.Failed, w.Stats.Probes)
		}
		if w := s.Control; w != nil {
			c, hasControl = shareOf(w.Stats.Failed, w.Stats.Probes), true
		}
		failed, control = append(failed, f), append(control, c)
	}
	chart := &xyChart{title: "Failed probes (%) per bisection step", yTitle: "failed (%)", yMax: 100, labels: labels, keep: keep,
		colours: []string{colourFailed}, series: []plot{{name: "the step's commit", values: failed}}}
	on := "the whole fleet"
	if hasControl {
		on = "the canary, against the control (the grey line), the stable fleet, in the same rounds"
		chart.colours = append(chart.colours, colourControl)
		chart.series = append(chart.series, plot{name: "control", line: true, values: control})
	}
	chart.write(b)
	fmt.Fprintf(b, "*One column per step, in order: the bars are the share of the step's probes that failed on %s.*\n\n", on)
}

// bisectText is the bisection's lines of the plain-text report.
func bisectText(b *strings.Builder, r *Run) {
	bs := r.Bisect
	if bs == nil {
		return
	}
	for i, s := range bs.Steps {
		fmt.Fprintf(b, "  step %d    %s: %s", i+1, sha.Short(s.SHA), s.Result)
		if w := s.Watch; w != nil {
			fmt.Fprintf(b, " (%d of %d probes failed", w.Stats.Failed, w.Stats.Probes)
			if c := s.Control; c != nil {
				fmt.Fprintf(b, "; control %d of %d", c.Stats.Failed, c.Stats.Probes)
			}
			b.WriteString(")")
		}
		b.WriteString("\n")
	}
	if bs.Culprit != "" {
		fmt.Fprintf(b, "  culprit   %s\n", sha.Short(bs.Culprit))
	}
	if bs.Shipped != "" {
		v := "not finished"
		if bs.Ship != nil && bs.Ship.Verdict != "" {
			v = string(bs.Ship.Verdict)
		}
		fmt.Fprintf(b, "  shipped   %s: %s\n", sha.Short(bs.Shipped), v)
	}
}
