package report

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

// The charts are Mermaid xychart-beta blocks, which GitHub draws in job
// summaries, comments and issues. What the Mermaid versions GitHub has used
// (10.9 and 11) do, and what the charts do about it:
//   - The x axis is a list of categories; equal labels merge into one
//     column. Every label is unique: the columns run on one clock from the
//     start of the first watch, and an unlabelled column is named by
//     zero-width spaces (a different number for each).
//   - Every label is drawn, at 14 px, and labels collide past about a dozen
//     in a 700 px chart; only every so many columns are labelled, and the
//     first columns of the deploy and of the rollback always.
//   - A bar of 0 is drawn as a stub half a label high; a column with
//     nothing to draw gets a value below the axis, so that no bar shows.
//   - The title is clipped past about 60 characters at 20 px: titles are
//     short, and the series are named (a legend in Mermaid 11; the caption
//     below each chart names the colours for the others).
//   - The default palette is pale; each chart sets its own colours: red for
//     failures, blue for latency, grey for a control or a bound.

// maxColumns bounds a chart's columns, the watch and its rollback's
// together; longer watches merge rounds (or minutes) into wider columns.
const maxColumns = 40

// Chart colours.
const (
	colourFailed         = "#cf222e" // the build's failures
	colourFailedRollback = "#bc4c00" // the rollback target's failures
	colourLatency        = "#0969da"
	colourLatencyBack    = "#8250df"
	colourControl        = "#57606a" // the control, a bound
)

// plotWidth is about the width, in pixels, Mermaid leaves the columns of a
// 700 px chart beside the y axis and the legend; labelChar about the width
// of a character of a 14 px label.
const (
	plotWidth = 470
	labelChar = 8.5
	labelGap  = 12
)

// plot is one named series of a chart; NaN draws nothing (a line: 0),
// nor does a bar of 0.
type plot struct {
	name   string
	line   bool
	values []float64
}

// xyChart is one chart.
type xyChart struct {
	title  string
	xTitle string
	yTitle string
	yMax   float64
	// labels name the columns; keep marks those always labelled (the
	// first of each watch).
	labels  []string
	keep    []bool
	colours []string
	series  []plot
}

// write renders the chart as a mermaid block.
func (c *xyChart) write(b *strings.Builder) {
	fmt.Fprintf(b, "```mermaid\n---\nconfig:\n  xyChart:\n    height: 300\n  themeVariables:\n    xyChart:\n      plotColorPalette: \"%s\"\n---\nxychart-beta\n",
		strings.Join(c.colours, ", "))
	fmt.Fprintf(b, "  title %s\n", chartString(c.title))
	labels := thinLabels(c.labels, c.keep)
	quoted := make([]string, len(labels))
	for i, l := range labels {
		quoted[i] = chartString(l)
	}
	if c.xTitle != "" {
		fmt.Fprintf(b, "  x-axis %s [%s]\n", chartString(c.xTitle), strings.Join(quoted, ", "))
	} else {
		fmt.Fprintf(b, "  x-axis [%s]\n", strings.Join(quoted, ", "))
	}
	top := c.yMax
	if top <= 0 {
		top = 1
	}
	fmt.Fprintf(b, "  y-axis %s 0 --> %s\n", chartString(c.yTitle), chartNumber(top))
	// Below the axis by a tenth of its height: a bar's top below the
	// plot's bottom, so nothing is drawn.
	nothing := chartNumber(-top / 10)
	for _, s := range c.series {
		vals := make([]string, len(s.values))
		for i, v := range s.values {
			switch {
			case math.IsNaN(v) && s.line:
				vals[i] = "0"
			case !s.line && (math.IsNaN(v) || v <= 0):
				vals[i] = nothing
			default:
				vals[i] = chartNumber(v)
			}
		}
		kind := "bar"
		if s.line {
			kind = "line"
		}
		fmt.Fprintf(b, "  %s %s [%s]\n", kind, chartString(s.name), strings.Join(vals, ", "))
	}
	b.WriteString("```\n\n")
}

// chartString quotes s for Mermaid, which has no escapes in its strings.
func chartString(s string) string {
	return `"` + strings.ReplaceAll(s, `"`, "'") + `"`
}

func chartNumber(v float64) string {
	return strconv.FormatFloat(math.Round(v*1000)/1000, 'f', -1, 64)
}

// thinLabels keeps the labels that fit side by side: those marked keep,
// then every so many columns from each kept one; the others become unique
// runs of zero-width spaces.
func thinLabels(labels []string, keep []bool) []string {
	n := len(labels)
	if n == 0 {
		return nil
	}
	col := float64(plotWidth) / float64(n)
	width := func(i int) float64 { return float64(utf8.RuneCountInString(labels[i])) * labelChar }
	kept := func(i int) bool { return i < len(keep) && keep[i] }
	// fits reports whether labels i < j, centred on their columns, leave
	// a gap between them.
	fits := func(i, j int) bool {
		return float64(j-i)*col >= (width(i)+width(j))/2+labelGap
	}
	widest := 0.0
	for i := range labels {
		if !kept(i) {
			widest = max(widest, width(i))
		}
	}
	step := max(int(math.Ceil((widest+labelGap)/col)), 1)
	shown := make([]bool, n)
	last, from := -1, 0 // the last label shown; where the step counts from
	for i := range n {
		switch {
		case kept(i):
			if last >= 0 && !kept(last) && !fits(last, i) {
				shown[last] = false
			}
			shown[i], last, from = true, i, i
		case (i-from)%step == 0 && (last < 0 || fits(last, i)) && !keptTooNear(i, n, kept, fits):
			shown[i], last = true, i
		}
	}
	out := make([]string, n)
	for i, l := range labels {
		if shown[i] {
			out[i] = l
		} else {
			out[i] = strings.Repeat("\u200b", i+1)
		}
	}
	return out
}

// keptTooNear reports whether a label always shown after column i would
// touch a label at i.
func keptTooNear(i, n int, kept func(int) bool, fits func(i, j int) bool) bool {
	for j := i + 1; j < n; j++ {
		if kept(j) {
			return !fits(i, j)
		}
	}
	return false
}

// sinceLabel names a column by its start from the chart's clock: "+25s",
// "+1m05s", "+2.5s" under 10 s when the columns are shorter than a
// second.
func sinceLabel(d, width time.Duration) string {
	switch {
	case d <= 0:
		return "+0s"
	case width < time.Second && d < 10*time.Second:
		return "+" + strconv.FormatFloat(d.Seconds(), 'f', 1, 64) + "s"
	case d < time.Minute:
		return fmt.Sprintf("+%ds", int(d.Round(time.Second)/time.Second))
	case d < time.Hour && d%time.Minute == 0:
		return fmt.Sprintf("+%dm", int(d/time.Minute))
	case d < time.Hour:
		d = d.Round(time.Second)
		return fmt.Sprintf("+%dm%02ds", int(d/time.Minute), int(d%time.Minute/time.Second))
	}
	d = d.Round(time.Minute)
	return fmt.Sprintf("+%dh%02dm", int(d/time.Hour), int(d%time.Hour/time.Minute))
}

// every says a column's width for a title: "every 5 s", "every 2 min".
func every(d time.Duration) string {
	switch {
	case d <= 0:
		return "per round"
	case d < time.Second:
		return fmt.Sprintf("every %d ms", d.Milliseconds())
	case d < time.Minute:
		return "every " + strings.TrimSuffix(strconv.FormatFloat(d.Seconds(), 'f', 1, 64), ".0") + " s"
	case d == time.Minute:
		return "every minute"
	}
	return "every " + strings.TrimSuffix(strconv.FormatFloat(d.Minutes(), 'f', 1, 64), ".0") + " min"
}

// niceCeil rounds v up to 1, 2, 2.5 or 5 times a power of ten.
func niceCeil(v float64) float64 {
	if v <= 0 {
		return 10
	}
	mag := math.Pow(10, math.Floor(math.Log10(v)))
	for _, m := range []float64{1, 2, 2.5, 5, 10} {
		if m*mag >= v {
			return m * mag
		}
	}
	return 10 * mag
}
