package githubfake

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-github/v60/github"
)

// deployWorkflow is a workflow like the README's example deploy workflow.
func deployWorkflow(run func(ctx context.Context, r DispatchedRun) string) Workflow {
	return Workflow{
		Path: ".github/workflows/deploy.yml", Name: "deploy",
		RunName: "deploy ${{ inputs.sha }} (${{ inputs.reason }}) ${{ inputs.dispatch-id }}",
		Inputs: []WorkflowInput{
			{Name: "sha", Required: true}, {Name: "previous-sha"}, {Name: "environment", Default: "production"},
			{Name: "reason", Default: "deploy"}, {Name: "stage", Default: "full"}, {Name: "dispatch-id"},
		},
		Run: run,
	}
}

// testClock is a clock the test moves while the fake's runs read it.
type testClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *testClock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *testClock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

func waitRun(t *testing.T, f *Server, id int64, status string) WorkflowRun {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		r, ok := f.WorkflowRun(id)
		if !ok {
			t.Fatalf("no run %d", id)
		}
		if r.Status == status {
			return r
		}
		if time.Now().After(deadline) {
			t.Fatalf("run %d is %s, want %s", id, r.Status, status)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestDispatchedRunLifecycle(t *testing.T) {
	f := newFake(t, Options{})
	f.AddBranch("main", sha(1))
	f.AddCommit(sha(2), "the new build")
	started := make(chan DispatchedRun, 1)
	release := make(chan string)
	w := f.AddWorkflow(deployWorkflow(func(ctx context.Context, r DispatchedRun) string {
		started <- r
		return <-release
	}))
	repo := "/repos/octo-org/shop"

	a := call(t, f, "POST", repo+"/actions/workflows/deploy.yml/dispatches", map[string]any{
		"ref": "main", "inputs": map[string]any{"sha": sha(2), "reason": "deploy", "dispatch-id": "d-1"}, "return_run_details": true,
	})
	if a.status != 200 {
		t.Fatalf("dispatch: %d %s", a.status, a.raw)
	}
	var d struct {
		ID      int64  `json:"workflow_run_id"`
		RunURL  string `json:"run_url"`
		HTMLURL string `json:"html_url"`
	}
	if err := json.Unmarshal(a.raw, &d); err != nil {
		t.Fatal(err)
	}
	if d.RunURL != f.URL()+repo+fmt.Sprintf("/actions/runs/%d", d.ID) || d.HTMLURL != f.ServerURL()+"/octo-org/shop/actions/runs/"+fmt.Sprint(d.ID) {
		t.Errorf("links %q %q", d.RunURL, d.HTMLURL)
	}
	r := <-started
	if r.ID != d.ID || r.SHA != sha(1) || r.Ref != "main" || r.Inputs["sha"] != sha(2) || r.Inputs["environment"] != "production" || r.Inputs["stage"] != "full" {
		t.Errorf("the run performs %+v", r)
	}
	got := call(t, f, "GET", fmt.Sprintf("%s/actions/runs/%d", repo, d.ID), nil).obj(t)
	if got["status"] != "in_progress" || got["conclusion"] != nil || got["event"] != "workflow_dispatch" {
		t.Errorf("while performing: %v %v %v", got["status"], got["conclusion"], got["event"])
	}
	if want := "deploy " + sha(2) + " (deploy) d-1"; got["display_title"] != want {
		t.Errorf("display_title %q, want %q", got["display_title"], want)
	}
	if fmt.Sprintf("%.0f", got["workflow_id"]) != fmt.Sprint(w.ID) {
		t.Errorf("workflow_id %v", got["workflow_id"])
	}
	release <- "failure"
	done := waitRun(t, f, d.ID, "completed")
	if done.Conclusion != "failure" {
		t.Errorf("conclusion %q", done.Conclusion)
	}
	// A completed run cannot be cancelled.
	if a := call(t, f, "POST", fmt.Sprintf("%s/actions/runs/%d/cancel", repo, d.ID), nil); a.status != 409 {
		t.Errorf("cancel of a completed run: %d", a.status)
	}
}

func TestCancelStopsTheRun(t *testing.T) {
	f := newFake(t, Options{})
	f.AddBranch("main", sha(1))
	var stopped sync.WaitGroup
	stopped.Add(1)
	f.AddWorkflow(deployWorkflow(func(ctx context.Context, r DispatchedRun) string {
		defer stopped.Done()
		<-ctx.Done()
		return "success" // ignored: the run was cancelled
	}))
	repo := "/repos/octo-org/shop"
	a := call(t, f, "POST", repo+"/actions/workflows/deploy.yml/dispatches", map[string]any{"ref": "refs/heads/main", "inputs": map[string]any{"sha": sha(1)}, "return_run_details": true})
	if a.status != 200 {
		t.Fatalf("dispatch: %d %s", a.status, a.raw)
	}
	id := f.WorkflowRuns()[0].ID
	waitRun(t, f, id, "in_progress")
	if a := call(t, f, "POST", fmt.Sprintf("%s/actions/runs/%d/cancel", repo, id), nil); a.status != 202 {
		t.Fatalf("cancel: %d %s", a.status, a.raw)
	}
	stopped.Wait()
	r := waitRun(t, f, id, "completed")
	if r.Conclusion != "cancelled" || !r.CancelRequested {
		t.Errorf("after cancel: %+v", r)
	}
}

func TestCancelWhileQueued(t *testing.T) {
	f := newFake(t, Options{})
	f.AddBranch("main", sha(1))
	ran := false
	wf := deployWorkflow(func(ctx context.Context, r DispatchedRun) string { ran = true; return "success" })
	wf.Queued = time.Hour
	f.AddWorkflow(wf)
	repo := "/repos/octo-org/shop"
	call(t, f, "POST", repo+"/actions/workflows/deploy.yml/dispatches", map[string]any{"ref": "main", "inputs": map[string]any{"sha": sha(1)}})
	id := f.WorkflowRuns()[0].ID
	if r, _ := f.WorkflowRun(id); r.Status != "queued" {
		t.Fatalf("status %q, want queued", r.Status)
	}
	call(t, f, "POST", fmt.Sprintf("%s/actions/runs/%d/cancel", repo, id), nil)
	if r := waitRun(t, f, id, "completed"); r.Conclusion != "cancelled" || ran {
		t.Errorf("a run cancelled while queued: %+v, ran %v", r, ran)
	}
}

func TestDispatchValidation(t *testing.T) {
	f := newFake(t, Options{})
	f.AddBranch("main", sha(1))
	f.AddCommit(sha(2), "")
	f.AddWorkflow(deployWorkflow(nil))
	f.AddWorkflow(Workflow{Path: ".github/workflows/ci.yml", NoDispatch: true})
	f.AddWorkflow(Workflow{Path: ".github/workflows/off.yml", State: "disabled_manually"})
	repo := "/repos/octo-org/shop/actions/workflows/"
	tests := []struct {
		name, wf string
		body     any
		status   int
		message  string
	}{
		{"unknown workflow", "nope.yml", map[string]any{"ref": "main"}, 404, "Not Found"},
		{"no ref", "deploy.yml", map[string]any{"inputs": map[string]any{"sha": "x"}}, 422, `"ref" wasn't supplied`},
		{"a commit is not a ref", "deploy.yml", map[string]any{"ref": sha(2), "inputs": map[string]any{"sha": "x"}}, 422, "No ref found for: " + sha(2)},
		{"unexpected inputs", "deploy.yml", map[string]any{"ref": "main", "inputs": map[string]any{"sha": "x", "zeta": "1", "alpha": "2"}}, 422, `Unexpected inputs provided: ["alpha", "zeta"]`},
		{"required input", "deploy.yml", map[string]any{"ref": "main", "inputs": map[string]any{"reason": "deploy"}}, 422, "Required input 'sha' not provided"},
		{"no trigger", "ci.yml", map[string]any{"ref": "main"}, 422, "Workflow does not have 'workflow_dispatch' trigger"},
		{"disabled", "off.yml", map[string]any{"ref": "main"}, 422, "disabled workflow"},
		{"return_run_details is a boolean", "deploy.yml", map[string]any{"ref": "main", "inputs": map[string]any{"sha": "x"}, "return_run_details": "yes"}, 422, "is not a boolean"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a := call(t, f, "POST", repo+tt.wf+"/dispatches", tt.body)
			if msg, _ := a.obj(t)["message"].(string); a.status != tt.status || !strings.Contains(msg, tt.message) {
				t.Errorf("%d %s, want %d with %q", a.status, a.raw, tt.status, tt.message)
			}
		})
	}
	if n := len(f.WorkflowRuns()); n != 0 {
		t.Errorf("%d runs made by refused dispatches", n)
	}
	// By id, as well as by file name.
	id := f.AddWorkflow(Workflow{Path: ".github/workflows/other.yml"}).ID
	if a := call(t, f, "POST", fmt.Sprintf("%s%d/dispatches", repo, id), map[string]any{"ref": "main"}); a.status != 204 || len(a.raw) != 0 {
		t.Errorf("dispatch by id without return_run_details: %d %q", a.status, a.raw)
	}
}

func TestOlderEnterpriseServers(t *testing.T) {
	for _, mode := range []RunDetails{RunDetailsIgnored, RunDetailsRejected} {
		f := newFake(t, Options{DispatchRunDetails: mode})
		f.AddBranch("main", sha(1))
		f.AddWorkflow(deployWorkflow(nil))
		path := "/repos/octo-org/shop/actions/workflows/deploy.yml/dispatches"
		a := call(t, f, "POST", path, map[string]any{"ref": "main", "inputs": map[string]any{"sha": "x"}, "return_run_details": true})
		switch mode {
		case RunDetailsIgnored:
			if a.status != 204 || len(a.raw) != 0 || len(f.WorkflowRuns()) != 1 {
				t.Errorf("ignored: %d %q, %d runs", a.status, a.raw, len(f.WorkflowRuns()))
			}
		case RunDetailsRejected:
			if a.status != 422 || !strings.Contains(fmt.Sprint(a.obj(t)["message"]), `"return_run_details" is not a permitted key.`) || len(f.WorkflowRuns()) != 0 {
				t.Errorf("rejected: %d %s, %d runs", a.status, a.raw, len(f.WorkflowRuns()))
			}
			if a := call(t, f, "POST", path, map[string]any{"ref": "main", "inputs": map[string]any{"sha": "x"}}); a.status != 204 {
				t.Errorf("without the parameter: %d %s", a.status, a.raw)
			}
		}
	}
}

func TestListRuns(t *testing.T) {
	clk := &testClock{now: t0}
	f := newFake(t, Options{Now: clk.Now})
	f.AddBranch("main", sha(1))
	f.AddWorkflow(deployWorkflow(nil))
	f.AddWorkflow(Workflow{Path: ".github/workflows/other.yml"})
	repo := "/repos/octo-org/shop/actions/workflows/"
	for i := 0; i < 3; i++ {
		call(t, f, "POST", repo+"deploy.yml/dispatches", map[string]any{"ref": "main", "inputs": map[string]any{"sha": sha(i), "dispatch-id": fmt.Sprint("d-", i)}})
		clk.Add(time.Minute)
	}
	call(t, f, "POST", repo+"other.yml/dispatches", map[string]any{"ref": "main"})
	if !f.WaitWorkflowRuns(5 * time.Second) {
		t.Fatal("runs did not complete")
	}

	a := call(t, f, "GET", repo+"deploy.yml/runs?event=workflow_dispatch&created=>=2024-05-01T12:01:00Z&per_page=1", nil)
	var runs github.WorkflowRuns
	if err := json.Unmarshal(a.raw, &runs); err != nil || a.status != 200 {
		t.Fatalf("%d %v", a.status, err)
	}
	if runs.GetTotalCount() != 2 || len(runs.WorkflowRuns) != 1 || !strings.HasSuffix(runs.WorkflowRuns[0].GetDisplayTitle(), "d-2") {
		t.Errorf("newest first, created filter, one per page: %d runs, %+v", runs.GetTotalCount(), runs.WorkflowRuns)
	}
	if !strings.Contains(a.header.Get("Link"), `rel="next"`) {
		t.Errorf("no next page: %q", a.header.Get("Link"))
	}
	for q, want := range map[string]int{
		"event=push": 0, "status=completed": 3, "status=success": 3, "status=failure": 0,
		"created=2024-05-01": 3, "created=2024-05-01T12:00:00Z..2024-05-01T12:01:00Z": 2, "created=<2024-05-01T12:01:00Z": 1,
	} {
		a := call(t, f, "GET", repo+"deploy.yml/runs?"+q, nil)
		if n := a.obj(t)["total_count"]; fmt.Sprint(n) != fmt.Sprint(want) {
			t.Errorf("%s: %v runs, want %d", q, n, want)
		}
	}
	if a := call(t, f, "GET", repo+"deploy.yml/runs?created=yesterday", nil); a.status != 422 {
		t.Errorf("a bad created: %d", a.status)
	}
}

func TestRunsAreListedLate(t *testing.T) {
	clk := &testClock{now: t0}
	f := newFake(t, Options{Now: clk.Now, RunListedAfter: 5 * time.Second})
	f.AddBranch("main", sha(1))
	f.AddWorkflow(deployWorkflow(nil))
	repo := "/repos/octo-org/shop/actions/workflows/deploy.yml"
	call(t, f, "POST", repo+"/dispatches", map[string]any{"ref": "main", "inputs": map[string]any{"sha": "x"}})
	count := func() string { return fmt.Sprint(call(t, f, "GET", repo+"/runs", nil).obj(t)["total_count"]) }
	if n := count(); n != "0" {
		t.Errorf("listed at once: %s", n)
	}
	clk.Add(5 * time.Second)
	if n := count(); n != "1" {
		t.Errorf("not listed after the lag: %s", n)
	}
}

func TestActionsPermissions(t *testing.T) {
	f := newFake(t, Options{Permissions: map[string]string{"actions": "read"}})
	f.AddBranch("main", sha(1))
	f.AddWorkflow(deployWorkflow(nil))
	repo := "/repos/octo-org/shop/actions/"
	if a := call(t, f, "GET", repo+"workflows/deploy.yml", nil); a.status != 200 {
		t.Errorf("get with actions: read: %d", a.status)
	}
	a := call(t, f, "POST", repo+"workflows/deploy.yml/dispatches", map[string]any{"ref": "main", "inputs": map[string]any{"sha": "x"}})
	if a.status != 403 || !strings.Contains(string(a.raw), "Resource not accessible by integration") {
		t.Errorf("dispatch with actions: read: %d %s", a.status, a.raw)
	}
	g := newFake(t, Options{Permissions: map[string]string{"contents": "read"}})
	g.AddWorkflow(deployWorkflow(nil))
	if a := call(t, g, "GET", repo+"workflows/deploy.yml", nil); a.status != 403 {
		t.Errorf("get without actions: %d", a.status)
	}
}

func TestActionsShapesMatchTemplates(t *testing.T) {
	f := newFake(t, Options{})
	f.AddBranch("main", sha(1))
	w := f.AddWorkflow(deployWorkflow(nil))
	repo := "/repos/octo-org/shop/actions/"
	a := call(t, f, "POST", repo+"workflows/deploy.yml/dispatches", map[string]any{"ref": "main", "inputs": map[string]any{"sha": "x"}, "return_run_details": true})
	id := f.WorkflowRuns()[0].ID
	f.WaitWorkflowRuns(5 * time.Second)
	list := call(t, f, "GET", repo+"workflows/deploy.yml/runs", nil)
	tests := []struct {
		template string
		ans      answer
		item     func(answer) any
		into     any
	}{
		{"workflow_dispatch_response", a, nil, &map[string]any{}},
		{"workflow", call(t, f, "GET", fmt.Sprintf("%sworkflows/%d", repo, w.ID), nil), nil, &github.Workflow{}},
		{"workflow_run", call(t, f, "GET", fmt.Sprintf("%sruns/%d", repo, id), nil), nil, &github.WorkflowRun{}},
		{"workflow_run", list, func(a answer) any { return a.obj(t)["workflow_runs"].([]any)[0] }, &github.WorkflowRuns{}},
	}
	for _, tt := range tests {
		t.Run(tt.template, func(t *testing.T) {
			want := example(t, tt.template)
			if tt.ans.status != 200 {
				t.Fatalf("%d %s", tt.ans.status, tt.ans.raw)
			}
			got := tt.ans.body
			if tt.item != nil {
				got = tt.item(tt.ans)
			}
			g := got.(map[string]any)
			if missing := keysBeyond(want, g); len(missing) > 0 {
				t.Errorf("fields of the documented example missing: %v", missing)
			}
			if err := json.Unmarshal(tt.ans.raw, tt.into); err != nil {
				t.Errorf("does not decode into %T: %v", tt.into, err)
			}
			if bytes.Contains(tt.ans.raw, []byte("api.github.com")) || bytes.Contains(tt.ans.raw, []byte("octo-repo")) {
				t.Errorf("answer still links to the example: %s", tt.ans.raw)
			}
		})
	}
}
