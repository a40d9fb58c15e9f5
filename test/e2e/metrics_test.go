package e2e

// End-to-end tests of the metrics signal: the binary, run as the runner
// runs it, reading a real Prometheus (Debian's binary, one shared by the
// package's tests; see internal/testkit/promtest) that scrapes a real service
// instrumented with client_golang under real traffic. The deploy command
// switches the service's version through its admin endpoint, as a deploy
// script would.

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/immune-cd/immune/internal/testkit/promtest"
)

var prom promtest.Shared

// promService starts a service running shaGood under load, whose versions
// serve as scripted.
func promService(t *testing.T, perSecond int, script map[string]promtest.Behaviour, opt promtest.ServiceOptions) *promtest.Service {
	t.Helper()
	p := prom.Get(t)
	opt.Version = shaGood
	svc := p.NewService(t, opt)
	svc.Script(script)
	if perSecond > 0 {
		stop := svc.Load(perSecond)
		t.Cleanup(stop)
	}
	return svc
}

// rateMetric is a rate metric over the service's requests of ${SHA}.
func rateMetric(svc *promtest.Service, maxErrorRate string) string {
	m := fmt.Sprintf(`- name: http-errors
  errors: http_requests_total{svc="%s",version="${SHA}",code=~"5.."}
  total: http_requests_total{svc="%s",version="${SHA}"}
`, svc.ID, svc.ID)
	if maxErrorRate != "" {
		m += "  max-error-rate: " + maxErrorRate + "\n"
	}
	return m
}

// metricRun is the inputs of a deploy judged by metrics alone, against
// Prometheus at promURL.
func metricRun(svc *promtest.Service, promURL, metrics string, extra map[string]string) map[string]string {
	in := fast(svc.URL, map[string]string{
		"health-url":        "",
		"prometheus-url":    promURL,
		"metrics":           metrics,
		"interval":          "250ms",
		"timeout":           "250ms",
		"duration":          "6s",
		"startup-timeout":   "1500ms",
		"rollback-duration": "2s",
		"max-error-rate":    "1%",
	})
	for k, v := range extra {
		in[k] = v
	}
	return in
}

// reportMetrics returns the report's metrics of a watch ("watch",
// "rollback_watch").
func reportMetrics(t *testing.T, res result, watch string) []map[string]any {
	t.Helper()
	w, _ := res.report[watch].(map[string]any)
	ms, _ := w["metrics"].([]any)
	var out []map[string]any
	for _, m := range ms {
		out = append(out, m.(map[string]any))
	}
	if len(out) == 0 {
		t.Fatalf("the report's %s has no metrics: %v", watch, res.report[watch])
	}
	return out
}

// promProxy stands between the binary and Prometheus: it passes requests,
// or answers 503 while down; check, when set, may refuse a request first.
type promProxy struct {
	URL   string
	down  atomic.Bool
	check func(r *http.Request) bool
}

func newPromProxy(t *testing.T, target string) *promProxy {
	t.Helper()
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	pp := &promProxy{}
	rp := httputil.NewSingleHostReverseProxy(u)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if pp.check != nil && !pp.check(r) {
			http.Error(w, "unauthorized", http.StatusUnauthorized)
			return
		}
		if pp.down.Load() {
			io.Copy(io.Discard, r.Body)
			http.Error(w, "prometheus is down", http.StatusServiceUnavailable)
			return
		}
		rp.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	pp.URL = srv.URL
	return pp
}

// TestMetricsHealthyUnderRealTraffic: a healthy build (0.2% errors, 1%
// allowed) under 100 requests a second is judged healthy on its metrics
// alone, and every number the run shows adds up.
func TestMetricsHealthyUnderRealTraffic(t *testing.T) {
	t.Parallel()
	svc := promService(t, 100, map[string]promtest.Behaviour{shaNew: {ErrorShare: 0.002}}, promtest.ServiceOptions{})
	p := prom.Get(t)
	in := metricRun(svc, p.URL, rateMetric(svc, "")+fmt.Sprintf(`- name: p99
  query: histogram_quantile(0.99, sum by (le) (rate(http_request_duration_seconds_bucket{svc="%s",version="${SHA}"}[2s])))
  max: 0.1
`, svc.ID), nil)
	res := newActionRun(t, "push", in).exec()
	if res.code != 0 || res.outputs["verdict"] != "healthy" || svc.Version() != shaNew {
		t.Fatalf("exit %d, verdict %q, running %s\n%s", res.code, res.outputs["verdict"], svc.Version(), res.log)
	}
	ms := reportMetrics(t, res, "watch")
	// Zero is left out of the report.
	requests, _ := ms[0]["requests"].(float64)
	errs, _ := ms[0]["errors"].(float64)
	truth := svc.Truth(shaNew)
	if requests < 200 || requests > float64(truth.Requests) || errs > float64(truth.Errors) {
		t.Errorf("counted %v requests, %v errors; the service served %+v", requests, errs, truth)
	}
	for _, want := range []string{"metrics  http-errors +", "Verdict: healthy", "metric http-errors: "} {
		if !strings.Contains(res.log, want) {
			t.Errorf("the log lacks %q:\n%s", want, res.log)
		}
	}
	for _, want := range []string{"| `http-errors` (rate) |", "| `p99` (threshold) |", "http-errors: errors (%)", "p99: worst look"} {
		if !strings.Contains(res.summary, want) {
			t.Errorf("the summary lacks %q:\n%s", want, res.summary)
		}
	}
}

// TestMetricsRegressionRolledBack: a 5× error regression (5% against 1%
// allowed) is caught in the metrics and rolled back; the rollback's watch
// reads the previous build's metrics and confirms it.
func TestMetricsRegressionRolledBack(t *testing.T) {
	t.Parallel()
	svc := promService(t, 100, map[string]promtest.Behaviour{shaNew: {ErrorShare: 0.05}, shaGood: {ErrorShare: 0.001}}, promtest.ServiceOptions{})
	in := metricRun(svc, prom.Get(t).URL, rateMetric(svc, ""), nil)
	res := newActionRun(t, "push", in).exec()
	if res.code != 1 || res.outputs["verdict"] != "rolled-back" || svc.Version() != shaGood {
		t.Fatalf("exit %d, verdict %q, running %s\n%s", res.code, res.outputs["verdict"], svc.Version(), res.log)
	}
	if d := strings.Join(svc.Deploys(), ","); d != shaNew+","+shaGood {
		t.Errorf("deploys %s", d)
	}
	if !strings.Contains(res.log, "on metric http-errors, ") || res.outputs["detected-after"] == "" {
		t.Errorf("detected-after %q\n%s", res.outputs["detected-after"], res.log)
	}
	if w := reportMetrics(t, res, "watch")[0]; w["regressed"] != true {
		t.Errorf("watch metric %v", w)
	}
	if rw := reportMetrics(t, res, "rollback_watch")[0]; rw["regressed"] == true || rw["inconclusive"] != nil {
		t.Errorf("rollback watch metric %v", rw)
	}
	t.Logf("detected after %ss", res.outputs["detected-after"])
}

// TestMetricsLatencyRegression: a latency regression seen through a
// threshold query (the p99 of a histogram) is rolled back after its
// consecutive looks.
func TestMetricsLatencyRegression(t *testing.T) {
	t.Parallel()
	svc := promService(t, 100, map[string]promtest.Behaviour{shaNew: {Latency: 200 * time.Millisecond}, shaGood: {}}, promtest.ServiceOptions{})
	in := metricRun(svc, prom.Get(t).URL, fmt.Sprintf(`- name: p99
  query: histogram_quantile(0.99, sum by (le) (rate(http_request_duration_seconds_bucket{svc="%s",version="${SHA}"}[1s])))
  max: 0.1
  consecutive: 3
`, svc.ID), nil)
	res := newActionRun(t, "push", in).exec()
	if res.code != 1 || res.outputs["verdict"] != "rolled-back" || svc.Version() != shaGood {
		t.Fatalf("exit %d, verdict %q, running %s\n%s", res.code, res.outputs["verdict"], svc.Version(), res.log)
	}
	if !strings.Contains(res.log, "above its max of 0.1, in 3 looks in a row (consecutive: 3)") {
		t.Errorf("log:\n%s", res.log)
	}
}

// TestMetricsCounterReset: the service restarts mid-watch, its counters
// back at zero; the run counts from the restart on, notes the reset, and
// the healthy build stays healthy.
func TestMetricsCounterReset(t *testing.T) {
	t.Parallel()
	svc := promService(t, 100, map[string]promtest.Behaviour{shaNew: {ErrorShare: 0.002}}, promtest.ServiceOptions{})
	in := metricRun(svc, prom.Get(t).URL, rateMetric(svc, ""), nil)
	restart := time.AfterFunc(3*time.Second, svc.Restart)
	defer restart.Stop()
	res := newActionRun(t, "push", in).exec()
	if res.code != 0 || res.outputs["verdict"] != "healthy" {
		t.Fatalf("exit %d, verdict %q\n%s", res.code, res.outputs["verdict"], res.log)
	}
	resets := 0.0
	m := reportMetrics(t, res, "watch")[0]
	for _, l := range m["looks_kept"].([]any) {
		look := l.(map[string]any)
		if r, ok := look["counter_resets"].(float64); ok {
			resets += r
		}
		if look["errors"] != nil && look["requests"] != nil && look["errors"].(float64) > look["requests"].(float64) {
			t.Errorf("a look with more errors than requests: %v", look)
		}
	}
	truth := svc.Truth(shaNew)
	if resets < 1 || m["requests"].(float64) > float64(truth.Requests) || m["requests"].(float64) < 0.6*float64(truth.Requests) {
		t.Errorf("%v counter resets, %v requests counted of %d served\n%s", resets, m["requests"], truth.Requests, res.log)
	}
	if !strings.Contains(res.log, "counter reset") {
		t.Errorf("the log does not show the reset:\n%s", res.log)
	}
}

// TestMetricsNoData: an empty result and NaN are "no data", shown as such,
// never a failure: a ratio that is empty until the first error and a
// success rate that is NaN without traffic. Data that comes within the
// startup grace clears the build; NaN for the whole watch makes the run
// inconclusive: exit 1, nothing rolled back.
func TestMetricsNoData(t *testing.T) {
	t.Parallel()
	t.Run("empty, then data", func(t *testing.T) {
		t.Parallel()
		svc := promService(t, 100, map[string]promtest.Behaviour{shaNew: {ErrorShare: 0.01}}, promtest.ServiceOptions{LazySeries: true})
		ratio := fmt.Sprintf(`- name: error-ratio
  query: sum(rate(http_requests_total{svc="%s",version="${SHA}",code=~"5.."}[2s])) / sum(rate(http_requests_total{svc="%s",version="${SHA}"}[2s]))
  max: 0.2
`, svc.ID, svc.ID)
		in := metricRun(svc, prom.Get(t).URL, ratio, map[string]string{"startup-timeout": "3s"})
		res := newActionRun(t, "push", in).exec()
		if res.code != 0 || res.outputs["verdict"] != "healthy" {
			t.Fatalf("exit %d, verdict %q\n%s", res.code, res.outputs["verdict"], res.log)
		}
		m := reportMetrics(t, res, "watch")[0]
		noData, _ := m["no_data_looks"].(map[string]any)
		if noData["empty"] == nil || !strings.Contains(res.log, "error-ratio no data (empty)") {
			t.Errorf("no empty looks shown: %v\n%s", m["no_data_looks"], res.log)
		}
	})
	t.Run("NaN throughout", func(t *testing.T) {
		t.Parallel()
		svc := promService(t, 0, nil, promtest.ServiceOptions{})
		success := fmt.Sprintf(`- name: success-rate
  query: sum(rate(http_requests_total{svc="%s",code!~"5.."}[1s])) / sum(rate(http_requests_total{svc="%s"}[1s])) * 100
  min: 99
`, svc.ID, svc.ID)
		in := metricRun(svc, prom.Get(t).URL, success, map[string]string{"duration": "3s"})
		res := newActionRun(t, "push", in).exec()
		if res.code != 1 || res.outputs["verdict"] != "inconclusive" || res.outputs["rolled-back"] != "false" || svc.Version() != shaNew {
			t.Fatalf("exit %d, verdict %q, rolled back %s, running %s\n%s", res.code, res.outputs["verdict"], res.outputs["rolled-back"], svc.Version(), res.log)
		}
		if !strings.Contains(res.log, "success-rate no data (NaN)") || !strings.Contains(res.log, "metric success-rate: no look had data (the last: NaN)") {
			t.Errorf("log:\n%s", res.log)
		}
		if !strings.Contains(res.summary, "is inconclusive: not judged healthy, not seen to regress") {
			t.Errorf("summary:\n%s", res.summary)
		}
	})
}

// TestMetricsPrometheusDown: Prometheus unreachable for a part of the watch
// is retried and shown, and what it missed is counted when it is back;
// unreachable for all of it, the run is inconclusive, never healthy, and
// nothing is rolled back.
func TestMetricsPrometheusDown(t *testing.T) {
	t.Parallel()
	t.Run("for a part of the watch", func(t *testing.T) {
		t.Parallel()
		svc := promService(t, 100, map[string]promtest.Behaviour{shaNew: {ErrorShare: 0.002}}, promtest.ServiceOptions{})
		px := newPromProxy(t, prom.Get(t).URL)
		in := metricRun(svc, px.URL, rateMetric(svc, ""), nil)
		down := time.AfterFunc(2*time.Second, func() { px.down.Store(true) })
		up := time.AfterFunc(3500*time.Millisecond, func() { px.down.Store(false) })
		defer down.Stop()
		defer up.Stop()
		res := newActionRun(t, "push", in).exec()
		if res.code != 0 || res.outputs["verdict"] != "healthy" {
			t.Fatalf("exit %d, verdict %q\n%s", res.code, res.outputs["verdict"], res.log)
		}
		m := reportMetrics(t, res, "watch")[0]
		noData, _ := m["no_data_looks"].(map[string]any)
		if noData["unreachable"] == nil || !strings.Contains(res.log, "http-errors no data (unreachable") {
			t.Errorf("the outage is not shown: %v\n%s", m["no_data_looks"], res.log)
		}
		// The looks after the outage counted what it missed.
		if truth := svc.Truth(shaNew); m["requests"].(float64) < 0.6*float64(truth.Requests) {
			t.Errorf("%v requests counted of %d served", m["requests"], truth.Requests)
		}
	})
	t.Run("for all of it", func(t *testing.T) {
		t.Parallel()
		svc := promService(t, 100, map[string]promtest.Behaviour{shaNew: {ErrorShare: 0.05}}, promtest.ServiceOptions{})
		px := newPromProxy(t, prom.Get(t).URL)
		px.down.Store(true)
		in := metricRun(svc, px.URL, rateMetric(svc, ""), map[string]string{"duration": "3s"})
		run := newActionRun(t, "push", in)
		res := run.exec()
		if res.code != 1 || res.outputs["verdict"] != "inconclusive" || res.outputs["rolled-back"] != "false" || svc.Version() != shaNew {
			t.Fatalf("exit %d, verdict %q, rolled back %s, running %s\n%s", res.code, res.outputs["verdict"], res.outputs["rolled-back"], svc.Version(), res.log)
		}
		for _, want := range []string{"Prometheus unreachable", "metric http-errors: no look had data (the last: unreachable", "the build was not judged healthy"} {
			if !strings.Contains(res.log, want) {
				t.Errorf("the log lacks %q:\n%s", want, res.log)
			}
		}
		// Not remembered as a good build to roll back to.
		state, err := os.ReadFile(filepath.Join(run.workspace, ".immune", "state.json"))
		if err != nil || !strings.Contains(string(state), `"inconclusive"`) || strings.Contains(string(state), `"healthy"`) {
			t.Errorf("state file (%v):\n%s", err, state)
		}
	})
}

// TestMetricsHeadersMasked: prometheus-headers reach Prometheus (through a
// proxy that refuses requests without them) and their values never appear
// in the log (but in ::add-mask::), the summary, the report or the
// outputs.
func TestMetricsHeadersMasked(t *testing.T) {
	t.Parallel()
	const token = "glc_eyJrIjoiNmU5ZjQ2ZTc0Y2Q5"
	svc := promService(t, 100, map[string]promtest.Behaviour{shaNew: {ErrorShare: 0.002}}, promtest.ServiceOptions{})
	px := newPromProxy(t, prom.Get(t).URL)
	px.check = func(r *http.Request) bool {
		return r.Header.Get("Authorization") == "Bearer "+token && r.Header.Get("X-Scope-OrgID") == "tenant-blue"
	}
	in := metricRun(svc, px.URL, rateMetric(svc, ""), map[string]string{
		"prometheus-headers": "Authorization: Bearer " + token + "\nX-Scope-OrgID: tenant-blue",
		"duration":           "3s",
	})
	run := newActionRun(t, "push", in)
	res := run.exec()
	if res.code != 0 || res.outputs["verdict"] != "healthy" {
		t.Fatalf("exit %d, verdict %q (the headers must reach Prometheus)\n%s", res.code, res.outputs["verdict"], res.log)
	}
	masks := map[string]bool{}
	for _, line := range strings.Split(res.log, "\n") {
		if v, ok := strings.CutPrefix(line, "::add-mask::"); ok {
			masks[v] = true
			continue
		}
		if strings.Contains(line, token) || strings.Contains(line, "tenant-blue") {
			t.Errorf("a header value is logged: %q", line)
		}
	}
	for _, v := range []string{token, "Bearer " + token, "tenant-blue"} {
		if !masks[v] {
			t.Errorf("%q is not masked; masks: %v", v, masks)
		}
	}
	report, _ := json.Marshal(res.report)
	outputs, _ := os.ReadFile(run.env["GITHUB_OUTPUT"])
	for name, text := range map[string]string{"summary": res.summary, "report": string(report), "outputs": string(outputs)} {
		if strings.Contains(text, token) || strings.Contains(text, "tenant-blue") {
			t.Errorf("the %s holds a header value", name)
		}
	}
}

// TestMetricsRejectedQuery: a query Prometheus rejects stops the run
// before anything is deployed, naming the metric (exit 2).
func TestMetricsRejectedQuery(t *testing.T) {
	t.Parallel()
	svc := promService(t, 0, nil, promtest.ServiceOptions{})
	in := metricRun(svc, prom.Get(t).URL, "- name: broken\n  query: sum(rate(http_requests_total[1s]) by\n  max: 1\n", nil)
	res := newActionRun(t, "push", in).exec()
	if res.code != 2 || !strings.Contains(res.log, `input metrics: Prometheus at `) || !strings.Contains(res.log, `metric %22broken%22`) && !strings.Contains(res.log, `metric "broken"`) {
		t.Fatalf("exit %d\n%s", res.code, res.log)
	}
	if len(svc.Deploys()) > 0 {
		t.Errorf("deployed %v", svc.Deploys())
	}
}

// TestMetricsFlags: the CLI's flags carry the metric inputs' names.
func TestMetricsFlags(t *testing.T) {
	t.Parallel()
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"watch", "--sha=abc1234", "--metrics=- name: latency\n  query: up"}, `immune: --metrics: entry 1 ("latency"): needs max or min`},
		{[]string{"watch", "--sha=abc1234", "--metrics=- name: e\n  errors: x{code=\"500\"}\n  total: x"}, "immune: --prometheus-url: required with metrics"},
		{[]string{"watch", "--metrics=- name: e\n  errors: x{v=\"${SHA}\",code=\"500\"}\n  total: x{v=\"${SHA}\"}", "--prometheus-url=http://127.0.0.1:9"}, `immune: --sha: metric "e" reads ${SHA}: pass --sha`},
		{[]string{"watch", "--sha=abc1234", "--health-url=http://127.0.0.1:9/h", "--prometheus-headers=X-Scope-OrgID: t1"}, "immune: --prometheus-headers: set without --prometheus-url"},
	}
	for _, tt := range tests {
		code, out := cliRun(t, t.TempDir(), tt.args...)
		if code != 2 || !strings.Contains(out, tt.want) {
			t.Errorf("%q: exit %d, want 2 with %q\n%s", tt.args, code, tt.want, out)
		}
	}
}
