package e2e

// End-to-end tests of what GitHub itself does around the action: the
// deployments it makes for jobs that name an environment, two runs at once
// without a concurrency group to keep them apart, rollbacks made by hand,
// a cancelled job, a push that deleted its branch. The binary runs as the
// runner starts it; the fake GitHub does what GitHub does.

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/immune-cd/immune/internal/testkit/githubfake"
	"github.com/immune-cd/immune/internal/testkit/testservice"
)

// jobHistory gives production the history a team has after a few days with
// the README's workflows: each job named the environment, so GitHub made a
// deployment per job (ref main, empty payload) whose success inactivated
// everything before it. shaOlder then shaGood were deployed healthy by
// immune; main's head is shaNew.
func jobHistory(f *githubfake.Server) {
	seedOurs(f, "production", "deploy", shaOlder, nil, "in_progress", "success")
	f.StartJob("production", "main", shaOlder, "monalisa").Finish(true)
	seedOurs(f, "production", "deploy", shaGood, nil, "in_progress", "success")
	f.StartJob("production", "main", shaGood, "monalisa").Finish(true)
}

// A regression with the jobs' deployments in the history rolls back to
// immune's last healthy build, not to what a job's success marked.
func TestRegressionWithJobDeployments(t *testing.T) {
	t.Parallel()
	f := fakeGitHub(t)
	jobHistory(f)
	svc, url := service(t, map[string]testservice.Behaviour{shaNew: {FailRate: 1}}, shaGood)
	res := newActionRun(t, "push", fast(url, map[string]string{"startup-timeout": "0s"})).useGitHub(f).asJob(f, "main").exec()
	if res.code != 1 || res.outputs["verdict"] != "rolled-back" || res.outputs["previous-sha"] != shaGood || svc.Current() != shaGood {
		t.Fatalf("exit %d, verdict %s, previous-sha %s, service runs %s; want rolled back to %s\n%s",
			res.code, res.outputs["verdict"], res.outputs["previous-sha"], svc.Current(), shaGood[:7], res.log)
	}
	if !strings.Contains(res.log, "made by GitHub Actions for a job that names the environment") {
		t.Errorf("the ignored job deployments are not listed:\n%s", res.log)
	}
	// The job's own deployment ended with the job: failure.
	ds := f.Deployments()
	var job githubfake.Deployment
	for _, d := range ds {
		if d.Job && d.SHA == shaNew {
			job = d
		}
	}
	if job.ID == 0 || f.LatestDeploymentState(job.ID) != "failure" {
		t.Errorf("the job's deployment: %+v in %s", job, f.LatestDeploymentState(job.ID))
	}
}

// A manual rollback without sha, under the same history, goes one step
// behind what really runs (shaGood), not behind main's head.
func TestManualRollbackWithJobDeployments(t *testing.T) {
	t.Parallel()
	f := fakeGitHub(t)
	jobHistory(f)
	// The dispatch job of this very rollback starts on main's head.
	svc, url := service(t, nil, shaGood)
	res := newActionRun(t, "workflow_dispatch", rollbackInputs(url, nil)).useGitHub(f).asJob(f, "main").exec()
	if res.code != 0 || res.outputs["sha"] != shaOlder || res.outputs["previous-sha"] != shaGood || svc.Current() != shaOlder {
		t.Fatalf("exit %d, rolled back to %s replacing %s, service runs %s; want %s replacing %s\n%s",
			res.code, res.outputs["sha"], res.outputs["previous-sha"], svc.Current(), shaOlder[:7], shaGood[:7], res.log)
	}
	// The job's success does not make main's head "last known good": the
	// next deploy still rolls back to immune's own record.
	svc2, url2 := service(t, map[string]testservice.Behaviour{shaNew: {FailRate: 1}}, shaOlder)
	res = newActionRun(t, "push", fast(url2, map[string]string{"startup-timeout": "0s"})).useGitHub(f).asJob(f, "main").exec()
	if res.outputs["previous-sha"] != shaOlder || svc2.Current() != shaOlder {
		t.Errorf("next deploy: previous-sha %s, service runs %s; want %s\n%s", res.outputs["previous-sha"], svc2.Current(), shaOlder[:7], res.log)
	}
}

// Two runs deploy at once, with no concurrency group between them: the
// second waits for the first, then reads the history again and takes the
// first's build as its rollback target.
func TestTwoRunsAtOnce(t *testing.T) {
	t.Parallel()
	f := fakeGitHub(t)
	seedOurs(f, "production", "deploy", shaGood, nil, "in_progress", "success")
	const second = "5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b1c2d3e4f"
	f.AddCommit(second, "Checkout: the next change")
	svc, url := service(t, map[string]testservice.Behaviour{second: {FailRate: 1}}, shaGood)
	first := newActionRun(t, "push", fast(url, map[string]string{"duration": "2s"})).useGitHub(f)
	cmd := first.command()
	var firstLog strings.Builder
	cmd.Stdout, cmd.Stderr = &firstLog, &firstLog
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for svc.Current() != shaNew && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	next := newActionRun(t, "push", fast(url, map[string]string{"startup-timeout": "0s"})).useGitHub(f)
	next.env["GITHUB_SHA"] = second
	res := next.exec()
	if err := cmd.Wait(); err != nil {
		t.Fatalf("first run: %v\n%s", err, firstLog.String())
	}
	if !strings.Contains(res.log, "Waiting for another run of immune: deployment ") || !strings.Contains(res.log, "The environment is free after") {
		t.Errorf("the second run did not wait:\n%s", res.log)
	}
	if res.outputs["previous-sha"] != shaNew || svc.Current() != shaNew {
		t.Errorf("second run: previous-sha %s, service runs %s; want the first run's %s\n%s", res.outputs["previous-sha"], svc.Current(), shaNew[:7], res.log)
	}
	if got := strings.Join(svc.Deploys(), ","); got != shaNew+","+second+","+shaNew {
		t.Errorf("deploys %s: the second deploy did not wait for the first", got)
	}
}

// A rollback made by hand (task deploy:rollback, no payload of immune's)
// stops the line and names the commit it replaced, from the history; a
// revert of that commit passes.
func TestGateAfterAHandMadeRollback(t *testing.T) {
	t.Parallel()
	f := fakeGitHub(t)
	seedOurs(f, "production", "deploy", shaGood, nil, "in_progress", "success")
	seedOurs(f, "production", "deploy", shaNew, nil, "in_progress", "success")
	f.StartJob("production", "main", shaNew, "monalisa").Finish(true)
	d := f.AddDeployment(githubfake.Deployment{SHA: shaGood, Task: "deploy:rollback", Creator: "octocat"})
	f.AddDeploymentStatus(d.ID, githubfake.DeploymentStatus{State: "success"})
	f.AddPullRequest(123, shaOlder, nil, []githubfake.Commit{{SHA: shaOlder, Message: "Checkout: another change"}})
	res := gateRun(t, f, "pull_request")
	want := "production was rolled back by hand or by another tool from 4d8b3f2 to 9f2c1e7"
	if res.code != 1 || res.outputs["verdict"] != "stopped" || !strings.Contains(res.log, want) ||
		!strings.Contains(res.log, "revert 4d8b3f2 (GitHub's revert button writes \"This reverts commit "+shaNew+"\")") {
		t.Fatalf("exit %d, verdict %s; want stopped naming %s\n%s", res.code, res.outputs["verdict"], shaNew[:7], res.log)
	}
	const revert = "7f7f7f7f7f7f7f7f7f7f7f7f7f7f7f7f7f7f7f7f"
	f.AddPullRequest(124, revert, nil, []githubfake.Commit{{SHA: revert, Message: "Revert \"Checkout: cache the tax table\"\n\nThis reverts commit " + shaNew + "."}})
	pr := newActionRun(t, "pull_request", map[string]string{"mode": "auto"}).useGitHub(f)
	pr.env["GITHUB_EVENT_PATH"] = writeEvent(t, `{"number":124,"pull_request":{"number":124}}`)
	res = pr.exec()
	if res.code != 0 || res.outputs["verdict"] != "fix-allowed" || !strings.Contains(res.log, "reverts 4d8b3f2") {
		t.Errorf("the revert: exit %d, verdict %s\n%s", res.code, res.outputs["verdict"], res.log)
	}
}

func writeEvent(t *testing.T, payload string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "event.json")
	if err := os.WriteFile(p, []byte(payload), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

// A push that deleted its branch deploys nothing.
func TestDeletedBranchPush(t *testing.T) {
	t.Parallel()
	f := fakeGitHub(t)
	svc, url := service(t, nil, shaGood)
	run := newActionRun(t, "push", fast(url, nil)).useGitHub(f)
	run.env["GITHUB_EVENT_PATH"] = writeEvent(t, `{"ref":"refs/heads/feature","before":"`+shaNew+`","after":"0000000000000000000000000000000000000000","deleted":true}`)
	run.env["GITHUB_SHA"] = shaNew
	res := run.exec()
	if res.code != 0 || res.outputs["verdict"] != "skipped" || len(svc.Deploys()) != 0 || len(f.Deployments()) != 0 {
		t.Fatalf("exit %d, verdict %s, deploys %v, %d deployments\n%s", res.code, res.outputs["verdict"], svc.Deploys(), len(f.Deployments()), res.log)
	}
}

// A short sha input is resolved before anything is deployed: the deploy,
// the deployment's ref and the commit status all get the full SHA.
func TestShortSHAResolved(t *testing.T) {
	t.Parallel()
	f := fakeGitHub(t)
	svc, url := service(t, nil, shaGood)
	res := newActionRun(t, "push", fast(url, map[string]string{"sha": shaNew[:8]})).useGitHub(f).exec()
	if res.code != 0 || res.outputs["sha"] != shaNew || svc.Current() != shaNew || len(f.CommitStatuses(shaNew)) != 2 {
		t.Fatalf("exit %d, sha %s, service runs %s, %d commit statuses\n%s", res.code, res.outputs["sha"], svc.Current(), len(f.CommitStatuses(shaNew)), res.log)
	}
	res = newActionRun(t, "push", fast(url, map[string]string{"sha": "abcdef0123"})).useGitHub(f).exec()
	if res.code != 2 || !strings.Contains(res.log, "input sha: abcdef0123 is not a commit of octo-org/shop") {
		t.Errorf("unknown commit: exit %d\n%s", res.code, res.log)
	}
}

// cancelScript is a deploy command that leaves a mark per phase, deploys
// through the service, and runs a long child (recorded in pids) when told
// to hang, so that a test can see that it was stopped.
func cancelScript(url string) string {
	return `echo "$IMMUNE_REASON $IMMUNE_SHA" >> commands
if [ -f "hang-$IMMUNE_REASON" ]; then (trap '' TERM; sleep 60) & echo $! >> pids; sleep 60 & echo $! >> pids; wait; fi
` + deployVia(url)
}

// A cancel in each phase, from the binary with a real SIGTERM: what runs
// is stopped (no process left), nothing new starts, the records in flight
// end in error, the outputs say cancelled, within seconds.
func TestCancelEachPhaseFromTheBinary(t *testing.T) {
	t.Parallel()
	tests := []struct {
		phase    string
		inputs   map[string]string
		script   map[string]testservice.Behaviour
		hang     string // "deploy" or "rollback": that command hangs
		ready    func(ws string, svc *testservice.Service) bool
		commands string // what commands ran, from the marks
		reason   string
	}{
		{"baseline", map[string]string{"baseline-duration": "30s"}, nil, "",
			func(_ string, svc *testservice.Service) bool { return svc.Probed() > 0 }, "", "nothing was deployed"},
		{"deploy", nil, nil, "deploy",
			func(ws string, _ *testservice.Service) bool { return lines(ws, "pids") == 2 }, "deploy " + shaNew, "the deploy command was stopped midway"},
		{"watch", map[string]string{"duration": "30s"}, nil, "",
			func(_ string, svc *testservice.Service) bool { return svc.Current() == shaNew }, "deploy " + shaNew, "its watch did not finish"},
		{"rollback", map[string]string{"startup-timeout": "0s"}, map[string]testservice.Behaviour{shaNew: {FailRate: 1}}, "rollback",
			func(ws string, _ *testservice.Service) bool { return lines(ws, "pids") == 2 }, "deploy " + shaNew + "\nrollback " + shaGood, "production's state is unknown: it was being restored to 9f2c1e7"},
		{"confirm", map[string]string{"startup-timeout": "0s", "rollback-duration": "30s"}, map[string]testservice.Behaviour{shaNew: {FailRate: 1}}, "",
			func(_ string, svc *testservice.Service) bool { return len(svc.Deploys()) == 2 }, "deploy " + shaNew + "\nrollback " + shaGood, "the rollback was not confirmed healthy"},
	}
	for _, tt := range tests {
		t.Run(tt.phase, func(t *testing.T) {
			t.Parallel()
			f := fakeGitHub(t)
			seedOurs(f, "production", "deploy", shaGood, nil, "in_progress", "success")
			svc, url := service(t, tt.script, shaGood)
			in := fast(url, map[string]string{"deploy-command": cancelScript(url)})
			for k, v := range tt.inputs {
				in[k] = v
			}
			run := newActionRun(t, "push", in).useGitHub(f)
			if tt.hang != "" {
				os.WriteFile(filepath.Join(run.workspace, "hang-"+tt.hang), nil, 0o644)
			}
			c := run.cancelWhen(func() bool { return tt.ready(run.workspace, svc) }, 150*time.Millisecond)
			out, took, outputs := c.log, c.took, c.outputs
			if c.code != 1 {
				t.Fatalf("exit %d, want 1\n%s", c.code, out)
			}
			if took > 5*time.Second {
				t.Errorf("the run took %s to end after SIGTERM", took)
			}
			if outputs["verdict"] != "cancelled" {
				t.Errorf("verdict %q\n%s", outputs["verdict"], out)
			}
			if !strings.Contains(out, "::error title=Cancelled::the job was cancelled during the "+tt.phase+" phase") || !strings.Contains(out, tt.reason) {
				t.Errorf("the log does not say what production runs:\n%s", out)
			}
			time.Sleep(300 * time.Millisecond) // anything started late would show now
			if got := strings.TrimSpace(read(run.workspace, "commands")); got != tt.commands {
				t.Errorf("commands run: %q, want %q", got, tt.commands)
			}
			for _, field := range strings.Fields(read(run.workspace, "pids")) {
				if pid, _ := strconv.Atoi(field); alive(pid) {
					t.Errorf("process %d of the stopped command is still running", pid)
				}
			}
			for _, d := range f.Deployments()[1:] {
				st := f.DeploymentStatuses(d.ID)
				last := st[len(st)-1]
				if last.State == "success" || last.State == "in_progress" || last.State == "queued" {
					t.Errorf("deployment %d (%s) left %s", d.ID, d.Task, last.State)
				}
			}
			for _, s := range f.CommitStatuses(shaNew) {
				if s.State == "success" {
					t.Errorf("commit status success after a cancel")
				}
			}
			if cs := f.CommitStatuses(shaNew); len(cs) > 0 && cs[len(cs)-1].State != "error" {
				t.Errorf("commit status left %s", cs[len(cs)-1].State)
			}
			t.Logf("%s: ended %s after SIGTERM; %s", tt.phase, took.Round(time.Millisecond), fmt.Sprint(len(f.Deployments())-1, " deployment(s) recorded"))
		})
	}
}

func read(dir, name string) string {
	data, _ := os.ReadFile(filepath.Join(dir, name))
	return string(data)
}

func lines(dir, name string) int { return len(strings.Fields(read(dir, name))) }

// alive reports whether pid runs and is not a zombie (this machine's first
// process does not reap orphans).
func alive(pid int) bool {
	stat, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return false
	}
	i := strings.LastIndexByte(string(stat), ')')
	return i > 0 && i+2 < len(stat) && stat[i+2] != 'Z'
}

// The environment was made as "Production" (its settings page, or the
// first deployment); the workflow says `environment: production`. GitHub
// holds them for one environment, so the run reads Production's history
// (the rollback target is its last good build, not the push's before) and
// records under that name.
func TestEnvironmentInAnotherLetterCase(t *testing.T) {
	t.Parallel()
	f := fakeGitHub(t)
	seedOurs(f, "Production", "deploy", shaOlder, nil, "in_progress", "success")
	svc, url := service(t, map[string]testservice.Behaviour{shaNew: {FailRate: 1}}, shaOlder)
	res := newActionRun(t, "push", fast(url, map[string]string{"startup-timeout": "0s", "environment": "production"})).useGitHub(f).exec()
	if res.code != 1 || res.outputs["verdict"] != "rolled-back" || res.outputs["previous-sha"] != shaOlder || svc.Current() != shaOlder {
		t.Fatalf("exit %d, verdict %s, previous-sha %s, service runs %s; want rolled back to %s\n%s",
			res.code, res.outputs["verdict"], res.outputs["previous-sha"], svc.Current(), shaOlder[:7], res.log)
	}
	if !strings.Contains(res.log, `GitHub spells the environment "Production"`) {
		t.Errorf("the log does not say how GitHub spells it:\n%s", res.log)
	}
	for _, d := range f.Deployments() {
		if d.Environment != "Production" {
			t.Errorf("deployment %d of %s recorded in %q", d.ID, d.SHA[:7], d.Environment)
		}
	}
	if es := f.Environments(); len(es) != 1 {
		t.Errorf("environments: %+v", es)
	}
}
