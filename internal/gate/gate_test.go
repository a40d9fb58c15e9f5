package gate

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/immune-cd/immune/internal/recorder"
	"github.com/immune-cd/immune/internal/run"
)

const (
	bad  = "4d8b3f2e1c0a9b8c7d6e5f4a3b2c1d0e9f8a7b6c"
	good = "9f2c1e7a3b4d5c6e7f8091a2b3c4d5e6f7081920"
)

func TestDecide(t *testing.T) {
	t.Parallel()
	at := time.Date(2026, 11, 25, 10, 9, 41, 0, time.UTC)
	stopped := recorder.Line{Stopped: true, BadSHA: bad, How: "was rolled back from 4d8b3f2 to 9f2c1e7",
		Newest: recorder.Deployment{ID: 4, SHA: good, Task: recorder.TaskRollback, CreatedAt: at}, RunURL: "https://x/runs/1"}
	unknown := stopped
	unknown.BadSHA, unknown.How = "", "was rolled back by hand or by another tool to 9f2c1e7"
	revert := []recorder.Commit{{SHA: "aaaaaaa1", Message: "Revert \"Checkout: cache\"\n\nThis reverts commit " + bad + "."}}
	other := []recorder.Commit{{SHA: "bbbbbbb2", Message: "Fix the cache"}}
	tests := []struct {
		name        string
		in          Input
		want        run.Verdict
		reason      string
		needCommits bool
	}{
		{"no deployments", Input{}, run.Clear, "production has no deployments yet", false},
		{"healthy newest", Input{Line: recorder.Line{Newest: recorder.Deployment{ID: 1, SHA: good, Task: recorder.TaskDeploy, State: "success"}}}, run.Clear,
			"the newest deployment of production (9f2c1e7, deploy) is success", false},
		{"inconclusive newest", Input{Line: recorder.Line{Newest: recorder.Deployment{ID: 1, SHA: good, Task: recorder.TaskDeploy, State: "error",
			Description: recorder.Inconclusive + "metric http-errors counted 4 requests"}}}, run.Clear,
			"the newest deployment of production (9f2c1e7, deploy) is inconclusive: not judged healthy, but not seen to regress either", false},
		{"no pull request", Input{Line: stopped, PullRequestErr: errors.New("the push event names no pull request")}, run.Stopped,
			"production was rolled back from 4d8b3f2 to 9f2c1e7 at 2026-11-25T10:09:41Z (https://x/runs/1). the push event names no pull request.", false},
		{"labels unreadable", Input{Line: stopped, PullRequest: 7, LabelsErr: errors.New("403")}, run.Stopped, "Cannot read the labels of #7, so the gate fails closed: 403.", false},
		{"labelled", Input{Line: stopped, PullRequest: 7, Labels: []string{"bug", "immune:fix"}}, run.FixAllowed, "but #7 carries the label \"immune:fix\", so it may go through as the fix", false},
		{"a revert", Input{Line: stopped, PullRequest: 7, Commits: revert}, run.FixAllowed, "but commit aaaaaaa of #7 reverts 4d8b3f2", true},
		{"not a fix", Input{Line: stopped, PullRequest: 7, Commits: other}, run.Stopped, "#7 is not marked as a fix. To merge the fix, add the label \"immune:fix\" to its pull request, or revert 4d8b3f2 (GitHub's revert button writes \"This reverts commit " + bad + "\").", true},
		{"commits unreadable", Input{Line: stopped, PullRequest: 7, CommitsErr: errors.New("502")}, run.Stopped, "Cannot read the commits of #7, so the gate fails closed: 502.", true},
		{"the tracking issue is linked", Input{Line: stopped, PullRequest: 7, Commits: other, IssueURL: "https://github.com/o/r/issues/45"}, run.Stopped,
			"at 2026-11-25T10:09:41Z (https://x/runs/1); tracking issue: https://github.com/o/r/issues/45; #7 is not marked as a fix.", true},
		{"bad commit unknown: only the label helps", Input{Line: unknown, PullRequest: 7, Commits: revert}, run.Stopped, "the commit that stopped it is unknown, so only the label lets #7 through. To merge the fix, add the label \"immune:fix\" to its pull request.", false},
	}
	for _, tt := range tests {
		tt.in.Environment, tt.in.FixLabel = "production", "immune:fix"
		d := Decide(tt.in)
		if d.Verdict != tt.want || !strings.Contains(d.Reason, tt.reason) {
			t.Errorf("%s: %s %q; want %s containing %q", tt.name, d.Verdict, d.Reason, tt.want, tt.reason)
		}
		if got := NeedsCommits(tt.in); got != tt.needCommits {
			t.Errorf("%s: NeedsCommits = %v, want %v", tt.name, got, tt.needCommits)
		}
	}
}

func TestReverts(t *testing.T) {
	t.Parallel()
	tests := []struct {
		msg  string
		want bool
	}{
		{"This reverts commit " + bad + ".", true},
		{"Revert\n\nThis reverts commit " + bad[:7] + ".", true},
		{"This reverts commit " + strings.ToUpper(bad[:12]), true},
		{"This reverts commit " + good + ".", false},
		{"reverts " + bad, false},
	}
	for _, tt := range tests {
		if got := Reverts(tt.msg, bad); got != tt.want {
			t.Errorf("Reverts(%q) = %v", tt.msg, got)
		}
	}
}
