package metrics

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/url"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/api"
	v1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"

	"github.com/immune-cd/immune/internal/clock"
	"github.com/immune-cd/immune/internal/promql"
)

// Options configures a Source.
type Options struct {
	// URL is the server's base URL (the part before /api/v1).
	URL string
	// Header is added to every request (a bearer token, a tenant id). Its
	// values are secrets: they never appear in a Reading, an error or the
	// log.
	Header http.Header
	HTTP   *http.Client
	Clock  clock.Clock
	// Log receives Prometheus's warnings and infos (each distinct one once
	// per metric) and the retries, except during an outage: after a look
	// that found Prometheus unreachable, a metric's retries are not logged
	// again until it has data (its readings say so). It may be nil.
	Log func(msg string)
	// Attempts is how many requests one query may make in one look
	// (default 3). Only failures a retry can cure are retried: no
	// connection, a timeout, HTTP 5xx, 408 and 429.
	Attempts int
	// Backoff is the wait before the first retry, doubled before each next
	// one (default 250ms).
	Backoff time.Duration
	// RequestTimeout bounds one request, and is passed to Prometheus as the
	// query's timeout (default 5s).
	RequestTimeout time.Duration
}

// Source reads a set of metrics, one look at a time. It keeps each rate
// metric's counters between looks, so Look must not be called concurrently.
type Source struct {
	api     v1.API
	clock   clock.Clock
	log     func(string)
	redact  func(string) string
	tries   int
	backoff time.Duration
	timeout time.Duration
	metrics []*metric
}

// metric is one Spec with its queries expanded and its state.
type metric struct {
	name  string
	kind  Kind
	total string // rate
	errs  string // rate
	query string // threshold

	totals, errors counters
	held           int64

	bounds bounds
	streak streak

	logged map[string]bool // warnings already sent to the log
	// quiet: the last look found Prometheus unreachable; its retries are
	// not logged again until a look has data (the readings show the
	// outage).
	quiet bool
}

// Expanded is a metric's queries as sent to Prometheus.
type Expanded struct {
	Name   string
	Kind   Kind
	Errors string // rate
	Total  string // rate
	Query  string // threshold
}

// New expands the placeholders of specs with vars and returns a Source.
// Specs are expected to be validated by the configuration; New still refuses
// what it cannot run.
func New(specs []Spec, vars promql.Vars, opt Options) (*Source, error) {
	if opt.HTTP == nil || opt.Clock == nil {
		return nil, errors.New("metrics: Options.HTTP and Options.Clock are required")
	}
	u, err := url.Parse(opt.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("metrics: %q is not an absolute http:// or https:// URL", opt.URL)
	}
	if u.User != nil {
		return nil, errors.New("metrics: the Prometheus URL must not carry credentials; pass them as headers")
	}
	s := &Source{
		clock:   opt.Clock,
		log:     opt.Log,
		redact:  redactor(opt.Header),
		tries:   opt.Attempts,
		backoff: opt.Backoff,
		timeout: opt.RequestTimeout,
	}
	if opt.Log != nil {
		// Metrics are read at the same time; their messages are not.
		var mu sync.Mutex
		s.log = func(msg string) {
			mu.Lock()
			defer mu.Unlock()
			opt.Log(msg)
		}
	} else {
		s.log = func(string) {}
	}
	if s.tries <= 0 {
		s.tries = 3
	}
	if s.backoff <= 0 {
		s.backoff = 250 * time.Millisecond
	}
	if s.timeout <= 0 {
		s.timeout = 5 * time.Second
	}
	hc := *opt.HTTP
	hc.CheckRedirect = sameHostRedirects
	client, err := api.NewClient(api.Config{Address: opt.URL, Client: &hc})
	if err != nil {
		return nil, fmt.Errorf("metrics: %w", err)
	}
	s.api = v1.NewAPI(withHeader{Client: client, header: opt.Header.Clone()})

	var errs []error
	for i, spec := range specs {
		m, err := newMetric(spec, vars)
		if err != nil {
			errs = append(errs, fmt.Errorf("metric %d (%q): %w", i+1, spec.Name, err))
			continue
		}
		s.metrics = append(s.metrics, m)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return s, nil
}

func newMetric(spec Spec, vars promql.Vars) (*metric, error) {
	m := &metric{name: spec.Name, kind: spec.Kind(), logged: map[string]bool{}}
	expand := func(field, q string) (string, error) {
		t, err := promql.Parse(q)
		if err != nil {
			return "", fmt.Errorf("%s: %w", field, err)
		}
		out, err := t.Expand(vars)
		if err != nil {
			return "", fmt.Errorf("%s: %w", field, err)
		}
		return out, nil
	}
	var err error
	switch m.kind {
	case KindRate:
		if spec.Errors == "" || spec.Total == "" {
			return nil, errors.New("a rate metric needs errors and total")
		}
		for _, f := range []struct {
			name, q string
			out     *string
		}{{"errors", spec.Errors, &m.errs}, {"total", spec.Total, &m.total}} {
			if err := promql.CheckSelector(f.q); err != nil {
				return nil, fmt.Errorf("%s: %w", f.name, err)
			}
			if *f.out, err = expand(f.name, f.q); err != nil {
				return nil, err
			}
		}
	case KindThreshold:
		if spec.Max == nil && spec.Min == nil {
			return nil, errors.New("a threshold metric needs max or min")
		}
		if m.query, err = expand("query", spec.Query); err != nil {
			return nil, err
		}
		m.bounds = bounds{max: spec.Max, min: spec.Min}
		m.streak.need = spec.Consecutive
		if m.streak.need <= 0 {
			m.streak.need = DefaultConsecutive
		}
	}
	return m, nil
}

// Metrics returns the queries each metric sends, placeholders filled in.
func (s *Source) Metrics() []Expanded {
	out := make([]Expanded, len(s.metrics))
	for i, m := range s.metrics {
		out[i] = Expanded{Name: m.name, Kind: m.kind, Errors: m.errs, Total: m.total, Query: m.query}
	}
	return out
}

// Look reads every metric once, all at the same time, and returns what it
// saw. Each query is retried within the look when a retry can help; ctx
// bounds the whole look (give it the time until the next look).
func (s *Source) Look(ctx context.Context) Look {
	look := Look{At: s.clock.Now(), Readings: make([]Reading, len(s.metrics))}
	var wg sync.WaitGroup
	for i, m := range s.metrics {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if m.kind == KindRate {
				look.Readings[i] = s.lookRate(ctx, m)
			} else {
				look.Readings[i] = s.lookThreshold(ctx, m)
			}
			m.quiet = look.Readings[i].NoData == NoDataUnreachable
		}()
	}
	wg.Wait()
	return look
}

// Check sends every query once, without touching any metric's state, and
// returns an error naming each metric whose query Prometheus cannot run.
// Run it before deploying: a query Prometheus rejects is a configuration
// error, better found then than during the watch.
func (s *Source) Check(ctx context.Context) error {
	var errs []error
	for _, m := range s.metrics {
		queries := []string{m.query}
		if m.kind == KindRate {
			queries = []string{m.total, m.errs}
		}
		for _, q := range queries {
			r := s.query(ctx, m, q, time.Time{})
			if r.err != nil {
				errs = append(errs, &QueryError{Metric: m.name, Query: q, NoData: r.noData, Msg: r.err.Error()})
			} else if m.kind == KindThreshold {
				if _, bad := valuesOf(r.value); bad != "" {
					errs = append(errs, &QueryError{Metric: m.name, Query: q, NoData: NoDataQueryError, Msg: bad})
				}
			}
		}
	}
	return errors.Join(errs...)
}

// QueryError is a query that could not be run.
type QueryError struct {
	Metric string
	Query  string
	NoData NoData // NoDataUnreachable or NoDataQueryError
	Msg    string
}

func (e *QueryError) Error() string {
	return fmt.Sprintf("metric %q: %s: %s (query: %s)", e.Metric, e.NoData, e.Msg, e.Query)
}

func (s *Source) lookRate(ctx context.Context, m *metric) Reading {
	total := s.query(ctx, m, m.total, time.Time{})
	return m.readRate(total, func(at time.Time) result { return s.query(ctx, m, m.errs, at) })
}

// readRate turns what total's selector returned, and then errors' at the
// same instant, into a reading: the counters' increases since the last
// look with data, errors held back beyond the requests. A live look and a
// replayed one (replay.go) read the same way.
func (m *metric) readRate(total result, errsAt func(at time.Time) result) Reading {
	r := Reading{Metric: m.name, Kind: KindRate}
	r.Attempts = total.attempts
	r.Warnings = append(r.Warnings, total.notes...)
	if total.err != nil {
		r.NoData, r.Error = total.noData, "total: "+total.err.Error()
		return r
	}
	totals, noData, notes := counterSamples(total.value, "total")
	r.Warnings = append(r.Warnings, notes...)
	if noData != "" {
		r.NoData = noData
		if noData == NoDataQueryError {
			r.Error = strings.Join(notes, "; ")
		}
		return r
	}
	// Errors are read at the instant total was evaluated at, so both see
	// the same scrapes.
	errs := errsAt(totals.at)
	r.Attempts = max(r.Attempts, errs.attempts)
	r.Warnings = append(r.Warnings, errs.notes...)
	if errs.err != nil {
		// Neither counter moves on: the next look counts both from here.
		r.NoData, r.Error = errs.noData, "errors: "+errs.err.Error()
		return r
	}
	errSamples, errNoData, notes := counterSamples(errs.value, "errors")
	if errNoData != "" && errNoData != NoDataEmpty {
		// An empty errors selector means no errors yet: its counters
		// appear with the first error. Errors that are all NaN or Inf are
		// not zero errors.
		r.NoData = errNoData
		r.Warnings = append(r.Warnings, notes...)
		if errNoData == NoDataQueryError {
			r.Error = strings.Join(notes, "; ")
		}
		return r
	}
	r.Warnings = append(r.Warnings, notes...)

	inc := m.totals.observe(totals.samples)
	einc := m.errors.observe(errSamples.samples)
	r.Series, r.NewSeries, r.Resets = inc.series, inc.fresh, inc.resets
	r.Requests = inc.delta
	heldBefore := m.held
	r.Errors = holdBack(einc.delta, inc.delta, &m.held)
	r.Held = m.held
	if m.held > 0 && m.held != heldBefore {
		r.Warnings = append(r.Warnings, fmt.Sprintf("%d errors are held back: errors counted more than total in this look; check that errors selects a subset of total's requests", m.held))
	}
	return r
}

func (s *Source) lookThreshold(ctx context.Context, m *metric) Reading {
	return m.readThreshold(s.query(ctx, m, m.query, time.Time{}))
}

// readThreshold turns what a threshold metric's query returned into a
// reading: the value furthest beyond (or closest to) a bound, and the
// consecutive rule's streak.
func (m *metric) readThreshold(res result) Reading {
	r := Reading{Metric: m.name, Kind: KindThreshold}
	r.Attempts = res.attempts
	r.Warnings = res.notes
	if res.err != nil {
		r.NoData, r.Error = res.noData, res.err.Error()
		return r
	}
	values, bad := valuesOf(res.value)
	if bad != "" {
		r.NoData, r.Error = NoDataQueryError, bad
		return r
	}
	var finite []float64
	nan, inf := 0, 0
	for _, v := range values {
		switch {
		case math.IsNaN(v):
			nan++
		case math.IsInf(v, 0):
			inf++
		default:
			finite = append(finite, v)
		}
	}
	switch {
	case len(values) == 0:
		r.NoData = NoDataEmpty
		return r
	case len(finite) == 0 && nan > 0:
		r.NoData = NoDataNaN
		return r
	case len(finite) == 0:
		r.NoData = NoDataInf
		return r
	case nan+inf > 0:
		r.Warnings = append(r.Warnings, fmt.Sprintf("%d of %d series are NaN or Inf and are not judged", nan+inf, len(values)))
	}
	r.Series = len(finite)
	r.Value, r.OutOfBounds = m.bounds.worst(finite)
	r.Streak, r.Regressed = m.streak.observe(r.OutOfBounds)
	return r
}

// samples is a look's usable counter samples and the instant they were
// evaluated at.
type samples struct {
	samples []sample
	at      time.Time
}

// counterSamples takes the usable samples of a counter selector's result.
// With none, it says why.
func counterSamples(v model.Value, field string) (samples, NoData, []string) {
	var out samples
	vec, ok := v.(model.Vector)
	if !ok {
		return out, NoDataQueryError, []string{fmt.Sprintf("%s returned a %s, not the series of a selector", field, v.Type())}
	}
	if len(vec) == 0 {
		return out, NoDataEmpty, nil
	}
	var notes []string
	nan, inf := 0, 0
	for _, smp := range vec {
		out.at = smp.Timestamp.Time()
		val := float64(smp.Value)
		switch {
		case smp.Histogram != nil:
			notes = append(notes, fmt.Sprintf("%s: series %s is a native histogram, not a counter; skipped", field, smp.Metric))
		case math.IsNaN(val):
			nan++
		case math.IsInf(val, 0):
			inf++
		case !usable(val):
			notes = append(notes, fmt.Sprintf("%s: series %s has the value %v, which no counter has; skipped", field, smp.Metric, val))
		default:
			out.samples = append(out.samples, sample{key: smp.Metric.String(), value: val})
		}
	}
	if nan+inf > 0 {
		notes = append(notes, fmt.Sprintf("%s: %d of %d series are NaN or Inf; skipped", field, nan+inf, len(vec)))
	}
	if len(out.samples) == 0 {
		switch {
		case nan > 0:
			return out, NoDataNaN, notes
		case inf > 0:
			return out, NoDataInf, notes
		}
		return out, NoDataQueryError, notes
	}
	sort.Slice(out.samples, func(i, j int) bool { return out.samples[i].key < out.samples[j].key })
	return out, "", notes
}

// valuesOf returns the values of an instant query's result, or why a
// threshold cannot be judged on it.
func valuesOf(v model.Value) ([]float64, string) {
	switch v := v.(type) {
	case model.Vector:
		values := make([]float64, 0, len(v))
		for _, smp := range v {
			if smp.Histogram != nil {
				continue // a native histogram has no single value
			}
			values = append(values, float64(smp.Value))
		}
		return values, ""
	case *model.Scalar:
		return []float64{float64(v.Value)}, ""
	}
	return nil, fmt.Sprintf("the query returns a %s; a threshold needs an instant vector or a scalar", v.Type())
}
