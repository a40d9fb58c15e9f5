package ghapi

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/google/go-github/v60/github"

	"github.com/immune-cd/immune/internal/sha"
)

// CommitStatus is a commit status to set.
type CommitStatus struct {
	SHA         string
	State       string // pending, success, failure or error
	Context     string // GitHub's default is "default"; set one
	Description string // truncated to 140 characters
	TargetURL   string
}

// Commit is a commit of a pull request.
type Commit struct {
	SHA     string
	Message string
}

// PullRequest is a pull request associated with a commit.
type PullRequest struct {
	Number  int
	Title   string
	State   string // open or closed
	Merged  bool
	HeadRef string
	HeadSHA string
	BaseRef string
	Labels  []string
	HTMLURL string
	// Author is the login of who opened it; MergeCommitSHA the commit its
	// merge put on the base branch.
	Author         string
	MergeCommitSHA string
}

const (
	// maxPullCommits is how many commits GitHub lists for a pull request.
	maxPullCommits = 250
	// maxLabelPages bounds label paging (1000 labels).
	maxLabelPages = 10
)

// SetCommitStatus sets a commit status on s.SHA.
func (c *Client) SetCommitStatus(ctx context.Context, s CommitStatus) error {
	st := &github.RepoStatus{State: github.String(s.State)}
	if s.Context != "" {
		st.Context = github.String(s.Context)
	}
	if s.Description != "" {
		st.Description = github.String(TruncateDescription(s.Description))
	}
	if s.TargetURL != "" {
		st.TargetURL = github.String(s.TargetURL)
	}
	_, _, err := c.gh().Repositories.CreateStatus(ctx, c.owner, c.repo, s.SHA, st)
	return c.wrap(err, access{op: "create commit status", permission: "statuses: write", notFound: true},
		"set commit status %q of %s to %s", s.Context, sha.Short(s.SHA), s.State)
}

// ResolveCommit returns the full SHA of ref (a SHA, a unique SHA prefix, a
// branch or a tag). When GitHub does not know the commit, the error wraps
// ErrNoSuchCommit.
func (c *Client) ResolveCommit(ctx context.Context, ref string) (string, error) {
	if strings.TrimSpace(ref) == "" {
		return "", errors.New("resolve commit: empty ref")
	}
	full, _, err := c.gh().Repositories.GetCommitSHA1(ctx, c.owner, c.repo, ref, "")
	if err != nil {
		var ger *github.ErrorResponse
		if errors.As(err, &ger) {
			switch statusOf(ger.Response) {
			case http.StatusUnprocessableEntity:
				return "", c.hide(fmt.Errorf("resolve commit %q: %w in %s (GitHub: %s)",
					ref, ErrNoSuchCommit, c.Repository(), ger.Message))
			case http.StatusNotFound:
				return "", c.hide(fmt.Errorf("resolve commit %q: %w in %s, or the token cannot read it "+
					"(GitHub answered 404; the workflow needs \"contents: read\")", ref, ErrNoSuchCommit, c.Repository()))
			}
		}
		return "", c.wrap(err, access{op: "get commit", permission: "contents: read"}, "resolve commit %q", ref)
	}
	full = strings.ToLower(strings.TrimSpace(full))
	if !sha.IsFull(full) {
		return "", fmt.Errorf("resolve commit %q: GitHub answered %q, not a commit id", ref, sha.Short(full))
	}
	return full, nil
}

const pullsRead = "pull-requests: read"

// PullRequestLabels returns the names of a pull request's labels.
func (c *Client) PullRequestLabels(ctx context.Context, number int) ([]string, error) {
	opts := &github.ListOptions{PerPage: perPage}
	var names []string
	for page := 0; page < maxLabelPages; page++ {
		labels, resp, err := c.gh().Issues.ListLabelsByIssue(ctx, c.owner, c.repo, number, opts)
		if err != nil {
			return nil, c.wrap(err, access{op: "list pull request labels", permission: pullsRead, item: fmt.Sprintf("pull request #%d", number)},
				"list labels of pull request #%d", number)
		}
		for _, l := range labels {
			names = append(names, l.GetName())
		}
		if resp.NextPage == 0 {
			break
		}
		opts.Page = resp.NextPage
	}
	return names, nil
}

// PullRequestCommits returns a pull request's commits, oldest first; like
// GitHub, at most 250.
func (c *Client) PullRequestCommits(ctx context.Context, number int) ([]Commit, error) {
	opts := &github.ListOptions{PerPage: perPage}
	var out []Commit
	for len(out) < maxPullCommits {
		commits, resp, err := c.gh().PullRequests.ListCommits(ctx, c.owner, c.repo, number, opts)
		if err != nil {
			return nil, c.wrap(err, access{op: "list pull request commits", permission: pullsRead, item: fmt.Sprintf("pull request #%d", number)},
				"list commits of pull request #%d", number)
		}
		for _, rc := range commits {
			out = append(out, Commit{SHA: rc.GetSHA(), Message: rc.GetCommit().GetMessage()})
		}
		if resp.NextPage == 0 || len(commits) == 0 {
			break
		}
		opts.Page = resp.NextPage
	}
	if len(out) > maxPullCommits {
		out = out[:maxPullCommits]
	}
	return out, nil
}

// PullRequestsForCommit returns the pull requests associated with a commit
// (at most 100). For a commit on the default branch GitHub lists the merged
// pull request that introduced it; for another commit, the merged and open
// pull requests that contain it.
func (c *Client) PullRequestsForCommit(ctx context.Context, commit string) ([]PullRequest, error) {
	prs, _, err := c.gh().PullRequests.ListPullRequestsWithCommit(ctx, c.owner, c.repo, commit, &github.ListOptions{PerPage: perPage})
	if err != nil {
		return nil, c.wrap(err, access{op: "list pull requests for commit", permission: pullsRead},
			"list pull requests of commit %s", sha.Short(commit))
	}
	out := make([]PullRequest, 0, len(prs))
	for _, p := range prs {
		pr := PullRequest{
			Number: p.GetNumber(),
			Title:  p.GetTitle(),
			State:  p.GetState(),
			// Lists answer in the simple shape, without "merged": a
			// merged pull request is one with a merge time.
			Merged:  p.MergedAt != nil,
			HeadRef: p.GetHead().GetRef(),
			HeadSHA: p.GetHead().GetSHA(),
			BaseRef: p.GetBase().GetRef(),
			HTMLURL: p.GetHTMLURL(),
			Author:  p.GetUser().GetLogin(),

			MergeCommitSHA: p.GetMergeCommitSHA(),
		}
		for _, l := range p.Labels {
			pr.Labels = append(pr.Labels, l.GetName())
		}
		out = append(out, pr)
	}
	return out, nil
}
