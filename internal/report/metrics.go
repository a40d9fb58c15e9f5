package report

import (
	"encoding/json"
	"fmt"
	"github.com/immune-cd/immune/internal/pct"
	"math"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/immune-cd/immune/internal/metrics"
)

// DefaultLookCap is how many looks of each metric a watch's report keeps in
// full; past it, the looks are kept as aggregates per minute.
const DefaultLookCap = 10_000

// MetricWatch is what one watch saw of one metric: its looks and what the
// watch made of them.
type MetricWatch struct {
	Name string       `json:"name"`
	Kind metrics.Kind `json:"kind"`
	// Queries are the queries sent, placeholders filled in: total and
	// errors for a rate metric, the query for a threshold.
	Queries []string `json:"queries"`
	// Looks taken, and how many had no data, by reason.
	Looks  int                    `json:"looks"`
	NoData map[metrics.NoData]int `json:"no_data_looks,omitempty"`
	// Rate metrics: requests and errors counted over the watch, their
	// rate, the allowed rate and how it was judged.
	Requests  int64   `json:"requests,omitempty"`
	Errors    int64   `json:"errors,omitempty"`
	ErrorRate float64 `json:"error_rate,omitempty"`
	Allowed   float64 `json:"allowed_error_rate,omitempty"`
	Judged    string  `json:"judged,omitempty"`
	// Threshold metrics: the bounds, the last value, the one furthest out
	// of (or closest to) bounds, and the looks out of bounds.
	Max         *float64 `json:"max,omitempty"`
	Min         *float64 `json:"min,omitempty"`
	Consecutive int      `json:"consecutive,omitempty"`
	Value       *Number  `json:"value,omitempty"`
	Worst       *Number  `json:"worst,omitempty"`
	OutOfBounds int      `json:"looks_out_of_bounds,omitempty"`
	// Regressed: this metric regressed the build. Inconclusive says why it
	// could not clear it.
	Regressed    bool   `json:"regressed,omitempty"`
	Inconclusive string `json:"inconclusive,omitempty"`
	// Shadow: a shadow metric, judged but never regressing the build;
	// WouldHave, when it would have regressed it.
	Shadow    bool             `json:"shadow,omitempty"`
	WouldHave *MetricWouldHave `json:"would_have_regressed,omitempty"`
	// LooksKept are the looks in full, up to DefaultLookCap; Minutes, the
	// looks per minute when there were more (then Aggregated).
	LooksKept  []MetricLook   `json:"looks_kept"`
	Aggregated bool           `json:"aggregated"`
	Minutes    []MetricMinute `json:"per_minute,omitempty"`
	// Notes are what the looks said beyond their numbers (Prometheus's
	// warnings, series left out and why), each once with the looks that
	// said it, up to MaxNotes; NotesNotKept counts the other distinct ones.
	Notes        []MetricNote `json:"notes,omitempty"`
	NotesNotKept int          `json:"notes_not_kept,omitempty"`
}

// MaxNotes bounds the distinct notes a metric's report keeps.
const MaxNotes = 20

// MetricNote is one thing the looks at a metric said, and how often.
type MetricNote struct {
	Text  string    `json:"text"`
	Looks int       `json:"looks"`
	First time.Time `json:"first"`
}

// Number is a metric's value, which may be ±Inf (a quantile in the +Inf
// bucket): JSON has no number for those, so they are written "+Inf" and
// "-Inf", as Prometheus writes them.
type Number float64

// MarshalJSON writes n as a JSON number, or ±Inf as a string.
func (n Number) MarshalJSON() ([]byte, error) {
	switch {
	case math.IsInf(float64(n), 1):
		return []byte(`"+Inf"`), nil
	case math.IsInf(float64(n), -1):
		return []byte(`"-Inf"`), nil
	}
	return json.Marshal(float64(n))
}

// UnmarshalJSON reads what MarshalJSON writes.
func (n *Number) UnmarshalJSON(b []byte) error {
	switch string(b) {
	case `"+Inf"`:
		*n = Number(math.Inf(1))
		return nil
	case `"-Inf"`:
		*n = Number(math.Inf(-1))
		return nil
	}
	var f float64
	err := json.Unmarshal(b, &f)
	*n = Number(f)
	return err
}

func number(v float64) *Number {
	n := Number(v)
	return &n
}

// MetricWouldHave is when and why a shadow metric would have regressed the
// build.
type MetricWouldHave struct {
	After        time.Duration `json:"-"`
	AfterSeconds float64       `json:"after_seconds"`
	Reason       string        `json:"reason"`
}

// MetricLook is one look at one metric.
type MetricLook struct {
	At time.Time `json:"time"`
	// Requests and Errors since the previous look (rate metrics).
	Requests int64 `json:"requests,omitempty"`
	Errors   int64 `json:"errors,omitempty"`
	// Value and whether it was out of bounds (threshold metrics).
	Value       *Number `json:"value,omitempty"`
	OutOfBounds bool    `json:"out_of_bounds,omitempty"`
	// NoData says why the look had no data, Error with what error.
	NoData   metrics.NoData `json:"no_data,omitempty"`
	Error    string         `json:"error,omitempty"`
	Attempts int            `json:"attempts"`
	// What the look made of a rate metric's series (see metrics.Reading):
	// restarts of total and of errors, series born during the watch
	// (counted from zero), and series read behind what was counted (a
	// replica behind: not counted until they catch up).
	Resets      int `json:"counter_resets,omitempty"`
	ErrorResets int `json:"error_counter_resets,omitempty"`
	Born        int `json:"series_born,omitempty"`
	Behind      int `json:"series_behind,omitempty"`
}

// MetricMinute aggregates the looks started in one minute of the watch.
type MetricMinute struct {
	Minute      int     `json:"minute"`
	Looks       int     `json:"looks"`
	NoData      int     `json:"no_data_looks"`
	Requests    int64   `json:"requests,omitempty"`
	Errors      int64   `json:"errors,omitempty"`
	Worst       *Number `json:"worst,omitempty"`
	OutOfBounds int     `json:"looks_out_of_bounds,omitempty"`
}

// MetricLog keeps a watch's looks at its metrics for the report, in
// bounded memory: up to its cap per metric in full, and per minute always.
type MetricLog struct {
	start   time.Time
	cap     int
	metrics []*metricLog
}

type metricLog struct {
	notes   []MetricNote
	noteAt  map[string]int // index in notes
	dropped map[string]bool
	kind    metrics.Kind
	looks   []MetricLook
	total   int
	minutes []*MetricMinute
	spec    metrics.Spec
}

// NewMetricLog starts the log of a watch of specs that started at start,
// keeping up to limit looks per metric in full (DefaultLookCap when 0).
func NewMetricLog(start time.Time, specs []metrics.Spec, limit int) *MetricLog {
	if limit <= 0 {
		limit = DefaultLookCap
	}
	l := &MetricLog{start: start, cap: limit}
	for _, s := range specs {
		l.metrics = append(l.metrics, &metricLog{kind: s.Kind(), spec: s})
	}
	return l
}

// Add records one look.
func (l *MetricLog) Add(look metrics.Look) {
	minute := int(max(look.At.Sub(l.start), 0) / time.Minute)
	for i, r := range look.Readings {
		if i >= len(l.metrics) {
			break
		}
		m := l.metrics[i]
		m.total++
		ml := MetricLook{At: look.At, NoData: r.NoData, Error: r.Error, Attempts: r.Attempts,
			Resets: r.Resets, ErrorResets: r.ErrorResets, Born: r.Born + r.ErrorBorn, Behind: r.Lagging + r.ErrorLagging}
		if r.HasData() {
			if m.kind == metrics.KindRate {
				ml.Requests, ml.Errors = r.Requests, r.Errors
			} else {
				ml.Value, ml.OutOfBounds = number(r.Value), r.OutOfBounds
			}
		}
		m.note(look.At, r.Warnings)
		if len(m.looks) < l.cap {
			m.looks = append(m.looks, ml)
		}
		for len(m.minutes) <= minute {
			m.minutes = append(m.minutes, &MetricMinute{Minute: len(m.minutes)})
		}
		agg := m.minutes[minute]
		agg.Looks++
		switch {
		case !r.HasData():
			agg.NoData++
		case m.kind == metrics.KindRate:
			agg.Requests += r.Requests
			agg.Errors += r.Errors
		default:
			if agg.Worst == nil || m.spec.Excess(r.Value) > m.spec.Excess(float64(*agg.Worst)) {
				agg.Worst = number(r.Value)
			}
			if r.OutOfBounds {
				agg.OutOfBounds++
			}
		}
	}
}

// note counts the notes of one look, keeping up to MaxNotes distinct ones.
func (m *metricLog) note(at time.Time, notes []string) {
	for _, text := range notes {
		if i, ok := m.noteAt[text]; ok {
			m.notes[i].Looks++
			continue
		}
		if len(m.notes) >= MaxNotes {
			if m.dropped == nil {
				m.dropped = map[string]bool{}
			}
			if len(m.dropped) < 10*MaxNotes {
				m.dropped[text] = true
			}
			continue
		}
		if m.noteAt == nil {
			m.noteAt = map[string]int{}
		}
		m.noteAt[text] = len(m.notes)
		m.notes = append(m.notes, MetricNote{Text: text, Looks: 1, First: at})
	}
}

// Metrics returns what the watch saw of each metric: the looks logged, with
// the outcomes the judge gave (in the same order) and the queries sent.
func (l *MetricLog) Metrics(outcomes []metrics.Outcome, queries []metrics.Expanded) []MetricWatch {
	out := make([]MetricWatch, len(l.metrics))
	for i, m := range l.metrics {
		w := MetricWatch{Name: m.spec.Name, Kind: m.kind, Looks: m.total, LooksKept: m.looks, Notes: m.notes, NotesNotKept: len(m.dropped)}
		if w.LooksKept == nil {
			w.LooksKept = []MetricLook{}
		}
		if i < len(queries) {
			q := queries[i]
			if q.Kind == metrics.KindRate {
				w.Queries = []string{q.Total, q.Errors}
			} else {
				w.Queries = []string{q.Query}
			}
		}
		if m.total > len(m.looks) {
			w.Aggregated = true
			for _, agg := range m.minutes {
				w.Minutes = append(w.Minutes, *agg)
			}
		}
		if i < len(outcomes) {
			o := outcomes[i]
			if len(o.NoData) > 0 {
				w.NoData = o.NoData
			}
			w.Regressed, w.Inconclusive, w.Shadow = o.Regressed, o.Inconclusive, o.Shadow
			if reg := o.Shadowed; reg != nil {
				after := reg.At.Sub(l.start)
				w.WouldHave = &MetricWouldHave{After: after, AfterSeconds: after.Seconds(), Reason: reg.Reason}
			}
			if m.kind == metrics.KindRate {
				w.Requests, w.Errors, w.Allowed, w.Judged = o.Requests, o.Errors, o.Allowed, o.Baseline
				if o.Requests > 0 {
					w.ErrorRate = float64(o.Errors) / float64(o.Requests)
				}
			} else {
				w.Max, w.Min, w.Consecutive, w.OutOfBounds = o.Max, o.Min, o.Consecutive, o.OutOfBounds
				if o.Looks > o.NoDataLooks() {
					w.Value, w.Worst = number(o.Value), number(o.Worst)
				}
			}
		}
		out[i] = w
	}
	return out
}

// noDataText says how many looks had no data, and why: "2 without data
// (unreachable)".
func noDataText(m MetricWatch) string {
	n := 0
	var why []string
	for _, reason := range []metrics.NoData{metrics.NoDataEmpty, metrics.NoDataNaN, metrics.NoDataInf, metrics.NoDataUnreachable, metrics.NoDataQueryError} {
		if c := m.NoData[reason]; c > 0 {
			n += c
			why = append(why, fmt.Sprintf("%d %s", c, reason))
		}
	}
	if n == 0 {
		return fmt.Sprintf("%d", m.Looks)
	}
	return fmt.Sprintf("%d, %d without data (%s)", m.Looks, n, strings.Join(why, ", "))
}

// MetricLine says in one line what a watch saw of a metric.
func MetricLine(m MetricWatch) string {
	var s string
	if m.Kind == metrics.KindRate {
		s = fmt.Sprintf("%d of %d requests failed (%s), allowed %s", m.Errors, m.Requests, pct.Of(m.ErrorRate, 1), pct.Of(m.Allowed, 1))
		if m.Judged != "" && m.Judged != "absolute" {
			s += " " + m.Judged
		}
	} else {
		s = boundsOf(m)
		if m.Value != nil {
			s += fmt.Sprintf("; last %s, worst %s, %d looks out of bounds", formatValue(float64(*m.Value)), formatValue(float64(*m.Worst)), m.OutOfBounds)
		}
	}
	return s
}

func boundsOf(m MetricWatch) string {
	switch {
	case m.Max != nil && m.Min != nil:
		return fmt.Sprintf("within %s to %s", formatValue(*m.Min), formatValue(*m.Max))
	case m.Max != nil:
		return "at most " + formatValue(*m.Max)
	case m.Min != nil:
		return "at least " + formatValue(*m.Min)
	}
	return ""
}

func formatValue(v float64) string { return strconv.FormatFloat(v, 'g', 4, 64) }

func metricVerdict(m MetricWatch) string {
	switch {
	case m.WouldHave != nil:
		return fmt.Sprintf("🕶️ shadow: would have regressed at +%s", FormatDuration(m.WouldHave.After))
	case m.Shadow && m.Inconclusive != "":
		return "🕶️ shadow: would be inconclusive"
	case m.Shadow:
		return "🕶️ shadow: ✅"
	case m.Regressed:
		return "❌ regressed"
	case m.Inconclusive != "":
		return "❔ inconclusive"
	}
	return "✅"
}

// writeMetrics writes each watch's metrics as a table, then a chart per
// metric across the watch and the rollback's watch.
func writeMetrics(b *strings.Builder, r *Run) {
	for _, w := range []struct {
		title string
		watch *Watch
	}{{"Metrics, before the deploy (production)", r.Baseline}, {"Metrics", r.Watch}, {"Metrics of the rollback", r.RollbackWatch}} {
		if w.watch == nil || len(w.watch.Metrics) == 0 {
			continue
		}
		fmt.Fprintf(b, "**%s**\n\n| Metric | Looks | Counted | Verdict |\n|---|---|---|---|\n", w.title)
		for _, m := range w.watch.Metrics {
			verdict := metricVerdict(m)
			if w.watch == r.Baseline {
				verdict = m.Judged
			}
			fmt.Fprintf(b, "| `%s` (%s) | %s | %s | %s |\n", m.Name, m.Kind, noDataText(m), MetricLine(m), verdict)
		}
		b.WriteString("\n")
		for _, m := range w.watch.Metrics {
			if m.WouldHave != nil {
				fmt.Fprintf(b, "🕶️ `%s` is a shadow metric: it would have regressed the build at +%s: %s. It did not.\n\n", m.Name, FormatDuration(m.WouldHave.After), md(m.WouldHave.Reason, maxReason))
			}
		}
		writeMetricNotes(b, w.watch.Metrics)
	}
	if r.Watch == nil {
		return
	}
	for i, m := range r.Watch.Metrics {
		var rollback *MetricWatch
		if rw := r.RollbackWatch; rw != nil && i < len(rw.Metrics) && rw.Metrics[i].Name == m.Name {
			rollback = &rw.Metrics[i]
		}
		writeMetricChart(b, r.Watch, m, r.RollbackWatch, rollback)
	}
}

// summaryNotes is how many of a metric's notes the summary shows; the JSON
// report keeps MaxNotes.
const summaryNotes = 5

// writeMetricNotes lists what the looks at the metrics said beyond their
// numbers (Prometheus's warnings, series left out), each once with the
// looks that said it, as text (writeList escapes it: Prometheus's words
// are from outside).
func writeMetricNotes(b *strings.Builder, ms []MetricWatch) {
	var items []string
	for _, m := range ms {
		for i, n := range m.Notes {
			if i == summaryNotes {
				items = append(items, fmt.Sprintf("%s: %d more in the JSON report", m.Name, len(m.Notes)-summaryNotes+m.NotesNotKept))
				break
			}
			items = append(items, fmt.Sprintf("%s, %d %s: %s", m.Name, n.Looks, plural(n.Looks, "look"), n.Text))
		}
		if len(m.Notes) <= summaryNotes && m.NotesNotKept > 0 {
			items = append(items, fmt.Sprintf("%s: %d more in the JSON report", m.Name, m.NotesNotKept))
		}
	}
	writeList(b, "What the looks at the metrics said", items)
}

// metricColumn is one column of a metric's chart.
type metricColumn struct {
	label            string
	first            bool
	requests, errors int64
	worst            *Number
	looks, noData    int
}

// writeMetricChart draws a rate metric's error rate per column (red bars)
// beside its allowed rate (grey line), or a threshold metric's worst value
// per column (blue bars) beside its bound, across the watch and the
// rollback's watch on one clock. A column whose every look had no data
// has no bar, and the caption counts them.
func writeMetricChart(b *strings.Builder, w *Watch, m MetricWatch, rw *Watch, rm *MetricWatch) {
	units := metricUnits(m)
	if rm != nil {
		units += metricUnits(*rm)
	}
	per := max((units+maxColumns-1)/maxColumns, 1)
	cols, width := metricColumns(w, m, "deploy", per, w.Start)
	if rm != nil {
		more, _ := metricColumns(rw, *rm, "rollback", per, w.Start)
		cols = append(cols, more...)
	}
	if len(cols) == 0 {
		return
	}
	c := &xyChart{colours: []string{colourFailed, colourControl}}
	values, bound := nanSeries(len(cols)), make([]float64, len(cols))
	noData := 0
	name := m.Name
	if utf8.RuneCountInString(name) > 30 {
		name = string([]rune(name)[:29]) + "…"
	}
	var top float64
	if m.Kind == metrics.KindRate {
		allowed := m.Allowed * 100
		top = allowed * 2
		for i, col := range cols {
			if col.requests > 0 {
				values[i] = 100 * float64(col.errors) / float64(col.requests)
				top = math.Max(top, values[i])
			}
			bound[i] = allowed
		}
		c.title, c.yTitle = name+": errors (%), "+every(width), "errors (%)"
		c.series = []plot{{name: "errors", values: values}, {name: "allowed " + pct.Of(m.Allowed, 1), line: true, values: bound}}
	} else {
		limit, which := 0.0, ""
		switch {
		case m.Max != nil:
			limit, which = *m.Max, "max "
		case m.Min != nil:
			limit, which = *m.Min, "min "
		}
		top = math.Abs(limit) * 1.5
		for i, col := range cols {
			if col.worst != nil {
				values[i] = float64(*col.worst)
				if !math.IsInf(values[i], 0) {
					top = math.Max(top, values[i])
				}
			}
			bound[i] = limit
		}
		// +Inf (beyond every bucket) reaches the top of the chart, -Inf
		// its bottom.
		for i, v := range values {
			switch {
			case math.IsInf(v, 1):
				values[i] = niceCeil(top * 1.1)
			case math.IsInf(v, -1):
				values[i] = 0
			}
		}
		c.colours[0] = colourLatency
		c.title, c.yTitle = name+": worst look, "+every(width), "value"
		c.series = []plot{{name: "worst look", values: values}, {name: which + formatValue(limit), line: true, values: bound}}
	}
	for _, col := range cols {
		c.labels, c.keep = append(c.labels, col.label), append(c.keep, col.first)
		if col.looks > 0 && col.noData == col.looks {
			noData++
		}
	}
	if top <= 0 {
		top = 1
	}
	c.yMax = niceCeil(top * 1.1)
	c.write(b)
	fmt.Fprintf(b, "*One column %s, times from the deploy", every(width))
	if rm != nil {
		b.WriteString(", the rollback's watch after it")
	}
	b.WriteString(".")
	if noData > 0 {
		fmt.Fprintf(b, " No bar in %d %s: Prometheus had no data for %s.", noData, plural(noData, "column"), map[bool]string{true: "it", false: "them"}[noData == 1])
	}
	b.WriteString("*\n\n")
}

// metricUnits is how many looks (or minutes, when aggregated) a metric has.
func metricUnits(m MetricWatch) int {
	if m.Aggregated {
		return len(m.Minutes)
	}
	return len(m.LooksKept)
}

// metricColumns groups a metric's looks per columns of per looks (or
// minutes, when aggregated), labelled on the clock that started at clock;
// it returns the columns and their width.
func metricColumns(w *Watch, m MetricWatch, first string, per int, clock time.Time) ([]metricColumn, time.Duration) {
	worse := func(c *metricColumn, v *Number) {
		if v == nil {
			return
		}
		spec := metrics.Spec{Max: m.Max, Min: m.Min}
		if c.worst == nil || spec.Excess(float64(*v)) > spec.Excess(float64(*c.worst)) {
			c.worst = number(float64(*v))
		}
	}
	var cols []metricColumn
	if m.Aggregated {
		width := time.Duration(per) * time.Minute
		for i := 0; i < len(m.Minutes); i += per {
			c := metricColumn{label: first, first: i == 0}
			if i > 0 {
				c.label = sinceLabel(w.Start.Sub(clock)+time.Duration(m.Minutes[i].Minute)*time.Minute, width)
			}
			for _, agg := range m.Minutes[i:min(i+per, len(m.Minutes))] {
				c.looks += agg.Looks
				c.noData += agg.NoData
				c.requests += agg.Requests
				c.errors += agg.Errors
				worse(&c, agg.Worst)
			}
			cols = append(cols, c)
		}
		return cols, width
	}
	var width time.Duration
	if n := len(m.LooksKept); n > 1 {
		width = time.Duration(per) * m.LooksKept[n-1].At.Sub(m.LooksKept[0].At) / time.Duration(n-1)
	}
	for i := 0; i < len(m.LooksKept); i += per {
		c := metricColumn{label: first, first: i == 0}
		if i > 0 {
			c.label = sinceLabel(m.LooksKept[i].At.Sub(clock), width)
		}
		for _, l := range m.LooksKept[i:min(i+per, len(m.LooksKept))] {
			c.looks++
			if l.NoData != "" {
				c.noData++
				continue
			}
			c.requests += l.Requests
			c.errors += l.Errors
			worse(&c, l.Value)
		}
		cols = append(cols, c)
	}
	return cols, width
}
