package action

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/immune-cd/immune/internal/ghapi"
	"github.com/immune-cd/immune/internal/recorder"
	"github.com/immune-cd/immune/internal/run"
)

// In-process tests of shadow mode: everything is judged, nothing is acted
// on, and the records say what would have been done.

func TestShadowTransitions(t *testing.T) {
	t.Parallel()
	short := func(s string) string { return s[:7] }
	tests := []struct {
		name    string
		canary  bool
		setup   func(m *machine, w *tracks)
		code    int
		verdict run.Verdict
		phases  string
		deploys string
		// The deploy's statuses, with the last one's description, and the
		// commit statuses.
		full, fullDesc, commit string
		canaryStates           string // "" without a canary
		summary                string
	}{
		{name: "a crash: would have rolled back, and was not", setup: func(m *machine, _ *tracks) { m.world.down[shaNew] = true },
			code: 0, verdict: run.Regressed, phases: "validate deploy watch decide record", deploys: "deploy " + shaNew,
			full: "queued,in_progress,success", fullDesc: "shadow: would have rolled back at +10.0s: 3 of 3 probes failed", commit: "pending,success",
			summary: "**Why:** 3 probes in a row failed on " + url1 + "\n\n**Shadow mode:** would have rolled back to 9f2c1e7 at +10.0s. Nothing was done"},
		{name: "healthy: as a live deploy", code: 0, verdict: run.Healthy, phases: "validate deploy watch decide record", deploys: "deploy " + shaNew,
			full: "queued,in_progress,success", fullDesc: "healthy: ", commit: "pending,success",
			summary: "**Shadow mode:** nothing would have been rolled back."},
		{name: "the deploy command fails: the job fails, nothing is rolled back, and the line stays clear",
			setup: func(m *machine, _ *tracks) { m.world.fails[shaNew] = true },
			code:  1, verdict: run.Regressed, phases: "validate deploy decide record", deploys: "deploy " + shaNew,
			full: "queued,in_progress,error", fullDesc: "shadow: the deploy command failed; would have rolled back at +0.0ms: deploy command failed", commit: "pending,error",
			summary: "**Why:** the deploy command failed: command exited with status 4\n\n**Shadow mode:** would have rolled back to 9f2c1e7 at +0.0ms. Nothing"},
		{name: "a bad canary: would have been removed, promoted as if it passed, and the whole fleet watched",
			canary: true, setup: func(_ *machine, w *tracks) { w.failRate[shaNew] = 0.4 },
			code: 0, verdict: run.Regressed, phases: "validate canary-deploy canary-watch deploy watch decide record",
			deploys:      "canary deploy " + short(shaNew) + ", full deploy " + short(shaNew),
			canaryStates: "queued,in_progress,success", full: "in_progress,success", fullDesc: "shadow: would have removed the canary at +", commit: "pending,pending,success",
			summary: "would have removed the canary at +"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var m *machine
			var w *tracks
			if tt.canary {
				m, w = canaryMachine(t, map[string]string{"shadow": "true"})
			} else {
				m = newMachine(t, "push", map[string]string{"shadow": "true"})
				m.ours(recorder.TaskDeploy, shaGood, t0.Add(-time.Hour), "in_progress", "success")
			}
			if tt.setup != nil {
				tt.setup(m, w)
			}
			res := m.run()
			if res.code != tt.code || res.out["verdict"] != string(tt.verdict) || res.out["rolled-back"] != "false" || res.out["shadow"] != "true" || res.phases != tt.phases {
				t.Fatalf("exit %d, verdict %q, rolled-back %q, shadow %q, phases %q; want %d, %q, false, true, %q\n%s",
					res.code, res.out["verdict"], res.out["rolled-back"], res.out["shadow"], res.phases, tt.code, tt.verdict, tt.phases, res.log)
			}
			deployed := m.world.deployed()
			if tt.canary {
				deployed = w.deployed()
			}
			if deployed != tt.deploys {
				t.Errorf("deploys %q, want %q", deployed, tt.deploys)
			}
			ds := m.gh.Deployments()
			for _, d := range ds {
				if d.Task == string(recorder.TaskRollback) {
					t.Errorf("a rollback was recorded: deployment %d", d.ID)
				}
			}
			full := ds[len(ds)-1]
			statuses := m.gh.DeploymentStatuses(full.ID)
			if got := m.states(full.ID); full.Task != "deploy" || got != tt.full || !strings.HasPrefix(statuses[len(statuses)-1].Description, tt.fullDesc) {
				t.Errorf("the deploy's statuses %s (%q), want %s (%q...)", got, statuses[len(statuses)-1].Description, tt.full, tt.fullDesc)
			}
			if tt.canary {
				c := ds[len(ds)-2]
				cs := m.gh.DeploymentStatuses(c.ID)
				if got := m.states(c.ID); c.Task != "deploy:canary" || got != tt.canaryStates || !strings.HasPrefix(cs[len(cs)-1].Description, "shadow: would have removed the canary at +") {
					t.Errorf("the canary's statuses %s (%q)", got, cs[len(cs)-1].Description)
				}
			}
			commits := m.gh.CommitStatuses(shaNew)
			if got := m.commitStates(shaNew); got != tt.commit || strings.Contains(got, "failure") {
				t.Errorf("commit statuses %s, want %s", got, tt.commit)
			}
			if last := commits[len(commits)-1].Description; tt.verdict != run.Healthy && !strings.HasPrefix(last, "shadow: ") {
				t.Errorf("the commit status says %q, want it to start with shadow:", last)
			}
			if len(m.gh.Issues()) != 0 {
				t.Errorf("a tracking issue was opened: %+v", m.gh.Issues())
			}
			summary := readFile(t, m.env["GITHUB_STEP_SUMMARY"])
			if testing.Verbose() {
				t.Logf("summary:\n%s\nlog:\n%s", summary, res.log)
			}
			if !strings.Contains(summary, tt.summary) {
				t.Errorf("the summary lacks %q:\n%s", tt.summary, summary)
			}
			// The line stays clear, and the build is no rollback target.
			line, err := recorder.New(recorder.Options{GitHub: githubClient(t, m), Environment: "production"}).Line(m.ctx)
			if err != nil || line.Stopped {
				t.Errorf("the line after the shadow run: %+v, %v", line, err)
			}
		})
	}
}

// After a shadow run let a regressed build be, a live deploy that regresses
// rolls back past it, to the last build seen healthy.
func TestShadowRegressionIsNoRollbackTarget(t *testing.T) {
	t.Parallel()
	m := newMachine(t, "push", map[string]string{"shadow": "true"})
	m.ours(recorder.TaskDeploy, shaGood, t0.Add(-time.Hour), "in_progress", "success")
	m.world.down[shaNew] = true
	if res := m.run(); res.code != 0 || res.out["verdict"] != "regressed" {
		t.Fatalf("the shadow run: exit %d, verdict %s\n%s", res.code, res.out["verdict"], res.log)
	}
	m.world.mu.Lock()
	m.world.down[shaNew], m.world.down[shaOther] = false, true
	m.world.mu.Unlock()
	m.clk.Advance(time.Hour)
	m.inputs["shadow"], m.inputs["sha"] = "false", shaOther
	m.log.Reset()
	if err := clearFile(m.env["GITHUB_OUTPUT"]); err != nil {
		t.Fatal(err)
	}
	res := m.run()
	if res.code != 1 || res.out["verdict"] != "rolled-back" || res.out["previous-sha"] != shaGood {
		t.Fatalf("the live run: exit %d, verdict %s, rolled back to %s; want a rollback to %s\n%s", res.code, res.out["verdict"], res.out["previous-sha"], shaGood[:7], res.log)
	}
}

func githubClient(t *testing.T, m *machine) recorder.GitHub {
	t.Helper()
	gh, err := ghapi.New(ghapi.Options{HTTPClient: m.gh.Client(), APIURL: m.gh.URL(), Token: token, Repository: "octo-org/shop"})
	if err != nil {
		t.Fatal(err)
	}
	return gh
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

func clearFile(path string) error { return os.WriteFile(path, nil, 0o644) }

// A shadow metric is judged and shown, and never regresses the build: the
// live metric passes, the shadow one would have regressed, and the run is
// healthy.
func TestShadowMetric(t *testing.T) {
	t.Parallel()
	m := newMachine(t, "push", map[string]string{"health-url": ""})
	m.ours(recorder.TaskDeploy, shaGood, t0.Add(-time.Hour), "in_progress", "success")
	tr := m.withPrometheus(`- name: http-errors
  errors: http_requests_total{version="${SHA}",code=~"5.."}
  total: http_requests_total{version="${SHA}"}
  max-error-rate: 5%
- name: p99
  query: latency_p99{version="${SHA}"}
  max: 0.3
  consecutive: 2
  shadow: true
`)
	tr.p99[shaNew] = 0.9
	res := m.run()
	if res.code != 0 || res.out["verdict"] != "healthy" || res.out["shadow"] != "false" || m.world.deployed() != "deploy "+shaNew {
		t.Fatalf("exit %d, verdict %s, shadow %s, deploys %q\n%s", res.code, res.out["verdict"], res.out["shadow"], m.world.deployed(), res.log)
	}
	summary := readFile(t, m.env["GITHUB_STEP_SUMMARY"])
	for _, want := range []string{"| `p99` (threshold) |", "🕶️ shadow: would have regressed at +", "🕶️ `p99` is a shadow metric: it would have regressed the build at +"} {
		if !strings.Contains(summary, want) {
			t.Errorf("the summary lacks %q:\n%s", want, summary)
		}
	}
	if got := m.commitStates(shaNew); got != "pending,success" {
		t.Errorf("commit statuses %s", got)
	}
}
