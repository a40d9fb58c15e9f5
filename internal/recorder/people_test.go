package recorder

import (
	"context"
	"strconv"
	"strings"
	"testing"

	"github.com/immune-cd/immune/internal/ghapi"
	"github.com/immune-cd/immune/internal/testkit/githubfake"
)

// A push of three commits, two of them from merged pull requests, one
// pushed directly: both pull requests are found, the bad commit's first.
func TestBlameAPush(t *testing.T) {
	f, r, _ := setup(t, start)
	good := commit(1)
	f.AddCommit(good, "good")
	f.AddPull(githubfake.PullRequest{Number: 11, Author: "hubot", Merged: true, MergeCommitSHA: commit(2),
		Commits: []githubfake.Commit{{SHA: commit(20), Message: "facets"}}})
	f.AddAuthoredCommit(githubfake.Commit{SHA: commit(3), Message: "direct push", Author: "octocat"})
	f.AddPull(githubfake.PullRequest{Number: 12, Author: "monalisa", Merged: true, MergeCommitSHA: commit(4),
		Commits: []githubfake.Commit{{SHA: commit(40), Message: "tax table"}}})
	p := r
	b := p.Blame(context.Background(), good, commit(4))
	if len(b.Pulls) != 2 || b.Pulls[0].Number != 12 || b.Pulls[1].Number != 11 || b.BadPull != 12 || b.Author.Login != "monalisa" {
		t.Fatalf("blame: %+v", b)
	}
	if b.Commits != 3 || b.Examined != 3 || b.Capped {
		t.Errorf("counts: %d commits, %d examined, capped %v", b.Commits, b.Examined, b.Capped)
	}
	// Without a previous good commit, the bad commit alone; a direct push
	// names the commit's author.
	if b := p.Blame(context.Background(), "", commit(3)); len(b.Pulls) != 0 || b.Author.Login != "octocat" || b.BadPull != 0 {
		t.Errorf("direct push: %+v", b)
	}
}

func TestBlameIsCapped(t *testing.T) {
	f, r, _ := setup(t, start)
	f.AddCommit(commit(0), "good")
	for i := 1; i <= 30; i++ {
		f.AddPull(githubfake.PullRequest{Number: i, Author: "dev", Merged: true, MergeCommitSHA: commit(i),
			Commits: []githubfake.Commit{{SHA: commit(100 + i)}}})
	}
	b := r.Blame(context.Background(), commit(0), commit(30))
	if b.Commits != 30 || b.Examined != MaxBlameCommits || len(b.Pulls) != MaxBlamePulls || !b.Capped || b.Pulls[0].Number != 30 {
		t.Errorf("capped blame: %d commits, %d examined, %d pulls, capped %v", b.Commits, b.Examined, len(b.Pulls), b.Capped)
	}
	if n := f.CallCount("GET", "/repos/octo-org/shop/commits/"+commit(5)+"/pulls"); n != 0 {
		t.Errorf("an old commit was looked up")
	}
}

func TestCommentEditsItsOwn(t *testing.T) {
	f, r, _ := setup(t, start)
	f.AddCommit(commit(1), "x")
	f.AddPull(githubfake.PullRequest{Number: 12, Merged: true, MergeCommitSHA: commit(2)})
	f.AddComment(githubfake.IssueComment{Number: 12, Body: "LGTM", Author: "octocat"})
	p := r
	ctx := context.Background()
	first := p.Comment(ctx, 12, commit(2), "regressed")
	second := p.Comment(ctx, 12, commit(2), "rolled back")
	again := p.Comment(ctx, 12, commit(2), "rolled back")
	cs := f.Comments(12)
	if len(cs) != 2 || !strings.HasPrefix(cs[1].Body, CommentMarker("production", commit(2))) || !strings.HasSuffix(cs[1].Body, "\nrolled back") {
		t.Fatalf("comments: %+v", cs)
	}
	if first == "" || first != second || second != again {
		t.Errorf("links: %q %q %q", first, second, again)
	}
	if n := f.CallCount("PATCH", "/repos/octo-org/shop/issues/comments/"+itoa(cs[1].ID)); n != 1 {
		t.Errorf("%d edits, want 1 (an unchanged body is left alone)", n)
	}
	// Another environment's comment is another comment.
	other := New(Options{GitHub: r.o.GitHub, Environment: "staging"})
	other.Comment(ctx, 12, commit(2), "staging")
	if len(f.Comments(12)) != 3 {
		t.Errorf("staging's comment replaced production's")
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

func TestTrackingIssue(t *testing.T) {
	f, r, _ := setup(t, start)
	f.AddIssue(githubfake.Issue{Title: "unrelated", Labels: []string{StoppedLabel}, Body: "no marker"})
	p := r
	ctx := context.Background()
	is, opened, ok := p.StopLine(ctx, "production is stopped", "first", "")
	if !ok || !opened || is.Number == 0 {
		t.Fatalf("open: %+v %v %v", is, opened, ok)
	}
	if ls := f.Labels(); len(ls) != 1 || ls[0].Color != "ededed" {
		// The seeded issue created the label with GitHub's default color.
		t.Errorf("labels: %+v", ls)
	}
	again, opened, ok := p.StopLine(ctx, "production is stopped again", "second", "rolled back again")
	if !ok || opened || again.Number != is.Number || again.Title != "production is stopped again" {
		t.Fatalf("update: %+v %v %v", again, opened, ok)
	}
	if cs := f.Comments(is.Number); len(cs) != 1 || cs[0].Body != "rolled back again" {
		t.Errorf("update comment: %+v", cs)
	}
	// Staging has its own issue.
	if st, opened, _ := New(Options{GitHub: r.o.GitHub, Environment: "staging"}).StopLine(ctx, "staging", "s", ""); !opened || st.Number == is.Number {
		t.Errorf("staging reused production's issue")
	}
	closed, ok := p.ClearLine(ctx, "healthy again")
	if !ok || closed.State != "closed" {
		t.Fatalf("clear: %+v %v", closed, ok)
	}
	if _, found := p.stoppedIssue(ctx, ghapi.IssuesWrite); found {
		t.Error("still open")
	}
	if _, ok := p.ClearLine(ctx, "nothing to close"); ok {
		t.Error("closed a second time")
	}
}

func TestTrackingIssueCreatesTheLabel(t *testing.T) {
	f, r, _ := setup(t, start)
	if _, opened, ok := r.StopLine(context.Background(), "t", "b", ""); !opened || !ok {
		t.Fatal("not opened")
	}
	if ls := f.Labels(); len(ls) != 1 || ls[0].Name != StoppedLabel || ls[0].Color != "b60205" {
		t.Errorf("labels: %+v", ls)
	}
}

// Without the permissions, each is named once, and later calls that need
// one are not made.
func TestPeopleDenied(t *testing.T) {
	f := githubfake.Start(t, githubfake.Options{Token: token, Permissions: map[string]string{"contents": "read", "pull-requests": "read", "deployments": "write"}})
	gh, _ := ghapi.New(ghapi.Options{HTTPClient: f.Client(), APIURL: f.URL(), Token: token, Repository: f.Repository(), MaxRetries: -1})
	r := New(Options{GitHub: gh, Environment: "production"})
	f.AddCommit(commit(1), "x")
	f.AddPull(githubfake.PullRequest{Number: 1, Merged: true, MergeCommitSHA: commit(2)})
	f.AddPull(githubfake.PullRequest{Number: 3, Merged: true, MergeCommitSHA: commit(4)})
	p := r
	ctx := context.Background()
	if p.Comment(ctx, 1, commit(2), "x") != "" {
		t.Error("commented without the permission")
	}
	p.Comment(ctx, 3, commit(4), "x")
	if _, _, ok := p.StopLine(ctx, "t", "b", ""); ok {
		t.Error("opened an issue without the permission")
	}
	d := p.Denied()
	if len(d) != 2 || d[0].Permission != ghapi.PullsWrite || d[1].Permission != ghapi.IssuesWrite || len(p.NotTold()) != 0 {
		t.Errorf("denied %+v, failed %v", d, p.NotTold())
	}
	if n := f.CallCount("GET", "/repos/octo-org/shop/issues/3/comments"); n != 0 {
		t.Errorf("asked again after the refusal: %d", n)
	}
}

func TestLineBefore(t *testing.T) {
	f, r, _ := setup(t, start)
	ours(f, TaskDeploy, commit(1), Payload{}, start, "success")
	ours(f, TaskRollback, commit(1), Payload{RolledBackFrom: commit(2)}, start, "success")
	fix := ours(f, TaskDeploy, commit(3), Payload{}, start, "success")
	l, err := r.LineBefore(context.Background(), fix.ID)
	if err != nil || !l.Stopped || l.BadSHA != commit(2) {
		t.Errorf("before the fix: %+v %v", l, err)
	}
	next := ours(f, TaskDeploy, commit(4), Payload{}, start, "success")
	if l, _ := r.LineBefore(context.Background(), next.ID); l.Stopped {
		t.Errorf("before the next: stopped")
	}
}

// Once the run's records gave up on GitHub, what people are told makes no
// call: one gave-up state for every call.
func TestPeopleShareDown(t *testing.T) {
	f, r, _ := setup(t, start)
	f.AddCommit(commit(1), "x")
	f.AddPull(githubfake.PullRequest{Number: 12, Merged: true, MergeCommitSHA: commit(2)})
	f.SetDown(true)
	_, _, _ = r.LastGood(context.Background(), "") // the run finds GitHub down
	if !r.Down() {
		t.Fatal("the recorder did not give up")
	}
	f.SetDown(false)
	f.ResetCalls()
	if r.Comment(context.Background(), 12, commit(2), "x") != "" || len(f.Calls()) != 0 {
		t.Errorf("%d calls after GitHub was given up on", len(f.Calls()))
	}
	if len(r.NotTold()) != 1 || !strings.Contains(r.NotTold()[0], "skipped: GitHub unreachable") {
		t.Errorf("not told: %q", r.NotTold())
	}
}

// recorderFor is a Recorder of environment on f.
func recorderFor(t *testing.T, f *githubfake.Server, environment string) *Recorder {
	gh, err := ghapi.New(ghapi.Options{HTTPClient: f.Client(), APIURL: f.URL(), Token: token, Repository: f.Repository(), MaxRetries: -1})
	if err != nil {
		t.Fatal(err)
	}
	return New(Options{GitHub: gh, Environment: environment})
}

// The tracking issue is immune's by its author and marker: a human who
// removes its label and writes notes above it does not make the next stop
// open a second one, and the notes stay; an issue someone else opened with
// immune's marker is not taken for it. The spelling of the environment's
// letter case does not matter.
func TestTrackingIssueIsFoundByAuthorAndMarker(t *testing.T) {
	f, r, _ := setup(t, start)
	ours(f, TaskDeploy, commit(1), Payload{}, start, "success")
	f.AddIssue(githubfake.Issue{Title: "fake", Body: IssueMarker("production") + "\nnot immune's", Author: "mallory", Labels: []string{StoppedLabel}})
	is, opened, ok := r.StopLine(context.Background(), "stopped", "first", "")
	if !ok || !opened {
		t.Fatalf("StopLine: %+v %v %v; not told %q", is, opened, ok, r.NotTold())
	}
	f.UpdateIssue(is.Number, func(i *githubfake.Issue) {
		i.Labels = nil
		i.Body = "Triage: @oncall is on it.\n\n" + i.Body
	})
	again := recorderFor(t, f, "production")
	is2, opened, ok := again.StopLine(context.Background(), "stopped again", "second", "update")
	if !ok || opened || is2.Number != is.Number {
		t.Fatalf("second stop: %+v opened %v ok %v, want #%d updated", is2, opened, ok, is.Number)
	}
	var got githubfake.Issue
	for _, i := range f.Issues() {
		if i.Number == is.Number {
			got = i
		}
	}
	if !strings.HasPrefix(got.Body, "Triage: @oncall is on it.\n\n"+IssueMarker("production")) && !strings.HasPrefix(got.Body, "Triage: @oncall is on it.\n\n"+IssueMarker("Production")) ||
		!strings.HasSuffix(got.Body, "second") || len(f.Issues()) != 2 {
		t.Errorf("issues %d; body %q", len(f.Issues()), got.Body)
	}
	// Another spelling of the environment, whose own history holds one of
	// immune's deployments: the same issue.
	p := Payload{Tool: Tool}
	f.AddDeployment(githubfake.Deployment{SHA: commit(1), Environment: "Production", Payload: p.Map()})
	if _, closed := recorderFor(t, f, "Production").ClearLine(context.Background(), "clear"); !closed {
		t.Errorf("the line was not cleared from \"Production\"")
	}
}

// GitHub drops the labels of an account without push access: the issue
// is opened all the same, people hear that the label is missing, and the
// next stop finds the issue.
func TestTrackingIssueWithoutItsLabel(t *testing.T) {
	f := githubfake.Start(t, githubfake.Options{Token: token, NoPushAccess: true})
	f.AddCommit(commit(1), "x")
	ours(f, TaskDeploy, commit(1), Payload{}, start, "success")
	r := recorderFor(t, f, "production")
	is, opened, ok := r.StopLine(context.Background(), "stopped", "first", "")
	if !ok || !opened || len(f.Issues()[0].Labels) != 0 {
		t.Fatalf("StopLine: %+v %v %v", is, opened, ok)
	}
	if nt := r.NotTold(); len(nt) != 1 || !strings.Contains(nt[0], "GitHub dropped the label") {
		t.Errorf("not told: %q", nt)
	}
	if _, opened, ok := recorderFor(t, f, "production").StopLine(context.Background(), "stopped", "again", "u"); !ok || opened || len(f.Issues()) != 1 {
		t.Errorf("second stop: opened %v ok %v, %d issues", opened, ok, len(f.Issues()))
	}
}

// A comment someone else wrote with immune's marker is not edited: immune
// posts its own, and edits only its own after.
func TestCommentLeavesOthersWithTheMarker(t *testing.T) {
	f, r, _ := setup(t, start)
	f.AddCommit(commit(1), "x")
	ours(f, TaskDeploy, commit(1), Payload{}, start, "success")
	f.AddPull(githubfake.PullRequest{Number: 12, Merged: true, MergeCommitSHA: commit(2)})
	theirs := f.AddComment(githubfake.IssueComment{Number: 12, Body: CommentMarker("production", commit(2)) + "\nI am immune", Author: "mallory"})
	if r.Comment(context.Background(), 12, commit(2), "one") == "" || r.Comment(context.Background(), 12, commit(2), "two") == "" {
		t.Fatalf("not told: %q", r.NotTold())
	}
	cs := f.Comments(12)
	if len(cs) != 2 || cs[0].Body != theirs.Body || cs[1].Author != "github-actions[bot]" || !strings.HasSuffix(cs[1].Body, "two") {
		t.Errorf("comments: %+v", cs)
	}
}

// The answer to a create is lost after GitHub acted: one issue, one
// comment, not two.
func TestLostAnswersDoNotDuplicate(t *testing.T) {
	f, r, _ := setup(t, start)
	f.AddCommit(commit(1), "x")
	ours(f, TaskDeploy, commit(1), Payload{}, start, "success")
	f.AddPull(githubfake.PullRequest{Number: 12, Merged: true, MergeCommitSHA: commit(2)})
	f.Inject(githubfake.Fault{Method: "POST", Path: "/repos/octo-org/shop/issues", Times: 1, Status: 502, AfterServing: true})
	f.Inject(githubfake.Fault{Method: "POST", Path: "/repos/octo-org/shop/issues/12/comments", Times: 1, Drop: true, AfterServing: true})
	if _, _, ok := r.StopLine(context.Background(), "stopped", "body", ""); !ok {
		t.Errorf("StopLine failed: %q", r.NotTold())
	}
	if r.Comment(context.Background(), 12, commit(2), "body") == "" {
		t.Errorf("Comment failed: %q", r.NotTold())
	}
	if len(f.Issues()) != 1 || len(f.Comments(12)) != 1 {
		t.Errorf("%d issues, %d comments; want one each", len(f.Issues()), len(f.Comments(12)))
	}
}
