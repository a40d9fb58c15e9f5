package metrics

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/url"
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
	// Log receives every note of the readings (Prometheus's warnings and
	// infos, series left out and why), each distinct one once per metric,
	// and the retries, except during an outage: after a look
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
	// MaxAnswer bounds the bytes read of one answer (default
	// DefaultMaxAnswer), MaxSeries the series one answer may hold (default
	// DefaultMaxSeries); a rate metric's selector follows at most
	// 4×MaxSeries distinct series over a watch. Past a bound the look has
	// no data, and says which bound.
	MaxAnswer int64
	MaxSeries int
	// AtClock evaluates every look at the clock's time instead of the
	// server's now: for reading recorded data on a stepped clock (a
	// backfilled Prometheus).
	AtClock bool
	// Settle is how far behind the server's now a rate metric's looks
	// after the first are evaluated, so that every scrape up to that
	// instant has landed (default DefaultSettle).
	Settle time.Duration
}

// DefaultSettle is the default of Options.Settle: scrapes take well under
// a second to land.
const DefaultSettle = time.Second

// Bounds on what is read from Prometheus.
const (
	DefaultMaxAnswer = 8 << 20
	DefaultMaxSeries = 10_000
)

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
	// maxSeries bounds the series of one answer, maxTracked the series a
	// counter selector follows over a watch, maxAnswer an answer's bytes.
	maxSeries  int
	maxTracked int
	maxAnswer  int64
	atClock    bool
	settle     time.Duration
	metrics    []*metric
}

// metric is one Spec with its queries expanded and its state.
type metric struct {
	name  string
	kind  Kind
	query string // threshold

	// Rate metrics: the two selectors, the instant of the last look that
	// read them, the errors held back, and how far the server's clock is
	// ahead of ours.
	total, errors counter
	prevAt        time.Time
	held          int64
	skew          time.Duration
	skewKnown     bool

	bounds bounds
	streak streak

	mu     sync.Mutex      // guards logged: a metric's queries run at the same time
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
	s.maxAnswer, s.maxSeries, s.atClock, s.settle = opt.MaxAnswer, opt.MaxSeries, opt.AtClock, opt.Settle
	if s.settle <= 0 {
		s.settle = DefaultSettle
	}
	if s.maxAnswer <= 0 {
		s.maxAnswer = DefaultMaxAnswer
	}
	if s.maxSeries <= 0 {
		s.maxSeries = DefaultMaxSeries
	}
	s.maxTracked = 4 * s.maxSeries
	hc := *opt.HTTP
	hc.CheckRedirect = sameHostRedirects
	hc.Transport = capped{next: hc.Transport, max: s.maxAnswer}
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
			out     *counter
		}{{"errors", spec.Errors, &m.errors}, {"total", spec.Total, &m.total}} {
			if err := promql.CheckSelector(f.q); err != nil {
				return nil, fmt.Errorf("%s: %w", f.name, err)
			}
			f.out.field = f.name
			if f.out.selector, err = expand(f.name, f.q); err != nil {
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

// evalAt is the instant a look's first query is evaluated at: zero, the
// server's now, unless AtClock.
func (s *Source) evalAt() time.Time {
	if s.atClock {
		return s.clock.Now()
	}
	return time.Time{}
}

// Metrics returns the queries each metric sends, placeholders filled in.
func (s *Source) Metrics() []Expanded {
	out := make([]Expanded, len(s.metrics))
	for i, m := range s.metrics {
		out[i] = Expanded{Name: m.name, Kind: m.kind, Errors: m.errors.selector, Total: m.total.selector, Query: m.query}
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
			// What the look left out or was told is said in the log, each
			// note once.
			for _, n := range look.Readings[i].Warnings {
				s.logOnce(m, n)
			}
			m.quiet = look.Readings[i].NoData == NoDataUnreachable
		}()
	}
	wg.Wait()
	return look
}

// Check sends every query once, all at the same time, without touching
// any metric's state, and returns an error naming each metric whose query
// Prometheus cannot run (or whose answer is past a bound). Run it before
// deploying: a query Prometheus rejects is a configuration error, better
// found then than during the watch. It takes as long as the slowest query
// with its retries, however many metrics there are.
func (s *Source) Check(ctx context.Context) error {
	type job struct {
		m   *metric
		q   string
		err error
	}
	var jobs []*job
	for _, m := range s.metrics {
		if m.kind == KindRate {
			jobs = append(jobs, &job{m: m, q: m.total.selector}, &job{m: m, q: m.errors.selector})
		} else {
			jobs = append(jobs, &job{m: m, q: m.query})
		}
	}
	var wg sync.WaitGroup
	for _, j := range jobs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := s.query(ctx, j.m, j.q, time.Time{})
			bad := ""
			switch {
			case r.err != nil:
				j.err = &QueryError{Metric: j.m.name, Query: j.q, NoData: r.noData, Msg: r.err.Error()}
				return
			case j.m.kind == KindThreshold:
				var values []float64
				if values, bad = valuesOf(r.value); bad == "" && len(values) > s.maxSeries {
					bad = fmt.Sprintf("returned %d series, more than the %d a look reads", len(values), s.maxSeries)
				}
			default:
				if vec, ok := r.value.(model.Vector); ok && len(vec) > s.maxSeries {
					bad = fmt.Sprintf("matched %d series, more than the %d a look reads; select fewer", len(vec), s.maxSeries)
				}
			}
			if bad != "" {
				j.err = &QueryError{Metric: j.m.name, Query: j.q, NoData: NoDataQueryError, Msg: bad}
			}
		}()
	}
	wg.Wait()
	var errs []error
	for _, j := range jobs {
		if j.err != nil {
			errs = append(errs, j.err)
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

func (s *Source) lookThreshold(ctx context.Context, m *metric) Reading {
	return s.readThreshold(m, s.query(ctx, m, m.query, s.evalAt()))
}

// readThreshold turns what a threshold metric's query returned into a
// reading: the value furthest beyond (or closest to) a bound, and the
// consecutive rule's streak. A live look and a replayed one (replay.go)
// read the same way.
func (s *Source) readThreshold(m *metric, res result) Reading {
	r := Reading{Metric: m.name, Kind: KindThreshold}
	r.Attempts = res.attempts
	r.Warnings = res.notes
	if res.err != nil {
		r.NoData, r.Error = res.noData, res.err.Error()
		return r
	}
	values, bad := valuesOf(res.value)
	if bad == "" && len(values) > s.maxSeries {
		bad = fmt.Sprintf("returned %d series, more than the %d a look reads; aggregate them (e.g. with max or sum by)", len(values), s.maxSeries)
	}
	if bad != "" {
		r.NoData, r.Error = NoDataQueryError, bad
		return r
	}
	// NaN (0/0, no traffic) is no value. ±Inf is one: a quantile in the
	// +Inf bucket is slower than the largest bucket, beyond any max.
	var judged []float64
	nan := 0
	for _, v := range values {
		if math.IsNaN(v) {
			nan++
		} else {
			judged = append(judged, v)
		}
	}
	if n := histograms(res.value); n > 0 {
		r.Warnings = append(r.Warnings, fmt.Sprintf("%d series are native histograms, which have no single value, and are not judged", n))
	}
	switch {
	case len(values) == 0:
		r.NoData = NoDataEmpty
		return r
	case len(judged) == 0:
		r.NoData = NoDataNaN
		return r
	case nan > 0:
		r.Warnings = append(r.Warnings, fmt.Sprintf("%d of %d series are NaN and are not judged", nan, len(values)))
	}
	r.Series = len(judged)
	r.Value, r.OutOfBounds = m.bounds.worst(judged)
	r.Streak, r.Regressed = m.streak.observe(r.OutOfBounds)
	return r
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

// histograms counts the native histograms of an instant vector.
func histograms(v model.Value) int {
	vec, _ := v.(model.Vector)
	n := 0
	for _, smp := range vec {
		if smp.Histogram != nil {
			n++
		}
	}
	return n
}
