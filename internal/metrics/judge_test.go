package metrics

import (
	"strings"
	"testing"
	"time"
)

var j0 = time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)

const lookEvery = 5 * time.Second

func rateMetric(name string, allowed float64) Spec {
	return Spec{Name: name, Errors: `x{code="500"}`, Total: `x`, MaxErrorRate: allowed}
}

func thresholdSpec(name string, max float64, consecutive int) Spec {
	return Spec{Name: name, Query: "q", Max: f64(max), Consecutive: consecutive}
}

func newJudge(specs []Spec, opt JudgeOptions) *Judge {
	if opt.Confidence == 0 {
		opt.Confidence = 0.99
	}
	if opt.Start.IsZero() {
		opt.Start = j0
	}
	if opt.Grace == 0 {
		opt.Grace = 2 * lookEvery
	}
	if opt.MinRequests == 0 {
		opt.MinRequests = 20
	}
	return NewJudge(specs, opt)
}

// look i of a watch, with these readings.
func look(i int, rs ...Reading) Look {
	return Look{At: j0.Add(time.Duration(i) * lookEvery), Readings: rs}
}

func counts(name string, n, bad int64) Reading {
	return Reading{Metric: name, Kind: KindRate, Requests: n, Errors: bad}
}

func noData(name string, kind Kind, why NoData) Reading {
	return Reading{Metric: name, Kind: kind, NoData: why}
}

func value(name string, v float64, out bool, streak, need int) Reading {
	return Reading{Metric: name, Kind: KindThreshold, Value: v, OutOfBounds: out, Streak: streak, Regressed: streak >= need}
}

func TestJudgeRateRegression(t *testing.T) {
	t.Parallel()
	j := newJudge([]Spec{rateMetric("http-errors", 0.01)}, JudgeOptions{})
	var reg *Regression
	for i := 0; i < 20 && reg == nil; i++ {
		reg = j.Observe(look(i, counts("http-errors", 250, 13))) // 5.2%
	}
	if reg == nil || reg.Metric != "http-errors" || reg.Rule != "error-rate" || reg.Evidence == nil || reg.Evidence.AllowedErrorRate != 0.01 {
		t.Fatalf("regression %+v", reg)
	}
	if !strings.Contains(reg.Reason, "on metric http-errors, ") || !strings.Contains(reg.Reason, "above the allowed 1%") {
		t.Errorf("reason %q", reg.Reason)
	}
	out := j.Finish(j0.Add(time.Minute), true)
	if !out[0].Regressed || out[0].Inconclusive != "" || out[0].Requests == 0 {
		t.Errorf("outcome %+v", out[0])
	}
}

// TestJudgeEachMetricAtItsOwnRate: 3% errors regress a metric allowed 1%,
// not one allowed 5%.
func TestJudgeEachMetricAtItsOwnRate(t *testing.T) {
	t.Parallel()
	j := newJudge([]Spec{rateMetric("strict", 0.05), rateMetric("lax", 0.01)}, JudgeOptions{Signals: 2})
	var reg *Regression
	for i := 0; i < 100 && reg == nil; i++ {
		reg = j.Observe(look(i, counts("strict", 1000, 30), counts("lax", 1000, 30)))
	}
	if reg == nil || reg.Metric != "lax" {
		t.Fatalf("regression %+v, want metric lax", reg)
	}
}

func TestJudgeThreshold(t *testing.T) {
	t.Parallel()
	j := newJudge([]Spec{thresholdSpec("p99", 0.3, 2)}, JudgeOptions{})
	if reg := j.Observe(look(0, value("p99", 0.45, true, 1, 2))); reg != nil {
		t.Fatalf("one look out of bounds regressed: %+v", reg)
	}
	reg := j.Observe(look(1, value("p99", 0.5, true, 2, 2)))
	if reg == nil || reg.Rule != RuleThreshold || reg.Reason != "metric p99 is 0.5, above its max of 0.3, in 2 looks in a row (consecutive: 2)" {
		t.Fatalf("regression %+v", reg)
	}
	o := j.Finish(j0.Add(10*time.Second), true)[0]
	if o.Value != 0.5 || o.Worst != 0.5 || o.OutOfBounds != 2 || !o.Regressed {
		t.Errorf("outcome %+v", o)
	}
}

// TestJudgeInconclusive: no data is not a verdict, and neither are too few
// requests.
func TestJudgeInconclusive(t *testing.T) {
	t.Parallel()
	const looks = 12 // a minute
	end := j0.Add(looks * lookEvery)
	tests := []struct {
		name  string
		spec  Spec
		at    func(i int) Reading
		wantR string // the reason, "" when the metric clears the build
	}{
		{"enough requests", rateMetric("e", 0.01), func(i int) Reading { return counts("e", 10, 0) }, ""},
		{"too few requests", rateMetric("e", 0.01), func(i int) Reading { return counts("e", 1, 0) },
			"metric e counted 12 requests over the watch, fewer than min-requests (20): too few to clear the build"},
		{"never any data", rateMetric("e", 0.01), func(i int) Reading { return noData("e", KindRate, NoDataUnreachable) },
			"metric e: no look had data (the last: unreachable)"},
		{"data only late", rateMetric("e", 0.01), func(i int) Reading {
			if i < 5 {
				return noData("e", KindRate, NoDataEmpty)
			}
			return counts("e", 10, 0)
		}, "metric e had no data for the first 25s of the watch, longer than the startup grace of 10s"},
		{"data lost at the end", rateMetric("e", 0.01), func(i int) Reading {
			if i > 6 {
				return noData("e", KindRate, NoDataUnreachable)
			}
			return counts("e", 10, 0)
		}, "metric e had no data for the last 30s of the watch (unreachable), longer than the startup grace of 10s"},
		{"a gap in the middle is caught up", rateMetric("e", 0.01), func(i int) Reading {
			if i >= 3 && i < 9 {
				return noData("e", KindRate, NoDataUnreachable)
			}
			return counts("e", 10, 0)
		}, ""},
		{"NaN throughout", thresholdSpec("ratio", 0.01, 3), func(i int) Reading { return noData("ratio", KindThreshold, NoDataNaN) },
			"metric ratio: no look had data (the last: NaN)"},
		{"a threshold within bounds", thresholdSpec("p99", 0.3, 3), func(i int) Reading { return value("p99", 0.1, false, 0, 3) }, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			j := newJudge([]Spec{tt.spec}, JudgeOptions{})
			for i := range looks {
				if reg := j.Observe(look(i, tt.at(i))); reg != nil {
					t.Fatalf("look %d regressed: %+v", i, reg)
				}
			}
			o := j.Finish(end, true)[0]
			if o.Inconclusive != tt.wantR {
				t.Errorf("inconclusive %q, want %q", o.Inconclusive, tt.wantR)
			}
			if o.Looks != looks {
				t.Errorf("%d looks, want %d", o.Looks, looks)
			}
		})
	}
}

// TestJudgeRegressionIsNeverInconclusive: a signal that regressed the build
// judged it, whatever the others lacked.
func TestJudgeRegressionIsNeverInconclusive(t *testing.T) {
	t.Parallel()
	j := newJudge([]Spec{thresholdSpec("p99", 0.3, 1), rateMetric("e", 0.01)}, JudgeOptions{})
	reg := j.Observe(look(0, value("p99", 1, true, 1, 1), noData("e", KindRate, NoDataEmpty)))
	if reg == nil {
		t.Fatal("no regression")
	}
	for _, o := range j.Finish(j0.Add(time.Hour), true) {
		if o.Inconclusive != "" {
			t.Errorf("%s: inconclusive %q after a regression", o.Metric, o.Inconclusive)
		}
	}
}

// TestJudgeAgainstBaseline: production's rate metric is the yardstick:
// 1.5% errors are within 1 point of production's 0.8%, and regress against
// an absolute 1%; a baseline with too few requests is no yardstick.
func TestJudgeAgainstBaseline(t *testing.T) {
	t.Parallel()
	spec := rateMetric("e", 0.01)
	run := func(b *Baselines) (*Regression, Outcome) {
		j := newJudge([]Spec{spec}, JudgeOptions{Baselines: b})
		var reg *Regression
		for i := 0; i < 60 && reg == nil; i++ {
			reg = j.Observe(look(i, counts("e", 1000, 15)))
		}
		return reg, j.Finish(j0.Add(5*time.Minute), true)[0]
	}
	b := NewBaselines([]Spec{spec, thresholdSpec("p99", 1, 3)}, 0.99, 1)
	if len(b.Specs()) != 1 || b.Names()[0] != "e" {
		t.Fatalf("baselines read %v; only rate metrics have one", b.Names())
	}
	for i := range 60 {
		b.Observe(look(i, counts("e", 1000, 8)))
	}
	if ok, why := b.Usable("e", 20); !ok {
		t.Fatalf("baseline not usable: %s", why)
	}
	if reg, o := run(b); reg != nil || o.Baseline != "against production" {
		t.Errorf("against production's 0.8%%: %+v, %+v", reg, o)
	}
	if reg, o := run(nil); reg == nil || o.Baseline != "absolute" {
		t.Errorf("absolute 1%%: %+v, %+v", reg, o)
	}
	few := NewBaselines([]Spec{spec}, 0.99, 1)
	few.Observe(look(0, counts("e", 5, 0)))
	reg, o := run(few)
	if reg == nil || !strings.Contains(o.Baseline, "production's metric counted 5 requests before the deploy, fewer than min-requests (20)") {
		t.Errorf("a baseline of 5 requests: %+v, %+v", reg, o)
	}
}

// The anchors' failure modes, judged (the readings are those the anchor
// tests in anchors_test.go get from a real Prometheus).

// TestAnchorArgoRollouts1466Verdict: an empty result (no error series yet)
// is zero errors for a rate metric, whose healthy build is judged healthy;
// an empty ratio query is no data, never a failure and never an abort.
func TestAnchorArgoRollouts1466Verdict(t *testing.T) {
	t.Parallel()
	j := newJudge([]Spec{rateMetric("http-errors", 0.05), thresholdSpec("argo-ratio", 0.05, 1)}, JudgeOptions{})
	for i := range 12 {
		if reg := j.Observe(look(i, counts("http-errors", 25, 0), noData("argo-ratio", KindThreshold, NoDataEmpty))); reg != nil {
			t.Fatalf("look %d: %+v", i, reg)
		}
	}
	out := j.Finish(j0.Add(time.Minute), true)
	if out[0].Inconclusive != "" || out[0].Regressed || out[0].Requests != 300 {
		t.Errorf("rate metric: %+v, want judged healthy", out[0])
	}
	if out[1].Regressed || out[1].NoData[NoDataEmpty] != 12 || !strings.Contains(out[1].Inconclusive, "no look had data (the last: empty)") {
		t.Errorf("ratio: %+v, want inconclusive on its own, not a failure", out[1])
	}
}

// TestAnchorFlagger1095Verdict: NaN (0/0 without traffic) is no data: it
// neither passes a check nor breaks a run of bad looks; the third bad look
// regresses, and a watch of NaN alone is inconclusive, never healthy.
func TestAnchorFlagger1095Verdict(t *testing.T) {
	t.Parallel()
	spec := Spec{Name: "request-success-rate", Query: "q", Min: f64(99), Consecutive: 3}
	j := newJudge([]Spec{spec}, JudgeOptions{})
	rs := []Reading{
		value("request-success-rate", 50, true, 1, 3),
		value("request-success-rate", 50, true, 2, 3),
		noData("request-success-rate", KindThreshold, NoDataNaN),
		value("request-success-rate", 50, true, 3, 3),
	}
	var reg *Regression
	for i, r := range rs {
		reg = j.Observe(look(i, r))
	}
	if reg == nil || reg.Rule != RuleThreshold || !strings.Contains(reg.Reason, "below its min of 99, in 3 looks in a row") {
		t.Fatalf("regression %+v", reg)
	}
	nan := newJudge([]Spec{spec}, JudgeOptions{})
	for i := range 12 {
		nan.Observe(look(i, noData("request-success-rate", KindThreshold, NoDataNaN)))
	}
	if o := nan.Finish(j0.Add(time.Minute), true)[0]; o.Inconclusive == "" || o.Regressed {
		t.Errorf("NaN throughout: %+v, want inconclusive", o)
	}
}

// TestAnchorSpinnaker5622Verdict: a control (production before the deploy)
// without traffic is no yardstick, never a 0% error rate: the canary's 307
// errors of 1,000 are judged against the absolute limit and regress.
func TestAnchorSpinnaker5622Verdict(t *testing.T) {
	t.Parallel()
	spec := rateMetric("http-errors", 0.01)
	control := NewBaselines([]Spec{spec}, 0.99, 1)
	for i := range 12 {
		control.Observe(look(i, counts("http-errors", 0, 0)))
	}
	if ok, why := control.Usable("http-errors", 20); ok || !strings.Contains(why, "counted 0 requests") {
		t.Fatalf("a control without traffic is usable (%s)", why)
	}
	j := newJudge([]Spec{spec}, JudgeOptions{Baselines: control})
	reg := j.Observe(look(0, counts("http-errors", 1000, 307)))
	if reg == nil || reg.Rule != "error-rate" || reg.Evidence.AllowedErrorRate != 0.01 {
		t.Fatalf("307 errors of 1000 against a control without traffic: %+v", reg)
	}
}

// TestAnchorOneTransient5xxAtLowTrafficVerdict: one 5xx of 4 requests is 25% to a
// tool that compares each interval's ratio with 1%; here it is weighed by
// its 4 requests and regresses nothing, and a watch that saw only those 4
// requests is inconclusive rather than healthy.
func TestAnchorOneTransient5xxAtLowTrafficVerdict(t *testing.T) {
	t.Parallel()
	j := newJudge([]Spec{rateMetric("http-errors", 0.01)}, JudgeOptions{})
	for i := range 12 {
		r := counts("http-errors", 0, 0)
		if i == 3 {
			r = counts("http-errors", 4, 1)
		}
		if reg := j.Observe(look(i, r)); reg != nil {
			t.Fatalf("look %d: one transient 5xx regressed the build: %+v", i, reg)
		}
	}
	o := j.Finish(j0.Add(time.Minute), true)[0]
	if o.Regressed || !strings.Contains(o.Inconclusive, "counted 4 requests over the watch, fewer than min-requests (20)") {
		t.Errorf("outcome %+v, want inconclusive for too few requests", o)
	}
	// The same error among enough requests clears the build.
	j = newJudge([]Spec{rateMetric("http-errors", 0.01)}, JudgeOptions{})
	for i := range 12 {
		r := counts("http-errors", 40, 0)
		if i == 3 {
			r = counts("http-errors", 40, 1)
		}
		j.Observe(look(i, r))
	}
	if o := j.Finish(j0.Add(time.Minute), true)[0]; o.Regressed || o.Inconclusive != "" {
		t.Errorf("one 5xx in 480 requests: %+v, want healthy", o)
	}
}
