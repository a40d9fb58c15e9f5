package verdict

import (
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/immune-cd/immune/internal/latency"
)

const (
	urlA = "https://a.example.com/healthz"
	urlB = "https://b.example.com/healthz"
)

func ok(target string) Observation { return Probe(target, false, 40*time.Millisecond) }

func fail(target string) Observation { return Probe(target, true, 40*time.Millisecond) }

// refused is a failed probe that measured nothing.
func refused(target string) Observation { return Probe(target, true, 0) }

func slow(target string, d time.Duration) Observation { return Probe(target, false, d) }

// pattern turns "..x.x" into observations of target: '.' ok, 'x' failed.
func pattern(target, p string) []Observation {
	var obs []Observation
	for _, c := range p {
		if c == 'x' {
			obs = append(obs, fail(target))
		} else {
			obs = append(obs, ok(target))
		}
	}
	return obs
}

func repeat(o Observation, n int) []Observation {
	obs := make([]Observation, n)
	for i := range obs {
		obs[i] = o
	}
	return obs
}

// run feeds obs and returns the first Regressed decision with the probe
// number it came at, or Finish's decision with probe 0.
func run(e *Engine, obs []Observation) (Decision, int) {
	for i, o := range obs {
		if d := e.Observe(o); d.Outcome == Regressed {
			return d, i + 1
		}
	}
	return e.Finish(), 0
}

func limits(mod func(*Limits)) Limits {
	l := DefaultLimits()
	l.Horizon = 300
	if mod != nil {
		mod(&l)
	}
	return l
}

func TestRules(t *testing.T) {
	spread := func(failEvery, n int) []Observation {
		var obs []Observation
		for i := 1; i <= n; i++ {
			if i%failEvery == 0 {
				obs = append(obs, fail(urlA))
			} else {
				obs = append(obs, ok(urlA))
			}
		}
		return obs
	}
	for _, tc := range []struct {
		name    string
		limits  Limits
		obs     []Observation
		outcome Outcome
		rule    string
		target  string
		at      int // probe of the regression; 0 = at Finish
		reason  string
	}{
		{
			name:    "all good",
			limits:  limits(nil),
			obs:     repeat(ok(urlA), 300),
			outcome: Healthy,
			reason:  "0 of 300 probes failed (0%), within the allowed 5%; p95 latency 40ms",
		},
		{
			name:    "three in a row",
			limits:  limits(nil),
			obs:     pattern(urlA, "....xxx"),
			outcome: Regressed, rule: RuleConsecutiveFailures, target: urlA, at: 7,
			reason: "3 probes in a row failed on " + urlA,
		},
		{
			name:    "two in a row is not three",
			limits:  limits(nil),
			obs:     pattern(urlA, "....xx"+strings.Repeat(".", 294)),
			outcome: Healthy,
			reason:  "2 of 300 probes failed (0.7%), within the allowed 5%; p95 latency 40ms",
		},
		{
			name:    "connection refused counts as failed",
			limits:  limits(nil),
			obs:     []Observation{ok(urlA), refused(urlA), refused(urlA), refused(urlA)},
			outcome: Regressed, rule: RuleConsecutiveFailures, target: urlA, at: 4,
			reason: "3 probes in a row failed on " + urlA,
		},
		{
			name:    "rule off",
			limits:  limits(func(l *Limits) { l.ConsecutiveFailures = 0; l.MaxErrorRate = 0.5 }),
			obs:     pattern(urlA, "xxxx"),
			outcome: Healthy,
			reason:  "4 of 4 probes failed (100%), above the allowed 50% but not with 99% confidence over so few probes; p95 latency 40ms",
		},
		{
			name:    "flapping trips the error rate",
			limits:  limits(nil),
			obs:     pattern(urlA, ".x.x.x.x.x.x"),
			outcome: Regressed, rule: RuleErrorRate, target: urlA, at: 8,
			reason: "on " + urlA + ", 4 of 8 probes failed (50%); the failure rate is above the allowed 5% with 99% confidence (the sequential test's limit after 8 probes is 4)",
		},
		{
			// 5 of the first 28 misses the look there (6), so it is
			// caught on reaching the next look's limit.
			name:    "one failure in five is caught mid-watch",
			limits:  limits(nil),
			obs:     spread(5, 300),
			outcome: Regressed, rule: RuleErrorRate, target: urlA, at: 60,
			reason: "on " + urlA + ", 12 of 60 probes failed (20%); the failure rate is above the allowed 5% with 99% confidence (the sequential test's limit after 60 probes is 12)",
		},
		{
			// Late in the watch the limits drop towards the final look.
			name:    "one failure in eleven is caught late",
			limits:  limits(nil),
			obs:     spread(11, 300),
			outcome: Regressed, rule: RuleErrorRate, target: urlA, at: 275,
			reason: "on " + urlA + ", 25 of 275 probes failed (9.1%); the failure rate is above the allowed 5% with 99% confidence (the sequential test's limit after 275 probes is 25)",
		},
		{
			name:    "a watch ended early gets a final look",
			limits:  limits(nil),
			obs:     spread(3, 12),
			outcome: Regressed, rule: RuleErrorRate, target: urlA, at: 0,
			reason: "on " + urlA + ", 4 of 12 probes failed (33.3%); the failure rate is above the allowed 5% with 99% confidence (at the end of the watch the limit for 12 probes is 4)",
		},
		{
			name:    "one failure in twenty passes",
			limits:  limits(nil),
			obs:     spread(20, 300),
			outcome: Healthy,
			reason:  "15 of 300 probes failed (5%), within the allowed 5%; p95 latency 40ms",
		},
		{
			name:   "slow p95",
			limits: limits(func(l *Limits) { l.MaxLatency = 300 * time.Millisecond }),
			obs: append(repeat(ok(urlA), 20),
				slow(urlA, 800*time.Millisecond), slow(urlA, 812*time.Millisecond), slow(urlA, 900*time.Millisecond), slow(urlA, 700*time.Millisecond), slow(urlA, 790*time.Millisecond), slow(urlA, 750*time.Millisecond)),
			outcome: Regressed, rule: RuleLatency, target: urlA, at: 26,
			reason: "on " + urlA + ", the p95 latency is 812ms, above the allowed 300ms: 6 of 26 answered probes were slower than 300ms, more than the 5% a p95 allows, with 99% confidence (the sequential test's limit after 26 answered probes is 6)",
		},
		{
			name:    "latency within limit",
			limits:  limits(func(l *Limits) { l.MaxLatency = 300 * time.Millisecond; l.Horizon = 100 }),
			obs:     append(repeat(ok(urlA), 98), slow(urlA, time.Second), slow(urlA, time.Second)),
			outcome: Healthy,
			reason:  "0 of 100 probes failed (0%), within the allowed 5%; p95 latency 40ms, within the allowed 300ms",
		},
		{
			name: "slow failures are slow too, refused ones are not answered",
			limits: limits(func(l *Limits) {
				l.MaxLatency = 300 * time.Millisecond
				l.ConsecutiveFailures = 0
				l.MaxErrorRate = 0.9
			}),
			obs:     append(repeat(refused(urlA), 10), repeat(Probe(urlA, true, time.Second), 3)...),
			outcome: Regressed, rule: RuleLatency, target: urlA, at: 0,
			reason: "on " + urlA + ", the p95 latency is 1s, above the allowed 300ms: 3 of 3 answered probes were slower than 300ms, more than the 5% a p95 allows, with 99% confidence (at the end of the watch the limit for 3 answered probes is 3)",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d, at := run(New(tc.limits), tc.obs)
			if d.Outcome != tc.outcome || d.Rule != tc.rule || d.Target != tc.target || at != tc.at {
				t.Errorf("got %v %q %q at probe %d, want %v %q %q at %d\n(reason: %s)", d.Outcome, d.Rule, d.Target, at, tc.outcome, tc.rule, tc.target, tc.at, d.Reason)
			}
			if d.Reason != tc.reason {
				t.Errorf("reason\n got: %s\nwant: %s", d.Reason, tc.reason)
			}
		})
	}
}

func TestOverallRule(t *testing.T) {
	// Two targets, each failing one probe in four: neither alone is over
	// its (quartered) allowance yet, but together they are.
	e := New(limits(func(l *Limits) { l.Targets = 2 }))
	var d Decision
	for i := 1; i <= 300 && d.Outcome != Regressed; i++ {
		for _, u := range []string{urlA, urlB} {
			o := ok(u)
			if i%4 == 0 {
				o = fail(u)
			}
			if d = e.Observe(o); d.Outcome == Regressed {
				break
			}
		}
	}
	if d.Outcome != Regressed || d.Rule != RuleErrorRate {
		t.Fatalf("got %+v", d)
	}
	if d.Target != "" || !strings.HasPrefix(d.Reason, "across all 2 targets, ") {
		t.Errorf("want an overall decision, got target %q reason %q", d.Target, d.Reason)
	}
}

func TestRegressedIsSticky(t *testing.T) {
	e := New(limits(nil))
	d, _ := run(e, pattern(urlA, "xxx"))
	for _, o := range repeat(ok(urlA), 50) {
		if got := e.Observe(o); got != d {
			t.Fatalf("Observe after regression = %+v, want %+v", got, d)
		}
	}
	if got := e.Finish(); got != d {
		t.Fatalf("Finish after regression = %+v, want %+v", got, d)
	}
}

func TestStats(t *testing.T) {
	e := New(limits(func(l *Limits) { l.MaxLatency = 100 * time.Millisecond; l.Targets = 2; l.LatencyPercentile = 90 }))
	for i := range 10 {
		e.Observe(slow(urlA, time.Duration(i+1)*20*time.Millisecond)) // 20ms..200ms
	}
	e.Observe(refused(urlB))
	e.Observe(ok(urlB))
	s := e.Stats()
	want := Counts{Probes: 12, Failures: 1, Answered: 11, Slow: 5, P50: 100 * time.Millisecond, P95: 200 * time.Millisecond, Percentile: 180 * time.Millisecond}
	if s.Overall != want {
		t.Errorf("overall %+v, want %+v", s.Overall, want)
	}
	if len(s.Targets) != 2 || s.Targets[0].Target != urlA || s.Targets[1].Target != urlB {
		t.Fatalf("targets %+v", s.Targets)
	}
	wantB := Counts{Probes: 2, Failures: 1, Answered: 1, P50: 40 * time.Millisecond, P95: 40 * time.Millisecond, Percentile: 40 * time.Millisecond}
	if s.Targets[1].Counts != wantB {
		t.Errorf("target B %+v, want %+v", s.Targets[1].Counts, wantB)
	}
}

func TestOpenEndedHorizon(t *testing.T) {
	// Without a horizon the mixture test runs open-ended.
	l := limits(func(l *Limits) { l.Horizon = 0 })
	if d, at := run(New(l), pattern(urlA, ".x.x.x.x.x.x")); d.Rule != RuleErrorRate || at != 8 {
		t.Errorf("flapping: %+v at %d", d, at)
	}
	var obs []Observation
	for i := 1; i <= 300; i++ {
		if i%9 == 0 {
			obs = append(obs, fail(urlA))
		} else {
			obs = append(obs, ok(urlA))
		}
	}
	d, at := run(New(l), obs)
	if d.Outcome != Regressed || at != 225 || d.Reason != "on "+urlA+", 25 of 225 probes failed (11.1%); the failure rate is above the allowed 5% with 99% confidence (the sequential test's limit after 225 probes is 25)" {
		t.Errorf("one in nine: %+v at %d, want a regression at probe 225", d, at)
	}
}

func TestValidate(t *testing.T) {
	if err := DefaultLimits().Validate(); err != nil {
		t.Fatal(err)
	}
	if err := (Limits{}).Validate(); err != nil {
		t.Fatalf("zero limits take defaults: %v", err)
	}
	for field, l := range map[string]Limits{
		"MaxErrorRate":        {MaxErrorRate: 1.5},
		"ConsecutiveFailures": {ConsecutiveFailures: -1},
		"MaxLatency":          {MaxLatency: -time.Second},
		"LatencyPercentile":   {LatencyPercentile: 100},
		"Confidence":          {Confidence: 0.4},
		"MaxLatencyIncrease":  {MaxLatencyIncrease: 0.5},
		"Horizon":             {Horizon: -3},
	} {
		err := l.Validate()
		if err == nil || !strings.Contains(err.Error(), field) {
			t.Errorf("%s: got %v", field, err)
		}
	}
}

func TestOutcomeString(t *testing.T) {
	for o, want := range map[Outcome]string{Continue: "continue", Healthy: "healthy", Regressed: "regressed", 7: "Outcome(7)"} {
		if o.String() != want {
			t.Errorf("%d: %q", int(o), o.String())
		}
	}
}

func BenchmarkObserve(b *testing.B) {
	l := limits(func(l *Limits) { l.MaxLatency = 300 * time.Millisecond; l.Horizon = 0 })
	e := New(l)
	o := ok(urlA)
	b.ReportAllocs()
	for b.Loop() {
		e.Observe(o)
	}
}

// BenchmarkObserveFleet feeds a 100-URL watch of an hour at 1s, with
// noise: one look per probe, as the action does.
func BenchmarkObserveFleet(b *testing.B) {
	const urls = 100
	l := limits(func(l *Limits) { l.MaxLatency = 300 * time.Millisecond; l.Horizon = 3600; l.Targets = urls })
	obs := make([]Observation, 0, 100*urls)
	for i := range cap(obs) {
		obs = append(obs, Probe(urlName(i%urls), i%97 == 0, time.Duration(20+i%50)*time.Millisecond))
	}
	e := New(l)
	b.ReportAllocs()
	b.ResetTimer()
	i := 0
	for b.Loop() {
		e.Observe(obs[i%len(obs)])
		i++
	}
}

// BenchmarkObserveCounts feeds looks of a thousand requests.
func BenchmarkObserveCounts(b *testing.B) {
	e := New(limits(func(l *Limits) { l.Horizon = 0; l.MaxErrorRate = 0.01 }))
	b.ReportAllocs()
	for b.Loop() {
		e.Observe(Count(urlA, 1000, 7, nil))
	}
}

func BenchmarkNew(b *testing.B) {
	l := limits(nil)
	for b.Loop() {
		New(l).Observe(ok(urlA))
	}
}

// TestCounts: looks of many requests, as a poll of request counters gives
// them, with exact counts far beyond what probes reach.
func TestCounts(t *testing.T) {
	l := limits(func(l *Limits) { l.Horizon = 0; l.MaxErrorRate = 0.01 })
	e := New(l)
	const n = 1_000_000_000_000 // 10^12 requests per look
	if d := e.Observe(Count(urlA, n, n/200, nil)); d.Outcome != Continue {
		t.Fatalf("0.5%% of 10^12: %+v", d)
	}
	d := e.Observe(Count(urlA, n, n/50, nil))
	if d.Outcome != Regressed || d.Rule != RuleErrorRate {
		t.Fatalf("2%% of 10^12 more: %+v", d)
	}
	ev := d.Evidence
	if ev.Judged != 2*n || ev.Bad != n/200+n/50 || ev.Limit <= n/100*2 || ev.Limit > ev.Bad || ev.AllowedErrorRate != 0.01 {
		t.Errorf("evidence %+v", ev)
	}
	want := "on " + urlA + ", 25000000000 of 2000000000000 requests failed (1.2%); the failure rate is above the allowed 1% with 99% confidence (the sequential test's limit after 2000000000000 requests is "
	if !strings.HasPrefix(d.Reason, want) {
		t.Errorf("reason\n got: %s\nwant: %s...", d.Reason, want)
	}

	// A look whose requests all failed continues the run; a mixed one
	// ends it, since the order inside a look is unknown.
	e = New(limits(func(l *Limits) { l.Horizon = 0; l.MaxErrorRate = 0.5 }))
	if d := e.Observe(Count(urlA, 2, 2, nil)); d.Outcome != Continue {
		t.Fatalf("two failed: %+v", d)
	}
	if d := e.Observe(Count(urlA, 0, 0, nil)); d.Outcome != Continue {
		t.Fatalf("a look without traffic: %+v", d)
	}
	if d := e.Observe(Count(urlA, 1, 1, nil)); d.Rule != RuleConsecutiveFailures || d.Reason != "3 requests in a row failed on "+urlA {
		t.Fatalf("third failure: %+v", d)
	}
	e = New(limits(func(l *Limits) { l.Horizon = 0; l.MaxErrorRate = 0.5 }))
	e.Observe(Count(urlA, 2, 2, nil))
	if d := e.Observe(Count(urlA, 5, 4, nil)); d.Outcome != Continue {
		t.Fatalf("a mixed look: %+v", d)
	}
	if d := e.Observe(Count(urlA, 3, 3, nil)); d.Rule != RuleConsecutiveFailures || d.Reason != "3 requests in a row failed on "+urlA {
		t.Fatalf("three failed after a mixed look: %+v", d)
	}
}

// TestCountsAreProbes: the mixture test depends only on the cumulative
// counts, so a look of n requests judges as n probes do (with the failures
// last, the probes cannot trip it earlier than the end either).
func TestCountsAreProbes(t *testing.T) {
	l := limits(func(l *Limits) { l.Horizon = 0; l.ConsecutiveFailures = 0 })
	for failed := range int64(40) {
		byProbe := New(l)
		for i := range int64(200) {
			byProbe.Observe(Probe(urlA, i >= 200-failed, 40*time.Millisecond))
		}
		byCount := New(l)
		byCount.Observe(Count(urlA, 200, failed, nil))
		if p, c := byProbe.Finish(), byCount.Finish(); p.Outcome != c.Outcome {
			t.Errorf("%d of 200: probes %v, one look %v", failed, p.Outcome, c.Outcome)
		}
	}
}

func TestCountsLatencies(t *testing.T) {
	var lat latency.Sketch
	lat.AddN(20*time.Millisecond, 900)
	lat.AddN(900*time.Millisecond, 100)
	e := New(limits(func(l *Limits) { l.Horizon = 0; l.MaxLatency = 300 * time.Millisecond; l.LatencyPercentile = 99 }))
	d := e.Observe(Count(urlA, 1000, 0, &lat))
	if d.Rule != RuleLatency || d.Evidence.Judged != 1000 || d.Evidence.Bad != 100 || d.Evidence.Percentile != 99 ||
		d.Evidence.Latency != 900*time.Millisecond || d.Evidence.MaxLatency != 300*time.Millisecond {
		t.Fatalf("%+v", d)
	}
	if !strings.Contains(d.Reason, "the p99 latency is 900ms, above the allowed 300ms: 100 of 1000 answered requests were slower than 300ms") {
		t.Errorf("reason: %s", d.Reason)
	}
}

func TestImpossibleObservations(t *testing.T) {
	for name, o := range map[string]Observation{
		"more failures than requests": Count(urlA, 3, 4, nil),
		"negative":                    Count(urlA, -1, 0, nil),
	} {
		func() {
			defer func() {
				if recover() == nil {
					t.Errorf("%s: no panic", name)
				}
			}()
			New(limits(nil)).Observe(o)
		}()
	}
	defer func() {
		if r := recover(); r == nil || !strings.Contains(fmt.Sprint(r), "one more than Limits.Targets (1)") {
			t.Errorf("a second target of one: %v", r)
		}
	}()
	e := New(limits(nil))
	e.Observe(ok(urlA))
	e.Observe(ok(urlB))
}

// TestEvidence: decisions carry the numbers their reasons quote, so that
// callers never recompute them.
func TestEvidence(t *testing.T) {
	// A latency regression judged at p99 says p99, and its limit.
	l := limits(func(l *Limits) { l.MaxLatency = 300 * time.Millisecond; l.LatencyPercentile = 99; l.Horizon = 100 })
	d, _ := run(New(l), append(repeat(ok(urlA), 50), repeat(slow(urlA, time.Second), 10)...))
	want := Evidence{Judged: d.Evidence.Judged, Bad: d.Evidence.Bad, Limit: d.Evidence.Limit, Percentile: 99, Latency: time.Second, MaxLatency: 300 * time.Millisecond, Confidence: 0.99}
	if d.Rule != RuleLatency || d.Evidence != want || d.Evidence.Bad < d.Evidence.Limit || d.Evidence.Bad < 3 {
		t.Errorf("latency: %+v", d)
	}
	// A baseline latency regression's limit is production's percentile
	// times the allowed increase.
	l = limits(func(l *Limits) { l.Horizon = 100 })
	prod := baselineOf(l, every(urlA, 60, 0, 40*time.Millisecond))
	d, _ = run(NewWithBaseline(l, prod), every(urlA, 100, 0, 80*time.Millisecond))
	ev := d.Evidence
	if d.Rule != RuleBaselineLatency || ev.MaxLatency != 60*time.Millisecond || ev.Latency != 80*time.Millisecond || ev.Percentile != 95 ||
		!ev.Baseline || ev.BaselineLatency != 40*time.Millisecond {
		t.Errorf("baseline latency: %+v", d)
	}
	// A healthy verdict carries the watch's numbers too.
	d, _ = run(New(limits(nil)), pattern(urlA, strings.Repeat("...................x", 15)))
	ev = d.Evidence
	if d.Outcome != Healthy || ev.Judged != 300 || ev.Bad != 15 || ev.ErrorRate != 0.05 || ev.AllowedErrorRate != 0.05 || ev.Latency != 40*time.Millisecond {
		t.Errorf("healthy: %+v", d)
	}
}

// TestSetUpIsBounded: whatever the horizon and the number of targets,
// choosing the tests spends at most planBudget steps of planning; a
// modest single-URL watch keeps its planned test.
func TestSetUpIsBounded(t *testing.T) {
	for _, tc := range []struct {
		horizon, targets int
		planned          bool // the target's error test is planned
	}{
		{300, 1, true},
		{1000, 1, false},
		{86400, 1, false},
		{100, 100, true},
		{3600, 100, false},
		{1_000_000, 1000, false},
	} {
		e := New(limits(func(l *Limits) {
			l.Horizon, l.Targets, l.MaxLatency = tc.horizon, tc.targets, 300*time.Millisecond
		}))
		_, planned := e.errorTarget.(*plan)
		if planned != tc.planned || e.budget < 0 && -e.budget > planBudget/10 {
			t.Errorf("horizon %d, %d targets: planned %v, budget left %d", tc.horizon, tc.targets, planned, e.budget)
		}
		if tc.targets > 1 {
			if m, ok := e.errorFleet.(*mixture); !ok || math.Abs(m.alpha-0.005) > 1e-12 {
				t.Errorf("horizon %d, %d targets: the fleet test is %T, want a mixture at α/2", tc.horizon, tc.targets, e.errorFleet)
			}
		}
	}
}
