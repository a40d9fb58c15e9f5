package config

import (
	"errors"
	"fmt"
	"github.com/immune-cd/immune/internal/run"
	"strings"
	"testing"
)

const goodMetrics = `
- name: http-errors
  errors: http_requests_total{job="shop",version="${SHA}",code=~"5.."}
  total: http_requests_total{job="shop",version="${SHA}"}
- name: checkout errors
  errors: 'checkout_failures_total{env="${ENVIRONMENT}"}'
  total: checkout_attempts_total{env="${ENVIRONMENT}"}
  max-error-rate: 0.5%
- name: p99-latency
  query: histogram_quantile(0.99, sum by (le) (rate(http_request_duration_seconds_bucket{version="${SHA}"}[1m])))
  max: 0.3
- name: throughput
  query: sum(rate(http_requests_total{version="${SHA}"}[1m]))
  min: 1
  max: 1e4
  consecutive: 5
`

func TestParseMetrics(t *testing.T) {
	t.Parallel()
	got, errs := ParseMetrics(goodMetrics, 0.05)
	if len(errs) > 0 {
		t.Fatal(errors.Join(errs...))
	}
	f := func(v float64) *float64 { return &v }
	want := []Metric{
		{Name: "http-errors", Kind: MetricRate, Errors: `http_requests_total{job="shop",version="${SHA}",code=~"5.."}`, Total: `http_requests_total{job="shop",version="${SHA}"}`, MaxErrorRate: 0.05},
		{Name: "checkout errors", Kind: MetricRate, Errors: `checkout_failures_total{env="${ENVIRONMENT}"}`, Total: `checkout_attempts_total{env="${ENVIRONMENT}"}`, MaxErrorRate: 0.005},
		{Name: "p99-latency", Kind: MetricThreshold, Query: `histogram_quantile(0.99, sum by (le) (rate(http_request_duration_seconds_bucket{version="${SHA}"}[1m])))`, Max: f(0.3), Consecutive: 3},
		{Name: "throughput", Kind: MetricThreshold, Query: `sum(rate(http_requests_total{version="${SHA}"}[1m]))`, Min: f(1), Max: f(1e4), Consecutive: 5},
	}
	if show(got) != show(want) {
		t.Errorf("ParseMetrics() =\n%s\nwant\n%s", show(got), show(want))
	}
}

// show prints metrics with their bounds' values rather than pointers.
func show(ms []Metric) string {
	var b strings.Builder
	for _, m := range ms {
		bound := func(p *float64) string {
			if p == nil {
				return "-"
			}
			return fmt.Sprint(*p)
		}
		fmt.Fprintf(&b, "%s|%s|%s|%s|%v|%s|%s|%s|%d\n", m.Name, m.Kind, m.Errors, m.Total, m.MaxErrorRate, m.Query, bound(m.Max), bound(m.Min), m.Consecutive)
	}
	return b.String()
}

// manyMetrics is a metrics input of n threshold metrics.
func manyMetrics(n int) string {
	var b strings.Builder
	for i := range n {
		fmt.Fprintf(&b, "- name: m%d\n  query: up\n  max: 1\n", i)
	}
	return b.String()
}

func TestParseMetricsErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		yaml string
		want []string // each error, in order
	}{
		{"- name: x\n  query: up\n  max: [1", []string{"not valid YAML: line 2: did not find expected ',' or ']'"}},
		{"name: x\nquery: up", []string{"expected a YAML list of entries"}},
		{"- just a string", []string{"entry 1: expected a mapping with name and either errors and total, or query"}},
		{"- query: up\n  max: 1", []string{"entry 1: needs a name"}},
		{"- name: 'bad/name'\n  query: up\n  max: 1", []string{`entry 1: name "bad/name": expected 1 to 63 letters`}},
		{"- name: latency\n  query: up", []string{`entry 1 ("latency"): needs max or min`}},
		{"- name: a\n  query: up\n  max: 1\n- name: latency\n  query: x", []string{`entry 2 ("latency"): needs max or min`}},
		{"- name: x\n  query: up\n  treshold: 1\n  max: 1", []string{`entry 1 ("x"): unknown key "treshold"; an entry's keys are name, errors, total, max-error-rate, query, max, min, consecutive`}},
		{"- name: x\n  query: up\n  max: 1\n  max: 2", []string{`entry 1 ("x"): max is given twice`}},
		{"- name: x\n  query: up\n  max: [1]", []string{`entry 1 ("x"): max: expected a single value`, `needs max or min`}},
		{"- name: x\n  query: up\n  max: 300ms", []string{`entry 1 ("x"): max: got "300ms": expected a number in the query's unit`}},
		{"- name: x\n  query: up\n  max: .nan", []string{`max: got ".nan": expected a number`}},
		{"- name: x\n  query: up\n  max: 1\n  min: 2", []string{`entry 1 ("x"): min (2) is not below max (1)`}},
		{"- name: x\n  query: up\n  max: 1\n  consecutive: 0", []string{`entry 1 ("x"): consecutive: got "0": expected a whole number of at least 1`}},
		{"- name: x\n  query: up\n  max: 1\n  max-error-rate: 1%", []string{`entry 1 ("x"): max-error-rate applies to rate metrics`}},
		{"- name: x\n  errors: a\n  total: b\n  query: c\n  max: 1", []string{`entry 1 ("x"): has both query and errors/total`}},
		{"- name: x\n  errors: a", []string{`entry 1 ("x"): needs total: a rate metric counts errors out of total requests`}},
		{"- name: x", []string{`entry 1 ("x"): needs errors and total (a rate metric) or query (a threshold metric)`}},
		{"- name: x\n  errors: rate(a[1m])\n  total: sum(b)", []string{`entry 1 ("x"): errors: expected the end of the selector at offset 4`, `entry 1 ("x"): total: expected the end of the selector at offset 3`}},
		{"- name: x\n  errors: a\n  total: b\n  max: 1\n  consecutive: 2", []string{"max applies to query metrics; a rate metric's limit is max-error-rate", "consecutive applies to query metrics"}},
		{"- name: x\n  errors: a\n  total: b\n  max-error-rate: 5", []string{`entry 1 ("x"): max-error-rate: "5" is not a percentage like 5% or a fraction like 0.05`}},
		{"- name: x\n  errors: a\n  total: b\n  max-error-rate: 0%", []string{`max-error-rate: got "0%": expected a rate above 0% and below 100%`}},
		{"- name: x\n  errors: 'a{v=\"${sha}\"}'\n  total: b", []string{`entry 1 ("x"): errors: unknown placeholder ${sha}; placeholders are ${SHA}`}},
		{"- name: x\n  query: 'up{v=${SHA}}'\n  max: 1", []string{`query: ${SHA} must be inside a quoted label value`}},
		{"- name: x\n  query: up\n  max: 1\n- name: X\n  query: up\n  min: 1", []string{`entry 2 ("X"): has the same name as entry 1`}},
		{"- name: a\n  query: up\n- name: b\n  errors: x", []string{`entry 1 ("a"): needs max or min`, `entry 2 ("b"): needs total`}},
		{manyMetrics(MaxMetrics + 1), []string{"21 entries; at most 20 metrics are read (each at every look, all at once)"}},
		{manyMetrics(2000), []string{"2000 entries; at most 20 metrics"}},
		{"- name: x\n  query: up + " + strings.Repeat("up + ", 2000) + "up\n  max: 1", []string{`entry 1 ("x"): query: 10007 bytes; at most 8192`}},
		{"- name: x\n  errors: x{a=\"" + strings.Repeat("a", 9000) + "\"}\n  total: x", []string{`entry 1 ("x"): errors: 9007 bytes; at most 8192`}},
	}
	for _, tt := range tests {
		ms, errs := ParseMetrics(tt.yaml, 0.05)
		if ms != nil {
			t.Errorf("ParseMetrics(%q) returned metrics with errors", tt.yaml)
		}
		got := errors.Join(errs...)
		if len(errs) != len(tt.want) {
			t.Errorf("ParseMetrics(%q) = %d errors, want %d:\n%v", tt.yaml, len(errs), len(tt.want), got)
			continue
		}
		for i, w := range tt.want {
			if !strings.Contains(errs[i].Error(), w) {
				t.Errorf("ParseMetrics(%q) error %d = %q\nwant it to contain %q", tt.yaml, i+1, errs[i], w)
			}
		}
	}
}

func TestParseMetricsAliases(t *testing.T) {
	t.Parallel()
	ms, errs := ParseMetrics("- &e\n  name: a\n  query: up\n  max: 1\n- name: b\n  query: *q\n  max: 1\n", 0.05)
	if len(errs) == 0 || ms != nil {
		t.Errorf("an unknown alias parsed: %v", ms)
	}
	ms, errs = ParseMetrics("- name: a\n  query: &q up{job=\"x\"}\n  max: 1\n- name: b\n  query: *q\n  min: 1\n", 0.05)
	if len(errs) > 0 || len(ms) != 2 || ms[1].Query != `up{job="x"}` {
		t.Errorf("aliases: %v %v", ms, errs)
	}
}

// FuzzParseMetrics: whatever the YAML, the parser does not panic, and what
// it accepts is complete and consistent.
func FuzzParseMetrics(f *testing.F) {
	for _, s := range []string{goodMetrics, "- name: x\n  query: up\n  max: 1", "[]", "- {name: a, errors: b, total: c}", "- &a {name: a, query: up, min: 0}\n- *a", "-", ": :", "- name: x\n  max: .inf"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ms, errs := ParseMetrics(s, 0.05)
		if len(errs) > 0 {
			if ms != nil {
				t.Fatalf("metrics and errors from %q", s)
			}
			for _, err := range errs {
				if err.Error() == "" {
					t.Fatalf("an empty error from %q", s)
				}
			}
			return
		}
		seen := map[string]bool{}
		for _, m := range ms {
			if !metricName.MatchString(m.Name) || seen[strings.ToLower(m.Name)] {
				t.Fatalf("bad or duplicate name %q from %q", m.Name, s)
			}
			seen[strings.ToLower(m.Name)] = true
			switch m.Kind {
			case MetricRate:
				if m.Errors == "" || m.Total == "" || m.Query != "" || m.Max != nil || m.Min != nil || m.MaxErrorRate <= 0 || m.MaxErrorRate >= 1 {
					t.Fatalf("inconsistent rate metric %+v from %q", m, s)
				}
			case MetricThreshold:
				if m.Query == "" || m.Errors != "" || m.Total != "" || (m.Max == nil && m.Min == nil) || m.Consecutive < 1 {
					t.Fatalf("inconsistent threshold metric %+v from %q", m, s)
				}
				if m.Max != nil && m.Min != nil && *m.Min >= *m.Max {
					t.Fatalf("min %v ≥ max %v from %q", *m.Min, *m.Max, s)
				}
			default:
				t.Fatalf("metric without a kind %+v from %q", m, s)
			}
		}
	})
}

func TestParseWithMetrics(t *testing.T) {
	t.Parallel()
	metrics := "- name: errors\n  errors: x{code=\"500\"}\n  total: x\n"
	tests := []struct {
		name string
		in   map[string]string
		err  string
		warn string
	}{
		{name: "metrics without health-url", in: map[string]string{"mode": "deploy", "deploy-command": "x", "prometheus-url": "http://prometheus:9090", "metrics": metrics}},
		{name: "both signals", in: map[string]string{"mode": "deploy", "deploy-command": "x", "health-url": "http://a/h", "prometheus-url": "http://prometheus:9090", "metrics": metrics}},
		{name: "watch mode", in: map[string]string{"mode": "watch", "prometheus-url": "https://mimir.example.com/prometheus", "metrics": metrics, "prometheus-headers": "Authorization: Bearer abc\nX-Scope-OrgID: blue"}},
		{name: "no signal", in: map[string]string{"mode": "deploy", "deploy-command": "x"}, err: "input health-url: deploy mode needs a signal to watch: set health-url, metrics, or both"},
		{name: "metrics need a URL", in: map[string]string{"mode": "watch", "metrics": metrics}, err: "input prometheus-url: required with metrics"},
		{name: "a URL needs metrics", in: map[string]string{"mode": "watch", "health-url": "http://a/h", "prometheus-url": "http://p:9090"}, err: "input prometheus-url: set, but metrics lists nothing to read"},
		{name: "headers need a URL", in: map[string]string{"mode": "watch", "health-url": "http://a/h", "prometheus-headers": "A: b"}, err: "input prometheus-headers: set without prometheus-url"},
		{name: "URL with /api/v1", in: map[string]string{"mode": "watch", "metrics": metrics, "prometheus-url": "http://p:9090/api/v1/"}, err: `input prometheus-url: "http://p:9090/api/v1/": expected the server's base URL, without /api/v1`},
		{name: "URL with credentials", in: map[string]string{"mode": "watch", "metrics": metrics, "prometheus-url": "http://u:pw@p:9090"}, err: "carries credentials in the URL; pass them in headers"},
		{name: "two URLs", in: map[string]string{"mode": "watch", "metrics": metrics, "prometheus-url": "http://p:9090,http://q:9090"}, err: "input prometheus-url: expected one URL"},
		{name: "content type", in: map[string]string{"mode": "watch", "metrics": metrics, "prometheus-url": "http://p:9090", "prometheus-headers": "Content-Type: text/plain"}, err: "input prometheus-headers: header Content-Type cannot be set"},
		{name: "bad header", in: map[string]string{"mode": "watch", "metrics": metrics, "prometheus-url": "http://p:9090", "prometheus-headers": "Authorization Bearer x"}, err: `input prometheus-headers: line 1 is not of the form "Name: value"`},
		{name: "bad entry", in: map[string]string{"mode": "watch", "prometheus-url": "http://p:9090", "metrics": "- name: latency\n  query: up"}, err: `input metrics: entry 1 ("latency"): needs max or min`},
		{name: "bad entry is not also a missing signal", in: map[string]string{"mode": "watch", "prometheus-url": "http://p:9090", "metrics": "- name: latency\n  query: up"}, err: `input metrics`},
		{name: "min-requests", in: map[string]string{"mode": "watch", "health-url": "http://a/h", "min-requests": "0"}, err: `input min-requests: got "0": expected a whole number of at least 1`},
		{name: "min-requests without a rate metric", in: map[string]string{"mode": "watch", "prometheus-url": "http://p:9090", "metrics": "- name: l\n  query: up\n  max: 1", "min-requests": "50"}, warn: "input min-requests is set but no metric is a rate metric"},
		{name: "watch mode has no previous SHA", in: map[string]string{"mode": "watch", "prometheus-url": "http://p:9090",
			"metrics": "- name: e\n  query: x{v=\"${PREVIOUS_SHA}\"}\n  max: 1"}, err: `input metrics: metric "e" reads ${PREVIOUS_SHA}, which watch mode has no value for`},
		{name: "a baseline of one look", in: map[string]string{"mode": "deploy", "deploy-command": "x", "prometheus-url": "http://p:9090", "metrics": metrics,
			"baseline-duration": "5s"}, err: "input baseline-duration: 5s is less than two intervals (10s)"},
		{name: "a baseline of two looks", in: map[string]string{"mode": "deploy", "deploy-command": "x", "prometheus-url": "http://p:9090", "metrics": metrics,
			"baseline-duration": "10s"}},
		{name: "gate mode ignores metrics", in: map[string]string{"mode": "gate", "github-token": "t", "metrics": metrics}, warn: "input metrics is set but not used in gate mode"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, err := Parse(inputs(tt.in), env)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("Parse() error = %v, want %q", err, tt.err)
				}
				if strings.Contains(err.Error(), "needs a signal") && !strings.Contains(tt.err, "needs a signal") {
					t.Errorf("error also claims a missing signal: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := strings.Join(c.Warnings, "\n"); tt.warn != "" && !strings.Contains(got, tt.warn) || tt.warn == "" && got != "" {
				t.Errorf("warnings = %q, want %q", got, tt.warn)
			}
			if tt.in["metrics"] != "" && c.Mode != run.ModeGate && (len(c.Metrics) == 0 || c.MinRequests < 1) {
				t.Errorf("metrics = %+v, min-requests = %d", c.Metrics, c.MinRequests)
			}
		})
	}
}

// TestParseMetricsNeedSHA: a watch without a commit (the CLI without --sha)
// cannot fill in ${SHA}.
func TestParseMetricsNeedSHA(t *testing.T) {
	t.Parallel()
	in := map[string]string{"mode": "watch", "prometheus-url": "http://p:9090",
		"metrics": "- name: e\n  errors: x{v=\"${SHA}\",code=\"500\"}\n  total: x{v=\"${SHA}\"}"}
	_, err := Parse(inputs(in), Env{Workspace: "/work"})
	if err == nil || !strings.Contains(err.Error(), `input sha: metric "e" reads ${SHA}: set sha`) {
		t.Errorf("Parse() error = %v", err)
	}
	in["metrics"] = "- name: e\n  errors: x{code=\"500\"}\n  total: x"
	if _, err := Parse(inputs(in), Env{Workspace: "/work"}); err != nil {
		t.Errorf("metrics without ${SHA}: %v", err)
	}
}

func TestParseMetricsDefaults(t *testing.T) {
	t.Parallel()
	in := map[string]string{"mode": "watch", "prometheus-url": "http://p:9090", "max-error-rate": "2%",
		"metrics": "- name: errors\n  errors: x{code=\"500\"}\n  total: x\n"}
	c, err := Parse(inputs(in), env)
	if err != nil {
		t.Fatal(err)
	}
	if c.MinRequests != 20 || c.Metrics[0].MaxErrorRate != 0.02 || c.PrometheusURL != "http://p:9090" {
		t.Errorf("min-requests = %d, max-error-rate = %v, url = %q", c.MinRequests, c.Metrics[0].MaxErrorRate, c.PrometheusURL)
	}
}

func TestSecretValues(t *testing.T) {
	t.Parallel()
	in := map[string]string{
		"github-token":       "ghs_abc",
		"headers":            "X-Key: k1\n\nAuthorization: Bearer k2",
		"prometheus-headers": "Authorization: Bearer p1\nX-Scope-OrgID: tenant-9",
		"health-url":         "http://a/h",
	}
	got := strings.Join(SecretValues(inputs(in)), "|")
	if want := "ghs_abc|k1|Bearer k2|k2|Bearer p1|p1|tenant-9"; got != want {
		t.Errorf("SecretValues() = %q, want %q", got, want)
	}
}
