package verdict

import "math"

// twoSample is a sequential test that compares two streams of counts looked
// at in the same rounds: a canary's and its control's (the stable fleet,
// serving real traffic at the same time). It is the two-sample counterpart
// of mixture.go, built the same way: pure, a few dozen multiply-adds per
// look, and valid at any stopping time.
//
// # The hypotheses
//
// At look t the canary saw n_c requests of which x_c failed, the control n_s
// of which x_s failed; their failure rates are p_c(t) and p_s(t), and the
// margin δ is the allowed increase in points. The upward test (a
// regression) has the null "p_c(t) ≤ p_s(t) + δ at every look"; the
// downward test (the canary is clearly no worse) has the null "p_c(t) ≥
// p_s(t) + δ at every look". Nothing is assumed about how p_s moves: a
// downstream outage that raises both tracks' rates together stays inside
// the null, so it cannot by itself make the test reject.
//
// # The statistic
//
// Each look contributes a factor e_t, and the statistic is the mixture M =
// Σ_j w_j Π_t e_t(j) over a few alternatives j, equally weighted. For an
// alternative (q_c, q_s), e_t is the likelihood ratio of the look's counts
// under (q_c, q_s) against the null point (p*+δ, p*) that is nearest to it
// for this look (the reverse information projection: p* minimises
// n_c·KL(q_c ‖ p+δ) + n_s·KL(q_s ‖ p)). For two binomial counts that point
// is the worst case of the whole null: E[e_t] under a null (p_c, p_s) is
// (1 + A(p_c − p*−δ))^n_c (1 + B(p_s − p*))^n_s with A, B the derivatives of
// the two log-ratios; on the boundary p_c = p_s + δ its logarithm is
// concave in p_s and stationary at p* (that is the projection's first-order
// condition n_c·A + n_s·B = 0), so it is at most 1 there, and moving p_c
// into the null's interior only lowers it. So E[e_t | the past] ≤ 1 under
// every null, at every look, whatever p_s does; M is a nonnegative
// supermartingale with M_0 = 1, and by Ville's inequality it reaches 1/α
// with probability at most α, however long the watch and whenever it
// stops. (This is the "safe test" construction for 2×2 tables of Turner,
// Ly and Grünwald, with a margin.)
//
// The alternatives need the control's rate, which is unknown: q_s is the
// control's recent rate (a predictable plug-in, so validity is untouched):
// its counts before this look, each look's weight fading as the control
// gathers plugErrors more expected errors, so that after a shared outage
// the plug-in is the control's rate again within a few looks, and with a
// prior of half an error at the margin's rate, so that the first looks bet
// on a control like the margin rather than on one failing half its
// requests. q_c is a multiple of the allowed rate q_s + δ (upward:
// mixtureTimes, 1.5× to 16×) or a fraction of it (downward).
//
// # From the start, and since an onset
//
// The upward test mixes two parts, as the count test of change.go does:
// the product of every look's factor (weight fromStart), and a mixture over
// the look k a regression started at of the product of the factors since
// k (the rest), S_t = (S_{t−1} + π_t)·e_t, with the onset prior spread over
// the canary's expected errors at the control's rate plus δ (the
// control's rate over the whole watch, so that an outage does not spend the
// prior). Errors in bursts: the from-start part's evidence is divided by
// the over-dispersion at the check (temper), each onset look's by the one
// estimated before the look (see look), so that every part stays a
// nonnegative supermartingale under the null for independent requests.
// The downward test (the canary is no worse) rests on the whole watch: it
// has the from-start part alone.
//
// A look must hold both tracks: one with only the canary (or only the
// control) carries no evidence against a null that lets p_s be anything.
// The grouping into looks must not depend on what the looks show; a round
// of probes, or one scrape of counters, is such a grouping.
type twoSample struct {
	margin   float64 // δ
	upward   bool
	logBound float64 // log(1/α)
	times    []float64
	logW     float64   // log of each component's weight
	logE     []float64 // per component: log Π e_t
	since    []float64 // per component: the onset part S_t (upward)
	u        float64   // the onset prior's clock
	// phi divides the next look's onset evidence: the over-dispersion
	// estimated after the look before.
	phi float64
	// Cumulative counts over paired looks (the canary's and the control's),
	// the control's over every look, and its fading plug-in counts.
	nc, xc, ns, xs int64
	allN, allX     int64
	plugN, plugX   float64
}

// plugErrors is how many expected control errors the plug-in remembers:
// each look's counts fade by e^(−its expected errors/plugErrors).
const plugErrors = 20

// Downward alternatives: the canary at the allowed rate divided by these.
var noWorseTimes = []float64{1.25, 2, 4, 16}

func newTwoSample(margin, alpha float64, upward bool) *twoSample {
	t := &twoSample{margin: margin, upward: upward, logBound: math.Log(1 / alpha), times: noWorseTimes, phi: 1}
	if upward {
		t.times = mixtureTimes
		t.since = make([]float64, len(t.times))
	}
	t.logE = make([]float64, len(t.times))
	t.logW = math.Log(1 / float64(len(t.times)))
	return t
}

// controlRate is the control's rate over the whole watch so far, with the
// plug-in's prior.
func (t *twoSample) controlRate() float64 {
	return (float64(t.allX) + 0.5) / (float64(t.allN) + 0.5/t.margin)
}

// recentRate is the control's recent rate: the plug-in's.
func (t *twoSample) recentRate() float64 {
	return (t.plugX + 0.5) / (t.plugN + 0.5/t.margin)
}

// look adds one look's counts; phi is the over-dispersion estimated after
// it, which divides the next look's onset evidence.
func (t *twoSample) look(nc, xc, ns, xs int64, phi float64) {
	if nc > 0 && ns > 0 {
		qs := t.recentRate()
		pi := 0.0
		if t.since != nil {
			u0 := t.u
			t.u += (t.controlRate() + t.margin) * float64(nc)
			pi = onsetMass(u0, t.u)
		}
		for j, r := range t.times {
			qc, ok := t.alternative(qs, r)
			if !ok {
				if t.since != nil {
					t.since[j] += pi // no bet: the onset's mass waits at 1
				}
				continue
			}
			p := project(qc, qs, t.margin, float64(nc), float64(ns))
			l := logLR(qc, p+t.margin, nc, xc) + logLR(qs, p, ns, xs)
			t.logE[j] += l
			if t.since != nil {
				t.since[j] = min((t.since[j]+pi)*math.Exp(min(l/t.phi, 700)), math.MaxFloat64)
			}
		}
		t.nc, t.xc, t.ns, t.xs = t.nc+nc, t.xc+xc, t.ns+ns, t.xs+xs
	}
	if ns > 0 {
		fade := math.Exp(-float64(ns) * t.recentRate() / plugErrors)
		t.plugN, t.plugX = t.plugN*fade+float64(ns), t.plugX*fade+float64(xs)
		t.allN, t.allX = t.allN+ns, t.allX+xs
	}
	t.phi = max(phi, 1)
}

// alternative is component r's canary rate when the control's is qs; ok is
// false when it would not lie on the alternative's side of the margin.
func (t *twoSample) alternative(qs, r float64) (float64, bool) {
	allowed := qs + t.margin
	if allowed >= 1 {
		return 0, false // no rate is above it, nor is the boundary reachable
	}
	if t.upward {
		q := regressedRate(allowed, r)
		return q, q > allowed && q < 1
	}
	return allowed / r, true
}

// logLR is the log likelihood ratio of x failures in n requests at rate q
// against rate p.
func logLR(q, p float64, n, x int64) float64 {
	v := 0.0
	if x > 0 {
		v += float64(x) * math.Log(q/p)
	}
	if n > x {
		v += float64(n-x) * math.Log((1-q)/(1-p))
	}
	return v
}

// project returns the control rate p* of the null point (p*+δ, p*) nearest
// to the alternative (qc, qs) for a look of nc and ns requests: the root of
// F'(p) = nc[(1−qc)/(1−p−δ) − qc/(p+δ)] + ns[(1−qs)/(1−p) − qs/p], which
// rises on (0, 1−δ). Safeguarded Newton steps inside a shrinking bracket.
func project(qc, qs, delta, nc, ns float64) float64 {
	d1 := func(p float64) (f, df float64) {
		a, b := p+delta, p
		f = nc*((1-qc)/(1-a)-qc/a) + ns*((1-qs)/(1-b)-qs/b)
		df = nc*((1-qc)/((1-a)*(1-a))+qc/(a*a)) + ns*((1-qs)/((1-b)*(1-b))+qs/(b*b))
		return f, df
	}
	lo, hi := 0.0, 1-delta
	// The root lies between the two tracks' own best fits, qs and qc − δ.
	if a, b := min(qs, qc-delta), max(qs, qc-delta); a > lo && b < hi {
		if f, _ := d1(a); f <= 0 {
			lo = a
		}
		if f, _ := d1(b); f >= 0 {
			hi = b
		}
	}
	p := (lo + hi) / 2
	for range 100 {
		f, df := d1(p)
		if f == 0 {
			return p
		}
		if f < 0 {
			lo = p
		} else {
			hi = p
		}
		next := p - f/df
		if !(next > lo && next < hi) {
			next = (lo + hi) / 2
		}
		if math.Abs(next-p) <= 1e-15*max(p, 1e-300) || hi-lo <= 1e-300 {
			return next
		}
		p = next
	}
	return p
}

// logRatio is log M with the from-start part's evidence divided by temper
// ≥ 1 (errors that come in bursts weigh as events: see dispersion.go; 1 for
// independent requests), and the onset part's as it came (see look).
// Tempering never adds false alarms for independent requests, whatever
// temper is and however it was chosen: by Jensen's inequality the tempered
// from-start mixture is at most its untempered value to the power
// 1/temper, so at most the larger of that value and 1; M therefore reaches
// 1/α only where fromStart times the untempered from-start mixture plus the
// onset part, a nonnegative supermartingale of mean 1, reaches 1/α −
// fromStart.
func (t *twoSample) logRatio(temper float64) float64 {
	temper = max(temper, 1)
	top := math.Inf(-1)
	for _, v := range t.logE {
		top = max(top, v/temper)
	}
	if math.IsInf(top, -1) {
		return top
	}
	sum := 0.0
	for _, v := range t.logE {
		sum += math.Exp(v/temper - top)
	}
	start := t.logW + top + math.Log(sum)
	if t.since == nil {
		return start
	}
	// The onset part: Σ_j w_j S_j, and the mass of onsets not yet reached.
	rest := (1 - fromStart) * (1 - t.u/(t.u+onsetScale))
	for _, v := range t.since {
		rest += math.Exp(t.logW) * v
	}
	start += math.Log(fromStart)
	if rest <= 0 {
		return start
	}
	hi, lo := max(start, math.Log(rest)), min(start, math.Log(rest))
	return hi + math.Log1p(math.Exp(lo-hi))
}

// rejects reports whether the test rejects its null now, with the evidence
// tempered: M has reached 1/α and, for the upward test, the canary has at
// least minBad failures.
func (t *twoSample) rejects(temper float64) bool {
	if t.upward && t.xc < minBad {
		return false
	}
	return t.logRatio(temper) >= t.logBound
}

// ratio is M, tempered and capped for display.
func (t *twoSample) ratio(temper float64) float64 {
	return math.Exp(min(t.logRatio(temper), 700))
}
