package e2e

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/immune-cd/immune/internal/testkit/githubfake"
	"github.com/immune-cd/immune/internal/testkit/testservice"
)

const shaBad = "b4d0c0ffee1234567890abcdef1234567890abcd"

// rollbackInputs are a manual rollback's inputs, as a workflow_dispatch
// workflow passes them.
func rollbackInputs(url string, extra map[string]string) map[string]string {
	in := fast(url, map[string]string{"duration": "500ms", "reason": "checkout errors after 4d8b3f2"})
	for k, v := range extra {
		in[k] = v
	}
	return in
}

// seedHistory gives production a history, oldest first: shaOlder deployed
// well, shaGood deployed well, shaNew failed and was rolled back to shaGood.
func seedHistory(f *githubfake.Server, manual bool) {
	seedOurs(f, "production", "deploy", shaOlder, nil, "in_progress", "success")
	seedOurs(f, "production", "deploy", shaGood, nil, "in_progress", "success")
	seedOurs(f, "production", "deploy", shaNew, nil, "in_progress", "failure")
	payload := map[string]any{"rolled_back_from": shaNew}
	if manual {
		payload["manual"] = true
	}
	seedOurs(f, "production", "deploy:rollback", shaGood, payload, "in_progress", "success")
}

func TestManualRollback(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name        string
		sha         string
		script      map[string]testservice.Behaviour
		wantCode    int
		wantVerdict string
		wantTarget  string
	}{
		{name: "explicit short SHA", sha: shaOlder[:7], wantCode: 0, wantVerdict: "rolled-back", wantTarget: shaOlder},
		{name: "one step back", sha: "", wantCode: 0, wantVerdict: "rolled-back", wantTarget: shaOlder},
		{name: "the target stays unhealthy", sha: "", script: map[string]testservice.Behaviour{shaOlder: {FailRate: 1}}, wantCode: 1, wantVerdict: "rollback-failed", wantTarget: shaOlder},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := fakeGitHub(t)
			seedHistory(f, false)
			svc, url := service(t, tt.script, shaGood)
			res := newActionRun(t, "workflow_dispatch", rollbackInputs(url, map[string]string{"sha": tt.sha})).useGitHub(f).exec()
			if res.code != tt.wantCode || res.outputs["verdict"] != tt.wantVerdict {
				t.Fatalf("exit %d, verdict %q; want %d, %q\n%s", res.code, res.outputs["verdict"], tt.wantCode, tt.wantVerdict, res.log)
			}
			if res.outputs["sha"] != tt.wantTarget || res.outputs["previous-sha"] != shaGood || svc.Current() != tt.wantTarget {
				t.Errorf("sha %s, previous-sha %s, service runs %s; want %s replacing %s", res.outputs["sha"], res.outputs["previous-sha"], svc.Current(), tt.wantTarget, shaGood)
			}
			deps := f.Deployments()
			last := deps[len(deps)-1]
			payload, _ := last.Payload.(map[string]any)
			wantState := map[int]string{0: "success", 1: "failure"}[tt.wantCode]
			if last.Task != "deploy:rollback" || last.SHA != tt.wantTarget || payload["reason"] != "checkout errors after 4d8b3f2" || payload["rolled_back_from"] != shaGood || f.LatestDeploymentState(last.ID) != wantState {
				t.Errorf("recorded %+v in state %s, want a deploy:rollback of %s with the reason, %s", last, f.LatestDeploymentState(last.ID), tt.wantTarget, wantState)
			}
			if cs := f.CommitStatuses(tt.wantTarget); len(cs) != 2 || cs[1].State != wantState {
				t.Errorf("commit statuses on the target: %+v", cs)
			}
			if tt.wantCode == 1 && !strings.Contains(res.log, "::error title=Rollback failed — production may be down::") {
				t.Errorf("no loud annotation:\n%s", res.log)
			}
			t.Logf("%s: exit %d, verdict %s, rolled back to %s", tt.name, res.code, res.outputs["verdict"], res.outputs["sha"][:7])
		})
	}
}

func TestManualRollbackToANonCommit(t *testing.T) {
	t.Parallel()
	f := fakeGitHub(t)
	seedHistory(f, false)
	svc, url := service(t, nil, shaGood)
	res := newActionRun(t, "workflow_dispatch", rollbackInputs(url, map[string]string{"sha": "deadbeef1"})).useGitHub(f).exec()
	if res.code != 2 || !strings.Contains(res.log, "input sha: deadbeef1 is not a commit of octo-org/shop") {
		t.Fatalf("exit %d, want 2 naming the input\n%s", res.code, res.log)
	}
	if len(svc.Deploys()) != 0 || len(f.Deployments()) != 4 {
		t.Errorf("something was deployed or recorded: %v, %d deployments", svc.Deploys(), len(f.Deployments()))
	}
}

// gateRun runs the gate for a pull_request or merge_group event.
func gateRun(t *testing.T, f *githubfake.Server, event string) result {
	t.Helper()
	run := newActionRun(t, event, map[string]string{"github-token": token}).useGitHub(f)
	run.env["GITHUB_SHA"] = "ec26c3e57ca3a959ca5aad62de7213c562f8c821"
	return run.exec()
}

func TestGate(t *testing.T) {
	t.Parallel()
	fixCommits := []githubfake.Commit{{SHA: "7c1d2e3f4a5b6c7d8e9f0a1b2c3d4e5f6a7b8c9d", Message: "Checkout: do not cache the tax table per tenant"}}
	revert := []githubfake.Commit{{SHA: "7c1d2e3f4a5b6c7d8e9f0a1b2c3d4e5f6a7b8c9d", Message: "Revert \"Checkout: cache the tax table\"\n\nThis reverts commit " + shaNew + "."}}
	tests := []struct {
		name        string
		event       string
		history     func(f *githubfake.Server)
		labels      []string
		commits     []githubfake.Commit
		down        bool
		wantCode    int
		wantVerdict string
		wantLog     string
	}{
		{name: "clear line", event: "pull_request", history: func(f *githubfake.Server) { seedOurs(f, "production", "deploy", shaGood, nil, "success") }, wantCode: 0, wantVerdict: "clear"},
		{name: "no deployments yet", event: "pull_request", history: func(f *githubfake.Server) {}, wantCode: 0, wantVerdict: "clear"},
		{name: "stopped after an automatic rollback", event: "pull_request", history: func(f *githubfake.Server) { seedHistory(f, false) }, commits: fixCommits, wantCode: 1, wantVerdict: "stopped",
			wantLog: "production was rolled back from 4d8b3f2 to 9f2c1e7 at "},
		{name: "stopped after a manual rollback", event: "pull_request", history: func(f *githubfake.Server) { seedHistory(f, true) }, commits: fixCommits, wantCode: 1, wantVerdict: "stopped",
			wantLog: "production was rolled back by hand from 4d8b3f2 to 9f2c1e7"},
		{name: "stopped by a failed deploy", event: "pull_request", history: func(f *githubfake.Server) { seedOurs(f, "production", "deploy", shaNew, nil, "failure") }, commits: fixCommits, wantCode: 1, wantVerdict: "stopped",
			wantLog: "production has a failure deployment of 4d8b3f2"},
		{name: "the fix label lets it through", event: "pull_request", history: func(f *githubfake.Server) { seedHistory(f, false) }, labels: []string{"bug", "immune:fix"}, commits: fixCommits, wantCode: 0, wantVerdict: "fix-allowed",
			wantLog: `#123 carries the label "immune:fix"`},
		{name: "a revert lets it through", event: "pull_request", history: func(f *githubfake.Server) { seedHistory(f, false) }, commits: revert, wantCode: 0, wantVerdict: "fix-allowed",
			wantLog: "commit 7c1d2e3 of #123 reverts 4d8b3f2"},
		{name: "merge queue", event: "merge_group", history: func(f *githubfake.Server) { seedHistory(f, false) }, labels: []string{"immune:fix"}, commits: fixCommits, wantCode: 0, wantVerdict: "fix-allowed",
			wantLog: "#123 carries the label"},
		{name: "merge queue, not a fix", event: "merge_group", history: func(f *githubfake.Server) { seedHistory(f, false) }, commits: fixCommits, wantCode: 1, wantVerdict: "stopped",
			wantLog: "#123 is not marked as a fix"},
		{name: "GitHub unreachable fails closed", event: "pull_request", history: func(f *githubfake.Server) { seedHistory(f, false) }, down: true, wantCode: 1, wantVerdict: "stopped",
			wantLog: "cannot tell whether the line is stopped, so the gate fails closed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f := fakeGitHub(t)
			tt.history(f)
			f.AddPullRequest(123, "7c1d2e3f4a5b6c7d8e9f0a1b2c3d4e5f6a7b8c9d", tt.labels, tt.commits)
			if tt.down {
				f.Inject(githubfake.Fault{Method: "GET", PathPrefix: "/repos/octo-org/shop/deployments", Status: 503})
			}
			res := gateRun(t, f, tt.event)
			if res.code != tt.wantCode || res.outputs["verdict"] != tt.wantVerdict {
				t.Fatalf("exit %d, verdict %q; want %d, %q\n%s", res.code, res.outputs["verdict"], tt.wantCode, tt.wantVerdict, res.log)
			}
			if !strings.Contains(res.log, tt.wantLog) {
				t.Errorf("log lacks %q:\n%s", tt.wantLog, res.log)
			}
			if tt.wantVerdict == "stopped" && !tt.down && !strings.Contains(res.log, `add the label "immune:fix"`) {
				t.Errorf("a stopped line does not say how to get a fix through:\n%s", res.log)
			}
			if !strings.Contains(res.summary, "immune:") {
				t.Errorf("no summary")
			}
			assertNoToken(t, res)
			t.Logf("%s: exit %d, verdict %s", tt.name, res.code, res.outputs["verdict"])
		})
	}
}

// TestGateRereadsLabels: labels added after the event count.
func TestGateRereadsLabels(t *testing.T) {
	t.Parallel()
	f := fakeGitHub(t)
	seedHistory(f, false)
	f.AddPullRequest(123, "7c1d2e3f4a5b6c7d8e9f0a1b2c3d4e5f6a7b8c9d", []string{"bug"}, nil)
	f.SetPullRequestLabels(123, []string{"bug", "immune:fix"}) // the event still says only "bug"
	res := gateRun(t, f, "pull_request")
	if res.code != 0 || res.outputs["verdict"] != "fix-allowed" {
		t.Fatalf("exit %d, verdict %q\n%s", res.code, res.outputs["verdict"], res.log)
	}
	if n := f.CallCount("GET", "/repos/octo-org/shop/issues/123/labels"); n != 1 {
		t.Errorf("labels read %d times through the API, want 1", n)
	}
}

var _ = fmt.Sprint
var _ = time.Second
