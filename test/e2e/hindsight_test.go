package e2e

// stats and backtest, run as users run them: the action (mode stats) and
// the CLI (immune backtest), reading the fake GitHub's deployments, where
// immune's own sit beside GitHub's job deployments and one made by hand,
// and, for the backtest, a real Prometheus serving a week of history that
// promtool backfilled.

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/immune-cd/immune/internal/testkit/githubfake"
	"github.com/immune-cd/immune/internal/testkit/historyseed"
	"github.com/immune-cd/immune/internal/testkit/promtest"
)

// TestStatsOfFifty: the action in stats mode over the fifty deployments of
// historyseed (their figures worked out by hand in internal/stats), read
// from GitHub with the deployments GitHub Actions made for the jobs beside
// them, one made by hand, and two commits GitHub cannot find.
func TestStatsOfFifty(t *testing.T) {
	t.Parallel()
	f := fakeGitHub(t)
	start := time.Now().UTC().Add(-10 * 24 * time.Hour)
	fifty := historyseed.Fifty(start)
	historyseed.Write(f, "production", fifty, true)
	f.AddDeployment(githubfake.Deployment{SHA: historyseed.SHA("by-hand"), Environment: "production", CreatedAt: historyseed.Deploy(start, 10).Add(30 * time.Minute)})
	for _, i := range historyseed.FiftyNoCommitTime {
		commit := historyseed.SHA(fmt.Sprintf("commit-%d", i))
		f.Inject(githubfake.Fault{Method: "GET", Path: "/repos/octo-org/shop/commits/" + commit, Status: 422, Message: "No commit found for SHA: " + commit})
	}

	res := newActionRun(t, "schedule", map[string]string{"mode": "stats", "stats-period": "10d"}).useGitHub(f).exec()
	if res.code != 0 || res.outputs["report"] != ".immune/stats.json" {
		t.Fatalf("exit %d, outputs %v; want 0 and the report\n%s", res.code, res.outputs, res.log)
	}
	var r struct {
		Changes struct{ Total, Healthy, Regressed, Inconclusive, Cancelled, Running int }
		PerDay  float64 `json:"deployments_per_day"`
		CFR     struct {
			Of, Count int
		} `json:"change_failure_rate"`
		Restore, Lead, Detect struct {
			N      int
			Median float64 `json:"median_seconds"`
			Mean   float64 `json:"mean_seconds"`
		}
		Unknown int      `json:"lead_time_unknown"`
		Jobs    int      `json:"skipped_jobs"`
		Foreign int      `json:"skipped_foreign"`
		Notes   []string `json:"notes"`
	}
	data, _ := json.Marshal(res.report)
	json.Unmarshal(data, &r)
	json.Unmarshal(data, &struct {
		Restore *struct {
			N      int
			Median float64 `json:"median_seconds"`
			Mean   float64 `json:"mean_seconds"`
		} `json:"time_to_restore"`
		Lead *struct {
			N      int
			Median float64 `json:"median_seconds"`
			Mean   float64 `json:"mean_seconds"`
		} `json:"lead_time"`
		Detect *struct {
			N      int
			Median float64 `json:"median_seconds"`
			Mean   float64 `json:"mean_seconds"`
		} `json:"detection_time"`
	}{&r.Restore, &r.Lead, &r.Detect})
	// The figures of internal/stats' TestFifty, worked out by hand there.
	if r.Changes.Total != 40 || r.Changes.Healthy != 30 || r.Changes.Regressed != 6 || r.PerDay != 4 || r.CFR.Count != 6 || r.CFR.Of != 38 {
		t.Errorf("changes %+v, %v a day, failure rate %+v; want 40 (30 healthy, 6 regressed), 4 a day, 6 of 38", r.Changes, r.PerDay, r.CFR)
	}
	if r.Restore.N != 5 || r.Restore.Median != 240 || r.Restore.Mean != 27*60+48 {
		t.Errorf("time to restore %+v, want 5, median 4m, mean 27m48s", r.Restore)
	}
	if r.Detect.N != 6 || r.Detect.Median != 210 || r.Detect.Mean != 250 {
		t.Errorf("detection time %+v, want 6, median 3m30s, mean 4m10s", r.Detect)
	}
	if r.Lead.N != 28 || r.Lead.Median != 55*60+30 || r.Unknown != 2 {
		t.Errorf("lead time %+v (%d unknown), want 28, median 55m30s, 2 unknown", r.Lead, r.Unknown)
	}
	// The jobs of the 45 deployments that are not rollbacks, less the two
	// before the period; the one by hand.
	if r.Jobs != 43 || r.Foreign != 1 {
		t.Errorf("skipped %d jobs' and %d foreign deployments, want 43 and 1", r.Jobs, r.Foreign)
	}
	if !strings.Contains(strings.Join(r.Notes, "\n"), "not read: the commit times of 2 healthy deploy(s)") {
		t.Errorf("notes %q, want the two commits GitHub could not find", r.Notes)
	}
	for _, want := range []string{"## 📈 immune: the record of production", "| Deployments per day | 4.0 (40 changes", "| Change failure rate | 15.8% (6 of 38 changes judged) |", "xychart-beta", "43 deployment(s) GitHub Actions made for jobs, 1 made by hand"} {
		if !strings.Contains(res.summary, want) {
			t.Errorf("summary lacks %q:\n%s", want, res.summary)
		}
	}
	// Nothing was written to GitHub.
	for _, c := range f.Calls() {
		if c.Method != "GET" {
			t.Errorf("stats wrote to GitHub: %s %s", c.Method, c.Path)
		}
	}
}

// week is the backfilled Prometheus of historyseed.Week, shared by the
// backtests.
var week struct {
	once sync.Once
	w    historyseed.Week
	now  time.Time
	p    *promtest.Prometheus
	err  error
}

func backfilledWeek(t *testing.T) (historyseed.Week, string) {
	t.Helper()
	for _, bin := range []string{"prometheus", "promtool"} {
		if _, err := exec.LookPath(bin); err != nil {
			if os.Getenv("CI") == "true" {
				t.Fatalf("the %s binary is not installed; CI installs Debian's prometheus package", bin)
			}
			t.Skipf("%s is not installed (apt-get install prometheus)", bin)
		}
	}
	week.once.Do(func() {
		week.now = time.Now()
		week.w = historyseed.NewWeek(week.now)
		prometheus, _ := exec.LookPath("prometheus")
		promtool, _ := exec.LookPath("promtool")
		week.p, week.err = promtest.StartBackfilled(prometheus, promtool, week.w.OpenMetrics)
	})
	if week.err != nil {
		t.Fatal(week.err)
	}
	return week.w, week.p.URL
}

// backtestRun runs immune backtest as a CLI against the fake GitHub.
func backtestRun(t *testing.T, f *githubfake.Server, args ...string) (int, string) {
	t.Helper()
	cmd := exec.Command(binary, append([]string{"backtest"}, args...)...)
	cmd.Dir = t.TempDir()
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + cmd.Dir, "GITHUB_TOKEN=" + token, "GITHUB_REPOSITORY=octo-org/shop", "GITHUB_API_URL=" + f.URL()}
	out, err := cmd.Output()
	code := 0
	if exit, ok := err.(*exec.ExitError); ok {
		code = exit.ExitCode()
		out = append(out, exit.Stderr...)
	} else if err != nil {
		t.Fatal(err)
	}
	return code, string(out)
}

const weekMetrics = `- name: http-errors
  errors: http_requests_total{code=~"5..",version="${SHA}"}
  total: http_requests_total{version="${SHA}"}
- name: p99
  query: http_p99_seconds{version="${SHA}"}
  max: 0.5
`

type backtestResult struct {
	ID        int64   `json:"deployment_id"`
	SHA       string  `json:"sha"`
	Verdict   string  `json:"verdict"`
	After     float64 `json:"after_seconds"`
	Reason    string  `json:"reason"`
	Agreement string  `json:"agreement"`
	Cut       *struct {
		By    string `json:"by"`
		After float64
	} `json:"cut"`
}

// TestBacktestWeek: five of immune's deploys over a week; the third served
// 8% errors for the 10 minutes until the fourth replaced it, and was
// recorded healthy (its probes saw nothing). Replayed against a backfilled
// Prometheus, a configuration with a 2% limit rolls that one back about a
// minute after its build began to serve and passes the other four; a 0.2%
// limit, under the builds' usual 0.5%, shows the false alarms it would
// raise.
func TestBacktestWeek(t *testing.T) {
	t.Parallel()
	w, url := backfilledWeek(t)
	f := fakeGitHub(t)
	historyseed.Write(f, "production", w.Deployments, true)
	f.AddDeployment(githubfake.Deployment{SHA: historyseed.SHA("by-hand"), Environment: "production", CreatedAt: week.now.Add(-3 * time.Hour)})
	common := []string{"--prometheus-url", url, "--metrics", weekMetrics, "--interval=30s", "--duration=15m", "--backtest-deployments=5"}

	code, out := backtestRun(t, f, append(common, "--max-error-rate=2%", "--json")...)
	var rep struct {
		Results []backtestResult
		Counts  map[string]int
		Jobs    int `json:"skipped_jobs"`
		Foreign int `json:"skipped_foreign"`
	}
	if err := json.Unmarshal([]byte(out), &rep); code != 0 || err != nil {
		t.Fatalf("exit %d, %v:\n%s", code, err, out)
	}
	if len(rep.Results) != 5 || rep.Jobs != 5 || rep.Foreign != 1 {
		t.Fatalf("%d results, %d job and %d foreign deployments skipped; want 5, 5 and 1:\n%s", len(rep.Results), rep.Jobs, rep.Foreign, out)
	}
	for i, r := range rep.Results {
		d := w.Deployments[len(w.Deployments)-1-i] // newest first
		if r.SHA != d.SHA {
			t.Fatalf("result %d is of %s, want %s", i, r.SHA, d.SHA)
		}
		if len(w.Deployments)-1-i != w.Bad {
			if r.Verdict != "would-pass" || r.Agreement != "agrees" {
				t.Errorf("deploy %d: %s, %q (%s); want it to pass, as recorded", r.ID, r.Verdict, r.Agreement, r.Reason)
			}
			continue
		}
		// The bad build served from +30s. The judge's first look with its
		// data is a starting point; the next ones count.
		from := w.BadFrom.Sub(d.Started).Seconds()
		if r.Verdict != "would-roll-back" || r.After < from || r.After > from+120 || r.Agreement != "new-alarm" {
			t.Errorf("the bad deploy: %s at +%vs, %q (%s); want a rollback within 2 minutes of +%vs, a new alarm against the record", r.Verdict, r.After, r.Agreement, r.Reason, from)
		}
		if r.Cut == nil || r.Cut.By != "deploy" {
			t.Errorf("the bad deploy's watch: cut %+v, want cut where the next deploy replaced it", r.Cut)
		}
		t.Logf("the bad deploy: rolled back at +%vs (its build served from +%vs): %s", r.After, from, r.Reason)
	}
	if rep.Counts["would_roll_back"] != 1 || rep.Counts["would_pass"] != 4 {
		t.Errorf("counts %v, want 1 rollback and 4 passes", rep.Counts)
	}

	code, out = backtestRun(t, f, append(common, "--max-error-rate=0.2%")...)
	if code != 0 {
		t.Fatalf("exit %d:\n%s", code, out)
	}
	t.Logf("the too-tight limit's summary:\n%s", out)
	for _, want := range []string{
		"## 🔁 immune: backtest on production: this configuration would have rolled back 5 of the last 5 deploys, 5 recorded healthy",
		"| Deployment | Commit | Recorded then | This configuration now | Compared |",
		"**Against the record:** 0 agree, 5 new alarm(s)",
		"not read: 5 deployment(s) GitHub Actions made for jobs, 1 made by hand or by another tool",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("the too-tight limit's summary lacks %q", want)
		}
	}
	if n := strings.Count(out, "| ✅ healthy | ⏪ would roll back at +"); n != 5 {
		t.Errorf("%d rows recorded healthy that would roll back, want 5", n)
	}

	// A query that matches nothing Prometheus holds: too little data, said
	// so, not a pass.
	code, out = backtestRun(t, f, "--prometheus-url", url, "--interval=30s", "--duration=15m", "--backtest-deployments=2",
		"--metrics", "- name: e\n  errors: http_requests_total{code=\"500\",version=\"${SHA}\",region=\"mars\"}\n  total: http_requests_total{version=\"${SHA}\",region=\"mars\"}\n")
	if code != 0 || !strings.Contains(out, "too little data to judge any of the last 2 deploys") || !strings.Contains(out, "no look had data") {
		t.Errorf("a query that matches nothing: exit %d\n%s", code, out)
	}
}

// TestBacktestNeedsMetrics: a backtest without metrics is a configuration
// error, before GitHub or Prometheus is asked anything.
func TestBacktestNeedsMetrics(t *testing.T) {
	t.Parallel()
	f := fakeGitHub(t)
	code, out := backtestRun(t, f, "--health-url=http://127.0.0.1:1/health")
	if code != 2 || !strings.Contains(out, "--metrics: backtest mode replays metrics from Prometheus (health probes are kept nowhere to be replayed): pass --metrics and --prometheus-url") {
		t.Errorf("exit %d, want 2:\n%s", code, out)
	}
	if len(f.Calls()) != 0 {
		t.Errorf("GitHub was asked %d things", len(f.Calls()))
	}
}
