// Package event reads what a run needs from the GitHub Actions context and
// the event payload: who started it, which run it is, the push's before and
// whether it deleted its ref, and which pull request a gate check is for.
// Every value taken from the payload is validated here, once.
package event

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"github.com/sethvargo/go-githubactions"

	"github.com/immune-cd/immune/internal/sha"
)

// Event is the part of the run's context immune uses.
type Event struct {
	Name       string // GITHUB_EVENT_NAME
	Repository string // owner/name
	ServerURL  string
	Actor      string
	RunID      int64
	RunAttempt int
	// Ref is the branch or tag the run is for: a push's ref, else
	// GITHUB_REF_NAME.
	Ref string

	// Before is a push's before, when it is a full commit id other than
	// all zeros (a new branch has no before).
	Before string
	// Deleted is true for a push that deleted its branch or tag.
	Deleted bool

	// PullRequest is the pull request a gate check runs for; 0 when the
	// event names none, and then PullRequestErr says why.
	PullRequest    int
	PullRequestErr error
}

// RunURL links to this workflow run, "" outside one.
func (e Event) RunURL() string {
	if e.Repository == "" || e.RunID == 0 {
		return ""
	}
	return e.web() + "/actions/runs/" + strconv.FormatInt(e.RunID, 10)
}

// CommitURL links to a commit's page, "" when the repository or the
// commit is not known.
func (e Event) CommitURL(commit string) string {
	if e.Repository == "" || commit == "" {
		return ""
	}
	return e.web() + "/commit/" + commit
}

// DeploymentsURL links to the repository's deployments page.
func (e Event) DeploymentsURL() string {
	if e.Repository == "" {
		return ""
	}
	return e.web() + "/deployments"
}

// web is the repository's web root.
func (e Event) web() string {
	root := strings.TrimRight(strings.TrimSpace(e.ServerURL), "/")
	if root == "" {
		root = "https://github.com"
	}
	return root + "/" + e.Repository
}

// From reads an Event from the actions library's context.
func From(c *githubactions.GitHubContext) Event {
	e := Event{
		Name:       c.EventName,
		Repository: c.Repository,
		ServerURL:  c.ServerURL,
		Actor:      c.Actor,
		RunID:      c.RunID,
		RunAttempt: int(c.RunAttempt),
		Ref:        c.RefName,
	}
	if e.Name == "push" {
		if before, _ := c.Event["before"].(string); sha.IsFull(before) && !sha.IsZero(before) {
			e.Before = before
		}
		e.Deleted, _ = c.Event["deleted"].(bool)
		if ref, _ := c.Event["ref"].(string); ref != "" {
			e.Ref = strings.TrimPrefix(strings.TrimPrefix(ref, "refs/heads/"), "refs/tags/")
		}
	}
	e.PullRequest, e.PullRequestErr = pullRequest(c.EventName, c.Event)
	return e
}

var mergeQueueRef = regexp.MustCompile(`/pr-(\d+)-[0-9a-fA-F]+$`)

// pullRequest finds the pull request of the event: pull_request(_target)
// carries it; a merge_group names it in its head ref
// (refs/heads/gh-readonly-queue/main/pr-123-<sha>).
func pullRequest(name string, ev map[string]any) (int, error) {
	switch name {
	case "pull_request", "pull_request_target":
		if pr, ok := ev["pull_request"].(map[string]any); ok {
			if n, ok := pr["number"].(float64); ok && n > 0 && n == float64(int(n)) {
				return int(n), nil
			}
		}
		if n, ok := ev["number"].(float64); ok && n > 0 && n == float64(int(n)) {
			return int(n), nil
		}
		return 0, fmt.Errorf("the %s event names no pull request", name)
	case "merge_group":
		mg, _ := ev["merge_group"].(map[string]any)
		ref, _ := mg["head_ref"].(string)
		if m := mergeQueueRef.FindStringSubmatch(ref); m != nil {
			if n, err := strconv.Atoi(m[1]); err == nil && n > 0 {
				return n, nil
			}
		}
		return 0, fmt.Errorf("cannot find the pull request in the merge group's head_ref %q", ref)
	}
	return 0, fmt.Errorf("gate mode needs a pull_request, pull_request_target or merge_group event to know the pull request (this is %q)", name)
}
