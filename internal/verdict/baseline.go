package verdict

import (
	"slices"
	"time"
)

// Baseline summarises probes of current production taken before the
// deploy, for judging the new build relative to it.
type Baseline struct {
	observations []Observation
	probes       int
	failures     int
	latencies    []time.Duration // answered probes
}

// NewBaseline summarises production's probes.
func NewBaseline(obs []Observation) Baseline {
	b := Baseline{observations: slices.Clone(obs), probes: len(obs)}
	for _, o := range obs {
		if o.Failed {
			b.failures++
		}
		if o.answered() {
			b.latencies = append(b.latencies, o.Latency)
		}
	}
	return b
}

// Probes is the number of baseline probes.
func (b Baseline) Probes() int { return b.probes }

// Failures is the number of failed baseline probes.
func (b Baseline) Failures() int { return b.failures }

// FailureRate is production's observed failure rate, 0 without probes.
func (b Baseline) FailureRate() float64 {
	if b.probes == 0 {
		return 0
	}
	return float64(b.failures) / float64(b.probes)
}

// Latency is production's nearest-rank pct-th latency percentile over
// answered probes, 0 without any.
func (b Baseline) Latency(pct float64) time.Duration { return quantile(b.latencies, pct) }

// Unhealthy reports whether production itself breaks the absolute limits
// l, judged like a watch of the baseline probes, and why. A baseline
// without probes is unusable and reported as such. When production is
// unhealthy the caller should judge the new build with New instead, and
// say so.
func (b Baseline) Unhealthy(l Limits) (bool, string) {
	if b.probes == 0 {
		return true, "the baseline has no probes"
	}
	perTarget := map[string]int{}
	for _, o := range b.observations {
		perTarget[o.Target]++
	}
	l.Horizon = 0
	for _, n := range perTarget {
		l.Horizon = max(l.Horizon, n)
	}
	e := New(l)
	for _, o := range b.observations {
		e.Observe(o)
	}
	d := e.Finish()
	if d.Outcome != Regressed {
		return false, ""
	}
	return true, "production was already unhealthy before the deploy: " + d.Reason
}
