package verdict

import "math"

// countTest is the sequential test of counts of real traffic
// (Limits.Dispersion): "the share of failed requests is above rate", for a
// rate that may change during the watch. Production's traffic is not a
// build failing at one rate from the first look: a regression may start
// mid-watch (a feature flag, a cache that fills, a dependency that
// degrades), and a test whose evidence is the whole watch's counts carries
// the healthy half as evidence against it: at 10,000 requests a minute, 0.5%
// errors for 30 minutes and then 2% (twice the allowed 1%) goes unnoticed
// for the rest of the hour.
//
// So the statistic mixes two parts over the same alternatives as the
// mixture test (mixtureTimes, equally weighted):
//
//   - from the start (weight fromStart): the likelihood ratio of all the
//     counts so far, Σ_j w_j exp(L_j/φ), where L_j = x·log(q_j/p) + (n −
//     x)·log((1 − q_j)/(1 − p)) for the cumulative counts and φ is the
//     errors' over-dispersion now (dispersion.go): the mixture test of
//     mixture.go, tempered;
//   - since an onset (weight 1 − fromStart): the likelihood ratio of the
//     looks since look k, for every k, weighted by a prior over the onset,
//     Σ_k π_k Π_{t ≥ k} e_t, where each look's factor e_t is its likelihood
//     ratio raised to 1/φ of the look before (φ is then known before the
//     look is seen). This is the Shiryaev–Roberts statistic made a mixture:
//     it restarts its evidence at every look, yet costs O(1) per look, since
//     S_t = (S_{t−1} + π_t)·e_t.
//
// The onset prior spreads over information, not looks: π_t is the mass of
// G(u) = u/(u + onsetScale) between the expected errors at the allowed rate
// before look t and after it, so that looks without traffic get no mass and
// a watch of 5 requests a minute does not spend its prior on looks that
// cannot show anything. Onsets not yet reached keep their mass at 1.
//
// # Why the bound holds
//
// For a build failing at the allowed rate p (or below) with independent
// requests, each look's likelihood ratio has mean at most 1 whatever came
// before, and so does its power 1/φ for any φ ≥ 1 chosen before the look
// (Jensen's inequality): each onset's product is a nonnegative
// supermartingale, and so is their mixture with weights fixed before each
// look (π_t depends on the look's request count, not on its errors). The
// from-start part is the mixture test's martingale, tempered at the check:
// a tempered ratio above 1 is never above the untempered one. So the
// statistic reaches 1/α only where a nonnegative supermartingale of mean 1
// reaches 1/α − fromStart, which by Ville's inequality happens in at most
// α/(1 − fromStart·α) of watches, however long the watch and however often it
// looks. With errors in bursts the bound rests on φ being estimated well
// (see dispersion.go and the benchmark tables).
type countTest struct {
	rate     float64
	logBound float64 // log(1/α)
	// Component j's log-likelihood ratio of one look: x·perBad[j] +
	// n·perReq[j].
	perBad, perReq []float64

	n, x  int64   // counts so far
	u     float64 // expected errors at rate so far: the onset prior's clock
	looks int64

	// The onset part, per component: S_j, and its largest term (the most
	// telling onset): its weight·evidence, look and counts since.
	since []float64
	best  []onset
	// phi is the over-dispersion the next look's onset evidence is divided
	// by: the estimate after the last look.
	phi float64
}

// onset is the most telling onset of one component.
type onset struct {
	term float64 // π_k Π e_t
	look int64   // 1-based look of the onset
	n, x int64   // counts since it
}

const (
	// fromStart is the from-start part's weight; the rest goes to onsets.
	fromStart = 0.8
	// onsetScale is the expected errors at the allowed rate by which half
	// the onset prior is spent (about half an hour at 1,000 requests a
	// minute and 1%).
	onsetScale = 100
)

func newCountTest(rate, alpha float64) *countTest {
	t := &countTest{rate: rate, logBound: math.Log(1 / alpha), phi: priorDispersion}
	if rate >= 1 {
		return t // no rate can be above it: never trips
	}
	for _, r := range mixtureTimes {
		q := regressedRate(rate, r)
		if n := len(t.perBad); n > 0 && q <= rate+(1-rate)*1e-9 {
			continue
		}
		good := math.Log((1 - q) / (1 - rate))
		t.perBad = append(t.perBad, math.Log(q/rate)-good)
		t.perReq = append(t.perReq, good)
	}
	t.since = make([]float64, len(t.perBad))
	t.best = make([]onset, len(t.perBad))
	return t
}

// onsetMass is the prior's mass of G between u0 and u1.
func onsetMass(u0, u1 float64) float64 {
	return (1 - fromStart) * (u1/(u1+onsetScale) - u0/(u0+onsetScale))
}

// look adds a look's counts, with its onset evidence divided by the φ of
// the look before; phi is the estimate after this look, used by the check
// and by the next look.
func (t *countTest) look(n, x int64, phi float64) {
	if n <= 0 {
		t.phi = phi
		return
	}
	t.looks++
	t.n, t.x = t.n+n, t.x+x
	u0 := t.u
	t.u += t.rate * float64(n)
	pi := onsetMass(u0, t.u)
	nf, xf := float64(n), float64(x)
	for j := range t.perBad {
		e := math.Exp(min((xf*t.perBad[j]+nf*t.perReq[j])/t.phi, 700))
		b := &t.best[j]
		if pi >= b.term {
			*b = onset{term: pi, look: t.looks}
		}
		b.term, b.n, b.x = min(b.term*e, math.MaxFloat64), b.n+n, b.x+x
		t.since[j] = min((t.since[j]+pi)*e, math.MaxFloat64)
	}
	t.phi = phi
}

// ratio returns the statistic's log and whether the onset part carries
// more of it than the from-start part (so that a reason can say since
// when).
func (t *countTest) ratio() (logM float64, late bool) {
	if len(t.perBad) == 0 {
		return math.Inf(-1), false
	}
	w := 1 / float64(len(t.perBad))
	nf, xf := float64(t.n), float64(t.x)
	// Sum in log space from the largest from-start term, which may be far
	// beyond a float64.
	top := math.Inf(-1)
	for j := range t.perBad {
		top = max(top, (xf*t.perBad[j]+nf*t.perReq[j])/t.phi)
	}
	start, since := 0.0, 0.0
	for j := range t.perBad {
		start += fromStart * w * math.Exp((xf*t.perBad[j]+nf*t.perReq[j])/t.phi-top)
		since += w * t.since[j]
	}
	waiting := (1 - fromStart) * (1 - t.u/(t.u+onsetScale))
	logStart := top + math.Log(start)
	rest := since + waiting
	if rest <= 0 {
		return logStart, false
	}
	logRest := math.Log(rest)
	hi, lo := max(logStart, logRest), min(logStart, logRest)
	return hi + math.Log1p(math.Exp(lo-hi)), logRest > logStart
}

// trips reports whether the counts so far regress: the statistic has
// reached 1/α, with at least minBad failed requests.
func (t *countTest) trips() bool {
	if t.x < minBad || len(t.perBad) == 0 {
		return false
	}
	// Each part is at most its largest term (the weights sum to at most
	// 1), so most looks are settled without the exponentials of ratio.
	nf, xf := float64(t.n), float64(t.x)
	possible := false
	for j := range t.perBad {
		if (xf*t.perBad[j]+nf*t.perReq[j])/t.phi >= t.logBound-0.7 || t.since[j] >= math.Exp(t.logBound)*0.4 {
			possible = true
			break
		}
	}
	if !possible {
		return false
	}
	logM, _ := t.ratio()
	return logM >= t.logBound
}

// onset returns the most telling onset of the component that carries the
// most evidence since one.
func (t *countTest) onset() onset {
	var o onset
	for _, b := range t.best {
		if b.term > o.term {
			o = b
		}
	}
	return o
}
