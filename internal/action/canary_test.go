package action

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/immune-cd/immune/internal/clock"
	"github.com/immune-cd/immune/internal/deploy"
	"github.com/immune-cd/immune/internal/health"
	"github.com/immune-cd/immune/internal/recorder"
	"github.com/immune-cd/immune/internal/run"
	"github.com/immune-cd/immune/internal/testkit/githubfake"
)

// In-process tests of the canary stage: production as two tracks, the
// stable fleet (probed at url1, the control) and a canary subset (probed
// at canaryURL), each running a commit, on the stepped clock.

const canaryURL = "https://canary.shop.example.com/healthz"

type tracks struct {
	mu             sync.Mutex
	clk            *clock.Step
	stable, canary string
	failRate       map[string]float64 // per commit: the share of its probes that fail (spread evenly)
	fullFailRate   map[string]float64 // per commit: the same once it runs on the stable track
	incident       float64            // both tracks fail this share of probes while it is set
	fails          map[string]bool    // "<stage> <sha>": the command fails
	hang           map[string]bool    // "<stage> <sha>": the command runs until cancelled
	served         map[string]bool    // commits the stable track ran
	n              map[string]int     // probes per track
	deploys        []string
	onProbe        func(url string, n int)
	onDeploy       func(req deploy.Request)
}

func newTracks(clk *clock.Step) *tracks {
	return &tracks{clk: clk, stable: shaGood, canary: shaGood, failRate: map[string]float64{}, fullFailRate: map[string]float64{},
		fails: map[string]bool{}, hang: map[string]bool{}, served: map[string]bool{shaGood: true}, n: map[string]int{}}
}

func (w *tracks) Deploy(ctx context.Context, req deploy.Request) error {
	key := req.Stage + " " + req.SHA
	w.mu.Lock()
	w.deploys = append(w.deploys, req.Stage+" "+req.Reason+" "+req.SHA[:min(7, len(req.SHA))])
	hook, hang, fail := w.onDeploy, w.hang[key], w.fails[key]
	w.mu.Unlock()
	if hook != nil {
		hook(req)
	}
	if hang {
		<-ctx.Done()
		return fmt.Errorf("command was cancelled; its process group was killed: %w", ctx.Err())
	}
	if fail {
		return fmt.Errorf("command exited with status 3")
	}
	w.mu.Lock()
	switch req.Stage {
	case "canary":
		w.canary = req.SHA
	case "full":
		w.stable, w.canary = req.SHA, req.SHA
		w.served[req.SHA] = true
	default:
		panic("a command without IMMUNE_STAGE: " + req.Stage)
	}
	w.mu.Unlock()
	w.clk.Advance(2 * time.Second)
	return nil
}

// hits spreads a rate evenly over probes, as the test service does.
func hits(n int, rate float64) bool {
	return rate > 0 && int(float64(n+1)*rate) > int(float64(n)*rate)
}

func (w *tracks) Probe(ctx context.Context, url, want string) health.Probe {
	w.mu.Lock()
	track, commit, rate := "stable", w.stable, w.fullFailRate[w.stable]
	if url == canaryURL {
		track, commit, rate = "canary", w.canary, w.failRate[w.canary]
	}
	n := w.n[track]
	w.n[track]++
	incident, hook := w.incident, w.onProbe
	w.mu.Unlock()
	if hook != nil {
		hook(url, n)
	}
	p := health.Probe{Time: w.clk.Now(), URL: url, Version: commit, VersionMatch: commit == want, Answered: true, Latency: 20 * time.Millisecond, Status: 200}
	if hits(n, rate) || hits(n, incident) {
		p.Status, p.Failed, p.Error = 500, true, "status 500"
	}
	return p
}

func (w *tracks) deployed() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return strings.Join(w.deploys, ", ")
}

// canaryMachine is a machine whose production is two tracks.
func canaryMachine(t *testing.T, inputs map[string]string) (*machine, *tracks) {
	in := map[string]string{"canary-command": "./deploy.sh canary", "canary-health-url": canaryURL, "canary-duration": "5m", "expect-version": "header:X-Version"}
	for k, v := range inputs {
		in[k] = v
	}
	m := newMachine(t, "push", in)
	w := newTracks(m.clk)
	m.deployer, m.probe = w, w.Probe
	m.ours(recorder.TaskDeploy, shaGood, t0.Add(-time.Hour), "in_progress", "success")
	return m, w
}

func TestCanaryTransitions(t *testing.T) {
	t.Parallel()
	short := func(s string) string { return s[:7] }
	tests := []struct {
		name     string
		inputs   map[string]string
		setup    func(w *tracks)
		code     int
		verdict  run.Verdict
		stage    run.Stage
		phases   string
		deploys  string
		canary   string // the canary deployment's statuses
		full     string // the deploy deployment's statuses ("" = none)
		commit   string // the commit statuses of the new build
		reason   string
		rolledBk bool
	}{
		{name: "a good canary, promoted and watched", code: 0, verdict: run.Healthy, stage: run.StageFull,
			phases:  "validate canary-deploy canary-watch deploy watch decide record",
			deploys: "canary deploy " + short(shaNew) + ", full deploy " + short(shaNew),
			canary:  "queued,in_progress,success", full: "in_progress,success", commit: "pending,pending,success"},
		{name: "a good canary after a baseline", inputs: map[string]string{"baseline-duration": "1m"}, code: 0, verdict: run.Healthy, stage: run.StageFull,
			phases:  "validate baseline canary-deploy canary-watch deploy watch decide record",
			deploys: "canary deploy " + short(shaNew) + ", full deploy " + short(shaNew),
			canary:  "queued,in_progress,success", full: "in_progress,success", commit: "pending,pending,success"},
		{name: "a bad canary, removed before the full deploy",
			setup: func(w *tracks) { w.failRate[shaNew] = 0.4 }, code: 1, verdict: run.RolledBack, stage: run.StageCanary,
			phases:  "validate canary-deploy canary-watch canary-rollback record",
			deploys: "canary deploy " + short(shaNew) + ", canary rollback " + short(shaGood),
			canary:  "queued,in_progress,failure", commit: "pending,failure", reason: "the canary's failure rate is more than 5 points above the control's", rolledBk: true},
		{name: "a dead canary, caught in a row",
			setup: func(w *tracks) { w.failRate[shaNew] = 1 }, inputs: map[string]string{"startup-timeout": "20s"}, code: 1, verdict: run.RolledBack, stage: run.StageCanary,
			phases:  "validate canary-deploy canary-watch canary-rollback record",
			deploys: "canary deploy " + short(shaNew) + ", canary rollback " + short(shaGood),
			canary:  "queued,in_progress,failure", commit: "pending,failure", reason: "the canary: no healthy answer from " + canaryURL + " within the startup timeout of 20.0s", rolledBk: true},
		{name: "the canary command fails",
			setup: func(w *tracks) { w.fails["canary "+shaNew] = true }, code: 1, verdict: run.RolledBack, stage: run.StageCanary,
			phases:  "validate canary-deploy canary-rollback record",
			deploys: "canary deploy " + short(shaNew) + ", canary rollback " + short(shaGood),
			canary:  "queued,in_progress,failure", commit: "pending,failure", reason: "the canary command failed: command exited with status 3", rolledBk: true},
		{name: "the canary's removal fails",
			setup: func(w *tracks) { w.failRate[shaNew] = 0.4; w.fails["canary "+shaGood] = true }, code: 1, verdict: run.RollbackFailed, stage: run.StageCanary,
			phases:  "validate canary-deploy canary-watch canary-rollback record",
			deploys: "canary deploy " + short(shaNew) + ", canary rollback " + short(shaGood),
			canary:  "queued,in_progress,failure", commit: "pending,failure", reason: "points above the control's", rolledBk: true},
		{name: "auto-rollback off leaves the canary",
			setup: func(w *tracks) { w.failRate[shaNew] = 0.4 }, inputs: map[string]string{"auto-rollback": "false"}, code: 1, verdict: run.Regressed, stage: run.StageCanary,
			phases:  "validate canary-deploy canary-watch record",
			deploys: "canary deploy " + short(shaNew),
			canary:  "queued,in_progress,failure", commit: "pending,failure", reason: "points above the control's"},
		{name: "a shared incident during the canary is not the canary's",
			setup: func(w *tracks) {
				w.onDeploy = func(req deploy.Request) {
					w.mu.Lock()
					defer w.mu.Unlock()
					w.incident = map[string]float64{"canary": 0.4, "full": 0}[req.Stage]
				}
			}, code: 0, verdict: run.Healthy, stage: run.StageFull,
			phases:  "validate canary-deploy canary-watch deploy watch decide record",
			deploys: "canary deploy " + short(shaNew) + ", full deploy " + short(shaNew),
			canary:  "queued,in_progress,success", full: "in_progress,success", commit: "pending,pending,success"},
		{name: "the canary passes, the whole fleet regresses and is rolled back",
			setup: func(w *tracks) { w.fullFailRate[shaNew] = 1 }, code: 1, verdict: run.RolledBack, stage: run.StageFull,
			phases:  "validate canary-deploy canary-watch deploy watch decide rollback confirm record",
			deploys: "canary deploy " + short(shaNew) + ", full deploy " + short(shaNew) + ", full rollback " + short(shaGood),
			canary:  "queued,in_progress,success", full: "in_progress,failure", commit: "pending,pending,failure", reason: "3 probes in a row failed", rolledBk: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			m, w := canaryMachine(t, tt.inputs)
			if tt.setup != nil {
				tt.setup(w)
			}
			res := m.run()
			if res.code != tt.code || res.out["verdict"] != string(tt.verdict) || res.out["stage"] != string(tt.stage) || res.phases != tt.phases {
				t.Fatalf("exit %d, verdict %q, stage %q, phases %q; want %d, %q, %q, %q\n%s", res.code, res.out["verdict"], res.out["stage"], res.phases,
					tt.code, tt.verdict, tt.stage, tt.phases, res.log)
			}
			if got := w.deployed(); got != tt.deploys {
				t.Errorf("deploys %q, want %q", got, tt.deploys)
			}
			if tt.stage == run.StageCanary && w.served[shaNew] {
				t.Errorf("the stable track served %s", shaNew[:7])
			}
			if !strings.Contains(res.run.out.Reason, tt.reason) {
				t.Errorf("reason %q, want it to contain %q", res.run.out.Reason, tt.reason)
			}
			if got := res.out["rolled-back"]; got != fmt.Sprint(tt.rolledBk) {
				t.Errorf("rolled-back = %s", got)
			}
			// The records: one deploy:canary deployment, a deploy one only
			// past the canary, and the commit status.
			var canaryStates, fullStates []string
			for _, d := range m.gh.Deployments()[1:] {
				switch d.Task {
				case string(recorder.TaskCanary):
					canaryStates = append(canaryStates, m.states(d.ID))
					if d.SHA != shaNew {
						t.Errorf("canary deployment of %s", d.SHA)
					}
				case string(recorder.TaskDeploy):
					fullStates = append(fullStates, m.states(d.ID))
				}
			}
			if strings.Join(canaryStates, " ") != tt.canary || strings.Join(fullStates, " ") != tt.full {
				t.Errorf("canary deployment %q, deploy %q; want %q, %q", canaryStates, fullStates, tt.canary, tt.full)
			}
			if got := m.commitStates(shaNew); got != tt.commit {
				t.Errorf("commit statuses %s, want %s", got, tt.commit)
			}
			if res.out["deployment-id"] == "" {
				t.Errorf("no deployment-id")
			}
			c := res.run.out.Canary
			if c == nil || c.Watch == nil && !strings.Contains(tt.phases, "canary-rollback record") {
				t.Fatalf("no canary in the report: %+v", c)
			}
		})
	}
}

// With canary-promote-early, an identical canary is promoted before
// canary-duration; without it, it runs the whole canary-duration.
func TestCanaryPromotedEarly(t *testing.T) {
	t.Parallel()
	for _, early := range []bool{false, true} {
		m, _ := canaryMachine(t, map[string]string{"canary-promote-early": fmt.Sprint(early), "canary-duration": "30m", "interval": "5s"})
		res := m.run()
		c := res.run.out.Canary
		if res.code != 0 || c == nil || !c.Promoted || c.Early != early {
			t.Fatalf("early %v: exit %d, canary %+v\n%s", early, res.code, c, res.log)
		}
		took := c.Watch.End.Sub(c.Watch.Start)
		if early && (took >= 30*time.Minute || !strings.Contains(c.Watch.Reason, "the canary is no worse than the control")) {
			t.Errorf("promoted early after %s: %s", took, c.Watch.Reason)
		}
		if !early && took < 30*time.Minute-5*time.Second {
			t.Errorf("promoted after %s without canary-promote-early", took)
		}
		t.Logf("early %v: canary watched %s: %s", early, took, c.Watch.Reason)
	}
}

// The same shared incident, without a canary but against a baseline: the
// before/after comparison blames the new build and rolls it back.
func TestSharedIncidentFoolsBaselineMode(t *testing.T) {
	t.Parallel()
	m := newMachine(t, "push", map[string]string{"baseline-duration": "5m"})
	w := newTracks(m.clk)
	m.deployer, m.probe = w, w.Probe
	m.ours(recorder.TaskDeploy, shaGood, t0.Add(-time.Hour), "in_progress", "success")
	w.onDeploy = func(req deploy.Request) {
		w.mu.Lock()
		defer w.mu.Unlock()
		w.incident = map[string]float64{"full": 0.4}[req.Stage]
		if req.Reason == deploy.ReasonRollback {
			w.incident = 0
		}
	}
	res := m.run()
	if res.out["verdict"] != "rolled-back" || res.out["stage"] != "full" || !strings.Contains(res.run.out.Reason, "points above production's") {
		t.Fatalf("verdict %s, stage %s: %s\n%s", res.out["verdict"], res.out["stage"], res.run.out.Reason, res.log)
	}
}

// A cancel in each canary phase: the records in flight end "error", the
// run says what runs where, and nothing new starts.
func TestCanaryCancelled(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		setup   func(m *machine, w *tracks)
		phase   string
		says    string
		deploys string
		canary  string
	}{
		{"during the canary command", func(m *machine, w *tracks) {
			w.hang["canary "+shaNew] = true
			w.onDeploy = func(deploy.Request) { go m.cancel() }
		}, "canary-deploy", "the canary command was stopped midway, so the canary subset of production may run 4d8b3f2 in part; the rest of production never got it",
			"canary deploy 4d8b3f2", "queued,in_progress,error"},
		{"during the canary watch", func(m *machine, w *tracks) {
			w.onProbe = func(url string, n int) {
				if url == canaryURL && n == 5 {
					m.cancel()
				}
			}
		}, "canary-watch", "4d8b3f2 is live on the canary subset of production, unjudged, and was not removed; the rest of production never got it",
			"canary deploy 4d8b3f2", "queued,in_progress,error"},
		{"during the canary's removal", func(m *machine, w *tracks) {
			w.failRate[shaNew] = 1
			w.hang["canary "+shaGood] = true
			w.onDeploy = func(req deploy.Request) {
				if req.Reason == deploy.ReasonRollback {
					go m.cancel()
				}
			}
		}, "canary-rollback", "4d8b3f2 regressed as a canary and its removal was stopped midway, so the canary subset's state is unknown: it was being put back on 9f2c1e7; the rest of production never got 4d8b3f2",
			"canary deploy 4d8b3f2, canary rollback 9f2c1e7", "queued,in_progress,error"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			m, w := canaryMachine(t, map[string]string{"startup-timeout": "0s"})
			tt.setup(m, w)
			res := m.run()
			if res.code != 1 || res.out["verdict"] != "cancelled" || res.out["stage"] != "canary" || res.run.out.StoppedIn != run.Phase(tt.phase) {
				t.Fatalf("exit %d, verdict %s, stage %s, stopped in %s\n%s", res.code, res.out["verdict"], res.out["stage"], res.run.out.StoppedIn, res.log)
			}
			if !strings.Contains(res.run.out.Reason, tt.says) {
				t.Errorf("reason %q\nwant it to say %q", res.run.out.Reason, tt.says)
			}
			if got := w.deployed(); got != tt.deploys {
				t.Errorf("deploys %q, want %q", got, tt.deploys)
			}
			dep, _ := m.newest()
			if dep.Task != string(recorder.TaskCanary) || m.states(dep.ID) != tt.canary || m.commitStates(shaNew) != "pending,error" {
				t.Errorf("newest deployment %s: %s; commit %s", dep.Task, m.states(dep.ID), m.commitStates(shaNew))
			}
			if w.served[shaNew] {
				t.Errorf("the stable track served %s", shaNew[:7])
			}
		})
	}
}

// A canary that regressed is told like a regression: the webhook hears it,
// the author's pull request gets the comment with what the canary saw, and
// the line's tracking issue opens.
func TestCanaryRegressionTellsPeople(t *testing.T) {
	t.Parallel()
	var h heard
	m, w := canaryMachine(t, map[string]string{"notify-secret": "k"})
	m.inputs["notify-webhook"] = h.serve(t)
	m.gh.AddPull(githubfake.PullRequest{Number: 12, Author: "monalisa", Merged: true, MergeCommitSHA: shaNew})
	w.failRate[shaNew] = 0.4
	res := m.run()
	if res.out["verdict"] != "rolled-back" || res.out["stage"] != "canary" {
		t.Fatalf("verdict %s, stage %s\n%s", res.out["verdict"], res.out["stage"], res.log)
	}
	if got := h.kinds(); got != "regressed rolled-back" {
		t.Errorf("webhook heard %q", got)
	}
	var body string
	for _, c := range m.gh.Comments(12) {
		if strings.HasPrefix(c.Body, "<!-- immune:regression") {
			body = c.Body
		}
	}
	if !strings.Contains(body, "regressed on production") || !strings.Contains(body, "probes failed") || !strings.Contains(body, "the bars are the canary") {
		t.Errorf("comment on #12:\n%s", body)
	}
	if issues := m.gh.Issues(); len(issues) != 1 || issues[0].State != "open" {
		t.Errorf("issues %+v", issues)
	}
}

// A canary a little worse than the control, without the evidence to call
// it a regression, passes with a warning, never in silence.
func TestCanaryWorseButPassingWarns(t *testing.T) {
	t.Parallel()
	m, w := canaryMachine(t, map[string]string{"canary-duration": "30s", "interval": "5s"})
	w.failRate[shaNew] = 1.0 / 6 // 1 of 6 canary probes fail: 16.7% against the control's 0%, over 5 points
	res := m.run()
	if res.code != 0 || res.out["verdict"] != "healthy" {
		t.Fatalf("exit %d, verdict %s\n%s", res.code, res.out["verdict"], res.log)
	}
	if !strings.Contains(res.log, "::warning title=Canary worse than the control%2C but passing::the canary failed 16.7%25 of its probes against the control's 0%25, more than the allowed 5 points over it") {
		t.Errorf("no warning:\n%s", res.log)
	}
}
