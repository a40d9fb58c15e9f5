package ghapi

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"unicode/utf8"

	"github.com/google/go-github/v60/github"

	"github.com/immune-cd/immune/internal/sha"
)

// The permissions the issue endpoints need of a workflow token. A pull
// request's conversation is an issue's: commenting there takes
// "pull-requests: write" (or "issues: write"); opening, editing and listing
// issues takes "issues".
const (
	PullsWrite  = "pull-requests: write"
	IssuesWrite = "issues: write"
	IssuesRead  = "issues: read"
)

// ErrIssuesDisabled is wrapped when the repository has issues turned off
// (GitHub answers 410 Gone).
var ErrIssuesDisabled = errors.New("issues are disabled in this repository")

// IssueComment is a comment on an issue or on a pull request's
// conversation.
type IssueComment struct {
	ID      int64
	Body    string
	Author  string // login
	HTMLURL string
}

// Issue is an issue.
type Issue struct {
	Number  int
	Title   string
	Body    string
	State   string // open or closed
	Labels  []string
	HTMLURL string
	Author  string // login of who opened it
}

// IssueEdit changes an issue; nil fields are left as they are.
type IssueEdit struct {
	Title, Body *string
	State       *string // open or closed
	StateReason *string // completed, not_planned or reopened
}

// Comparison is what lies between two commits.
type Comparison struct {
	Status       string // ahead, behind, diverged or identical
	AheadBy      int
	BehindBy     int
	TotalCommits int
	// Commits are the commits of head that base lacks, oldest first; at
	// most the newest 250 (GitHub's limit without paging).
	Commits []CommitInfo
}

// CommitInfo is a commit with its author.
type CommitInfo struct {
	SHA     string
	Message string
	// AuthorLogin is the GitHub account of the commit's author, "" when
	// GitHub cannot link the git author to one; AuthorName is git's.
	AuthorLogin string
	AuthorName  string
	// Parents are the commit's parents, the first one first.
	Parents []string
}

// maxCommentPages bounds the pages of comments read to find one (10,000
// comments).
const maxCommentPages = 100

// MaxBody is GitHub's limit on the body of an issue or a comment, in
// characters: a longer one is refused with 422.
const MaxBody = 65536

// cutNote ends a body that FitBody cut.
const cutNote = "\n\n*… cut here: GitHub keeps at most 65,536 characters. The run's log and report have the rest.*\n"

// FitBody returns body within MaxBody characters: as it is when it fits,
// else cut at the end of a line, with a fence it leaves open closed, and a
// note saying so. The writes of issues and comments fit their bodies, so
// that nothing immune writes is refused for its length.
func FitBody(body string) string {
	if utf8.RuneCountInString(body) <= MaxBody {
		return body
	}
	room := MaxBody - utf8.RuneCountInString(cutNote) - len("\n```")
	cut, n := len(body), 0
	for i := range body {
		if n == room {
			cut = i
			break
		}
		n++
	}
	kept := body[:cut]
	if nl := strings.LastIndexByte(kept, '\n'); nl > 0 {
		kept = kept[:nl]
	}
	fences := 0
	for _, line := range strings.Split(kept, "\n") {
		if strings.HasPrefix(strings.TrimLeft(line, " "), "```") {
			fences++
		}
	}
	if fences%2 == 1 {
		kept += "\n```"
	}
	return kept + cutNote
}

// CompareCommits lists the commits between base and head (git log
// base..head), oldest first: unpaged, as GitHub lists at most the newest
// 250, which is what a rollback's blame needs.
func (c *Client) CompareCommits(ctx context.Context, base, head string) (Comparison, error) {
	cmp, _, err := c.compare(ctx, base, head, nil)
	if err != nil {
		return Comparison{}, err
	}
	return cmp, nil
}

// ErrTooManyCommits is returned by CompareAll when base..head holds more
// commits than asked for.
var ErrTooManyCommits = errors.New("too many commits")

// CompareAll lists every commit between base and head, oldest first, a page
// of 100 at a time (unpaged, GitHub lists 250 at most); more than max is
// ErrTooManyCommits, found from the first page's total.
func (c *Client) CompareAll(ctx context.Context, base, head string, max int) (Comparison, error) {
	opts := &github.ListOptions{PerPage: perPage}
	var all Comparison
	for page := 1; ; page++ {
		opts.Page = page
		cmp, next, err := c.compare(ctx, base, head, opts)
		if err != nil {
			return Comparison{}, err
		}
		if page == 1 {
			all = cmp
			all.Commits = nil
			if cmp.TotalCommits > max {
				return Comparison{}, fmt.Errorf("compare %s...%s: %w: %d, more than %d", sha.Short(base), sha.Short(head), ErrTooManyCommits, cmp.TotalCommits, max)
			}
		}
		all.Commits = append(all.Commits, cmp.Commits...)
		if next == 0 || len(cmp.Commits) == 0 || len(all.Commits) >= all.TotalCommits {
			return all, nil
		}
	}
}

// compare is one request of "compare two commits"; next is the next page,
// 0 for none.
func (c *Client) compare(ctx context.Context, base, head string, opts *github.ListOptions) (Comparison, int, error) {
	cmp, resp, err := c.gh().Repositories.CompareCommits(ctx, c.owner, c.repo, base, head, opts)
	if err != nil {
		return Comparison{}, 0, c.wrap(err, access{op: "compare commits", permission: "contents: read",
			item: fmt.Sprintf("commit %s or %s", sha.Short(base), sha.Short(head))},
			"compare %s...%s", sha.Short(base), sha.Short(head))
	}
	out := Comparison{Status: cmp.GetStatus(), AheadBy: cmp.GetAheadBy(), BehindBy: cmp.GetBehindBy(), TotalCommits: cmp.GetTotalCommits()}
	for _, rc := range cmp.Commits {
		ci := CommitInfo{
			SHA:         rc.GetSHA(),
			Message:     rc.GetCommit().GetMessage(),
			AuthorLogin: rc.GetAuthor().GetLogin(),
			AuthorName:  rc.GetCommit().GetAuthor().GetName(),
		}
		for _, p := range rc.Parents {
			ci.Parents = append(ci.Parents, p.GetSHA())
		}
		out.Commits = append(out.Commits, ci)
	}
	return out, resp.NextPage, nil
}

// IssueComments returns the comments on an issue or pull request, oldest
// first.
func (c *Client) IssueComments(ctx context.Context, number int) ([]IssueComment, error) {
	opts := &github.IssueListCommentsOptions{ListOptions: github.ListOptions{PerPage: perPage}}
	var out []IssueComment
	for page := 0; page < maxCommentPages; page++ {
		cs, resp, err := c.gh().Issues.ListComments(ctx, c.owner, c.repo, number, opts)
		if err != nil {
			return nil, c.wrap(err, access{op: "list comments", permission: PullsWrite, item: fmt.Sprintf("#%d", number)},
				"list the comments of #%d", number)
		}
		for _, ic := range cs {
			out = append(out, comment(ic))
		}
		if resp.NextPage == 0 {
			break
		}
		opts.Page = resp.NextPage
	}
	return out, nil
}

func comment(ic *github.IssueComment) IssueComment {
	return IssueComment{ID: ic.GetID(), Body: ic.GetBody(), Author: ic.GetUser().GetLogin(), HTMLURL: ic.GetHTMLURL()}
}

// CreateIssueComment comments on an issue or a pull request. perm names the
// permission to ask for should GitHub refuse. With same, never twice: when
// the answer to the create is lost, the comments are read (as GitHub lists
// them, oldest first) and the newest that same recognises is taken as
// made, before any retry; without, the create is retried as any request.
func (c *Client) CreateIssueComment(ctx context.Context, number int, body, perm string, same func(IssueComment) bool) (IssueComment, error) {
	body = FitBody(body)
	create := func(ctx context.Context) (IssueComment, error) {
		ic, _, err := c.gh().Issues.CreateComment(ctx, c.owner, c.repo, number, &github.IssueComment{Body: github.String(body)})
		if err != nil {
			return IssueComment{}, err
		}
		return comment(ic), nil
	}
	var ic IssueComment
	var err error
	if same == nil {
		ic, err = create(ctx)
	} else {
		ic, err = lookBeforeRetry(c, ctx, fmt.Sprintf("a comment on #%d", number), create, func(ctx context.Context) (IssueComment, string, bool) {
			all, err := c.IssueComments(ctx, number)
			if err != nil {
				return IssueComment{}, "", false
			}
			for i := len(all) - 1; i >= 0; i-- {
				if same(all[i]) {
					return all[i], fmt.Sprintf("comment %d", all[i].ID), true
				}
			}
			return IssueComment{}, "", false
		})
	}
	if err != nil {
		return IssueComment{}, c.wrap(err, access{op: "create comment", permission: perm, item: fmt.Sprintf("#%d", number)},
			"comment on #%d", number)
	}
	return ic, nil
}

// EditIssueComment replaces a comment's body.
func (c *Client) EditIssueComment(ctx context.Context, id int64, body, perm string) (IssueComment, error) {
	ic, _, err := c.gh().Issues.EditComment(ctx, c.owner, c.repo, id, &github.IssueComment{Body: github.String(FitBody(body))})
	if err != nil {
		return IssueComment{}, c.wrap(err, access{op: "update comment", permission: perm, item: fmt.Sprintf("comment %d", id)},
			"update comment %d", id)
	}
	return comment(ic), nil
}

func issue(i *github.Issue) Issue {
	is := Issue{Number: i.GetNumber(), Title: i.GetTitle(), Body: i.GetBody(), State: i.GetState(), HTMLURL: i.GetHTMLURL(),
		Author: i.GetUser().GetLogin()}
	for _, l := range i.Labels {
		is.Labels = append(is.Labels, l.GetName())
	}
	return is
}

// OpenIssues returns the open issues (not pull requests) that carry label,
// newest first, at most limit of them. perm names the permission to ask for
// should GitHub refuse.
func (c *Client) OpenIssues(ctx context.Context, label string, limit int, perm string) ([]Issue, error) {
	opts := &github.IssueListByRepoOptions{State: "open", Labels: []string{label}, Sort: "created", Direction: "desc"}
	return c.openIssues(ctx, opts, limit, perm, fmt.Sprintf("the open issues labelled %q", label))
}

// openIssues lists the open issues (not pull requests) opts selects, a
// page at a time, at most limit of them; what names them in an error.
func (c *Client) openIssues(ctx context.Context, opts *github.IssueListByRepoOptions, limit int, perm, what string) ([]Issue, error) {
	opts.ListOptions = github.ListOptions{PerPage: perPage}
	var out []Issue
	for len(out) < limit {
		is, resp, err := c.gh().Issues.ListByRepo(ctx, c.owner, c.repo, opts)
		if err != nil {
			return nil, c.wrap(c.gone(err), access{op: "list issues", permission: perm, notFound: true}, "list %s", what)
		}
		for _, i := range is {
			if !i.IsPullRequest() && len(out) < limit {
				out = append(out, issue(i))
			}
		}
		if resp.NextPage == 0 {
			break
		}
		opts.Page = resp.NextPage
	}
	return out, nil
}

// lostIssueSearch is how many of the newest open issues are searched for
// one whose create lost its answer.
const lostIssueSearch = 30

// CreateIssue opens an issue. With same, never twice: when the answer to
// the create is lost, the newest open issues are read and the first that
// same recognises is taken as made, before any retry; without, the create
// is retried as any request. GitHub silently drops the labels of a user
// without push access: the issue returned says which labels it has.
func (c *Client) CreateIssue(ctx context.Context, title, body string, labels []string, same func(Issue) bool) (Issue, error) {
	req := &github.IssueRequest{Title: github.String(title), Body: github.String(FitBody(body))}
	if len(labels) > 0 {
		req.Labels = &labels
	}
	create := func(ctx context.Context) (Issue, error) {
		i, _, err := c.gh().Issues.Create(ctx, c.owner, c.repo, req)
		if err != nil {
			return Issue{}, err
		}
		return issue(i), nil
	}
	var is Issue
	var err error
	if same == nil {
		is, err = create(ctx)
	} else {
		is, err = lookBeforeRetry(c, ctx, "an issue", create, func(ctx context.Context) (Issue, string, bool) {
			opts := &github.IssueListByRepoOptions{State: "open", Sort: "created", Direction: "desc", ListOptions: github.ListOptions{PerPage: lostIssueSearch}}
			list, _, err := c.gh().Issues.ListByRepo(ctx, c.owner, c.repo, opts)
			if err != nil {
				return Issue{}, "", false
			}
			for _, i := range list {
				if is := issue(i); !i.IsPullRequest() && same(is) {
					return is, fmt.Sprintf("issue #%d", is.Number), true
				}
			}
			return Issue{}, "", false
		})
	}
	if err != nil {
		return Issue{}, c.wrap(c.gone(err), access{op: "create issue", permission: IssuesWrite, notFound: true}, "open an issue")
	}
	return is, nil
}

// OpenIssuesBy returns the open issues (not pull requests) that creator
// opened, newest first, at most limit of them: what an account can find
// again of its own, whatever labels people removed or GitHub dropped.
func (c *Client) OpenIssuesBy(ctx context.Context, creator string, limit int, perm string) ([]Issue, error) {
	opts := &github.IssueListByRepoOptions{State: "open", Creator: creator, Sort: "created", Direction: "desc"}
	return c.openIssues(ctx, opts, limit, perm, "the open issues of "+creator)
}

// EditIssue changes an issue.
func (c *Client) EditIssue(ctx context.Context, number int, e IssueEdit) (Issue, error) {
	if e.Body != nil {
		body := FitBody(*e.Body)
		e.Body = &body
	}
	i, _, err := c.gh().Issues.Edit(ctx, c.owner, c.repo, number, &github.IssueRequest{
		Title: e.Title, Body: e.Body, State: e.State, StateReason: e.StateReason,
	})
	if err != nil {
		return Issue{}, c.wrap(c.gone(err), access{op: "update issue", permission: IssuesWrite, item: fmt.Sprintf("issue #%d", number)},
			"update issue #%d", number)
	}
	return issue(i), nil
}

// EnsureLabel creates the label unless the repository has it; created
// reports whether it did. A label created meanwhile by someone else
// counts as there.
func (c *Client) EnsureLabel(ctx context.Context, name, color, description string) (created bool, err error) {
	_, _, err = c.gh().Issues.GetLabel(ctx, c.owner, c.repo, url.PathEscape(name))
	if err == nil {
		return false, nil
	}
	var ger *github.ErrorResponse
	if !errors.As(err, &ger) || statusOf(ger.Response) != http.StatusNotFound {
		return false, c.wrap(err, access{op: "get label", permission: IssuesWrite, notFound: false}, "read the label %q", name)
	}
	_, _, err = c.gh().Issues.CreateLabel(ctx, c.owner, c.repo, &github.Label{
		Name: github.String(name), Color: github.String(color), Description: github.String(description),
	})
	if err == nil {
		return true, nil
	}
	if errors.As(err, &ger) && statusOf(ger.Response) == http.StatusUnprocessableEntity {
		for _, e := range ger.Errors {
			if e.Code == "already_exists" {
				return false, nil
			}
		}
	}
	return false, c.wrap(err, access{op: "create label", permission: IssuesWrite}, "create the label %q", name)
}

// gone turns GitHub's 410 for a repository without issues into
// ErrIssuesDisabled.
func (c *Client) gone(err error) error {
	var ger *github.ErrorResponse
	if errors.As(err, &ger) && statusOf(ger.Response) == http.StatusGone {
		return fmt.Errorf("%w (GitHub answered 410 Gone)", ErrIssuesDisabled)
	}
	return err
}

// CommitAuthor returns a commit with its author.
func (c *Client) CommitAuthor(ctx context.Context, commit string) (CommitInfo, error) {
	rc, _, err := c.gh().Repositories.GetCommit(ctx, c.owner, c.repo, commit, nil)
	if err != nil {
		return CommitInfo{}, c.wrap(err, access{op: "get commit", permission: "contents: read", item: "commit " + sha.Short(commit)},
			"read commit %s", sha.Short(commit))
	}
	return CommitInfo{SHA: rc.GetSHA(), Message: rc.GetCommit().GetMessage(), AuthorLogin: rc.GetAuthor().GetLogin(),
		AuthorName: rc.GetCommit().GetAuthor().GetName()}, nil
}
