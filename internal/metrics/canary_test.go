package metrics

import (
	"strings"
	"testing"
)

func newCanaryJudge(specs []Spec, promote bool) *CanaryJudge {
	return NewCanaryJudge(specs, JudgeOptions{Confidence: 0.99, Signals: 1, MinRequests: 20, Start: j0, Grace: 2 * lookEvery}, promote)
}

// A rate metric regresses the canary when its errors are above the
// control's plus the allowed points, not when both tracks fail together.
func TestCanaryJudgeRates(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		canary     func(i int) Reading
		control    func(i int) Reading
		regressed  bool
		reason     string
		inconclude string
	}{
		{name: "5× the control", canary: func(int) Reading { return counts("http-errors", 50, 3) }, control: func(int) Reading { return counts("http-errors", 450, 5) },
			regressed: true, reason: "on metric http-errors, the canary failed"},
		{name: "both tracks in an outage", canary: func(int) Reading { return counts("http-errors", 50, 15) }, control: func(int) Reading { return counts("http-errors", 450, 135) }},
		{name: "the control has no data", canary: func(int) Reading { return counts("http-errors", 50, 3) }, control: func(int) Reading { return noData("http-errors", KindRate, NoDataEmpty) },
			inconclude: "metric http-errors, the control's track: no look had data (the last: empty)"},
		{name: "a control that never served a request without an error", canary: func(int) Reading { return counts("http-errors", 50, 30) }, control: func(int) Reading { return counts("http-errors", 450, 450) },
			inconclude: "metric http-errors, the control's track, never counted a request that did not fail (18000 of 18000 failed): the control cannot vouch for the canary"},
		{name: "too few canary requests", canary: func(int) Reading { return counts("http-errors", 0, 0) }, control: func(int) Reading { return counts("http-errors", 450, 5) },
			inconclude: "metric http-errors counted 0 requests of the canary over the watch, fewer than min-requests (20)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			j := newCanaryJudge([]Spec{rateMetric("http-errors", 0.01)}, false)
			var reg *Regression
			i := 0
			for ; i < 40 && reg == nil; i++ {
				reg = j.Observe(look(i, tt.canary(i)), look(i, tt.control(i)))
			}
			if (reg != nil) != tt.regressed || reg != nil && (!strings.Contains(reg.Reason, tt.reason) || reg.Evidence == nil || reg.Evidence.Canary == nil) {
				t.Fatalf("after %d looks: %+v", i, reg)
			}
			canary, control := j.Finish(look(i, counts("x", 0, 0)).At, true)
			if len(canary) != 1 || len(control) != 1 || !strings.HasPrefix(canary[0].Inconclusive, tt.inconclude) {
				t.Errorf("outcomes %+v %+v", canary, control)
			}
			if tt.inconclude == "" && !tt.regressed && canary[0].Inconclusive != "" {
				t.Errorf("inconclusive: %s", canary[0].Inconclusive)
			}
		})
	}
}

// When one track has no data for a look, its counts wait for the other's:
// nothing is lost, and nothing is compared across different spans.
func TestCanaryJudgePairsLooks(t *testing.T) {
	t.Parallel()
	j := newCanaryJudge([]Spec{rateMetric("e", 0.01)}, false)
	j.Observe(look(0, counts("e", 10, 1)), look(0, noData("e", KindRate, NoDataUnreachable)))
	j.Observe(look(1, counts("e", 10, 0)), look(1, counts("e", 90, 2)))
	m := j.rates[0]
	if m.pc != 0 || m.ps != 0 || m.canary.requests != 20 || m.control.requests != 90 {
		t.Fatalf("pending %d/%d, canary %d, control %d", m.pc, m.ps, m.canary.requests, m.control.requests)
	}
	canary, _ := m.engine.Stats()
	if canary.Probes != 20 || canary.Failures != 1 {
		t.Errorf("the engine saw %d requests, %d failed; want 20 and 1", canary.Probes, canary.Failures)
	}
}

// Threshold metrics are judged on the canary's track by their bounds; early
// promotion needs every rate metric to show the canary no worse.
func TestCanaryJudgeThresholdsAndPromotion(t *testing.T) {
	t.Parallel()
	specs := []Spec{thresholdSpec("p99", 0.3, 3), rateMetric("e", 0.01)}
	j := newCanaryJudge(specs, true)
	var reg *Regression
	for i := 0; i < 3; i++ {
		reg = j.Observe(look(i, value("p99", 0.5, true, i+1, 3), counts("e", 100, 1)), look(i, counts("e", 900, 9)))
	}
	if reg == nil || reg.Metric != "p99" || reg.Rule != RuleThreshold {
		t.Fatalf("regression %+v", reg)
	}
	j = newCanaryJudge(specs, true)
	promoted := false
	for i := 0; i < 400 && !promoted; i++ {
		if j.Observe(look(i, value("p99", 0.1, false, 0, 3), counts("e", 1000, 10)), look(i, counts("e", 9000, 90))) != nil {
			t.Fatal("regressed")
		}
		_, promoted = j.NoWorse()
	}
	if why, ok := j.NoWorse(); !ok || !strings.Contains(why, "on metric e, the canary is no worse than the control") {
		t.Errorf("no worse: %v %q", ok, why)
	}
	canary, control := j.Finish(j0.Add(400*lookEvery), true)
	if len(canary) != 2 || canary[0].Kind != KindThreshold || canary[1].Kind != KindRate || len(control) != 1 || control[0].Requests == 0 {
		t.Errorf("outcomes %+v %+v", canary, control)
	}
	if !strings.Contains(CanarySummary(canary[1], control[0]), "metric e: the canary") {
		t.Errorf("summary %q", CanarySummary(canary[1], control[0]))
	}
}
