package ghapi

import (
	"errors"
	"fmt"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/immune-cd/immune/internal/testkit/githubfake"
)

func TestCompareCommits(t *testing.T) {
	e := setup(t, githubfake.Options{}, nil)
	e.fake.AddCommit(commitID(1), "base")
	e.fake.AddAuthoredCommit(githubfake.Commit{SHA: commitID(2), Message: "two", Author: "hubot"})
	e.fake.AddAuthoredCommit(githubfake.Commit{SHA: commitID(3), Message: "three", AuthorName: "Mona Lisa"})
	cmp, err := e.client.CompareCommits(ctx(t), commitID(1), commitID(3))
	if err != nil {
		t.Fatal(err)
	}
	want := []CommitInfo{
		{SHA: commitID(2), Message: "two", AuthorLogin: "hubot", AuthorName: "hubot", Parents: []string{commitID(1)}},
		{SHA: commitID(3), Message: "three", AuthorName: "Mona Lisa", Parents: []string{commitID(2)}},
	}
	if cmp.Status != "ahead" || cmp.TotalCommits != 2 || !reflect.DeepEqual(cmp.Commits, want) {
		t.Errorf("comparison: %+v", cmp)
	}
	_, err = e.client.CompareCommits(ctx(t), commitID(1), commitID(9))
	var ae *APIError
	if !errors.As(err, &ae) || ae.Status != http.StatusNotFound {
		t.Errorf("unknown head: %v", err)
	}
}

// Past GitHub's 250 unpaged commits, CompareAll pages through them all,
// oldest first; more than asked for is refused from the first page.
func TestCompareAll(t *testing.T) {
	e := setup(t, githubfake.Options{}, nil)
	for i := 1; i <= 301; i++ {
		e.fake.AddCommit(commitID(i), fmt.Sprint(i))
	}
	unpaged, err := e.client.CompareCommits(ctx(t), commitID(1), commitID(301))
	if err != nil || len(unpaged.Commits) != 250 || unpaged.TotalCommits != 300 {
		t.Fatalf("unpaged: %d commits of %d, %v", len(unpaged.Commits), unpaged.TotalCommits, err)
	}
	all, err := e.client.CompareAll(ctx(t), commitID(1), commitID(301), 1000)
	if err != nil || len(all.Commits) != 300 || all.Commits[0].SHA != commitID(2) || all.Commits[299].SHA != commitID(301) {
		t.Fatalf("paged: %d commits, %v", len(all.Commits), err)
	}
	for i, c := range all.Commits {
		if len(c.Parents) != 1 || c.Parents[0] != commitID(i+1) {
			t.Fatalf("commit %d: parents %v", i, c.Parents)
		}
	}
	if _, err := e.client.CompareAll(ctx(t), commitID(1), commitID(301), 299); !errors.Is(err, ErrTooManyCommits) {
		t.Errorf("more than the limit: %v", err)
	}
}

func TestComments(t *testing.T) {
	e := setup(t, githubfake.Options{}, nil)
	e.fake.AddCommit(commitID(1), "x")
	e.fake.AddPullRequest(12, commitID(1), nil, nil)
	for i := 0; i < 150; i++ {
		e.fake.AddComment(githubfake.IssueComment{Number: 12, Body: "chatter", Author: "octocat"})
	}
	c, err := e.client.CreateIssueComment(ctx(t), 12, "<!-- marker -->\nhello", PullsWrite, nil)
	if err != nil {
		t.Fatal(err)
	}
	if c.ID == 0 || c.Author != "github-actions[bot]" || !strings.Contains(c.HTMLURL, "/pull/12#issuecomment-") {
		t.Errorf("comment: %+v", c)
	}
	all, err := e.client.IssueComments(ctx(t), 12)
	if err != nil || len(all) != 151 || all[150].ID != c.ID {
		t.Fatalf("%d comments, %v", len(all), err)
	}
	if e.count("GET", "/issues/12/comments") != 2 {
		t.Errorf("%d pages", e.count("GET", "/issues/12/comments"))
	}
	edited, err := e.client.EditIssueComment(ctx(t), c.ID, "bye", PullsWrite)
	if err != nil || edited.Body != "bye" || e.fake.Comments(12)[150].Body != "bye" {
		t.Errorf("edit: %+v %v", edited, err)
	}
}

func TestIssues(t *testing.T) {
	e := setup(t, githubfake.Options{}, nil)
	e.fake.AddCommit(commitID(1), "x")
	e.fake.AddPullRequest(1, commitID(1), []string{"immune:stopped"}, nil) // a pull request with the label is not an issue
	created, err := e.client.EnsureLabel(ctx(t), "immune:stopped", "b60205", "the line is stopped")
	if err != nil || created {
		t.Errorf("existing label: created %v, %v", created, err)
	}
	created, err = e.client.EnsureLabel(ctx(t), "immune:other", "b60205", "d")
	if err != nil || !created {
		t.Errorf("new label: created %v, %v", created, err)
	}
	is, err := e.client.CreateIssue(ctx(t), "production is stopped", "body", []string{"immune:stopped"}, nil)
	if err != nil || is.Number != 2 || is.State != "open" {
		t.Fatalf("create: %+v %v", is, err)
	}
	open, err := e.client.OpenIssues(ctx(t), "immune:stopped", 10, IssuesWrite)
	if err != nil || len(open) != 1 || open[0].Number != 2 || open[0].Body != "body" {
		t.Fatalf("open issues: %+v %v", open, err)
	}
	closed, reason := "closed", "completed"
	is, err = e.client.EditIssue(ctx(t), 2, IssueEdit{State: &closed, StateReason: &reason})
	if err != nil || is.State != "closed" {
		t.Errorf("close: %+v %v", is, err)
	}
	if open, _ := e.client.OpenIssues(ctx(t), "immune:stopped", 10, IssuesWrite); len(open) != 0 {
		t.Errorf("still open: %+v", open)
	}
}

// What GitHub answers without the permissions: 403 naming what to add;
// issues turned off: 410.
func TestIssuePermissionErrors(t *testing.T) {
	e := setup(t, githubfake.Options{Permissions: map[string]string{"contents": "read", "pull-requests": "read"}}, nil)
	e.fake.AddCommit(commitID(1), "x")
	e.fake.AddPullRequest(1, commitID(1), nil, nil)
	_, err := e.client.CreateIssueComment(ctx(t), 1, "b", PullsWrite, nil)
	var pe *PermissionError
	if !errors.As(err, &pe) || pe.Permission != PullsWrite || !strings.Contains(err.Error(), `add "pull-requests: write"`) {
		t.Errorf("comment: %v", err)
	}
	_, err = e.client.CreateIssue(ctx(t), "t", "b", nil, nil)
	if !errors.As(err, &pe) || pe.Permission != IssuesWrite {
		t.Errorf("issue: %v", err)
	}
	if _, err = e.client.EnsureLabel(ctx(t), "l", "ededed", ""); !errors.As(err, &pe) {
		t.Errorf("label: %v", err)
	}

	g := setup(t, githubfake.Options{}, nil)
	g.fake.Inject(githubfake.Fault{Method: "POST", Path: "/repos/octo-org/shop/issues", Status: http.StatusGone, Message: "Issues are disabled for this repo"})
	if _, err := g.client.CreateIssue(ctx(t), "t", "b", nil, nil); !errors.Is(err, ErrIssuesDisabled) {
		t.Errorf("410: %v", err)
	}
}

// A body past GitHub's 65,536 characters is cut to fit, at a line, with an
// open fence closed and a note, rather than refused with 422: the fake
// refuses longer bodies as GitHub does.
func TestBodiesFitGitHubsLimit(t *testing.T) {
	e := setup(t, githubfake.Options{}, nil)
	e.fake.AddCommit(commitID(1), "x")
	e.fake.AddPullRequest(12, commitID(1), nil, nil)
	long := "<!-- marker -->\n## Heading\n\n```mermaid\n" + strings.Repeat("é line\n", 12_000) + "```\n\nthe end\n"
	if utf8.RuneCountInString(long) <= MaxBody {
		t.Fatal("the body fits already")
	}
	c, err := e.client.CreateIssueComment(ctx(t), 12, long, PullsWrite, nil)
	if err != nil {
		t.Fatalf("a long comment: %v", err)
	}
	is, err := e.client.CreateIssue(ctx(t), "title", long, nil, nil)
	if err != nil {
		t.Fatalf("a long issue: %v", err)
	}
	body := long + "more"
	if _, err := e.client.EditIssue(ctx(t), is.Number, IssueEdit{Body: &body}); err != nil {
		t.Fatalf("a long edit: %v", err)
	}
	if _, err := e.client.EditIssueComment(ctx(t), c.ID, body, PullsWrite); err != nil {
		t.Fatalf("a long comment edit: %v", err)
	}
	got := e.fake.Comments(12)[0].Body
	if n := utf8.RuneCountInString(got); n > MaxBody || n < MaxBody-200 || !strings.HasPrefix(got, "<!-- marker -->\n## Heading") ||
		strings.Count(got, "```")%2 != 0 || !strings.HasSuffix(got, cutNote) {
		t.Errorf("kept %d characters, %d fences, ending %q", n, strings.Count(got, "```"), got[len(got)-120:])
	}
	if FitBody("short") != "short" {
		t.Error("a short body changed")
	}
}

// GitHub opened the issue, or posted the comment, but the answer was lost
// (a 502 from in front of it, a dropped connection): the create finds it
// and makes no second one. One GitHub never made is made on a retry.
func TestCreatesOfIssuesAndCommentsAreIdempotent(t *testing.T) {
	const marker = "<!-- immune:test -->"
	for _, fault := range []githubfake.Fault{
		{Times: 1, Status: 502, AfterServing: true},
		{Times: 1, Drop: true, AfterServing: true},
		{Times: 2, Status: 503},
	} {
		e := setup(t, githubfake.Options{}, nil)
		e.fake.AddCommit(commitID(1), "x")
		e.fake.AddPullRequest(12, commitID(1), nil, nil)
		e.fake.AddComment(githubfake.IssueComment{Number: 12, Body: marker + " by someone else", Author: "mallory"})

		issueFault, commentFault := fault, fault
		issueFault.Method, issueFault.Path = "POST", "/repos/octo-org/shop/issues"
		commentFault.Method, commentFault.Path = "POST", "/repos/octo-org/shop/issues/12/comments"
		e.fake.Inject(issueFault)
		e.fake.Inject(commentFault)

		is, err := e.client.CreateIssue(ctx(t), "stopped", marker+"\nbody", []string{"immune:stopped"},
			func(is Issue) bool { return strings.HasPrefix(is.Body, marker) && is.Author == "github-actions[bot]" })
		if err != nil || is.Number == 0 || len(e.fake.Issues()) != 1 {
			t.Errorf("%+v: issue %+v, %v; %d issues, want 1", fault, is, err, len(e.fake.Issues()))
		}
		c, err := e.client.CreateIssueComment(ctx(t), 12, marker+"\nours", PullsWrite,
			func(c IssueComment) bool {
				return strings.HasPrefix(c.Body, marker) && c.Author == "github-actions[bot]"
			})
		if err != nil || c.ID == 0 || len(e.fake.Comments(12)) != 2 || c.Author != "github-actions[bot]" {
			t.Errorf("%+v: comment %+v, %v; %d comments, want 2 (theirs and ours)", fault, c, err, len(e.fake.Comments(12)))
		}
	}
}

// An account finds its own open issues, whatever their labels, and not
// those of others.
func TestOpenIssuesBy(t *testing.T) {
	e := setup(t, githubfake.Options{}, nil)
	e.fake.AddIssue(githubfake.Issue{Title: "ours, label removed", Body: "<!-- m -->"})
	e.fake.AddIssue(githubfake.Issue{Title: "theirs", Body: "<!-- m -->", Author: "mallory", Labels: []string{"immune:stopped"}})
	e.fake.AddIssue(githubfake.Issue{Title: "ours, closed", State: "closed"})
	got, err := e.client.OpenIssuesBy(ctx(t), "github-actions[bot]", 10, IssuesWrite)
	if err != nil || len(got) != 1 || got[0].Title != "ours, label removed" || got[0].Author != "github-actions[bot]" {
		t.Errorf("OpenIssuesBy = %+v, %v", got, err)
	}
}
