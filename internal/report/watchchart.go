package report

import (
	"fmt"
	"math"
	"strings"
	"time"

	"github.com/immune-cd/immune/internal/health"
	"github.com/immune-cd/immune/internal/sha"
)

// bucket is one column of a watch's chart: the probes of one or more
// rounds (or minutes).
type bucket struct {
	at                    time.Duration // from the chart's clock
	live, failed, startup int
	slowest               time.Duration
	answered              bool
}

// part is one watch's columns in a chart: the deploy's, or the rollback's.
type part struct {
	commit  string
	first   string // the first column's label: "deploy", "rollback"
	buckets []bucket
	width   time.Duration // of a column
	startup startup
}

// startup is what a watch saw before its build answered healthy.
type startup struct {
	probes int
	after  time.Duration // when the last URL first answered healthy
	up     bool
}

// startupOf counts a watch's probes before the build was live.
func startupOf(w *Watch) startup {
	var s startup
	if w == nil {
		return s
	}
	if w.Aggregates != nil {
		for _, m := range w.Aggregates.Minutes {
			s.probes += m.Startup
		}
	} else {
		for _, p := range w.Probes {
			if p.Phase == health.PhaseStartup {
				s.probes++
			}
		}
	}
	for _, d := range w.LiveAfter {
		s.up, s.after = true, max(s.after, d)
	}
	if !s.up && w.Stats.Probes > 0 {
		// Live probes without the time it went live: the first of them.
		s.up = true
		for _, p := range w.Probes {
			if p.Phase == health.PhaseLive {
				s.after = p.Time.Sub(w.Start)
				break
			}
		}
	}
	return s
}

// units is how many rounds (or minutes, when aggregated) a watch has.
func units(w *Watch) int {
	switch {
	case w == nil:
		return 0
	case w.Aggregates != nil:
		return len(w.Aggregates.Minutes)
	case len(w.Probes) == 0:
		return 0
	}
	return w.Probes[len(w.Probes)-1].Round
}

// roundInterval is the time between a watch's rounds, from its probes.
func roundInterval(w *Watch) time.Duration {
	if len(w.Probes) < 2 {
		return 0
	}
	first, last := w.Probes[0], w.Probes[len(w.Probes)-1]
	if last.Round == first.Round {
		return 0
	}
	return last.Time.Sub(first.Time) / time.Duration(last.Round-first.Round)
}

// partOf groups a watch's probes into columns of per rounds (or minutes),
// on the clock that started at clock.
func partOf(w *Watch, first string, per int, clock time.Time) part {
	pt := part{commit: w.SHA, first: first, startup: startupOf(w)}
	if a := w.Aggregates; a != nil {
		pt.width = time.Duration(per) * time.Minute
		for i := 0; i < len(a.Minutes); i += per {
			bk := bucket{at: w.Start.Sub(clock) + time.Duration(a.Minutes[i].Minute)*time.Minute}
			for _, m := range a.Minutes[i:min(i+per, len(a.Minutes))] {
				bk.live += m.Probes - m.Startup
				bk.failed += m.Failed
				bk.startup += m.Startup
				if m.Slowest > 0 {
					bk.slowest, bk.answered = max(bk.slowest, m.Slowest), true
				}
			}
			pt.buckets = append(pt.buckets, bk)
		}
		return pt
	}
	pt.width = time.Duration(per) * roundInterval(w)
	index := -1
	for _, p := range w.Probes {
		n := (p.Round - 1) / per
		if len(pt.buckets) == 0 || n != index {
			pt.buckets = append(pt.buckets, bucket{at: p.Time.Sub(clock)})
			index = n
		}
		bk := &pt.buckets[len(pt.buckets)-1]
		if p.Phase != health.PhaseLive {
			bk.startup++
			continue
		}
		bk.live++
		if p.Failed {
			bk.failed++
		}
		if p.Answered {
			bk.slowest, bk.answered = max(bk.slowest, p.Latency), true
		}
	}
	return pt
}

// watchParts are the columns of a run's watch and of its rollback's
// watch, on one clock from the first watch's start, at most maxColumns
// together.
func watchParts(r *Run) []part {
	type one struct {
		w     *Watch
		first string
	}
	first := "deploy"
	if r.Mode == "rollback" {
		first = "rollback"
	}
	var ws []one
	for _, o := range []one{{r.Watch, first}, {r.RollbackWatch, "rollback"}} {
		if units(o.w) > 0 {
			ws = append(ws, o)
		}
	}
	if len(ws) == 0 {
		return nil
	}
	total := 0
	for _, o := range ws {
		total += units(o.w)
	}
	per := max((total+maxColumns-1)/maxColumns, 1)
	clock := ws[0].w.Start
	var parts []part
	for _, o := range ws {
		parts = append(parts, partOf(o.w, o.first, per, clock))
	}
	return parts
}

// writeChart draws what the watch (and the rollback's watch) saw, one
// column per round or group of rounds: the share of probes that failed,
// then the slowest answer, each on its own axis. Probes before a build
// answered healthy are not failures: they are left out, and the caption
// says so.
func writeChart(b *strings.Builder, r *Run) {
	parts := watchParts(r)
	if len(parts) == 0 {
		return
	}
	var labels []string
	var keep []bool
	n := 0
	for _, pt := range parts {
		n += len(pt.buckets)
	}
	failed := &xyChart{title: "Failed probes (%), " + every(parts[0].width), yTitle: "failed (%)", yMax: 100}
	slow := &xyChart{title: "Slowest answer (ms), " + every(parts[0].width), yTitle: "ms"}
	col := 0
	var top time.Duration
	for i, pt := range parts {
		fails, lat := nanSeries(n), nanSeries(n)
		for j, bk := range pt.buckets {
			label := sinceLabel(bk.at, pt.width)
			if j == 0 {
				label = pt.first
			}
			labels, keep = append(labels, label), append(keep, j == 0)
			if bk.live > 0 {
				fails[col] = 100 * float64(bk.failed) / float64(bk.live)
			}
			if bk.answered {
				lat[col] = float64(bk.slowest) / 1e6
				top = max(top, bk.slowest)
			}
			col++
		}
		name := sha.Short(pt.commit)
		if i > 0 {
			name += " (rollback)"
		}
		failed.series = append(failed.series, plot{name: name, values: fails})
		slow.series = append(slow.series, plot{name: name, values: lat})
	}
	failed.colours, slow.colours = []string{colourFailed, colourFailedRollback}, []string{colourLatency, colourLatencyBack}
	failed.colours, slow.colours = failed.colours[:len(parts)], slow.colours[:len(parts)]
	slow.yMax = niceCeil(math.Max(float64(top)/1e6, 10) * 1.1)
	for _, c := range []*xyChart{failed, slow} {
		c.labels, c.keep = labels, keep
		c.write(b)
	}
	b.WriteString(caption(parts) + "\n\n")
}

func nanSeries(n int) []float64 {
	s := make([]float64, n)
	for i := range s {
		s[i] = math.NaN()
	}
	return s
}

// caption says what the charts show and what they leave out: the clock,
// the colours (for a Mermaid without a legend), and each build's startup.
func caption(parts []part) string {
	var s strings.Builder
	s.WriteString("*One column ")
	s.WriteString(every(parts[0].width))
	fmt.Fprintf(&s, ", times from the %s", parts[0].first)
	if len(parts) > 1 {
		fmt.Fprintf(&s, "; red and blue: `%s`, orange and purple: `%s` after the rollback", sha.Short(parts[0].commit), sha.Short(parts[1].commit))
	}
	s.WriteString(".")
	for _, pt := range parts {
		if st := startupNote(pt); st != "" {
			s.WriteString(" " + st)
		}
	}
	s.WriteString("*")
	return s.String()
}

// startupNote says what a part's build did before it answered healthy.
func startupNote(pt part) string {
	st, short := pt.startup, "`"+sha.Short(pt.commit)+"`"
	switch {
	case st.probes == 0:
		return ""
	case !st.up:
		return fmt.Sprintf("%s never answered healthy: its %d %s were all before it was up, and are not drawn.", short, st.probes, plural(st.probes, "probe"))
	}
	before := fmt.Sprintf("the %d probes before were its startup", st.probes)
	if st.probes == 1 {
		before = "the probe before was its startup"
	}
	return fmt.Sprintf("%s answered healthy after %s; %s, not failures, and %s not drawn.",
		short, FormatDuration(st.after), before, map[bool]string{true: "is", false: "are"}[st.probes == 1])
}

func plural(n int, word string) string {
	if n == 1 {
		return word
	}
	return word + "s"
}
