package verdict

import (
	"math/rand/v2"
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
			// 2% → 33%: 31 points worse where 5 are allowed. 60 production
			// probes with 1 failure leave production's own rate anywhere up
			// to about 10%, which the judgment allows for.
			name:    "2% to 33%",
			obs:     every(urlA, 1200, 3, 40*time.Millisecond),
			outcome: Regressed, rule: RuleBaselineErrorRate,
			reason: "on " + urlA + ", 20 of 60 probes failed (33.3%), against 1 of 60 (1.7%) in production before the deploy; the failure rate is more than 5 points above production's, at any rate its own probes allow, with 99% confidence (the sequential test's limit after 60 probes is 20)",
		},
		{
			// 2% → 10%: 8 points worse, but not beyond what production's
			// 60 probes allow for its own rate plus 5 points.
			name:    "2% to 10%",
			obs:     every(urlA, 1200, 10, 40*time.Millisecond),
			outcome: Healthy,
			reason:  "120 of 1200 probes failed (10%), against 1 of 60 (1.7%) in production, within the allowed 5 points more; p95 latency 40ms, against 40ms in production (allowed 60ms)",
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

// Production's own looks are a sample: a build exactly at production's
// rate plus the margin is rolled back in at most 1 − Confidence of watches,
// however short the baseline (taking the baseline's rate as known rolled
// back 14% of such builds after 60 baseline probes at 2%, and 3.45% after
// 2 minutes of 1,000 requests a minute: issue 20).
func TestBaselineNoiseKeepsTheBound(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(21, 1))
	for _, tc := range []struct {
		name            string
		counts          bool
		baseLooks, n    int
		looks           int
		prod, allowance float64
	}{
		{"60 probes at 2%, then 300 at 7%", false, 60, 1, 300, 0.02, 0.05},
		{"2 minutes of 1,000 a minute at 0.5%, then 10 at 1.5%", true, 8, 250, 40, 0.005, 0.01},
	} {
		alarms := 0
		const watches = 1000
		for range watches {
			l := limits(nil)
			l.MaxErrorRate, l.ConsecutiveFailures, l.Dispersion = tc.allowance, 0, tc.counts
			b := NewBaseline(l)
			for range tc.baseLooks {
				b.Observe(Count(urlA, int64(tc.n), int64(binomial(rng, tc.n, tc.prod)), nil))
			}
			if bad, _ := b.Unhealthy(); bad {
				continue
			}
			e := NewWithBaseline(l, b)
			for range tc.looks {
				if e.Observe(Count(urlA, int64(tc.n), int64(binomial(rng, tc.n, tc.prod+tc.allowance)), nil)).Outcome == Regressed {
					alarms++
					break
				}
			}
		}
		if alarms > watches/100 {
			t.Errorf("%s: %d false alarms in %d watches", tc.name, alarms, watches)
		}
	}
}
