package verdict

import (
	"math"
	"sort"
)

// mixtureTimes are the regressions, as multiples of the allowed rate, that
// the mixture test weighs equally. They span the 1.5× regression a long
// watch of real traffic can see to the gross one a few probes show; the
// spacing (about 1.6× apart) loses little to a regression that falls
// between two of them.
var mixtureTimes = []float64{1.5, 2.5, 4, 6.5, 10, 16}

// mixture is a mixture sequential probability ratio test of "the share of
// bad requests is above rate" against the alternatives that the share is
// regressedRate(rate, r) for each r of mixtureTimes, weighted equally.
//
// Its statistic after n requests with bad of them bad is the mixture of
// likelihood ratios M = Σ w_j (p_j/p0)^bad ((1−p_j)/(1−p0))^(n−bad), which
// depends only on the cumulative counts. For a build failing at the allowed
// rate p0, M is a martingale of mean 1 (for a lower rate, a
// supermartingale), however the requests are grouped into looks, so by
// Ville's inequality M reaches 1/α at some look with probability at most
// α, whenever the watch stops. It is the always-valid test of the
// sequential-testing literature (Robbins' mixtures; Johari et al.'s
// mSPRT), on a discrete grid so that a look costs a few multiply-adds.
type mixture struct {
	rate     float64
	alpha    float64
	logBound float64 // log(1/α)
	// Component j contributes log w_j + bad·perBad[j] + n·perLook[j].
	perBad, perReq, logW []float64
}

func newMixture(rate, alpha float64) *mixture {
	m := &mixture{rate: rate, alpha: alpha, logBound: math.Log(1 / alpha)}
	if rate >= 1 {
		return m // no rate can be above it: never trips
	}
	for _, r := range mixtureTimes {
		q := regressedRate(rate, r)
		if n := len(m.perBad); n > 0 && q <= rate+(1-rate)*1e-9 {
			continue
		}
		good := math.Log((1 - q) / (1 - rate)) // < 0
		m.perBad = append(m.perBad, math.Log(q/rate)-good)
		m.perReq = append(m.perReq, good)
	}
	w := math.Log(1 / float64(len(m.perBad)))
	for range m.perBad {
		m.logW = append(m.logW, w)
	}
	return m
}

// logRatio is log M after n requests, bad of them bad, with each
// component's log-likelihood ratio divided by temper (1: untempered; see
// dispersion.go).
func (m *mixture) logRatio(n, bad int64, temper float64) float64 {
	nf, bf := float64(n), float64(bad)
	top := math.Inf(-1)
	for j := range m.perBad {
		if v := m.logW[j] + (bf*m.perBad[j]+nf*m.perReq[j])/temper; v > top {
			top = v
		}
	}
	sum := 0.0
	for j := range m.perBad {
		sum += math.Exp(m.logW[j] + (bf*m.perBad[j]+nf*m.perReq[j])/temper - top)
	}
	return top + math.Log(sum)
}

// trips reports whether bad of n requests regress. The end of the watch
// changes nothing: the test never planned for one. temper ≥ 1 divides the
// evidence (the looks' over-dispersion; 1 for independent requests).
func (m *mixture) trips(n, bad int64, _ bool, temper float64) bool {
	if bad < minBad || len(m.perBad) == 0 {
		return false
	}
	temper = max(temper, 1)
	// M is at most its largest component's ratio (the weights sum to 1),
	// so most looks are settled without an exponential.
	nf, bf := float64(n), float64(bad)
	for j := range m.perBad {
		if (bf*m.perBad[j]+nf*m.perReq[j])/temper >= m.logBound {
			return m.logRatio(n, bad, temper) >= m.logBound
		}
	}
	return false
}

// limit is the lowest bad count that trips after n requests.
func (m *mixture) limit(n int64, final bool, temper float64) int64 {
	if n < minBad || !m.trips(n, n, final, temper) {
		return never
	}
	// M rises with every bad request, so the search is monotone.
	return minBad + int64(sort.Search(int(min(n-minBad+1, math.MaxInt)), func(i int) bool { return m.trips(n, minBad+int64(i), final, temper) }))
}
