package metrics

import (
	"context"
	"fmt"
	"time"

	v1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"
)

// MaxReplaySteps is how many steps one range query asks for: Prometheus
// refuses more than 11,000 points per series in one answer, so a longer
// replay is read in pieces.
const MaxReplaySteps = 10_000

// Replay reads every metric over n past looks, from start, one every step,
// by range queries (query_range) instead of one instant query per look.
// Prometheus evaluates a range query at each step as it evaluates an
// instant query at that time, so the look at step t sees what a live look
// at t would have seen; each is then read exactly as a live look is
// (readRate, readThreshold: counters' increases, errors held back, the
// consecutive rule), so that a Judge fed these looks decides as it would
// have live. A range query that fails leaves its looks without data, as a
// failed live look does. Replay continues from the Source's state, like
// more looks: use a new Source for each watch replayed.
func (s *Source) Replay(ctx context.Context, start time.Time, step time.Duration, n int) []Look {
	looks := make([]Look, n)
	for k := range looks {
		looks[k] = Look{At: start.Add(time.Duration(k) * step), Readings: make([]Reading, len(s.metrics))}
	}
	for lo := 0; lo < n; lo += MaxReplaySteps {
		hi := min(lo+MaxReplaySteps, n)
		r := v1.Range{Start: looks[lo].At, End: looks[hi-1].At, Step: step}
		for i, m := range s.metrics {
			if m.kind == KindRate {
				total := s.steps(ctx, m, m.total.selector, r, hi-lo)
				errs := s.steps(ctx, m, m.errors.selector, r, hi-lo)
				// Each step's restarts since the step before: the window
				// of a restarts query depends only on the time between
				// its looks.
				var restarts [2][]result
				for c, sel := range []*counter{&m.total, &m.errors} {
					restarts[c] = s.steps(ctx, m, sel.resetsQuery(r.Start, r.Start.Add(step)), r, hi-lo)
				}
				for k := lo; k < hi; k++ {
					at := looks[k].At
					since := at.Add(-step)
					looks[k].Readings[i] = s.readRate(m, read{values: total[k-lo], restarts: &restarts[0][k-lo], since: since}, func(time.Time) read {
						return read{values: errs[k-lo], restarts: &restarts[1][k-lo], since: since}
					})
				}
			} else {
				values := s.steps(ctx, m, m.query, r, hi-lo)
				for k := lo; k < hi; k++ {
					looks[k].Readings[i] = s.readThreshold(m, values[k-lo])
				}
			}
		}
	}
	return looks
}

// steps runs q over r and splits the answer into what an instant query at
// each of its n steps would have returned. A failed query is the same
// failure at every step; its warnings go with the first step.
func (s *Source) steps(ctx context.Context, m *metric, q string, r v1.Range, n int) []result {
	res := s.queryRange(ctx, m, q, r)
	out := make([]result, n)
	if res.err == nil {
		if _, ok := res.value.(model.Matrix); !ok {
			res.err, res.noData = fmt.Errorf("a range query returned a %s, not a matrix", res.value.Type()), NoDataQueryError
		}
	}
	if res.err != nil {
		for k := range out {
			out[k] = result{err: res.err, noData: res.noData, attempts: res.attempts}
		}
		out[0].notes = res.notes
		return out
	}
	vectors := make([]model.Vector, n)
	for _, stream := range res.value.(model.Matrix) {
		for _, p := range stream.Values {
			if k, ok := stepOf(p.Timestamp.Time(), r, n); ok {
				vectors[k] = append(vectors[k], &model.Sample{Metric: stream.Metric, Value: p.Value, Timestamp: p.Timestamp})
			}
		}
		for _, h := range stream.Histograms {
			if k, ok := stepOf(h.Timestamp.Time(), r, n); ok {
				vectors[k] = append(vectors[k], &model.Sample{Metric: stream.Metric, Histogram: h.Histogram, Timestamp: h.Timestamp})
			}
		}
	}
	for k := range out {
		v := vectors[k]
		if v == nil {
			v = model.Vector{}
		}
		out[k] = result{value: v, attempts: 1}
	}
	out[0].attempts, out[0].notes = res.attempts, res.notes
	return out
}

// stepOf is the index of the step at t, if t is one.
func stepOf(t time.Time, r v1.Range, n int) (int, bool) {
	d := t.Sub(r.Start)
	if d < 0 || r.Step <= 0 {
		return 0, false
	}
	k := int((d + r.Step/2) / r.Step)
	return k, k < n
}
