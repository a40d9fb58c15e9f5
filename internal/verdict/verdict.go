// Package verdict decides whether a freshly deployed build regressed.
//
// Its one responsibility is pure statistics: observations go in, a verdict
// comes out. It does no I/O and never reads a clock; the caller probes (or
// reads counters), times and feeds observations in order.
//
// # Observations
//
// An [Observation] is one look at one target: N requests, of which Failed
// failed, and the latencies measured. A health probe is a look with N = 1
// ([Probe]); a poll of a request counter is a look with the counts since the
// previous poll ([Count]). Counts are exact integers up to 2^63 per watch;
// every rule below costs O(1) per look whatever the counts.
//
// # Rules
//
// An Engine applies these rules after every look, per target (one bad
// instance regresses even if the others hide it) and, with several targets,
// over all of them together (the fleet):
//
//   - consecutive-failures: ConsecutiveFailures failed requests in a row on
//     one target regress at once. A look of several requests continues the
//     run only when all of them failed (their order is unknown).
//   - error-rate: a sequential test of "the failure rate is above
//     MaxErrorRate" (see [Limits.Confidence] for what its strictness means).
//   - latency: the same test on the share of answered requests slower than
//     MaxLatency; "the p95 is above MaxLatency" means "more than 5% of the
//     requests are slower than MaxLatency".
//   - baseline-error-rate, baseline-latency: with a [Baseline] of production
//     probes, the same tests against production's failure rate plus
//     MaxErrorRate and against MaxLatencyIncrease times production's latency.
//
// # The sequential tests
//
// Both rate rules count "bad" requests (failed, or slow) out of n and
// regress as soon as the count reaches a limit that depends only on n, so
// checking after every look never inflates false alarms. Each test is one of
// two kinds, chosen when the Engine is made:
//
//   - A planned test (plan.go), when the number of probes is known and
//     modest (Limits.Horizon): limits planned by an exact calculation over
//     the binomial distribution, the best ones for a stated aim (a gross
//     regression caught within the first few probes, a clear one soon, a
//     small one by the end), spending exactly the false-alarm allowance by
//     the horizon. It is the sharper test, but planning costs grow with the
//     square of the horizon, so it is only used while planning stays within
//     a fixed amount of work (about 10 ms; planBudget).
//   - A mixture test (mixture.go) otherwise: a mixture sequential
//     probability ratio test whose likelihood ratio depends only on the
//     cumulative counts, bounded at any stopping time by Ville's inequality.
//     It needs no horizon and no planning, and costs a few multiplications
//     per look.
//
// Rate verdicts never rest on fewer than three bad requests.
//
// # Counts of real traffic
//
// Looks at request counters (Limits.Dispersion) differ from probes in ways
// that matter. Their errors may come in correlated bursts (a retrying
// client, one broken caller), and a test that takes them for independent
// requests is too sure of itself: the judge estimates the errors'
// over-dispersion and divides the evidence by it (dispersion.go). And a
// regression may start mid-watch: the count test (change.go) puts a fifth
// of its weight on evidence that restarts at every look, a Shiryaev–Roberts
// style mixture over the onset that is still a nonnegative supermartingale
// under the null, at O(1) per look. Independent errors keep the bound to
// within a hundredth of it; bursts are kept within about twice the bound on
// the benchmark tables.
//
// # Baseline mode
//
// Production's looks before the deploy are a sample too: a baseline test
// (baseline.go) judges the new build against every rate production's looks
// allow, by universal inference, so its false alarms stay within the bound
// however short the baseline. Production's latency percentile is still
// taken as measured.
//
// # Many signals
//
// A watch may judge several signals at once, each with an engine of its
// own: the health probes and each rate metric (Limits.Signals). The error
// rule's allowance is split evenly among them before the first look, so the
// bound of Confidence holds over all of them together.
//
// # Many targets: the fleet
//
// With k targets ([Limits.Targets]) the false-alarm allowance α = 1 −
// Confidence is split once, before the first look: half to the fleet test
// over all targets' counts together, and α/(2k) to each target's own test.
// The fleet test is as strict with 100 targets as with two, and catches a
// build that is a little worse everywhere; a target's own test catches one
// bad instance that the fleet's numbers hide, at the price of a stricter
// threshold (log(2k/α) rather than log(1/α) in evidence). With one target
// its test is the fleet test and has all of α.
//
// # What the benchmarks show (testdata/, seeded)
//
// One URL, 300 probes, the defaults: at 1% failing 0.02% of watches roll
// back, at 3% 0.89%; 20% failing is caught in every watch, median probe 28,
// p95 87; 10% in 86% (quality.txt). One bad URL among 100: 20% failing is
// caught in every watch, median round 68; the rate tests roll back at most
// 0.9% of fleets at the limit on every URL, while the in-a-row rule's false
// alarms add up over the URLs (fleet.txt). Counts at 100 to 10,000
// requests a minute, 1% allowed, judged as rate metrics are: at most 0.08%
// false alarms at the limit with independent errors, 1.37% with errors in
// bursts of 10 (the same test without the dispersion correction: 54%); a
// 5× regression caught in 1 minute at 1,000 a minute (counts.txt). Real
// traffic's harder cases: bursts of 10 at 5 and 20 requests a minute at
// most 1.05% at the limit, bursts of 30 at 10,000 0.82%, a 2× regression
// from minute 30 at 10,000 a minute caught 1.25 minutes after its onset, a
// canary through a shared outage never removed (traffic.txt). A look costs
// about 0.2 µs with 100 targets, and choosing the tests at most planBudget
// steps of work, whatever the horizon (cost.txt).
//
// # Latency of failed requests
//
// Latency is judged over answered requests: every request that measured a
// latency, whether it then failed (a 500 after 2s was still slow) or not.
// A failed probe with no measurement (Latency 0: connection refused, reset)
// is only a failure. Quantiles in [Stats] use the same answered requests.
package verdict

import (
	"errors"
	"fmt"
	"time"

	"github.com/immune-cd/immune/internal/latency"
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
	// a limit on every target (failing at exactly MaxErrorRate, or with its
	// percentile exactly at MaxLatency), each rate rule (error rate;
	// latency) rolls the build back in at most 1 − Confidence of watches,
	// counted over every target's test and the fleet test together, however
	// long the watch and however many looks. A build doing better than the
	// limit is rolled back less often (see the quality tables in testdata/).
	// Rollbacks that the consecutive-failures rule makes first are not
	// counted: that rule is deterministic and its own false-alarm rate
	// depends only on ConsecutiveFailures, the watch length and the number
	// of targets (each target can trip it). In baseline mode the bound holds
	// whatever production's own rate was (see [NewWithBaseline]); its
	// latency percentile is taken as measured.
	Confidence float64
	// MaxLatencyIncrease bounds, in baseline mode, the new build's latency
	// percentile as a factor of production's, e.g. 1.5.
	MaxLatencyIncrease float64
	// Horizon is the number of looks each target is expected to get over
	// the whole watch; 0 if unknown. With a modest horizon the engine can
	// plan its tests to spend their whole false-alarm allowance within the
	// watch, and catches small regressions more often. Looks past the
	// horizon still count for the consecutive-failures rule, for Stats and
	// for the mixture tests, but no longer for a planned test, whose verdict
	// was final at the horizon.
	Horizon int
	// Targets is how many targets the watch has (0 means 1). The allowance
	// is split among them before the first look, so the engine panics if it
	// sees more.
	Targets int
	// Signals is how many signals of one watch run an error-rate test, each
	// with an engine of its own (0 means 1): the health probes of all
	// targets together count as one, and each rate metric as one. The
	// error-rate rule's allowance 1 − Confidence is split evenly among
	// them, so that over all of them together a build at every signal's
	// limit is rolled back by an error-rate test in at most 1 − Confidence
	// of watches. The latency rule is not split: only the probes have it.
	Signals int
	// Dispersion says that looks are counts of real traffic, whose errors
	// may come in correlated bursts and whose rate may change mid-watch:
	// the engine estimates the errors' over-dispersion and tempers the
	// error-rate evidence by it (see dispersion.go), and its error test is
	// the count test of change.go (Horizon is not used for it).
	Dispersion bool
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
// limit, unknown horizon, one target.
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
	if l.Targets == 0 {
		l.Targets = 1
	}
	if l.Signals == 0 {
		l.Signals = 1
	}
	return l
}

// Validate reports every field that makes no sense, naming it. Zero
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
	if l.Targets < 0 {
		errs = append(errs, fmt.Errorf("Targets must be 0 (one) or positive, got %d", l.Targets))
	}
	if l.Signals < 0 {
		errs = append(errs, fmt.Errorf("Signals must be 0 (one) or positive, got %d", l.Signals))
	}
	return errors.Join(errs...)
}

// Observation is one look at one target: a probe, or counts of requests.
// Build it with [Probe] or [Count].
type Observation struct {
	// Target names what was looked at, e.g. the URL that was probed.
	Target string
	// N requests were seen in this look (a probe: 1; 0 is a look without
	// traffic, which judges nothing), and Failed of them failed: bad
	// status, body mismatch, wrong version, timeout or connection error.
	N, Failed int64
	// Latency is a probe's (N = 1) time to answer; 0 when nothing was
	// measured, e.g. a connection error. See the package comment for how
	// failed requests count.
	Latency time.Duration
	// Latencies, when set, are the latencies the look measured (its
	// answered requests); it then replaces Latency.
	Latencies *latency.Sketch
}

// Probe is the observation of one health probe.
func Probe(target string, failed bool, latency time.Duration) Observation {
	o := Observation{Target: target, N: 1, Latency: latency}
	if failed {
		o.Failed = 1
	}
	return o
}

// Count is a look at n requests of which failed failed; latencies, which
// may be nil, are those measured.
func Count(target string, n, failed int64, latencies *latency.Sketch) Observation {
	return Observation{Target: target, N: n, Failed: failed, Latencies: latencies}
}

// check panics on an observation that cannot be.
func (o Observation) check() {
	if o.N < 0 || o.Failed < 0 || o.Failed > o.N {
		panic(fmt.Sprintf("verdict: impossible observation of %s: %d failed of %d requests", o.Target, o.Failed, o.N))
	}
	if o.Latencies != nil && o.Latencies.Count() > o.N {
		panic(fmt.Sprintf("verdict: impossible observation of %s: %d latencies for %d requests", o.Target, o.Latencies.Count(), o.N))
	}
}

// Outcome is where a watch stands.
type Outcome int

const (
	// Continue: no verdict yet, keep probing.
	Continue Outcome = iota
	// Healthy: the watch ended without a regression.
	Healthy
	// Regressed: roll back.
	Regressed
	// Inconclusive: the watch ended without the means to judge the build
	// (a canary whose control never answered healthily).
	Inconclusive
)

func (o Outcome) String() string {
	switch o {
	case Continue:
		return "continue"
	case Healthy:
		return "healthy"
	case Regressed:
		return "regressed"
	case Inconclusive:
		return "inconclusive"
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

// Decision is a verdict with the reason for it, in words and in numbers.
type Decision struct {
	Outcome Outcome
	// Rule that regressed; "" unless Outcome is Regressed.
	Rule string
	// Target that tripped the rule, "" when the rule tripped over all
	// targets together (or for a healthy verdict).
	Target string
	// Reason says in plain words, with numbers a user can check, why.
	Reason string
	// Evidence holds the same numbers, for callers that show or record
	// them: a regression's, or a healthy watch's over all targets.
	Evidence Evidence
}

// Evidence is the numbers behind a decision.
type Evidence struct {
	// Judged counts the requests the rule weighed (answered ones for the
	// latency rules), and Bad those that counted against the build: failed,
	// slower than MaxLatency, or for consecutive-failures the run.
	Judged, Bad int64
	// Limit is the bad count that trips the rule after Judged requests:
	// the sequential test's limit or ConsecutiveFailures; 0 when healthy.
	Limit int64
	// Final reports that the limit was the end-of-watch look.
	Final bool
	// ErrorRate is the failure rate observed over Judged (error rules and
	// healthy verdicts), AllowedErrorRate the rate allowed: MaxErrorRate,
	// or in baseline mode production's rate plus it.
	ErrorRate, AllowedErrorRate float64
	// Percentile is the latency percentile judged (e.g. 99), Latency the
	// observed latency at it, MaxLatency the limit in force (MaxLatency, or
	// in baseline mode production's percentile × MaxLatencyIncrease; 0 when
	// latency is not judged).
	Percentile          float64
	Latency, MaxLatency time.Duration
	// Confidence is how sure the rate tests had to be.
	Confidence float64
	// Dispersion is the over-dispersion the error evidence was divided by
	// (1: none; see Limits.Dispersion).
	Dispersion float64
	// Baseline reports baseline mode; BaselineErrorRate and BaselineLatency
	// (at Percentile) are then production's.
	Baseline          bool
	BaselineErrorRate float64
	BaselineLatency   time.Duration
	// Canary is set when a canary was judged against its control.
	Canary *CanaryEvidence
}

// Counts summarises a set of looks.
type Counts struct {
	// Requests seen (probes, for a health watch) and how many failed.
	Probes   int64
	Failures int64
	// Answered requests measured a latency (see the package comment).
	Answered int64
	// Slow answered requests took longer than the latency limit in force;
	// 0 when no latency rule is on.
	Slow int64
	// P50 and P95 are nearest-rank latency quantiles over answered
	// requests (within 1% past a thousand of them), 0 when there are none;
	// Percentile is the one at Limits.LatencyPercentile.
	P50, P95, Percentile time.Duration
}

// TargetCounts are the counts of one target.
type TargetCounts struct {
	Target string
	Counts
}

// Stats are the counts for reporting: over all looks and per target, in
// the order targets were first seen.
type Stats struct {
	Overall Counts
	Targets []TargetCounts
}
