package main

import (
	"path/filepath"
	"strings"
	"testing"
)

// TestMetricsInputs: the metric inputs as the runner passes them. Their
// secrets are masked before anything else is logged; a valid configuration
// is refused (exit 2, nothing deployed) until the watch judges metrics, so
// that no build passes unjudged.
func TestMetricsInputs(t *testing.T) {
	t.Parallel()
	const token = "glc_eyJrIjoiNmU5ZjQ2ZTc0Y2Q5"
	svc, url := service(t, nil, shaGood)
	marker := filepath.Join(t.TempDir(), "deployed")
	in := fast(url, map[string]string{
		"deploy-command":     "touch " + marker + "; " + deployVia(url),
		"health-url":         "",
		"prometheus-url":     "http://127.0.0.1:9",
		"prometheus-headers": "Authorization: Bearer " + token + "\nX-Scope-OrgID: tenant-blue",
		"metrics": `- name: http-errors
  errors: http_requests_total{job="shop",version="${SHA}",code=~"5.."}
  total: http_requests_total{job="shop",version="${SHA}"}
- name: p99
  query: histogram_quantile(0.99, sum by (le) (rate(http_request_duration_seconds_bucket{version="${SHA}"}[1m])))
  max: 0.3
`,
	})
	res := newActionRun(t, "push", in).exec()
	if res.code != 2 || !strings.Contains(res.log, "input metrics: this version validates metrics but does not judge them yet") {
		t.Fatalf("exit %d, want 2 and the metrics refused:\n%s", res.code, res.log)
	}
	lines := strings.Split(res.log, "\n")
	masks := map[string]bool{}
	for _, line := range lines {
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
		{[]string{"watch", "--sha=abc1234", "--metrics=- name: latency\n  query: up"}, `immune: input metrics: entry 1 ("latency"): needs max or min`},
		{[]string{"watch", "--sha=abc1234", "--metrics=- name: e\n  errors: x{code=\"500\"}\n  total: x"}, "immune: input prometheus-url: required with metrics"},
		{[]string{"watch", "--sha=abc1234", "--prometheus-url=http://127.0.0.1:9", "--metrics=- name: e\n  errors: x{code=\"500\"}\n  total: x", "--min-requests=50"}, "immune: input metrics: this version validates metrics but does not judge them yet"},
		{[]string{"watch", "--sha=abc1234", "--health-url=http://127.0.0.1:9/h", "--prometheus-headers=X-Scope-OrgID: t1"}, "immune: input prometheus-headers: set without prometheus-url"},
	}
	for _, tt := range tests {
		code, out := cliRun(t, t.TempDir(), tt.args...)
		if code != 2 || !strings.Contains(out, tt.want) {
			t.Errorf("%q: exit %d, want 2 with %q\n%s", tt.args, code, tt.want, out)
		}
	}
}
