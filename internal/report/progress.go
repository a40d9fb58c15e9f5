package report

import (
	"fmt"
	"github.com/immune-cd/immune/internal/pct"
	"strconv"
	"strings"

	"github.com/immune-cd/immune/internal/health"
	"github.com/immune-cd/immune/internal/latency"
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
}

// NewProgress starts the progress of a watch judging latency at
// percentile (e.g. 95).
func NewProgress(percentile float64) *Progress {
	return &Progress{name: "p" + strconv.FormatFloat(percentile, 'f', -1, 64), pct: percentile}
}

// Line describes a round and adds it to the totals.
func (pr *Progress) Line(round health.Round) string {
	var marks strings.Builder
	var ok, bad, starting int
	firstErr := ""
	for _, p := range round.Probes {
		switch {
		case p.Phase == health.PhaseStartup:
			starting++
			marks.WriteString("·")
		case p.Failed:
			bad++
			marks.WriteString("✗")
		default:
			ok++
			marks.WriteString("✓")
		}
		if p.Phase == health.PhaseLive {
			pr.judged++
			if p.Failed {
				pr.failed++
			}
			if p.Answered {
				pr.latencies.Add(p.Latency)
			}
		}
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
