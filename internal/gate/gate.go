// Package gate decides whether a pull request may merge while the line is
// stopped. It is a pure function of what GitHub says (the line, the pull
// request's labels and commits): the orchestration reads those, this
// package decides.
package gate

import (
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/immune-cd/immune/internal/recorder"
	"github.com/immune-cd/immune/internal/run"
	"github.com/immune-cd/immune/internal/sha"
)

// Input is what the gate decides on.
type Input struct {
	Environment string
	FixLabel    string
	Line        recorder.Line
	// PullRequest is the pull request's number, 0 when the event names
	// none; then PullRequestErr says why.
	PullRequest    int
	PullRequestErr error
	// Labels and Commits of the pull request; LabelsErr and CommitsErr
	// when they could not be read. Commits are read only when the labels
	// do not let it through.
	Labels     []string
	LabelsErr  error
	Commits    []recorder.Commit
	CommitsErr error
	// IssueURL links the environment's open tracking issue, when known.
	IssueURL string
}

// Decision is the gate's verdict, with what a person needs to act on it.
type Decision struct {
	Verdict run.Verdict // Clear, Stopped or FixAllowed
	// Reason says why, in words, with what to do next when it is closed.
	Reason string
	// Allowed says why a stopped line let the pull request through.
	Allowed string
	// Stopped says what stopped the line: "production was rolled back from
	// a to b at <time> (<run>)".
	Stopped string
}

// Closed reports whether the check fails.
func (d Decision) Closed() bool { return d.Verdict == run.Stopped }

// NeedsCommits reports whether the decision depends on the pull request's
// commits: the line is stopped by a known commit and no fix label lets the
// pull request through.
func NeedsCommits(in Input) bool {
	return in.Line.Stopped && in.PullRequest != 0 && in.LabelsErr == nil && !slices.Contains(in.Labels, in.FixLabel) && in.Line.BadSHA != ""
}

// Decide decides.
func Decide(in Input) Decision {
	l := in.Line
	if !l.Stopped {
		if l.Newest.ID == 0 {
			return Decision{Verdict: run.Clear, Reason: fmt.Sprintf("%s has no deployments yet", in.Environment)}
		}
		state := recorder.StateName(l.Newest.State)
		if strings.HasPrefix(l.Newest.Description, recorder.Inconclusive) {
			state = "inconclusive: not judged healthy, but not seen to regress either"
		}
		return Decision{Verdict: run.Clear, Reason: fmt.Sprintf("the newest deployment of %s (%s, %s) is %s",
			in.Environment, sha.Short(l.Newest.SHA), l.Newest.Task, state)}
	}
	stopped := fmt.Sprintf("%s %s at %s", in.Environment, l.How, l.Newest.CreatedAt.UTC().Format(time.RFC3339))
	if l.RunURL != "" {
		stopped += " (" + l.RunURL + ")"
	}
	if in.IssueURL != "" {
		stopped += "; tracking issue: " + in.IssueURL
	}
	howTo := fmt.Sprintf("To merge the fix, add the label %q to its pull request", in.FixLabel)
	if l.BadSHA != "" {
		howTo += fmt.Sprintf(", or revert %s (GitHub's revert button writes \"This reverts commit %s\")", sha.Short(l.BadSHA), l.BadSHA)
	}
	howTo += "."
	closed := func(why string) Decision {
		return Decision{Verdict: run.Stopped, Stopped: stopped, Reason: why + " " + howTo}
	}
	open := func(why string) Decision {
		return Decision{Verdict: run.FixAllowed, Stopped: stopped, Allowed: why,
			Reason: fmt.Sprintf("%s, but %s, so it may go through as the fix", stopped, why)}
	}
	pr := in.PullRequest
	switch {
	case pr == 0:
		return closed(fmt.Sprintf("%s. %v.", stopped, in.PullRequestErr))
	case in.LabelsErr != nil:
		return closed(fmt.Sprintf("%s. Cannot read the labels of #%d, so the gate fails closed: %v.", stopped, pr, in.LabelsErr))
	case slices.Contains(in.Labels, in.FixLabel):
		return open(fmt.Sprintf("#%d carries the label %q", pr, in.FixLabel))
	case l.BadSHA == "":
		return closed(fmt.Sprintf("%s; the commit that stopped it is unknown, so only the label lets #%d through.", stopped, pr))
	case in.CommitsErr != nil:
		return closed(fmt.Sprintf("%s. Cannot read the commits of #%d, so the gate fails closed: %v.", stopped, pr, in.CommitsErr))
	}
	for _, c := range in.Commits {
		if Reverts(c.Message, l.BadSHA) {
			return open(fmt.Sprintf("commit %s of #%d reverts %s", sha.Short(c.SHA), pr, sha.Short(l.BadSHA)))
		}
	}
	return closed(fmt.Sprintf("%s; #%d is not marked as a fix.", stopped, pr))
}

var revertPattern = regexp.MustCompile(`This reverts commit ([0-9a-fA-F]{7,40})`)

// Reverts reports whether a commit message reverts bad, as GitHub's revert
// button and git revert write it.
func Reverts(message, bad string) bool {
	for _, m := range revertPattern.FindAllStringSubmatch(message, -1) {
		if sha.Same(m[1], bad) {
			return true
		}
	}
	return false
}
