package e2e

// Deploying through the user's deploy workflow (dispatched through the fake
// GitHub, whose runs deploy to a real service) and through a deploy hook (a
// real local receiver that checks each signature).

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/immune-cd/immune/internal/notify"
	"github.com/immune-cd/immune/internal/testkit/githubfake"
	"github.com/immune-cd/immune/internal/testkit/testservice"
)

// shipWorkflow is the README's example deploy workflow
// (testdata/workflows/ship.yml) as the fake GitHub knows it: its declared
// inputs and its run-name are read from the file, so an example that drifts
// from what immune sends fails here. Its runs do what perform does.
func shipWorkflow(t *testing.T, perform func(ctx context.Context, in map[string]string) string) githubfake.Workflow {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(repoRoot, "testdata", "workflows", "ship.yml"))
	if err != nil {
		t.Fatal(err)
	}
	var wf struct {
		Name    string `yaml:"name"`
		RunName string `yaml:"run-name"`
		On      struct {
			Dispatch struct {
				Inputs yaml.Node `yaml:"inputs"`
			} `yaml:"workflow_dispatch"`
		} `yaml:"on"`
	}
	if err := yaml.Unmarshal(data, &wf); err != nil {
		t.Fatal(err)
	}
	w := githubfake.Workflow{Path: ".github/workflows/ship.yml", Name: wf.Name, RunName: wf.RunName,
		Run: func(ctx context.Context, r githubfake.DispatchedRun) string { return perform(ctx, r.Inputs) }}
	in := wf.On.Dispatch.Inputs
	for i := 0; i+1 < len(in.Content); i += 2 {
		var spec struct {
			Required bool   `yaml:"required"`
			Default  string `yaml:"default"`
		}
		if err := in.Content[i+1].Decode(&spec); err != nil {
			t.Fatal(err)
		}
		w.Inputs = append(w.Inputs, githubfake.WorkflowInput{Name: in.Content[i].Value, Required: spec.Required, Default: spec.Default})
	}
	return w
}

// shipTo is a deploy workflow's job for the scripted service: it puts its
// sha input live through the service's admin endpoint, as the example's
// kubectl step does, and succeeds.
func shipTo(url string) func(ctx context.Context, in map[string]string) string {
	return func(ctx context.Context, in map[string]string) string {
		if shipOnce(ctx, url+"/deploy", in["sha"]) != nil {
			return "failure"
		}
		return "success"
	}
}

func shipOnce(ctx context.Context, endpoint, sha string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, endpoint+"?sha="+url.QueryEscape(sha), nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s", resp.Status)
	}
	return nil
}

// viaWorkflow are the inputs of a run that deploys through ship.yml.
func viaWorkflow(url string, extra map[string]string) map[string]string {
	in := fast(url, map[string]string{"deploy-command": "", "deploy-workflow": "ship.yml"})
	for k, v := range extra {
		in[k] = v
	}
	return in
}

// runURL is the web page of a run of the fake.
func runURL(f *githubfake.Server, id int64) string {
	return fmt.Sprintf("%s/octo-org/shop/actions/runs/%d", f.ServerURL(), id)
}

// runInputs lists the runs' inputs as "reason stage sha previous-sha"
// lines, shortened.
func runInputs(runs []githubfake.WorkflowRun) []string {
	var out []string
	for _, r := range runs {
		in := r.Inputs
		out = append(out, fmt.Sprintf("%s %s %.7s %.7s %s", in["reason"], in["stage"], in["sha"], in["previous-sha"], in["environment"]))
	}
	return out
}

// A crash deployed through deploy-workflow is rolled back through a second
// dispatched run; both are awaited and linked in the log and the summary.
// On an older Enterprise Server, which does not return the run, the same.
func TestDeployWorkflowRollsBackACrash(t *testing.T) {
	t.Parallel()
	for name, mode := range map[string]githubfake.RunDetails{"github.com": githubfake.RunDetailsReturned, "an older Enterprise Server": githubfake.RunDetailsIgnored} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			f := githubfake.Start(t, githubfake.Options{Owner: "octo-org", Repo: "shop", Token: token, DispatchRunDetails: mode, RunListedAfter: 500 * time.Millisecond})
			f.AddCommit(shaGood, "Search: faster facets")
			f.AddCommit(shaNew, "Checkout: cache the tax table")
			f.AddBranch("main", shaNew)
			svc, url := service(t, map[string]testservice.Behaviour{shaNew: {FailRate: 1, FailStatus: 503}}, shaGood)
			f.AddWorkflow(shipWorkflow(t, shipTo(url)))

			res := newActionRun(t, "push", viaWorkflow(url, nil)).useGitHub(f).exec()
			if res.code != 1 || res.outputs["verdict"] != "rolled-back" {
				t.Fatalf("exit %d, verdict %q\n%s", res.code, res.outputs["verdict"], res.log)
			}
			runs := f.WorkflowRuns()
			want := []string{"deploy full " + shaNew[:7] + " " + shaGood[:7] + " production", "rollback full " + shaGood[:7] + " " + shaNew[:7] + " production"}
			if got := runInputs(runs); strings.Join(got, "|") != strings.Join(want, "|") {
				t.Errorf("dispatched %q, want %q", got, want)
			}
			for _, r := range runs {
				if r.Status != "completed" || r.Conclusion != "success" || r.HeadBranch != "main" || !strings.Contains(r.DisplayTitle, r.Inputs["dispatch-id"]) {
					t.Errorf("run %+v", r)
				}
				if u := runURL(f, r.ID); !strings.Contains(res.log, "workflow run "+u) || !strings.Contains(res.summary, "(run)("+u+")") && !strings.Contains(res.summary, "[run]("+u+")") {
					t.Errorf("run %d is not linked in the log and the summary:\n%s", r.ID, res.summary)
				}
			}
			if got := svc.Deploys(); strings.Join(got, ",") != shaNew+","+shaGood {
				t.Errorf("the service got %v", got)
			}
			if !strings.Contains(res.summary, "| Deploy workflow runs | ✅ deploy of `"+shaNew[:7]+"`") {
				t.Errorf("summary:\n%s", res.summary)
			}
			if strings.Contains(res.log, "IMMUNE_SHA") {
				t.Error("a command ran")
			}
		})
	}
}

// A deploy run that concludes failure is a failed deploy: the rollback's
// run puts production back on what it ran before.
func TestDeployWorkflowRunFails(t *testing.T) {
	t.Parallel()
	f := fakeGitHub(t)
	f.AddBranch("main", shaNew)
	svc, url := service(t, nil, shaGood)
	f.AddWorkflow(shipWorkflow(t, func(ctx context.Context, in map[string]string) string {
		if err := shipOnce(ctx, url+"/deploy", in["sha"]); err != nil {
			return "failure"
		}
		if in["reason"] == "deploy" {
			return "failure" // the migration after the switch failed
		}
		return "success"
	}))
	res := newActionRun(t, "push", viaWorkflow(url, nil)).useGitHub(f).exec()
	runs := f.WorkflowRuns()
	if res.code != 1 || res.outputs["verdict"] != "rolled-back" || len(runs) != 2 {
		t.Fatalf("exit %d, verdict %q, %d runs\n%s", res.code, res.outputs["verdict"], len(runs), res.log)
	}
	if svc.Current() != shaGood {
		t.Errorf("production runs %s, want %s", svc.Current(), shaGood)
	}
	why := fmt.Sprintf("the deploy workflow's deploy run failed: workflow run %d concluded failure: %s", runs[0].ID, runURL(f, runs[0].ID))
	if !strings.Contains(res.summary, why) || !strings.Contains(res.summary, "| Deploy workflow run | failed: ") {
		t.Errorf("summary lacks %q:\n%s", why, res.summary)
	}
	if d := f.Deployments()[0]; f.LatestDeploymentState(d.ID) != "failure" {
		t.Errorf("the deploy's deployment is %s", f.LatestDeploymentState(d.ID))
	}
}

// SIGTERM while the deploy run is in progress cancels it through the API,
// and nothing else is dispatched.
func TestDeployWorkflowCancelledJob(t *testing.T) {
	t.Parallel()
	f := fakeGitHub(t)
	f.AddBranch("main", shaNew)
	svc, url := service(t, nil, shaGood)
	f.AddWorkflow(shipWorkflow(t, func(ctx context.Context, in map[string]string) string {
		<-ctx.Done() // a long rollout
		return "cancelled"
	}))
	run := newActionRun(t, "push", viaWorkflow(url, map[string]string{"deploy-timeout": "5m"})).useGitHub(f)
	c := run.cancelWhen(func() bool {
		r := f.WorkflowRuns()
		return len(r) == 1 && r[0].Status == "in_progress"
	}, 200*time.Millisecond)
	if !f.WaitWorkflowRuns(5 * time.Second) {
		t.Fatal("the run was not stopped")
	}
	runs := f.WorkflowRuns()
	if c.code != 1 || c.outputs["verdict"] != "cancelled" || len(runs) != 1 || !runs[0].CancelRequested || runs[0].Conclusion != "cancelled" {
		t.Fatalf("exit %d, verdict %q, runs %+v\n%s", c.code, c.outputs["verdict"], runs, c.log)
	}
	if n := f.CallCount("POST", "/repos/octo-org/shop/actions/workflows/ship.yml/dispatches"); n != 1 {
		t.Errorf("%d dispatches, want 1", n)
	}
	for _, want := range []string{"immune cancelled workflow run " + fmt.Sprint(runs[0].ID), "the deploy workflow's deploy run was stopped midway"} {
		if !strings.Contains(c.log, want) {
			t.Errorf("log lacks %q:\n%s", want, c.log)
		}
	}
	if len(svc.Deploys()) != 0 {
		t.Errorf("deployed %v", svc.Deploys())
	}
	t.Logf("cancelled in %s", c.took)
}

// A workflow GitHub does not know is refused before anything is deployed.
func TestDeployWorkflowUnknown(t *testing.T) {
	t.Parallel()
	f := fakeGitHub(t)
	f.AddBranch("main", shaNew)
	svc, url := service(t, nil, shaGood)
	res := newActionRun(t, "push", viaWorkflow(url, map[string]string{"deploy-workflow": "shipit.yml"})).useGitHub(f).exec()
	if res.code != 2 || !strings.Contains(res.log, "input deploy-workflow: GitHub knows no workflow shipit.yml in this repository") {
		t.Fatalf("exit %d\n%s", res.code, res.log)
	}
	if len(svc.Deploys()) != 0 || len(f.Deployments()) != 0 {
		t.Errorf("deployed %v, recorded %d deployments", svc.Deploys(), len(f.Deployments()))
	}
}

// A deploy workflow that does not declare immune's inputs: GitHub refuses
// the dispatch (422), so nothing was deployed. Nothing is rolled back (a
// second dispatch would be refused alike, and production never changed):
// the run fails inconclusive, says what to fix and that production runs
// what it ran, the records end error, and the line is not stopped. With a
// canary, the same at the canary's step.
func TestDeployWorkflowRefused(t *testing.T) {
	t.Parallel()
	for _, canary := range []bool{false, true} {
		t.Run(fmt.Sprintf("canary=%v", canary), func(t *testing.T) {
			t.Parallel()
			f := fakeGitHub(t)
			f.AddBranch("main", shaNew)
			svc, url := service(t, nil, shaGood)
			w := shipWorkflow(t, func(ctx context.Context, in map[string]string) string { return "success" })
			w.Inputs = nil // on: workflow_dispatch, with no inputs
			f.AddWorkflow(w)
			extra := map[string]string{}
			if canary {
				extra = map[string]string{"canary": "true", "canary-duration": "1s", "health-url": url + "/stable/health", "canary-health-url": url + "/canary/health"}
			}
			res := newActionRun(t, "push", viaWorkflow(url, extra)).useGitHub(f).exec()
			if res.code != 1 || res.outputs["verdict"] != "inconclusive" || res.outputs["rolled-back"] == "true" {
				t.Fatalf("exit %d, verdict %q, rolled-back %q\n%s", res.code, res.outputs["verdict"], res.outputs["rolled-back"], res.log)
			}
			if n := f.CallCount("POST", "/repos/octo-org/shop/actions/workflows/ship.yml/dispatches"); n != 1 {
				t.Errorf("%d dispatches, want 1 (no rollback of what never started)", n)
			}
			if len(svc.Deploys()) != 0 || svc.Current() != shaGood {
				t.Errorf("deployed %v; production runs %s", svc.Deploys(), svc.Current())
			}
			for _, want := range []string{"was not started, so nothing was deployed and production still runs what it ran",
				"declares the inputs sha, previous-sha, environment, reason, stage, dispatch-id"} {
				if !strings.Contains(res.log, want) || !strings.Contains(res.summary, want) {
					t.Errorf("log or summary lacks %q:\n%s\n%s", want, res.log, res.summary)
				}
			}
			ds := f.Deployments()
			if len(ds) != 1 || f.LatestDeploymentState(ds[0].ID) != "error" {
				t.Fatalf("deployments %+v", ds)
			}
			if st := f.DeploymentStatuses(ds[0].ID); !strings.Contains(st[len(st)-1].Description, "not started") {
				t.Errorf("the deployment's last status: %+v", st[len(st)-1])
			}
			cs := f.CommitStatuses(shaNew)
			if len(cs) == 0 || cs[len(cs)-1].State != "error" {
				t.Errorf("commit statuses %+v", cs)
			}
			if len(f.Issues()) != 0 {
				t.Errorf("the line was stopped: %+v", f.Issues())
			}
		})
	}
}

// A deploy hook that refuses the call (403: say, a secret rotated on one
// side only): nothing was deployed, so nothing is rolled back, and the
// hook is called once.
func TestDeployHookRefused(t *testing.T) {
	t.Parallel()
	f := fakeGitHub(t)
	svc, url := service(t, nil, shaGood)
	var calls atomic.Int32
	refuser := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		calls.Add(1)
		http.Error(w, "signature does not match", http.StatusForbidden)
	}))
	t.Cleanup(refuser.Close)
	in := fast(url, map[string]string{"deploy-command": "", "deploy-hook": refuser.URL + "/deploy", "deploy-hook-secret": "hook-s3cret"})
	res := newActionRun(t, "push", in).useGitHub(f).exec()
	if res.code != 1 || res.outputs["verdict"] != "inconclusive" || res.outputs["rolled-back"] == "true" || calls.Load() != 1 {
		t.Fatalf("exit %d, verdict %q, rolled-back %q, %d calls\n%s", res.code, res.outputs["verdict"], res.outputs["rolled-back"], calls.Load(), res.log)
	}
	if len(svc.Deploys()) != 0 || !strings.Contains(res.summary, "| Not deployed |") ||
		!strings.Contains(res.log, "the deploy hook's deploy call was not started, so nothing was deployed") {
		t.Errorf("deployed %v\n%s\n%s", svc.Deploys(), res.log, res.summary)
	}
}

// hookReceiver is a deploy hook in front of the scripted service: it
// checks every request's signature, answers the first delivery of each
// idempotency key 503 (without deploying) to force a retry, and deploys a
// retried one.
type hookReceiver struct {
	t          *testing.T
	secret     string
	deploy     func(ctx context.Context, body map[string]string) error
	mu         sync.Mutex
	deliveries []hookDelivery
	srv        *httptest.Server
}

type hookDelivery struct {
	Key    string
	Signed bool
	Body   map[string]string
}

const hookPath = "/deploy/srv-d8f3k2j9?key=hk_9bX2sQ7vLm"

func newHookReceiver(t *testing.T, secret string, deploy func(ctx context.Context, body map[string]string) error) *hookReceiver {
	h := &hookReceiver{t: t, secret: secret, deploy: deploy}
	h.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		raw, _ := io.ReadAll(r.Body)
		d := hookDelivery{Key: r.Header.Get("Idempotency-Key"), Signed: notify.Verify(secret, raw, r.Header.Get("X-Immune-Signature-256"))}
		_ = json.Unmarshal(raw, &d.Body)
		if !d.Signed || r.URL.RequestURI() != hookPath {
			http.Error(w, "bad signature", http.StatusUnauthorized)
			return
		}
		h.mu.Lock()
		first := true
		for _, e := range h.deliveries {
			if e.Key == d.Key {
				first = false
			}
		}
		h.deliveries = append(h.deliveries, d)
		h.mu.Unlock()
		if first {
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		if err := h.deploy(r.Context(), d.Body); err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		w.WriteHeader(http.StatusAccepted)
	}))
	t.Cleanup(h.srv.Close)
	return h
}

func (h *hookReceiver) url() string { return h.srv.URL + hookPath }

func (h *hookReceiver) got() []hookDelivery {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]hookDelivery(nil), h.deliveries...)
}

// viaHook are the inputs of a run that deploys through the hook.
func viaHook(url string, h *hookReceiver, extra map[string]string) map[string]string {
	in := fast(url, map[string]string{"deploy-command": "", "deploy-hook": h.url(), "deploy-hook-secret": h.secret})
	for k, v := range extra {
		in[k] = v
	}
	return in
}

// assertHookHidden checks that the hook's URL (its token) shows nowhere.
func assertHookHidden(t *testing.T, texts map[string]string) {
	t.Helper()
	for name, text := range texts {
		for _, secret := range []string{"srv-d8f3k2j9", "hk_9bX2sQ7vLm", "hook-s3cret"} {
			if strings.Contains(text, secret) && !strings.Contains(text, "::add-mask::"+secret) {
				for _, line := range strings.Split(text, "\n") {
					if strings.Contains(line, secret) && !strings.HasPrefix(line, "::add-mask::") {
						t.Errorf("%s shows %q: %q", name, secret, line)
					}
				}
			}
		}
	}
}

// A crash deployed through deploy-hook is rolled back through it; each
// delivery is signed, a retried one carries the same idempotency key, and
// the URL is never shown.
func TestDeployHookRollsBackACrash(t *testing.T) {
	t.Parallel()
	f := fakeGitHub(t)
	svc, url := service(t, map[string]testservice.Behaviour{shaNew: {FailRate: 1, FailStatus: 503}}, shaGood)
	h := newHookReceiver(t, "hook-s3cret", func(ctx context.Context, body map[string]string) error {
		return shipOnce(ctx, url+"/deploy", body["sha"])
	})
	res := newActionRun(t, "push", viaHook(url, h, nil)).useGitHub(f).exec()
	if res.code != 1 || res.outputs["verdict"] != "rolled-back" {
		t.Fatalf("exit %d, verdict %q\n%s", res.code, res.outputs["verdict"], res.log)
	}
	got := h.got()
	if len(got) != 4 || got[0].Key != got[1].Key || got[2].Key != got[3].Key || got[0].Key == got[2].Key {
		t.Fatalf("deliveries %+v: want two per step, a step's two with one key", got)
	}
	want := []map[string]string{
		{"sha": shaNew, "previous_sha": shaGood, "environment": "production", "reason": "deploy", "stage": "full"},
		{"sha": shaGood, "previous_sha": shaNew, "environment": "production", "reason": "rollback", "stage": "full"},
	}
	for i, d := range []hookDelivery{got[1], got[3]} {
		if fmt.Sprint(d.Body) != fmt.Sprint(want[i]) {
			t.Errorf("delivery %d: %v, want %v", i, d.Body, want[i])
		}
	}
	if strings.Join(svc.Deploys(), ",") != shaNew+","+shaGood {
		t.Errorf("the service got %v", svc.Deploys())
	}
	if !strings.Contains(res.log, "retrying in 1s with the same idempotency key") {
		t.Errorf("log:\n%s", res.log)
	}
	report, _ := json.Marshal(res.report)
	assertHookHidden(t, map[string]string{"log": res.log, "summary": res.summary, "report": string(report), "outputs": fmt.Sprint(res.outputs)})
	if !strings.Contains(res.log, "::add-mask::"+h.url()) {
		t.Error("the hook's URL is not masked in the log")
	}
}

// The canary goes through either deployer: a canary that regresses is
// removed by the deployer (stage canary, reason rollback), and the stable
// fleet never gets the build.
func TestCanaryThroughEitherDeployer(t *testing.T) {
	t.Parallel()
	for _, by := range []string{"workflow", "hook"} {
		t.Run(by, func(t *testing.T) {
			t.Parallel()
			f := fakeGitHub(t)
			f.AddBranch("main", shaNew)
			seedOurs(f, "production", "deploy", shaGood, nil, "in_progress", "success")
			svc, url := tracks(t, map[string]testservice.Behaviour{shaNew: {FailRate: 1}}, shaGood)
			// The deployer's job: the canary subset alone, or the whole
			// fleet (the canary included).
			var mu sync.Mutex
			var steps []string
			put := func(ctx context.Context, in map[string]string) error {
				mu.Lock()
				steps = append(steps, in["stage"]+" "+in["reason"]+" "+in["sha"][:min(7, len(in["sha"]))])
				mu.Unlock()
				if in["stage"] == "canary" {
					return shipOnce(ctx, url+"/canary/deploy", in["sha"])
				}
				if err := shipOnce(ctx, url+"/stable/deploy", in["sha"]); err != nil {
					return err
				}
				return shipOnce(ctx, url+"/canary/deploy", in["sha"])
			}
			in := map[string]string{
				"health-url": url + "/stable/health", "canary-health-url": url + "/canary/health", "canary": "true",
				"canary-duration": "3s", "expect-version": "header:X-Version", "deploy-command": "",
			}
			if by == "workflow" {
				f.AddWorkflow(shipWorkflow(t, func(ctx context.Context, in map[string]string) string {
					if put(ctx, in) != nil {
						return "failure"
					}
					return "success"
				}))
				in["deploy-workflow"] = "ship.yml"
			} else {
				h := newHookReceiver(t, "hook-s3cret", put)
				in["deploy-hook"], in["deploy-hook-secret"] = h.url(), h.secret
			}
			res := newActionRun(t, "push", fast(url, in)).useGitHub(f).exec()
			if res.code != 1 || res.outputs["verdict"] != "rolled-back" || res.outputs["stage"] != "canary" {
				t.Fatalf("exit %d, verdict %q, stage %q\n%s", res.code, res.outputs["verdict"], res.outputs["stage"], res.log)
			}
			want := "canary deploy " + shaNew[:7] + "|canary rollback " + shaGood[:7]
			if got := strings.Join(steps, "|"); got != want {
				t.Errorf("steps %q, want %q", got, want)
			}
			if len(svc.Stable.Deploys()) != 0 || svc.Canary.Current() != shaGood {
				t.Errorf("stable got %v, the canary runs %s", svc.Stable.Deploys(), svc.Canary.Current())
			}
			if by == "workflow" {
				runs := f.WorkflowRuns()
				if len(runs) != 2 || !strings.Contains(res.summary, "canary of `"+shaNew[:7]+"`: [run]("+runURL(f, runs[0].ID)+")") ||
					!strings.Contains(res.summary, "canary removal to `"+shaGood[:7]+"`: [run]("+runURL(f, runs[1].ID)+")") {
					t.Errorf("runs %d, summary:\n%s", len(runs), res.summary)
				}
			}
		})
	}
}

// The manual rollback goes through either deployer.
func TestManualRollbackThroughEitherDeployer(t *testing.T) {
	t.Parallel()
	for _, by := range []string{"workflow", "hook"} {
		t.Run(by, func(t *testing.T) {
			t.Parallel()
			f := fakeGitHub(t)
			f.AddBranch("main", shaGood)
			seedHistory(f, false)
			svc, url := service(t, nil, shaGood)
			in := rollbackInputs(url, map[string]string{"deploy-command": ""})
			var h *hookReceiver
			if by == "workflow" {
				f.AddWorkflow(shipWorkflow(t, shipTo(url)))
				in["deploy-workflow"] = "ship.yml"
			} else {
				h = newHookReceiver(t, "hook-s3cret", func(ctx context.Context, body map[string]string) error {
					return shipOnce(ctx, url+"/deploy", body["sha"])
				})
				in["deploy-hook"], in["deploy-hook-secret"] = h.url(), h.secret
			}
			res := newActionRun(t, "workflow_dispatch", in).useGitHub(f).exec()
			if res.code != 0 || res.outputs["verdict"] != "rolled-back" || svc.Current() != shaOlder {
				t.Fatalf("exit %d, verdict %q, the service runs %s\n%s", res.code, res.outputs["verdict"], svc.Current(), res.log)
			}
			if by == "workflow" {
				runs := f.WorkflowRuns()
				if got := strings.Join(runInputs(runs), "|"); got != "rollback full "+shaOlder[:7]+" "+shaGood[:7]+" production" {
					t.Errorf("dispatched %q", got)
				}
				if !strings.Contains(res.summary, "[run]("+runURL(f, runs[0].ID)+")") {
					t.Errorf("summary:\n%s", res.summary)
				}
			} else if got := h.got(); len(got) != 2 || got[1].Body["reason"] != "rollback" || got[1].Body["sha"] != shaOlder {
				t.Errorf("deliveries %+v", got)
			}
		})
	}
}
