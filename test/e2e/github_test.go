package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/immune-cd/immune/internal/testkit/githubfake"
	"github.com/immune-cd/immune/internal/testkit/testservice"
)

// fakeGitHub starts a fake GitHub for octo-org/shop that knows the commits
// used by the tests.
func fakeGitHub(t *testing.T) *githubfake.Server {
	t.Helper()
	f := githubfake.Start(t, githubfake.Options{Owner: "octo-org", Repo: "shop", Token: token})
	f.AddCommit(shaOlder, "Checkout: show the tax line")
	f.AddCommit(shaGood, "Search: faster facets")
	f.AddCommit(shaNew, "Checkout: cache the tax table")
	return f
}

// useGitHub points a run at the fake with the runner's token.
func (r *actionRun) useGitHub(f *githubfake.Server) *actionRun {
	r.env["GITHUB_API_URL"] = f.URL()
	r.inputs["github-token"] = token
	return r
}

// seedOurs records, as history, a deployment the way immune makes them:
// ref = the full SHA and immune's payload (with extra fields), then the
// given statuses, oldest first.
func seedOurs(f *githubfake.Server, env, task, commit string, extra map[string]any, states ...string) githubfake.Deployment {
	payload := map[string]any{"tool": "immune", "version": "0.1.0", "run_url": "https://github.com/octo-org/shop/actions/runs/7400000001"}
	for k, v := range extra {
		payload[k] = v
	}
	d := f.AddDeployment(githubfake.Deployment{SHA: commit, Environment: env, Task: task, Payload: payload})
	for _, st := range states {
		f.AddDeploymentStatus(d.ID, githubfake.DeploymentStatus{State: st})
	}
	return d
}

// asJob makes the run a job that names `environment:`: GitHub makes a
// deployment of its own when the job starts (ref = the branch, empty
// payload) and finishes it with the job's outcome when the run ends.
func (r *actionRun) asJob(f *githubfake.Server, ref string) *actionRun {
	r.job = func() func(succeeded bool) {
		env := r.inputs["environment"]
		if env == "" {
			env = "production"
		}
		return f.StartJob(env, ref, r.env["GITHUB_SHA"], r.env["GITHUB_ACTOR"]).Finish
	}
	return r
}

// calls lists the fake's calls as "METHOD path -> status" lines.
func calls(f *githubfake.Server) []string {
	var out []string
	for _, c := range f.Calls() {
		line := fmt.Sprintf("%s %s", c.Method, c.Path)
		if q := c.Query.Encode(); q != "" {
			line += "?" + q
		}
		out = append(out, fmt.Sprintf("%s -> %d", line, c.Status))
	}
	return out
}

// bodies returns the decoded JSON bodies of calls matching method and a
// path suffix.
func bodies(f *githubfake.Server, method, suffix string) []map[string]any {
	var out []map[string]any
	for _, c := range f.Calls() {
		if c.Method == method && strings.HasSuffix(c.Path, suffix) {
			if m, ok := c.Body.(map[string]any); ok {
				out = append(out, m)
			}
		}
	}
	return out
}

// assertNoToken checks that the token appears nowhere but in the mask
// command that hides it.
// command that hides it: not in any letter case, nor its first or last 8
// characters (what a proxy that truncates it shows).
func assertNoToken(t *testing.T, res result) {
	t.Helper()
	lower := strings.ToLower(token)
	leaks := func(text string) bool {
		text = strings.ToLower(text)
		return strings.Contains(text, lower) || strings.Contains(text, lower[:8]) || strings.Contains(text, lower[len(lower)-8:])
	}
	for _, line := range strings.Split(res.log, "\n") {
		if leaks(line) && line != "::add-mask::"+token {
			t.Errorf("log leaks the token: %q", line)
		}
	}
	report, _ := json.Marshal(res.report)
	for name, text := range map[string]string{"summary": res.summary, "report": string(report), "outputs": fmt.Sprint(res.outputs)} {
		if leaks(text) {
			t.Errorf("%s leaks the token", name)
		}
	}
}

// A proxy in front of GitHub that echoes the token lowercased or cut short
// in its error answers: the run says what failed, and shows no part of the
// token (the runner's mask hides only the token as it was given).
func TestTokenEchoedByAProxyIsHidden(t *testing.T) {
	t.Parallel()
	f := fakeGitHub(t)
	f.Inject(githubfake.Fault{Method: "GET", Path: "/repos/octo-org/shop/deployments", Status: 401,
		Message: "proxy: credentials " + strings.ToLower(token) + " were refused"})
	f.Inject(githubfake.Fault{Method: "POST", Path: "/repos/octo-org/shop/deployments", Status: 401,
		Message: "proxy: credentials " + token[:14] + "… were refused"})
	svc, url := service(t, nil, shaGood)
	res := newActionRun(t, "push", fast(url, nil)).useGitHub(f).exec()
	if svc.Current() != shaNew {
		t.Fatalf("exit %d, service runs %s\n%s", res.code, svc.Current(), res.log)
	}
	if !strings.Contains(res.log, "proxy: credentials REDACTED") {
		t.Errorf("the log does not say what the proxy answered:\n%s", res.log)
	}
	assertNoToken(t, res)
}

func TestGitHubHealthyDeploy(t *testing.T) {
	t.Parallel()
	f := fakeGitHub(t)
	seedOurs(f, "production", "deploy", shaGood, nil, "in_progress", "success")
	svc, url := service(t, nil, shaGood)
	run := newActionRun(t, "push", fast(url, map[string]string{"environment-url": "https://shop.example.com"})).useGitHub(f)
	res := run.exec()
	if res.code != 0 {
		t.Fatalf("exit %d\n%s", res.code, res.log)
	}
	assertNoToken(t, res)
	if !strings.Contains(res.log, "::add-mask::"+token) {
		t.Error("the token was not masked")
	}
	if res.outputs["previous-sha"] != shaGood || !strings.Contains(res.log, "(from GitHub deployment") {
		t.Errorf("previous-sha = %q, want %s from GitHub\n%s", res.outputs["previous-sha"], shaGood, res.log)
	}
	if svc.Current() != shaNew {
		t.Errorf("service runs %s", svc.Current())
	}

	deps := f.Deployments()
	if len(deps) != 2 {
		t.Fatalf("%d deployments, want the seeded one and ours", len(deps))
	}
	ours := deps[1]
	if ours.SHA != shaNew || ours.Task != "deploy" || ours.Environment != "production" || res.outputs["deployment-id"] != fmt.Sprint(ours.ID) {
		t.Errorf("deployment = %+v, output deployment-id %q", ours, res.outputs["deployment-id"])
	}
	req := bodies(f, "POST", "/deployments")[0]
	if req["auto_merge"] != false || fmt.Sprint(req["required_contexts"]) != "[]" || req["ref"] != shaNew {
		t.Errorf("create deployment body = %v; want auto_merge false, required_contexts [], ref %s", req, shaNew)
	}
	payload, _ := req["payload"].(map[string]any)
	if payload["previous_sha"] != shaGood || payload["tool"] != "immune" || payload["run_url"] != "https://github.com/octo-org/shop/actions/runs/7412345678" {
		t.Errorf("payload = %v", payload)
	}
	var states []string
	for _, s := range f.DeploymentStatuses(ours.ID) {
		states = append(states, s.State)
		if s.LogURL != "https://github.com/octo-org/shop/actions/runs/7412345678" || s.EnvironmentURL != "https://shop.example.com" {
			t.Errorf("status %s: log_url %q, environment_url %q", s.State, s.LogURL, s.EnvironmentURL)
		}
	}
	if got := strings.Join(states, ","); got != "queued,in_progress,success" {
		t.Errorf("deployment states = %s, want queued,in_progress,success", got)
	}
	var commit []string
	for _, s := range f.CommitStatuses(shaNew) {
		if s.Context != "immune/production" {
			t.Errorf("commit status context %q", s.Context)
		}
		commit = append(commit, s.State+": "+s.Description)
	}
	if len(commit) != 2 || !strings.HasPrefix(commit[0], "pending: watching 4d8b3f2") || !strings.HasPrefix(commit[1], "success: healthy: 0 of") {
		t.Errorf("commit statuses = %q", commit)
	}
	if !strings.Contains(res.summary, "[`4d8b3f2`](https://github.com/octo-org/shop/commit/"+shaNew+")") || !strings.Contains(res.summary, "xychart-beta") {
		t.Errorf("summary lacks the commit link or the chart:\n%s", res.summary)
	}
}

// TestGitHubRegression is the scenario the closing note quotes: the exact
// API calls of a regression that is rolled back.
func TestGitHubRegression(t *testing.T) {
	t.Parallel()
	f := fakeGitHub(t)
	seedOurs(f, "production", "deploy", shaGood, nil, "success")
	svc, url := service(t, map[string]testservice.Behaviour{shaNew: {FailRate: 0.5}}, shaGood)
	res := newActionRun(t, "push", fast(url, nil)).useGitHub(f).exec()
	if res.code != 1 || res.outputs["verdict"] != "rolled-back" || svc.Current() != shaGood {
		t.Fatalf("exit %d, verdict %s, service %s\n%s", res.code, res.outputs["verdict"], svc.Current(), res.log)
	}
	assertNoToken(t, res)
	deps := f.Deployments()
	if len(deps) != 3 {
		t.Fatalf("%d deployments, want seeded, ours and the rollback", len(deps))
	}
	bad, back := deps[1], deps[2]
	if f.LatestDeploymentState(bad.ID) != "failure" {
		t.Errorf("the bad deployment ends %s, want failure", f.LatestDeploymentState(bad.ID))
	}
	payload, _ := back.Payload.(map[string]any)
	if back.SHA != shaGood || back.Task != "deploy:rollback" || payload["rolled_back_from"] != shaNew || f.LatestDeploymentState(back.ID) != "success" {
		t.Errorf("rollback deployment = %+v (state %s), want deploy:rollback of %s from %s, success", back, f.LatestDeploymentState(back.ID), shaGood, shaNew)
	}
	cs := f.CommitStatuses(shaNew)
	if last := cs[len(cs)-1]; last.State != "failure" || !strings.HasPrefix(last.Description, "rolled back: ") {
		t.Errorf("final commit status = %s %q", last.State, last.Description)
	}
	if !strings.Contains(res.log, "::error title=4d8b3f2 regressed on production::") {
		t.Errorf("no error annotation:\n%s", res.log)
	}
	t.Logf("API calls:\n%s", strings.Join(calls(f), "\n"))
	t.Logf("summary:\n%s", res.summary)
}

func TestGitHubLastKnownGood(t *testing.T) {
	t.Parallel()
	f := fakeGitHub(t)
	// Newest last: shaOlder went well, shaGood (the push's before) failed,
	// and shaNew itself was deployed before (a re-run).
	seedOurs(f, "production", "deploy", shaOlder, nil, "in_progress", "success")
	seedOurs(f, "production", "deploy", shaGood, nil, "in_progress", "failure")
	seedOurs(f, "staging", "deploy", shaGood, nil, "success")
	seedOurs(f, "production", "deploy", shaNew, nil, "success")
	svc, url := service(t, map[string]testservice.Behaviour{shaNew: {FailRate: 1}}, shaGood)
	res := newActionRun(t, "push", fast(url, map[string]string{"startup-timeout": "0s"})).useGitHub(f).exec()
	if res.outputs["previous-sha"] != shaOlder || svc.Current() != shaOlder {
		t.Fatalf("previous-sha %s, service runs %s; want %s\n%s", res.outputs["previous-sha"], svc.Current(), shaOlder, res.log)
	}
}

func TestGitHubSupersededGuard(t *testing.T) {
	t.Parallel()
	f := fakeGitHub(t)
	seedOurs(f, "production", "deploy", shaGood, nil, "success")
	svc, url := service(t, map[string]testservice.Behaviour{shaNew: {FailRate: 1}}, shaGood)
	// While this run deploys, another run ships a newer commit: the deploy
	// command creates that deployment through the API, as the other run would.
	const newer = "5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b1c2d3e4f"
	f.AddCommit(newer, "Checkout: the real fix")
	other := fmt.Sprintf(`curl -fsS -X POST -H "Authorization: Bearer %s" -d '{"ref":"%s","environment":"production","auto_merge":false,"required_contexts":[]}' %s/repos/octo-org/shop/deployments >/dev/null`, token, newer, f.URL())
	in := fast(url, map[string]string{"startup-timeout": "0s", "deploy-command": deployVia(url) + " && " + other})
	res := newActionRun(t, "push", in).useGitHub(f).exec()
	if res.code != 1 || res.outputs["verdict"] != "regressed" || res.outputs["rolled-back"] != "false" {
		t.Fatalf("exit %d, verdict %s, rolled-back %s; want 1, regressed, false\n%s", res.code, res.outputs["verdict"], res.outputs["rolled-back"], res.log)
	}
	if !strings.Contains(res.log, "not rolling back: "+newer+" was deployed to production after this deploy started") {
		t.Errorf("log does not name the newer commit:\n%s", res.log)
	}
	if got := strings.Join(svc.Deploys(), ","); got != shaNew {
		t.Errorf("deploys = %s, want only %s", got, shaNew)
	}
}

func TestGitHubRateLimitThenSuccess(t *testing.T) {
	t.Parallel()
	f := fakeGitHub(t)
	seedOurs(f, "production", "deploy", shaGood, nil, "success")
	f.Inject(githubfake.Fault{Method: "POST", Path: "/repos/octo-org/shop/deployments", Times: 1, RateLimit: githubfake.SecondaryRateLimit, RetryAfter: time.Second})
	f.Inject(githubfake.Fault{Method: "POST", Path: "/repos/octo-org/shop/statuses/*", Times: 1, Status: http.StatusBadGateway})
	_, url := service(t, nil, shaGood)
	res := newActionRun(t, "push", fast(url, nil)).useGitHub(f).exec()
	if res.code != 0 {
		t.Fatalf("exit %d\n%s", res.code, res.log)
	}
	if strings.Contains(res.log, "GitHub records incomplete") {
		t.Errorf("the run gave up on GitHub:\n%s", res.log)
	}
	if !strings.Contains(res.log, "GitHub: ") {
		t.Errorf("the log does not show the retries:\n%s", res.log)
	}
	deps := f.Deployments()
	if len(deps) != 2 || f.LatestDeploymentState(deps[1].ID) != "success" || len(f.CommitStatuses(shaNew)) != 2 {
		t.Errorf("records after retries: %d deployments, commit statuses %v", len(deps), f.CommitStatuses(shaNew))
	}
}

func TestGitHubDown(t *testing.T) {
	t.Parallel()
	f := fakeGitHub(t)
	f.SetDown(true)
	svc, url := service(t, map[string]testservice.Behaviour{shaNew: {FailRate: 1}}, shaGood)
	res := newActionRun(t, "push", fast(url, map[string]string{"startup-timeout": "0s"})).useGitHub(f).exec()
	if res.code != 1 || res.outputs["verdict"] != "rolled-back" || svc.Current() != shaGood {
		t.Fatalf("exit %d, verdict %s, service %s; want the loop to work without GitHub\n%s", res.code, res.outputs["verdict"], svc.Current(), res.log)
	}
	if res.outputs["previous-sha"] != shaGood || !strings.Contains(res.log, "(from the push event's before)") {
		t.Errorf("previous-sha %s: want the push event's before as the fallback", res.outputs["previous-sha"])
	}
	if !strings.Contains(res.log, "::warning title=GitHub records incomplete::") {
		t.Errorf("no warning about GitHub:\n%s", res.log)
	}
	assertNoToken(t, res)
}

func TestGitHubMissingPermission(t *testing.T) {
	t.Parallel()
	f := fakeGitHub(t)
	f.Inject(githubfake.Fault{Method: "POST", PathPrefix: "/repos/octo-org/shop/statuses/", Status: http.StatusForbidden})
	_, url := service(t, nil, shaGood)
	res := newActionRun(t, "push", fast(url, nil)).useGitHub(f).exec()
	if res.code != 0 {
		t.Fatalf("exit %d\n%s", res.code, res.log)
	}
	if !strings.Contains(res.log, `add \"statuses: write\" to the permissions: block`) && !strings.Contains(res.log, `add "statuses: write" to the permissions: block`) {
		t.Errorf("the log does not name the missing permission:\n%s", res.log)
	}
	if len(f.Deployments()) != 1 {
		t.Error("the deployment was not recorded")
	}
}

func TestNoTokenUsesTheStateFile(t *testing.T) {
	t.Parallel()
	f := fakeGitHub(t)
	_, url := service(t, nil, shaGood)
	run := newActionRun(t, "push", fast(url, nil))
	run.env["GITHUB_API_URL"] = f.URL()
	run.inputs["github-token"] = ""
	res := run.exec()
	if res.code != 0 || len(f.Calls()) != 0 {
		t.Fatalf("exit %d, %d GitHub calls; want 0 and none", res.code, len(f.Calls()))
	}
	if _, err := os.Stat(run.workspace + "/.immune/state.json"); err != nil {
		t.Errorf("no state file: %v", err)
	}
}

// GitHub promises no order for the deployments it lists: listed oldest
// first, the previous good commit is still the newest healthy deployment
// (by id), not the first one listed.
func TestPreviousIsTheNewestWhateverTheListOrder(t *testing.T) {
	t.Parallel()
	f := githubfake.Start(t, githubfake.Options{Owner: "octo-org", Repo: "shop", Token: token, OldestFirst: true})
	f.AddCommit(shaOlder, "Checkout: show the tax line")
	f.AddCommit(shaGood, "Search: faster facets")
	f.AddCommit(shaNew, "Checkout: cache the tax table")
	seedOurs(f, "production", "deploy", shaOlder, nil, "in_progress", "success")
	seedOurs(f, "production", "deploy", shaGood, nil, "in_progress", "success")
	svc, url := service(t, nil, shaGood)
	run := newActionRun(t, "push", fast(url, nil)).useGitHub(f)
	// No push event's before: the previous commit comes from GitHub alone.
	run.env["GITHUB_EVENT_PATH"] = writeEvent(t, `{"ref":"refs/heads/main","after":"`+shaNew+`"}`)
	res := run.exec()
	if res.code != 0 || svc.Current() != shaNew {
		t.Fatalf("exit %d, service runs %s\n%s", res.code, svc.Current(), res.log)
	}
	if res.outputs["previous-sha"] != shaGood {
		t.Errorf("previous-sha = %q, want %s, the newest healthy deployment\n%s", res.outputs["previous-sha"], shaGood, res.log)
	}
}
