package report

import (
	"maps"
	"slices"
	"time"

	"github.com/immune-cd/immune/internal/health"
	"github.com/immune-cd/immune/internal/latency"
)

// DefaultProbeCap is how many probes a watch's report keeps in full.
const DefaultProbeCap = 10_000

// ProbeLog keeps a watch's probes for the report in bounded memory: every
// probe up to its cap; past it, every failed probe in full and the rest
// only in aggregates per URL and per minute (which then cover every
// probe). A failure rate high enough to keep many failed probes ends the
// watch, so what it keeps stays a few percent of the probes at most.
type ProbeLog struct {
	cap    int
	start  time.Time
	pct    float64 // latency percentile reported beside p50 and p95
	probes []health.Probe
	total  int
	over   bool // past the cap: only failed probes are kept

	urls    map[string]*URLAggregate
	order   []string
	minutes map[int]*minuteLog

	live      int64
	failed    int64
	latencies latency.Sketch // live answered probes
}

type minuteLog struct {
	MinuteAggregate
	lat latency.Sketch
}

// NewProbeLog starts the log of a watch that started at start, keeping up
// to limit probes in full (DefaultProbeCap when 0); percentile is the
// latency percentile the watch judges (e.g. 99).
func NewProbeLog(start time.Time, limit int, percentile float64) *ProbeLog {
	if limit <= 0 {
		limit = DefaultProbeCap
	}
	return &ProbeLog{cap: limit, start: start, pct: percentile, urls: map[string]*URLAggregate{}, minutes: map[int]*minuteLog{}}
}

// Aggregates summarise every probe of a watch whose probes were too many
// to keep in full.
type Aggregates struct {
	// Probes is how many probes the watch made; Kept how many are in
	// Watch.Probes (the failed ones).
	Probes, Kept int
	URLs         []URLAggregate
	Minutes      []MinuteAggregate
}

// URLAggregate summarises one URL's probes.
type URLAggregate struct {
	URL     string
	Probes  int // all probes, startup included
	Startup int // probes before the build was live, not judged
	Failed  int // failed live probes
	// P50, P95 and Percentile are latencies of the URL's live answered
	// probes (within 1% past a thousand of them).
	P50, P95, Percentile time.Duration
	Slowest              time.Duration

	lat *latency.Sketch
}

// MinuteAggregate summarises the probes started in one minute of the watch.
type MinuteAggregate struct {
	Minute  int // from the start of the watch: 0 is the first minute
	Probes  int
	Startup int
	Failed  int
	P50     time.Duration
	P95     time.Duration
	Slowest time.Duration
}

// Add records one probe.
func (l *ProbeLog) Add(p health.Probe) {
	l.total++
	if !l.over && len(l.probes) >= l.cap {
		// Past the cap: keep only the failed probes from now on.
		l.over = true
		kept := l.probes[:0]
		for _, q := range l.probes {
			if q.Failed {
				kept = append(kept, q)
			}
		}
		l.probes = kept
	}
	if !l.over || p.Failed {
		l.probes = append(l.probes, p)
	}

	u := l.urls[p.URL]
	if u == nil {
		u = &URLAggregate{URL: p.URL, lat: &latency.Sketch{}}
		l.urls[p.URL] = u
		l.order = append(l.order, p.URL)
	}
	if l.start.IsZero() {
		l.start = p.Time
	}
	m := int(max(p.Time.Sub(l.start), 0) / time.Minute)
	minute := l.minutes[m]
	if minute == nil {
		minute = &minuteLog{MinuteAggregate: MinuteAggregate{Minute: m}}
		l.minutes[m] = minute
	}
	u.Probes++
	minute.Probes++
	if p.Phase != health.PhaseLive {
		u.Startup++
		minute.Startup++
		return
	}
	l.live++
	if p.Failed {
		l.failed++
		u.Failed++
		minute.Failed++
	}
	if p.Answered {
		l.latencies.Add(p.Latency)
		u.lat.Add(p.Latency)
		minute.lat.Add(p.Latency)
		u.Slowest = max(u.Slowest, p.Latency)
		minute.Slowest = max(minute.Slowest, p.Latency)
	}
}

// Probes are the probes kept in full, in the order they ended.
func (l *ProbeLog) Probes() []health.Probe { return l.probes }

// Aggregates summarises every probe, or is nil when every probe was kept.
func (l *ProbeLog) Aggregates() *Aggregates {
	if !l.over {
		return nil
	}
	a := &Aggregates{Probes: l.total, Kept: len(l.probes)}
	for _, name := range l.order {
		u := *l.urls[name]
		u.P50, u.P95, u.Percentile = u.lat.Quantile(0.5), u.lat.Quantile(0.95), u.lat.Quantile(l.pct/100)
		u.lat = nil
		a.URLs = append(a.URLs, u)
	}
	for _, n := range slices.Sorted(maps.Keys(l.minutes)) {
		m := l.minutes[n]
		agg := m.MinuteAggregate
		agg.P50, agg.P95 = m.lat.Quantile(0.5), m.lat.Quantile(0.95)
		a.Minutes = append(a.Minutes, agg)
	}
	return a
}

// Stats are the counts over the live probes.
func (l *ProbeLog) Stats() Stats {
	s := Stats{Probes: int(l.live), Failed: int(l.failed), P50: l.latencies.Quantile(0.5), P95: l.latencies.Quantile(0.95),
		Percentile: l.pct, AtPercentile: l.latencies.Quantile(l.pct / 100)}
	if l.live > 0 {
		s.ErrorRate = float64(l.failed) / float64(l.live)
	}
	return s
}

// Fill sets a report watch's probes, aggregates and stats from the log.
func (l *ProbeLog) Fill(w *Watch) {
	w.Probes, w.Aggregates, w.Stats = l.Probes(), l.Aggregates(), l.Stats()
}
