// Package verdict decides whether a freshly deployed build regressed.
//
// Its one responsibility is pure statistics: probe outcomes go in, a verdict
// comes out. It does no I/O and never reads a clock; the caller probes, times
// and feeds observations in order.
//
// # Rules
//
// An Engine applies these rules after every probe, per target (one bad
// instance regresses even if the others hide it) and, with several targets,
// over all probes together:
//
//   - consecutive-failures: ConsecutiveFailures failures in a row on one
//     target regress at once, on exactly that failure.
//   - error-rate: a sequential test of "the failure rate is above
//     MaxErrorRate" (see [Limits.Confidence] for what its strictness means).
//   - latency: the same test on the share of answered probes slower than
//     MaxLatency; "the p95 is above MaxLatency" means "more than 5% of the
//     probes are slower than MaxLatency".
//   - baseline-error-rate, baseline-latency: with a [Baseline] of production
//     probes, the same tests against production's failure rate plus
//     MaxErrorRate and against MaxLatencyIncrease times production's latency.
//
// # The sequential test
//
// Both rate rules count "bad" probes (failed, or slow) out of n and regress
// as soon as the count reaches a limit that depends only on n. The limits
// are planned once per Engine by an exact calculation over the binomial
// distribution (see plan.go).
//
// With a known Horizon, the limits are the best ones for a stated aim: a
// gross regression (10 times the allowed rate) caught within the first 3%
// of the watch, a clear one (4 times) within the first tenth and the first
// three tenths, and a small one (twice) by the end, each weighed; false
// alarms are the price, and the planner raises that price until they fit
// within 1 − Confidence. This is the classic optimal sequential test,
// found by backward induction over (probes, bad count), and the planner
// checks its false alarms exactly, for any limits. Its limits form steps:
// each aim's deadline is a look with its own limit, and in between the
// test rolls back as soon as the count reaches the next look's limit (a
// count that will be over it anyway). Early looks need strong evidence;
// the last, where small regressions show, needs the least.
//
// Without a Horizon, the limits are those of Wald's sequential probability
// ratio test (SPRT) of the allowed rate p against 4p at Wald's threshold
// log(1/α), which never exceeds α however long the watch; a final look when
// the watch ends spends what is left.
//
// Because the limits come from the exact distribution, checking them after
// every probe does not inflate false alarms, unlike repeatedly applying a
// fixed-sample test. Rate verdicts never rest on fewer than three bad probes.
//
// # Latency of failed probes
//
// Latency is judged over answered probes: every probe that measured a
// latency, whether it then failed (a 500 after 2s was still slow) or not.
// A failed probe with no measurement (Latency 0: connection refused, reset)
// is only a failure. Quantiles in [Stats] use the same answered probes.
package verdict

import (
	"errors"
	"fmt"
	"time"
)

// Limits says what a healthy build looks like and how sure the engine must
// be before it calls a regression.
type Limits struct {
	// MaxErrorRate is the allowed failure fraction, e.g. 0.05. In baseline
	// mode it is the allowed increase over production's rate, in points.
	MaxErrorRate float64
	// ConsecutiveFailures failures in a row on one target regress at once.
	// 0 turns the rule off.
	ConsecutiveFailures int
	// MaxLatency is the latency LatencyPercentile must stay under; 0 turns the
	// absolute latency rule off.
	MaxLatency time.Duration
	// LatencyPercentile is the percentile bounded by MaxLatency (or, in
	// baseline mode, by MaxLatencyIncrease), e.g. 95.
	LatencyPercentile float64
	// Confidence sets how strict the rate tests are. For a build exactly at
	// a limit (failing at exactly MaxErrorRate, or with its percentile
	// exactly at MaxLatency), each rate rule (error rate; latency) rolls the
	// build back in at most 1 − Confidence of watches of Horizon probes (of
	// any length when Horizon is 0), counted over every target and the
	// overall test together. The bound is exact, for any limits: the engine
	// computes its false alarms from the binomial distribution itself, not
	// from an approximation. A build doing better than the limit is rolled
	// back less often (see the quality table in testdata/quality.txt).
	// Rollbacks that the consecutive-failures rule makes first are not
	// counted: that rule is deterministic and its own false-alarm rate
	// depends only on ConsecutiveFailures and the watch length. In baseline
	// mode the noise of production's own probes adds to this; see
	// [NewWithBaseline].
	Confidence float64
	// MaxLatencyIncrease bounds, in baseline mode, the new build's latency
	// percentile as a factor of production's, e.g. 1.5.
	MaxLatencyIncrease float64
	// Horizon is the number of probes each target is expected to get over
	// the whole watch; 0 if unknown. With it, the engine spends its whole
	// false-alarm allowance within the watch and catches small regressions
	// more often. Probes past the horizon still count for the
	// consecutive-failures rule and for Stats but no longer for the rate
	// tests, whose verdict was final at the horizon.
	Horizon int
}

// Defaults used for zero fields of Limits; see [New].
const (
	DefaultMaxErrorRate       = 0.05
	DefaultLatencyPercentile  = 95
	DefaultConfidence         = 0.99
	DefaultMaxLatencyIncrease = 1.5
)

// DefaultLimits returns the limits the action uses when nothing is
// configured: 5% errors, 3 consecutive failures, 99% confidence, no latency
// limit, unknown horizon.
func DefaultLimits() Limits {
	return Limits{
		MaxErrorRate:        DefaultMaxErrorRate,
		ConsecutiveFailures: 3,
		LatencyPercentile:   DefaultLatencyPercentile,
		Confidence:          DefaultConfidence,
		MaxLatencyIncrease:  DefaultMaxLatencyIncrease,
	}
}

// withDefaults fills the zero fields that have a default. Zero
// ConsecutiveFailures, MaxLatency and Horizon mean "off" or "unknown" and
// stay zero.
func (l Limits) withDefaults() Limits {
	if l.MaxErrorRate == 0 {
		l.MaxErrorRate = DefaultMaxErrorRate
	}
	if l.LatencyPercentile == 0 {
		l.LatencyPercentile = DefaultLatencyPercentile
	}
	if l.Confidence == 0 {
		l.Confidence = DefaultConfidence
	}
	if l.MaxLatencyIncrease == 0 {
		l.MaxLatencyIncrease = DefaultMaxLatencyIncrease
	}
	return l
}

// Validate reports the first field that makes no sense, naming it. Zero
// fields are valid: they take defaults or mean "off".
func (l Limits) Validate() error {
	var errs []error
	if l.MaxErrorRate < 0 || l.MaxErrorRate >= 1 {
		errs = append(errs, fmt.Errorf("MaxErrorRate must be between 0 and 1 (e.g. 0.05 for 5%%), got %g", l.MaxErrorRate))
	}
	if l.ConsecutiveFailures < 0 {
		errs = append(errs, fmt.Errorf("ConsecutiveFailures must be 0 (off) or more, got %d", l.ConsecutiveFailures))
	}
	if l.MaxLatency < 0 {
		errs = append(errs, fmt.Errorf("MaxLatency must be 0 (off) or positive, got %v", l.MaxLatency))
	}
	if l.LatencyPercentile < 0 || l.LatencyPercentile >= 100 {
		errs = append(errs, fmt.Errorf("LatencyPercentile must be between 0 and 100 (e.g. 95), got %g", l.LatencyPercentile))
	}
	if l.Confidence != 0 && (l.Confidence <= 0.5 || l.Confidence >= 1) {
		errs = append(errs, fmt.Errorf("Confidence must be above 0.5 and below 1 (e.g. 0.99), got %g", l.Confidence))
	}
	if l.MaxLatencyIncrease != 0 && l.MaxLatencyIncrease < 1 {
		errs = append(errs, fmt.Errorf("MaxLatencyIncrease must be at least 1 (e.g. 1.5), got %g", l.MaxLatencyIncrease))
	}
	if l.Horizon < 0 {
		errs = append(errs, fmt.Errorf("Horizon must be 0 (unknown) or positive, got %d", l.Horizon))
	}
	return errors.Join(errs...)
}

// Observation is the outcome of one probe.
type Observation struct {
	// Target is the URL that was probed.
	Target string
	// Failed: bad status, body mismatch, wrong version, timeout or
	// connection error.
	Failed bool
	// Latency is the time to answer; 0 when nothing was measured, e.g. a
	// connection error. See the package comment for how failed probes count.
	Latency time.Duration
}

// answered reports whether the probe measured a latency.
func (o Observation) answered() bool { return o.Latency > 0 || !o.Failed }

// Outcome is where a watch stands.
type Outcome int

const (
	// Continue: no verdict yet, keep probing.
	Continue Outcome = iota
	// Healthy: the watch ended without a regression.
	Healthy
	// Regressed: roll back.
	Regressed
)

func (o Outcome) String() string {
	switch o {
	case Continue:
		return "continue"
	case Healthy:
		return "healthy"
	case Regressed:
		return "regressed"
	}
	return fmt.Sprintf("Outcome(%d)", int(o))
}

// Rule names, as found in Decision.Rule.
const (
	RuleConsecutiveFailures = "consecutive-failures"
	RuleErrorRate           = "error-rate"
	RuleLatency             = "latency"
	RuleBaselineErrorRate   = "baseline-error-rate"
	RuleBaselineLatency     = "baseline-latency"
)

// Decision is a verdict with the reason for it.
type Decision struct {
	Outcome Outcome
	// Rule that regressed; "" unless Outcome is Regressed.
	Rule string
	// Target is the URL that tripped the rule, "" when the rule tripped over
	// all targets together.
	Target string
	// Reason says in plain words, with numbers a user can check, why.
	Reason string
}

// Counts summarises a set of probes.
type Counts struct {
	Probes   int
	Failures int
	// Answered probes measured a latency (see the package comment).
	Answered int
	// Slow answered probes took longer than the latency limit in force; 0
	// when no latency rule is on.
	Slow int
	// P50 and P95 are nearest-rank latency quantiles over answered probes,
	// 0 when there are none.
	P50, P95 time.Duration
}

// TargetCounts are the counts of one target.
type TargetCounts struct {
	Target string
	Counts
}

// Stats are the counts for reporting: over all probes and per target, in
// the order targets were first seen.
type Stats struct {
	Overall Counts
	Targets []TargetCounts
}
