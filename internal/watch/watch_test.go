package watch

import (
	"strings"
	"testing"
	"time"

	"github.com/immune-cd/immune/internal/config"
	"github.com/immune-cd/immune/internal/run"
	"github.com/immune-cd/immune/internal/verdict"
)

// TestSignals: the probes count as one signal, each rate metric as one,
// threshold metrics not at all.
func TestSignals(t *testing.T) {
	t.Parallel()
	inputs := map[string]string{
		"environment":    "production",
		"deploy-command": "true", "rollback-command": "true",
		"health-url":     "https://shop.example.com/healthz\nhttps://eu.shop.example.com/healthz",
		"prometheus-url": "http://127.0.0.1:9090",
		"metrics": `- name: http-errors
  errors: http_requests_total{code=~"5.."}
  total: http_requests_total
- name: p99
  query: latency_p99
  max: 0.3
- name: checkout
  errors: c{code="500"}
  total: c
`,
	}
	cfg, err := config.Parse(func(name string) string { return inputs[name] }, config.Env{EventName: "push", SHA: "4d8b3f2e1c0a9b8c7d6e5f4a3b2c1d0e9f8a7b6c", Workspace: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	w := New(cfg, Deps{})
	if got := w.countSignals(cfg.HealthURLs); got != 3 {
		t.Errorf("signals = %d, want 3 (the probes and two rate metrics)", got)
	}
	if l := w.limits(time.Minute); l.Signals != 3 || l.Targets != 2 {
		t.Errorf("limits %+v", l)
	}
}

// TestWorst: the worst outcome decides; outcomes that cannot clear the
// build make the watch inconclusive together; healthy ones say why.
func TestWorst(t *testing.T) {
	t.Parallel()
	ev := &verdict.Evidence{Judged: 60}
	probes := Outcome{Signal: SignalProbes, Verdict: run.Healthy, Rule: "error-rate", Reason: "0 of 60 probes failed", Evidence: ev}
	metric := Outcome{Signal: SignalMetrics, Verdict: run.Healthy, Reason: "metric m: 0 of 900 requests failed"}
	noData := Outcome{Signal: SignalMetrics, Verdict: run.Inconclusive, Why: "metric m: no look had data"}
	few := Outcome{Signal: SignalMetrics, Verdict: run.Inconclusive, Why: "metric n: 4 requests"}
	bad := Outcome{Signal: SignalMetrics, Verdict: run.Regressed, Reason: "metric m: 90 of 900 failed", Why: "metric m: 90 of 900 requests failed", Detected: true}
	startup := Outcome{Signal: SignalStartup, Verdict: run.Regressed, Reason: "no healthy answer", Why: "no healthy answer within the startup timeout"}
	cancelled := Outcome{Signal: SignalWatch, Verdict: run.Cancelled, Reason: "the watch was cancelled"}
	tests := []struct {
		name    string
		subject string
		outs    []Outcome
		want    Outcome
	}{
		{"nothing to judge", "", nil, Outcome{Signal: SignalWatch, Verdict: run.Healthy}},
		{"all healthy", "", []Outcome{probes, metric},
			Outcome{Signal: SignalProbes, Verdict: run.Healthy, Rule: "error-rate", Evidence: ev, Reason: "0 of 60 probes failed; metric m: 0 of 900 requests failed"}},
		{"metrics alone", "", []Outcome{metric}, Outcome{Signal: SignalWatch, Verdict: run.Healthy, Reason: "metric m: 0 of 900 requests failed"}},
		{"inconclusive with passing probes", "", []Outcome{probes, noData, metric, few},
			Outcome{Signal: SignalWatch, Verdict: run.Inconclusive, Rule: "inconclusive", Why: "metric m: no look had data", Evidence: ev,
				Reason: "not judged: metric m: no look had data; metric n: 4 requests; the health probes passed: 0 of 60 probes failed"}},
		{"the canary's inconclusive", "the canary", []Outcome{noData},
			Outcome{Signal: SignalWatch, Verdict: run.Inconclusive, Rule: "inconclusive", Why: "metric m: no look had data",
				Reason: "the canary was not judged: metric m: no look had data"}},
		{"a regression beats inconclusive", "", []Outcome{probes, noData, bad}, bad},
		{"the first regression", "", []Outcome{startup, bad}, startup},
		{"a cancel beats all", "", []Outcome{bad, cancelled}, cancelled},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Worst(tt.subject, tt.outs...)
			if got != tt.want {
				t.Errorf("Worst =\n%+v\nwant\n%+v", got, tt.want)
			}
		})
	}
}

func TestWarnLoopbackInAContainerAction(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		workspace, url string
		warns          bool
	}{
		{"/github/workspace", "http://localhost:8080/healthz", true},
		{"/github/workspace", "http://127.0.0.1:8080/healthz", true},
		{"/github/workspace", "http://[::1]:8080/healthz", true},
		{"/github/workspace", "http://shop:8080/healthz", false},
		{"/home/runner/work/shop", "http://localhost:8080/healthz", false}, // the CLI, or a JavaScript runner
	} {
		log := &warnings{}
		New(&config.Config{Workspace: tt.workspace, HealthURLs: []string{tt.url}}, Deps{Log: log}).WarnLoopback()
		if warned := len(log.warned) == 1 && strings.Contains(log.warned[0], "points at this container itself"); warned != tt.warns {
			t.Errorf("%s in %s: warned %v, want %v: %q", tt.url, tt.workspace, warned, tt.warns, log.warned)
		}
	}
}

// warnings is a Log that keeps the warnings.
type warnings struct{ warned []string }

func (w *warnings) Printf(string, ...any)  {}
func (w *warnings) Error(string, string)   {}
func (w *warnings) Note(string)            {}
func (w *warnings) Warn(title, msg string) { w.warned = append(w.warned, title+": "+msg) }
