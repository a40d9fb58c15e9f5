package verdict

import (
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
