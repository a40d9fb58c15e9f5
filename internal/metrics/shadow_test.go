package metrics

import (
	"strings"
	"testing"
)

func shadow(s Spec) Spec {
	s.Shadow = true
	return s
}

// A shadow metric is judged in the same looks as if it were live, and what
// it would have done is kept: it never regresses the build.
func TestJudgeShadowMetricNeverRegressesTheBuild(t *testing.T) {
	t.Parallel()
	specs := []Spec{rateMetric("live", 0.05), shadow(rateMetric("trial", 0.01)), shadow(thresholdSpec("p99", 0.3, 2))}
	j := newJudge(specs, JudgeOptions{Signals: Signals(false, specs)})
	for i := 0; i < 24; i++ {
		if reg := j.Observe(look(i, counts("live", 250, 2), counts("trial", 250, 13), value("p99", 0.5, true, i+1, 2))); reg != nil {
			t.Fatalf("look %d: the build regressed on %+v", i, reg)
		}
	}
	out := j.Finish(look(24).At, true)
	if why := Inconclusive(out); len(why) != 0 || out[0].Regressed || out[0].Shadow {
		t.Errorf("live metric %+v, inconclusive %q", out[0], why)
	}
	for _, o := range out[1:] {
		if !o.Shadow || o.Regressed || o.Shadowed == nil || o.Shadowed.At.IsZero() {
			t.Errorf("shadow metric %s: %+v, want a regression kept apart, with its look", o.Metric, o)
		}
	}
	if got := out[2].Shadowed; got.Rule != RuleThreshold || !got.At.Equal(look(1).At) {
		t.Errorf("the threshold would have regressed at look 1 (2 in a row): %+v", got)
	}
}

// A shadow rate metric takes no share of the live metrics' false-alarm
// allowance, and is itself judged with the share it would take live: it
// decides at the same look as the same metric made live.
func TestShadowSharesAsIfLive(t *testing.T) {
	t.Parallel()
	live := []Spec{rateMetric("a", 0.02), rateMetric("b", 0.02)}
	trial := []Spec{rateMetric("a", 0.02), shadow(rateMetric("b", 0.02))}
	if Signals(false, trial) != 1 || Signals(false, live) != 2 || Signals(true, trial) != 2 {
		t.Fatalf("signals: %d %d %d", Signals(false, trial), Signals(false, live), Signals(true, trial))
	}
	when := func(specs []Spec) int {
		j := newJudge(specs, JudgeOptions{Signals: Signals(false, specs)})
		for i := 0; i < 200; i++ {
			j.Observe(look(i, counts("a", 100, 1), counts("b", 100, 4)))
			for _, o := range j.Finish(look(i).At, false) {
				if o.Metric == "b" && (o.Regressed || o.Shadowed != nil) {
					return i
				}
			}
		}
		return -1
	}
	if l, s := when(live), when(trial); l < 0 || l != s {
		t.Errorf("b regressed live at look %d, in the shadow at look %d; want the same look", l, s)
	}
}

// A shadow metric without data does not keep the build from being cleared;
// its outcome still says why it could not have cleared it.
func TestShadowWithoutDataIsNotInconclusive(t *testing.T) {
	t.Parallel()
	j := newJudge([]Spec{rateMetric("live", 0.05), shadow(rateMetric("trial", 0.05))}, JudgeOptions{Signals: 1})
	for i := 0; i < 10; i++ {
		j.Observe(look(i, counts("live", 250, 0), noData("trial", KindRate, NoDataEmpty)))
	}
	out := j.Finish(look(10).At, true)
	if why := Inconclusive(out); len(why) != 0 {
		t.Errorf("inconclusive %q", why)
	}
	if !strings.Contains(out[1].Inconclusive, "no look had data") {
		t.Errorf("the shadow metric's outcome: %+v", out[1])
	}
}

// In a canary, a shadow rate metric neither regresses the canary nor holds
// back (or makes) an early promotion.
func TestCanaryShadowMetric(t *testing.T) {
	t.Parallel()
	j := newCanaryJudge([]Spec{rateMetric("live", 0.01), shadow(rateMetric("trial", 0.01))}, true)
	var why string
	var ok bool
	i := 0
	for ; i < 200 && !ok; i++ {
		if reg := j.Observe(look(i, counts("live", 500, 0), counts("trial", 50, 10)), look(i, counts("live", 4500, 0), counts("trial", 450, 0))); reg != nil {
			t.Fatalf("look %d: the canary regressed on %+v", i, reg)
		}
		why, ok = j.NoWorse()
	}
	if !ok || strings.Contains(why, "trial") {
		t.Errorf("no worse %v (%q): want promoted on the live metric alone", ok, why)
	}
	canary, _ := j.Finish(look(i).At, true)
	if !canary[1].Shadow || canary[1].Shadowed == nil || canary[1].Regressed {
		t.Errorf("the shadow metric: %+v", canary[1])
	}
	if len(Inconclusive(canary)) != 0 {
		t.Errorf("inconclusive: %q", Inconclusive(canary))
	}
	only := newCanaryJudge([]Spec{shadow(rateMetric("trial", 0.01))}, true)
	only.Observe(look(0, counts("trial", 50, 0)), look(0, counts("trial", 450, 0)))
	if _, ok := only.NoWorse(); ok {
		t.Error("a canary with only a shadow metric was shown no worse")
	}
}
