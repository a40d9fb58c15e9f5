package verdict

import "math"

// Errors of real traffic are often not independent: a retrying client, one
// broken caller or a short outage fails several requests at once. The
// tests' evidence assumes independent requests, so under bursts of b errors
// it is about b times too confident: a build at the allowed rate would be
// rolled back far more often than 1 − Confidence.
//
// With Limits.Dispersion the judge estimates the errors' over-dispersion φ
// (how much more an error count varies than independent requests would
// make it vary; about b for bursts of b) and divides the evidence by it:
// the quasi-likelihood correction, under which a burst of b errors weighs
// as one error event. For independent requests dividing by any φ ≥ 1 keeps
// the bound (see change.go and twosample.go), so the estimate may err on
// the high side; it must not err low where bursts are.
//
// Two things make φ hard to see, and the estimate handles each:
//
//   - Bursts that span looks. At 5 requests a minute a burst of ten failed
//     requests spans two minutes of looks, each look holding one or two of
//     them: no single look is over-dispersed. Where a look holds few
//     expected errors (below half an error at the allowed rate), bursts show
//     as runs instead: a burst is one run of consecutive looks with errors,
//     an independent error a run of its own, so errors per run estimates
//     the burst size, with about one degree of freedom per run: a watch
//     learns as fast as errors come, and a burst in progress raises φ with
//     each of its errors. Elsewhere (and wherever most looks hold errors,
//     when runs tell nothing) the looks are summed into windows of 1, 2, 4,
//     … 16 looks, the first that holds windowRequests requests on average,
//     so that a burst lies within a window, and φ is estimated from the
//     differences between adjacent windows.
//   - Level shifts. A regression that starts mid-watch (0.5% errors, then
//     2%) is a change of rate, not a burst; a dispersion estimate around the
//     watch's mean reads it as φ of 60 and blinds the test that should catch
//     it. Differences between adjacent windows see a shift once, not in
//     every window after it; and each window's term is capped at
//     windowCap times the estimate so far, so that one shift (or the start
//     and end of a shared outage) cannot dominate.
//
// Before the looks can tell, the estimate leans on a prior of bursts of
// priorDispersion, worth priorWindows windows when a window holds
// priorErrors expected errors at the allowed rate or more, proportionally
// less when it holds fewer (the prior fades with information, expected
// errors, not with looks: at 10,000 requests a minute a burst of 30 is
// invisible in one look, while at 100 a minute a look holds a quarter of an
// expected error and a run of errors shows a burst as it happens). The
// runs' estimate has a prior of its own, runPriorDispersion worth runPrior
// runs. φ is never below 1. Every figure here is a design choice, measured
// on the benchmark tables (testdata/counts.txt, testdata/traffic.txt).
const (
	// windowRequests is how many requests a window should hold on average
	// for a burst of the prior's size to lie within one.
	windowRequests = 40
	// windowScales bounds the windows to 2^(windowScales-1) = 16 looks.
	windowScales = 5
	// windowCap caps one window's term at this many times the estimate.
	windowCap = 6
	// priorDispersion is the bursts assumed before the windows show
	// otherwise, priorWindows how many windows it is worth when a window
	// holds priorErrors expected errors at the allowed rate.
	priorDispersion = 30
	priorWindows    = 6
	priorErrors     = 25
	// runsBelow is the expected errors per look at the allowed rate below
	// which runs are counted; runsShare the share of looks with errors above
	// which runs tell nothing (most looks fail).
	runsBelow = 0.5
	runsShare = 0.3
	// runPriorDispersion is the runs' prior burst size, worth runPrior runs:
	// a burst raises φ with its own errors as it happens, so the prior need
	// only cover its first ones.
	runPriorDispersion = 10
	runPrior           = 0.2
)

// dispersion estimates the over-dispersion of one stream of looks (counts:
// n requests, x errors each). It costs O(windowScales) per look and a fixed
// amount of memory, whatever the length of the watch.
type dispersion struct {
	// rate is the allowed failure rate, for the expected errors per look
	// (set by the owner; it may change between looks).
	rate float64

	looks, fails int64   // looks with requests, and those with errors
	n, x         float64 // their requests and errors

	// Runs of consecutive looks with errors.
	runs  int64
	inRun bool

	// The last 2·16 looks, and per scale the sums of the two adjacent
	// windows (a: the older, b: the newer) and of their terms.
	bufN, bufX [2 << (windowScales - 1)]float64
	head       int
	an, ax     [windowScales]float64
	bn, bx     [windowScales]float64
	sumT, sumV [windowScales]float64
	terms      [windowScales]float64
}

// observe adds a look of n requests, x of them failed. A look without
// requests tells nothing and is skipped.
func (d *dispersion) observe(n, x int64) {
	if n <= 0 {
		return
	}
	nf, xf := float64(n), float64(x)
	d.looks++
	d.n += nf
	d.x += xf
	switch {
	case x > 0:
		d.fails++
		if !d.inRun {
			d.runs++
		}
		d.inRun = true
	default:
		d.inRun = false
	}
	size := len(d.bufN)
	d.head = (d.head + 1) % size
	d.bufN[d.head], d.bufX[d.head] = nf, xf
	back := func(k int) (float64, float64) {
		i := (d.head - k + size) % size
		return d.bufN[i], d.bufX[i]
	}
	for s := range windowScales {
		w := int64(1) << s
		// The newer window gains this look and hands the one w looks back
		// to the older window, which drops the one 2w back.
		d.bn[s] += nf
		d.bx[s] += xf
		if d.looks > w {
			on, ox := back(int(w))
			d.bn[s], d.bx[s] = d.bn[s]-on, d.bx[s]-ox
			d.an[s], d.ax[s] = d.an[s]+on, d.ax[s]+ox
		}
		if d.looks > 2*w {
			on, ox := back(int(2 * w))
			d.an[s], d.ax[s] = d.an[s]-on, d.ax[s]-ox
		}
		if d.looks < 2*w || d.an[s] <= 0 || d.bn[s] <= 0 {
			continue
		}
		// The difference of the windows' rates, squared, over its variance
		// for independent requests at their pooled rate: about φ.
		diff := d.ax[s]*d.bn[s] - d.bx[s]*d.an[s]
		t := diff * diff / (d.an[s] * d.bn[s] * (d.an[s] + d.bn[s]))
		pooled := (d.ax[s] + d.bx[s]) / (d.an[s] + d.bn[s])
		v := pooled * (1 - pooled)
		if d.sumV[s] > 0 {
			t = min(t, windowCap*max(1, d.sumT[s]/d.sumV[s])*v)
		}
		d.sumT[s] += t
		d.sumV[s] += v
		d.terms[s]++
	}
}

// phi is the over-dispersion to divide the evidence by: at least 1.
func (d *dispersion) phi() float64 {
	if d.looks == 0 {
		return priorDispersion
	}
	perLook := d.n / float64(d.looks)
	if d.rate*perLook < runsBelow && d.runs > 0 && float64(d.fails) <= runsShare*float64(d.looks) {
		return d.runsPhi()
	}
	return d.windowsPhi(perLook)
}

// runsPhi estimates φ as the errors per run of looks with errors, over
// what independent errors would give at the share of looks that failed.
func (d *dispersion) runsPhi() float64 {
	indep := 1.0
	if d.looks >= 10 {
		// Independent errors at μ per look: a look fails with chance
		// 1 − e^−μ, holds μ/(1 − e^−μ) errors when it does, and a run lasts
		// e^μ looks on average.
		mu := -math.Log1p(-min(float64(d.fails)/float64(d.looks), 0.5))
		if mu > 1e-9 {
			indep = math.Exp(mu) * mu / -math.Expm1(-mu)
		}
	}
	runs := float64(d.runs)
	est := d.x / runs / indep
	return max(1, (runPrior*runPriorDispersion+runs*est)/(runPrior+runs))
}

// windowsPhi estimates φ from the differences between adjacent windows of
// the first scale whose windows hold windowRequests requests.
func (d *dispersion) windowsPhi(perLook float64) float64 {
	s := 0
	for s < windowScales-1 && perLook*float64(int64(1)<<s) < windowRequests {
		s++
	}
	w := float64(int64(1) << s)
	prior := priorWindows * min(1, d.rate*perLook*w/priorErrors)
	est := 0.0
	if d.sumV[s] > 0 {
		est = d.sumT[s] / d.sumV[s]
	}
	info := min(d.x, d.terms[s]/w)
	if prior+info <= 0 {
		return priorDispersion
	}
	return max(1, (prior*priorDispersion+info*est)/(prior+info))
}
