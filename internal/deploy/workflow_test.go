package deploy

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/immune-cd/immune/internal/clock"
	"github.com/immune-cd/immune/internal/ghapi"
	"github.com/immune-cd/immune/internal/testkit/githubfake"
)

const ghToken = "ghs_deployWorkflowTestToken"

var (
	oldSHA = strings.Repeat("a", 40)
	newSHA = strings.Repeat("b", 40)
)

// production is what the fake deploy workflow deploys to: the commit its
// runs put live, in order.
type production struct {
	mu       sync.Mutex
	deployed []string
	inputs   []map[string]string
}

func (p *production) live() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.deployed...)
}

// perform is the workflow's job: it deploys its sha input after work
// seconds, unless cancelled, and concludes as told.
func (p *production) perform(work time.Duration, conclusion string) func(context.Context, githubfake.DispatchedRun) string {
	return func(ctx context.Context, r githubfake.DispatchedRun) string {
		p.mu.Lock()
		p.inputs = append(p.inputs, r.Inputs)
		p.mu.Unlock()
		select {
		case <-ctx.Done():
			return "cancelled"
		case <-time.After(work):
		}
		if conclusion == "success" {
			p.mu.Lock()
			p.deployed = append(p.deployed, r.Inputs["sha"])
			p.mu.Unlock()
		}
		return conclusion
	}
}

func exampleWorkflow(run func(context.Context, githubfake.DispatchedRun) string) githubfake.Workflow {
	in := []githubfake.WorkflowInput{{Name: InputSHA, Required: true}}
	for _, name := range WorkflowInputs[1:] {
		in = append(in, githubfake.WorkflowInput{Name: name})
	}
	return githubfake.Workflow{
		Path: ".github/workflows/deploy.yml", Name: "deploy",
		RunName: "${{ inputs.reason }} ${{ inputs.sha }} to ${{ inputs.environment }} (${{ inputs.stage }}) ${{ inputs.dispatch-id }}",
		Inputs:  in, Run: run,
	}
}

type wfEnv struct {
	fake   *githubfake.Server
	client *ghapi.Client
	out    *syncBuffer
	runs   []Run
	mu     sync.Mutex
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func newWFEnv(t *testing.T, o githubfake.Options, wf githubfake.Workflow) *wfEnv {
	t.Helper()
	o.Token = ghToken
	f := githubfake.Start(t, o)
	f.AddBranch("main", strings.Repeat("c", 40))
	f.AddWorkflow(wf)
	c, err := ghapi.New(ghapi.Options{HTTPClient: f.Client(), APIURL: f.URL(), Token: ghToken, Repository: f.Repository(), AttemptTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	return &wfEnv{fake: f, client: c, out: &syncBuffer{}}
}

func (e *wfEnv) deployer(timeout time.Duration) *Workflow {
	return &Workflow{
		API: e.client, Workflow: "deploy.yml", Ref: "main", Timeout: timeout,
		Poll: 10 * time.Millisecond, CancelWait: 5 * time.Second, Output: e.out,
		Started: func(r Run) { e.mu.Lock(); e.runs = append(e.runs, r); e.mu.Unlock() },
	}
}

func deployReq() Request {
	return Request{SHA: newSHA, PreviousSHA: oldSHA, Environment: "production", Reason: ReasonDeploy, Stage: "full"}
}

func TestWorkflowDeploys(t *testing.T) {
	t.Parallel()
	prod := &production{}
	e := newWFEnv(t, githubfake.Options{}, exampleWorkflow(prod.perform(50*time.Millisecond, "success")))
	if err := e.deployer(time.Minute).Deploy(context.Background(), deployReq()); err != nil {
		t.Fatal(err)
	}
	if got := prod.live(); len(got) != 1 || got[0] != newSHA {
		t.Errorf("deployed %v", got)
	}
	in := prod.inputs[0]
	if in["sha"] != newSHA || in["previous-sha"] != oldSHA || in["environment"] != "production" || in["reason"] != "deploy" || in["stage"] != "full" || !strings.HasPrefix(in["dispatch-id"], "immune-") {
		t.Errorf("inputs %v", in)
	}
	runs := e.fake.WorkflowRuns()
	if len(e.runs) != 1 || len(runs) != 1 || e.runs[0].ID != runs[0].ID || e.runs[0].URL != fmt.Sprintf("%s/octo-org/shop/actions/runs/%d", e.fake.ServerURL(), runs[0].ID) {
		t.Errorf("started %+v, runs %+v", e.runs, runs)
	}
	if !strings.Contains(e.out.String(), "Workflow run: "+e.runs[0].URL) {
		t.Errorf("the log does not link the run:\n%s", e.out)
	}
}

func TestWorkflowRunThatFailsIsAFailedDeploy(t *testing.T) {
	t.Parallel()
	prod := &production{}
	e := newWFEnv(t, githubfake.Options{}, exampleWorkflow(prod.perform(0, "failure")))
	err := e.deployer(time.Minute).Deploy(context.Background(), deployReq())
	if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("workflow run %d concluded failure: %s", e.runs[0].ID, e.runs[0].URL)) {
		t.Errorf("got %v", err)
	}
	if errors.Is(err, ErrNotStarted) {
		t.Error("a run that failed did start")
	}
}

func TestWorkflowCancelledJobCancelsTheRun(t *testing.T) {
	t.Parallel()
	prod := &production{}
	e := newWFEnv(t, githubfake.Options{}, exampleWorkflow(prod.perform(time.Hour, "success")))
	ctx, cancel := context.WithCancel(context.Background())
	d := e.deployer(time.Hour)
	d.Started = func(Run) {
		go func() {
			// Once the run works, the job is cancelled.
			for {
				if r := e.fake.WorkflowRuns(); len(r) == 1 && r[0].Status == "in_progress" {
					cancel()
					return
				}
				time.Sleep(5 * time.Millisecond)
			}
		}()
	}
	err := d.Deploy(ctx, deployReq())
	if err == nil || !strings.Contains(err.Error(), "cancelled: context canceled; immune cancelled workflow run ") {
		t.Errorf("got %v", err)
	}
	e.fake.WaitWorkflowRuns(5 * time.Second)
	r := e.fake.WorkflowRuns()
	if len(r) != 1 || !r[0].CancelRequested || r[0].Conclusion != "cancelled" || len(prod.live()) != 0 {
		t.Errorf("runs %+v, deployed %v", r, prod.live())
	}
}

func TestWorkflowTimeoutCancelsTheRun(t *testing.T) {
	t.Parallel()
	prod := &production{}
	e := newWFEnv(t, githubfake.Options{}, exampleWorkflow(prod.perform(time.Hour, "success")))
	err := e.deployer(200*time.Millisecond).Deploy(context.Background(), deployReq())
	if err == nil || !strings.Contains(err.Error(), "did not finish within 200ms; immune cancelled it (it concluded cancelled)") {
		t.Errorf("got %v", err)
	}
	if r := e.fake.WorkflowRuns(); !r[0].CancelRequested || r[0].Conclusion != "cancelled" {
		t.Errorf("run %+v", r[0])
	}
}

func TestWorkflowOnOlderEnterpriseServers(t *testing.T) {
	t.Parallel()
	for name, mode := range map[string]githubfake.RunDetails{"ignored": githubfake.RunDetailsIgnored, "rejected": githubfake.RunDetailsRejected} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			prod := &production{}
			// Someone else's dispatch of the same workflow, at the same
			// time, must not be taken for ours.
			e := newWFEnv(t, githubfake.Options{DispatchRunDetails: mode, RunListedAfter: 30 * time.Millisecond}, exampleWorkflow(prod.perform(20*time.Millisecond, "success")))
			if _, err := e.client.DispatchWorkflow(context.Background(), ghapi.Dispatch{Workflow: "deploy.yml", Ref: "main", Inputs: map[string]string{"sha": oldSHA, "dispatch-id": "someone-else"}}); err != nil {
				t.Fatal(err)
			}
			if err := e.deployer(time.Minute).Deploy(context.Background(), deployReq()); err != nil {
				t.Fatal(err)
			}
			runs := e.fake.WorkflowRuns()
			if len(e.runs) != 1 || len(runs) != 2 || e.runs[0].ID != runs[1].ID {
				t.Errorf("followed %+v of %+v", e.runs, runs)
			}
			if !strings.Contains(e.out.String(), "looking for the run titled with dispatch id") {
				t.Errorf("log:\n%s", e.out)
			}
		})
	}
}

func TestWorkflowWithoutTheIDInItsTitle(t *testing.T) {
	t.Parallel()
	prod := &production{}
	wf := exampleWorkflow(prod.perform(0, "success"))
	wf.RunName = ""
	e := newWFEnv(t, githubfake.Options{DispatchRunDetails: githubfake.RunDetailsIgnored}, wf)
	d := e.deployer(time.Hour)
	d.Clock = clock.NewStep(time.Now()) // the search's two minutes pass at once
	d.Poll = 10 * time.Second
	err := d.Deploy(context.Background(), deployReq())
	if err == nil || !strings.Contains(err.Error(), "no run of it shows dispatch id") || !strings.Contains(err.Error(), "${{ inputs.dispatch-id }}") {
		t.Errorf("got %v", err)
	}
}

func TestWorkflowLostAnswerDispatchesOnce(t *testing.T) {
	t.Parallel()
	prod := &production{}
	e := newWFEnv(t, githubfake.Options{}, exampleWorkflow(prod.perform(0, "success")))
	e.fake.Inject(githubfake.Fault{Method: "POST", Path: "/repos/octo-org/shop/actions/workflows/deploy.yml/dispatches", Status: 502, AfterServing: true, Times: 1})
	if err := e.deployer(time.Minute).Deploy(context.Background(), deployReq()); err != nil {
		t.Fatal(err)
	}
	if n := len(e.fake.WorkflowRuns()); n != 1 {
		t.Errorf("%d runs, want 1", n)
	}
	if !strings.Contains(e.out.String(), "The dispatch's answer was lost") {
		t.Errorf("log:\n%s", e.out)
	}
}

func TestWorkflowDispatchRefused(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		opts  githubfake.Options
		wf    func(githubfake.Workflow) githubfake.Workflow
		want  []string
		perm  bool
		notIn string
	}{
		{name: "undeclared inputs", wf: func(w githubfake.Workflow) githubfake.Workflow {
			w.Inputs = w.Inputs[:1]
			return w
		}, want: []string{"Unexpected inputs provided", "declares the inputs sha, previous-sha, environment, reason, stage, dispatch-id", "nothing was started"}},
		{name: "no workflow_dispatch trigger", wf: func(w githubfake.Workflow) githubfake.Workflow {
			w.NoDispatch = true
			return w
		}, want: []string{"Workflow does not have 'workflow_dispatch' trigger", "on: workflow_dispatch"}},
		{name: "without actions: write", opts: githubfake.Options{Permissions: map[string]string{"actions": "read"}},
			want: []string{`"actions: write"`, "nothing was started"}, perm: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			wf := exampleWorkflow(nil)
			if tt.wf != nil {
				wf = tt.wf(wf)
			}
			e := newWFEnv(t, tt.opts, wf)
			err := e.deployer(time.Minute).Deploy(context.Background(), deployReq())
			if !errors.Is(err, ErrNotStarted) {
				t.Errorf("not ErrNotStarted: %v", err)
			}
			for _, w := range tt.want {
				if err == nil || !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q: %v", w, err)
				}
			}
			var pe *ghapi.PermissionError
			if tt.perm != errors.As(err, &pe) {
				t.Errorf("permission error: %v", err)
			}
			if len(e.fake.WorkflowRuns()) != 0 {
				t.Error("a refused dispatch made a run")
			}
		})
	}
}

func TestWorkflowCheck(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		opts githubfake.Options
		wf   func(*githubfake.Workflow)
		use  string
		want string
	}{
		{name: "known and active", use: "deploy.yml"},
		{name: "unknown", use: "shipit.yml", want: "GitHub knows no workflow shipit.yml in this repository: name a file in .github/workflows on the default branch, or a workflow's id"},
		{name: "disabled", use: "deploy.yml", wf: func(w *githubfake.Workflow) { w.State = "disabled_manually" }, want: "workflow deploy.yml (.github/workflows/deploy.yml) is disabled manually: enable it"},
		{name: "not readable", use: "deploy.yml", opts: githubfake.Options{Permissions: map[string]string{"contents": "read"}}, want: `the token cannot read workflow deploy.yml: add "actions: write" to the permissions: block`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			wf := exampleWorkflow(nil)
			if tt.wf != nil {
				tt.wf(&wf)
			}
			e := newWFEnv(t, tt.opts, wf)
			d := e.deployer(time.Minute)
			d.Workflow = tt.use
			err := d.Check(context.Background())
			if (err == nil) != (tt.want == "") || err != nil && !strings.Contains(err.Error(), tt.want) {
				t.Errorf("got %v, want %q", err, tt.want)
			}
		})
	}
}
