package verdict

import (
	"fmt"
	"testing"
	"time"

	"pgregory.net/rapid"
)

var targetURLs = []string{urlA, urlB, "https://c.example.com/healthz"}

// drawLimits draws sensible limits, latency rule included.
func drawLimits(t *rapid.T) Limits {
	return Limits{
		MaxErrorRate:        rapid.SampledFrom([]float64{0.01, 0.05, 0.1, 0.3}).Draw(t, "maxErrorRate"),
		ConsecutiveFailures: rapid.IntRange(0, 5).Draw(t, "consecutive"),
		MaxLatency:          time.Duration(rapid.IntRange(0, 500).Draw(t, "maxLatencyMs")) * time.Millisecond,
		LatencyPercentile:   rapid.SampledFrom([]float64{50, 90, 95, 99}).Draw(t, "percentile"),
		Confidence:          rapid.SampledFrom([]float64{0.9, 0.95, 0.99, 0.999}).Draw(t, "confidence"),
		Horizon:             rapid.SampledFrom([]int{0, 20, 100, 300}).Draw(t, "horizon"),
		Targets:             len(targetURLs) + 1, // drawProbes' and one bad one
	}
}

// drawProbes draws a stream over a few targets; latencies are positive so
// that flipping Failed never changes the latency accounting.
func drawProbes(t *rapid.T, failures bool) []Observation {
	targets := rapid.IntRange(1, len(targetURLs)).Draw(t, "targets")
	return rapid.SliceOfN(rapid.Custom(func(t *rapid.T) Observation {
		return Probe(
			targetURLs[rapid.IntRange(0, targets-1).Draw(t, "target")],
			failures && rapid.IntRange(0, 9).Draw(t, "fail") < 3,
			time.Duration(rapid.IntRange(1, 1000).Draw(t, "latencyMs"))*time.Millisecond,
		)
	}), 0, 200).Draw(t, "probes")
}

// verdictOf runs a whole watch.
func verdictOf(l Limits, obs []Observation) Decision {
	d, _ := run(New(l), obs)
	return d
}

func TestPropertySuccessesNeverRegress(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		l := drawLimits(t)
		l.MaxLatency = 0 // successes may be slow; only the error rules apply
		e := New(l)
		for _, o := range drawProbes(t, false) {
			if d := e.Observe(o); d.Outcome != Continue {
				t.Fatalf("Observe: %+v", d)
			}
		}
		if d := e.Finish(); d.Outcome != Healthy {
			t.Fatalf("Finish: %+v", d)
		}
	})
}

func TestPropertyMoreFailuresNeverHelp(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		l := drawLimits(t)
		obs := drawProbes(t, true)
		before := verdictOf(l, obs)
		if before.Outcome != Regressed {
			t.Skip("nothing to flip towards")
		}
		var successes []int
		for i, o := range obs {
			if o.Failed == 0 {
				successes = append(successes, i)
			}
		}
		if len(successes) == 0 {
			t.Skip("no success to flip")
		}
		i := rapid.SampledFrom(successes).Draw(t, "flip")
		flipped := append([]Observation(nil), obs...)
		flipped[i].Failed = 1
		if after := verdictOf(l, flipped); after.Outcome != Regressed {
			t.Fatalf("regressed (%s) before probe %d failed, %v after: %s", before.Reason, i+1, after.Outcome, after.Reason)
		}
	})
}

func TestPropertyConsecutiveFailuresIsExact(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		l := drawLimits(t)
		l.ConsecutiveFailures = rapid.IntRange(1, 6).Draw(t, "consecutive")
		e := New(l)
		runs := map[string]int{}
		for i, o := range drawProbes(t, true) {
			if o.Failed == 1 {
				runs[o.Target]++
			} else {
				runs[o.Target] = 0
			}
			d := e.Observe(o)
			if d.Rule == RuleConsecutiveFailures && runs[o.Target] != l.ConsecutiveFailures {
				t.Fatalf("probe %d: consecutive rule with a run of %d, limit %d", i+1, runs[o.Target], l.ConsecutiveFailures)
			}
			if runs[o.Target] == l.ConsecutiveFailures && d.Outcome != Regressed {
				t.Fatalf("probe %d: run of %d did not regress", i+1, runs[o.Target])
			}
			if d.Outcome == Regressed {
				return
			}
		}
	})
}

// With up to three in a row, any number of successes followed by one
// failure fewer than the limit never regresses, and the next one does.
func TestPropertyConsecutiveFailuresNeverEarly(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		l := drawLimits(t)
		l.MaxLatency = 0
		l.ConsecutiveFailures = rapid.IntRange(1, 3).Draw(t, "consecutive")
		e := New(l)
		obs := append(repeat(ok(urlA), rapid.IntRange(0, 400).Draw(t, "successes")), repeat(fail(urlA), l.ConsecutiveFailures-1)...)
		for i, o := range obs {
			if d := e.Observe(o); d.Outcome != Continue {
				t.Fatalf("probe %d of %d regressed early: %s", i+1, len(obs), d.Reason)
			}
		}
		if d := e.Observe(fail(urlA)); d.Rule != RuleConsecutiveFailures {
			t.Fatalf("the failure completing the run gave %+v", d)
		}
	})
}

func TestPropertyOneBadTargetRegresses(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		l := drawLimits(t)
		l.ConsecutiveFailures = rapid.IntRange(1, 5).Draw(t, "consecutive")
		others := drawProbes(t, true)
		bad := "https://bad.example.com/healthz"
		e := New(l)
		sent := 0
		for i := 0; sent < l.ConsecutiveFailures; i++ {
			if i < len(others) && rapid.Bool().Draw(t, "other first") {
				e.Observe(others[i])
				continue
			}
			e.Observe(fail(bad))
			sent++
		}
		if d := e.Finish(); d.Outcome != Regressed {
			t.Fatalf("%d failures in a row on %s: %+v", sent, bad, d)
		}
	})
}

func TestPropertyRegressedIsSticky(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		e := New(drawLimits(t))
		var first Decision
		for i, o := range drawProbes(t, true) {
			d := e.Observe(o)
			if first.Outcome == Regressed && d != first {
				t.Fatalf("probe %d: %+v after %+v", i+1, d, first)
			}
			if d.Outcome == Regressed {
				first = d
			}
		}
		if first.Outcome == Regressed && e.Finish() != first {
			t.Fatal(fmt.Sprint("Finish changed the verdict ", first))
		}
	})
}
