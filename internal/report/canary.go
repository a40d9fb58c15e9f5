package report

import (
	"fmt"
	"github.com/immune-cd/immune/internal/pct"
	"math"
	"strings"
	"time"

	"github.com/immune-cd/immune/internal/run"
	"github.com/immune-cd/immune/internal/sha"
)

// Canary is what a canary stage did: the canary command, the watch of the
// canary against its control in the same rounds, and, when it regressed,
// its removal.
type Canary struct {
	Deploy *Step `json:"deploy,omitempty"`
	// Watch is the canary's side of the watch: its probes, the verdict,
	// the reason and the evidence (which holds the control's numbers).
	Watch *Watch `json:"-"`
	// Control is the control's side: its probes and stats (no verdict of
	// its own).
	Control *Watch `json:"-"`
	// Series is both tracks round by round (merged in pairs past a cap),
	// for the chart.
	Series *CanarySeries `json:"-"`
	// Promoted reports that the canary passed, Early that it did before
	// canary-duration (canary-promote-early).
	Promoted bool `json:"promoted"`
	Early    bool `json:"promoted_early,omitempty"`
	// Removal is the canary-rollback-command's run, when the canary
	// regressed.
	Removal *Step `json:"removal,omitempty"`
}

// CanaryPoint is one round of both tracks (or several, merged).
type CanaryPoint struct {
	Elapsed                       time.Duration // from the watch's start to the first round's start
	Canary, CanaryFailed          int
	Control, ControlFailed        int
	CanarySlowest, ControlSlowest time.Duration
}

// CanarySeries keeps both tracks' counts per round in bounded memory: past
// maxSeries points, neighbours are merged in pairs and later rounds go
// into points twice as wide.
type CanarySeries struct {
	Points []CanaryPoint
	Per    int // rounds per point
	fill   int // rounds in the last point
}

const maxSeries = 512

// Add adds one round.
func (s *CanarySeries) Add(p CanaryPoint) {
	if s.Per == 0 {
		s.Per = 1
	}
	if n := len(s.Points); n > 0 && s.fill < s.Per {
		s.Points[n-1] = merge(s.Points[n-1], p)
		s.fill++
		return
	}
	if len(s.Points) == maxSeries {
		half := s.Points[:0]
		for i := 0; i+1 < len(s.Points); i += 2 {
			half = append(half, merge(s.Points[i], s.Points[i+1]))
		}
		s.Points, s.Per = half, 2*s.Per
	}
	s.Points = append(s.Points, p)
	s.fill = 1
}

func merge(a, b CanaryPoint) CanaryPoint {
	return CanaryPoint{
		Elapsed: a.Elapsed, Canary: a.Canary + b.Canary, CanaryFailed: a.CanaryFailed + b.CanaryFailed,
		Control: a.Control + b.Control, ControlFailed: a.ControlFailed + b.ControlFailed,
		CanarySlowest: max(a.CanarySlowest, b.CanarySlowest), ControlSlowest: max(a.ControlSlowest, b.ControlSlowest),
	}
}

// canaryHeadline says how a run that ended in the canary stage went; ok is
// false for the runs whose headline does not depend on the stage.
func canaryHeadline(r *Run) (icon, text string, ok bool) {
	if r.Stage != run.StageCanary || r.Canary == nil {
		return "", "", false
	}
	short, env := sha.Short(r.SHA), r.Environment
	switch r.Verdict {
	case run.RolledBack:
		return "⏪", fmt.Sprintf("%s regressed as a canary on %s and the canary was removed; the rest of the fleet never ran it", short, env), true
	case run.RollbackFailed:
		return "🚨", fmt.Sprintf("%s regressed as a canary on %s and removing the canary failed: the canary may still run %s", short, env, short), true
	case run.Regressed:
		return "❌", fmt.Sprintf("%s regressed as a canary on %s; the rest of the fleet never ran it", short, env), true
	}
	return "", "", false
}

// canaryRows adds the canary's rows to the summary's table.
func canaryRows(r *Run, row func(k, v string)) {
	c := r.Canary
	if c == nil {
		return
	}
	if c.Deploy != nil && c.Deploy.Error != "" {
		row("Canary "+c.Deploy.what(), c.Deploy.outcome())
	}
	if w := c.Watch; w != nil {
		verdict := "regressed"
		switch {
		case c.Promoted && r.WouldHave != nil && r.WouldHave.Action == ActionRemoveCanary:
			verdict = "🕶️ " + string(w.Verdict) + ", promoted as if it had passed (shadow mode),"
		case c.Promoted && c.Early:
			verdict = "✅ promoted early"
		case c.Promoted:
			verdict = "✅ passed"
		case w.Verdict == run.Cancelled:
			verdict = "🛑 cancelled"
		}
		detail := fmt.Sprintf("%s after %s: %d of %d probes failed (%s)", verdict, FormatDuration(w.End.Sub(w.Start)), w.Stats.Failed, w.Stats.Probes, pct.Of(w.Stats.ErrorRate, 1))
		if ctl := c.Control; ctl != nil {
			detail += fmt.Sprintf("; the control %d of %d (%s)", ctl.Stats.Failed, ctl.Stats.Probes, pct.Of(ctl.Stats.ErrorRate, 1))
		}
		row("Canary", detail)
		if ctl := c.Control; ctl != nil {
			row("Canary latency", fmt.Sprintf("p50 %s · p95 %s, the control p50 %s · p95 %s",
				FormatDuration(w.Stats.P50), FormatDuration(w.Stats.P95), FormatDuration(ctl.Stats.P50), FormatDuration(ctl.Stats.P95)))
		}
	}
	if c.Removal != nil {
		removal := "✅ removed"
		if c.Removal.Error != "" {
			removal = "🚨 the removal failed: " + md(c.Removal.Error, maxError)
		}
		row("Canary removal", removal)
	}
}

// writeCanaryChart draws the canary beside its control, round by round
// (or group of rounds): the share of each one's probes that failed, then
// each one's slowest answer. The canary is the bars, the control the line.
func writeCanaryChart(b *strings.Builder, r *Run) {
	if r.Canary == nil || r.Canary.Series == nil || len(r.Canary.Series.Points) == 0 {
		return
	}
	c, s := r.Canary, r.Canary.Series
	per := max((len(s.Points)+maxColumns-1)/maxColumns, 1)
	var width time.Duration
	if len(s.Points) > 1 {
		width = time.Duration(per) * (s.Points[1].Elapsed - s.Points[0].Elapsed)
	}
	var labels []string
	var keep []bool
	var canaryFailed, controlFailed, canarySlow, controlSlow []float64
	var top time.Duration
	for i := 0; i < len(s.Points); i += per {
		p := s.Points[i]
		for _, q := range s.Points[i+1 : min(i+per, len(s.Points))] {
			p = merge(p, q)
		}
		label := "canary"
		if i > 0 {
			label = sinceLabel(p.Elapsed, width)
		}
		labels, keep = append(labels, label), append(keep, i == 0)
		canaryFailed = append(canaryFailed, shareOf(p.CanaryFailed, p.Canary))
		controlFailed = append(controlFailed, shareOf(p.ControlFailed, p.Control))
		canarySlow = append(canarySlow, msOrNaN(p.CanarySlowest))
		controlSlow = append(controlSlow, msOrNaN(p.ControlSlowest))
		top = max(top, p.CanarySlowest, p.ControlSlowest)
	}
	canary, control := "canary", "control"
	if c.Watch != nil {
		canary = "canary " + sha.Short(c.Watch.SHA)
	}
	if c.Control != nil {
		control = "control " + sha.Short(c.Control.SHA)
	}
	failed := &xyChart{title: "Failed probes (%), " + every(width), yTitle: "failed (%)", yMax: 100, labels: labels, keep: keep,
		colours: []string{colourFailed, colourControl},
		series:  []plot{{name: canary, values: canaryFailed}, {name: control, line: true, values: controlFailed}}}
	slow := &xyChart{title: "Slowest answer (ms), " + every(width), yTitle: "ms", labels: labels, keep: keep,
		yMax:    niceCeil(math.Max(float64(top)/1e6, 10) * 1.1),
		colours: []string{colourLatency, colourControl},
		series:  []plot{{name: canary, values: canarySlow}, {name: control, line: true, values: controlSlow}}}
	failed.write(b)
	slow.write(b)
	fmt.Fprintf(b, "*One column %s, in the same rounds: the bars are the canary (%s), the grey line the control, the stable fleet.", every(width), strings.TrimPrefix(canary, "canary "))
	if c.Watch != nil {
		if st := startupNote(part{commit: c.Watch.SHA, startup: startupOf(c.Watch)}); st != "" {
			b.WriteString(" The canary " + st)
		}
	}
	b.WriteString("*\n\n")
}

// shareOf is the percentage of n that bad is, NaN for no probes.
func shareOf(bad, n int) float64 {
	if n == 0 {
		return math.NaN()
	}
	return 100 * float64(bad) / float64(n)
}

func msOrNaN(d time.Duration) float64 {
	if d <= 0 {
		return math.NaN()
	}
	return float64(d) / 1e6
}

// judged is the watch whose numbers the outputs carry: the full watch, or
// the canary's when the run ended in the canary stage.
func judged(r *Run) *Watch {
	if r.Watch == nil && r.Stage == run.StageCanary && r.Canary != nil {
		return r.Canary.Watch
	}
	return r.Watch
}

// canaryText is the canary's line of the plain-text report.
func canaryText(b *strings.Builder, r *Run) {
	c := r.Canary
	if c == nil || c.Watch == nil {
		return
	}
	w := c.Watch
	fmt.Fprintf(b, "  canary    %s: %d probes, %d failed (%s)", sha.Short(w.SHA), w.Stats.Probes, w.Stats.Failed, pct.Of(w.Stats.ErrorRate, 1))
	if ctl := c.Control; ctl != nil {
		fmt.Fprintf(b, "; control %d probes, %d failed (%s)", ctl.Stats.Probes, ctl.Stats.Failed, pct.Of(ctl.Stats.ErrorRate, 1))
	}
	switch {
	case c.Promoted && c.Early:
		b.WriteString("; promoted early")
	case c.Promoted:
		b.WriteString("; promoted")
	case c.Removal != nil && c.Removal.Error == "":
		b.WriteString("; removed")
	case c.Removal != nil:
		b.WriteString("; removal failed")
	}
	b.WriteString("\n")
}
