package verdict

// Errors of real traffic are often not independent: a retrying client, one
// broken caller or a short outage fails several requests at once. The
// mixture test's evidence assumes independent requests, so under bursts of
// b errors it is about b times too confident: a build at the allowed rate
// would be rolled back far more often than 1 − Confidence (with bursts of
// 10 at 1,000 requests a minute, in about a third of watches).
//
// With Limits.Dispersion the engine estimates the looks' over-dispersion φ
// (the variance of a look's error count over what independent requests
// give; about b for bursts of b) and divides each component's log
// likelihood ratio by it before mixing: the quasi-likelihood correction, in
// which a burst of b errors weighs as one error event. For bursts of a
// fixed size b it is exact, since the error count is then b times a count
// of independent events. For independent requests tempering costs at most
// a hundredth of the bound: with φ ≥ 1 each tempered component is at most
// its untempered ratio or 1, so the tempered mixture reaches 1/α only where
// the untempered one reaches 1/α − 1, which Ville's inequality bounds by
// α/(1 − α).
//
// φ is estimated from how the looks' error rates vary around their pooled
// rate (Pearson's statistic over looks with requests, in O(1) per look,
// updated as a weighted variance so that large counts lose no precision).
// The looks cannot show what happened within one look, and at first they
// are too few to show anything: a single look with ten errors is ten
// independent errors or one burst. Until they can tell, the estimate leans
// on a prior of dispersionPrior (bursts of up to that size), worth
// dispersionPriorLooks looks; it fades as looks come in, and φ never goes
// below 1.

// dispersionPrior is the over-dispersion assumed before the looks show
// otherwise: bursts of up to ten errors.
const dispersionPrior = 10

// dispersionPriorLooks is how many looks the prior is worth.
const dispersionPriorLooks = 2

// dispersion estimates the over-dispersion of a stream's looks.
type dispersion struct {
	looks int64   // looks with requests
	n     float64 // requests in them
	mean  float64 // their pooled error rate
	ss    float64 // Σ n_i (r_i − mean)², r_i a look's error rate
}

// observe adds a look of n requests, bad of them bad.
func (d *dispersion) observe(n, bad int64) {
	if n <= 0 {
		return
	}
	d.looks++
	w, r := float64(n), float64(bad)/float64(n)
	d.n += w
	delta := r - d.mean
	d.mean += delta * w / d.n
	d.ss += w * delta * (r - d.mean)
}

// phi is the over-dispersion to temper the evidence by: at least 1.
func (d *dispersion) phi() float64 {
	pearson := 0.0
	if v := d.mean * (1 - d.mean); v > 0 {
		pearson = max(d.ss, 0) / v
	}
	df := float64(max(d.looks-1, 0))
	return max(1, (dispersionPriorLooks*dispersionPrior+pearson)/(dispersionPriorLooks+df))
}
