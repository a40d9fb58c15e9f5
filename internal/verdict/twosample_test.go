package verdict

import (
	"math"
	"math/rand/v2"
	"testing"

	sim "github.com/immune-cd/immune/internal/testkit/traffic"
)

// binomialPMF is P(X = x) for X ~ Binomial(n, p), exactly enough for small n.
func binomialPMF(n, x int, p float64) float64 {
	lg := func(k int) float64 { v, _ := math.Lgamma(float64(k + 1)); return v }
	if p == 0 {
		if x == 0 {
			return 1
		}
		return 0
	}
	if p == 1 {
		if x == n {
			return 1
		}
		return 0
	}
	return math.Exp(lg(n) - lg(x) - lg(n-x) + float64(x)*math.Log(p) + float64(n-x)*math.Log1p(-p))
}

// The heart of the test's validity: for one look, the expected factor e
// under every point of the null is at most 1, computed exactly by summing
// over every outcome, for many alternatives, margins and look sizes, at
// null points on the boundary and inside.
func TestTwoSampleFactorIsAtMostOneUnderEveryNull(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(7, 11))
	worst := 0.0
	for trial := 0; trial < 400; trial++ {
		delta := []float64{0.001, 0.005, 0.02, 0.05, 0.2}[rng.IntN(5)]
		nc, ns := 1+rng.IntN(6), 1+rng.IntN(12)
		qs := math.Pow(10, -3+2.5*rng.Float64())
		if qs+delta >= 1 {
			continue
		}
		for _, upward := range []bool{true, false} {
			ts := newTwoSample(delta, 0.01, upward)
			for _, r := range ts.times {
				qc, ok := ts.alternative(qs, r)
				if !ok {
					continue
				}
				p := project(qc, qs, delta, float64(nc), float64(ns))
				// Null points: the boundary p_c = p_s + δ, and inside.
				for i := 0; i <= 40; i++ {
					ps := (1 - delta) * float64(i) / 40
					for _, in := range []float64{0, 0.3, 1} {
						pc := ps + delta
						if upward {
							pc -= in * pc // p_c ≤ p_s + δ
						} else {
							pc += in * (1 - pc) // p_c ≥ p_s + δ
						}
						// The two tracks are independent: E[e] is the product
						// of each track's expected factor.
						ec, es := 0.0, 0.0
						for xc := 0; xc <= nc; xc++ {
							ec += binomialPMF(nc, xc, pc) * math.Exp(logLR(qc, p+delta, int64(nc), int64(xc)))
						}
						for xs := 0; xs <= ns; xs++ {
							es += binomialPMF(ns, xs, ps) * math.Exp(logLR(qs, p, int64(ns), int64(xs)))
						}
						e := ec * es
						worst = max(worst, e)
						if e > 1+1e-9 {
							t.Fatalf("upward %v, δ %g, n %d/%d, q %g/%g: E[e] = %.12f > 1 at p_c %g, p_s %g (projection %g)",
								upward, delta, nc, ns, qc, qs, e, pc, ps, p)
						}
					}
				}
			}
		}
	}
	if worst < 0.999 {
		t.Errorf("the largest E[e] found was %g: the projection is not the worst case, the test wastes power", worst)
	}
}

// simulateTwoSample runs watches of looks with the given rates per look and
// returns the share of watches whose test rejected.
func simulateTwoSample(seed uint64, watches, looks int, nc, ns int, delta, alpha float64, upward bool, rates func(look int) (pc, ps float64)) float64 {
	rng := rand.New(rand.NewPCG(seed, 3))
	rejected := 0
	for range watches {
		ts := newTwoSample(delta, alpha, upward)
		for i := 0; i < looks; i++ {
			pc, ps := rates(i)
			ts.look(int64(nc), int64(sim.Binomial(rng, nc, pc)), int64(ns), int64(sim.Binomial(rng, ns, ps)), 1)
			if ts.rejects(1) {
				rejected++
				break
			}
		}
	}
	return float64(rejected) / float64(watches)
}

// At the margin, and under a shared incident that moves both tracks' rates
// together, the regression test rejects in at most α of watches; a clear
// regression it rejects in nearly all.
func TestTwoSampleFalseAlarmsAndPower(t *testing.T) {
	t.Parallel()
	const alpha = 0.01
	watches := 1000
	// Slack for the simulation's own noise: 3 standard errors.
	bound := alpha + 3*math.Sqrt(alpha*(1-alpha)/float64(watches))
	cases := []struct {
		name     string
		nc, ns   int
		delta    float64
		rates    func(int) (float64, float64)
		looks    int
		atMost   float64
		atLeast  float64
		upward   bool
		describe string
	}{
		{name: "probes at the margin", nc: 1, ns: 1, delta: 0.05, looks: 400, atMost: bound, upward: true,
			rates: func(int) (float64, float64) { return 0.06, 0.01 }},
		{name: "counts at the margin", nc: 12, ns: 240, delta: 0.005, looks: 240, atMost: bound, upward: true,
			rates: func(int) (float64, float64) { return 0.015, 0.01 }},
		{name: "identical builds", nc: 12, ns: 240, delta: 0.005, looks: 240, atMost: bound, upward: true,
			rates: func(int) (float64, float64) { return 0.01, 0.01 }},
		{name: "a shared incident", nc: 25, ns: 25, delta: 0.005, looks: 240, atMost: bound, upward: true,
			rates: func(i int) (float64, float64) {
				if i >= 40 && i < 100 {
					return 0.3, 0.3
				}
				return 0.01, 0.01
			}},
		{name: "a shared incident at the margin", nc: 25, ns: 25, delta: 0.005, looks: 240, atMost: bound, upward: true,
			rates: func(i int) (float64, float64) {
				if i >= 40 && i < 100 {
					return 0.305, 0.3
				}
				return 0.015, 0.01
			}},
		{name: "a 5× regression", nc: 25, ns: 225, delta: 0.005, looks: 240, atLeast: 0.99, upward: true,
			rates: func(int) (float64, float64) { return 0.05, 0.01 }},
		{name: "probes, 30% failing", nc: 1, ns: 1, delta: 0.05, looks: 300, atLeast: 0.99, upward: true,
			rates: func(int) (float64, float64) { return 0.3, 0.01 }},
		{name: "no-worse, at the margin", nc: 25, ns: 225, delta: 0.005, looks: 240, atMost: bound,
			rates: func(int) (float64, float64) { return 0.015, 0.01 }},
		{name: "no-worse, identical builds", nc: 250, ns: 250, delta: 0.005, looks: 240, atLeast: 0.95,
			rates: func(int) (float64, float64) { return 0.01, 0.01 }},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			got := simulateTwoSample(uint64(100+i), watches, c.looks, c.nc, c.ns, c.delta, alpha, c.upward, c.rates)
			if c.atMost > 0 && got > c.atMost {
				t.Errorf("rejected in %.2f%% of watches, want at most %.2f%%", 100*got, 100*c.atMost)
			}
			if c.atLeast > 0 && got < c.atLeast {
				t.Errorf("rejected in %.2f%% of watches, want at least %.2f%%", 100*got, 100*c.atLeast)
			}
			t.Logf("rejected in %.2f%% of %d watches", 100*got, watches)
		})
	}
}

func TestProjectIsTheMinimum(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(1, 2))
	for range 2000 {
		delta := math.Pow(10, -3+2*rng.Float64())
		qs := math.Pow(10, -4+3.5*rng.Float64())
		if qs+delta >= 0.99 {
			continue
		}
		qc := qs + delta + (1-qs-delta)*rng.Float64()
		if rng.IntN(2) == 0 {
			qc = (qs + delta) * rng.Float64()
		}
		nc, ns := float64(1+rng.IntN(1000)), float64(1+rng.IntN(1000))
		f := func(p float64) float64 {
			kl := func(q, p float64) float64 { return q*math.Log(q/p) + (1-q)*math.Log((1-q)/(1-p)) }
			return nc*kl(qc, p+delta) + ns*kl(qs, p)
		}
		p := project(qc, qs, delta, nc, ns)
		if !(p > 0 && p < 1-delta) {
			t.Fatalf("projection %g outside (0, 1−δ) for q %g/%g δ %g", p, qc, qs, delta)
		}
		for _, h := range []float64{1e-7, 1e-5} {
			for _, q := range []float64{p * (1 - h), p * (1 + h)} {
				if q > 0 && q < 1-delta && f(q) < f(p)-max(1e-7*math.Abs(f(p)), 1e-13) {
					t.Fatalf("F(%g) = %g < F(projection %g) = %g for q %g/%g δ %g n %g/%g", q, f(q), p, f(p), qc, qs, delta, nc, ns)
				}
			}
		}
	}
}

// Tempering never makes the test reject where it would not untempered: the
// tempered mixture is at most the untempered one to the power 1/temper.
func TestTwoSampleTemperingNeverAddsEvidence(t *testing.T) {
	t.Parallel()
	rng := rand.New(rand.NewPCG(4, 5))
	for range 2000 {
		ts := newTwoSample(0.01, 0.01, true)
		for j := range ts.logE {
			ts.logE[j] = 40 * (rng.Float64() - 0.3)
		}
		ts.xc = minBad
		untempered := ts.logRatio(1)
		for _, phi := range []float64{1, 1.5, 3, 10} {
			if got := ts.logRatio(phi); got > untempered/phi+1e-9 {
				t.Fatalf("tempered by %g: log M %g > %g / %g", phi, got, untempered, phi)
			}
			if ts.rejects(phi) && !ts.rejects(1) {
				t.Fatalf("rejects tempered by %g but not untempered", phi)
			}
		}
	}
}
