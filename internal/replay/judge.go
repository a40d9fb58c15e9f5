// Package replay judges recorded looks offline (`immune replay FILE...`),
// with exactly the judge a watch runs live: each file is the looks at one
// rate metric (or at a canary's and its control's), fed at their times to
// the metrics package's Judge (or CanaryJudge), which hands the counts to
// the verdict package's engine, as a watch reading that metric from
// Prometheus does. It is how users check the judge on their own incidents,
// and how the benchmark traces are judged end to end.
//
// It is pure but for reading the files and writing one line per file.
package replay

import (
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/immune-cd/immune/internal/metrics"
)

// Options are the judge's settings, named and meant as the action's inputs
// of the same names.
type Options struct {
	// MaxErrorRate is the allowed share of errors; for a canary, the
	// allowed increase over the control, in points.
	MaxErrorRate float64
	// Confidence is how sure a regression must be.
	Confidence float64
	// MinRequests is the fewest requests (the canary's, for a canary) that
	// can clear the build.
	MinRequests int64
	// StartupTimeout is how long the metric may go without data at the
	// start or the end of the watch (at least two intervals).
	StartupTimeout time.Duration
	// Interval is the time between looks; 0: the trace's median gap.
	Interval time.Duration
	// Duration is how long the watch lasted; 0: up to the last look.
	Duration time.Duration
	// PromoteEarly promotes a canary once it is shown no worse than the
	// control (canary-promote-early).
	PromoteEarly bool
}

// The verdicts of a trace.
const (
	Regressed    = "regressed"
	Healthy      = "healthy"
	Inconclusive = "inconclusive"
)

// Result is the judge's verdict on one trace.
type Result struct {
	File    string `json:"file"`
	Verdict string `json:"verdict"`
	// T is the deciding look's time, in seconds since the deploy (for a
	// verdict at the end of the watch, the end); Look is its number,
	// from 1.
	T      float64 `json:"t"`
	Look   int     `json:"look"`
	Reason string  `json:"reason"`
}

// epoch is the deploy's time in the judge's clock: any fixed instant.
var epoch = time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)

func at(t float64) time.Time { return epoch.Add(time.Duration(t * float64(time.Second))) }

// Judge judges one trace as the live watch would have judged its looks.
func Judge(tr *Trace, o Options) Result {
	spec := metrics.Spec{Name: metricName(tr.Name), Errors: colErrors, Total: colRequests, MaxErrorRate: o.MaxErrorRate}
	interval := o.Interval
	if interval <= 0 {
		interval = medianGap(tr.Looks)
	}
	opt := metrics.JudgeOptions{
		Confidence:  o.Confidence,
		Signals:     1,
		MinRequests: o.MinRequests,
		Start:       epoch,
		Grace:       max(o.StartupTimeout, 2*interval),
	}
	last := tr.Looks[len(tr.Looks)-1]
	endT := max(last.T, o.Duration.Seconds())
	res := Result{File: tr.Name, Verdict: Healthy, T: endT, Look: len(tr.Looks)}
	if tr.Canary {
		return judgeCanary(tr, spec, opt, o.PromoteEarly, res)
	}
	j := metrics.NewJudge([]metrics.Spec{spec}, opt)
	readings := make([]metrics.Reading, 1) // the judge keeps none of a look
	for i, l := range tr.Looks {
		readings[0] = reading(spec.Name, l.Requests, l.Errors, l.NoData)
		if reg := j.Observe(metrics.Look{At: at(l.T), Readings: readings}); reg != nil {
			return Result{File: tr.Name, Verdict: Regressed, T: l.T, Look: i + 1, Reason: reg.Reason}
		}
	}
	out := j.Finish(at(endT), true)
	if why := metrics.Inconclusive(out); len(why) > 0 {
		res.Verdict, res.Reason = Inconclusive, strings.Join(why, "; ")
		return res
	}
	res.Reason = out[0].Summary()
	return res
}

func judgeCanary(tr *Trace, spec metrics.Spec, opt metrics.JudgeOptions, promoteEarly bool, res Result) Result {
	j := metrics.NewCanaryJudge([]metrics.Spec{spec}, opt, promoteEarly)
	canary, control := make([]metrics.Reading, 1), make([]metrics.Reading, 1) // the judge keeps none of a look
	for i, l := range tr.Looks {
		canary[0] = reading(spec.Name, l.Requests, l.Errors, l.NoData)
		control[0] = reading(spec.Name, l.ControlRequests, l.ControlErrors, l.ControlNoData)
		if reg := j.Observe(metrics.Look{At: at(l.T), Readings: canary}, metrics.Look{At: at(l.T), Readings: control}); reg != nil {
			return Result{File: tr.Name, Verdict: Regressed, T: l.T, Look: i + 1, Reason: reg.Reason}
		}
		if why, ok := j.NoWorse(); promoteEarly && ok {
			return Result{File: tr.Name, Verdict: Healthy, T: l.T, Look: i + 1, Reason: why}
		}
	}
	canaryOut, controlOut := j.Finish(at(res.T), true)
	if why := metrics.Inconclusive(canaryOut); len(why) > 0 {
		res.Verdict, res.Reason = Inconclusive, strings.Join(why, "; ")
		return res
	}
	res.Reason = metrics.CanarySummary(canaryOut[0], controlOut[0])
	return res
}

// reading is a look at the metric as the Source would have made it.
func reading(name string, n, x int64, noData bool) metrics.Reading {
	r := metrics.Reading{Metric: name, Kind: metrics.KindRate, Requests: n, Errors: x, Series: 1, Attempts: 1}
	if noData {
		r = metrics.Reading{Metric: name, Kind: metrics.KindRate, NoData: metrics.NoDataEmpty, Attempts: 1}
	}
	return r
}

// metricName names the metric in the judge's reasons after the file: "on
// metric incident-42, 30 of 1000 requests failed".
func metricName(file string) string {
	base := filepath.Base(file)
	if name := strings.TrimSuffix(base, filepath.Ext(base)); name != "" {
		return name
	}
	return base
}

// medianGap is the median time between looks (the first from the deploy).
func medianGap(looks []Look) time.Duration {
	gaps := make([]float64, len(looks))
	prev := 0.0
	for i, l := range looks {
		gaps[i], prev = l.T-prev, l.T
	}
	slices.Sort(gaps)
	return time.Duration(gaps[len(gaps)/2] * float64(time.Second))
}
