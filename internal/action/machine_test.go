package action

// In-process tests of the phase machine: a stepped clock (a five-minute
// watch runs in milliseconds, in order), the fake GitHub driven through the
// real client on that clock, a fake deployer and fake probes over a small
// model of production. They cover every transition of every mode; the
// binary's end-to-end tests in the repository root cover the real
// processes, signals and HTTP.

import (
	"bytes"
	"context"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sethvargo/go-githubactions"

	"github.com/immune-cd/immune/internal/clock"
	"github.com/immune-cd/immune/internal/config"
	"github.com/immune-cd/immune/internal/deploy"
	"github.com/immune-cd/immune/internal/ghapi"
	"github.com/immune-cd/immune/internal/health"
	"github.com/immune-cd/immune/internal/recorder"
	"github.com/immune-cd/immune/internal/run"
	"github.com/immune-cd/immune/internal/testkit/githubfake"
)

const (
	shaOld   = "1a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d"
	shaGood  = "9f2c1e7a3b4d5c6e7f8091a2b3c4d5e6f7081920"
	shaNew   = "4d8b3f2e1c0a9b8c7d6e5f4a3b2c1d0e9f8a7b6c"
	shaOther = "5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b1c2d3e4f"
	token    = "ghs_machineTestToken"
	url1     = "https://shop.example.com/healthz"
)

var t0 = time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)

// lockPoll is the wait between looks at a held environment, distinct from
// every other wait of the tests so that hooks can tell it apart.
const lockPoll = 7 * time.Second

// world is production as the fakes see it: which commit runs, how each
// commit behaves, and hooks to act at a given moment.
type world struct {
	mu      sync.Mutex
	clk     *clock.Step
	live    string
	down    map[string]bool // commits whose every probe fails
	fails   map[string]bool // commits whose deploy command fails
	hang    map[string]bool // commits whose deploy command runs until cancelled
	deploys []string        // "deploy <sha>" / "rollback <sha>", in order
	probes  int
	// onDeploy and onProbe run inside the deployer and the prober.
	onDeploy func(req deploy.Request)
	onProbe  func(n int)
}

func (w *world) Deploy(ctx context.Context, req deploy.Request) error {
	w.mu.Lock()
	w.deploys = append(w.deploys, req.Reason+" "+req.SHA)
	hook, hang, fail := w.onDeploy, w.hang[req.SHA], w.fails[req.SHA]
	w.mu.Unlock()
	if hook != nil {
		hook(req)
	}
	if hang {
		<-ctx.Done()
		return fmt.Errorf("command was cancelled; its process group was killed: %w", ctx.Err())
	}
	if fail {
		return fmt.Errorf("command exited with status 4")
	}
	w.mu.Lock()
	w.live = req.SHA
	w.mu.Unlock()
	w.clk.Advance(2 * time.Second)
	return nil
}

func (w *world) Probe(ctx context.Context, url, want string) health.Probe {
	w.mu.Lock()
	w.probes++
	n, hook, live := w.probes, w.onProbe, w.live
	w.mu.Unlock()
	if hook != nil {
		hook(n)
	}
	p := health.Probe{Time: w.clk.Now(), URL: url, VersionMatch: true, Answered: true, Latency: 20 * time.Millisecond, Status: 200}
	if w.down[live] {
		p.Status, p.Failed, p.Error = 503, true, "status 503"
	}
	return p
}

func (w *world) deployed() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return strings.Join(w.deploys, ", ")
}

// machine is one in-process run's setting.
type machine struct {
	t      *testing.T
	clk    *clock.Step
	gh     *githubfake.Server
	world  *world
	inputs map[string]string
	env    map[string]string
	log    bytes.Buffer
	ctx    context.Context
	cancel context.CancelFunc
	// afterHook, when set, runs whenever the run waits on the clock.
	afterHook func(d time.Duration)
	// beforeRequest, when set, sees every request to GitHub first.
	beforeRequest func(*http.Request)
	// deployer and probe, when set, replace the world's.
	deployer deploy.Deployer
	probe    func(ctx context.Context, url, want string) health.Probe
}

// hookedTransport lets a test act just before GitHub gets a request.
type hookedTransport struct {
	next http.RoundTripper
	hook func(*http.Request)
}

func (h hookedTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	h.hook(req)
	return h.next.RoundTrip(req)
}

// hookedClock is the stepped clock with a hook on every wait.
type hookedClock struct {
	*clock.Step
	hook func(d time.Duration)
}

func (c hookedClock) After(d time.Duration) <-chan time.Time {
	c.hook(d)
	return c.Step.After(d)
}

func newMachine(t *testing.T, event string, inputs map[string]string) *machine {
	t.Helper()
	clk := clock.NewStep(t0)
	m := &machine{t: t, clk: clk, world: &world{clk: clk, live: shaGood, down: map[string]bool{}, fails: map[string]bool{}, hang: map[string]bool{}}}
	m.gh = githubfake.Start(t, githubfake.Options{Token: token, Now: clk.Now})
	for _, c := range []string{shaOld, shaGood, shaNew, shaOther} {
		m.gh.AddCommit(c, "commit "+c[:7])
	}
	dir := t.TempDir()
	eventPath := filepath.Join(dir, "event.json")
	payload := map[string]string{
		"push":              `{"ref":"refs/heads/main","before":"` + shaGood + `","after":"` + shaNew + `"}`,
		"deleted":           `{"ref":"refs/heads/old","before":"` + shaGood + `","after":"0000000000000000000000000000000000000000","deleted":true}`,
		"workflow_dispatch": `{"ref":"refs/heads/main","inputs":{}}`,
	}[event]
	if event == "deleted" {
		event = "push"
	}
	if err := os.WriteFile(eventPath, []byte(payload), 0o644); err != nil {
		t.Fatal(err)
	}
	m.env = map[string]string{
		"GITHUB_ACTIONS": "true", "GITHUB_EVENT_NAME": event, "GITHUB_EVENT_PATH": eventPath,
		"GITHUB_SHA": shaNew, "GITHUB_REPOSITORY": "octo-org/shop", "GITHUB_RUN_ID": "7412345678",
		"GITHUB_RUN_ATTEMPT": "1", "GITHUB_ACTOR": "monalisa", "GITHUB_SERVER_URL": "https://github.com",
		"GITHUB_REF_NAME": "main", "GITHUB_WORKSPACE": dir,
		"GITHUB_OUTPUT": filepath.Join(dir, "output"), "GITHUB_STEP_SUMMARY": filepath.Join(dir, "summary"),
	}
	m.inputs = map[string]string{
		"deploy-command": "./deploy.sh", "health-url": url1, "interval": "5s", "duration": "5m",
		"startup-timeout": "0s", "rollback-duration": "1m", "github-token": token,
	}
	for k, v := range inputs {
		m.inputs[k] = v
	}
	m.ctx, m.cancel = context.WithCancel(context.Background())
	t.Cleanup(m.cancel)
	return m
}

// ours seeds one of immune's deployments.
func (m *machine) ours(task recorder.Task, c string, at time.Time, states ...string) githubfake.Deployment {
	p := recorder.Payload{Tool: recorder.Tool, RunURL: "https://github.com/octo-org/shop/actions/runs/1", HoldSeconds: 3600}
	d := m.gh.AddDeployment(githubfake.Deployment{SHA: c, Task: string(task), Payload: p.Map(), CreatedAt: at})
	for _, st := range states {
		m.gh.AddDeploymentStatus(d.ID, githubfake.DeploymentStatus{State: st, CreatedAt: at})
	}
	return d
}

// result is what a run returned and recorded.
type result struct {
	code   int
	out    map[string]string
	phases string
	log    string
	run    *runner
}

func (m *machine) run() result {
	m.t.Helper()
	getenv := func(k string) string { return m.env[k] }
	cfg, err := config.Parse(func(name string) string { return m.inputs[name] }, config.Env{
		EventName: m.env["GITHUB_EVENT_NAME"], SHA: m.env["GITHUB_SHA"], Workspace: m.env["GITHUB_WORKSPACE"],
	})
	if err != nil {
		m.t.Fatal(err)
	}
	httpClient := m.gh.Client()
	if m.beforeRequest != nil {
		httpClient = &http.Client{Transport: hookedTransport{httpClient.Transport, m.beforeRequest}}
	}
	gh, err := ghapi.New(ghapi.Options{HTTPClient: httpClient, APIURL: m.gh.URL(), Token: token, Repository: "octo-org/shop",
		Now: m.clk.Now, Sleep: func(ctx context.Context, d time.Duration) error { m.clk.Advance(d); return ctx.Err() }})
	if err != nil {
		m.t.Fatal(err)
	}
	gha := githubactions.New(githubactions.WithGetenv(getenv), githubactions.WithWriter(&m.log))
	var deployer deploy.Deployer = m.world
	if m.deployer != nil {
		deployer = m.deployer
	}
	probe := m.world.Probe
	if m.probe != nil {
		probe = m.probe
	}
	d := Deps{
		GHA: gha, Getenv: getenv, Stdout: &m.log, Clock: m.clk, GitHub: gh,
		Deployer: func(string) deploy.Deployer { return deployer },
		LockPoll: lockPoll,
		Probe:    probe,
		Go:       func(probe func()) { probe() },
	}
	if m.afterHook != nil {
		d.Clock = hookedClock{m.clk, m.afterHook}
	}
	r := newRunner(d, cfg)
	code := r.run(m.ctx)
	res := result{code: code, out: map[string]string{}, log: m.log.String(), run: r}
	for _, ph := range r.out.Phases {
		res.phases += string(ph) + " "
	}
	res.phases = strings.TrimSpace(res.phases)
	data, _ := os.ReadFile(m.env["GITHUB_OUTPUT"])
	for _, block := range strings.Split(string(data), "\n") {
		if name, rest, ok := strings.Cut(block, "<<"); ok {
			m.outputBlock(res.out, name, rest, string(data))
		}
	}
	return res
}

// outputBlock reads one name<<DELIMITER block of GITHUB_OUTPUT.
func (m *machine) outputBlock(out map[string]string, name, delim, all string) {
	start := strings.Index(all, name+"<<"+delim+"\n")
	body := all[start+len(name)+2+len(delim)+1:]
	end := strings.Index(body, "\n"+delim)
	out[name] = body[:end]
}

func (m *machine) states(id int64) string {
	var s []string
	for _, st := range m.gh.DeploymentStatuses(id) {
		s = append(s, st.State)
	}
	return strings.Join(s, ",")
}

func (m *machine) commitStates(c string) string {
	var s []string
	for _, st := range m.gh.CommitStatuses(c) {
		s = append(s, st.State)
	}
	return strings.Join(s, ",")
}

// newest returns the newest deployment, and the one before it.
func (m *machine) newest() (githubfake.Deployment, githubfake.Deployment) {
	ds := m.gh.Deployments()
	if len(ds) < 2 {
		return ds[len(ds)-1], githubfake.Deployment{}
	}
	return ds[len(ds)-1], ds[len(ds)-2]
}

func TestDeployTransitions(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		inputs  map[string]string
		setup   func(m *machine)
		code    int
		verdict run.Verdict
		phases  string
		deploys string
		live    string
	}{
		{"healthy", nil, nil, 0, run.Healthy,
			"validate deploy watch decide record", "deploy " + shaNew, shaNew},
		{"healthy against a baseline", map[string]string{"baseline-duration": "1m"}, nil, 0, run.Healthy,
			"validate baseline deploy watch decide record", "deploy " + shaNew, shaNew},
		{"regressed and rolled back", nil, func(m *machine) { m.world.down[shaNew] = true }, 1, run.RolledBack,
			"validate deploy watch decide rollback confirm record", "deploy " + shaNew + ", rollback " + shaGood, shaGood},
		{"the deploy command fails", nil, func(m *machine) { m.world.fails[shaNew] = true }, 1, run.RolledBack,
			"validate deploy decide rollback confirm record", "deploy " + shaNew + ", rollback " + shaGood, shaGood},
		{"the rolled-back build is unhealthy too", nil, func(m *machine) { m.world.down[shaNew], m.world.down[shaGood] = true, true }, 1, run.RollbackFailed,
			"validate deploy watch decide rollback confirm record", "deploy " + shaNew + ", rollback " + shaGood, shaGood},
		{"the rollback command fails", nil, func(m *machine) { m.world.down[shaNew], m.world.fails[shaGood] = true, true }, 1, run.RollbackFailed,
			"validate deploy watch decide rollback record", "deploy " + shaNew + ", rollback " + shaGood, shaNew},
		{"auto-rollback off", map[string]string{"auto-rollback": "false"}, func(m *machine) { m.world.down[shaNew] = true }, 1, run.Regressed,
			"validate deploy watch decide record", "deploy " + shaNew, shaNew},
		{"superseded by a newer deploy", nil, func(m *machine) {
			m.world.down[shaNew] = true
			m.world.onDeploy = func(req deploy.Request) {
				if req.SHA == shaNew {
					m.ours(recorder.TaskDeploy, shaOther, m.clk.Now(), "in_progress")
				}
			}
		}, 1, run.Regressed, "validate deploy watch decide record", "deploy " + shaNew, shaNew},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			m := newMachine(t, "push", tt.inputs)
			good := m.ours(recorder.TaskDeploy, shaGood, t0.Add(-time.Hour), "in_progress", "success")
			if tt.setup != nil {
				tt.setup(m)
			}
			res := m.run()
			if res.code != tt.code || res.out["verdict"] != string(tt.verdict) || res.phases != tt.phases {
				t.Fatalf("exit %d, verdict %q, phases %q; want %d, %q, %q\n%s", res.code, res.out["verdict"], res.phases, tt.code, tt.verdict, tt.phases, res.log)
			}
			if got := m.world.deployed(); got != tt.deploys || m.world.live != tt.live {
				t.Errorf("deploys %q, live %s; want %q, %s", got, m.world.live[:7], tt.deploys, tt.live[:7])
			}
			if res.out["previous-sha"] != shaGood || !strings.Contains(res.log, fmt.Sprintf("rollback target %s (from GitHub deployment %d)", shaGood, good.ID)) {
				t.Errorf("previous-sha %q\n%s", res.out["previous-sha"], res.log)
			}
			// The records follow the verdict.
			dep := m.gh.Deployments()[1]
			wantDep := map[run.Verdict]string{run.Healthy: "queued,in_progress,success"}[tt.verdict]
			if wantDep == "" {
				wantDep = "queued,in_progress,failure"
			}
			if got := m.states(dep.ID); dep.SHA != shaNew || got != wantDep {
				t.Errorf("deployment of %s: %s, want %s", dep.SHA[:7], got, wantDep)
			}
			wantCommit := map[bool]string{true: "pending,success", false: "pending,failure"}[tt.verdict == run.Healthy]
			if got := m.commitStates(shaNew); got != wantCommit {
				t.Errorf("commit statuses %s, want %s", got, wantCommit)
			}
			if strings.Contains(tt.phases, "rollback") {
				rb, _ := m.newest()
				want := map[run.Verdict]string{run.RolledBack: "in_progress,success", run.RollbackFailed: "in_progress,failure"}[tt.verdict]
				if rb.Task != "deploy:rollback" || rb.SHA != shaGood || m.states(rb.ID) != want {
					t.Errorf("rollback deployment %s of %s: %s, want %s", rb.Task, rb.SHA[:7], m.states(rb.ID), want)
				}
			}
		})
	}
}

func TestDeletedRefIsSkipped(t *testing.T) {
	t.Parallel()
	m := newMachine(t, "deleted", nil)
	res := m.run()
	if res.code != 0 || res.out["verdict"] != "skipped" || res.phases != "validate" || m.world.deployed() != "" || len(m.gh.Deployments()) != 0 {
		t.Fatalf("exit %d, verdict %s, phases %q, deploys %q\n%s", res.code, res.out["verdict"], res.phases, m.world.deployed(), res.log)
	}
	if !strings.Contains(res.log, "the push deleted old: there is nothing to deploy") {
		t.Errorf("log:\n%s", res.log)
	}
}

func TestShortSHAIsResolved(t *testing.T) {
	t.Parallel()
	m := newMachine(t, "push", map[string]string{"sha": shaNew[:9]})
	res := m.run()
	if res.code != 0 || res.out["sha"] != shaNew || m.world.deployed() != "deploy "+shaNew || m.commitStates(shaNew) != "pending,success" {
		t.Fatalf("exit %d, sha %s, deploys %q, statuses %q\n%s", res.code, res.out["sha"], m.world.deployed(), m.commitStates(shaNew), res.log)
	}
	m = newMachine(t, "push", map[string]string{"sha": "abcdef12345"})
	res = m.run()
	if res.code != ExitConfig || m.world.deployed() != "" || !strings.Contains(res.log, "input sha: abcdef12345 is not a commit of octo-org/shop") {
		t.Fatalf("unknown short SHA: exit %d, deploys %q\n%s", res.code, m.world.deployed(), res.log)
	}
}

// Another run of immune holds production: this one waits, then reads the
// history again and rolls back, if it must, to what the other one shipped.
func TestWaitsForAnotherRun(t *testing.T) {
	t.Parallel()
	m := newMachine(t, "push", nil)
	m.ours(recorder.TaskDeploy, shaGood, t0.Add(-time.Hour), "in_progress", "success")
	other := m.ours(recorder.TaskDeploy, shaOther, t0, "in_progress")
	m.world.down[shaNew] = true
	// The other run finishes healthy while this one waits its third poll.
	polls := 0
	m.afterHook = func(d time.Duration) {
		if d != lockPoll {
			return // a probe interval, not a poll
		}
		if polls++; polls == 3 {
			m.gh.AddDeploymentStatus(other.ID, githubfake.DeploymentStatus{State: "success", CreatedAt: m.clk.Now()})
			m.world.mu.Lock()
			m.world.live = shaOther
			m.world.mu.Unlock()
		}
	}
	res := m.run()
	if res.out["verdict"] != "rolled-back" || res.out["previous-sha"] != shaOther {
		t.Fatalf("verdict %s, previous-sha %s; want rolled-back to %s\n%s", res.out["verdict"], res.out["previous-sha"], shaOther[:7], res.log)
	}
	if !strings.Contains(res.log, fmt.Sprintf("Waiting for another run of immune: deployment %d (deploy of %s, in progress since 12:00:00 UTC, run https://github.com/octo-org/shop/actions/runs/1) holds production; waiting up to 15m", other.ID, shaOther[:7])) {
		t.Errorf("log does not say whom it waits for:\n%s", res.log)
	}
}

// Two runs start at once and both record a queued deployment: the younger
// one (the greater id) waits for the older one.
func TestRaceGoesToTheOlderRun(t *testing.T) {
	t.Parallel()
	m := newMachine(t, "push", nil)
	m.ours(recorder.TaskDeploy, shaGood, t0.Add(-time.Hour), "in_progress", "success")
	var older githubfake.Deployment
	m.world.onProbe = nil
	polls := 0
	m.afterHook = func(d time.Duration) {
		if d != lockPoll {
			return
		}
		if polls++; polls == 2 {
			m.gh.AddDeploymentStatus(older.ID, githubfake.DeploymentStatus{State: "success", CreatedAt: m.clk.Now()})
		}
	}
	// The other run created its deployment an instant before this one's,
	// after this one found the environment free.
	m.beforeRequest = func(req *http.Request) {
		if req.Method == "POST" && strings.HasSuffix(req.URL.Path, "/deployments") && older.ID == 0 {
			older = m.ours(recorder.TaskDeploy, shaOther, m.clk.Now(), "queued", "in_progress")
		}
	}
	res := m.run()
	if res.code != 0 || polls < 2 {
		t.Fatalf("exit %d after %d polls\n%s", res.code, polls, res.log)
	}
	mine, _ := m.newest()
	if got := m.states(mine.ID); got != "queued,in_progress,success" {
		t.Errorf("this run's deployment: %s", got)
	}
	if !strings.Contains(res.log, fmt.Sprintf("Waiting for another run of immune: deployment %d", older.ID)) {
		t.Errorf("log:\n%s", res.log)
	}
}

func TestLockTimeout(t *testing.T) {
	t.Parallel()
	m := newMachine(t, "push", map[string]string{"lock-timeout": "1m"})
	m.ours(recorder.TaskDeploy, shaOther, t0, "in_progress")
	res := m.run()
	if res.code != 1 || res.out["verdict"] != "skipped" || m.world.deployed() != "" || res.phases != "validate" {
		t.Fatalf("exit %d, verdict %s, phases %q, deploys %q\n%s", res.code, res.out["verdict"], res.phases, m.world.deployed(), res.log)
	}
	if !strings.Contains(res.log, "::error title=Environment busy::not deployed: deployment") || !strings.Contains(res.log, "after 1m00s (lock-timeout)") {
		t.Errorf("log:\n%s", res.log)
	}
	if len(m.gh.Deployments()) != 1 {
		t.Errorf("a deployment was recorded: %+v", m.gh.Deployments())
	}
}

// A cancel in each phase: what runs is stopped, nothing new starts, the
// records in flight end in error, and nothing is recorded healthy.
func TestCancelInEachPhase(t *testing.T) {
	t.Parallel()
	tests := []struct {
		phase   run.Phase
		inputs  map[string]string
		setup   func(m *machine)
		deploys string
		reason  string
		deps    []string // states of the deployments this run made, in order
		commit  string
	}{
		{run.Validate, nil, func(m *machine) {
			m.ours(recorder.TaskDeploy, shaOther, t0, "in_progress")
			m.afterHook = func(d time.Duration) { m.cancel() }
		}, "", "nothing was deployed; production still runs what it ran before", nil, ""},
		{run.Baseline, map[string]string{"baseline-duration": "1m"}, func(m *machine) {
			m.world.onProbe = func(n int) {
				if n == 3 {
					m.cancel()
				}
			}
		}, "", "nothing was deployed", nil, ""},
		{run.Deploy, nil, func(m *machine) {
			m.world.hang[shaNew] = true
			m.world.onDeploy = func(deploy.Request) { m.cancel() }
		}, "deploy " + shaNew, "the deploy command was stopped midway, so production may run 4d8b3f2 in part, or still 9f2c1e7; nothing was rolled back",
			[]string{"queued,in_progress,error"}, "pending,error"},
		{run.Watch, nil, func(m *machine) {
			m.world.onProbe = func(n int) {
				if n == 3 {
					m.cancel()
				}
			}
		}, "deploy " + shaNew, "4d8b3f2 is live on production, but its watch did not finish: it was not judged, and nothing was rolled back",
			[]string{"queued,in_progress,error"}, "pending,error"},
		{run.Rollback, nil, func(m *machine) {
			m.world.down[shaNew], m.world.hang[shaGood] = true, true
			m.world.onDeploy = func(req deploy.Request) {
				if req.Reason == deploy.ReasonRollback {
					m.cancel()
				}
			}
		}, "deploy " + shaNew + ", rollback " + shaGood, "4d8b3f2 regressed, and the rollback command was stopped midway, so production's state is unknown: it was being restored to 9f2c1e7",
			[]string{"queued,in_progress,failure", "in_progress,error"}, "pending,error"},
		{run.Confirm, nil, func(m *machine) {
			m.world.down[shaNew] = true
			m.world.onProbe = func(int) {
				if m.world.live == shaGood {
					m.cancel()
				}
			}
		}, "deploy " + shaNew + ", rollback " + shaGood, "4d8b3f2 regressed and production was rolled back to 9f2c1e7, but the rollback was not confirmed healthy",
			[]string{"queued,in_progress,failure", "in_progress,error"}, "pending,error"},
	}
	for _, tt := range tests {
		t.Run(string(tt.phase), func(t *testing.T) {
			t.Parallel()
			m := newMachine(t, "push", tt.inputs)
			m.ours(recorder.TaskDeploy, shaGood, t0.Add(-time.Hour), "in_progress", "success")
			tt.setup(m)
			seeded := len(m.gh.Deployments())
			res := m.run()
			if res.code != 1 || res.out["verdict"] != "cancelled" || res.run.out.StoppedIn != tt.phase {
				t.Fatalf("exit %d, verdict %q, stopped in %q; want 1, cancelled, %s\n%s", res.code, res.out["verdict"], res.run.out.StoppedIn, tt.phase, res.log)
			}
			if got := m.world.deployed(); got != tt.deploys {
				t.Errorf("commands %q, want %q: a command started after the cancel", got, tt.deploys)
			}
			want := fmt.Sprintf("the job was cancelled during the %s phase: %s", tt.phase, tt.reason)
			if !strings.HasPrefix(res.run.out.Reason, want) || !strings.Contains(res.log, "::error title=Cancelled::"+want) {
				t.Errorf("reason %q, want %q\n%s", res.run.out.Reason, want, res.log)
			}
			var got []string
			for _, d := range m.gh.Deployments()[seeded:] {
				got = append(got, m.states(d.ID))
			}
			if fmt.Sprint(got) != fmt.Sprint(tt.deps) {
				t.Errorf("deployments %v, want %v", got, tt.deps)
			}
			if c := m.commitStates(shaNew); c != tt.commit {
				t.Errorf("commit statuses %q, want %q", c, tt.commit)
			}
			for _, d := range m.gh.Deployments()[seeded:] {
				for _, st := range m.gh.DeploymentStatuses(d.ID) {
					if st.State == "error" && st.Description != "cancelled during "+string(tt.phase) {
						t.Errorf("error status %q", st.Description)
					}
				}
			}
			state, _ := os.ReadFile(filepath.Join(m.env["GITHUB_WORKSPACE"], ".immune", "state.json"))
			if strings.Contains(string(state), `"healthy"`) {
				t.Errorf("state file records a healthy build: %s", state)
			}
		})
	}
}

func TestWatchMode(t *testing.T) {
	t.Parallel()
	for _, down := range []bool{false, true} {
		m := newMachine(t, "push", map[string]string{"mode": "watch", "deploy-command": ""})
		m.world.live = shaNew
		m.world.down[shaNew] = down
		res := m.run()
		want := map[bool]string{false: "healthy", true: "regressed"}[down]
		if res.out["verdict"] != want || res.code != map[bool]int{false: 0, true: 1}[down] || res.phases != "validate watch decide record" || m.world.deployed() != "" {
			t.Errorf("down=%v: exit %d, verdict %s, phases %q\n%s", down, res.code, res.out["verdict"], res.phases, res.log)
		}
		if got := m.commitStates(shaNew); got != map[bool]string{false: "pending,success", true: "pending,failure"}[down] {
			t.Errorf("down=%v: commit statuses %s", down, got)
		}
	}
}

// A manual rollback under a history full of the jobs' deployments goes one
// step behind what really runs, not behind main's head.
func TestManualRollbackTransitions(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name    string
		setup   func(m *machine)
		code    int
		verdict string
		phases  string
	}{
		{"one step back", nil, 0, "rolled-back", "validate rollback confirm record"},
		{"the target is unhealthy", func(m *machine) { m.world.down[shaOld] = true }, 1, "rollback-failed", "validate rollback confirm record"},
		{"the command fails", func(m *machine) { m.world.fails[shaOld] = true }, 1, "rollback-failed", "validate rollback record"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			m := newMachine(t, "workflow_dispatch", map[string]string{"reason": "checkout errors"})
			m.ours(recorder.TaskDeploy, shaOld, t0.Add(-3*time.Hour), "in_progress", "success")
			m.gh.StartJob("production", "main", shaOld, "monalisa").Finish(true)
			m.ours(recorder.TaskDeploy, shaGood, t0.Add(-2*time.Hour), "in_progress", "success")
			m.gh.StartJob("production", "main", shaGood, "monalisa").Finish(true)
			m.gh.StartJob("production", "main", shaNew, "monalisa").Finish(true) // main's head: never deployed by immune
			if tt.setup != nil {
				tt.setup(m)
			}
			res := m.run()
			if res.code != tt.code || res.out["verdict"] != tt.verdict || res.phases != tt.phases {
				t.Fatalf("exit %d, verdict %s, phases %q\n%s", res.code, res.out["verdict"], res.phases, res.log)
			}
			if res.out["sha"] != shaOld || res.out["previous-sha"] != shaGood || m.world.deployed() != "rollback "+shaOld {
				t.Errorf("rolled back to %s replacing %s (deploys %q); want %s replacing %s", res.out["sha"][:7], res.out["previous-sha"], m.world.deployed(), shaOld[:7], shaGood[:7])
			}
			rb, _ := m.newest()
			p, _ := recorder.PayloadOf(ghapi.Deployment{Payload: rb.Payload.(map[string]any)})
			if rb.Task != "deploy:rollback" || !p.Manual || p.RolledBackFrom != shaGood || p.Reason != "checkout errors" {
				t.Errorf("rollback deployment %+v, payload %+v", rb, p)
			}
		})
	}
}

// A panic of immune's mid-run is recovered: the deployment in flight is
// closed, the outputs and the report are written, exit 3.
func TestPanicIsRecovered(t *testing.T) {
	t.Parallel()
	m := newMachine(t, "push", nil)
	m.ours(recorder.TaskDeploy, shaGood, t0.Add(-time.Hour), "in_progress", "success")
	m.world.onDeploy = func(deploy.Request) { panic("a bug") }
	res := m.run()
	if res.code != ExitError || res.out["sha"] != shaNew || res.run.out.StoppedIn != run.Deploy {
		t.Fatalf("exit %d, outputs %v, stopped in %q\n%s", res.code, res.out, res.run.out.StoppedIn, res.log)
	}
	if !strings.Contains(res.log, "::error title=immune failed::immune itself failed (a bug) during the deploy phase: the deploy command was stopped midway") {
		t.Errorf("log:\n%s", res.log)
	}
	dep, _ := m.newest()
	if got := m.states(dep.ID); got != "queued,in_progress,error" {
		t.Errorf("deployment %s", got)
	}
	if _, err := os.Stat(filepath.Join(m.env["GITHUB_WORKSPACE"], ".immune", "report.json")); err != nil {
		t.Errorf("no report: %v", err)
	}
}

// Publishing: a failure of one file does not stop the others, and the run
// says so with its own exit code.
func TestPublishFailures(t *testing.T) {
	t.Parallel()
	m := newMachine(t, "push", nil)
	m.env["GITHUB_STEP_SUMMARY"] = t.TempDir() // a directory: cannot be appended to
	res := m.run()
	if res.code != ExitPublish || res.out["verdict"] != "healthy" {
		t.Fatalf("exit %d, verdict %q\n%s", res.code, res.out["verdict"], res.log)
	}
	if !strings.Contains(res.log, "::error title=Could not publish the results::job summary (GITHUB_STEP_SUMMARY): ") || !strings.Contains(res.log, "the verdict was healthy") {
		t.Errorf("log:\n%s", res.log)
	}
	if _, err := os.Stat(filepath.Join(m.env["GITHUB_WORKSPACE"], ".immune", "report.json")); err != nil {
		t.Errorf("the report was not written after the summary failed: %v", err)
	}
}
