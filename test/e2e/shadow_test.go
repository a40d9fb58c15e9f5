package e2e

import (
	"strings"
	"testing"

	"github.com/immune-cd/immune/internal/testkit/githubfake"
	"github.com/immune-cd/immune/internal/testkit/testservice"
)

// TestShadowCrash: a crash deployed with shadow: true, as the runner starts
// the action, with GitHub. Everything is judged; nothing is acted on: exit
// 0, the deploy command ran once and nothing was rolled back, the outputs
// say regressed, not rolled back, shadow; the summary says it would have
// rolled back; the deployment stays success and the commit status is never
// failure; no tracking issue, no comment on the pull requests of the push;
// the webhook hears would-roll-back; and the gate stays clear.
func TestShadowCrash(t *testing.T) {
	t.Parallel()
	f := pushOfThree(t, githubfake.Options{})
	h := newHook(t)
	svc, url := service(t, map[string]testservice.Behaviour{shaNew: {FailRate: 1}}, shaGood)

	res := newActionRun(t, "push", fast(url, h.inputs(map[string]string{"startup-timeout": "0s", "shadow": "true"}))).useGitHub(f).exec()
	if res.code != 0 {
		t.Fatalf("exit %d, want 0\n%s", res.code, res.log)
	}
	for name, want := range map[string]string{"verdict": "regressed", "rolled-back": "false", "shadow": "true", "stage": "full", "previous-sha": shaGood} {
		if got := res.outputs[name]; got != want {
			t.Errorf("output %s = %q, want %q", name, got, want)
		}
	}
	if got := svc.Deploys(); len(got) != 1 || got[0] != shaNew || svc.Current() != shaNew {
		t.Errorf("the service was deployed %v and runs %s; want %s once, still running", got, svc.Current(), shaNew[:7])
	}
	for _, want := range []string{"shadow: 4d8b3f2 regressed on production; immune would have rolled it back, and did nothing", "**Shadow mode:** would have rolled back to 9f2c1e7 at +"} {
		if !strings.Contains(res.summary, want) {
			t.Errorf("the summary lacks %q:\n%s", want, res.summary)
		}
	}
	var deploy githubfake.Deployment
	for _, d := range f.Deployments() {
		if d.Task == "deploy:rollback" {
			t.Errorf("a rollback was recorded: %+v", d)
		}
		if d.SHA == shaNew {
			deploy = d
		}
	}
	statuses := f.DeploymentStatuses(deploy.ID)
	if last := statuses[len(statuses)-1]; last.State != "success" || !strings.HasPrefix(last.Description, "shadow: would have rolled back at +") {
		t.Errorf("the deployment ended %s %q, want success, shadow: would have rolled back", last.State, last.Description)
	}
	for _, s := range f.CommitStatuses(shaNew) {
		if s.State == "failure" {
			t.Errorf("a failure commit status: %+v", s)
		}
	}
	if cs := f.CommitStatuses(shaNew); cs[len(cs)-1].State != "success" || !strings.HasPrefix(cs[len(cs)-1].Description, "shadow: ") {
		t.Errorf("the last commit status %+v, want success, shadow: ...", cs[len(cs)-1])
	}
	if issues := f.Issues(); len(issues) != 0 {
		t.Errorf("a tracking issue: %+v", issues)
	}
	for _, pr := range []int{11, 12} {
		if c := ours(f, pr); len(c) != 0 {
			t.Errorf("a comment on #%d: %+v", pr, c)
		}
	}
	if got := h.kinds(); got != "would-roll-back" {
		t.Errorf("the webhook heard %q, want would-roll-back", got)
	}

	// The line is clear: a pull request passes the gate.
	gate := newActionRun(t, "pull_request", map[string]string{"mode": "gate"}).useGitHub(f).exec()
	if gate.code != 0 || gate.outputs["verdict"] != "clear" {
		t.Errorf("the gate after a shadow run: exit %d, verdict %s\n%s", gate.code, gate.outputs["verdict"], gate.log)
	}
}
