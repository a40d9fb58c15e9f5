package githubfake

import (
	"fmt"
	"net/url"
	"strings"
	"testing"
)

const repo = "/repos/octo-org/shop"

func TestLabels(t *testing.T) {
	f := newFake(t, Options{})
	a := call(t, f, "GET", repo+"/labels/"+url.PathEscape("immune:stopped"), nil)
	if a.status != 404 || a.obj(t)["message"] != "Not Found" {
		t.Fatalf("missing label: %d %s", a.status, a.raw)
	}
	a = call(t, f, "POST", repo+"/labels", map[string]any{"name": "immune:stopped", "color": "B60205", "description": "the line is stopped"})
	if a.status != 201 || a.obj(t)["color"] != "b60205" || a.obj(t)["description"] != "the line is stopped" {
		t.Fatalf("create: %d %s", a.status, a.raw)
	}
	a = call(t, f, "POST", repo+"/labels", map[string]any{"name": "IMMUNE:stopped"})
	errs, _ := a.obj(t)["errors"].([]any)
	if a.status != 422 || len(errs) != 1 || errs[0].(map[string]any)["code"] != "already_exists" {
		t.Errorf("duplicate: %d %s", a.status, a.raw)
	}
	a = call(t, f, "POST", repo+"/labels", map[string]any{"name": "x", "color": "red"})
	if a.status != 422 {
		t.Errorf("bad color: %d", a.status)
	}
	if a = call(t, f, "GET", repo+"/labels/Immune:Stopped", nil); a.status != 200 || a.obj(t)["name"] != "immune:stopped" {
		t.Errorf("names match case-insensitively: %d %s", a.status, a.raw)
	}
}

func TestIssueLifecycle(t *testing.T) {
	f := newFake(t, Options{})
	f.AddCommit(sha(1), "x")
	f.AddPullRequest(7, sha(1), nil, nil)

	a := call(t, f, "POST", repo+"/issues", map[string]any{"body": "no title"})
	if a.status != 422 || !strings.Contains(a.obj(t)["message"].(string), `"title" wasn't supplied`) {
		t.Errorf("no title: %d %s", a.status, a.raw)
	}
	a = call(t, f, "POST", repo+"/issues", map[string]any{"title": "t", "body": strings.Repeat("x", 65537)})
	if a.status != 422 {
		t.Errorf("body too long: %d", a.status)
	}
	a = call(t, f, "POST", repo+"/issues", map[string]any{"title": "production is stopped", "body": "why", "labels": []string{"immune:stopped"}})
	is := a.obj(t)
	if a.status != 201 || is["number"] != float64(8) || is["state"] != "open" || is["html_url"] != f.ServerURL()+"/octo-org/shop/issues/8" {
		t.Fatalf("create: %d %s", a.status, a.raw)
	}
	if _, ok := is["pull_request"]; ok {
		t.Error("an issue carries a pull_request key")
	}
	// GitHub creates a label an issue names, with its default color.
	if ls := f.Labels(); len(ls) != 1 || ls[0].Color != "ededed" {
		t.Errorf("labels: %+v", ls)
	}

	a = call(t, f, "GET", repo+"/issues?labels=immune:stopped&state=open", nil)
	if l := a.list(t); len(l) != 1 || l[0].(map[string]any)["number"] != float64(8) {
		t.Errorf("filtered list: %s", a.raw)
	}
	a = call(t, f, "GET", repo+"/issues", nil)
	if l := a.list(t); len(l) != 2 || l[1].(map[string]any)["pull_request"] == nil {
		t.Errorf("the list includes pull requests, marked: %d items", len(l))
	}
	if a = call(t, f, "GET", repo+"/issues?state=shut", nil); a.status != 422 {
		t.Errorf("bad state: %d", a.status)
	}

	a = call(t, f, "POST", repo+"/issues/8/comments", map[string]any{"body": "rolled back again"})
	c := a.obj(t)
	if a.status != 201 || c["body"] != "rolled back again" || !strings.HasSuffix(c["html_url"].(string), fmt.Sprintf("/issues/8#issuecomment-%d", int64(c["id"].(float64)))) {
		t.Fatalf("comment: %d %s", a.status, a.raw)
	}
	a = call(t, f, "PATCH", fmt.Sprintf("%s/issues/comments/%d", repo, int64(c["id"].(float64))), map[string]any{"body": "edited"})
	if a.status != 200 || a.obj(t)["body"] != "edited" {
		t.Errorf("edit comment: %d %s", a.status, a.raw)
	}
	if a = call(t, f, "PATCH", repo+"/issues/comments/99", map[string]any{"body": "x"}); a.status != 404 {
		t.Errorf("unknown comment: %d", a.status)
	}
	if a = call(t, f, "POST", repo+"/issues/8/comments", map[string]any{}); a.status != 422 {
		t.Errorf("comment without body: %d", a.status)
	}
	a = call(t, f, "GET", repo+"/issues/8/comments", nil)
	if l := a.list(t); len(l) != 1 || l[0].(map[string]any)["body"] != "edited" {
		t.Errorf("comments: %s", a.raw)
	}

	a = call(t, f, "PATCH", repo+"/issues/8", map[string]any{"state": "closed", "state_reason": "completed"})
	is = a.obj(t)
	if a.status != 200 || is["state"] != "closed" || is["state_reason"] != "completed" || is["closed_at"] == nil {
		t.Errorf("close: %d %s", a.status, a.raw)
	}
	if a = call(t, f, "GET", repo+"/issues?labels=immune:stopped", nil); len(a.list(t)) != 0 {
		t.Errorf("a closed issue is listed as open")
	}
	if a = call(t, f, "PATCH", repo+"/issues/8", map[string]any{"state": "gone"}); a.status != 422 {
		t.Errorf("bad state: %d", a.status)
	}
	if a = call(t, f, "GET", repo+"/issues/99", nil); a.status != 404 {
		t.Errorf("unknown issue: %d", a.status)
	}
}

// Without issues: write, a workflow token may still comment on a pull
// request with pull-requests: write, and nothing else of the issues.
func TestIssuePermissions(t *testing.T) {
	f := newFake(t, Options{Permissions: map[string]string{"pull-requests": "write"}})
	f.AddCommit(sha(1), "x")
	f.AddPullRequest(1, sha(1), nil, nil)
	is := f.AddIssue(Issue{Title: "t"})
	tests := []struct {
		method, path string
		body         any
		want         int
	}{
		{"POST", repo + "/issues/1/comments", map[string]any{"body": "b"}, 201},
		{"GET", repo + "/issues/1/comments", nil, 200},
		{"POST", fmt.Sprintf("%s/issues/%d/comments", repo, is.Number), map[string]any{"body": "b"}, 403},
		{"POST", repo + "/issues", map[string]any{"title": "t"}, 403},
		{"GET", repo + "/issues", nil, 403},
		{"PATCH", fmt.Sprintf("%s/issues/%d", repo, is.Number), map[string]any{"state": "closed"}, 403},
		{"POST", repo + "/labels", map[string]any{"name": "l"}, 201},
	}
	for _, tt := range tests {
		a := call(t, f, tt.method, tt.path, tt.body)
		if a.status != tt.want {
			t.Errorf("%s %s: %d, want %d (%s)", tt.method, tt.path, a.status, tt.want, a.raw)
		}
	}
	f2 := newFake(t, Options{Permissions: map[string]string{"issues": "write"}})
	f2.AddCommit(sha(1), "x")
	f2.AddPullRequest(1, sha(1), nil, nil)
	if a := call(t, f2, "POST", repo+"/issues/1/comments", map[string]any{"body": "b"}); a.status != 201 {
		t.Errorf("issues: write comments on a pull request: %d", a.status)
	}
}

// GitHub lists, for a commit on the default branch, the merged pull request
// that brought it; for another commit, the open and merged ones with it.
func TestCommitPullsFollowTheDefaultBranch(t *testing.T) {
	f := newFake(t, Options{})
	f.AddCommit(sha(1), "base")
	f.AddPull(PullRequest{Number: 5, Commits: []Commit{{SHA: sha(2), Message: "wip"}}, Merged: true, MergeCommitSHA: sha(3), Author: "hubot"})
	f.AddPull(PullRequest{Number: 6, Commits: []Commit{{SHA: sha(4), Message: "open"}}})
	f.AddPull(PullRequest{Number: 7, HeadSHA: sha(1)}) // an open PR whose head is on main
	numbers := func(commit string) []any {
		var out []any
		for _, p := range call(t, f, "GET", repo+"/commits/"+commit+"/pulls", nil).list(t) {
			out = append(out, p.(map[string]any)["number"])
		}
		return out
	}
	if got := numbers(sha(3)); len(got) != 1 || got[0] != float64(5) {
		t.Errorf("merge commit: %v", got)
	}
	if got := numbers(sha(2)); len(got) != 1 || got[0] != float64(5) {
		t.Errorf("branch commit of a merged PR: %v", got)
	}
	if got := numbers(sha(4)); len(got) != 1 || got[0] != float64(6) {
		t.Errorf("branch commit of an open PR: %v", got)
	}
	if got := numbers(sha(1)); len(got) != 0 {
		t.Errorf("default-branch commit of no merged PR: %v", got)
	}
	listed := call(t, f, "GET", repo+"/commits/"+sha(3)+"/pulls", nil).list(t)[0].(map[string]any)
	if _, ok := listed["merged"]; ok || listed["merged_at"] == nil || listed["merge_commit_sha"] != sha(3) {
		t.Errorf("listed for a commit: merged %v, merged_at %v; want the simple shape, merged_at set", listed["merged"], listed["merged_at"])
	}
	if open := call(t, f, "GET", repo+"/commits/"+sha(4)+"/pulls", nil).list(t)[0].(map[string]any); open["merged_at"] != nil {
		t.Errorf("an open pull request listed with merged_at %v", open["merged_at"])
	}
	pr := call(t, f, "GET", repo+"/pulls/5", nil).obj(t)
	if pr["merged"] != true || pr["merged_at"] == nil || pr["merge_commit_sha"] != sha(3) || pr["user"].(map[string]any)["login"] != "hubot" || pr["state"] != "closed" {
		t.Errorf("merged pull: merged %v, merged_at %v, merge_commit_sha %v, state %v", pr["merged"], pr["merged_at"], pr["merge_commit_sha"], pr["state"])
	}
}

func TestCompare(t *testing.T) {
	f := newFake(t, Options{})
	for i := 1; i <= 300; i++ {
		f.AddAuthoredCommit(Commit{SHA: sha(i), Message: fmt.Sprint(i), Author: "dev" + fmt.Sprint(i%3)})
	}
	f.AddPull(PullRequest{Number: 1, Commits: []Commit{{SHA: sha(1000)}, {SHA: sha(1001)}}})
	f.AddCommit(sha(301), "after the branch")
	cmp := func(base, head, query string) map[string]any {
		a := call(t, f, "GET", repo+"/compare/"+base+"..."+head+query, nil)
		if a.status != 200 {
			t.Fatalf("compare %s...%s: %d %s", base, head, a.status, a.raw)
		}
		return a.obj(t)
	}
	shas := func(m map[string]any) []string {
		var out []string
		for _, c := range m["commits"].([]any) {
			out = append(out, c.(map[string]any)["sha"].(string))
		}
		return out
	}
	m := cmp(sha(10), sha(13), "")
	if got := shas(m); m["status"] != "ahead" || m["ahead_by"] != float64(3) || m["total_commits"] != float64(3) || strings.Join(got, ",") != sha(11)+","+sha(12)+","+sha(13) {
		t.Errorf("ahead: %v %v %v", m["status"], m["ahead_by"], got)
	}
	if c := m["commits"].([]any)[2].(map[string]any); c["author"].(map[string]any)["login"] != "dev1" {
		t.Errorf("commit author: %v", c["author"])
	}
	if m = cmp(sha(13), sha(10), ""); m["status"] != "behind" || m["behind_by"] != float64(3) || len(shas(m)) != 0 {
		t.Errorf("behind: %v %v", m["status"], m["behind_by"])
	}
	if m = cmp(sha(10), sha(10), ""); m["status"] != "identical" {
		t.Errorf("identical: %v", m["status"])
	}
	// Unpaged: at most 250, the newest last.
	m = cmp(sha(1), sha(300), "")
	if got := shas(m); len(got) != 250 || got[249] != sha(300) || m["total_commits"] != float64(299) {
		t.Errorf("unpaged: %d commits, last %s, total %v", len(got), got[len(got)-1], m["total_commits"])
	}
	// Paged: chronological pages.
	if got := shas(cmp(sha(1), sha(300), "?per_page=100&page=1")); len(got) != 100 || got[0] != sha(2) {
		t.Errorf("page 1: %d commits", len(got))
	}
	// A pull request's branch is ahead of its base, and diverges from the
	// default branch that moved on.
	if m = cmp(sha(300), sha(1001), ""); m["status"] != "ahead" || len(shas(m)) != 2 {
		t.Errorf("branch from its base: %v", m["status"])
	}
	m = cmp(sha(301), sha(1001), "")
	if got := shas(m); m["status"] != "diverged" || m["behind_by"] != float64(1) || len(got) != 2 || got[1] != sha(1001) {
		t.Errorf("branch: %v %v", m["status"], got)
	}
	if a := call(t, f, "GET", repo+"/compare/"+sha(1)+"..."+strings.Repeat("f", 40), nil); a.status != 404 {
		t.Errorf("unknown head: %d", a.status)
	}
}

// A pull request merged with a merge commit: the commit has two parents,
// and a comparison lists the pull request's commits before it, as git log
// does; a squash merge's commit has one, and lists nothing more.
func TestCompareThroughAMergeCommit(t *testing.T) {
	f := newFake(t, Options{})
	f.AddCommit(sha(1), "base")
	f.AddCommit(sha(2), "on main")
	f.AddPull(PullRequest{Number: 7, Merged: true, MergeParents: true, MergeCommitSHA: sha(20),
		Commits: []Commit{{SHA: sha(10), Message: "f1"}, {SHA: sha(11), Message: "f2"}}})
	f.AddPull(PullRequest{Number: 8, Merged: true, MergeCommitSHA: sha(21), Commits: []Commit{{SHA: sha(12), Message: "squashed"}}})
	f.AddCommit(sha(3), "after")
	a := call(t, f, "GET", repo+"/compare/"+sha(1)+"..."+sha(3), nil)
	if a.status != 200 {
		t.Fatalf("%d %s", a.status, a.raw)
	}
	m := a.obj(t)
	var got []string
	parents := map[string][]string{}
	for _, c := range m["commits"].([]any) {
		cm := c.(map[string]any)
		got = append(got, cm["sha"].(string))
		for _, p := range cm["parents"].([]any) {
			parents[cm["sha"].(string)] = append(parents[cm["sha"].(string)], p.(map[string]any)["sha"].(string))
		}
	}
	want := []string{sha(2), sha(10), sha(11), sha(20), sha(21), sha(3)}
	if strings.Join(got, " ") != strings.Join(want, " ") || m["total_commits"] != float64(6) {
		t.Errorf("commits %v, total %v; want %v", got, m["total_commits"], want)
	}
	if p := parents[sha(20)]; len(p) != 2 || p[0] != sha(2) || p[1] != sha(11) {
		t.Errorf("the merge commit's parents: %v", p)
	}
	if p := parents[sha(21)]; len(p) != 1 || p[0] != sha(20) {
		t.Errorf("the squash commit's parents: %v", p)
	}
	if p := parents[sha(10)]; len(p) != 1 || p[0] != sha(2) {
		t.Errorf("the branch's first commit's parents: %v", p)
	}
}

// A user without push access creates an issue, but the labels it asks for
// are silently dropped, as GitHub documents; on an update too.
func TestLabelsDroppedWithoutPushAccess(t *testing.T) {
	f := newFake(t, Options{NoPushAccess: true})
	a := call(t, f, "POST", repo+"/issues", map[string]any{"title": "stopped", "body": "b", "labels": []string{"immune:stopped"}})
	if a.status != 201 || len(a.obj(t)["labels"].([]any)) != 0 || len(f.Labels()) != 0 {
		t.Fatalf("create: %d %s; labels %v", a.status, a.raw, f.Labels())
	}
	n := int(a.obj(t)["number"].(float64))
	if a := call(t, f, "PATCH", fmt.Sprintf("%s/issues/%d", repo, n), map[string]any{"labels": []string{"x"}}); a.status != 200 || len(f.Issues()[0].Labels) != 0 {
		t.Errorf("update: %d, labels %v", a.status, f.Issues()[0].Labels)
	}
}

// Listed oldest first, when asked to: deployments and their statuses.
func TestOldestFirst(t *testing.T) {
	f := newFake(t, Options{OldestFirst: true})
	a := f.SeedDeployment("production", sha(1), "queued", "success")
	b := f.SeedDeployment("production", sha(2), "failure")
	ids := func(path string) []any {
		var out []any
		for _, x := range call(t, f, "GET", path, nil).list(t) {
			out = append(out, x.(map[string]any)["id"])
		}
		return out
	}
	if got := ids(repo + "/deployments"); len(got) != 2 || got[0] != float64(a.ID) || got[1] != float64(b.ID) {
		t.Errorf("deployments: %v", got)
	}
	st := f.DeploymentStatuses(a.ID)
	if got := ids(fmt.Sprintf("%s/deployments/%d/statuses", repo, a.ID)); len(got) != 2 || got[0] != float64(st[0].ID) {
		t.Errorf("statuses: %v", got)
	}
}
