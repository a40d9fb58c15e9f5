// Package metrics reads metrics from a server that speaks Prometheus's HTTP
// query API (Prometheus, Thanos, Mimir, VictoriaMetrics) and turns each look
// into observations: exact request and error counts for rate metrics, a
// value against its bounds for threshold metrics. The Source measures; the
// Judge (judge.go, pure) keeps the book of a watch's looks: it hands each
// rate metric's counts to a verdict engine of its own (the statistics are
// the verdict package's), applies the consecutive rule of threshold metrics,
// and says when a watch cannot clear the build (no data, too few requests).
//
// Rate metrics read their two counter selectors raw (an instant query of the
// selector itself, never increase() or rate(), which extrapolate to
// non-integers) and compute each series' increase since the previous look:
//   - a series seen for the first time is a starting point, not an increase;
//   - a counter lower than before is a restart, and its new value is the
//     increase since the restart;
//   - a series that disappears adds nothing; its last value is kept, so a
//     series that comes back (a scrape that failed, a process that
//     restarted) is still counted from where it was.
//
// A look that could not read a metric (Prometheus unreachable after its
// retries, a rejected query, an empty result, NaN or ±Inf) is "no data" for
// that metric: never zero, never a pass. Counters are not advanced by a look
// without data, so the next look with data counts everything since the last
// one: no request is lost to an outage of Prometheus.
package metrics

import (
	"fmt"
	"strings"
	"time"
)

// Kind is the kind of a metric.
type Kind string

// The kinds of metric.
const (
	// KindRate counts requests and errors from two counter selectors.
	KindRate Kind = "rate"
	// KindThreshold compares the value of a query with bounds.
	KindThreshold Kind = "threshold"
)

// Spec describes one metric. Queries may hold the placeholders of package
// promql (${SHA}, ${PREVIOUS_SHA}, ${ENVIRONMENT}, ${TRACK}).
type Spec struct {
	Name string
	// Errors and Total are series selectors of counters (rate metrics).
	Errors, Total string
	// MaxErrorRate is a rate metric's allowed share of errors (in baseline
	// mode, the allowed increase over production's, in points); the Judge
	// uses it, the Source does not.
	MaxErrorRate float64
	// Query is an instant query whose value is compared with Max and Min
	// (threshold metrics).
	Query string
	Max   *float64
	Min   *float64
	// Consecutive is how many looks in a row out of bounds are a
	// regression (threshold metrics; 0 means DefaultConsecutive).
	Consecutive int
	// Shadow trials the metric: it is read and judged as if it were live
	// (a rate metric with the share of the false-alarm allowance it would
	// take), and what it would have done is kept, but it never regresses
	// the build nor makes it inconclusive, and it takes no share from the
	// live metrics.
	Shadow bool
}

// DefaultConsecutive is the default of Spec.Consecutive.
const DefaultConsecutive = 3

// Kind returns the kind of metric s describes.
func (s Spec) Kind() Kind {
	if s.Query != "" {
		return KindThreshold
	}
	return KindRate
}

// NoData says why a look has no data for a metric.
type NoData string

// Reasons for no data. The zero value means the look has data.
const (
	// NoDataEmpty: the query matched no series.
	NoDataEmpty NoData = "empty"
	// NoDataNaN: every value was NaN (for example 0/0 over no traffic).
	NoDataNaN NoData = "NaN"
	// NoDataInf: every value was +Inf or -Inf.
	NoDataInf NoData = "Inf"
	// NoDataUnreachable: no answer from Prometheus after the retries
	// (connection refused, timeout, HTTP 5xx, 429).
	NoDataUnreachable NoData = "unreachable"
	// NoDataQueryError: Prometheus answered with an error that a retry
	// would not change (a query it rejects, HTTP 4xx, a response that is
	// not Prometheus's API). Error says which.
	NoDataQueryError NoData = "query error"
)

// Look is one reading of every metric.
type Look struct {
	// At is when the look started (the injected clock).
	At       time.Time `json:"at"`
	Readings []Reading `json:"readings"` // one per metric, in configuration order
}

// Reading is what one look saw of one metric.
type Reading struct {
	Metric string `json:"metric"`
	Kind   Kind   `json:"kind"`
	// NoData is empty when the look has data; else why it has none.
	NoData NoData `json:"no_data,omitempty"`
	// Error explains NoDataUnreachable and NoDataQueryError (secrets
	// removed).
	Error string `json:"error,omitempty"`
	// Attempts is how many requests the look made for this metric's
	// slowest query (more than 1 when a request was retried).
	Attempts int `json:"attempts"`
	// Series is how many series had a usable value.
	Series int `json:"series"`

	// Rate metrics: requests and errors since the previous look with data,
	// exact integers (n and x of a count test). Errors never exceeds
	// Requests: errors counted ahead of their requests (two different
	// metrics scraped at different moments) are held back until the
	// requests catch up, never dropped.
	Requests int64 `json:"requests"`
	Errors   int64 `json:"errors"`
	// Held is how many errors are held back after this look.
	Held int64 `json:"held,omitempty"`
	// What the look made of total's series (see counters): NewSeries are
	// the first look's, starting points, not counted; Born were first seen
	// later, born during the watch, counted from zero; Resets restarted,
	// counted from zero; Lagging read lower than already counted with no
	// restart (a replica behind), not counted until they pass it. The same
	// for the errors selector's series.
	NewSeries    int `json:"new_series,omitempty"`
	Born         int `json:"born,omitempty"`
	Resets       int `json:"resets,omitempty"`
	Lagging      int `json:"lagging,omitempty"`
	ErrorBorn    int `json:"error_born,omitempty"`
	ErrorResets  int `json:"error_resets,omitempty"`
	ErrorLagging int `json:"error_lagging,omitempty"`

	// Threshold metrics: the value judged (the series furthest beyond, or
	// closest to, a bound), whether it is out of bounds, how many looks
	// with data in a row have been out of bounds, and whether that reached
	// Consecutive. Looks without data neither extend nor break the streak.
	Value       float64 `json:"value"`
	OutOfBounds bool    `json:"out_of_bounds,omitempty"`
	Streak      int     `json:"streak,omitempty"`
	Regressed   bool    `json:"regressed,omitempty"`

	// Warnings are Prometheus's warnings and infos for this look and the
	// adapter's own notes (series skipped, errors held back): everything
	// the look left out is said here.
	Warnings []string `json:"warnings,omitempty"`
}

// Counters says in a few words what a rate metric's look made of its
// series, beyond counting them: "2 series born (counted from zero), 1
// restart of errors". "" when there is nothing to say.
func (r Reading) Counters() string {
	var parts []string
	add := func(n int, one, many string) {
		switch {
		case n == 1:
			parts = append(parts, one)
		case n > 1:
			parts = append(parts, fmt.Sprintf(many, n))
		}
	}
	add(r.Born, "1 new series of total (counted from zero)", "%d new series of total (counted from zero)")
	add(r.ErrorBorn, "1 new series of errors (counted from zero)", "%d new series of errors (counted from zero)")
	add(r.Resets, "1 counter reset of total", "%d counter resets of total")
	add(r.ErrorResets, "1 counter reset of errors", "%d counter resets of errors")
	add(r.Lagging, "1 series of total read behind (not counted until it catches up)", "%d series of total read behind (not counted until they catch up)")
	add(r.ErrorLagging, "1 series of errors read behind (not counted until it catches up)", "%d series of errors read behind (not counted until they catch up)")
	return strings.Join(parts, ", ")
}

// HasData reports whether the look read the metric.
func (r Reading) HasData() bool { return r.NoData == "" }
