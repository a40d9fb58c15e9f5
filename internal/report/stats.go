package report

import (
	"encoding/json"
	"fmt"
	"github.com/immune-cd/immune/internal/pct"
	"math"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/immune-cd/immune/internal/sha"
	"github.com/immune-cd/immune/internal/stats"
)

// StatsSummary renders an environment's delivery record for the job
// summary: the figures, a chart of changes per day, the records used.
func StatsSummary(r stats.Report) string {
	var b strings.Builder
	fmt.Fprintf(&b, "## 📈 immune: the record of %s\n\n", md(r.Environment, 0))
	row := tableRows(&b)
	row("Period", fmt.Sprintf("%s to %s (%s days)", day(r.From), day(r.To), days(r.Days)))
	c := r.Changes
	row("Deployments per day", fmt.Sprintf("%s (%d changes: %s)", strconv.FormatFloat(r.PerDay, 'f', 1, 64), c.Total, changeParts(c)))
	if f := r.ChangeFailureRate; f != nil {
		row("Change failure rate", fmt.Sprintf("%s (%d of %d changes judged)", pct.Of(f.Rate, 1), f.Count, f.Of))
	} else {
		row("Change failure rate", "— (no change judged)")
	}
	restore := durations(r.TimeToRestore, "regression", "restored")
	if r.OpenRegressions > 0 {
		restore += fmt.Sprintf("; %d not restored yet", r.OpenRegressions)
	}
	row("Time to restore", restore)
	lead := durations(r.LeadTime, "commit", "")
	if r.NoCommitTime > 0 {
		lead += fmt.Sprintf("; %d without a commit time", r.NoCommitTime)
	}
	row("Lead time", lead)
	row("Detection time", durations(r.DetectionTime, "regression", ""))
	b.WriteString("\n")
	writeStatsChart(&b, r)
	used, left := 0, map[string]int{}
	for _, rec := range r.Records {
		if len(rec.Used) > 0 {
			used++
		} else {
			left[rec.Why]++
		}
	}
	fmt.Fprintf(&b, "**Records:** %d of immune's deployments read, %d used", len(r.Records), used)
	if len(left) > 0 {
		var parts []string
		for _, why := range sortedKeys(left) {
			parts = append(parts, fmt.Sprintf("%d %s", left[why], why))
		}
		fmt.Fprintf(&b, " (left out: %s)", strings.Join(parts, "; "))
	}
	fmt.Fprintf(&b, ". Not read: %d deployment(s) GitHub Actions made for jobs, %d made by hand or by another tool.\n\n", r.SkippedJobs, r.SkippedForeign)
	if len(r.Records) > 0 {
		b.WriteString("<details><summary>Every record</summary>\n\n| Deployment | Commit | Kind | Outcome | Made | Used for |\n|---|---|---|---|---|---|\n")
		for _, rec := range r.Records {
			use := strings.Join(rec.Used, ", ")
			if use == "" {
				use = "— " + rec.Why
			}
			fmt.Fprintf(&b, "| %d | `%s` | %s | %s | %s | %s |\n", rec.ID, sha.Short(rec.SHA), rec.Kind, rec.Outcome, rec.Created.UTC().Format("2006-01-02 15:04"), md(use, maxNote))
		}
		b.WriteString("\n</details>\n\n")
	}
	writeList(&b, "Notes", r.Notes)
	return b.String()
}

// StatsJSON is the record for scripts.
func StatsJSON(r stats.Report) ([]byte, error) { return json.MarshalIndent(r, "", "  ") }

func changeParts(c stats.Counts) string {
	var parts []string
	for _, p := range []struct {
		n    int
		what string
	}{{c.Healthy, "healthy"}, {c.Regressed, "regressed"}, {c.Inconclusive, "inconclusive"}, {c.Cancelled, "cancelled"}, {c.Running, "running"}} {
		if p.n > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", p.n, p.what))
		}
		if p.what == "regressed" && c.Shadowed > 0 {
			parts[len(parts)-1] += fmt.Sprintf(" (%d in shadow mode, not rolled back)", c.Shadowed)
		}
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}

// durations says median, mean and range of d over n things.
func durations(d stats.Durations, thing, verb string) string {
	if d.N == 0 {
		return "— (none in the records)"
	}
	s := fmt.Sprintf("median %s, mean %s", FormatDuration(d.Median), FormatDuration(d.Mean))
	if d.N > 1 {
		s += fmt.Sprintf(", %s to %s", FormatDuration(d.Min), FormatDuration(d.Max))
	}
	what := fmt.Sprintf("%d %s", d.N, thing)
	if d.N != 1 {
		what += "s"
	}
	if verb != "" {
		what += " " + verb
	}
	return s + " (" + what + ")"
}

func writeStatsChart(b *strings.Builder, r stats.Report) {
	if len(r.Buckets) == 0 {
		return
	}
	per := "day"
	if len(r.Buckets) > 1 && r.Buckets[1].Start.Sub(r.Buckets[0].Start) > 24*time.Hour {
		per = "week"
	}
	top := 1
	c := xyChart{title: "Changes per " + per + ", and regressed", yTitle: "changes", colours: []string{colourLatency, colourFailed}}
	changes, regressed := make([]float64, len(r.Buckets)), make([]float64, len(r.Buckets))
	for i, k := range r.Buckets {
		top = max(top, k.Changes)
		c.labels = append(c.labels, k.Start.UTC().Format("01-02"))
		c.keep = append(c.keep, i == 0)
		changes[i], regressed[i] = float64(k.Changes), float64(k.Regressed)
	}
	c.yMax = niceCeil(float64(top) * 1.1)
	c.series = []plot{{name: "changes", values: changes}, {name: "regressed", line: true, values: regressed}}
	c.write(b)
	fmt.Fprintf(b, "*Blue bars: the changes of each %s (UTC); red line: those that regressed.*\n\n", per)
}

func day(t time.Time) string { return t.UTC().Format("2006-01-02 15:04 UTC") }

func days(d float64) string {
	if d == math.Trunc(d) {
		return strconv.FormatFloat(d, 'f', 0, 64)
	}
	return strconv.FormatFloat(d, 'f', 1, 64)
}

// cell makes text from outside safe in a table cell: one line, no column
// break, no HTML.
func sortedKeys(m map[string]int) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
