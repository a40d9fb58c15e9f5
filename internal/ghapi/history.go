package ghapi

import (
	"context"
	"fmt"
	"sort"
	"time"

	"github.com/google/go-github/v60/github"

	"github.com/immune-cd/immune/internal/sha"
)

// Status is one deployment status.
type Status struct {
	ID          int64
	State       string // error, failure, inactive, in_progress, queued, pending or success
	Description string
	CreatedAt   time.Time
	LogURL      string
}

// maxStatusPages bounds how many pages of one deployment's statuses are
// read (1000 statuses; immune sets four at most, and GitHub adds one when
// it marks a deployment inactive).
const maxStatusPages = 10

// DeploymentStatuses returns every status of deployment id, newest first
// by id, wherever GitHub lists them.
func (c *Client) DeploymentStatuses(ctx context.Context, id int64) ([]Status, error) {
	opts := &github.ListOptions{PerPage: perPage}
	var out []Status
	for page := 0; page < maxStatusPages; page++ {
		ss, resp, err := c.gh().Repositories.ListDeploymentStatuses(ctx, c.owner, c.repo, id, opts)
		if err != nil {
			a := access{op: "list deployment statuses", permission: "deployments: read", item: fmt.Sprintf("deployment %d", id)}
			return nil, c.wrap(err, a, "read the statuses of deployment %d", id)
		}
		for _, s := range ss {
			st := Status{ID: s.GetID(), State: s.GetState(), Description: s.GetDescription(), CreatedAt: s.GetCreatedAt().Time, LogURL: s.GetLogURL()}
			if st.LogURL == "" {
				st.LogURL = s.GetTargetURL()
			}
			out = append(out, st)
		}
		if resp.NextPage == 0 || len(ss) == 0 {
			break
		}
		opts.Page = resp.NextPage
	}
	sort.SliceStable(out, func(i, j int) bool { return out[i].ID > out[j].ID })
	return out, nil
}

// CommitTime returns when a commit was committed (its committer date: when
// it was made on, or rebased or squashed onto, its branch).
func (c *Client) CommitTime(ctx context.Context, commit string) (time.Time, error) {
	rc, _, err := c.gh().Repositories.GetCommit(ctx, c.owner, c.repo, commit, &github.ListOptions{PerPage: 1})
	if err != nil {
		return time.Time{}, c.wrap(err, access{op: "get commit", permission: "contents: read", item: "commit " + sha.Short(commit)},
			"read commit %s", sha.Short(commit))
	}
	when := rc.GetCommit().GetCommitter().GetDate().Time
	if when.IsZero() {
		when = rc.GetCommit().GetAuthor().GetDate().Time
	}
	if when.IsZero() {
		return time.Time{}, fmt.Errorf("read commit %s: GitHub gave no date", sha.Short(commit))
	}
	return when, nil
}
