package action

// In-process tests of the transitions metrics bring: a regression seen in
// the metrics alone, either signal regressing the build, the inconclusive
// verdict and its records, the baseline, the rollback's and the manual
// rollback's watches, and the checks before the deploy. Prometheus is a
// small fake of its query API over the world's model of production's
// traffic, on the stepped clock; the tests against the real Prometheus
// are the binary's, in the repository root.

import (
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/immune-cd/immune/internal/recorder"
	"github.com/immune-cd/immune/internal/run"
)

// traffic is production's traffic as the fake Prometheus serves it: the
// live build serves rps requests a second, errShare[build] of them failing
// (spread evenly), and answers with p99[build] seconds at the 99th
// percentile. Counters exist per build from its first request on.
type traffic struct {
	mu       sync.Mutex
	world    *world
	rps      float64
	errShare map[string]float64
	p99      map[string]float64
	nan      map[string]bool // p99 of the build is NaN (no traffic in the window)
	down     func(now time.Time) bool
	reject   bool   // every query is a bad_data error
	warning  string // sent with every answer
	last     time.Time
	served   map[string]float64 // requests per build
	queries  int
}

var versionLabel = regexp.MustCompile(`version="([0-9a-f]+)"`)

// withPrometheus serves the fake Prometheus to the machine's run and sets
// the inputs that read it.
func (m *machine) withPrometheus(metricsYAML string) *traffic {
	tr := &traffic{world: m.world, rps: 50, errShare: map[string]float64{}, p99: map[string]float64{}, nan: map[string]bool{},
		last: m.clk.Now(), served: map[string]float64{}}
	srv := httptest.NewServer(http.HandlerFunc(tr.serve))
	m.t.Cleanup(srv.Close)
	m.inputs["prometheus-url"] = srv.URL
	m.inputs["metrics"] = metricsYAML
	return tr
}

const rateAndLatency = `- name: http-errors
  errors: http_requests_total{version="${SHA}",code=~"5.."}
  total: http_requests_total{version="${SHA}"}
  max-error-rate: 1%
- name: p99
  query: latency_p99{version="${SHA}"}
  max: 0.3
  consecutive: 2
`

// advance adds the requests served since the last query. tr.mu is held.
func (tr *traffic) advance() {
	now := tr.world.clk.Now()
	tr.world.mu.Lock()
	live := tr.world.live
	tr.world.mu.Unlock()
	if d := now.Sub(tr.last); d > 0 {
		tr.served[live] += tr.rps * d.Seconds()
	}
	tr.last = now
}

func (tr *traffic) serve(w http.ResponseWriter, r *http.Request) {
	_ = r.ParseForm()
	q := r.Form.Get("query")
	tr.mu.Lock()
	defer tr.mu.Unlock()
	tr.queries++
	now := tr.world.clk.Now()
	if tr.down != nil && tr.down(now) {
		http.Error(w, "upstream down", http.StatusServiceUnavailable)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	if tr.reject {
		w.WriteHeader(http.StatusBadRequest)
		fmt.Fprint(w, `{"status":"error","errorType":"bad_data","error":"1:10: parse error: unexpected identifier"}`)
		return
	}
	tr.advance()
	if strings.HasPrefix(q, "resets(") {
		q = "" // the fake's counters never restart: no series has a restart
	}
	build := ""
	if m := versionLabel.FindStringSubmatch(q); m != nil {
		build = m[1]
	}
	ts := float64(now.UnixMilli()) / 1000
	type sample struct {
		Metric map[string]string `json:"metric"`
		Value  [2]any            `json:"value"`
	}
	result := []sample{}
	add := func(name string, v float64) {
		s := fmt.Sprint(v)
		if math.IsNaN(v) {
			s = "NaN"
		}
		result = append(result, sample{Metric: map[string]string{"__name__": name, "version": build}, Value: [2]any{ts, s}})
	}
	requests := math.Floor(tr.served[build])
	switch {
	case strings.HasPrefix(q, "latency_p99"):
		if tr.nan[build] {
			add("latency_p99", math.NaN())
		} else if requests > 0 {
			add("latency_p99", tr.p99[build])
		}
	case strings.Contains(q, `code=~"5.."`):
		if requests > 0 {
			add("http_requests_total", math.Floor(requests*tr.errShare[build]))
		}
	default:
		if requests > 0 {
			add("http_requests_total", requests)
		}
	}
	answer := map[string]any{"status": "success", "data": map[string]any{"resultType": "vector", "result": result}}
	if tr.warning != "" {
		answer["warnings"] = []string{tr.warning}
	}
	body, _ := json.Marshal(answer)
	w.Write(body)
}

func TestMetricsTransitions(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		inputs  map[string]string
		setup   func(m *machine, tr *traffic)
		code    int
		verdict run.Verdict
		phases  string
		deploys string
		dep     string // the new build's deployment's statuses
		commit  string // its commit statuses
		log     string
		// noTarget: no healthy deployment and no push event before.
		noTarget bool
	}{
		{name: "healthy on metrics alone", setup: func(m *machine, tr *traffic) { tr.errShare[shaNew] = 0.002; tr.p99[shaNew] = 0.12 },
			code: 0, verdict: run.Healthy, phases: "validate deploy watch decide record", deploys: "deploy " + shaNew,
			dep: "queued,in_progress,success", commit: "pending,success",
			log: "Verdict: healthy. metric http-errors: 29 of 14750 requests failed (0.2%), within the allowed 1%; metric p99: worst 0.12 in 60 looks, within its max of 0.3"},
		{name: "a 5× error regression in the metrics is rolled back", setup: func(m *machine, tr *traffic) { tr.errShare[shaNew] = 0.05 },
			code: 1, verdict: run.RolledBack, phases: "validate deploy watch decide rollback confirm record", deploys: "deploy " + shaNew + ", rollback " + shaGood,
			dep: "queued,in_progress,failure", commit: "pending,failure", log: "on metric http-errors, 50 of 1000 requests failed"},
		{name: "a latency regression through a threshold query", setup: func(m *machine, tr *traffic) { tr.p99[shaNew] = 0.9 },
			code: 1, verdict: run.RolledBack, phases: "validate deploy watch decide rollback confirm record", deploys: "deploy " + shaNew + ", rollback " + shaGood,
			dep: "queued,in_progress,failure", commit: "pending,failure", log: "metric p99 is 0.9, above its max of 0.3, in 2 looks in a row (consecutive: 2)"},
		{name: "the probes pass, the metrics regress", inputs: map[string]string{"health-url": url1}, setup: func(m *machine, tr *traffic) { tr.errShare[shaNew] = 0.05 },
			code: 1, verdict: run.RolledBack, phases: "validate deploy watch decide rollback confirm record", deploys: "deploy " + shaNew + ", rollback " + shaGood,
			dep: "queued,in_progress,failure", commit: "pending,failure", log: "on metric http-errors"},
		{name: "the metrics pass, the probes regress", inputs: map[string]string{"health-url": url1}, setup: func(m *machine, tr *traffic) { m.world.down[shaNew] = true },
			code: 1, verdict: run.RolledBack, phases: "validate deploy watch decide rollback confirm record", deploys: "deploy " + shaNew + ", rollback " + shaGood,
			dep: "queued,in_progress,failure", commit: "pending,failure", log: "no healthy answer from https://shop.example.com/healthz within the startup timeout"},
		{name: "Prometheus down for the whole watch", setup: func(m *machine, tr *traffic) {
			start := m.clk.Now().Add(time.Second) // after the check before the deploy
			tr.down = func(now time.Time) bool { return now.After(start) }
		}, code: 1, verdict: run.Inconclusive, phases: "validate deploy watch decide record", deploys: "deploy " + shaNew,
			dep: "queued,in_progress,error", commit: "pending,error", log: "metric http-errors: no look had data (the last: unreachable: "},
		{name: "Prometheus down for a part of the watch", inputs: map[string]string{"startup-timeout": "1m"}, setup: func(m *machine, tr *traffic) {
			from, to := m.clk.Now().Add(time.Minute), m.clk.Now().Add(2*time.Minute)
			tr.down = func(now time.Time) bool { return now.After(from) && now.Before(to) }
		}, code: 0, verdict: run.Healthy, phases: "validate deploy watch decide record", deploys: "deploy " + shaNew,
			dep: "queued,in_progress,success", commit: "pending,success", log: "http-errors no data (unreachable"},
		{name: "too few requests", inputs: map[string]string{"startup-timeout": "1m"}, setup: func(m *machine, tr *traffic) { tr.rps = 0.05 },
			code: 1, verdict: run.Inconclusive, phases: "validate deploy watch decide record", deploys: "deploy " + shaNew,
			dep: "queued,in_progress,error", commit: "pending,error", log: "metric http-errors counted 14 requests over the watch, fewer than min-requests (20)"},
		{name: "NaN is no data, never a pass", setup: func(m *machine, tr *traffic) { tr.nan[shaNew] = true },
			code: 1, verdict: run.Inconclusive, phases: "validate deploy watch decide record", deploys: "deploy " + shaNew,
			dep: "queued,in_progress,error", commit: "pending,error", log: "metric p99: no look had data (the last: NaN)"},
		{name: "a query Prometheus rejects", setup: func(m *machine, tr *traffic) { tr.reject = true },
			code: ExitConfig, verdict: run.None, phases: "validate", log: `input metrics: Prometheus at http://127.0.0.1`},
		{name: "Prometheus unreachable before the deploy", setup: func(m *machine, tr *traffic) {
			// Down past every query's retries: the check sends them all at
			// once, each waiting on the stepped clock.
			start := m.clk.Now().Add(3 * time.Second)
			tr.down = func(now time.Time) bool { return now.Before(start) }
		}, code: 0, verdict: run.Healthy, phases: "validate deploy watch decide record", deploys: "deploy " + shaNew,
			dep: "queued,in_progress,success", commit: "pending,success", log: "Prometheus unreachable"},
		{name: "${PREVIOUS_SHA} without a rollback target", inputs: map[string]string{
			"metrics": "- name: was\n  query: latency_p99{version=\"${PREVIOUS_SHA}\"}\n  max: 1\n"},
			setup: func(m *machine, tr *traffic) {}, noTarget: true, code: ExitConfig, verdict: run.None, phases: "validate",
			log: "input metrics: metric 1 (\"was\"): query: ${PREVIOUS_SHA} has no value in this run"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			m := newMachine(t, "push", map[string]string{"health-url": "", "startup-timeout": "10s", "interval": "5s", "duration": "5m", "rollback-duration": "1m"})
			tr := m.withPrometheus(rateAndLatency)
			for k, v := range tt.inputs {
				m.inputs[k] = v
			}
			if tt.noTarget {
				m.env["GITHUB_EVENT_PATH"] = ""
			} else {
				m.ours(recorder.TaskDeploy, shaGood, t0.Add(-time.Hour), "in_progress", "success")
			}
			tr.p99[shaGood] = 0.1
			tt.setup(m, tr)
			res := m.run()
			if res.code != tt.code || res.out["verdict"] != string(tt.verdict) || res.phases != tt.phases {
				t.Fatalf("exit %d, verdict %q, phases %q; want %d, %q, %q\n%s", res.code, res.out["verdict"], res.phases, tt.code, tt.verdict, tt.phases, res.log)
			}
			if !strings.Contains(res.log, tt.log) {
				t.Errorf("the log does not say %q:\n%s", tt.log, res.log)
			}
			if got := m.world.deployed(); got != tt.deploys {
				t.Errorf("deploys %q, want %q", got, tt.deploys)
			}
			if tt.dep == "" {
				return
			}
			dep := m.gh.Deployments()[1]
			if got := m.states(dep.ID); dep.SHA != shaNew || got != tt.dep {
				t.Errorf("deployment of %s: %s, want %s", dep.SHA[:7], got, tt.dep)
			}
			if got := m.commitStates(shaNew); got != tt.commit {
				t.Errorf("commit statuses %s, want %s", got, tt.commit)
			}
			if tt.verdict == run.Inconclusive {
				last := m.gh.DeploymentStatuses(dep.ID)
				if d := last[len(last)-1].Description; !strings.HasPrefix(d, recorder.Inconclusive) {
					t.Errorf("the deployment's last status says %q", d)
				}
				if res.out["rolled-back"] != "false" || !strings.Contains(res.log, "the build was not judged healthy: nothing was rolled back") {
					t.Errorf("rolled-back %s\n%s", res.out["rolled-back"], res.log)
				}
			}
		})
	}
}

// metricsMachine is a deploy judged by the metrics alone, with a healthy
// deployment of shaGood to roll back to.
func metricsMachine(t *testing.T, event string, inputs map[string]string) (*machine, *traffic) {
	m := newMachine(t, event, map[string]string{"health-url": "", "startup-timeout": "10s", "interval": "5s", "duration": "5m", "rollback-duration": "1m"})
	tr := m.withPrometheus(rateAndLatency)
	for k, v := range inputs {
		m.inputs[k] = v
	}
	m.ours(recorder.TaskDeploy, shaGood, t0.Add(-time.Hour), "in_progress", "success")
	tr.p99[shaGood], tr.p99[shaNew] = 0.1, 0.1
	return m, tr
}

// TestMetricsBaseline: with baseline-duration, production's rate metric
// (read for the build it runs) is the yardstick: 2.5% errors are within a
// point of production's 2%, where the absolute 1% would roll them back.
func TestMetricsBaseline(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		baseline string
		verdict  run.Verdict
		phases   string
		log      string
	}{
		{"1m", run.Healthy, "validate baseline deploy watch decide record", "Baseline: metric http-errors: 24 of 2750 requests failed (0.9%); the new build is judged against it."},
		{"0s", run.RolledBack, "validate deploy watch decide rollback confirm record", "the failure rate is above the allowed 1%"},
	} {
		t.Run("baseline "+tt.baseline, func(t *testing.T) {
			t.Parallel()
			m, tr := metricsMachine(t, "push", map[string]string{"baseline-duration": tt.baseline})
			tr.errShare[shaGood], tr.errShare[shaNew] = 0.009, 0.016
			res := m.run()
			if res.out["verdict"] != string(tt.verdict) || res.phases != tt.phases || !strings.Contains(res.log, tt.log) {
				t.Fatalf("verdict %q, phases %q; want %q, %q, and the log to say %q\n%s", res.out["verdict"], res.phases, tt.verdict, tt.phases, tt.log, res.log)
			}
			if tt.verdict == run.Healthy && !strings.Contains(res.log, "at most 1 point above production's rate") {
				t.Errorf("the verdict does not say it was judged against production:\n%s", res.log)
			}
			if b := res.run.out.Baseline; tt.baseline != "0s" && (b == nil || len(b.Metrics) != 1 || b.Metrics[0].Requests == 0) {
				t.Errorf("the report's baseline has no metrics: %+v", b)
			}
		})
	}
}

// TestMetricsRollbackWatchInconclusive: the new build regressed and was
// rolled back, but the rolled-back build's metrics have no data: the run
// cannot say the rollback is healthy, nor that it failed.
func TestMetricsRollbackWatchInconclusive(t *testing.T) {
	t.Parallel()
	m, tr := metricsMachine(t, "push", nil)
	tr.errShare[shaNew] = 0.2
	tr.nan[shaGood] = true
	res := m.run()
	if res.code != 1 || res.out["verdict"] != "inconclusive" || res.out["rolled-back"] != "true" || m.world.live != shaGood {
		t.Fatalf("exit %d, verdict %s, rolled back %s, live %s\n%s", res.code, res.out["verdict"], res.out["rolled-back"], m.world.live[:7], res.log)
	}
	rb, dep := m.newest()
	if got := m.states(rb.ID); rb.Task != "deploy:rollback" || got != "in_progress,error" {
		t.Errorf("rollback deployment %s: %s", rb.Task, got)
	}
	if got := m.states(dep.ID); got != "queued,in_progress,failure" {
		t.Errorf("regressed deployment: %s", got)
	}
	if got := m.commitStates(shaNew); got != "pending,failure" {
		t.Errorf("commit statuses %s: the build did regress", got)
	}
	if !strings.Contains(res.log, "Rollback not confirmed") || !strings.Contains(res.log, "metric p99: no look had data (the last: NaN)") {
		t.Errorf("log:\n%s", res.log)
	}
}

// TestMetricsManualRollback: a manual rollback's watch reads the metrics of
// the build rolled back to.
func TestMetricsManualRollback(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		name    string
		nan     bool
		code    int
		verdict run.Verdict
		states  string
		commit  string
	}{
		{"healthy", false, 0, run.RolledBack, "queued,in_progress,success", "pending,success"},
		{"inconclusive", true, 1, run.Inconclusive, "queued,in_progress,error", "pending,error"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			m, tr := metricsMachine(t, "workflow_dispatch", map[string]string{"sha": shaGood, "reason": "checkout is broken", "duration": "1m"})
			m.ours(recorder.TaskDeploy, shaNew, t0.Add(-time.Minute), "in_progress", "success")
			m.world.live = shaNew
			tr.nan[shaGood] = tt.nan
			res := m.run()
			if res.code != tt.code || res.out["verdict"] != string(tt.verdict) || m.world.deployed() != "rollback "+shaGood {
				t.Fatalf("exit %d, verdict %s, deploys %q\n%s", res.code, res.out["verdict"], m.world.deployed(), res.log)
			}
			rb, _ := m.newest()
			if got := m.states(rb.ID); got != tt.states {
				t.Errorf("rollback deployment: %s, want %s", got, tt.states)
			}
			if got := m.commitStates(shaGood); got != tt.commit {
				t.Errorf("commit statuses %s, want %s", got, tt.commit)
			}
		})
	}
}

// TestMetricsWatchMode: watch mode judges the metrics of sha and sets its
// commit status, error when inconclusive.
func TestMetricsWatchMode(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		rps    float64
		code   int
		commit string
	}{{50, 0, "pending,success"}, {0.01, 1, "pending,error"}} {
		m, tr := metricsMachine(t, "push", map[string]string{"mode": "watch", "duration": "1m"})
		m.world.live = shaNew
		tr.rps = tt.rps
		res := m.run()
		if res.code != tt.code || res.phases != "validate watch decide record" || m.world.deployed() != "" {
			t.Fatalf("%v rps: exit %d, phases %q, deploys %q\n%s", tt.rps, res.code, res.phases, m.world.deployed(), res.log)
		}
		if got := m.commitStates(shaNew); got != tt.commit {
			t.Errorf("%v rps: commit statuses %s, want %s", tt.rps, got, tt.commit)
		}
	}
}

// TestMetricsCancelDuringLook: a cancel while the watch reads Prometheus
// stops the run like any cancel during the watch.
func TestMetricsCancelDuringLook(t *testing.T) {
	t.Parallel()
	m, tr := metricsMachine(t, "push", nil)
	tr.down = func(now time.Time) bool {
		if now.Sub(t0) > 30*time.Second {
			m.cancel()
		}
		return false
	}
	res := m.run()
	if res.code != 1 || res.out["verdict"] != "cancelled" || !strings.Contains(res.log, "it was not judged, and nothing was rolled back") {
		t.Fatalf("exit %d, verdict %s\n%s", res.code, res.out["verdict"], res.log)
	}
	if got := m.commitStates(shaNew); got != "pending,error" {
		t.Errorf("commit statuses %s", got)
	}
}

// TestMetricsTextFromPrometheusIsEscaped: Prometheus's warnings and errors
// are shown, but can never start a workflow command.
func TestMetricsTextFromPrometheusIsEscaped(t *testing.T) {
	t.Parallel()
	m, tr := metricsMachine(t, "push", map[string]string{"duration": "30s"})
	tr.warning = "::add-mask::visible\n::stop-commands::x"
	res := m.run()
	if !strings.Contains(res.log, "Prometheus warning") {
		t.Fatalf("the warning is not shown:\n%s", res.log)
	}
	for _, line := range strings.Split(res.log, "\n") {
		if strings.HasPrefix(line, "::add-mask::") || strings.HasPrefix(line, "::stop-commands::") {
			t.Errorf("a line from Prometheus starts a workflow command: %q", line)
		}
	}
}

// TestMetricsDegradedButPassing: a metric above its limit without the
// evidence to call it a regression passes with a warning.
func TestMetricsDegradedButPassing(t *testing.T) {
	t.Parallel()
	m, tr := metricsMachine(t, "push", map[string]string{"duration": "1m"})
	tr.errShare[shaNew] = 0.012
	res := m.run()
	if res.code != 0 || !strings.Contains(res.log, "Degraded but passing::metric http-errors: ") {
		t.Fatalf("exit %d\n%s", res.code, res.log)
	}
}
