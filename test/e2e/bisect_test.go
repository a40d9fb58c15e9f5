package e2e

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/immune-cd/immune/internal/testkit/githubfake"
	"github.com/immune-cd/immune/internal/testkit/testservice"
)

// End-to-end tests of the bisection (bisect: true): a batch c1…c4 after
// c0, where c3 broke production, deployed to a two-track service (a canary
// track and a stable track behind one deploy command) by the binary, as a
// CLI in a real git repository and as the action with the fake GitHub.

// gitBatch makes a real git repository in dir with the commits c0…c4 on
// main, and returns their SHAs.
func gitBatch(t *testing.T, dir string) []string {
	t.Helper()
	git := func(args ...string) string {
		t.Helper()
		cmd := exec.Command("git", args...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=Mona Lisa", "GIT_AUTHOR_EMAIL=mona@example.com", "GIT_COMMITTER_NAME=Mona Lisa",
			"GIT_COMMITTER_EMAIL=mona@example.com", "GIT_CONFIG_GLOBAL=/dev/null", "GIT_CONFIG_NOSYSTEM=1")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
		return strings.TrimSpace(string(out))
	}
	git("init", "-q", "-b", "main")
	var shas []string
	for i := 0; i <= 4; i++ {
		name := "c" + string(rune('0'+i))
		if err := os.WriteFile(filepath.Join(dir, name+".txt"), []byte(name), 0o644); err != nil {
			t.Fatal(err)
		}
		git("add", name+".txt")
		git("commit", "-q", "-m", name)
		shas = append(shas, git("rev-parse", "HEAD"))
	}
	return shas
}

// broken is the service's script: c3 and every commit after it fail 3 of
// every 5 requests, never 3 in a row, so that the canary's two-sample test,
// not the in-a-row rule, has to see it.
func broken(c []string) map[string]testservice.Behaviour {
	return map[string]testservice.Behaviour{c[3]: {FailRate: 0.6}, c[4]: {FailRate: 0.6}}
}

// The CLI in a git repository: `immune deploy --sha c4 --previous-sha c0
// --bisect` with a canary reads the batch from git, finds c3 in two steps
// on the canary, ships c2 to the whole fleet and exits 1; the stable track
// never serves c3 or c4.
func TestBisectCLIInAGitRepository(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	c := gitBatch(t, dir)
	svc, url := tracks(t, broken(c), c[0])
	outputs := filepath.Join(t.TempDir(), "outputs")
	cmd := exec.Command(binary, "deploy", "--sha", c[4], "--previous-sha", c[0], "--bisect",
		"--health-url", url+"/stable/health", "--canary-health-url", url+"/canary/health",
		"--deploy-command", stagedDeploy(url, ""), "--canary-command", stagedDeploy(url, ""),
		"--expect-version", "header:X-Version", "--interval=100ms", "--timeout=100ms", "--canary-duration=5s",
		"--duration=2s", "--startup-timeout=400ms", "--rollback-duration=500ms")
	cmd.Dir = dir
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir, "GITHUB_OUTPUT=" + outputs}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	code := exitCode(t, cmd.Run())
	o := parseOutputs(t, outputs)
	if code != 1 || o["verdict"] != "rolled-back" || o["culprit-sha"] != c[3] || o["shipped-sha"] != c[2] {
		t.Fatalf("exit %d, verdict %q, culprit-sha %q, shipped-sha %q; want 1, rolled-back, c3 %s, c2 %s\n%s", code, o["verdict"], o["culprit-sha"], o["shipped-sha"], c[3], c[2], out.String())
	}
	if svc.Stable.Current() != c[2] || svc.Canary.Current() != c[2] {
		t.Errorf("production runs %s (the canary %s), want c2 %s", svc.Stable.Current(), svc.Canary.Current(), c[2])
	}
	for _, d := range svc.Stable.Deploys() {
		if d == c[3] || d == c[4] {
			t.Errorf("the stable track was deployed %s: %v", d, svc.Stable.Deploys())
		}
	}
	want := "canary deploy " + c[4] + "\ncanary rollback " + c[0] + "\ncanary bisect " + c[2] + "\ncanary rollback " + c[0] +
		"\ncanary bisect " + c[3] + "\ncanary rollback " + c[0] + "\nfull deploy " + c[2] + "\n"
	if got := read(dir, "commands"); got != want {
		t.Errorf("commands:\n%s\nwant\n%s", got, want)
	}
	for _, want := range []string{"from the workspace's git history", "Step 1: " + c[2][:7] + " is good.", "Step 2: " + c[3][:7] + " is bad: the first bad commit.",
		"culprit   " + c[3][:7], "shipped   " + c[2][:7] + ": healthy"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("the output lacks %q:\n%s", want, out.String())
		}
	}
}

// bisectPush is a fake GitHub with immune's last good build shaGood and a
// push of c1…c4 after it (c1 is shaNew), each merged from its own pull
// request #11…#14 by hubot, octocat, mona and defunkt; c3's merged with a
// merge commit.
func bisectPush(t *testing.T) (*githubfake.Server, []string) {
	t.Helper()
	f := fakeGitHub(t)
	seedOurs(f, "production", "deploy", shaGood, nil, "in_progress", "success")
	// The push: c1…c4 after shaGood, each merged from its own pull request.
	c := []string{shaGood,
		"c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1c1", "c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2c2",
		"c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3", "c4c4c4c4c4c4c4c4c4c4c4c4c4c4c4c4c4c4c4c4"}
	authors := []string{"", "hubot", "octocat", "mona", "defunkt"}
	// shaNew, the push event's after, is the batch's first commit here.
	c[1] = shaNew
	for i := 1; i <= 4; i++ {
		pr := githubfake.PullRequest{Number: 10 + i, Title: "change " + string(rune('0'+i)), Author: authors[i], Merged: true, MergeCommitSHA: c[i]}
		if i == 3 {
			// The culprit's pull request is merged with a merge commit:
			// the comparison lists its two commits too, and the bisection
			// steps on the first-parent line only.
			pr.MergeParents = true
			pr.Commits = []githubfake.Commit{{SHA: "f1f1f1f1f1f1f1f1f1f1f1f1f1f1f1f1f1f1f1f1", Message: "tax: cache per tenant"},
				{SHA: "f2f2f2f2f2f2f2f2f2f2f2f2f2f2f2f2f2f2f2f2", Message: "tax: cache per region"}}
		} else {
			f.AddCommit(c[i], "change "+string(rune('0'+i)))
		}
		f.AddPull(pr)
	}
	return f, c
}

// The action with the fake GitHub: the batch comes from GitHub's
// comparison, in first-parent order (the culprit's pull request was merged
// with a merge commit); one comment, on the culprit's pull request; the
// tracking issue names the culprit; the gate lets a revert of the culprit
// through.
func TestBisectActionTellsTheCulpritOnly(t *testing.T) {
	t.Parallel()
	f, c := bisectPush(t)
	svc, url := tracks(t, broken(c), shaGood)
	run := canaryRun(t, url, map[string]string{"bisect": "true", "canary-duration": "5s"}).useGitHub(f)
	run.env["GITHUB_SHA"] = c[4]
	res := run.exec()
	if res.code != 1 || res.outputs["verdict"] != "rolled-back" || res.outputs["culprit-sha"] != c[3] || res.outputs["shipped-sha"] != c[2] {
		t.Fatalf("exit %d, verdict %q, culprit-sha %q, shipped-sha %q\n%s", res.code, res.outputs["verdict"], res.outputs["culprit-sha"], res.outputs["shipped-sha"], res.log)
	}
	if svc.Stable.Current() != c[2] || strings.Join(svc.Stable.Deploys(), ",") != c[2] {
		t.Errorf("the stable track runs %s, was deployed %v", svc.Stable.Current(), svc.Stable.Deploys())
	}
	var commented []int
	for pr := 11; pr <= 14; pr++ {
		for _, cm := range f.Comments(pr) {
			if strings.HasPrefix(cm.Body, "<!-- immune:regression") {
				commented = append(commented, pr)
			}
		}
	}
	if len(commented) != 1 || commented[0] != 13 {
		t.Errorf("commented on %v, want #13 alone", commented)
	}
	issues := f.Issues()
	if len(issues) != 1 || issues[0].State != "open" || !strings.Contains(issues[0].Title, c[3][:7]+" by @mona regressed (found by bisection)") || !strings.Contains(issues[0].Body, "a bisection on the canary found it in 2 steps") {
		t.Errorf("issues: %+v", issues)
	}
	if got := strings.Join(tasks(f), " "); got != "deploy:canary:queued,in_progress,failure deploy:bisect:in_progress,success deploy:bisect:in_progress,failure deploy:in_progress,success" {
		t.Errorf("deployments %s", got)
	}
	for _, want := range []string{"## 🔎 immune: c4c4c4c regressed on production: the bisection named c3c3c3c the culprit, and c2c2c2c, the good part of its batch, shipped",
		"| Batch | 4 commits after `9f2c1e7` (GitHub's comparison, first-parent); 2 of at most 2 steps on the canary |", "```mermaid"} {
		if !strings.Contains(res.summary, want) {
			t.Errorf("summary lacks %q:\n%s", want, res.summary)
		}
	}
	// The line stays stopped for c3: its revert goes through the gate.
	f.AddPullRequest(123, "7c1d2e3f4a5b6c7d8e9f0a1b2c3d4e5f6a7b8c9d", nil, []githubfake.Commit{{SHA: "7c1d2e3f4a5b6c7d8e9f0a1b2c3d4e5f6a7b8c9d",
		Message: "Revert \"change 3\"\n\nThis reverts commit " + c[3] + "."}})
	gate := gateRun(t, f, "pull_request")
	if gate.code != 0 || gate.outputs["verdict"] != "fix-allowed" || !strings.Contains(gate.log, "reverts c3c3c3c") || !strings.Contains(gate.log, "without c3c3c3c") {
		t.Errorf("gate: exit %d, verdict %s\n%s", gate.code, gate.outputs["verdict"], gate.log)
	}
}

// A job cancelled during a bisection step, with GitHub: the batch
// regressed and was rolled back before the bisection began, and nobody had
// heard it yet (they hear once the bisection ends). The cancel tells them
// now: the tracking issue opens and names the batch's suspects, and the
// line is stopped; the step's records end as the cancel leaves them.
func TestBisectCancelledTellsTheBatch(t *testing.T) {
	t.Parallel()
	f, c := bisectPush(t)
	svc, url := tracks(t, broken(c), shaGood)
	run := canaryRun(t, url, map[string]string{"bisect": "true", "canary-duration": "30s"}).useGitHub(f)
	run.env["GITHUB_SHA"] = c[4]
	res := run.cancelWhen(func() bool { return strings.Contains(strings.Join(tasks(f), " "), "deploy:bisect:in_progress") }, 300*time.Millisecond)
	if res.code != 1 || res.outputs["verdict"] != "cancelled" {
		t.Fatalf("exit %d, verdict %q\n%s", res.code, res.outputs["verdict"], res.log)
	}
	if svc.Stable.Current() != shaGood || svc.Canary.Current() != shaGood {
		t.Errorf("the stable track runs %s, the canary %s; want %s", svc.Stable.Current(), svc.Canary.Current(), shaGood[:7])
	}
	issues := f.Issues()
	if len(issues) != 1 || issues[0].State != "open" || !strings.Contains(issues[0].Body, "the bisection was stopped before it could decide") ||
		!strings.Contains(issues[0].Body, "Production runs [`"+shaGood[:7]+"`") {
		t.Fatalf("issues: %+v\n%s", issues, res.log)
	}
	if got := strings.Join(tasks(f), " "); !strings.HasPrefix(got, "deploy:canary:queued,in_progress,failure deploy:bisect:in_progress,error") {
		t.Errorf("deployments %s", got)
	}
	gate := gateRun(t, f, "pull_request")
	if gate.outputs["verdict"] != "stopped" {
		t.Errorf("gate: verdict %s, want stopped\n%s", gate.outputs["verdict"], gate.log)
	}
}

// A job cancelled during a bisection step: the binary removes the step's
// canary before it ends, and says what runs where.
func TestBisectCancelledDuringAStep(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	c := gitBatch(t, dir)
	svc, url := tracks(t, broken(c), c[0])
	run := canaryRun(t, url, map[string]string{"bisect": "true", "canary-duration": "30s", "sha": c[4], "previous-sha": c[0]})
	// The workspace is the repository: a checkout with fetch-depth: 0.
	run.workspace, run.env["GITHUB_WORKSPACE"] = dir, dir
	res := run.cancelWhen(func() bool { return strings.Contains(read(dir, "commands"), "canary bisect") }, 500*time.Millisecond)
	if res.code != 1 || res.outputs["verdict"] != "cancelled" {
		t.Fatalf("exit %d, verdict %q\n%s", res.code, res.outputs["verdict"], res.log)
	}
	if got := read(dir, "commands"); !strings.HasSuffix(got, "canary bisect "+c[2]+"\ncanary rollback "+c[0]+"\n") || svc.Canary.Current() != c[0] || svc.Stable.Current() != c[0] {
		t.Errorf("the canary runs %s, the stable track %s; commands:\n%s", svc.Canary.Current(), svc.Stable.Current(), got)
	}
	want := "the job was cancelled during the bisect phase: " + c[4][:7] + " regressed and was rolled back, and the bisection of its batch was stopped during its step on " +
		c[2][:7] + ", which was put back on " + c[0][:7] + ": production runs " + c[0][:7]
	if !strings.Contains(res.log, want) {
		t.Errorf("the log lacks %q:\n%s", want, res.log)
	}
}
