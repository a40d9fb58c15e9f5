package metrics

// A rate metric's look: its two counter selectors read raw at one instant,
// with Prometheus's own word on which series restarted since the previous
// look, turned into exact counts by counters.

import (
	"context"
	"fmt"
	"math"
	"sort"
	"strings"
	"time"

	"github.com/prometheus/common/model"
)

// lookback is how far before a look the sample it read can lie: Prometheus's
// default lookback delta. A restart is looked for from this far before the
// previous look, so that the drop between the sample that look read and the
// next one is seen.
const lookback = 5 * time.Minute

// evidenceReach is how long before the previous look a series may have
// been read last for the restarts Prometheus reports to cover it: the
// sample that read saw lies within the lookback, assuming scrapes at most a
// minute apart.
const evidenceReach = lookback - time.Minute

// counter is one counter selector of a rate metric and its state.
type counter struct {
	field    string // "total" or "errors"
	selector string
	counters counters
	// noEvidence says why Prometheus cannot tell this selector's restarts
	// (resets() failed on it), once it could not.
	noEvidence string
}

// resetsQuery asks, for each series of the selector, how many restarts
// (drops between consecutive samples) have a sample after since, up to at:
// those in (since - lookback, at] less those in (since - lookback, since].
// The selector ends its line, so that a trailing comment cannot swallow the
// range.
func (c *counter) resetsQuery(since, at time.Time) string {
	o := at.Sub(since).Milliseconds()
	d := lookback.Milliseconds()
	all := fmt.Sprintf("resets(%s\n[%dms])", c.selector, o+d)
	before := fmt.Sprintf("resets(%s\n[%dms] offset %dms)", c.selector, d, o)
	return all + " - " + before + " or " + all
}

// read is what one look read of a counter selector: its values, and the
// restarts Prometheus saw in its series since the instant since (nil: no
// evidence).
type read struct {
	values   result
	restarts *result
	since    time.Time
}

// lookRate reads a rate metric live. The first look (and any until one has
// data) reads total at the server's now, then errors at the instant total
// was evaluated at, and learns the server's clock. Later looks are
// evaluated at the server's now less settle, so that every scrape up to that
// instant has landed (a sample is stamped when its scrape starts and stored
// when it ends), and read each selector in one query with its restarts
// since the previous look: a value and its restarts come from one state of
// the store, and what a look saw is exactly what the next one takes as
// seen.
func (s *Source) lookRate(ctx context.Context, m *metric) Reading {
	if m.prevAt.IsZero() || !s.atClock && !m.skewKnown {
		sent := s.clock.Now()
		total := s.query(ctx, m, m.total.selector, s.evalAt())
		r := s.readRate(m, read{values: total}, func(at time.Time) read {
			return read{values: s.query(ctx, m, m.errors.selector, at)}
		})
		if !m.prevAt.IsZero() && !s.atClock {
			m.skew, m.skewKnown = m.prevAt.Sub(sent), true
		}
		return r
	}
	at := s.clock.Now()
	if !s.atClock {
		at = at.Add(m.skew - s.settle)
	}
	since := m.prevAt
	return s.readRate(m, s.readCounter(ctx, m, &m.total, at, since), func(time.Time) read {
		return s.readCounter(ctx, m, &m.errors, at, since)
	})
}

// restartsLabel marks the restarts in the answer of a selector read with
// them: `or` matches series without their names, so the restarts need a
// label of their own to be kept beside the values.
const restartsLabel = "immune_restarts"

// readCounter reads counter c at at, in one query with its restarts since
// since when Prometheus can tell them (see resetsQuery), marked with
// restartsLabel.
func (s *Source) readCounter(ctx context.Context, m *metric, c *counter, at, since time.Time) read {
	if c.noEvidence != "" || c.counters.tracked() == 0 || !at.After(since) {
		return read{values: s.query(ctx, m, c.selector, at)}
	}
	res := s.query(ctx, m, c.selector+"\nor\nlabel_replace("+c.resetsQuery(since, at)+`, "`+restartsLabel+`", "1", "", "")`, at)
	if res.err != nil && res.noData == NoDataQueryError {
		// A selector resets() cannot run on (its series differ only by
		// name, say): its values alone, and a lower value is a restart,
		// as without evidence.
		c.noEvidence = res.err.Error()
		plain := s.query(ctx, m, c.selector, at)
		plain.notes = append(plain.notes, c.noEvidenceNote())
		return read{values: plain}
	}
	vec, ok := res.value.(model.Vector)
	if res.err != nil || !ok {
		return read{values: res}
	}
	values, restarts := res, res
	values.value, restarts.value = model.Vector{}, model.Vector{}
	restarts.notes = nil
	for _, smp := range vec {
		if _, marked := smp.Metric[restartsLabel]; marked {
			delete(smp.Metric, restartsLabel)
			restarts.value = append(restarts.value.(model.Vector), smp)
		} else {
			values.value = append(values.value.(model.Vector), smp)
		}
	}
	return read{values: values, restarts: &restarts, since: since}
}

// readRate turns what a look read of total, and then of errors at the
// same instant (errsAt), into a reading: the counters' increases since the
// last look with data, errors held back beyond the requests. A live look
// and a replayed one (replay.go) read the same way.
func (s *Source) readRate(m *metric, t read, errsAt func(at time.Time) read) Reading {
	r := Reading{Metric: m.name, Kind: KindRate}
	fail := func(field string, res result) Reading {
		r.NoData, r.Error = res.noData, field+": "+res.err.Error()
		return r
	}
	total := t.values
	r.Attempts = total.attempts
	r.Warnings = append(r.Warnings, total.notes...)
	if total.err != nil {
		return fail("total", total)
	}
	// samplesOf turns a counter's answer into its samples; ok is false
	// when the reading ends there, r saying why. Empty is not the end: an
	// empty errors selector means no errors yet (its counters appear with
	// the first error), an empty total no requests yet.
	samplesOf := func(res result, c *counter) (samples, NoData, bool) {
		ss, noData, notes := s.counterSamples(res.value, c)
		r.Warnings = append(r.Warnings, notes...)
		if noData != "" && noData != NoDataEmpty {
			r.NoData = noData
			if noData == NoDataQueryError {
				r.Error = c.field + ": " + strings.Join(notes, "; ")
			}
			return ss, noData, false
		}
		return ss, noData, true
	}
	totals, noData, ok := samplesOf(total, &m.total)
	if !ok {
		return r
	}

	// Errors are read at the instant total was evaluated at, so both see
	// the same scrapes. An empty total has no instant: errors are then
	// read at the server's now.
	at := totals.at
	if at.IsZero() {
		at = s.evalAt()
	}
	e := errsAt(at)
	errs := e.values
	evidence := !at.IsZero() && !m.prevAt.IsZero()
	// A replica whose clock (or data) is behind may answer for an instant
	// before the previous look's: nothing in it is new, no restart either.
	behind := evidence && !at.After(m.prevAt)
	// Restarts are evidence when counted since the previous look.
	told := func(x read) *result {
		if !evidence || behind || x.restarts == nil || !x.since.Equal(m.prevAt) {
			return nil
		}
		return x.restarts
	}
	var totalResets, errResets result
	withTotalResets := evidence && m.total.noEvidence == "" && (behind || told(t) != nil)
	withErrResets := evidence && m.errors.noEvidence == "" && (behind || told(e) != nil)
	if x := told(t); x != nil {
		totalResets = *x
	}
	if x := told(e); x != nil {
		errResets = *x
	}
	for _, res := range []result{errs, totalResets, errResets} {
		r.Attempts = max(r.Attempts, res.attempts)
		r.Warnings = append(r.Warnings, res.notes...)
	}
	if errs.err != nil {
		// Neither counter moves on: the next look counts both from here.
		return fail("errors", errs)
	}
	// Errors that are all NaN or Inf are not zero errors.
	errSamples, _, ok := samplesOf(errs, &m.errors)
	if !ok {
		return r
	}
	for _, e := range []struct {
		asked bool
		res   result
		c     *counter
		ss    []sample
	}{{withTotalResets, totalResets, &m.total, totals.samples}, {withErrResets, errResets, &m.errors, errSamples.samples}} {
		if !e.asked || behind {
			continue
		}
		if e.res.err != nil && e.res.noData == NoDataUnreachable {
			return fail(e.c.field+" restarts", e.res)
		}
		if e.res.err == nil {
			if why := applyResets(e.res.value, e.ss); why == "" {
				continue
			} else {
				e.res.err = fmt.Errorf("%s", why)
			}
		}
		// A selector resets() cannot run on (its series differ only by
		// name, say): a lower value is then a restart, as without
		// evidence.
		e.c.noEvidence = e.res.err.Error()
		r.Warnings = append(r.Warnings, e.c.noEvidenceNote())
	}
	if msg := s.overTracked(&m.total, totals.samples); msg != "" {
		r.NoData, r.Error = NoDataQueryError, "total: "+msg
		return r
	}
	if msg := s.overTracked(&m.errors, errSamples.samples); msg != "" {
		r.NoData, r.Error = NoDataQueryError, "errors: "+msg
		return r
	}

	evidenceFrom := func(asked bool, c *counter) time.Time {
		if !asked || c.noEvidence != "" {
			return time.Time{}
		}
		return m.prevAt.Add(-evidenceReach)
	}
	inc := m.total.counters.observe(totals.samples, at, evidenceFrom(withTotalResets, &m.total))
	einc := m.errors.counters.observe(errSamples.samples, at, evidenceFrom(withErrResets, &m.errors))
	if at.After(m.prevAt) {
		m.prevAt = at
	}
	r.Series, r.NewSeries, r.Born, r.Resets, r.Lagging = inc.series, inc.fresh, inc.born, inc.resets, inc.lagging
	r.ErrorBorn, r.ErrorResets, r.ErrorLagging = einc.born, einc.resets, einc.lagging
	heldBefore := m.held
	if noData == NoDataEmpty {
		// No requests to count yet; errors seen meanwhile wait for them.
		m.held += einc.delta
		r.NoData = NoDataEmpty
		r.Held = m.held
		return r
	}
	r.Requests = inc.delta
	r.Errors = holdBack(einc.delta, inc.delta, &m.held)
	r.Held = m.held
	if m.held > 0 && m.held != heldBefore {
		r.Warnings = append(r.Warnings, fmt.Sprintf("%d errors are held back: errors counted more than total in this look; check that errors selects a subset of total's requests", m.held))
	}
	return r
}

// noEvidenceNote says that c's restarts are found without Prometheus's
// word for them, and why.
func (c *counter) noEvidenceNote() string {
	return fmt.Sprintf("%s: Prometheus cannot say which series restarted (%s); a value lower than the last look's is taken as a restart", c.field, c.noEvidence)
}

// applyResets sets each sample's restarts from a resets query's answer,
// or says why the answer cannot be used.
func applyResets(v model.Value, ss []sample) string {
	vec, ok := v.(model.Vector)
	if !ok {
		return fmt.Sprintf("resets() returned a %s", v.Type())
	}
	by := make(map[string]int, len(vec))
	for _, smp := range vec {
		n := float64(smp.Value)
		if math.IsNaN(n) || n < 0 {
			continue
		}
		by[bareKey(smp.Metric)] = int(min(n, math.MaxInt32))
	}
	for i := range ss {
		ss[i].resets = by[ss[i].bare]
	}
	return ""
}

// bareKey is a series' labels without its name, as functions like resets()
// return them.
func bareKey(m model.Metric) string {
	if _, named := m[model.MetricNameLabel]; !named {
		return m.String()
	}
	c := m.Clone()
	delete(c, model.MetricNameLabel)
	return c.String()
}

// overTracked says when following samples would take c past the bound of
// series a watch follows, or "".
func (s *Source) overTracked(c *counter, ss []sample) string {
	fresh := 0
	for _, smp := range ss {
		if !c.counters.has(smp.key) {
			fresh++
		}
	}
	if n := c.counters.tracked() + fresh; n > s.maxTracked {
		return fmt.Sprintf("%d distinct series over the watch, more than the %d one watch follows; select fewer (labels that change all the time, such as a request id, make a new series each time)", n, s.maxTracked)
	}
	return ""
}

// samples is a look's usable counter samples and the instant they were
// evaluated at.
type samples struct {
	samples []sample
	at      time.Time
}

// counterSamples takes the usable samples of a counter selector's result.
// With none, it says why. What it skips, it says, one note per reason.
func (s *Source) counterSamples(v model.Value, c *counter) (samples, NoData, []string) {
	var out samples
	vec, ok := v.(model.Vector)
	if !ok {
		return out, NoDataQueryError, []string{fmt.Sprintf("returned a %s, not the series of a selector", v.Type())}
	}
	if len(vec) == 0 {
		return out, NoDataEmpty, nil
	}
	if len(vec) > s.maxSeries {
		return out, NoDataQueryError, []string{fmt.Sprintf("matched %d series, more than the %d a look reads; select fewer", len(vec), s.maxSeries)}
	}
	var skipped skips
	for _, smp := range vec {
		out.at = smp.Timestamp.Time()
		val := float64(smp.Value)
		switch {
		case smp.Histogram != nil:
			skipped.add("native histograms, not counters", smp.Metric)
		case math.IsNaN(val):
			skipped.add("NaN", smp.Metric)
		case math.IsInf(val, 0):
			skipped.add("Inf", smp.Metric)
		case !usable(val):
			skipped.add("values no counter has (negative, or too large to be exact)", smp.Metric)
		default:
			out.samples = append(out.samples, sample{key: smp.Metric.String(), bare: bareKey(smp.Metric), value: val})
		}
	}
	notes := skipped.notes(c.field, len(vec))
	if len(out.samples) == 0 {
		switch {
		case skipped.count["NaN"] > 0:
			return out, NoDataNaN, notes
		case skipped.count["Inf"] > 0:
			return out, NoDataInf, notes
		}
		return out, NoDataQueryError, notes
	}
	sort.Slice(out.samples, func(i, j int) bool { return out.samples[i].key < out.samples[j].key })
	return out, "", notes
}

// skips counts series left out of a look, by reason, with one example each.
type skips struct {
	count   map[string]int
	example map[string]string
	order   []string
}

func (k *skips) add(why string, m model.Metric) {
	if k.count == nil {
		k.count, k.example = map[string]int{}, map[string]string{}
	}
	if k.count[why] == 0 {
		k.order = append(k.order, why)
		k.example[why] = clip(m.String(), 200)
	}
	k.count[why]++
}

// notes says what was skipped: "total: 2 of 5 series skipped, NaN or Inf
// (e.g. x{a="1"})".
func (k *skips) notes(field string, of int) []string {
	var out []string
	for _, why := range k.order {
		out = append(out, fmt.Sprintf("%s: %d of %d series skipped, %s (e.g. %s)", field, k.count[why], of, why, k.example[why]))
	}
	return out
}

// clip cuts s to at most n bytes, on a rune boundary, marking the cut.
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	cut := n
	for cut > 0 && !isRuneStart(s[cut]) {
		cut--
	}
	return s[:cut] + fmt.Sprintf("… (%d bytes more)", len(s)-cut)
}

func isRuneStart(b byte) bool { return b&0xC0 != 0x80 }
