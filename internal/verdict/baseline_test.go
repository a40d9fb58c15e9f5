package verdict

import (
	"strings"
	"testing"
	"time"
)

// every returns n probes of target, failing every k-th (k = 0: none), with
// the given latency.
func every(target string, n, k int, latency time.Duration) []Observation {
	obs := make([]Observation, n)
	for i := range obs {
		obs[i] = Probe(target, k > 0 && (i+1)%k == 0, latency)
	}
	return obs
}

// baselineOf is the baseline of obs, judged against l for a watch of
// their length.
func baselineOf(l Limits, obs []Observation) *Baseline {
	l.Horizon = len(obs)
	b := NewBaseline(l)
	for _, o := range obs {
		b.Observe(o)
	}
	return b
}

func TestBaseline(t *testing.T) {
	// Production: 60 probes, 1 failure (2% rounded), 40ms.
	l := limits(nil)
	prod := baselineOf(l, every(urlA, 60, 50, 40*time.Millisecond))
	if prod.Probes() != 60 || prod.Failures() != 1 || prod.Latency(95) != 40*time.Millisecond {
		t.Fatalf("baseline summary: %d probes, %d failures, p95 %v", prod.Probes(), prod.Failures(), prod.Latency(95))
	}
	if bad, why := prod.Unhealthy(); bad {
		t.Fatalf("healthy production reported unhealthy: %s", why)
	}

	for _, tc := range []struct {
		name    string
		obs     []Observation
		outcome Outcome
		rule    string
		reason  string
	}{
		{
			name:    "2% to 2%",
			obs:     every(urlA, 300, 50, 40*time.Millisecond),
			outcome: Healthy,
			reason:  "6 of 300 probes failed (2%), against 1 of 60 (1.7%) in production, within the allowed 5 points more; p95 latency 40ms, against 40ms in production (allowed 60ms)",
		},
		{
			// 2% → 10%: 8 points worse where 5 are allowed. With only 60
			// production probes that takes a long watch to be sure of (too
			// long to plan: the mixture test judges it).
			name:    "2% to 10%",
			obs:     every(urlA, 1200, 10, 40*time.Millisecond),
			outcome: Regressed, rule: RuleBaselineErrorRate,
			reason: "on " + urlA + ", 82 of 820 probes failed (10%), against 1 of 60 (1.7%) in production before the deploy; the failure rate is more than 5 points above production's with 99% confidence (the sequential test's limit after 820 probes is 82)",
		},
		{
			name:    "twice as slow",
			obs:     every(urlA, 300, 0, 80*time.Millisecond),
			outcome: Regressed, rule: RuleBaselineLatency,
			reason: "on " + urlA + ", the p95 latency is 80ms, above 1.5× production's 40ms (60ms): 4 of 4 answered probes were slower than 60ms, more than the 5% a p95 allows, with 99% confidence (the sequential test's limit after 4 answered probes is 4)",
		},
		{
			name:    "consecutive failures stay absolute",
			obs:     pattern(urlA, "..xxx"),
			outcome: Regressed, rule: RuleConsecutiveFailures,
			reason: "3 probes in a row failed on " + urlA,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := limits(func(l *Limits) { l.Horizon = len(tc.obs) })
			d, _ := run(NewWithBaseline(l, prod), tc.obs)
			if d.Outcome != tc.outcome || d.Rule != tc.rule {
				t.Errorf("got %v %q, want %v %q (%s)", d.Outcome, d.Rule, tc.outcome, tc.rule, d.Reason)
			}
			if d.Reason != tc.reason {
				t.Errorf("reason\n got: %s\nwant: %s", d.Reason, tc.reason)
			}
		})
	}
}

func TestBaselineUnhealthy(t *testing.T) {
	l := limits(nil)
	for _, tc := range []struct {
		name string
		obs  []Observation
		why  string
	}{
		{"empty", nil, "the baseline has no probes"},
		{"failing in a row", pattern(urlA, "....xxx..."), "production was already unhealthy before the deploy: 3 probes in a row failed on " + urlA},
		{"failing often", every(urlA, 60, 4, 40*time.Millisecond), "production was already unhealthy before the deploy: on " + urlA + ", 6 of 24 probes failed (25%)"},
		{"slow", every(urlA, 60, 0, time.Second), "production was already unhealthy before the deploy: on " + urlA + ", the p95 latency is 1s"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := l
			l.MaxLatency = 300 * time.Millisecond
			bad, why := baselineOf(l, tc.obs).Unhealthy()
			if !bad || !strings.HasPrefix(why, tc.why) {
				t.Errorf("got %v %q, want a reason starting %q", bad, why, tc.why)
			}
		})
	}
}
