package action

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

	"github.com/immune-cd/immune/internal/deploy"
	"github.com/immune-cd/immune/internal/recorder"
	"github.com/immune-cd/immune/internal/testkit/githubfake"
)

// A canary judged by Prometheus metrics, in process: a fake of the query
// API over the two tracks' traffic on the stepped clock. Each track serves
// rps requests a second, failing at its commit's share plus a shared
// incident's; queries select a track with track="canary" or "stable".

type trackTraffic struct {
	mu       sync.Mutex
	w        *tracks
	rps      map[string]float64 // per track
	errShare map[string]float64 // per commit
	incident float64
	silent   map[string]bool // a track whose series are missing
	last     time.Time
	served   map[string]float64 // per track
	failed   map[string]float64
	queries  []string
}

var trackLabel = regexp.MustCompile(`track="([a-z]*)"`)

const trackedErrors = `- name: http-errors
  errors: http_requests_total{track="${TRACK}",code=~"5.."}
  total: http_requests_total{track="${TRACK}"}
  max-error-rate: 1%
`

// withTracksPrometheus serves the fake Prometheus over w's tracks.
func (m *machine) withTracksPrometheus(w *tracks, metricsYAML string) *trackTraffic {
	tr := &trackTraffic{w: w, rps: map[string]float64{"canary": 40, "stable": 360}, errShare: map[string]float64{shaGood: 0.01, shaNew: 0.01},
		silent: map[string]bool{}, last: m.clk.Now(), served: map[string]float64{}, failed: map[string]float64{}}
	srv := httptest.NewServer(http.HandlerFunc(tr.serve))
	m.t.Cleanup(srv.Close)
	m.inputs["prometheus-url"] = srv.URL
	m.inputs["metrics"] = metricsYAML
	return tr
}

func (tr *trackTraffic) serve(w http.ResponseWriter, r *http.Request) {
	_ = r.ParseForm()
	q := r.Form.Get("query")
	tr.mu.Lock()
	defer tr.mu.Unlock()
	tr.queries = append(tr.queries, q)
	now := tr.w.clk.Now()
	tr.w.mu.Lock()
	commits := map[string]string{"canary": tr.w.canary, "stable": tr.w.stable}
	tr.w.mu.Unlock()
	if d := now.Sub(tr.last).Seconds(); d > 0 {
		for track, commit := range commits {
			n := tr.rps[track] * d
			tr.served[track] += n
			tr.failed[track] += n * math.Min(1, tr.errShare[commit]+tr.incident)
		}
	}
	tr.last = now
	if strings.HasPrefix(q, "resets(") {
		q = "" // the fake's counters never restart: no series has a restart
	}
	track := ""
	if m := trackLabel.FindStringSubmatch(q); m != nil {
		track = m[1]
	}
	type sample struct {
		Metric map[string]string `json:"metric"`
		Value  [2]any            `json:"value"`
	}
	result := []sample{}
	if _, ok := commits[track]; ok && !tr.silent[track] {
		v := tr.served[track]
		if strings.Contains(q, `code=~"5.."`) {
			v = tr.failed[track]
		}
		result = append(result, sample{Metric: map[string]string{"__name__": "http_requests_total", "track": track},
			Value: [2]any{float64(now.UnixMilli()) / 1000, fmt.Sprint(math.Floor(v))}})
	}
	w.Header().Set("Content-Type", "application/json")
	body, _ := json.Marshal(map[string]any{"status": "success", "data": map[string]any{"resultType": "vector", "result": result}})
	w.Write(body)
}

// metricsCanary is a deploy whose canary is judged by metrics alone (no
// canary-health-url); the full watch still probes health-url.
func metricsCanary(t *testing.T, inputs map[string]string) (*machine, *tracks, *trackTraffic) {
	in := map[string]string{"canary-health-url": "", "startup-timeout": "10s", "canary-duration": "10m"}
	for k, v := range inputs {
		in[k] = v
	}
	m, w := canaryMachine(t, in)
	return m, w, m.withTracksPrometheus(w, trackedErrors)
}

func TestCanaryMetrics(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		inputs  map[string]string
		setup   func(w *tracks, tr *trackTraffic)
		code    int
		verdict string
		stage   string
		phases  string
		reason  string
		canary  string // the deploy:canary deployment's last status
	}{
		{name: "a 5× regression in the canary's errors", setup: func(w *tracks, tr *trackTraffic) { tr.errShare[shaNew] = 0.05 },
			code: 1, verdict: "rolled-back", stage: "canary", phases: "validate canary-deploy canary-watch canary-rollback record",
			reason: "on metric http-errors, the canary failed", canary: "failure"},
		{name: "an outage that hits both tracks", setup: func(w *tracks, tr *trackTraffic) {
			w.onDeploy = func(req deploy.Request) {
				tr.mu.Lock()
				defer tr.mu.Unlock()
				tr.incident = map[string]float64{"canary": 0.2}[req.Stage]
			}
		}, code: 0, verdict: "healthy", stage: "full", phases: "validate canary-deploy canary-watch deploy watch decide record",
			reason: "0 of", canary: "success"},
		{name: "promoted early", inputs: map[string]string{"canary-promote-early": "true"},
			code: 0, verdict: "healthy", stage: "full", phases: "validate canary-deploy canary-watch deploy watch decide record", canary: "success"},
		{name: "the control's series are missing", setup: func(w *tracks, tr *trackTraffic) { tr.silent["stable"] = true },
			code: 1, verdict: "inconclusive", stage: "canary", phases: "validate canary-deploy canary-watch canary-rollback record",
			reason: "the canary was not judged: metric http-errors, the control's track: no look had data", canary: "error"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			m, w, tr := metricsCanary(t, tt.inputs)
			if tt.setup != nil {
				tt.setup(w, tr)
			}
			res := m.run()
			if res.code != tt.code || res.out["verdict"] != tt.verdict || res.out["stage"] != tt.stage || res.phases != tt.phases {
				t.Fatalf("exit %d, verdict %s, stage %s, phases %q\n%s", res.code, res.out["verdict"], res.out["stage"], res.phases, res.log)
			}
			if !strings.Contains(res.run.out.Reason, tt.reason) {
				t.Errorf("reason %q, want %q", res.run.out.Reason, tt.reason)
			}
			var st string
			for _, d := range m.gh.Deployments() {
				if d.Task == string(recorder.TaskCanary) {
					s := m.gh.DeploymentStatuses(d.ID)
					st = s[len(s)-1].State
				}
			}
			if st != tt.canary {
				t.Errorf("deploy:canary ended %q, want %q", st, tt.canary)
			}
			c := res.run.out.Canary
			if c == nil || c.Watch == nil || len(c.Watch.Metrics) != 1 || len(c.Control.Metrics) != 1 || c.Watch.Metrics[0].Requests == 0 && tt.verdict != "inconclusive" {
				t.Fatalf("the report's canary metrics: %+v", c)
			}
			if tt.name == "promoted early" && (!c.Early || c.Watch.End.Sub(c.Watch.Start) >= 10*time.Minute) {
				t.Errorf("not promoted early: %+v after %s", c.Early, c.Watch.End.Sub(c.Watch.Start))
			}
			// Both tracks are read during the canary; the whole fleet after.
			tr.mu.Lock()
			defer tr.mu.Unlock()
			seen := map[string]bool{}
			for _, q := range tr.queries {
				if m := trackLabel.FindStringSubmatch(q); m != nil {
					seen[m[1]] = true
				} else {
					t.Errorf("a query without a track: %s", q)
				}
			}
			if !seen["canary"] || !seen["stable"] || seen[""] {
				t.Errorf("tracks read: %v", seen)
			}
		})
	}
}

// An inconclusive canary is recorded as not judged (an error status that
// says so), which does not stop the line.
func TestCanaryMetricsInconclusiveRecord(t *testing.T) {
	t.Parallel()
	m, _, tr := metricsCanary(t, nil)
	tr.mu.Lock()
	tr.silent["stable"] = true
	tr.mu.Unlock()
	m.run()
	ds := m.gh.Deployments()
	last := ds[len(ds)-1]
	sts := m.gh.DeploymentStatuses(last.ID)
	if last.Task != string(recorder.TaskCanary) || !strings.HasPrefix(sts[len(sts)-1].Description, recorder.Inconclusive) {
		t.Errorf("newest deployment %s: %+v", last.Task, sts[len(sts)-1])
	}
}

// A canary that could not be judged tells no one that it regressed.
func TestCanaryInconclusiveTellsNothing(t *testing.T) {
	t.Parallel()
	var h heard
	m, _, tr := metricsCanary(t, map[string]string{"notify-secret": "k"})
	m.inputs["notify-webhook"] = h.serve(t)
	m.gh.AddPull(githubfake.PullRequest{Number: 12, Author: "monalisa", Merged: true, MergeCommitSHA: shaNew})
	tr.mu.Lock()
	tr.silent["stable"] = true
	tr.mu.Unlock()
	res := m.run()
	if res.out["verdict"] != "inconclusive" || res.out["stage"] != "canary" {
		t.Fatalf("verdict %s, stage %s\n%s", res.out["verdict"], res.out["stage"], res.log)
	}
	if got := h.kinds(); got != "" || len(m.gh.Comments(12)) != 0 || len(m.gh.Issues()) != 0 {
		t.Errorf("told: webhook %q, %d comments, %d issues", got, len(m.gh.Comments(12)), len(m.gh.Issues()))
	}
}
