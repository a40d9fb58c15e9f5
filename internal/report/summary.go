package report

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/immune-cd/immune/internal/escape"
	"github.com/immune-cd/immune/internal/pct"
	"github.com/immune-cd/immune/internal/run"
	"github.com/immune-cd/immune/internal/sha"
)

// shadowLine says what a run in shadow mode would have done.
func shadowLine(r *Run) string {
	if w := r.WouldHave; w != nil {
		to := ""
		if w.Action == ActionRollBack && w.Target != "" {
			to = " to " + sha.Short(w.Target)
		}
		text := strings.Replace(w.Text(), "rolled back at", "rolled back"+to+" at", 1)
		if w.Reason == r.Reason {
			// The why above says it.
			text = strings.TrimSuffix(text, ": "+w.Reason)
		}
		return text + ". Nothing was done: the deployment stays success, nobody was told but the webhook, and the line is clear."
	}
	return "nothing would have been rolled back."
}

// headline says the verdict in one line.
func headline(r *Run) (icon, text string) {
	if r.Shadow && r.WouldHave != nil {
		did := "rolled it back"
		if r.WouldHave.Action == ActionRemoveCanary {
			did = "removed its canary"
		}
		return "🕶️", fmt.Sprintf("shadow: %s regressed on %s; immune would have %s, and did nothing", sha.Short(r.SHA), r.Environment, did)
	}
	if icon, text, ok := bisectHeadline(r); ok {
		return icon, text
	}
	if icon, text, ok := canaryHeadline(r); ok {
		return icon, text
	}
	short, env := sha.Short(r.SHA), r.Environment
	if short == "" {
		short = "what runs" // a watch without a commit
	}
	switch r.Verdict {
	case run.Healthy:
		return "✅", fmt.Sprintf("%s is healthy on %s", short, env)
	case run.Regressed:
		return "❌", fmt.Sprintf("%s regressed on %s", short, env)
	case run.RolledBack:
		if r.Mode == "rollback" {
			return "⏪", fmt.Sprintf("%s rolled back to %s", env, short)
		}
		return "⏪", fmt.Sprintf("%s regressed on %s and was rolled back to %s", short, env, sha.Short(r.PreviousSHA))
	case run.RollbackFailed:
		if r.Mode == "rollback" {
			return "🚨", fmt.Sprintf("rollback of %s to %s failed: %s may be down", env, short, env)
		}
		return "🚨", fmt.Sprintf("%s regressed on %s and the rollback to %s failed: %s may be down", short, env, sha.Short(r.PreviousSHA), env)
	case run.Inconclusive:
		switch {
		case r.Mode == "rollback":
			return "❔", fmt.Sprintf("%s rolled back to %s, but its health could not be confirmed", env, short)
		case r.RolledBack:
			return "❔", fmt.Sprintf("%s regressed on %s and was rolled back to %s, but the rollback could not be confirmed healthy", short, env, sha.Short(r.PreviousSHA))
		}
		return "❔", fmt.Sprintf("%s on %s is inconclusive: not judged healthy, not seen to regress", short, env)
	case run.Cancelled:
		if r.StoppedIn != "" {
			return "🛑", fmt.Sprintf("cancelled during the %s of %s to %s", r.StoppedIn, short, env)
		}
		return "🛑", fmt.Sprintf("cancelled: %s on %s", short, env)
	case run.Skipped:
		return "⏭️", fmt.Sprintf("skipped: nothing was deployed to %s", env)
	case run.Clear:
		return "🟢", fmt.Sprintf("the line is clear: %s is healthy", env)
	case run.Stopped:
		return "⛔", fmt.Sprintf("the line is stopped on %s", env)
	case run.FixAllowed:
		return "🩹", "the line is stopped, and this pull request is let through as a fix"
	case run.None:
		if r.StoppedIn != "" {
			return "🚨", fmt.Sprintf("immune failed during the %s phase on %s", r.StoppedIn, env)
		}
		return "⚠️", fmt.Sprintf("nothing was deployed to %s", env)
	}
	return "⚠️", fmt.Sprintf("%s on %s: %s", short, env, r.Verdict)
}

// Summary renders the job summary in GitHub-flavoured markdown.
func Summary(r *Run) string {
	var b strings.Builder
	icon, text := headline(r)
	// The headline is immune's words around outside names (the
	// environment): shown as text.
	fmt.Fprintf(&b, "## %s immune: %s\n\n", icon, md(text, 0))
	if r.Gate != nil {
		writeGate(&b, r)
	} else {
		writeTable(&b, r)
	}
	if r.Reason != "" {
		fmt.Fprintf(&b, "**Why:** %s\n\n", md(r.Reason, maxReason))
	}
	if r.Shadow {
		fmt.Fprintf(&b, "**Shadow mode:** %s\n\n", md(shadowLine(r), maxReason))
	}
	if r.Mode != "gate" {
		writeCanaryChart(&b, r)
		writeChart(&b, r)
		writeMetrics(&b, r)
		writeBisection(&b, r)
	}
	writeList(&b, "Notes", r.Notes)
	writeList(&b, "Warnings", r.Warnings)
	return b.String()
}

// link links text (Markdown) to url, or is the text alone when url is not
// an http(s) URL.
func link(text, url string) string {
	if url = escape.LinkURL(url); url == "" {
		return text
	}
	return fmt.Sprintf("[%s](%s)", text, url)
}

// firstStep is the run's first deploy: the canary's, when there is one.
func (r *Run) firstStep() *Step {
	if r.Canary != nil && r.Canary.Deploy != nil {
		return r.Canary.Deploy
	}
	return r.Deploy
}

func writeTable(b *strings.Builder, r *Run) {
	row := tableRows(b)
	if r.Mode == "rollback" {
		row("Rolled back to", link("`"+sha.Short(r.SHA)+"`", r.Links.Commit))
		if r.PreviousSHA != "" {
			row("Replaced", link("`"+sha.Short(r.PreviousSHA)+"`", r.Links.PreviousCommit))
		}
	} else {
		deployed := "Deployed"
		if first := r.firstStep(); first != nil && first.NotStarted {
			deployed = "Not deployed"
		}
		row(deployed, link("`"+sha.Short(r.SHA)+"`", r.Links.Commit)+" to "+md(r.Environment, 0))
		prev := "none known"
		if r.PreviousSHA != "" {
			prev = link("`"+sha.Short(r.PreviousSHA)+"`", r.Links.PreviousCommit) + " (from " + md(r.PreviousSource, 0) + ")"
		}
		row("Previous SHA", prev)
	}
	canaryRows(r, row)
	bisectRows(r, row)
	if r.Deploy != nil && r.Deploy.Error != "" {
		row("Deploy "+r.Deploy.what(), r.Deploy.outcome())
	}
	if w := r.Watch; w != nil {
		if w.Stats.Probes > 0 || len(w.Metrics) == 0 {
			row("Probes", fmt.Sprintf("%d judged, %d failed", w.Stats.Probes, w.Stats.Failed))
			row("Error rate", pct.Of(w.Stats.ErrorRate, 1))
			row("Latency", fmt.Sprintf("p50 %s · p95 %s", FormatDuration(w.Stats.P50), FormatDuration(w.Stats.P95)))
		}
		for _, m := range w.Metrics {
			row("Metric `"+m.Name+"`", MetricLine(m))
		}
		detected := "—"
		if d := w.DetectedAfter(); d > 0 {
			detected = FormatDuration(d)
		}
		row("Detected after", detected)
	}
	if r.Mode != "rollback" && (r.Stage != run.StageCanary || r.Canary == nil || r.Canary.Removal == nil) {
		row("Rollback", rollbackResult(r, md))
	}
	if r.Links.Deployment != "" {
		row("Deployment", link(strconv.FormatInt(r.DeploymentID, 10), r.Links.Deployment))
	}
	if r.Links.RollbackDeployment != "" {
		row("Rollback deployment", link("rollback", r.Links.RollbackDeployment))
	}
	if runs := workflowRuns(r); runs != "" {
		row("Deploy workflow runs", runs)
	}
	if r.Links.Run != "" {
		row("Run", link("log", r.Links.Run))
	}
	b.WriteString("\n")
}

// workflowRuns links each run of the deploy workflow the run dispatched,
// in order, with how it ended.
func workflowRuns(r *Run) string {
	type named struct {
		what string
		step *Step
	}
	var steps []named
	if c := r.Canary; c != nil {
		steps = append(steps, named{"canary of", c.Deploy}, named{"canary removal to", c.Removal})
	}
	steps = append(steps, named{"deploy of", r.Deploy}, named{"rollback to", r.Rollback})
	var parts []string
	for _, n := range steps {
		if n.step == nil || n.step.RunURL == "" {
			continue
		}
		mark := "✅"
		if n.step.Error != "" {
			mark = "🚨"
		}
		parts = append(parts, fmt.Sprintf("%s %s `%s`: %s", mark, n.what, sha.Short(n.step.SHA), link("run", n.step.RunURL)))
	}
	return strings.Join(parts, " · ")
}

// rollbackResult says how the rollback went; text shows what came from
// outside (the command's error, the watch's reason) for where it is shown.
func rollbackResult(r *Run, text func(string, int) string) string {
	switch {
	case !r.RolledBack && r.WouldHave != nil:
		return "none: shadow mode"
	case !r.RolledBack:
		return "none"
	case r.Rollback != nil && r.Rollback.Error != "":
		return "🚨 the rollback " + r.Rollback.what() + " failed: " + text(r.Rollback.Error, maxError)
	case r.RollbackWatch != nil && r.RollbackWatch.Verdict == run.Healthy:
		s := r.RollbackWatch.Stats
		if s.Probes == 0 && len(r.RollbackWatch.Metrics) > 0 {
			return fmt.Sprintf("✅ `%s` healthy again: %s", sha.Short(r.PreviousSHA), text(r.RollbackWatch.Reason, maxReason))
		}
		return fmt.Sprintf("✅ `%s` healthy again: %d probes, %d failed", sha.Short(r.PreviousSHA), s.Probes, s.Failed)
	case r.RollbackWatch != nil && r.RollbackWatch.Verdict == run.Inconclusive:
		return "❔ `" + sha.Short(r.PreviousSHA) + "` deployed, but not confirmed healthy: " + text(r.RollbackWatch.Reason, maxReason)
	case r.RollbackWatch != nil:
		return "🚨 `" + sha.Short(r.PreviousSHA) + "` still unhealthy: " + text(r.RollbackWatch.Reason, maxReason)
	}
	return "started"
}

func writeGate(b *strings.Builder, r *Run) {
	g := r.Gate
	row := tableRows(b)
	row("Environment", md(r.Environment, 0))
	if g.PullRequest != 0 {
		row("Pull request", "#"+strconv.Itoa(g.PullRequest))
	}
	if g.BadSHA != "" {
		row("Regressed commit", "`"+sha.Short(g.BadSHA)+"`")
	}
	if g.StoppedAt != "" {
		row("Stopped since", md(g.StoppedAt, 0))
	}
	if g.StoppedBy != "" {
		row("What happened", md(r.Environment+" "+g.StoppedBy, maxReason))
	}
	if g.RunURL != "" {
		row("Run", link("log", g.RunURL))
	}
	if g.IssueURL != "" {
		row("Tracking issue", link(md(g.IssueURL, 0), g.IssueURL))
	}
	if g.Allowed != "" {
		row("Let through because", md(g.Allowed, maxReason))
	}
	b.WriteString("\n")
}

// tableRows writes a table of facts, one per row; its first row is the
// header GitHub's tables need (an empty one draws an empty band).
func tableRows(b *strings.Builder) func(k, v string) {
	first := true
	return func(k, v string) {
		fmt.Fprintf(b, "| %s | %s |\n", k, v)
		if first {
			b.WriteString("|:---|:---|\n")
			first = false
		}
	}
}

func writeList(b *strings.Builder, title string, items []string) {
	if len(items) == 0 {
		return
	}
	fmt.Fprintf(b, "**%s**\n\n", title)
	for _, it := range items {
		// Notes and warnings are immune's words around outside text
		// (errors, URLs, names): shown as text.
		fmt.Fprintf(b, "- %s\n", md(it, maxNote))
	}
	b.WriteString("\n")
}

// commitOr is a commit's short SHA, or "what runs" for a watch of an
// unnamed build.
func commitOr(commit string) string {
	if commit == "" {
		return "what runs"
	}
	return sha.Short(commit)
}

// Text renders a short plain-text report for terminals.
func Text(r *Run) string {
	var b strings.Builder
	_, text := headline(r)
	if r.Verdict == "" {
		fmt.Fprintf(&b, "\nVerdict: %s\n", text)
	} else {
		fmt.Fprintf(&b, "\nVerdict: %s — %s\n", r.Verdict, text)
	}
	if r.Reason != "" {
		fmt.Fprintf(&b, "  why       %s\n", r.Reason)
	}
	if r.Shadow {
		fmt.Fprintf(&b, "  shadow    %s\n", shadowLine(r))
	}
	canaryText(&b, r)
	bisectText(&b, r)
	if w := r.Watch; w != nil {
		if w.Stats.Probes == 0 {
			fmt.Fprintf(&b, "  watched   %s: no probe judged", commitOr(w.SHA))
		} else {
			fmt.Fprintf(&b, "  watched   %s: %d %s, %d failed (%s), p50 %s, p95 %s", commitOr(w.SHA), w.Stats.Probes, plural(w.Stats.Probes, "probe"),
				w.Stats.Failed, pct.Of(w.Stats.ErrorRate, 1), FormatDuration(w.Stats.P50), FormatDuration(w.Stats.P95))
		}
		if d := w.DetectedAfter(); d > 0 {
			fmt.Fprintf(&b, ", detected after %s", FormatDuration(d))
		}
		b.WriteString("\n")
		for _, m := range w.Metrics {
			fmt.Fprintf(&b, "  metric    %s (%s): %s; %s looks\n", m.Name, m.Kind, MetricLine(m), noDataText(m))
		}
	}
	if r.RolledBack && r.Stage != run.StageCanary {
		fmt.Fprintf(&b, "  rollback  %s\n", strings.ReplaceAll(rollbackResult(r, escape.Line), "`", ""))
	}
	for _, n := range r.Notes {
		fmt.Fprintf(&b, "  note      %s\n", n)
	}
	return b.String()
}
