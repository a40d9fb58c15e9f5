package verdict

import (
	"math"
	"sort"
	"time"

	"github.com/immune-cd/immune/internal/latency"
)

// Baseline summarises looks at current production taken before the
// deploy, for judging the new build relative to it. It also judges them,
// as a watch of their own against the absolute limits, to tell whether
// production is fit to be a yardstick (see Unhealthy). Its memory does not
// grow with the number of looks.
type Baseline struct {
	n, failures int64
	latencies   latency.Sketch // answered requests
	check       *Engine        // production against the absolute limits
}

// NewBaseline starts a baseline; l are the absolute limits, with the
// baseline watch's own Horizon and Targets.
func NewBaseline(l Limits) *Baseline {
	return &Baseline{check: New(l)}
}

// Observe records one look at production.
func (b *Baseline) Observe(o Observation) {
	b.check.Observe(o)
	b.n += o.N
	b.failures += o.Failed
	switch {
	case o.Latencies != nil:
		b.latencies.Merge(o.Latencies)
	case o.N == 1 && (o.Latency > 0 || o.Failed == 0):
		b.latencies.Add(o.Latency)
	}
}

// Probes is the number of requests seen (baseline probes).
func (b *Baseline) Probes() int64 { return b.n }

// Failures is the number of failed requests.
func (b *Baseline) Failures() int64 { return b.failures }

// FailureRate is production's observed failure rate, 0 without requests.
func (b *Baseline) FailureRate() float64 { return rate(b.failures, b.n) }

// Latency is production's nearest-rank percentile-th latency percentile over
// answered requests, 0 without any.
func (b *Baseline) Latency(percentile float64) time.Duration {
	return b.latencies.Quantile(percentile / 100)
}

// Unhealthy reports whether production itself breaks the absolute limits,
// judged like a watch of the baseline's looks, and why. A baseline
// without looks is unusable and reported as such. When production is
// unhealthy the caller should judge the new build with New instead, and
// say so. It ends the baseline: call it once all looks are in.
func (b *Baseline) Unhealthy() (bool, string) {
	if b.n == 0 {
		return true, "the baseline has no probes"
	}
	d := b.check.Finish()
	if d.Outcome != Regressed {
		return false, ""
	}
	return true, "production was already unhealthy before the deploy: " + d.Reason
}

// baselineTest is the error test of baseline mode: "the new build's failure
// rate is above production's plus margin", where production's rate is not
// known but sampled by the baseline's looks. Taking production's measured
// rate as the truth ignores that a short baseline is noisy: with 2 minutes
// of 1,000 requests a minute at 0.5%, production's rate is known to within
// about a third of a point, and a build exactly at the limit was rolled back
// in 3.45% of watches (24.6% with errors in bursts).
//
// So the judgment is two-sample, by universal inference: for every rate p
// production may have, the evidence against p is the product of an
// e-value of the baseline's counts against p (a Jeffreys mixture of
// binomial likelihood ratios: large where the baseline rules p out) and the
// mixture test's likelihood ratio of the new build's counts against p +
// margin (with a component at p + margin itself, so that a p the new
// counts fit cannot hide a p the baseline rules out); the build regresses
// when the evidence is at least 1/α for every p. For the true p the product
// is a nonnegative supermartingale of mean at most 1 (the baseline's
// e-value times a test martingale of the new looks), so by Ville's
// inequality the build is rolled back in at most α of watches, whatever
// production's rate was, for independent requests; with Limits.Dispersion
// each component's evidence is divided by the new build's over-dispersion,
// as in the count test (a tempered product above 1 is never above the
// untempered one). It looks at the counts from the deploy on: a change-
// point part, as in the count test, would need a recursion for every p.
type baselineTest struct {
	margin   float64
	logBound float64
	nb, xb   float64 // production's requests and failures
	logNorm  float64 // log of the baseline's Jeffreys marginal likelihood
	pb       float64 // production's estimated rate
}

func newBaselineTest(b *Baseline, margin, alpha float64) *baselineTest {
	nb, xb := float64(b.n), float64(b.failures)
	return &baselineTest{margin: margin, logBound: math.Log(1 / alpha), nb: nb, xb: xb,
		logNorm: logBeta(xb+0.5, nb-xb+0.5) - logBeta(0.5, 0.5), pb: (xb + 0.5) / (nb + 1)}
}

func logBeta(a, b float64) float64 {
	la, _ := math.Lgamma(a)
	lb, _ := math.Lgamma(b)
	lab, _ := math.Lgamma(a + b)
	return la + lb - lab
}

// logE is the log of the evidence against production's rate being p, for
// n new requests with x failed, each component tempered by phi.
func (t *baselineTest) logE(p, n, x, phi float64) float64 {
	base := t.logNorm - (t.xb*math.Log(p) + (t.nb-t.xb)*math.Log1p(-p))
	p0 := p + t.margin
	var vs [len(baselineTimes) + 1]float64 // the null component and baselineTimes
	vs[0] = base / phi
	k := 1
	for _, r := range baselineTimes {
		q := regressedRate(p0, r)
		if q <= p0 || q >= 1 {
			continue
		}
		vs[k] = (base + x*math.Log(q/p0) + (n-x)*math.Log((1-q)/(1-p0))) / phi
		k++
	}
	top := math.Inf(-1)
	for _, v := range vs[:k] {
		top = max(top, v)
	}
	sum := 0.0
	for _, v := range vs[:k] {
		sum += math.Exp(v - top)
	}
	return top + math.Log(sum/float64(len(baselineTimes)+1))
}

// baselineTimes are the new build's alternatives in baseline mode, as
// multiples of production's rate plus the margin: mixtureTimes and two
// closer ones, since the rates production may have had reach up to where
// a regression is only a little above them.
var baselineTimes = [...]float64{1.1, 1.25, 1.5, 2.5, 4, 6.5, 10, 16}

// pGrid is how many rates production may have the search tries, between
// its estimate and 1 − margin.
const pGrid = 48

// trips reports whether bad of n new requests regress at every rate
// production may have had.
func (t *baselineTest) trips(n, bad int64, _ bool, temper float64) bool {
	if bad < minBad || t.margin >= 1 {
		return false
	}
	temper = max(temper, 1)
	nf, xf := float64(n), float64(bad)
	hi := 1 - t.margin - 1e-12
	if t.pb >= hi || t.logE(t.pb, nf, xf, temper) < t.logBound {
		return false // production's own estimate is enough to doubt it
	}
	// Lower rates make both factors larger; search the higher ones, on a
	// geometric grid and then around its least point.
	best, at := math.Inf(1), t.pb
	for i := 0; i <= pGrid; i++ {
		p := t.pb * math.Pow(hi/t.pb, float64(i)/pGrid)
		if v := t.logE(p, nf, xf, temper); v < best {
			best, at = v, p
		}
		if best < t.logBound {
			return false
		}
	}
	step := math.Pow(hi/t.pb, 1.0/pGrid)
	lo, up := max(t.pb, at/step), min(hi, at*step)
	for range 40 {
		m1, m2 := lo+(up-lo)*0.382, lo+(up-lo)*0.618
		if t.logE(m1, nf, xf, temper) < t.logE(m2, nf, xf, temper) {
			up = m2
		} else {
			lo = m1
		}
		if t.logE((lo+up)/2, nf, xf, temper) < t.logBound {
			return false
		}
	}
	return true
}

// limit is the lowest failed count that regresses n new requests.
func (t *baselineTest) limit(n int64, final bool, temper float64) int64 {
	if n < minBad || !t.trips(n, n, final, temper) {
		return never
	}
	return minBad + int64(sort.Search(int(min(n-minBad+1, math.MaxInt)), func(i int) bool { return t.trips(n, minBad+int64(i), final, temper) }))
}
