package recorder

import (
	"context"
	"testing"
	"time"

	"github.com/immune-cd/immune/internal/ghapi"
	"github.com/immune-cd/immune/internal/history"
	"github.com/immune-cd/immune/internal/testkit/githubfake"
)

func TestOutcomeFromStatuses(t *testing.T) {
	t0 := time.Date(2024, 5, 6, 9, 0, 0, 0, time.UTC)
	at := func(m int) time.Time { return t0.Add(time.Duration(m) * time.Minute) }
	st := func(state string, m int, desc string) ghapi.Status {
		return ghapi.Status{State: state, CreatedAt: at(m), Description: desc}
	}
	tests := []struct {
		name     string
		statuses []ghapi.Status // oldest first
		outcome  history.Outcome
		started  time.Time
		ended    time.Time
	}{
		{"healthy, then marked inactive by GitHub: healthy when it succeeded",
			[]ghapi.Status{st("queued", 0, ""), st("in_progress", 1, ""), st("success", 6, "healthy: ..."), st("inactive", 60, "")}, history.Healthy, at(1), at(6)},
		{"regressed", []ghapi.Status{st("queued", 0, ""), st("in_progress", 1, ""), st("failure", 3, "regressed: ...")}, history.Failed, at(1), at(3)},
		{"inconclusive", []ghapi.Status{st("in_progress", 1, ""), st("error", 6, Inconclusive+"...")}, history.Inconclusive, at(1), at(6)},
		{"gave up waiting", []ghapi.Status{st("queued", 0, ""), st("error", 15, NotDeployed+"...")}, history.NotDeployed, time.Time{}, at(15)},
		{"cancelled while it ran", []ghapi.Status{st("in_progress", 1, ""), st("error", 2, "cancelled during the watch")}, history.Errored, at(1), at(2)},
		{"a shadow run's regression, left running: a regression", []ghapi.Status{st("in_progress", 1, ""), st("success", 3, Shadow+"would have rolled back at +2m: ...")}, history.Failed, at(1), at(3)},
		{"running", []ghapi.Status{st("queued", 0, ""), st("in_progress", 1, "")}, history.Running, at(1), time.Time{}},
		{"statuses of the same second keep GitHub's order", []ghapi.Status{st("queued", 0, ""), st("in_progress", 0, ""), st("failure", 0, "regressed: ...")}, history.Failed, at(0), at(0)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			newestFirst := make([]ghapi.Status, len(tt.statuses))
			for i, s := range tt.statuses {
				newestFirst[len(tt.statuses)-1-i] = s
			}
			d := pastOf(ghapi.Deployment{ID: 1, SHA: "abcdef1", Task: "deploy", Payload: map[string]any{"tool": "immune"}, CreatedAt: at(0)}, newestFirst)
			if d.Outcome != tt.outcome || !d.Started.Equal(tt.started) || !d.Ended.Equal(tt.ended) {
				t.Errorf("got %s, started %s, ended %s; want %s, %s, %s", d.Outcome, d.Started, d.Ended, tt.outcome, tt.started, tt.ended)
			}
		})
	}
}

func TestReadFromGitHub(t *testing.T) {
	for _, oldestFirst := range []bool{false, true} {
		t.Run(map[bool]string{false: "listed newest first", true: "listed oldest first"}[oldestFirst], func(t *testing.T) {
			testReadFromGitHub(t, githubfake.Options{OldestFirst: oldestFirst})
		})
	}
}

func testReadFromGitHub(t *testing.T, o githubfake.Options) {
	f := githubfake.Start(t, o)
	t0 := time.Now().UTC().Add(-48 * time.Hour).Truncate(time.Second)
	ours := func(task string, at time.Time, states ...string) {
		d := f.AddDeployment(githubfake.Deployment{SHA: "4d8b3f2e1c0a9b8c7d6e5f4a3b2c1d0e9f8a7b6c", Task: task, CreatedAt: at,
			Payload: map[string]any{"tool": "immune", "previous_sha": "9f2c1e7a3b4d5c6e7f8091a2b3c4d5e6f7081920"}})
		for i, s := range states {
			f.AddDeploymentStatus(d.ID, githubfake.DeploymentStatus{State: s, CreatedAt: at.Add(time.Duration(i) * time.Minute)})
		}
	}
	ours("deploy", t0, "queued", "in_progress", "success")
	f.StartJob("production", "main", "9f2c1e7a3b4d5c6e7f8091a2b3c4d5e6f7081920", "octocat").Finish(true)
	ours("deploy", t0.Add(time.Hour), "queued", "in_progress", "failure")
	ours("deploy:rollback", t0.Add(time.Hour+2*time.Minute), "in_progress", "success")
	f.AddDeployment(githubfake.Deployment{SHA: "1a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d", CreatedAt: t0.Add(2 * time.Hour)}) // by hand
	ours("deploy", t0.Add(3*time.Hour), "queued", "in_progress")
	client, err := ghapi.New(ghapi.Options{HTTPClient: f.Client(), APIURL: f.URL(), Token: "t", Repository: f.Repository()})
	if err != nil {
		t.Fatal(err)
	}
	r := New(Options{GitHub: client, Environment: "production"})

	h, err := r.History(context.Background(), history.Query{Since: t0.Add(30 * time.Minute)})
	if err != nil {
		t.Fatal(err)
	}
	var kinds []string
	for _, d := range h.Deployments {
		kinds = append(kinds, string(d.Kind)+":"+string(d.Outcome))
	}
	if got := fmtList(kinds); got != "deploy:failed rollback:healthy deploy:running" || h.Foreign != 1 || h.Jobs != 1 {
		// The job was made now, after the period's start.
		t.Errorf("read %s, %d jobs', %d foreign; want the three since +30m oldest first, 1 and 1", got, h.Jobs, h.Foreign)
	}
	if d := h.Deployments[0]; d.PreviousSHA != "9f2c1e7a3b4d5c6e7f8091a2b3c4d5e6f7081920" || !d.Started.Equal(t0.Add(time.Hour+time.Minute)) {
		t.Errorf("first: %+v", d)
	}

	// The first deploy's success, which the job's success marked inactive
	// later: healthy when it succeeded.
	h, err = r.History(context.Background(), history.Query{})
	if err != nil {
		t.Fatal(err)
	}
	if d := h.Deployments[0]; d.Outcome != history.Healthy || !d.Ended.Equal(t0.Add(2*time.Minute)) {
		t.Errorf("the first deploy: %s at %s, want healthy at %s", d.Outcome, d.Ended, t0.Add(2*time.Minute))
	}

	h, err = r.History(context.Background(), history.Query{Max: 2})
	if err != nil {
		t.Fatal(err)
	}
	if len(h.Deployments) != 2 || h.Limited == "" {
		t.Errorf("read %d with a limit of 2 (limited %q)", len(h.Deployments), h.Limited)
	}
}

func fmtList(xs []string) string {
	s := ""
	for i, x := range xs {
		if i > 0 {
			s += " "
		}
		s += x
	}
	return s
}

// Each task is a kind of its own: a bisection step is not a deploy.
func TestKindOf(t *testing.T) {
	for task, want := range map[Task]history.Kind{TaskDeploy: history.KindDeploy, TaskRollback: history.KindRollback,
		TaskCanary: history.KindCanary, TaskBisect: history.KindBisect, "deploy:other": history.KindDeploy} {
		if got := kindOf(task); got != want {
			t.Errorf("kindOf(%s) = %s, want %s", task, got, want)
		}
	}
}
