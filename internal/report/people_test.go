package report

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

const (
	olderSHA = "1a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d"
	runURL   = "https://github.com/octo-org/shop/actions/runs/7412345678"
	issueURL = "https://github.com/octo-org/shop/issues/45"
	// headSHA is the head of a bisected batch whose culprit is newSHA.
	headSHA = "e1f2a3b4c5d6e7f8091a2b3c4d5e6f7081920a1b"
)

// stories are the people-facing renderings' cases, built from the golden
// runs.
func stories() map[string]Story {
	rs := runs()
	rb, failed := rs["rolled-back"], rs["rollback-failed"]
	pull12 := Pull{Number: 12, Title: "Checkout: cache the tax table", URL: "https://github.com/octo-org/shop/pull/12", Author: "monalisa", MergeCommitSHA: newSHA}
	pull11 := Pull{Number: 11, Title: "Search: faster facets", URL: "https://github.com/octo-org/shop/pull/11", Author: "hubot", MergeCommitSHA: olderSHA}
	base := Story{
		Kind: RolledBack, Repository: "octo-org/shop", Environment: "production",
		BadSHA: newSHA, BadURL: rb.Links.Commit, RunningSHA: goodSHA, RunningURL: rb.Links.PreviousCommit,
		Reason: rb.Reason, Watch: rb.Watch, RollbackWatch: rb.RollbackWatch, Chart: Chart(rb),
		RunURL: runURL, Actor: "monalisa", FixLabel: "immune:fix", At: t0.Add(90 * time.Second),
		Blame:       Blame{Author: Person{Login: "monalisa"}, Pulls: []Pull{pull12}, BadPull: 12, Base: goodSHA, Commits: 1, Examined: 1},
		IssueNumber: 45, IssueURL: issueURL,
	}
	push := base
	push.Blame = Blame{Author: Person{Login: "monalisa"}, Pulls: []Pull{pull12, pull11}, BadPull: 12, Base: goodSHA, Commits: 3, Examined: 3}
	capped := push
	capped.Blame.Commits, capped.Blame.Examined, capped.Blame.Capped = 57, 20, true

	rolling := base
	rolling.Kind, rolling.RollbackWatch, rolling.IssueNumber, rolling.IssueURL = RollingBack, nil, 0, ""
	noRollback := *rb
	noRollback.RollbackWatch = nil
	rolling.Chart = Chart(&noRollback)

	fail := base
	fail.Kind, fail.Reason, fail.Watch, fail.RollbackWatch = RollbackFailed, failed.Reason, failed.Watch, failed.RollbackWatch
	fail.Chart = Chart(failed)
	fail.Blame = Blame{Author: Person{Name: "Mona Lisa"}, Base: goodSHA, Commits: 1, Examined: 1}

	notBack := base
	notBack.Kind, notBack.RollbackWatch, notBack.NotRolledBack = NotRolledBack, nil, "auto-rollback is false"

	manual := base
	manual.Kind, manual.Reason, manual.Watch, manual.Actor = ManualRollback, "checkout totals are wrong", nil, "hubot"
	manual.Chart = ""

	recovered := Story{Kind: Recovered, Repository: "octo-org/shop", Environment: "production",
		RunningSHA: olderSHA, RunningURL: "https://github.com/octo-org/shop/commit/" + olderSHA,
		Watch: rs["healthy"].Watch, RunURL: runURL, At: t0.Add(time.Hour)}
	shadow := rolling
	shadow.Kind, shadow.Reason, shadow.WouldHave = WouldRollBack, rs["shadow"].Reason, rs["shadow"].WouldHave
	bs := rs["bisected"]
	bisected := base
	bisected.Kind, bisected.BadSHA, bisected.BadURL = Bisected, newSHA, rb.Links.Commit
	bisected.RunningSHA, bisected.RunningURL = shippedSHA, "https://github.com/octo-org/shop/commit/"+shippedSHA
	bisected.Watch, bisected.Reason, bisected.RollbackWatch = bs.Bisect.Steps[1].Watch, bs.Bisect.Steps[1].Watch.Reason, nil
	bisected.Chart = BisectChart(bs)
	bisected.Bisect = &BisectStory{Head: headSHA, Commits: 4, Steps: 2, Named: true, Shipped: true}
	suspects := bisected
	suspects.Bisect = &BisectStory{Head: headSHA, Commits: 8, Steps: 2, Suspects: 3, Shipped: true}
	suspects.Blame = Blame{Author: Person{Login: "monalisa"}, Pulls: []Pull{pull12, pull11}, BadPull: 12, Base: goodSHA, Commits: 3, Examined: 3}
	// Cancelled after the two steps of the chart, before the third: three
	// commits are still suspects, nothing shipped, and production runs
	// what it ran before the batch.
	stopped := suspects
	stopped.RunningSHA, stopped.RunningURL = goodSHA, "https://github.com/octo-org/shop/commit/"+goodSHA
	stopped.Bisect = &BisectStory{Head: headSHA, Commits: 8, Steps: 2, Suspects: 3, Stopped: true}
	return map[string]Story{
		"bisect-stopped": stopped,
		"rolled-back":    base, "push-of-three": push, "capped": capped, "rolling-back": rolling,
		"rollback-failed": fail, "not-rolled-back": notBack, "manual": manual, "recovered": recovered, "would-roll-back": shadow,
		"bisected": bisected, "bisected-suspects": suspects,
	}
}

func TestPullCommentGolden(t *testing.T) {
	ss := stories()
	for _, name := range []string{"rolled-back", "rolling-back", "rollback-failed", "not-rolled-back", "manual", "bisected", "bisected-suspects", "bisect-stopped"} {
		t.Run(name, func(t *testing.T) {
			s := ss[name]
			pr := Pull{Number: 12, Author: "monalisa", MergeCommitSHA: newSHA}
			if len(s.Blame.Pulls) == 0 {
				pr = Pull{}
			}
			golden(t, "comment-"+name+".md", PullComment(s, pr))
		})
	}
	// A push of three commits from two pull requests: each is told, and
	// only the one whose merge deployed the bad commit is told to revert.
	push := ss["push-of-three"]
	golden(t, "comment-push-of-three-12.md", PullComment(push, push.Blame.Pulls[0]))
	golden(t, "comment-push-of-three-11.md", PullComment(push, push.Blame.Pulls[1]))
	golden(t, "comment-capped.md", PullComment(ss["capped"], ss["capped"].Blame.Pulls[1]))
}

func TestIssueGolden(t *testing.T) {
	ss := stories()
	for _, name := range []string{"rolled-back", "push-of-three", "rollback-failed", "manual", "bisected", "bisected-suspects", "bisect-stopped"} {
		t.Run(name, func(t *testing.T) {
			s := ss[name]
			golden(t, "issue-"+name+".md", "# "+IssueTitle(s)+"\n\n"+IssueBody(s))
		})
	}
	golden(t, "issue-update.md", IssueUpdate(ss["push-of-three"]))
	golden(t, "issue-cleared.md", IssueCleared(ss["recovered"]))
}

func TestChatTextGolden(t *testing.T) {
	ss := stories()
	var b strings.Builder
	for _, name := range []string{"rolling-back", "rolled-back", "rollback-failed", "not-rolled-back", "manual", "recovered", "would-roll-back", "bisected", "bisected-suspects", "bisect-stopped"} {
		fmt.Fprintf(&b, "%s: %s\n", name, ChatText(ss[name]))
	}
	golden(t, "chat.txt", b.String())
}

// Every body names what the issue asks for: the author, the bad commit,
// what runs now, the run, and how to ship the fix; no body nears GitHub's
// 65,536-character limit.
func TestStoriesSayWhatMatters(t *testing.T) {
	for name, s := range stories() {
		if s.Kind == Recovered {
			continue
		}
		c := PullComment(s, Pull{Number: 12, Author: "monalisa", MergeCommitSHA: newSHA})
		for _, want := range []string{"@monalisa", "`4d8b3f2`", "`9f2c1e7`", runURL, "`immune:fix`"} {
			if want == "`9f2c1e7`" && (s.Kind == NotRolledBack || s.Kind == Bisected) {
				continue // nothing was rolled back to it, or the good part shipped
			}
			if !strings.Contains(c, want) {
				t.Errorf("%s: the comment lacks %q", name, want)
			}
		}
		if s.Kind != RollingBack && s.Kind != ManualRollback && !strings.Contains(c, "xychart-beta") {
			t.Errorf("%s: the comment has no chart", name)
		}
		title := IssueTitle(s)
		if s.Bisect != nil && !s.Bisect.Named {
			// No culprit: the batch's head and how many are in doubt.
			if !strings.Contains(title, fmt.Sprintf("e1f2a3b's batch regressed (%d suspects)", s.Bisect.Suspects)) {
				t.Errorf("%s: issue title %q", name, title)
			}
		} else if !strings.Contains(title, "production") || !strings.Contains(title, "4d8b3f2") || !strings.Contains(title, s.Blame.Author.String()) {
			t.Errorf("%s: issue title %q", name, title)
		}
		if n := len(c) + len(IssueBody(s)); n > 20000 {
			t.Errorf("%s: %d characters", name, n)
		}
	}
}

// TestStoriesOfMetricWatches: a rollback judged by metrics alone says what
// its metrics saw, and one whose watch was inconclusive never says healthy.
func TestStoriesOfMetricWatches(t *testing.T) {
	rs := runs()
	s := stories()["rolled-back"]
	s.RollbackWatch = rs["metrics-rolled-back"].RollbackWatch
	if c := PullComment(s, Pull{Number: 12, Author: "monalisa"}); !strings.Contains(c, "healthy again (metric http-errors: 0 of 2750 requests failed") {
		t.Errorf("a rollback confirmed by metrics:\n%s", c)
	}
	inconclusive := *s.RollbackWatch
	inconclusive.Verdict, inconclusive.Reason = "inconclusive", "not judged: metric http-errors: no look had data (the last: unreachable)"
	s.RollbackWatch = &inconclusive
	c := PullComment(s, Pull{Number: 12, Author: "monalisa"})
	if strings.Contains(c, "healthy again") || !strings.Contains(c, "but not confirmed healthy: its watch was inconclusive") {
		t.Errorf("a rollback whose watch was inconclusive:\n%s", c)
	}
}
