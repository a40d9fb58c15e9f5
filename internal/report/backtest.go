package report

import (
	"encoding/json"
	"fmt"
	"strings"

	"github.com/immune-cd/immune/internal/backtest"
	"github.com/immune-cd/immune/internal/history"
	"github.com/immune-cd/immune/internal/sha"
)

// BacktestSummary renders a backtest for the job summary: per deploy, what
// was recorded then and what this configuration decides now, and when.
func BacktestSummary(r backtest.Report) string {
	var b strings.Builder
	fmt.Fprintf(&b, "## 🔁 immune: backtest on %s: %s\n\n", md(r.Environment, 0), backtestHeadline(r))
	if len(r.Config) > 0 {
		fmt.Fprintf(&b, "**Replayed:** %s.\n\n", md(strings.Join(r.Config, "; "), maxNote))
	}
	if len(r.Results) > 0 {
		b.WriteString("| Deployment | Commit | Recorded then | This configuration now | Compared |\n|---|---|---|---|---|\n")
		for _, res := range r.Results {
			id := link(fmt.Sprint(res.ID), res.RunURL)
			fmt.Fprintf(&b, "| %s · %s | `%s` | %s | %s | %s |\n", id, res.Start.UTC().Format("01-02 15:04"), sha.Short(res.SHA),
				md(recorded(res), maxNote), md(decided(res), maxNote), compared(res.Agreement))
		}
		b.WriteString("\nTimes are from each deploy's start (its in_progress status, set before the deploy command ran); a replayed watch starts at the first look where the build's metrics have data.\n")
		b.WriteString("\n**Why**\n\n")
		for _, res := range r.Results {
			why := res.Reason
			if res.Verdict != backtest.NotReplayed {
				from := "the start"
				if res.Serving > 0 {
					from = "+" + FormatDuration(res.Serving)
				}
				why = fmt.Sprintf("watched from %s: %s", from, why)
			}
			if res.Baseline != "" {
				why += " (rate metrics: " + res.Baseline + ")"
			}
			fmt.Fprintf(&b, "- %d (`%s`): %s\n", res.ID, sha.Short(res.SHA), md(why, maxReason))
		}
		b.WriteString("\n")
		c := r.Counts
		fmt.Fprintf(&b, "**Against the record:** %d agree, %d new alarm(s) (recorded healthy: a regression the record missed, or a false alarm), %d missed (recorded as regressed, would pass now).\n\n",
			c.Agrees, c.NewAlarms, c.Missed)
	}
	fmt.Fprintf(&b, "**Not replayed:** %d of immune's rollbacks, canaries and deploys that never ran; not read: %d deployment(s) GitHub Actions made for jobs, %d made by hand or by another tool.\n\n",
		r.SkippedOther, r.SkippedJobs, r.SkippedForeign)
	writeList(&b, "Notes", r.Notes)
	return b.String()
}

// BacktestJSON is the backtest for scripts.
func BacktestJSON(r backtest.Report) ([]byte, error) { return json.MarshalIndent(r, "", "  ") }

func backtestHeadline(r backtest.Report) string {
	c := r.Counts
	n := len(r.Results)
	switch {
	case n == 0:
		return "no deploy of immune's to replay"
	case c.Inconclusive+c.NotReplayed == n:
		return fmt.Sprintf("too little data to judge any of the last %d deploys", n)
	}
	s := fmt.Sprintf("this configuration would have rolled back %d of the last %d deploys", c.WouldRollBack, n)
	if c.NewAlarms > 0 {
		s += fmt.Sprintf(", %d recorded healthy", c.NewAlarms)
	}
	return s
}

func recorded(r backtest.Result) string {
	switch r.Recorded {
	case history.Healthy:
		return "✅ healthy"
	case history.Failed:
		if r.RecordedShadow {
			return fmt.Sprintf("🕶️ regressed at +%s (shadow mode: not rolled back)", FormatDuration(r.RecordedAfter))
		}
		return fmt.Sprintf("❌ regressed at +%s", FormatDuration(r.RecordedAfter))
	case history.Inconclusive:
		return "❔ inconclusive"
	case history.Running:
		return "⏳ running"
	}
	return "🛑 " + r.RecordedReason
}

func decided(r backtest.Result) string {
	switch r.Verdict {
	case backtest.WouldRollBack:
		return fmt.Sprintf("⏪ would roll back at +%s", FormatDuration(r.After))
	case backtest.WouldPass:
		return fmt.Sprintf("✅ would pass (%s watched)", FormatDuration(r.Watched))
	case backtest.Inconclusive:
		return "❔ inconclusive: too little data"
	case backtest.Undecided:
		if r.Cut != nil && r.Cut.By == backtest.CutByNow {
			return fmt.Sprintf("⏸️ undecided after %s: the watch would end after now", FormatDuration(r.Watched))
		}
		by := ""
		if r.Cut != nil {
			by = fmt.Sprintf(": %s %d replaced it", r.Cut.By, r.Cut.ID)
		}
		return fmt.Sprintf("⏸️ nothing regressed it in the %s it ran%s", FormatDuration(r.Watched), by)
	}
	return "— not replayed"
}

func compared(a backtest.Agreement) string {
	switch a {
	case backtest.Agrees:
		return "agrees"
	case backtest.NewAlarm:
		return "⚠️ new alarm"
	case backtest.Missed:
		return "⚠️ missed"
	}
	return "—"
}
