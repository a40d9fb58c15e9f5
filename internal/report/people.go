package report

import (
	"fmt"
	"github.com/immune-cd/immune/internal/pct"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/immune-cd/immune/internal/escape"
	"github.com/immune-cd/immune/internal/run"
	"github.com/immune-cd/immune/internal/sha"
)

// What people are told in GitHub and in chat: the comment on the pull
// requests of a regressed commit, the tracking issue of a stopped line,
// and the chat message of each event. Like the rest of this package it
// only renders: who to tell and where is decided by the caller.
//
// Everything a story holds came from outside immune (health answers and
// the reasons made of them, error texts, author names, logins, URLs,
// inputs): each piece goes through package escape for where it is shown,
// so that it shows as written, mentions no one, keeps the document's
// structure and is capped (the caps below). The logins of the people to
// tell are mentioned, on purpose, when they are GitHub logins.

// Caps on what one piece of outside text may take of a document, in
// characters.
const (
	maxReason = 1000 // a reason, or why nothing was rolled back
	maxError  = 500  // a command's error
	maxName   = 100  // an author's name
	maxTitle  = 256  // GitHub's limit on an issue's title
	maxNote   = 1000 // a note or a warning of the job summary
)

// md is outside text as Markdown text.
func md(s string, limit int) string { return escape.Markdown(s, limit) }

// mention is "@login" for a GitHub login, else the text as Markdown (an
// account name GitHub would not make, mentioning no one).
func mention(login string) string {
	if escape.IsLogin(login) {
		return "@" + login
	}
	return md(login, maxName)
}

// StoryKind is what happened, as people are told.
type StoryKind int

// The stories.
const (
	// RollingBack: the commit regressed and the rollback is under way.
	RollingBack StoryKind = iota
	// RolledBack: regressed, rolled back, and the rollback is healthy.
	RolledBack
	// RollbackFailed: regressed, and the rollback failed.
	RollbackFailed
	// NotRolledBack: regressed, and nothing was rolled back.
	NotRolledBack
	// ManualRollback: someone rolled the environment back by hand.
	ManualRollback
	// ManualRollbackFailed: a rollback by hand failed.
	ManualRollbackFailed
	// Recovered: a healthy deploy cleared a stopped line.
	Recovered
	// WouldRollBack: a run in shadow mode found a regression and did
	// nothing (Story.WouldHave says what it would have done). Only the
	// chat is told.
	WouldRollBack
	// Bisected: a batch regressed and was rolled back, and a bisection
	// named its first bad commit (BadSHA), or narrowed it down; what runs
	// now is the good part of the batch, or the last good commit.
	Bisected
)

// BisectStory is what a bisection found, for a Bisected story.
type BisectStory struct {
	// Head is the batch's head, the commit that regressed; Commits the
	// batch's size; Steps how many steps the search took; Production
	// that they ran on the whole fleet.
	Head       string
	Commits    int
	Steps      int
	Production bool
	// Named: BadSHA is the culprit. Otherwise BadSHA is the oldest commit
	// seen to regress and Suspects counts the commits still in doubt.
	Named    bool
	Suspects int
	// Shipped: RunningSHA is the good part of the batch, shipped.
	Shipped bool
	// Stopped: the run stopped (a cancel) during the bisection, before it
	// could name the culprit.
	Stopped bool
}

// Person is who wrote a commit or opened a pull request.
type Person struct {
	Login string // GitHub account; mentioned as @login
	Name  string // git author name when there is no account
}

// String is the person as plain text.
func (p Person) String() string { return p.show(func(s string, _ int) string { return s }) }

// show names the person: @login for a GitHub login, else the login or the
// git author's name through text (an escape for where it is shown).
func (p Person) show(text func(string, int) string) string {
	switch {
	case p.Login != "" && escape.IsLogin(p.Login):
		return "@" + p.Login
	case p.Login != "":
		return text(p.Login, maxName)
	case p.Name != "":
		return text(p.Name, maxName)
	}
	return "an unknown author"
}

// markdown names the person in Markdown.
func (p Person) markdown() string { return p.show(escape.Markdown) }

// Pull is a merged pull request of a regressed push.
type Pull struct {
	Number         int
	Title          string
	URL            string
	Author         string // login
	MergeCommitSHA string
}

// Blame is who is told: the pull requests between the previous good
// commit and the regressed one.
type Blame struct {
	Author Person // of the regressed commit
	Pulls  []Pull // the regressed commit's own first
	// BadPull is the regressed commit's own pull request, 0 if none.
	BadPull int
	// Base is the previous good commit the push started from.
	Base string
	// Commits counts the push's commits; Examined how many were looked
	// up; Capped says there were more than were looked at or told.
	Commits, Examined int
	Capped            bool
}

// Story is one regression, rollback or recovery, with everything people
// are told about it.
type Story struct {
	Kind        StoryKind
	Repository  string // owner/name
	Environment string
	// BadSHA is the commit that regressed (or that a rollback by hand
	// replaced); RunningSHA what production runs now: rolled back to,
	// being restored to, or, for a recovery, the healthy commit.
	BadSHA, RunningSHA string
	BadURL, RunningURL string
	Reason             string // why, with its numbers
	Watch              *Watch // the regressed (or recovered) build's watch
	RollbackWatch      *Watch
	RollbackError      string // the rollback command's error
	NotRolledBack      string // why nothing was rolled back
	Chart              string // as in the job summary
	RunURL             string
	Actor              string // who started the run
	FixLabel           string
	At                 time.Time
	Blame              Blame
	IssueNumber        int
	IssueURL           string
	// WouldHave is what a run in shadow mode would have done.
	WouldHave *WouldHave
	// Bisect is what the bisection found (Bisected stories).
	Bisect *BisectStory
}

// Chart is the job summary's chart of a run's watches, "" when there were
// no probes.
func Chart(r *Run) string {
	var b strings.Builder
	writeCanaryChart(&b, r)
	writeChart(&b, r)
	return b.String()
}

// code is a commit as inline code, linked when url is known.
func code(commit, url string) string {
	return link(escape.Code(sha.Short(commit), 0), url)
}

// seen says what the watch of the regressed build saw, in numbers.
func seen(w *Watch) string {
	if w == nil || w.Stats.Probes == 0 {
		return ""
	}
	s := fmt.Sprintf("%d of %d probes failed (%s) · latency p50 %s, p95 %s", w.Stats.Failed, w.Stats.Probes,
		pct.Of(w.Stats.ErrorRate, 1), FormatDuration(w.Stats.P50), FormatDuration(w.Stats.P95))
	if d := w.DetectedAfter(); d > 0 {
		s += " · detected after " + FormatDuration(d)
	}
	return s
}

// running says what production runs now, for people.
func running(s Story) string {
	target := code(s.RunningSHA, s.RunningURL)
	switch s.Kind {
	case RollingBack:
		return "being rolled back to " + target
	case RolledBack, ManualRollback:
		w := s.RollbackWatch
		switch {
		case w == nil:
			return target
		case w.Verdict == run.Inconclusive:
			return fmt.Sprintf("%s, but not confirmed healthy: its watch was inconclusive (%s)", target, md(w.Reason, maxReason))
		case w.Stats.Probes == 0 && len(w.Metrics) > 0:
			return fmt.Sprintf("%s, healthy again (%s)", target, md(w.Reason, maxReason))
		}
		return fmt.Sprintf("%s, healthy again (%d probes, %d failed)", target, w.Stats.Probes, w.Stats.Failed)
	case RollbackFailed, ManualRollbackFailed:
		why := "the rollback was not healthy"
		if s.RollbackError != "" {
			why = "the rollback command failed: " + md(s.RollbackError, maxError)
		} else if w := s.RollbackWatch; w != nil && w.Reason != "" {
			why = "it was not healthy after the rollback: " + md(w.Reason, maxReason)
		}
		return fmt.Sprintf("🚨 unknown, it may be down: it was being rolled back to %s, and %s", target, why)
	case NotRolledBack:
		return fmt.Sprintf("%s, the regressed commit (not rolled back: %s)", code(s.BadSHA, s.BadURL), md(s.NotRolledBack, maxReason))
	case Bisected:
		if b := s.Bisect; b != nil && b.Shipped {
			return fmt.Sprintf("%s, the part of the batch before %s, shipped and watched", target, code(s.BadSHA, s.BadURL))
		}
		return fmt.Sprintf("%s, the last good commit before the batch", target)
	}
	return target
}

// headline is the story's first line, with its icon.
func (s Story) headline() string {
	bad, env := escape.Code(sha.Short(s.BadSHA), 0), md(s.Environment, 0)
	switch s.Kind {
	case RollingBack:
		return fmt.Sprintf("⏳ %s regressed on %s: immune is rolling it back", bad, env)
	case RolledBack:
		return fmt.Sprintf("⏪ %s regressed on %s and was rolled back", bad, env)
	case RollbackFailed:
		return fmt.Sprintf("🚨 %s regressed on %s and the rollback failed", bad, env)
	case NotRolledBack:
		return fmt.Sprintf("❌ %s regressed on %s", bad, env)
	case ManualRollback:
		return fmt.Sprintf("⏪ %s was rolled back from %s by hand", env, bad)
	case ManualRollbackFailed:
		return fmt.Sprintf("🚨 %s was rolled back from %s by hand, and the rollback failed", env, bad)
	case Bisected:
		if b := s.Bisect; b != nil && !b.Named {
			return fmt.Sprintf("🔎 %s's batch regressed on %s: a bisection narrowed it to %d commits", escape.Code(sha.Short(b.Head), 0), env, b.Suspects)
		}
		return fmt.Sprintf("🔎 %s regressed on %s: a bisection of the batch found it", bad, env)
	}
	return fmt.Sprintf("✅ %s is healthy on %s", escape.Code(sha.Short(s.RunningSHA), 0), env)
}

// what says in one sentence what happened to the pull request's change.
func (s Story) what(pr Pull) string {
	whose := "this pull request's change"
	if pr.Number != 0 && pr.Number != s.Blame.BadPull {
		whose = fmt.Sprintf("the push that deployed this pull request (up to %s)", code(s.BadSHA, s.BadURL))
	}
	env, to := md(s.Environment, 0), code(s.RunningSHA, s.RunningURL)
	switch s.Kind {
	case RollingBack:
		return fmt.Sprintf("%s regressed %s: immune is rolling it back to %s now.", upper(whose), env, to)
	case RolledBack:
		return fmt.Sprintf("%s regressed %s: immune rolled it back to %s.", upper(whose), env, to)
	case RollbackFailed:
		return fmt.Sprintf("%s regressed %s, and the rollback to %s failed: %s may be down.", upper(whose), env, to, env)
	case NotRolledBack:
		return fmt.Sprintf("%s regressed %s. It was not rolled back: %s.", upper(whose), env, md(s.NotRolledBack, maxReason))
	case Bisected:
		return s.bisected(whose, env, to)
	case ManualRollback, ManualRollbackFailed:
		by := "Someone"
		if s.Actor != "" {
			by = mention(s.Actor)
		}
		verb := "rolled"
		if s.Kind == ManualRollbackFailed {
			verb = "tried to roll"
		}
		why := ""
		if s.Reason != "" {
			why = ": " + md(s.Reason, maxReason)
		}
		return fmt.Sprintf("%s %s %s back from %s to %s by hand%s.", by, verb, env, code(s.BadSHA, s.BadURL), code(s.RunningSHA, s.RunningURL), why)
	}
	return ""
}

// bisected says what a bisection found about the pull request's change.
func (s Story) bisected(whose, env, to string) string {
	b := s.Bisect
	if b == nil {
		b = &BisectStory{Named: true}
	}
	head := code(b.Head, "")
	on := "the canary"
	if b.Production {
		on = "the whole fleet"
	}
	steps := "1 step"
	if b.Steps != 1 {
		steps = fmt.Sprintf("%d steps", b.Steps)
	}
	now := fmt.Sprintf("%s runs %s, the last good commit before the batch.", env, to)
	if b.Shipped {
		now = fmt.Sprintf("The commits before it shipped: %s runs %s.", env, to)
	}
	if !b.Named {
		if b.Shipped {
			now = fmt.Sprintf("The commits before them shipped: %s runs %s.", env, to)
		}
		undecided := fmt.Sprintf("a step on %s could not decide", on)
		if b.Stopped {
			undecided = "the bisection was stopped before it could decide"
		}
		return fmt.Sprintf("%s is among the %d commits of %s's batch that a bisection could not tell apart: the batch regressed %s and was rolled back, and %s. %s",
			upper(whose), b.Suspects, head, env, undecided, upper(now))
	}
	if s.Blame.BadPull != 0 && whose == "this pull request's change" {
		whose = fmt.Sprintf("this pull request's change (%s)", code(s.BadSHA, s.BadURL))
	}
	return fmt.Sprintf("%s is the first bad commit of %s's batch of %d, which regressed %s and was rolled back: a bisection on %s found it in %s. %s",
		upper(whose), head, b.Commits, env, on, steps, upper(now))
}

func upper(s string) string {
	r, n := utf8.DecodeRuneInString(s)
	return strings.ToUpper(string(r)) + s[n:]
}

func manual(k StoryKind) bool { return k == ManualRollback || k == ManualRollbackFailed }

// pulls lists pull requests with their authors: "#11 (@hubot), #12 (@mona)".
func pulls(ps []Pull) string {
	var parts []string
	for _, p := range ps {
		s := "#" + strconv.Itoa(p.Number)
		if p.Author != "" {
			s += " (" + mention(p.Author) + ")"
		}
		parts = append(parts, s)
	}
	return strings.Join(parts, ", ")
}

// push says which commits and pull requests the regressed push held, and
// whether the list was cut.
func (s Story) push() string {
	b := s.Blame
	if b.Commits <= 1 && len(b.Pulls) <= 1 {
		return ""
	}
	var out string
	from := ""
	if b.Base != "" {
		from = fmt.Sprintf(" (after %s)", code(b.Base, ""))
	}
	switch len(b.Pulls) {
	case 0:
		out = fmt.Sprintf("The push deployed %d commits%s, none from a merged pull request.", b.Commits, from)
	case 1:
		out = fmt.Sprintf("The push deployed %d commits%s from one merged pull request: %s.", b.Commits, from, pulls(b.Pulls))
	default:
		out = fmt.Sprintf("The push deployed %d commits%s from %d merged pull requests: %s. immune cannot tell which of them regressed, so it tells each author.",
			b.Commits, from, len(b.Pulls), pulls(b.Pulls))
	}
	if b.Capped {
		out += fmt.Sprintf(" immune looked at the newest %d of them only, so an older pull request may be missing here.", b.Examined)
	}
	return out
}

// facts is the table of a regression.
func (s Story) facts(b *strings.Builder, withEnvironment bool) {
	table := tableRows(b)
	// Every value is immune's text and escaped pieces: none holds a "|"
	// that would end its cell.
	row := func(k, v string) {
		if v != "" {
			table(k, v)
		}
	}
	if withEnvironment {
		row("Environment", md(s.Environment, 0))
	}
	commit := code(s.BadSHA, s.BadURL)
	if manual(s.Kind) {
		row("Rolled back from", commit+" by "+s.Blame.Author.markdown())
	} else {
		row("Regressed commit", commit+" by "+s.Blame.Author.markdown())
	}
	if withEnvironment && len(s.Blame.Pulls) > 0 {
		row("Pull requests", pulls(s.Blame.Pulls))
	}
	if withEnvironment {
		row("Why", md(s.Reason, maxReason))
	}
	row("What the watch saw", seen(s.Watch))
	row(md(upper(s.Environment), 0)+" runs now", running(s))
	if s.IssueURL != "" && !withEnvironment {
		row("The line", fmt.Sprintf("stopped: %s tracks it", link("#"+strconv.Itoa(s.IssueNumber), s.IssueURL)))
	}
	if s.RunURL != "" {
		row("Run", link("log", s.RunURL))
	}
	if !s.At.IsZero() {
		row("When", s.At.UTC().Format(time.RFC3339))
	}
	b.WriteString("\n")
}

// fix says how to ship the fix while the line is stopped, for the readers
// of pull request pr (0: of the tracking issue).
func (s Story) fix(b *strings.Builder, pr Pull) {
	label := s.FixLabel
	if label == "" {
		label = "immune:fix"
	}
	bad := sha.Short(s.BadSHA)
	env := md(s.Environment, 0)
	b.WriteString("**How to ship the fix**\n\n")
	switch {
	case pr.Number != 0 && pr.Number == s.Blame.BadPull && sha.Same(pr.MergeCommitSHA, s.BadSHA):
		fmt.Fprintf(b, "- Revert this pull request with its **Revert** button: GitHub writes \"This reverts commit %s\", and the `immune` gate lets that revert through while the line is stopped.\n", bad)
	case pr.Number != 0:
		fmt.Fprintf(b, "- Reverting this pull request alone does not revert `%s`, the commit that was deployed, so the gate does not let it through by itself; a revert of `%s` (\"This reverts commit %s\") does.\n", bad, bad, bad)
	default:
		revert := fmt.Sprintf("- Revert `%s` (\"This reverts commit %s\", as `git revert` and GitHub's **Revert** button write it)", bad, bad)
		for _, p := range s.Blame.Pulls {
			if p.Number == s.Blame.BadPull && sha.Same(p.MergeCommitSHA, s.BadSHA) {
				revert += fmt.Sprintf(": the **Revert** button of #%d does it", p.Number)
			}
		}
		b.WriteString(revert + ".\n")
	}
	fmt.Fprintf(b, "- Or open the fix as a pull request with the label %s: the gate lets it through.\n\n", escape.Code(label, 0))
	switch {
	case pr.Number == 0:
		// The tracking issue says it itself.
	case s.IssueNumber != 0:
		fmt.Fprintf(b, "The next healthy deploy to %s clears the line and closes %s.\n\n", env, link("#"+strconv.Itoa(s.IssueNumber), s.IssueURL))
	default:
		fmt.Fprintf(b, "The next healthy deploy to %s clears the line.\n\n", env)
	}
}

// PullComment is the comment on pull request pr.
func PullComment(s Story, pr Pull) string {
	var b strings.Builder
	fmt.Fprintf(&b, "### %s\n\n", s.headline())
	author := pr.Author
	if author == "" {
		author = s.Blame.Author.Login
	}
	if author != "" {
		b.WriteString(mention(author) + ", ")
		b.WriteString(lower(s.what(pr)))
	} else {
		b.WriteString(s.what(pr))
	}
	b.WriteString("\n\n")
	if p := s.push(); p != "" {
		b.WriteString(p + "\n\n")
	}
	if s.Reason != "" && !manual(s.Kind) {
		fmt.Fprintf(&b, "> %s\n\n", md(s.Reason, maxReason))
	}
	s.facts(&b, false)
	if s.Chart != "" {
		b.WriteString(s.Chart)
	}
	s.fix(&b, pr)
	note := "updated, not repeated, when the run is re-run"
	if s.Kind == RollingBack {
		note = "updated when the rollback is confirmed"
	}
	fmt.Fprintf(&b, "<sub>Posted by immune for %s · this comment is %s.</sub>\n", link("this run", s.RunURL), note)
	return b.String()
}

// lower lowers the first letter of immune's own openings ("This pull
// request's change", "The push"); a sentence that opens with a name is
// left as it is.
func lower(s string) string {
	if !strings.HasPrefix(s, "This ") && !strings.HasPrefix(s, "The ") {
		return s
	}
	r, n := utf8.DecodeRuneInString(s)
	return strings.ToLower(string(r)) + s[n:]
}

// IssueTitle is the tracking issue's title: the environment, the bad
// commit and its author.
// GitHub shows a title as plain text, within maxTitle characters.
func IssueTitle(s Story) string {
	who := s.Blame.Author.show(escape.Title)
	bad := escape.Title(sha.Short(s.BadSHA), 0)
	env := escape.Title(s.Environment, 0)
	var title string
	switch s.Kind {
	case RollbackFailed:
		title = fmt.Sprintf("🚨 %s is stopped: %s by %s regressed and the rollback failed", env, bad, who)
	case NotRolledBack:
		title = fmt.Sprintf("⛔ %s is stopped: %s by %s regressed", env, bad, who)
	case ManualRollback:
		title = fmt.Sprintf("⛔ %s is stopped: %s by %s was rolled back by hand", env, bad, who)
	case ManualRollbackFailed:
		title = fmt.Sprintf("🚨 %s is stopped: the rollback by hand from %s by %s failed", env, bad, who)
	case Bisected:
		if b := s.Bisect; b != nil && !b.Named {
			title = fmt.Sprintf("⛔ %s is stopped: %s's batch regressed (%d suspects)", env, escape.Title(sha.Short(b.Head), 0), b.Suspects)
			break
		}
		title = fmt.Sprintf("⛔ %s is stopped: %s by %s regressed (found by bisection)", env, bad, who)
	default:
		title = fmt.Sprintf("⛔ %s is stopped: %s by %s was rolled back", env, bad, who)
	}
	return escape.Clip(title, maxTitle)
}

// IssueBody is the tracking issue's body, for the newest rollback.
func IssueBody(s Story) string {
	var b strings.Builder
	env := md(s.Environment, 0)
	fmt.Fprintf(&b, "## ⛔ The line is stopped on %s\n\n%s\n\n", env, s.issueSentence())
	if p := s.push(); p != "" {
		b.WriteString(p + "\n\n")
	}
	s.facts(&b, true)
	if s.Chart != "" {
		b.WriteString(s.Chart)
	}
	fmt.Fprintf(&b, "### Until the fix is deployed\n\nPull requests fail the `immune` gate of %s, except the fix.\n\n", env)
	s.fix(&b, Pull{})
	fmt.Fprintf(&b, "immune keeps this issue up to date: a further rollback updates it, and the next healthy deploy to %s closes it.\n", env)
	return b.String()
}

// issueSentence says what stopped the line.
func (s Story) issueSentence() string {
	bad := code(s.BadSHA, s.BadURL) + " by " + s.Blame.Author.markdown()
	to := code(s.RunningSHA, s.RunningURL)
	env := md(s.Environment, 0)
	by := "Someone"
	if s.Actor != "" {
		by = mention(s.Actor)
	}
	why := ""
	if s.Reason != "" {
		why = ": " + md(strings.TrimSuffix(s.Reason, "."), maxReason)
	}
	switch s.Kind {
	case RollbackFailed:
		return fmt.Sprintf("%s regressed on %s, and the rollback to %s failed: %s may be down.", bad, env, to, env)
	case NotRolledBack:
		return fmt.Sprintf("%s regressed on %s and was not rolled back: %s.", bad, env, md(s.NotRolledBack, maxReason))
	case ManualRollback:
		return fmt.Sprintf("%s rolled %s back by hand from %s to %s%s.", by, env, bad, to, why)
	case ManualRollbackFailed:
		return fmt.Sprintf("%s tried to roll %s back by hand from %s to %s, and the rollback failed: %s may be down.", by, env, bad, to, env)
	case Bisected:
		return s.bisected("the change "+bad, env, to)
	}
	return fmt.Sprintf("%s regressed on %s and was rolled back to %s.", bad, env, to)
}

// IssueUpdate is the comment on an open tracking issue about a further
// rollback.
func IssueUpdate(s Story) string {
	var b strings.Builder
	fmt.Fprintf(&b, "⏪ Stopped again: %s", s.issueSentence())
	if s.Reason != "" && !manual(s.Kind) {
		fmt.Fprintf(&b, " Why: %s.", md(strings.TrimSuffix(s.Reason, "."), maxReason))
	}
	if len(s.Blame.Pulls) > 0 {
		fmt.Fprintf(&b, " Pull requests: %s.", pulls(s.Blame.Pulls))
	}
	fmt.Fprintf(&b, " %s runs %s.", md(upper(s.Environment), 0), running(s))
	if s.RunURL != "" {
		fmt.Fprintf(&b, " %s.", link("Run", s.RunURL))
	}
	b.WriteString("\n")
	return b.String()
}

// IssueCleared is the comment that closes the tracking issue.
func IssueCleared(s Story) string {
	var b strings.Builder
	fmt.Fprintf(&b, "✅ %s was deployed to %s and watched healthy", code(s.RunningSHA, s.RunningURL), md(s.Environment, 0))
	if !s.At.IsZero() {
		fmt.Fprintf(&b, " at %s", s.At.UTC().Format(time.RFC3339))
	}
	if w := s.Watch; w != nil && w.Stats.Probes > 0 {
		fmt.Fprintf(&b, " (%d probes, %d failed, p95 %s)", w.Stats.Probes, w.Stats.Failed, FormatDuration(w.Stats.P95))
	}
	b.WriteString(": the line is clear again.")
	if s.RunURL != "" {
		fmt.Fprintf(&b, " %s.", link("Run", s.RunURL))
	}
	b.WriteString("\n")
	return b.String()
}

// maxChatReason bounds the reason in a chat message.
const maxChatReason = 300

// ChatText is the Slack-compatible text of a chat message about the
// story (plain URLs, which every chat links). Every piece from outside is
// escaped as Slack requires; immune's own words hold no &, < or >.
func ChatText(s Story) string {
	var b strings.Builder
	repo := escape.Slack(s.Repository, 0)
	if repo != "" {
		repo += ": "
	}
	env := escape.Slack(s.Environment, 0)
	bad, good := "`"+escape.Slack(sha.Short(s.BadSHA), 0)+"`", "`"+escape.Slack(sha.Short(s.RunningSHA), 0)+"`"
	by := ""
	if s.Blame.Author != (Person{}) {
		by = " by " + s.Blame.Author.show(escape.Slack)
		if s.Blame.BadPull != 0 {
			by += fmt.Sprintf(" (#%d)", s.Blame.BadPull)
		}
	}
	switch s.Kind {
	case RollingBack, NotRolledBack:
		fmt.Fprintf(&b, "❌ %s%s%s regressed on %s", repo, bad, by, env)
		if s.Reason != "" {
			b.WriteString(": " + escape.Slack(s.Reason, maxChatReason))
		}
		b.WriteString(".")
	case RolledBack:
		fmt.Fprintf(&b, "⏪ %s%s was rolled back from %s%s to %s, healthy again.", repo, env, bad, by, good)
	case RollbackFailed:
		fmt.Fprintf(&b, "🚨 %s%s%s regressed on %s and the rollback to %s failed: %s may be down.", repo, bad, by, env, good, env)
	case ManualRollback:
		fmt.Fprintf(&b, "⏪ %s%s was rolled back by hand from %s%s to %s.", repo, env, bad, by, good)
	case ManualRollbackFailed:
		fmt.Fprintf(&b, "🚨 %sthe rollback by hand of %s from %s to %s failed: %s may be down.", repo, env, bad, good, env)
	case Recovered:
		fmt.Fprintf(&b, "✅ %s%s is healthy on %s: the line is clear again.", repo, good, env)
	case WouldRollBack:
		fmt.Fprintf(&b, "🕶️ %s%s%s regressed on %s", repo, bad, by, env)
		if s.WouldHave != nil {
			fmt.Fprintf(&b, ": immune %s", escape.Slack(s.WouldHave.Text(), maxChatReason))
		}
		b.WriteString(". Shadow mode: nothing was done.")
	case Bisected:
		if bs := s.Bisect; bs != nil && !bs.Named {
			narrowed := fmt.Sprintf("a bisection narrowed it to %d commits", bs.Suspects)
			if bs.Stopped {
				narrowed = fmt.Sprintf("the bisection was stopped with %d commits in doubt", bs.Suspects)
			}
			fmt.Fprintf(&b, "🔎 %s`%s`'s batch regressed on %s and was rolled back; %s, from %s%s; %s runs %s.",
				repo, escape.Slack(sha.Short(bs.Head), 0), env, narrowed, bad, by, env, good)
			break
		}
		fmt.Fprintf(&b, "🔎 %s%s%s is what regressed %s (found by bisecting its batch, which was rolled back); %s runs %s.", repo, bad, by, env, env, good)
	}
	if s.IssueURL != "" && s.Kind != Recovered && s.Kind != RollingBack {
		fmt.Fprintf(&b, " The line is stopped: %s", escape.Slack(s.IssueURL, 0))
	}
	if s.RunURL != "" {
		fmt.Fprintf(&b, " Run: %s", escape.Slack(s.RunURL, 0))
	}
	return b.String()
}
