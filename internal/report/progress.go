package report

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/immune-cd/immune/internal/health"
	"github.com/immune-cd/immune/internal/latency"
	"github.com/immune-cd/immune/internal/pct"
)

// markedURLs is the most URLs a progress line shows one mark each for;
// with more, it counts them.
const markedURLs = 12

// Progress renders one line per round of a watch, with running totals:
//
//	+1.2s  round 13  ✓✓✗  failed 1/39 (2.6%)  p95 14ms  http://b/health: status 503 ...
//	+1.2s  round 13  100 URLs: 99 ✓ 1 ✗  failed 1/1300 (0.1%)  p95 14ms  http://b/health: ...
//
// Its memory and work per round do not grow with the watch.
type Progress struct {
	name           string // "p95", or the percentile the watch judges
	pct            float64
	judged, failed int64
	latencies      latency.Sketch
	// canary, for a canary's watch, holds the canary's URLs: its probes
	// are marked and counted apart from the control's.
	canary                     map[string]bool
	canaryJudged, canaryFailed int64
}

// NewProgress starts the progress of a watch judging latency at
// percentile (e.g. 95).
func NewProgress(percentile float64) *Progress {
	return &Progress{name: "p" + strconv.FormatFloat(percentile, 'f', -1, 64), pct: percentile}
}

// NewCanaryProgress starts the progress of a canary's watch, whose rounds
// probe the canary's URLs and the control's:
//
//	+1.2s  round 13  canary ✗  control ✓✓✓  failed: canary 3/13 (23.1%), control 0/39 (0%)  p95 14ms  canary http://c/health: ...
func NewCanaryProgress(percentile float64, canaryURLs []string) *Progress {
	pr := NewProgress(percentile)
	pr.canary = map[string]bool{}
	for _, u := range canaryURLs {
		pr.canary[u] = true
	}
	return pr
}

// Line describes a round and adds it to the totals.
func (pr *Progress) Line(round health.Round) string {
	if pr.canary != nil {
		return pr.canaryLine(round)
	}
	var marks strings.Builder
	var ok, bad, starting int
	firstErr := ""
	for _, p := range round.Probes {
		switch {
		case p.Phase == health.PhaseStartup:
			starting++
		case p.Failed:
			bad++
		default:
			ok++
		}
		marks.WriteString(mark(p))
		pr.add(p)
		if firstErr == "" && p.Error != "" {
			firstErr = fmt.Sprintf("  %s: %s", p.URL, p.Error)
		}
	}
	shown := marks.String()
	if len(round.Probes) > markedURLs {
		shown = fmt.Sprintf("%d URLs: %d ✓", len(round.Probes), ok)
		if bad > 0 {
			shown += fmt.Sprintf(" %d ✗", bad)
		}
		if starting > 0 {
			shown += fmt.Sprintf(" %d starting", starting)
		}
	}
	line := fmt.Sprintf("  %7s  round %-3d %s", "+"+FormatDuration(round.Elapsed), round.N, shown)
	if pr.judged > 0 {
		line += fmt.Sprintf("  failed %d/%d (%s)  %s %s", pr.failed, pr.judged, pct.Of(float64(pr.failed)/float64(pr.judged), 1),
			pr.name, FormatDuration(pr.latencies.Quantile(pr.pct/100)))
	} else {
		line += "  not live yet"
	}
	return line + firstErr
}

// add counts a live probe in the totals: the canary's when it probed the
// canary, else the watch's (or the control's).
func (pr *Progress) add(p health.Probe) {
	if p.Phase != health.PhaseLive {
		return
	}
	judged, failed := &pr.judged, &pr.failed
	if pr.canary[p.URL] {
		judged, failed = &pr.canaryJudged, &pr.canaryFailed
	}
	*judged++
	if p.Failed {
		*failed++
	}
	if p.Answered {
		pr.latencies.Add(p.Latency)
	}
}

// mark is a probe's mark in a progress line.
func mark(p health.Probe) string {
	switch {
	case p.Phase == health.PhaseStartup:
		return "·"
	case p.Failed:
		return "✗"
	}
	return "✓"
}

// canaryLine is Line for a canary's watch: the canary's marks and counts,
// then the control's.
func (pr *Progress) canaryLine(round health.Round) string {
	var canary, control []health.Probe
	for _, p := range round.Probes {
		if pr.canary[p.URL] {
			canary = append(canary, p)
		} else {
			control = append(control, p)
		}
	}
	marks := func(ps []health.Probe) string {
		if len(ps) == 0 {
			return "–" // none made on time this round
		}
		if len(ps) > markedURLs {
			bad := 0
			for _, p := range ps {
				if p.Failed && p.Phase == health.PhaseLive {
					bad++
				}
			}
			return fmt.Sprintf("%d URLs, %d ✗", len(ps), bad)
		}
		var b strings.Builder
		for _, p := range ps {
			b.WriteString(mark(p))
		}
		return b.String()
	}
	firstErr := ""
	for _, p := range round.Probes {
		pr.add(p)
		if firstErr == "" && p.Error != "" {
			which := "control"
			if pr.canary[p.URL] {
				which = "canary"
			}
			firstErr = fmt.Sprintf("  %s %s: %s", which, p.URL, p.Error)
		}
	}
	line := fmt.Sprintf("  %7s  round %-3d canary %s  control %s", "+"+FormatDuration(round.Elapsed), round.N, marks(canary), marks(control))
	share := func(bad, n int64) string {
		if n == 0 {
			return "not live yet"
		}
		return fmt.Sprintf("%d/%d (%s)", bad, n, pct.Of(float64(bad)/float64(n), 1))
	}
	line += fmt.Sprintf("  failed: canary %s, control %s", share(pr.canaryFailed, pr.canaryJudged), share(pr.failed, pr.judged))
	if pr.canaryJudged+pr.judged > 0 {
		line += fmt.Sprintf("  %s %s", pr.name, FormatDuration(pr.latencies.Quantile(pr.pct/100)))
	}
	return line + firstErr
}
