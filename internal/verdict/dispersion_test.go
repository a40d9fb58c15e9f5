package verdict

import (
	"math"
	"math/rand/v2"
	"strings"
	"testing"
)

// TestDispersionEstimate: the estimate is about 1 for independent errors
// and about the burst size for bursts, once the looks can show it; before,
// it leans on the prior.
func TestDispersionEstimate(t *testing.T) {
	t.Parallel()
	var d dispersion
	if got := d.phi(); got != priorDispersion {
		t.Errorf("no looks: φ = %v, want the prior %v", got, float64(priorDispersion))
	}
	for _, tc := range []struct {
		burst  int
		lo, hi float64
	}{{1, 1, 1.3}, {3, 2.4, 3.6}, {10, 8, 12}} {
		rng := rand.New(rand.NewPCG(7, uint64(tc.burst)))
		tr := newTraffic(rng, 0.01, tc.burst)
		var d dispersion
		for range 2000 {
			d.observe(500, int64(tr.look(500)))
		}
		if got := d.phi(); got < tc.lo || got > tc.hi {
			t.Errorf("bursts of %d over 2000 looks: φ = %.2f, want within [%v, %v]", tc.burst, got, tc.lo, tc.hi)
		}
	}
	// Huge counts lose no precision: the weighted variance is updated in
	// place, never as a difference of two large sums.
	var big dispersion
	for i := range 1000 {
		n := int64(1e12)
		big.observe(n, n/100+int64(i%2)*int64(math.Sqrt(float64(n)*0.0099)))
	}
	if got := big.phi(); got < 1 || got > 1.5 {
		t.Errorf("independent-sized noise at 10^12 requests a look: φ = %v, want about 1", got)
	}
}

// TestDispersionTempersTheEvidence: the same counts that regress an
// untempered engine do not regress one that saw them come in bursts, and
// the reason says why the limit is higher.
func TestDispersionTempersTheEvidence(t *testing.T) {
	t.Parallel()
	// Two looks of 250 requests, each with a burst of 10 errors: 20 of 500
	// (4%) against 1% allowed, which the looks cannot tell from a steady 4%.
	looks := []int64{10, 10}
	plain, tempered := New(countLimits(0.01, false)), New(countLimits(0.01, true))
	var dp, dt Decision
	for _, bad := range looks {
		dp = plain.Observe(Count("errors", 250, bad, nil))
		dt = tempered.Observe(Count("errors", 250, bad, nil))
	}
	if dp.Outcome != Regressed || dt.Outcome != Continue {
		t.Fatalf("untempered %v, tempered %v; want regressed and continue", dp.Outcome, dt.Outcome)
	}
	// Many more bursts at 4% do regress it, and the evidence says by how
	// much it was tempered.
	for range 40 {
		if dt = tempered.Observe(Count("errors", 250, 10, nil)); dt.Outcome == Regressed {
			break
		}
	}
	if dt.Outcome != Regressed || dt.Evidence.Dispersion <= 1 {
		t.Fatalf("bursts at 4%%: %+v", dt)
	}
	if !contains(dt.Reason, "the evidence divided by the errors' over-dispersion (") {
		t.Errorf("reason %q does not say the evidence was tempered", dt.Reason)
	}
}

// TestSignalsSplitTheAllowance: an engine that is one of two signals is as
// strict as a lone engine at half the allowance; the latency rule is not
// split.
func TestSignalsSplitTheAllowance(t *testing.T) {
	t.Parallel()
	l := countLimits(0.01, false)
	l.Signals = 2
	half := countLimits(0.01, false)
	half.Confidence = 0.995
	a, b := New(l), New(half)
	for _, n := range []int64{100, 1000, 100000} {
		if la, lb := a.errorTarget.limit(n, false, 1), b.errorTarget.limit(n, false, 1); la != lb {
			t.Errorf("limit after %d requests: %d with Signals 2, %d at half the allowance", n, la, lb)
		}
	}
	l.MaxLatency, half.MaxLatency = 1, 1
	lone := countLimits(0.01, false)
	lone.MaxLatency = 1
	if la, ll := New(l).latencyTarget.limit(1000, false, 1), New(lone).latencyTarget.limit(1000, false, 1); la != ll {
		t.Errorf("latency limit %d with Signals 2, %d alone: the latency rule must not be split", la, ll)
	}
	if err := (Limits{Signals: -1}).Validate(); err == nil || !contains(err.Error(), "Signals") {
		t.Errorf("Signals -1: %v", err)
	}
}

func contains(s, sub string) bool { return strings.Contains(s, sub) }

// At 5 and 20 requests a minute a burst of ten failed requests spans
// several looks, none of which is over-dispersed on its own: the runs of
// looks with errors show it, as it happens. Independent errors at five
// times the limit keep φ near 1.
func TestDispersionRunsAtLowTraffic(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(8, 1))
	// A burst of ten at 5 a minute (1.25 requests a look).
	d := dispersion{rate: 0.01}
	for range 40 {
		d.observe(1, 0)
	}
	for i, x := range []int64{1, 1, 2, 1, 1, 2, 1, 1} {
		d.observe(int64(max(x, 1)), x)
		if got := d.phi(); i >= 2 && got < float64(i+1) {
			t.Errorf("%d errors into the burst: φ = %.1f", i+1, got)
		}
	}
	// Independent errors at 5%.
	var ind dispersion
	ind.rate = 0.01
	for range 240 {
		n := 1 + rng.IntN(2)
		ind.observe(int64(n), int64(binomial(rng, n, 0.05)))
	}
	if got := ind.phi(); got > 1.3 {
		t.Errorf("independent errors at 5 a minute: φ = %.2f, want about 1", got)
	}
}

// A level shift (a regression that starts mid-watch) is not read as
// bursts: the windows' differences see it once, and one window's term is
// capped. (Pearson's statistic around the watch's mean read 0.5% then 2% at
// 10,000 requests a minute as φ ≈ 60.)
func TestDispersionLevelShift(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(8, 2))
	d := dispersion{rate: 0.01}
	var before float64
	for i := range 160 {
		p := 0.005
		if i >= 120 {
			p = 0.02
		}
		if i == 120 {
			before = d.phi()
		}
		d.observe(2500, int64(binomial(rng, 2500, p)))
	}
	if got := d.phi(); got > before+0.3 {
		t.Errorf("0.5%% then 2%% at 10,000 requests a minute: φ = %.2f forty looks after the shift, %.2f before it", got, before)
	}
}
