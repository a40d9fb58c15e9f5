package action

import (
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/immune-cd/immune/internal/deploy"
	"github.com/immune-cd/immune/internal/ghapi"
	"github.com/immune-cd/immune/internal/recorder"
	"github.com/immune-cd/immune/internal/run"
	"github.com/immune-cd/immune/internal/testkit/githubfake"
)

// In-process tests of the bisection: a batch of commits after shaGood
// regresses on the canary (or on the whole fleet), the stepped clock runs
// each step's canary watch in order, and the fake GitHub holds the batch
// (compare) and each commit's merged pull request.

// batchCommits are the batch's commits after shaGood, b(1)…b(n), on the
// default branch after the machine's own.
func b(i int) string { return fmt.Sprintf("b%d", i) + strings.Repeat("0", 38) }

// bisectMachine is a canary machine whose push is the batch b(1)…b(n),
// each merged from pull request 100+i by dev<i>; commits from bad on fail
// rate of their probes, on either track.
func bisectMachine(t *testing.T, n, bad int, rate float64, inputs map[string]string) (*machine, *tracks) {
	t.Helper()
	in := map[string]string{"bisect": "true", "sha": b(n)}
	for k, v := range inputs {
		in[k] = v
	}
	m, w := canaryMachine(t, in)
	for i := 1; i <= n; i++ {
		m.gh.AddCommit(b(i), fmt.Sprintf("change %d", i))
		m.gh.AddPull(githubfake.PullRequest{Number: 100 + i, Title: fmt.Sprintf("change %d", i), Author: fmt.Sprintf("dev%d", i), Merged: true, MergeCommitSHA: b(i)})
		if i >= bad {
			w.failRate[b(i)], w.fullFailRate[b(i)] = rate, rate
		}
	}
	return m, w
}

// comments lists the pull requests immune commented on.
func commented(m *machine, prs ...int) []int {
	var out []int
	for _, pr := range prs {
		for _, c := range m.gh.Comments(pr) {
			if strings.HasPrefix(c.Body, "<!-- immune:regression") {
				out = append(out, pr)
			}
		}
	}
	return out
}

// The batch after shaGood is shaNew, shaOther, b(1)…b(4); b(3) broke it.
// Its canary regresses and is removed; three steps find b(3) on the
// canary; b(2) ships to the whole fleet and is watched; only b(3)'s author
// is told; the line stays stopped for b(3) and lets its revert through.
func TestBisectFindsTheCulpritAndShipsTheRest(t *testing.T) {
	t.Parallel()
	var h heard
	m, w := bisectMachine(t, 4, 3, 0.4, map[string]string{"notify-secret": "k"})
	m.inputs["notify-webhook"] = h.serve(t)
	res := m.run()
	if res.code != 1 || res.out["verdict"] != "rolled-back" || res.phases != "validate canary-deploy canary-watch canary-rollback bisect deploy watch decide record" {
		t.Fatalf("exit %d, verdict %q, phases %q\n%s", res.code, res.out["verdict"], res.phases, res.log)
	}
	if res.out["culprit-sha"] != b(3) || res.out["shipped-sha"] != b(2) || res.out["sha"] != b(4) || res.out["rolled-back"] != "true" {
		t.Errorf("outputs %v", res.out)
	}
	short := func(s string) string { return s[:7] }
	want := []string{
		"canary deploy " + short(b(4)), "canary rollback " + short(shaGood),
		"canary bisect " + short(b(1)), "canary rollback " + short(shaGood),
		"canary bisect " + short(b(2)), "canary rollback " + short(shaGood),
		"canary bisect " + short(b(3)), "canary rollback " + short(shaGood),
		"full deploy " + short(b(2)),
	}
	if got := w.deployed(); got != strings.Join(want, ", ") {
		t.Errorf("commands:\n%s\nwant\n%s", got, strings.Join(want, ", "))
	}
	if w.served[b(3)] || w.served[b(4)] || w.stable != b(2) {
		t.Errorf("the stable track served %v, runs %s", w.served, w.stable)
	}
	// The records: the batch's canary, three steps, the good part's deploy
	// naming the culprit.
	var got []string
	for _, d := range m.gh.Deployments()[1:] {
		st := m.gh.DeploymentStatuses(d.ID)
		got = append(got, fmt.Sprintf("%s %s %s: %s", d.Task, short(d.SHA), m.states(d.ID), st[len(st)-1].Description))
	}
	wantDeps := []string{
		"deploy:canary " + short(b(4)) + " queued,in_progress,failure: canary regressed:",
		"deploy:bisect " + short(b(1)) + " in_progress,success: good:",
		"deploy:bisect " + short(b(2)) + " in_progress,success: good:",
		"deploy:bisect " + short(b(3)) + " in_progress,failure: culprit: the first bad commit:",
		"deploy " + short(b(2)) + " in_progress,success: healthy:",
	}
	if len(got) != len(wantDeps) {
		t.Fatalf("deployments:\n%s", strings.Join(got, "\n"))
	}
	for i := range got {
		if !strings.HasPrefix(got[i], wantDeps[i]) {
			t.Errorf("deployment %d: %s\nwant %s…", i, got[i], wantDeps[i])
		}
	}
	ship := m.gh.Deployments()[len(m.gh.Deployments())-1]
	if p, _ := recorder.PayloadOf(ghapi.Deployment{Payload: ship.Payload.(map[string]any)}); p.Culprit != b(3) || p.PreviousSHA != shaGood {
		t.Errorf("the good part's payload: %+v", p)
	}
	for c, want := range map[string]string{b(4): "pending,failure", b(1): "pending,success", b(2): "pending,success,pending,success", b(3): "pending,failure"} {
		if got := m.commitStates(c); got != want {
			t.Errorf("commit statuses of %s: %s, want %s", short(c), got, want)
		}
	}
	// One comment, on the culprit's pull request.
	if got := commented(m, 101, 102, 103, 104); fmt.Sprint(got) != "[103]" {
		t.Errorf("commented on %v, want [103]", got)
	}
	comment := m.gh.Comments(103)[0].Body
	for _, want := range []string{"### 🔎 `b300000` regressed on production: a bisection of the batch found it", "@dev3, this pull request's change", "is the first bad commit of `b400000`'s batch of 6", "found it in 3 steps", "The commits before it shipped: production runs"} {
		if !strings.Contains(comment, want) {
			t.Errorf("the comment lacks %q:\n%s", want, comment)
		}
	}
	issues := m.gh.Issues()
	if len(issues) != 1 || issues[0].State != "open" || !strings.Contains(issues[0].Title, "b300000 by @dev3 regressed (found by bisection)") {
		t.Errorf("issues: %+v", issues)
	}
	for _, want := range []string{"## 🔎 immune: b400000 regressed on production: the bisection named b300000 the culprit, and b200000, the good part of its batch, shipped", "| Culprit | `b300000`, the first bad commit |", "**Bisection**", "| 3 | `b300000` (5 of 6) | ❌ bad, the culprit |", "| Canary removal | ✅ removed |", "xychart-beta"} {
		if !strings.Contains(summaryOf(m), want) {
			t.Errorf("summary lacks %q:\n%s", want, summaryOf(m))
		}
	}
	if strings.Contains(res.log, "::warning") {
		t.Errorf("warnings:\n%s", res.log)
	}

	// The webhook heard the batch regress, then the culprit, with what
	// runs now.
	heardKinds := h.kinds()
	h.mu.Lock()
	if heardKinds != "regressed rolled-back" {
		t.Errorf("the webhook heard %q", heardKinds)
	} else if last := h.events[1]; last.SHA != b(3) || last.RunningSHA != b(2) || last.Author != "dev3" || fmt.Sprint(last.PullRequests) != "[103]" ||
		!strings.Contains(last.Text, "is what regressed production (found by bisecting its batch") {
		t.Errorf("the last event: %+v", last)
	}
	h.mu.Unlock()
	// The gate: stopped for b(3); its revert goes through, another pull
	// request does not.
	revert := strings.Repeat("7", 40)
	m.gh.AddPullRequest(200, revert, nil, []githubfake.Commit{{SHA: revert, Message: "Revert \"change 3\"\n\nThis reverts commit " + b(3) + "."}})
	other := strings.Repeat("8", 40)
	m.gh.AddPullRequest(201, other, nil, []githubfake.Commit{{SHA: other, Message: "Search: facets"}})
	for pr, want := range map[int]string{200: "fix-allowed", 201: "stopped"} {
		g := gateMachine(t, m, pr)
		if g.out["verdict"] != want || !strings.Contains(g.log, "without "+short(b(3))) {
			t.Errorf("gate of #%d: verdict %s, want %s\n%s", pr, g.out["verdict"], want, g.log)
		}
	}

	// The revert deployed healthy clears the line: the tracking issue is
	// closed.
	m.gh.AddCommit(revert, "Revert \"change 3\"")
	fix := newMachine(t, "push", map[string]string{"sha": revert})
	fix.gh = m.gh
	fix.world.live = b(2)
	if res := fix.run(); res.out["verdict"] != "healthy" {
		t.Fatalf("the revert's deploy: %s\n%s", res.out["verdict"], res.log)
	}
	if issues := m.gh.Issues(); len(issues) != 1 || issues[0].State != "closed" {
		t.Errorf("after the revert: issues %+v", issues)
	}
}

// gateMachine runs the gate for pull request pr against m's GitHub.
func gateMachine(t *testing.T, m *machine, pr int) result {
	t.Helper()
	g := newMachine(t, "push", map[string]string{"mode": "gate"})
	g.gh = m.gh
	g.env["GITHUB_EVENT_NAME"] = "pull_request"
	if err := os.WriteFile(g.env["GITHUB_EVENT_PATH"], []byte(fmt.Sprintf(`{"number":%d,"pull_request":{"number":%d}}`, pr, pr)), 0o644); err != nil {
		t.Fatal(err)
	}
	return g.run()
}

// summaryOf is the job summary a run wrote.
func summaryOf(m *machine) string {
	data, _ := os.ReadFile(m.env["GITHUB_STEP_SUMMARY"])
	return string(data)
}

func TestBisectTransitions(t *testing.T) {
	t.Parallel()
	short := func(s string) string { return s[:7] }
	tests := []struct {
		name            string
		n, bad          int
		rate            float64
		inputs          map[string]string
		setup           func(m *machine, w *tracks)
		code            int
		verdict, phases string
		culprit, ship   string
		steps           string // the commits tried, and what each was
		note            string
	}{
		{name: "the culprit is the batch's first commit: nothing ships", n: 4, bad: -1, rate: 0.4,
			setup: func(m *machine, w *tracks) {
				w.failRate[shaNew], w.fullFailRate[shaNew] = 0.4, 0.4
				w.failRate[shaOther] = 0.4
			},
			code: 1, verdict: "rolled-back", phases: "validate canary-deploy canary-watch canary-rollback bisect record",
			culprit: shaNew, steps: short(b(1)) + " bad, " + short(shaNew) + " bad", note: "no commit of the batch was found good"},
		{name: "the culprit is the head: everything before it ships", n: 2, bad: 2, rate: 0.4,
			code: 1, verdict: "rolled-back", phases: "validate canary-deploy canary-watch canary-rollback bisect deploy watch decide record",
			culprit: b(2), ship: b(1), steps: short(shaOther) + " good, " + short(b(1)) + " good"},
		{name: "an intermittent culprit, judged with the usual statistics", n: 4, bad: 3, rate: 0.2, inputs: map[string]string{"canary-duration": "20m", "bisect-timeout": "2h"},
			code: 1, verdict: "rolled-back", phases: "validate canary-deploy canary-watch canary-rollback bisect deploy watch decide record",
			culprit: b(3), ship: b(2), steps: short(b(1)) + " good, " + short(b(2)) + " good, " + short(b(3)) + " bad"},
		{name: "a step that cannot decide ends the search: the good part ships, no culprit is named", n: 4, bad: 3, rate: 0.4,
			setup: func(m *machine, w *tracks) { w.fails["canary "+b(2)] = true },
			code:  1, verdict: "rolled-back", phases: "validate canary-deploy canary-watch canary-rollback bisect deploy watch decide record",
			ship: b(1), steps: short(b(1)) + " good, " + short(b(2)) + " undecided", note: "the bisection could not name the culprit: the step on " + short(b(2)) + " could not decide"},
		{name: "bisect-timeout leaves room for one step", n: 4, bad: 3, rate: 0.4, inputs: map[string]string{"bisect-timeout": "7m"},
			code: 1, verdict: "rolled-back", phases: "validate canary-deploy canary-watch canary-rollback bisect deploy watch decide record",
			ship: b(1), steps: short(b(1)) + " good", note: "bisect-timeout (7m00s) left"},
		{name: "the good part regresses on the whole fleet: rolled back as any deploy", n: 4, bad: 3, rate: 0.4,
			setup: func(m *machine, w *tracks) { w.fullFailRate[b(2)] = 1 },
			code:  1, verdict: "rolled-back", phases: "validate canary-deploy canary-watch canary-rollback bisect deploy watch decide rollback confirm record",
			steps: short(b(1)) + " good, " + short(b(2)) + " good, " + short(b(3)) + " bad"},
		{name: "a step's removal fails: the bisection stops there", n: 4, bad: 3, rate: 0.4,
			setup: func(m *machine, w *tracks) {
				removals := 0
				w.onDeploy = func(req deploy.Request) {
					if req.Reason == deploy.ReasonRollback {
						if removals++; removals == 1 {
							w.mu.Lock()
							w.fails["canary "+shaGood] = true
							w.mu.Unlock()
						}
					}
				}
			},
			code: 1, verdict: "rollback-failed", phases: "validate canary-deploy canary-watch canary-rollback bisect record",
			steps: short(b(1)) + " good"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			m, w := bisectMachine(t, tt.n, tt.bad, tt.rate, tt.inputs)
			if tt.bad < 0 {
				for i := 1; i <= tt.n; i++ {
					w.failRate[b(i)], w.fullFailRate[b(i)] = tt.rate, tt.rate
				}
			}
			if tt.setup != nil {
				tt.setup(m, w)
			}
			res := m.run()
			if res.code != tt.code || res.out["verdict"] != tt.verdict || res.phases != tt.phases {
				t.Fatalf("exit %d, verdict %q, phases %q; want %d, %q, %q\n%s", res.code, res.out["verdict"], res.phases, tt.code, tt.verdict, tt.phases, res.log)
			}
			if res.out["culprit-sha"] != tt.culprit || res.out["shipped-sha"] != tt.ship {
				t.Errorf("culprit-sha %q, shipped-sha %q; want %q, %q", res.out["culprit-sha"], res.out["shipped-sha"], tt.culprit, tt.ship)
			}
			var steps []string
			for _, s := range res.run.out.Bisect.Steps {
				steps = append(steps, short(s.SHA)+" "+s.Result)
			}
			if got := strings.Join(steps, ", "); got != tt.steps {
				t.Errorf("steps %q, want %q", got, tt.steps)
			}
			if tt.note != "" && !strings.Contains(strings.Join(res.run.out.Notes, "\n"), tt.note) {
				t.Errorf("notes %q lack %q", res.run.out.Notes, tt.note)
			}
			// The stable track never served what the bisection found bad.
			for _, s := range res.run.out.Bisect.Steps {
				if s.Result == "bad" && w.served[s.SHA] {
					t.Errorf("the stable track served %s", short(s.SHA))
				}
			}
			for _, d := range m.gh.Deployments() {
				if d.Task == string(recorder.TaskBisect) && strings.Contains(m.states(d.ID), "in_progress") && !strings.Contains(m.states(d.ID), ",") {
					t.Errorf("step %d left in progress", d.ID)
				}
			}
		})
	}
}

// A batch of one commit has nothing to bisect: rolled back as always, and
// the commit is the culprit.
func TestBisectBatchOfOne(t *testing.T) {
	t.Parallel()
	m, w := canaryMachine(t, map[string]string{"bisect": "true"})
	w.failRate[shaNew] = 0.4
	// The last good deploy is shaNew's parent.
	res := m.run()
	if res.code != 1 || res.out["verdict"] != "rolled-back" || res.phases != "validate canary-deploy canary-watch canary-rollback record" {
		t.Fatalf("exit %d, verdict %q, phases %q\n%s", res.code, res.out["verdict"], res.phases, res.log)
	}
	if res.out["culprit-sha"] != shaNew || res.out["shipped-sha"] != "" || res.run.out.Bisect != nil {
		t.Errorf("outputs %v", res.out)
	}
	if !strings.Contains(res.log, "the batch was one commit, 4d8b3f2: it is the culprit") {
		t.Errorf("log:\n%s", res.log)
	}
	if got := w.deployed(); got != "canary deploy 4d8b3f2, canary rollback 9f2c1e7" {
		t.Errorf("commands %s", got)
	}
}

// A cancel during a step: the step's canary is removed all the same, the
// step's record ends in error, nothing ships, and the run says what runs
// where.
func TestBisectCancelledDuringAStep(t *testing.T) {
	t.Parallel()
	m, w := bisectMachine(t, 4, 3, 0.4, nil)
	w.onDeploy = func(req deploy.Request) {
		if req.Reason == deploy.ReasonBisect && req.SHA == b(2) {
			m.cancel()
		}
	}
	res := m.run()
	if res.code != 1 || res.out["verdict"] != "cancelled" || res.run.out.StoppedIn != run.Bisect {
		t.Fatalf("exit %d, verdict %q, stopped in %q\n%s", res.code, res.out["verdict"], res.run.out.StoppedIn, res.log)
	}
	short := func(s string) string { return s[:7] }
	if got := w.deployed(); !strings.HasSuffix(got, "canary bisect "+short(b(2))+", canary rollback "+short(shaGood)) || w.canary != shaGood {
		t.Errorf("commands %s; the canary runs %s", got, w.canary)
	}
	want := "the job was cancelled during the bisect phase: " + short(b(4)) + " regressed and was rolled back, and the bisection of its batch was stopped during its step on " +
		short(b(2)) + ", which was put back on " + short(shaGood) + ": production runs " + short(shaGood)
	if res.run.out.Reason != want || !strings.Contains(res.log, "::error title=Cancelled::"+want) {
		t.Errorf("reason %q\nwant   %q", res.run.out.Reason, want)
	}
	ds := m.gh.Deployments()
	last := ds[len(ds)-1]
	st := m.gh.DeploymentStatuses(last.ID)
	if last.Task != string(recorder.TaskBisect) || last.SHA != b(2) || m.states(last.ID) != "in_progress,error" || st[len(st)-1].Description != "cancelled during bisect" {
		t.Errorf("the step's record: %s of %s, %s %q", last.Task, short(last.SHA), m.states(last.ID), st[len(st)-1].Description)
	}
	if res.out["shipped-sha"] != "" || res.out["culprit-sha"] != "" {
		t.Errorf("outputs %v", res.out)
	}
}

// Without a canary, bisect-production steps the whole fleet: each step is
// deployed with deploy-command, watched as a deploy, and rolled back.
func TestBisectInProduction(t *testing.T) {
	t.Parallel()
	m := newMachine(t, "push", map[string]string{"bisect": "true", "bisect-production": "true", "sha": b(2)})
	m.ours(recorder.TaskDeploy, shaGood, t0.Add(-time.Hour), "in_progress", "success")
	m.gh.AddCommit(b(1), "change 1")
	m.gh.AddCommit(b(2), "change 2")
	// shaNew, shaOther, b(1), b(2): b(1) broke it.
	m.world.down[b(1)], m.world.down[b(2)] = true, true
	res := m.run()
	if res.code != 1 || res.out["verdict"] != "rolled-back" || res.phases != "validate deploy watch decide rollback confirm bisect deploy watch decide record" {
		t.Fatalf("exit %d, verdict %q, phases %q\n%s", res.code, res.out["verdict"], res.phases, res.log)
	}
	if res.out["culprit-sha"] != b(1) || res.out["shipped-sha"] != shaOther {
		t.Errorf("outputs %v", res.out)
	}
	want := "deploy " + b(2) + ", rollback " + shaGood + ", bisect " + shaOther + ", rollback " + shaGood + ", bisect " + b(1) + ", rollback " + shaGood + ", deploy " + shaOther
	if got := m.world.deployed(); got != want {
		t.Errorf("commands\n%s\nwant\n%s", got, want)
	}
}
