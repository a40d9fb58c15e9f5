package recorder

import (
	"context"
	"crypto/sha1"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/immune-cd/immune/internal/bisect"
	"github.com/immune-cd/immune/internal/config"
	"github.com/immune-cd/immune/internal/ghapi"
	"github.com/immune-cd/immune/internal/testkit/githubfake"
)

const token = "ghs_recorderTestToken"

var start = time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)

// commit is a deterministic commit id.
func commit(n int) string {
	h := sha1.Sum([]byte("commit " + strconv.Itoa(n)))
	return hex.EncodeToString(h[:])
}

// setup starts a fake GitHub and a recorder for its production environment
// on a clock that stands at now.
func setup(t *testing.T, now time.Time) (*githubfake.Server, *Recorder, *strings.Builder) {
	t.Helper()
	f := githubfake.Start(t, githubfake.Options{Token: token, Now: func() time.Time { return now }})
	gh, err := ghapi.New(ghapi.Options{HTTPClient: f.Client(), APIURL: f.URL(), Token: token, Repository: f.Repository(),
		Now: func() time.Time { return now }, MaxRetries: -1})
	if err != nil {
		t.Fatal(err)
	}
	log := &strings.Builder{}
	r := New(Options{GitHub: gh, Environment: "production", Now: func() time.Time { return now },
		Logf: func(format string, args ...any) { fmt.Fprintf(log, format+"\n", args...) }})
	return f, r, log
}

// ours seeds one of immune's deployments with its statuses.
func ours(f *githubfake.Server, task Task, c string, p Payload, at time.Time, states ...string) githubfake.Deployment {
	p.Tool = Tool
	d := f.AddDeployment(githubfake.Deployment{SHA: c, Task: string(task), Payload: p.Map(), CreatedAt: at})
	for _, st := range states {
		f.AddDeploymentStatus(d.ID, githubfake.DeploymentStatus{State: st, CreatedAt: at})
	}
	return d
}

// byHand seeds a deployment made by hand or by another tool: ref = SHA, no
// payload of immune's.
func byHand(f *githubfake.Server, task, c string, states ...string) githubfake.Deployment {
	d := f.AddDeployment(githubfake.Deployment{SHA: c, Task: task, Payload: map[string]any{"by": "ops"}})
	for _, st := range states {
		f.AddDeploymentStatus(d.ID, githubfake.DeploymentStatus{State: st})
	}
	return d
}

func TestOriginOf(t *testing.T) {
	t.Parallel()
	c := commit(1)
	tests := []struct {
		name string
		d    ghapi.Deployment
		want Origin
	}{
		{"immune's", ghapi.Deployment{SHA: c, Ref: c, Payload: map[string]any{"tool": "immune"}}, Ours},
		{"a job's", ghapi.Deployment{SHA: c, Ref: "main", Payload: map[string]any{}}, Job},
		{"a job's for a tag, no payload at all", ghapi.Deployment{SHA: c, Ref: "v1.2.0"}, Job},
		{"by hand with the SHA as ref", ghapi.Deployment{SHA: c, Ref: c, Payload: map[string]any{}}, Foreign},
		{"by hand with an abbreviated SHA as ref", ghapi.Deployment{SHA: c, Ref: c[:7]}, Foreign},
		{"another tool's, on a branch", ghapi.Deployment{SHA: c, Ref: "main", Payload: map[string]any{"tool": "argo"}}, Foreign},
		{"a payload that only looks like immune's", ghapi.Deployment{SHA: c, Ref: c, Payload: map[string]any{"tool": "Immune"}}, Foreign},
	}
	for _, tt := range tests {
		if got := OriginOf(tt.d); got != tt.want {
			t.Errorf("%s: OriginOf = %v, want %v", tt.name, got, tt.want)
		}
	}
}

func TestPayloadRoundTrip(t *testing.T) {
	t.Parallel()
	p := Payload{Tool: Tool, Version: "1.2.3", PreviousSHA: commit(1), RolledBackFrom: commit(2), Culprit: commit(3), Reason: "why",
		Manual: true, Actor: "monalisa", RunURL: "https://x/runs/7", RunID: 7412345678, RunAttempt: 2, HoldSeconds: 1560}
	// Through JSON, as GitHub stores it: numbers come back as float64.
	m := map[string]any{}
	for k, v := range p.Map() {
		switch n := v.(type) {
		case int64:
			m[k] = float64(n)
		case int:
			m[k] = float64(n)
		default:
			m[k] = v
		}
	}
	got, ok := PayloadOf(ghapi.Deployment{Payload: m})
	if !ok || got != p {
		t.Errorf("PayloadOf(Map()) = %+v, %v; want %+v", got, ok, p)
	}
	// SHAs in a payload are data anyone with push access can write: only
	// commit ids are taken.
	m["rolled_back_from"] = "x\n::stop-commands::y"
	m["culprit"] = "@monalisa"
	if got, _ := PayloadOf(ghapi.Deployment{Payload: m}); got.RolledBackFrom != "" || got.Culprit != "" {
		t.Errorf("a non-SHA rolled_back_from or culprit was taken: %q, %q", got.RolledBackFrom, got.Culprit)
	}
}

// The history a team has on its first day: every job with environment:
// made a deployment of its own, whose success inactivated everything
// before it.
func TestLastGoodAndCurrentIgnoreJobDeployments(t *testing.T) {
	t.Parallel()
	f, r, log := setup(t, start)
	ctx := context.Background()
	ours(f, TaskDeploy, commit(1), Payload{}, start, "in_progress", "success")
	f.StartJob("production", "main", commit(1), "monalisa").Finish(true) // inactivates ours
	ours(f, TaskDeploy, commit(2), Payload{}, start, "in_progress", "failure")
	ours(f, TaskRollback, commit(1), Payload{RolledBackFrom: commit(2)}, start, "in_progress", "success")
	f.StartJob("production", "main", commit(2), "monalisa").Finish(false)
	bad := f.StartJob("production", "main", commit(3), "monalisa") // main's head, the job of a manual rollback
	bad.Finish(true)

	good, found, err := r.LastGood(ctx, commit(3))
	if err != nil || !found || good.SHA != commit(1) || good.Task != TaskRollback {
		t.Fatalf("LastGood = %s %s, %v, %v; want immune's rollback to %s", good.Task, good.SHA, found, err, commit(1))
	}
	// The first success was made inactive by a job's success; it still was
	// healthy.
	good, found, err = r.LastGood(ctx, commit(1))
	if err != nil || found {
		t.Errorf("LastGood excluding %s = %s, %v, %v; want none (only failures and jobs left)", commit(1)[:7], good.SHA, found, err)
	}
	cur, found, err := r.Current(ctx)
	if err != nil || !found || cur.SHA != commit(1) {
		t.Errorf("Current = %s, %v, %v; want %s, not main's head %s", cur.SHA, found, err, commit(1), commit(3))
	}
	// Each listed once, however often the history is read.
	for _, d := range f.Deployments() {
		n := strings.Count(log.String(), fmt.Sprintf("%d (", d.ID))
		if want := map[bool]int{true: 1, false: 0}[d.Job]; n != want {
			t.Errorf("deployment %d (job: %v) listed %d times:\n%s", d.ID, d.Job, n, log)
		}
	}
	if !strings.Contains(log.String(), "made by GitHub Actions for a job that names the environment: ") {
		t.Errorf("log:\n%s", log)
	}
}

func TestLastGoodCountsInactive(t *testing.T) {
	t.Parallel()
	f, r, _ := setup(t, start)
	ours(f, TaskDeploy, commit(1), Payload{}, start, "in_progress", "success", "inactive")
	ours(f, TaskDeploy, commit(2), Payload{}, start, "in_progress", "error")
	good, found, err := r.LastGood(context.Background(), commit(3))
	if err != nil || !found || good.SHA != commit(1) {
		t.Errorf("LastGood = %s, %v, %v", good.SHA, found, err)
	}
}

// A canary ran on a subset only: it is neither last known good (a canary
// that passed may still regress the whole fleet) nor what runs now.
func TestCanariesAreNotTheEnvironments(t *testing.T) {
	t.Parallel()
	f, r, _ := setup(t, start)
	ctx := context.Background()
	ours(f, TaskDeploy, commit(1), Payload{}, start, "in_progress", "success")
	ours(f, TaskCanary, commit(2), Payload{}, start, "in_progress", "success")
	ours(f, TaskDeploy, commit(2), Payload{}, start, "in_progress", "failure")
	ours(f, TaskCanary, commit(3), Payload{}, start, "in_progress", "success")
	good, found, err := r.LastGood(ctx, commit(4))
	if err != nil || !found || good.SHA != commit(1) || good.Task != TaskDeploy {
		t.Errorf("LastGood = %s of %s, %v, %v; want the deploy of %s", good.Task, good.SHA, found, err, commit(1))
	}
	cur, found, err := r.Current(ctx)
	if err != nil || !found || cur.SHA != commit(2) || cur.Task != TaskDeploy {
		t.Errorf("Current = %s of %s, %v, %v; want the deploy of %s", cur.Task, cur.SHA, found, err, commit(2))
	}
}

// A bisection step ran on the canary, or on the fleet for a while: neither
// last known good nor what runs now, even when it passed.
func TestBisectionStepsAreNotTheEnvironments(t *testing.T) {
	t.Parallel()
	f, r, _ := setup(t, start)
	ctx := context.Background()
	ours(f, TaskDeploy, commit(1), Payload{}, start, "in_progress", "success")
	ours(f, TaskCanary, commit(4), Payload{}, start, "in_progress", "failure")
	ours(f, TaskBisect, commit(2), Payload{}, start, "in_progress", "success")
	ours(f, TaskBisect, commit(3), Payload{}, start, "in_progress", "failure")
	good, found, err := r.LastGood(ctx, commit(4))
	if err != nil || !found || good.SHA != commit(1) {
		t.Errorf("LastGood = %s of %s, %v, %v; want the deploy of %s", good.Task, good.SHA, found, err, commit(1))
	}
	cur, found, err := r.Current(ctx)
	if err != nil || !found || cur.SHA != commit(1) {
		t.Errorf("Current = %s of %s, %v, %v; want the deploy of %s", cur.Task, cur.SHA, found, err, commit(1))
	}
}

func TestCurrentSkipsWhatNeverRan(t *testing.T) {
	t.Parallel()
	f, r, _ := setup(t, start)
	ours(f, TaskDeploy, commit(1), Payload{}, start, "in_progress", "success")
	d := ours(f, TaskDeploy, commit(2), Payload{}, start, "queued")
	f.AddDeploymentStatus(d.ID, githubfake.DeploymentStatus{State: "error", Description: NotDeployed + "cancelled while waiting"})
	ours(f, TaskDeploy, commit(3), Payload{}, start, "queued")
	byHand(f, "deploy", commit(4), "success")
	cur, found, err := r.Current(context.Background())
	if err != nil || !found || cur.SHA != commit(1) {
		t.Errorf("Current = %s, %v, %v; want %s", cur.SHA, found, err, commit(1))
	}
}

func TestNewer(t *testing.T) {
	t.Parallel()
	f, r, _ := setup(t, start)
	mine := ours(f, TaskDeploy, commit(1), Payload{}, start, "in_progress")
	f.StartJob("production", "main", commit(2), "monalisa")                  // a job: never supersedes
	ours(f, TaskDeploy, commit(3), Payload{}, start, "queued")               // waiting for mine: not started
	hand := byHand(f, "deploy", commit(4))                                   // by hand, no status: it happened
	other := ours(f, TaskDeploy, commit(5), Payload{}, start, "in_progress") // another run of ours
	newer, err := r.Newer(context.Background(), Deployment{ID: mine.ID})
	if err != nil {
		t.Fatal(err)
	}
	var ids []int64
	for _, d := range newer {
		ids = append(ids, d.ID)
	}
	if fmt.Sprint(ids) != fmt.Sprint([]int64{other.ID, hand.ID}) {
		t.Errorf("Newer = %v, want %v", ids, []int64{other.ID, hand.ID})
	}
}

func TestHolders(t *testing.T) {
	t.Parallel()
	now := start.Add(10 * time.Minute)
	f, r, _ := setup(t, now)
	hold := Payload{HoldSeconds: 900}
	ours(f, TaskDeploy, commit(1), hold, start.Add(-time.Hour), "in_progress") // its run died long ago
	running := ours(f, TaskDeploy, commit(2), hold, start, "in_progress")      // 10 minutes into 15
	ours(f, TaskDeploy, commit(3), hold, start, "in_progress", "success")      // finished
	f.StartJob("production", "main", commit(4), "monalisa")                    // a job's, in progress
	waiting := ours(f, TaskRollback, commit(5), hold, now, "queued")           // queued behind running
	ctx := context.Background()
	held, err := r.Holders(ctx, 0)
	if err != nil || len(held) != 2 || held[0].ID != waiting.ID || held[1].ID != running.ID {
		t.Fatalf("Holders(0) = %+v, %v; want %d and %d", held, err, waiting.ID, running.ID)
	}
	held, err = r.Holders(ctx, waiting.ID)
	if err != nil || len(held) != 1 || held[0].ID != running.ID {
		t.Errorf("Holders(older than %d) = %+v, %v; want %d only", waiting.ID, held, err, running.ID)
	}
}

func TestLine(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		seed    func(f *githubfake.Server)
		stopped bool
		bad     string
		how     string
	}{
		{"no deployments", func(*githubfake.Server) {}, false, "", ""},
		{"healthy", func(f *githubfake.Server) { ours(f, TaskDeploy, commit(1), Payload{}, start, "success") }, false, "", ""},
		{"immune's rollback", func(f *githubfake.Server) {
			ours(f, TaskDeploy, commit(2), Payload{}, start, "failure")
			ours(f, TaskRollback, commit(1), Payload{RolledBackFrom: commit(2)}, start, "success")
		}, true, commit(2), "was rolled back from " + commit(2)[:7] + " to " + commit(1)[:7]},
		{"immune's manual rollback", func(f *githubfake.Server) {
			ours(f, TaskRollback, commit(1), Payload{RolledBackFrom: commit(2), Manual: true}, start, "success")
		}, true, commit(2), "was rolled back by hand from " + commit(2)[:7] + " to " + commit(1)[:7]},
		{"a rollback made by hand: the commit it replaced comes from the history", func(f *githubfake.Server) {
			ours(f, TaskDeploy, commit(1), Payload{}, start, "success")
			ours(f, TaskDeploy, commit(2), Payload{}, start, "success")
			f.StartJob("production", "main", commit(3), "monalisa").Finish(true)
			byHand(f, "deploy:rollback", commit(1), "success")
		}, true, commit(2), "was rolled back by hand or by another tool from " + commit(2)[:7] + " to " + commit(1)[:7]},
		{"a failed deploy", func(f *githubfake.Server) { ours(f, TaskDeploy, commit(2), Payload{}, start, "failure") }, true, commit(2), "has a failure deployment of " + commit(2)[:7]},
		{"a cancelled deploy", func(f *githubfake.Server) { ours(f, TaskDeploy, commit(2), Payload{}, start, "error") }, true, commit(2), "has a error deployment of " + commit(2)[:7]},
		{"an inconclusive deploy does not stop it", func(f *githubfake.Server) {
			d := ours(f, TaskDeploy, commit(2), Payload{}, start, "in_progress")
			f.AddDeploymentStatus(d.ID, githubfake.DeploymentStatus{State: "error", Description: Inconclusive + "metric http-errors counted 4 requests", CreatedAt: start})
		}, false, "", ""},
		{"a failed canary", func(f *githubfake.Server) {
			ours(f, TaskDeploy, commit(1), Payload{}, start, "success")
			ours(f, TaskCanary, commit(2), Payload{}, start, "in_progress", "failure")
		}, true, commit(2), "has a canary of " + commit(2)[:7] + " that ended in failure"},
		{"a canary in progress", func(f *githubfake.Server) {
			ours(f, TaskDeploy, commit(1), Payload{}, start, "success")
			ours(f, TaskCanary, commit(2), Payload{}, start, "in_progress")
		}, false, "", ""},
		{"bisection steps after a failed canary: the canary's commit", func(f *githubfake.Server) {
			ours(f, TaskDeploy, commit(1), Payload{}, start, "success")
			ours(f, TaskCanary, commit(5), Payload{}, start, "in_progress", "failure")
			ours(f, TaskBisect, commit(3), Payload{}, start, "in_progress", "failure")
			ours(f, TaskBisect, commit(2), Payload{}, start, "in_progress", "success")
		}, true, commit(5), "has a canary of " + commit(5)[:7] + " that ended in failure"},
		{"a bisection step that named the culprit", func(f *githubfake.Server) {
			ours(f, TaskDeploy, commit(1), Payload{}, start, "success")
			ours(f, TaskCanary, commit(5), Payload{}, start, "in_progress", "failure")
			d := ours(f, TaskBisect, commit(2), Payload{}, start, "in_progress")
			f.AddDeploymentStatus(d.ID, githubfake.DeploymentStatus{State: "failure", Description: CulpritPrefix + "regressed against the control", CreatedAt: start})
		}, true, commit(2), "had a batch roll back, and a bisection named " + commit(2)[:7] + " the culprit"},
		{"the good part of a batch shipped: stopped for the culprit", func(f *githubfake.Server) {
			ours(f, TaskCanary, commit(5), Payload{}, start, "in_progress", "failure")
			ours(f, TaskBisect, commit(3), Payload{}, start, "in_progress", "success")
			ours(f, TaskBisect, commit(4), Payload{}, start, "in_progress", "failure")
			ours(f, TaskDeploy, commit(3), Payload{Culprit: commit(4)}, start, "in_progress", "success")
		}, true, commit(4), "runs " + commit(3)[:7] + ", the good part of a batch, without " + commit(4)[:7] + ", which regressed (found by bisection)"},
		{"the good part of a batch regressed too", func(f *githubfake.Server) {
			ours(f, TaskDeploy, commit(3), Payload{Culprit: commit(4)}, start, "in_progress", "failure")
		}, true, commit(3), "has a failure deployment of " + commit(3)[:7]},
		{"a healthy deploy after the shipped part clears it", func(f *githubfake.Server) {
			ours(f, TaskDeploy, commit(3), Payload{Culprit: commit(4)}, start, "in_progress", "success")
			ours(f, TaskDeploy, commit(6), Payload{}, start, "in_progress", "success")
		}, false, "", ""},
		{"a job's failure after a healthy deploy does not stop it", func(f *githubfake.Server) {
			ours(f, TaskDeploy, commit(1), Payload{}, start, "success")
			f.StartJob("production", "main", commit(1), "monalisa").Finish(false)
		}, false, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			f, r, _ := setup(t, start)
			tt.seed(f)
			l, err := r.Line(context.Background())
			if err != nil {
				t.Fatal(err)
			}
			if l.Stopped != tt.stopped || l.BadSHA != tt.bad || l.How != tt.how {
				t.Errorf("Line = stopped %v, bad %q, how %q; want %v, %q, %q", l.Stopped, l.BadSHA, l.How, tt.stopped, tt.bad, tt.how)
			}
		})
	}
}

func TestWrites(t *testing.T) {
	t.Parallel()
	f, r, _ := setup(t, start)
	f.AddCommit(commit(1), "x")
	ctx := context.Background()
	h := r.Create(TaskDeploy, commit(1), Payload{Version: "1.0", HoldSeconds: 60}, StateQueued, "waiting")
	d, ok := h.Wait(ctx, 5*time.Second)
	if !ok || d.ID == 0 || d.Origin != Ours {
		t.Fatalf("Create = %+v, %v", d, ok)
	}
	if made, _ := f.Deployment(d.ID); made.Ref != commit(1) {
		t.Errorf("ref %q, want the full SHA", made.Ref)
	}
	r.SetStatus(h, StateSuccess, "healthy")
	r.CommitStatus(commit(1)[:7], CommitSuccess, "healthy")
	r.CommitStatus(commit(1), CommitSuccess, "healthy")
	r.Flush(ctx)
	if got := f.LatestDeploymentState(d.ID); got != "success" {
		t.Errorf("state %q", got)
	}
	if cs := f.CommitStatuses(commit(1)); len(cs) != 1 || cs[0].Context != "immune/production" {
		t.Errorf("commit statuses %+v", cs)
	}
	missing, _ := r.Missing()
	if len(missing) != 1 || !strings.Contains(missing[0], "not a full commit SHA") {
		t.Errorf("missing = %q", missing)
	}
}

// The environment input's limit (config's) keeps immune's commit status
// context within GitHub's.
func TestLongestEnvironmentFitsTheContext(t *testing.T) {
	t.Parallel()
	if n := len(StatusContext(strings.Repeat("e", config.MaxEnvironment))); n != MaxContext {
		t.Errorf("the longest environment makes a context of %d characters, GitHub's limit is %d", n, MaxContext)
	}
}

// A batch is read from GitHub's comparison, every page of it, as the
// commits landed on the branch.
func TestBatch(t *testing.T) {
	t.Parallel()
	f, r, _ := setup(t, start)
	for i := 1; i <= 300; i++ {
		f.AddCommit(commit(i), fmt.Sprint(i))
	}
	ctx := context.Background()
	batch, err := r.Batch(ctx, commit(1), commit(300))
	if err != nil || len(batch) != 299 || batch[0] != commit(2) || batch[298] != commit(300) {
		t.Fatalf("Batch = %d commits, %v", len(batch), err)
	}
	// A pull request merged with a merge commit: its commits are in the
	// comparison, its merge commit alone on the first-parent line.
	f.AddPull(githubfake.PullRequest{Number: 7, Merged: true, MergeParents: true, MergeCommitSHA: commit(1000),
		Commits: []githubfake.Commit{{SHA: commit(900)}, {SHA: commit(901)}}})
	f.AddCommit(commit(1001), "after the merge")
	batch, err = r.Batch(ctx, commit(300), commit(1001))
	if err != nil || strings.Join(batch, " ") != commit(1000)+" "+commit(1001) {
		t.Errorf("Batch through a merge = %v, %v; want the merge commit and the one after", batch, err)
	}
	if _, err := r.Batch(ctx, commit(900), commit(1001)); !errors.Is(err, bisect.ErrNotOnLine) {
		t.Errorf("a base on the merged branch: %v", err)
	}
	if _, err := r.Batch(ctx, commit(5), commit(3)); err == nil || !strings.Contains(err.Error(), "is behind") {
		t.Errorf("a head behind the good commit: %v", err)
	}
	if _, err := r.Batch(ctx, commit(1), strings.Repeat("e", 40)); err == nil {
		t.Error("an unknown head")
	}
}

// An environment made as "Production", named "production" in the input:
// GitHub says how it spells it (once a run), and the history read and the
// deployment recorded are Production's, whatever letter case GitHub's
// listing filter minds (the fake minds it). Without "actions: read" the
// name is used as given: one line in the log says so, and nothing is
// listed as missing or as a refused permission.
func TestEnvironmentAsGitHubSpellsIt(t *testing.T) {
	ctx := context.Background()
	seed := func(f *githubfake.Server) {
		p := Payload{Tool: Tool}
		d := f.AddDeployment(githubfake.Deployment{SHA: commit(1), Environment: "Production", Payload: p.Map(), CreatedAt: start})
		f.AddDeploymentStatus(d.ID, githubfake.DeploymentStatus{State: "success", CreatedAt: start})
	}
	f, r, log := setup(t, start)
	seed(f)
	good, ok, err := r.LastGood(ctx, commit(2))
	if err != nil || !ok || good.SHA != commit(1) {
		t.Fatalf("last good: %+v %v %v", good, ok, err)
	}
	if _, ok, _ := r.Current(ctx); !ok {
		t.Errorf("what runs now not found")
	}
	f.AddCommit(commit(2), "two")
	r.Create(TaskDeploy, commit(2), Payload{}, StateInProgress, "deploying")
	r.Flush(ctx)
	ds := f.Deployments()
	if got := ds[len(ds)-1]; got.SHA != commit(2) || got.Environment != "Production" {
		t.Errorf("recorded %s in %q, want %s in Production", got.SHA, got.Environment, commit(2))
	}
	if n := f.CallCount("GET", "/repos/octo-org/shop/environments/production"); n != 1 {
		t.Errorf("asked GitHub %d times how it spells the environment, want once", n)
	}
	if !strings.Contains(log.String(), `GitHub spells the environment "Production"`) {
		t.Errorf("log:\n%s", log)
	}

	g := githubfake.Start(t, githubfake.Options{Token: token, Now: func() time.Time { return start },
		Permissions: map[string]string{"deployments": "write", "statuses": "write"}})
	seed(g)
	gh, err := ghapi.New(ghapi.Options{HTTPClient: g.Client(), APIURL: g.URL(), Token: token, Repository: g.Repository(), MaxRetries: -1})
	if err != nil {
		t.Fatal(err)
	}
	var glog strings.Builder
	without := New(Options{GitHub: gh, Environment: "production",
		Logf: func(format string, args ...any) { fmt.Fprintf(&glog, format+"\n", args...) }})
	if _, ok, err := without.LastGood(ctx, commit(2)); ok || err != nil {
		t.Errorf("without actions: read, Production's history was read as production's (%v)", err)
	}
	missing, down := without.Missing()
	if len(missing) != 0 || down != nil || len(without.Denied()) != 0 {
		t.Errorf("missing %q, down %v, denied %+v", missing, down, without.Denied())
	}
	if !strings.Contains(glog.String(), `could not read how GitHub spells the environment "production"`) || !strings.Contains(glog.String(), "actions: read") {
		t.Errorf("log:\n%s", glog.String())
	}
	// An environment GitHub does not know yet: made by the first
	// deployment, under the name as given; nothing is logged.
	f2, r2, log2 := setup(t, start)
	f2.AddCommit(commit(3), "three")
	r2.Create(TaskDeploy, commit(3), Payload{}, StateInProgress, "deploying")
	if _, _, err := r2.LastGood(ctx, ""); err != nil {
		t.Fatal(err)
	}
	r2.Flush(ctx)
	if es := f2.Environments(); len(es) != 1 || es[0].Name != "production" || strings.Contains(log2.String(), "spells") {
		t.Errorf("environments %+v; log:\n%s", es, log2)
	}
}
