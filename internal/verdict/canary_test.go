package verdict

import (
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	sim "github.com/immune-cd/immune/internal/testkit/traffic"
)

// probeRound is one round of probes: each canary and control URL once,
// failing at the given rates and answering with the given latencies.
func probeRound(rng *rand.Rand, canaryURLs, controlURLs int, pc, ps float64, lc, ls time.Duration) (canary, control []Observation) {
	for i := range canaryURLs {
		canary = append(canary, Probe("canary-"+string(rune('a'+i)), rng.Float64() < pc, lc))
	}
	for i := range controlURLs {
		control = append(control, Probe("stable-"+string(rune('a'+i)), rng.Float64() < ps, ls))
	}
	return canary, control
}

func TestCanaryRules(t *testing.T) {
	t.Parallel()
	const ms = time.Millisecond
	type phase struct {
		rounds int
		pc, ps float64
		lc, ls time.Duration
	}
	tests := []struct {
		name    string
		limits  func(*Limits)
		opt     CanaryOptions
		phases  []phase
		outcome Outcome
		rule    string
		reason  string
	}{
		{name: "a canary failing 30% against a healthy control",
			phases:  []phase{{300, 0.3, 0.01, 20 * ms, 20 * ms}},
			outcome: Regressed, rule: RuleCanaryErrorRate, reason: "points above the control's with 99% confidence"},
		{name: "an identical canary",
			phases:  []phase{{300, 0.01, 0.01, 20 * ms, 20 * ms}},
			outcome: Healthy, reason: "within the allowed 5 points more"},
		{name: "a shared incident: both tracks fail 40% for 100 rounds",
			phases:  []phase{{50, 0.01, 0.01, 20 * ms, 20 * ms}, {100, 0.4, 0.4, 20 * ms, 20 * ms}, {150, 0.01, 0.01, 20 * ms, 20 * ms}},
			outcome: Healthy},
		{name: "a shared total outage: both tracks fail every probe",
			phases:  []phase{{20, 0, 0, 20 * ms, 20 * ms}, {30, 1, 1, 20 * ms, 20 * ms}, {100, 0, 0, 20 * ms, 20 * ms}},
			outcome: Healthy},
		{name: "a canary dead from the start beside a live control",
			phases:  []phase{{10, 1, 0, 20 * ms, 20 * ms}},
			outcome: Regressed, rule: RuleCanaryErrorRate, reason: "the canary failed 4 of 4 probes (100%), the control 0 of 8 (0%) in the same rounds"},
		{name: "a canary that dies after 10 good rounds",
			phases:  []phase{{10, 0, 0, 20 * ms, 20 * ms}, {30, 1, 0, 20 * ms, 20 * ms}},
			outcome: Regressed, rule: RuleCanaryErrorRate, reason: "the canary failed 7 of 17 probes (41.2%), the control 0 of 34 (0%) in the same rounds"},
		{name: "a shared incident failing 30% of both tracks' probes: no in-a-row rule to trip",
			phases:  []phase{{5, 0, 0, 20 * ms, 20 * ms}, {55, 0.3, 0.3, 20 * ms, 20 * ms}},
			outcome: Healthy},
		{name: "a control that never answers vouches for nothing",
			phases:  []phase{{20, 0.6, 1, 20 * ms, 20 * ms}},
			outcome: Inconclusive, reason: "the control never answered healthily (it failed 40 of 40 probes), so it cannot vouch for the canary, which failed"},
		{name: "nor does it promote early",
			opt:     CanaryOptions{PromoteEarly: true},
			phases:  []phase{{300, 0, 1, 20 * ms, 20 * ms}},
			outcome: Inconclusive, reason: "the control never answered healthily"},
		{name: "a slow canary",
			limits:  func(l *Limits) { l.MaxLatency = 300 * ms },
			phases:  []phase{{300, 0, 0, 400 * ms, 100 * ms}},
			outcome: Regressed, rule: RuleCanaryLatency, reason: "slower than 300ms"},
		{name: "both tracks slow together",
			limits:  func(l *Limits) { l.MaxLatency = 300 * ms },
			phases:  []phase{{300, 0, 0, 400 * ms, 400 * ms}},
			outcome: Healthy},
		{name: "an identical canary promoted early",
			opt:     CanaryOptions{PromoteEarly: true},
			phases:  []phase{{300, 0, 0, 20 * ms, 20 * ms}},
			outcome: Healthy, rule: RuleCanaryNoWorse, reason: "the canary is no worse than the control"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			rng := rand.New(rand.NewPCG(uint64(i), 42))
			l := DefaultLimits()
			l.Targets = 1
			if tt.limits != nil {
				tt.limits(&l)
			}
			c := NewCanary(l, tt.opt)
			var d Decision
			looks := 0
		run:
			for _, ph := range tt.phases {
				for range ph.rounds {
					looks++
					d = c.Look(probeRound(rng, 1, 2, ph.pc, ph.ps, ph.lc, ph.ls))
					if d.Outcome != Continue {
						break run
					}
					if p, ok := c.NoWorse(); ok {
						d = p
						break run
					}
				}
			}
			if d.Outcome == Continue {
				d = c.Finish()
			}
			if d.Outcome != tt.outcome || d.Rule != tt.rule || !strings.Contains(d.Reason, tt.reason) {
				t.Fatalf("after %d looks: %v %q: %s; want %v %q with %q", looks, d.Outcome, d.Rule, d.Reason, tt.outcome, tt.rule, tt.reason)
			}
			if tt.rule == RuleCanaryNoWorse && looks >= 300 {
				t.Errorf("promoted only at the end")
			}
			if d.Evidence.Canary == nil {
				t.Errorf("no canary evidence: %+v", d.Evidence)
			}
			t.Logf("%v after %d looks: %s", d.Outcome, looks, d.Reason)
		})
	}
}

// Without PromoteEarly, a canary is never promoted before the end.
func TestCanaryPromotesOnlyWhenAsked(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(3, 4))
	c := NewCanary(DefaultLimits(), CanaryOptions{})
	for range 1000 {
		if d := c.Look(probeRound(rng, 1, 1, 0, 0, time.Millisecond, time.Millisecond)); d.Outcome != Continue {
			t.Fatalf("%v: %s", d.Outcome, d.Reason)
		}
		if _, ok := c.NoWorse(); ok {
			t.Fatal("no worse without PromoteEarly")
		}
	}
	if d := c.Finish(); d.Outcome != Healthy || d.Rule != "" {
		t.Fatalf("%v %s", d.Outcome, d.Rule)
	}
}

// Shown no worse, a canary is still judged: a regression after that
// regresses it, and NoWorse no longer says promote.
func TestCanaryNoWorseIsNotAVerdict(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(8, 9))
	c := NewCanary(DefaultLimits(), CanaryOptions{PromoteEarly: true})
	looks := 0
	for ; looks < 1000; looks++ {
		c.Look(probeRound(rng, 1, 1, 0, 0, time.Millisecond, time.Millisecond))
		if _, ok := c.NoWorse(); ok {
			break
		}
	}
	if _, ok := c.NoWorse(); !ok {
		t.Fatalf("not shown no worse after %d looks", looks)
	}
	// The canary dies: after its long healthy start it takes the onset
	// part of the test a few dozen rounds.
	var d Decision
	for range 40 {
		if d = c.Look(probeRound(rng, 1, 1, 1, 0, time.Millisecond, time.Millisecond)); d.Outcome == Regressed {
			break
		}
	}
	if _, ok := c.NoWorse(); d.Outcome != Regressed || ok {
		t.Fatalf("after a dead canary: %v, no worse %v", d.Outcome, ok)
	}
}

// Counts: a canary taking 10% of 1,000 requests a minute with a 5×
// regression is caught within minutes; the verdict is sticky, and Stats
// count every look.
func TestCanaryCounts(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(5, 6))
	l := DefaultLimits()
	l.MaxErrorRate = 0.005
	c := NewCanary(l, CanaryOptions{})
	var d Decision
	looks := 0
	for d.Outcome == Continue && looks < 240 {
		looks++
		d = c.Look([]Observation{Count("canary", 25, int64(sim.Binomial(rng, 25, 0.05)), nil)},
			[]Observation{Count("stable", 225, int64(sim.Binomial(rng, 225, 0.01)), nil)})
	}
	if d.Outcome != Regressed || d.Rule != RuleCanaryErrorRate || looks > 40 {
		t.Fatalf("after %d looks: %v %s", looks, d.Outcome, d.Reason)
	}
	if !strings.Contains(d.Reason, "requests") {
		t.Errorf("reason does not count requests: %s", d.Reason)
	}
	again := c.Look([]Observation{Count("canary", 25, 0, nil)}, []Observation{Count("stable", 225, 0, nil)})
	if again.Outcome != Regressed || again.Reason != d.Reason {
		t.Errorf("the verdict changed: %v %s", again.Outcome, again.Reason)
	}
	canary, control := c.Stats()
	if canary.Probes != int64(looks+1)*25 || control.Probes != int64(looks+1)*225 {
		t.Errorf("stats %d and %d requests after %d looks", canary.Probes, control.Probes, looks+1)
	}
}

// How many rounds the two-sample test needs on probes, as the README says:
// a canary failing 40% of its probes evenly, one dead from the start, and
// one that dies after 10 good rounds, beside 1, 2, 3 or 5 clean control
// URLs.
func TestCanaryRoundsToRegress(t *testing.T) {
	t.Parallel()
	evenly := func(n int, rate float64) bool { return int(float64(n+1)*rate) > int(float64(n)*rate) }
	canaries := []struct {
		name string
		fail func(round int) bool
	}{
		{"40% evenly", func(i int) bool { return evenly(i, 0.4) }},
		{"dead from the start", func(int) bool { return true }},
		{"dead after 10 good rounds", func(i int) bool { return i >= 10 }},
	}
	want := map[int][3]int{1: {25, 5, 20}, 2: {18, 4, 17}, 3: {15, 4, 17}, 5: {15, 3, 16}}
	for urls, rounds := range want {
		for k, canary := range canaries {
			c := NewCanary(DefaultLimits(), CanaryOptions{})
			got := 0
			for i := 0; i < 500 && got == 0; i++ {
				control := make([]Observation, urls)
				for j := range control {
					control[j] = Probe(fmt.Sprintf("stable-%d", j), false, time.Millisecond)
				}
				if c.Look([]Observation{Probe("canary", canary.fail(i), time.Millisecond)}, control).Outcome == Regressed {
					got = i + 1
				}
			}
			if got != rounds[k] {
				t.Errorf("%d control URLs, a canary %s: regressed after %d rounds, want %d", urls, canary.name, got, rounds[k])
			}
		}
	}
}
