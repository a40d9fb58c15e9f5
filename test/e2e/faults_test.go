package e2e

// The fault-injection suite: each reproduction of the hardening issue, as
// an attacker or an unlucky user would meet it, run from the binary. A
// real TCP proxy (internal/testkit/faultproxy) puts latency, resets, silence and
// slow writes between immune and what it talks to.

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/immune-cd/immune/internal/testkit/faultproxy"
	"github.com/immune-cd/immune/internal/testkit/githubfake"
	"github.com/immune-cd/immune/internal/testkit/testservice"
)

// commandLines returns the log lines the runner would take for workflow
// commands: after leading whitespace they start with "::", or they hold
// "##[" (actions/runner's ActionCommand.TryParseV2 and TryParse).
func commandLines(log string) []string {
	var out []string
	for _, line := range strings.Split(log, "\n") {
		if strings.HasPrefix(strings.TrimSpace(line), "::") || strings.Contains(line, "##[") {
			out = append(out, line)
		}
	}
	return out
}

// 1. A child of the deploy command that ignores SIGTERM outlives its shell
// after the timeout; it must not finish its deploy after the rollback. It
// deploys 6 s in, past the 5 s grace between SIGTERM and SIGKILL: before,
// SIGKILL followed only while the shell lived, and the shell died at once.
func TestFaultNoLateDeployAfterTheRollback(t *testing.T) {
	t.Parallel()
	svc, url := service(t, nil, shaGood)
	late := `(trap '' TERM; sleep 6; ` + deployVia(url) + `) </dev/null >/dev/null 2>&1 &
echo $! > child; sleep 30`
	in := fast(url, map[string]string{
		"deploy-command":   `if [ "$IMMUNE_REASON" = deploy ]; then ` + late + `; else ` + deployVia(url) + `; fi`,
		"deploy-timeout":   "300ms",
		"rollback-command": deployVia(url),
	})
	run := newActionRun(t, "push", in)
	res := run.exec()
	if res.code != 1 || res.outputs["verdict"] != "rolled-back" {
		t.Fatalf("exit %d, verdict %s\n%s", res.code, res.outputs["verdict"], res.log)
	}
	time.Sleep(2 * time.Second) // the child would have deployed by now
	if got := strings.Join(svc.Deploys(), ","); got != shaGood || svc.Current() != shaGood {
		t.Errorf("deploys %s, running %s: a late deploy landed after the rollback", got, svc.Current()[:7])
	}
}

// 2. GitHub answers every POST in 8 s: the rollback still starts as soon
// as the verdict is in, and the deploy waits one call budget at most.
func TestFaultSlowGitHubNeverDelaysTheRollback(t *testing.T) {
	t.Parallel()
	f := fakeGitHub(t)
	seedOurs(f, "production", "deploy", shaGood, nil, "in_progress", "success")
	f.Inject(githubfake.Fault{Method: "POST", Delay: 8 * time.Second})
	svc, url := service(t, map[string]testservice.Behaviour{shaNew: {FailRate: 1}}, shaGood)
	start := time.Now()
	res := newActionRun(t, "push", fast(url, map[string]string{"startup-timeout": "0s"})).useGitHub(f).exec()
	took := time.Since(start)
	if res.outputs["verdict"] != "rolled-back" || svc.Current() != shaGood {
		t.Fatalf("verdict %s, running %s\n%s", res.outputs["verdict"], svc.Current()[:7], res.log)
	}
	watchEnd := reportTime(t, res.report, "watch", "end")
	rollbackStart := reportTime(t, res.report, "rollback", "start")
	deployStart := reportTime(t, res.report, "deploy", "start")
	runStart := reportTime(t, res.report, "", "start")
	gap := rollbackStart.Sub(watchEnd)
	t.Logf("verdict to rollback start: %s; run start to deploy start: %s; whole run %s", gap, deployStart.Sub(runStart), took.Round(time.Millisecond))
	// Ordering, not speed: a rollback that waited for one POST would start
	// 8 s after the verdict.
	if gap > 2*time.Second {
		t.Errorf("the rollback started %s after the verdict: it waited for GitHub", gap)
	}
	if d := deployStart.Sub(runStart); d > 7*time.Second {
		t.Errorf("the deploy started %s after the run: it waited for the 8 s POST", d)
	}
	if !strings.Contains(res.log, "GitHub records incomplete") || !strings.Contains(res.log, "did not answer within 5s") {
		t.Errorf("no warning that GitHub was too slow:\n%s", res.log)
	}
}

// reportTime reads a time from the JSON report: field of section ("" for
// the run itself).
func reportTime(t *testing.T, report map[string]any, section, field string) time.Time {
	t.Helper()
	m := report
	if section != "" {
		m, _ = report[section].(map[string]any)
	}
	s, _ := m[field].(string)
	at, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		t.Fatalf("report %s.%s = %q: %v", section, field, s, err)
	}
	return at
}

// 3. Text from outside (a health answer's version, the reason input, the
// state file, the deploy command's output) never issues a workflow command.
func TestFaultWorkflowCommandInjection(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	current := shaGood
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		defer mu.Unlock()
		if r.URL.Path == "/deploy" {
			current = r.URL.Query().Get("sha")
			return
		}
		version := current
		if current == shaNew {
			version = "x\n::stop-commands::forged\n##[error]forged"
		}
		json.NewEncoder(w).Encode(map[string]string{"version": version})
	}))
	defer srv.Close()
	out := `printf 'deploying\n::add-mask::forged\n  ::error::forged\n##[warning]forged\nno final newline'; `
	run := newActionRun(t, "push", fast(srv.URL, map[string]string{
		"deploy-command": out + deployVia(srv.URL), "expect-version": "json:version", "startup-timeout": "0s",
		"duration": "400ms", "reason": "x\n::error::forged",
	}))
	os.MkdirAll(filepath.Join(run.workspace, ".immune"), 0o755)
	os.WriteFile(filepath.Join(run.workspace, ".immune", "state.json"), []byte(`{"kind": "immune-state", "version": 1, "environments": {"production": {"history": [
		{"sha": "`+shaOlder+`\n::error::forged", "verdict": "healthy"}]}}}`), 0o644)
	res := run.exec()
	if res.outputs["verdict"] != "regressed" && res.outputs["verdict"] != "rolled-back" {
		t.Fatalf("verdict %q\n%s", res.outputs["verdict"], res.log)
	}
	for _, line := range commandLines(res.log) {
		if strings.Contains(line, "forged") && !strings.HasPrefix(line, "::error title=") && !strings.HasPrefix(line, "::warning title=") {
			t.Errorf("a forged workflow command reached the log: %q", line)
		}
		if strings.HasPrefix(strings.TrimSpace(line), "::stop-commands") || strings.HasPrefix(strings.TrimSpace(line), "::add-mask::forged") {
			t.Errorf("forged command: %q", line)
		}
	}
	if !strings.Contains(res.log, "no final newline\n::endgroup::") {
		t.Errorf("the deploy output's last line swallowed ::endgroup::\n%s", res.log)
	}
	if strings.Contains(res.outputs["previous-sha"], "forged") {
		t.Errorf("a SHA from the state file was not validated: %q", res.outputs["previous-sha"])
	}
}

// 4. Credentials in a health URL never reach the log, the summary, the
// report or the outputs, whether the URL is refused or probed.
func TestFaultSecretsInURLs(t *testing.T) {
	t.Parallel()
	const secret = "s3cr3t-T0KEN"
	_, url := service(t, nil, shaGood)
	host := strings.TrimPrefix(url, "http://")
	for _, tt := range []struct {
		name, healthURL string
		code            int
	}{
		{"user info", "http://" + secret + "@" + host + "/health", 2},
		{"user and password", "http://user%3A" + secret + "@" + host + "/health", 2},
		{"does not parse", "http://user:" + secret + "@[::1/health", 2},
		{"query token", url + "/health?token=" + secret, 0},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			res := newActionRun(t, "push", fast(url, map[string]string{"health-url": tt.healthURL})).exec()
			if res.code != tt.code {
				t.Fatalf("exit %d, want %d\n%s", res.code, tt.code, res.log)
			}
			report, _ := json.Marshal(res.report)
			for name, text := range map[string]string{"log": res.log, "summary": res.summary, "report": string(report), "outputs": fmt.Sprint(res.outputs)} {
				if strings.Contains(text, secret) {
					t.Errorf("the %s shows the credential", name)
				}
			}
		})
	}
}

// 5 and 6. Results that cannot be written: each failure is reported, none
// stops the others, the outputs come first, and the exit code says so.
func TestFaultPublishing(t *testing.T) {
	t.Parallel()
	_, url := service(t, nil, shaGood)
	run := newActionRun(t, "push", fast(url, nil))
	os.Remove(run.env["GITHUB_OUTPUT"])
	os.MkdirAll(run.env["GITHUB_OUTPUT"], 0o755) // a directory
	res := run.exec()
	if res.code != 4 || !strings.Contains(res.log, "step outputs (GITHUB_OUTPUT): ") || !strings.Contains(res.log, "the verdict was healthy") {
		t.Fatalf("exit %d\n%s", res.code, res.log)
	}
	if res.summary == "" {
		t.Error("the summary was not written after the outputs failed")
	}
	if _, err := os.Stat(filepath.Join(run.workspace, ".immune", "report.json")); err != nil {
		t.Errorf("the report was not written after the outputs failed: %v", err)
	}

	// A report that cannot be written: outputs and summary still are.
	run = newActionRun(t, "push", fast(url, nil))
	os.WriteFile(filepath.Join(run.workspace, ".immune"), []byte("a file where the report's folder goes"), 0o644)
	res = run.exec()
	if res.code != 4 || res.outputs["verdict"] != "healthy" || res.summary == "" || !strings.Contains(res.log, "report") {
		t.Errorf("exit %d, verdict %q, summary %d bytes\n%s", res.code, res.outputs["verdict"], len(res.summary), res.log)
	}
}

// 5. Durations that overflow or exhaust memory are refused before anything
// is deployed.
func TestFaultBounds(t *testing.T) {
	t.Parallel()
	svc, url := service(t, nil, shaGood)
	for _, in := range []map[string]string{
		{"duration": "2562047h47m16s"},
		{"duration": "100000h", "interval": "1ms"},
		{"duration": "168h", "interval": "1ms"},
	} {
		res := newActionRun(t, "push", fast(url, in)).exec()
		if res.code != 2 || !strings.Contains(res.log, "input duration: ") {
			t.Errorf("%v: exit %d\n%s", in, res.code, res.log)
		}
	}
	if len(svc.Deploys()) != 0 {
		t.Errorf("deployed: %v", svc.Deploys())
	}
}

// 7. Eight runs share one state file: all eight records are kept. A file
// that is not immune's is refused and left alone.
func TestFaultStateFile(t *testing.T) {
	t.Parallel()
	_, url := service(t, nil, shaGood)
	shared := filepath.Join(t.TempDir(), "state.json")
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			run := newActionRun(t, "push", fast(url, map[string]string{"state-file": shared, "duration": "200ms", "startup-timeout": "100ms"}))
			run.env["GITHUB_SHA"] = fmt.Sprintf("%07x%033d", i+1, 0)
			if res := run.exec(); res.code != 0 {
				t.Errorf("run %d: exit %d\n%s", i, res.code, res.log)
			}
		}()
	}
	wg.Wait()
	data, _ := os.ReadFile(shared)
	var doc struct {
		Environments map[string]struct{ History []any } `json:"environments"`
	}
	json.Unmarshal(data, &doc)
	if n := len(doc.Environments["production"].History); n != 8 {
		t.Errorf("%d of 8 records kept", n)
	}

	pkg := filepath.Join(t.TempDir(), "package.json")
	body := `{"name": "shop", "version": "1.0.0"}`
	os.WriteFile(pkg, []byte(body), 0o600)
	svc, url2 := service(t, nil, shaGood)
	res := newActionRun(t, "push", fast(url2, map[string]string{"state-file": pkg})).exec()
	got, _ := os.ReadFile(pkg)
	info, _ := os.Stat(pkg)
	if res.code != 2 || len(svc.Deploys()) != 0 || string(got) != body || info.Mode().Perm() != 0o600 || !strings.Contains(res.log, "input state-file: ") {
		t.Errorf("exit %d, deploys %v, file %q mode %v\n%s", res.code, svc.Deploys(), got, info.Mode().Perm(), res.log)
	}
}

// 8. GitHub made the deployment, but its answer was a 502: the retry does
// not make a second one.
func TestFaultRetriedCreate(t *testing.T) {
	t.Parallel()
	f := fakeGitHub(t)
	f.Inject(githubfake.Fault{Method: "POST", Path: "/repos/octo-org/shop/deployments", Times: 1, Status: http.StatusBadGateway, AfterServing: true})
	_, url := service(t, nil, shaGood)
	res := newActionRun(t, "push", fast(url, nil)).useGitHub(f).exec()
	deps := f.Deployments()
	if res.code != 0 || len(deps) != 1 || f.LatestDeploymentState(deps[0].ID) != "success" {
		t.Fatalf("exit %d, %d deployments\n%s", res.code, len(deps), res.log)
	}
	if !strings.Contains(res.log, fmt.Sprintf("but GitHub had made it: using deployment %d", deps[0].ID)) {
		t.Errorf("log:\n%s", res.log)
	}
}

// 9. A closed stdout (| head) does not kill the run mid-deploy: it
// finishes, unseen. SIGHUP stops it like a cancel.
func TestFaultSignals(t *testing.T) {
	t.Parallel()
	svc, url := service(t, map[string]testservice.Behaviour{shaNew: {FailRate: 1}}, shaGood)
	run := newActionRun(t, "push", fast(url, map[string]string{"startup-timeout": "0s"}))
	cmd := run.command()
	var stderr strings.Builder
	cmd.Stderr = &stderr
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 10)
	stdout.Read(buf)
	stdout.Close() // like head: the reader is gone
	err = cmd.Wait()
	if exit, ok := err.(*exec.ExitError); !ok || exit.ExitCode() != 1 {
		t.Fatalf("exit %v, want 1 (rolled back), not death by SIGPIPE\n%s", err, stderr.String())
	}
	outputs := parseOutputs(t, run.env["GITHUB_OUTPUT"])
	if outputs["verdict"] != "rolled-back" || svc.Current() != shaGood {
		t.Errorf("verdict %q, running %s", outputs["verdict"], svc.Current()[:7])
	}

	svc2, url2 := service(t, nil, shaGood)
	run = newActionRun(t, "push", fast(url2, map[string]string{"duration": "30s"}))
	cmd = run.command()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for svc2.Current() != shaNew && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(100 * time.Millisecond)
	cmd.Process.Signal(syscall.SIGHUP)
	cmd.Wait()
	if outputs := parseOutputs(t, run.env["GITHUB_OUTPUT"]); outputs["verdict"] != "cancelled" {
		t.Errorf("after SIGHUP: verdict %q", outputs["verdict"])
	}
}

// 9. A long history of failed deployments costs a bounded number of calls.
func TestFaultLongHistory(t *testing.T) {
	t.Parallel()
	f := fakeGitHub(t)
	seedOurs(f, "production", "deploy", shaOlder, nil, "success")
	for i := 0; i < 2000; i++ {
		seedOurs(f, "production", "deploy", shaGood, nil, "failure")
	}
	_, url := service(t, nil, shaGood)
	res := newActionRun(t, "push", fast(url, nil)).useGitHub(f).exec()
	gets := 0
	for _, c := range f.Calls() {
		if c.Method == "GET" {
			gets++
		}
	}
	if res.code != 0 || gets > 2*(3+50) {
		t.Errorf("exit %d after %d GET requests\n%s", res.code, gets, res.log)
	}
	if !strings.Contains(res.log, "and stopped there") {
		t.Errorf("the log does not say the history was cut:\n%s", res.log)
	}
	t.Logf("%d GET requests for a history of 2,001 deployments", gets)
}

// A bad network between immune and what it talks to: the service behind
// resets, silence and slow answers fails probes cleanly within the probe
// timeout; GitHub behind silence costs one call budget, not the deploy.
func TestFaultNetwork(t *testing.T) {
	t.Parallel()
	_, url := service(t, nil, shaGood)
	svcProxy := faultproxy.Start(t, strings.TrimPrefix(url, "http://"))
	for _, tt := range []struct {
		name   string
		faults faultproxy.Faults
		code   int
	}{
		{"latency", faultproxy.Faults{Latency: 50 * time.Millisecond}, 0},
		{"resets", faultproxy.Faults{Reset: true}, 1},
		{"silence", faultproxy.Faults{Blackhole: true}, 1},
		{"slow answers", faultproxy.Faults{BytesPerSecond: 20}, 1},
	} {
		svcProxy.Set(tt.faults)
		in := fast(url, map[string]string{"health-url": "http://" + svcProxy.Addr() + "/health", "auto-rollback": "false"})
		res := newActionRun(t, "push", in).exec()
		if res.code != tt.code {
			t.Errorf("service %s: exit %d, want %d\n%s", tt.name, res.code, tt.code, res.log)
		}
	}

	f := fakeGitHub(t)
	ghProxy := faultproxy.Start(t, strings.TrimPrefix(f.URL(), "http://"))
	ghProxy.Set(faultproxy.Faults{Blackhole: true})
	svcProxy.Set(faultproxy.Faults{})
	run := newActionRun(t, "push", fast(url, nil)).useGitHub(f)
	run.env["GITHUB_API_URL"] = "http://" + ghProxy.Addr()
	start := time.Now()
	res := run.exec()
	if res.code != 0 || !strings.Contains(res.log, "GitHub records incomplete") {
		t.Errorf("GitHub silent: exit %d\n%s", res.code, res.log)
	}
	t.Logf("with GitHub silent the run took %s", time.Since(start).Round(time.Millisecond))
}
