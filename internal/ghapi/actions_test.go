package ghapi

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/immune-cd/immune/internal/testkit/githubfake"
)

const dispatchesPath = "/repos/octo-org/shop/actions/workflows/deploy.yml/dispatches"

func deployWorkflow(run func(context.Context, githubfake.DispatchedRun) string) githubfake.Workflow {
	return githubfake.Workflow{
		Path: ".github/workflows/deploy.yml", Name: "Deploy", RunName: "deploy ${{ inputs.sha }} [${{ inputs.dispatch-id }}]",
		Inputs: []githubfake.WorkflowInput{{Name: "sha", Required: true}, {Name: "dispatch-id"}},
		Run:    run,
	}
}

func TestDispatchReturnsTheRun(t *testing.T) {
	e := setup(t, githubfake.Options{}, nil)
	e.fake.AddBranch("main", commitID(1))
	w := e.fake.AddWorkflow(deployWorkflow(nil))

	got, err := e.client.GetWorkflow(ctx(t), "deploy.yml")
	if err != nil || got.ID != w.ID || got.Path != w.Path || got.State != "active" || got.Name != "Deploy" {
		t.Fatalf("GetWorkflow: %+v, %v", got, err)
	}
	if byID, err := e.client.GetWorkflow(ctx(t), itoa(w.ID)); err != nil || byID.ID != w.ID {
		t.Errorf("GetWorkflow by id: %+v, %v", byID, err)
	}

	d, err := e.client.DispatchWorkflow(ctx(t), Dispatch{Workflow: "deploy.yml", Ref: "main", Inputs: map[string]string{"sha": commitID(2), "dispatch-id": "abc"}})
	if err != nil {
		t.Fatal(err)
	}
	if d.RunID == 0 || !strings.HasSuffix(d.HTMLURL, "/octo-org/shop/actions/runs/"+itoa(d.RunID)) || !strings.HasSuffix(d.RunURL, "/repos/octo-org/shop/actions/runs/"+itoa(d.RunID)) {
		t.Errorf("dispatched %+v", d)
	}
	body := e.fake.Calls()[len(e.fake.Calls())-1].Body.(map[string]any)
	if body["return_run_details"] != true || body["ref"] != "main" {
		t.Errorf("sent %v", body)
	}
	if !e.fake.WaitWorkflowRuns(5 * time.Second) {
		t.Fatal("the run did not complete")
	}
	run, err := e.client.GetWorkflowRun(ctx(t), d.RunID)
	if err != nil {
		t.Fatal(err)
	}
	if !run.Completed() || run.Conclusion != "success" || run.Event != "workflow_dispatch" || run.HeadBranch != "main" ||
		run.DisplayTitle != "deploy "+commitID(2)+" [abc]" || run.HTMLURL != d.HTMLURL || run.WorkflowID != w.ID {
		t.Errorf("run %+v", run)
	}
	if err := e.client.CancelWorkflowRun(ctx(t), d.RunID); !errors.Is(err, ErrRunCompleted) {
		t.Errorf("cancel of a completed run: %v", err)
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

func TestCancelWorkflowRun(t *testing.T) {
	e := setup(t, githubfake.Options{}, nil)
	e.fake.AddBranch("main", commitID(1))
	e.fake.AddWorkflow(deployWorkflow(func(ctx context.Context, _ githubfake.DispatchedRun) string {
		<-ctx.Done()
		return "success"
	}))
	d, err := e.client.DispatchWorkflow(ctx(t), Dispatch{Workflow: "deploy.yml", Ref: "main", Inputs: map[string]string{"sha": "x"}})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.client.CancelWorkflowRun(ctx(t), d.RunID); err != nil {
		t.Fatalf("cancel: %v", err)
	}
	e.fake.WaitWorkflowRuns(5 * time.Second)
	if r, _ := e.client.GetWorkflowRun(ctx(t), d.RunID); r.Conclusion != "cancelled" {
		t.Errorf("after cancel: %+v", r)
	}
}

func TestDispatchOnOlderEnterpriseServers(t *testing.T) {
	for name, mode := range map[string]githubfake.RunDetails{"ignored": githubfake.RunDetailsIgnored, "rejected": githubfake.RunDetailsRejected} {
		t.Run(name, func(t *testing.T) {
			e := setup(t, githubfake.Options{DispatchRunDetails: mode}, nil)
			e.fake.AddBranch("main", commitID(1))
			e.fake.AddWorkflow(deployWorkflow(nil))
			d, err := e.client.DispatchWorkflow(ctx(t), Dispatch{Workflow: "deploy.yml", Ref: "main", Inputs: map[string]string{"sha": "x", "dispatch-id": "id-1"}})
			if err != nil {
				t.Fatal(err)
			}
			if d.RunID != 0 || len(e.fake.WorkflowRuns()) != 1 {
				t.Errorf("dispatched %+v, %d runs", d, len(e.fake.WorkflowRuns()))
			}
			e.fake.WaitWorkflowRuns(5 * time.Second)
			runs, err := e.client.WorkflowRuns(ctx(t), "deploy.yml", RunFilter{Event: "workflow_dispatch", CreatedFrom: e.clock.Now().Add(-time.Minute)})
			if err != nil || len(runs) != 1 || !strings.Contains(runs[0].DisplayTitle, "[id-1]") {
				t.Errorf("listed %+v, %v", runs, err)
			}
			q := e.fake.Calls()[len(e.fake.Calls())-1].Query
			if q.Get("event") != "workflow_dispatch" || !strings.HasPrefix(q.Get("created"), ">=2024-05-01T11:59:00Z") {
				t.Errorf("list query %v", q)
			}
		})
	}
}

func TestActionsErrors(t *testing.T) {
	tests := []struct {
		name  string
		perms map[string]string
		fault *githubfake.Fault
		call  func(e *env) error
		check func(t *testing.T, err error)
	}{
		{
			name:  "dispatch without actions: write",
			perms: map[string]string{"actions": "read"},
			call: func(e *env) error {
				_, err := e.client.DispatchWorkflow(ctx0(), Dispatch{Workflow: "deploy.yml", Ref: "main", Inputs: map[string]string{"sha": "x"}})
				return err
			},
			check: func(t *testing.T, err error) {
				var pe *PermissionError
				if !errors.As(err, &pe) || pe.Permission != "actions: write" || !strings.Contains(err.Error(), `add "actions: write" to the permissions: block`) {
					t.Errorf("got %v", err)
				}
			},
		},
		{
			name: "unknown workflow",
			call: func(e *env) error { _, err := e.client.GetWorkflow(ctx0(), "nope.yml"); return err },
			check: func(t *testing.T, err error) {
				if !errors.Is(err, ErrNoSuchWorkflow) || !strings.Contains(err.Error(), "workflow nope.yml does not exist in octo-org/shop") {
					t.Errorf("got %v", err)
				}
			},
		},
		{
			name: "dispatch of an unknown workflow",
			call: func(e *env) error {
				_, err := e.client.DispatchWorkflow(ctx0(), Dispatch{Workflow: "nope.yml", Ref: "main"})
				return err
			},
			check: func(t *testing.T, err error) {
				if !errors.Is(err, ErrNoSuchWorkflow) {
					t.Errorf("got %v", err)
				}
			},
		},
		{
			name: "undeclared inputs",
			call: func(e *env) error {
				_, err := e.client.DispatchWorkflow(ctx0(), Dispatch{Workflow: "deploy.yml", Ref: "main", Inputs: map[string]string{"sha": "x", "stage": "full"}})
				return err
			},
			check: func(t *testing.T, err error) {
				var ae *APIError
				if !errors.As(err, &ae) || ae.Status != 422 || !strings.Contains(err.Error(), `Unexpected inputs provided: ["stage"]`) {
					t.Errorf("got %v", err)
				}
			},
		},
		{
			name:  "a dispatch whose answer is lost is not repeated",
			fault: &githubfake.Fault{Method: "POST", Path: dispatchesPath, Status: 502, AfterServing: true, Times: 1},
			call: func(e *env) error {
				_, err := e.client.DispatchWorkflow(ctx0(), Dispatch{Workflow: "deploy.yml", Ref: "main", Inputs: map[string]string{"sha": "x"}})
				if n := len(e.fake.WorkflowRuns()); n != 1 {
					t.Errorf("%d runs, want the one GitHub made", n)
				}
				return err
			},
			check: func(t *testing.T, err error) {
				var ue *UnavailableError
				if !errors.As(err, &ue) || ue.Attempts != 1 {
					t.Errorf("got %v", err)
				}
			},
		},
		{
			name:  "get a run without actions: read",
			perms: map[string]string{"contents": "read"},
			call:  func(e *env) error { _, err := e.client.GetWorkflowRun(ctx0(), 1); return err },
			check: func(t *testing.T, err error) {
				var pe *PermissionError
				if !errors.As(err, &pe) || pe.Permission != "actions: read" {
					t.Errorf("got %v", err)
				}
			},
		},
		{
			name:  "cancel without actions: write",
			perms: map[string]string{"actions": "read"},
			call:  func(e *env) error { return e.client.CancelWorkflowRun(ctx0(), 7000001) },
			check: func(t *testing.T, err error) {
				var pe *PermissionError
				if !errors.As(err, &pe) || pe.Permission != "actions: write" {
					t.Errorf("got %v", err)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := setup(t, githubfake.Options{Permissions: tt.perms}, nil)
			e.fake.AddBranch("main", commitID(1))
			e.fake.AddWorkflow(deployWorkflow(nil))
			if tt.fault != nil {
				e.fake.Inject(*tt.fault)
			}
			err := tt.call(e)
			tt.check(t, err)
			if err != nil && strings.Contains(err.Error(), testToken) {
				t.Errorf("token in the error: %v", err)
			}
		})
	}
}
