package report

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/immune-cd/immune/internal/health"
	"github.com/immune-cd/immune/internal/run"
)

// fleetProbes makes rounds of probes of urls, one round per second; every
// 50th probe fails.
func fleetProbes(urls, rounds int) []health.Probe {
	var ps []health.Probe
	for r := range rounds {
		for u := range urls {
			i := r*urls + u
			p := health.Probe{Time: t0.Add(time.Duration(r) * time.Second), Round: r + 1, URL: fmt.Sprintf("https://app-%d.example.com/healthz", u),
				Status: 200, Answered: true, Phase: health.PhaseLive, Latency: time.Duration(10+i%40) * time.Millisecond}
			if i%50 == 49 {
				p.Status, p.Failed, p.Error = 503, true, "status 503 is not an expected status"
			}
			ps = append(ps, p)
		}
	}
	return ps
}

func TestProbeLogKeepsEveryProbeUpToItsCap(t *testing.T) {
	ps := fleetProbes(10, 100) // 1,000 probes
	l := NewProbeLog(t0, 1000, 99)
	for _, p := range ps {
		l.Add(p)
	}
	if len(l.Probes()) != 1000 || l.Aggregates() != nil {
		t.Fatalf("kept %d probes, aggregates %v; want all 1000, none", len(l.Probes()), l.Aggregates())
	}
	want := StatsOf(ps)
	var lat []time.Duration
	for _, p := range ps {
		if p.Answered {
			lat = append(lat, p.Latency)
		}
	}
	want.Percentile, want.AtPercentile = 99, Quantile(lat, 0.99)
	if s := l.Stats(); s != want || s.Probes != 1000 || s.Failed != 20 {
		t.Errorf("stats %+v, want %+v", s, want)
	}
}

func TestProbeLogAggregatesPastItsCap(t *testing.T) {
	ps := fleetProbes(100, 180) // 18,000 probes over 3 minutes
	l := NewProbeLog(t0, 10_000, 99)
	for _, p := range ps {
		l.Add(p)
	}
	a := l.Aggregates()
	if a == nil || a.Probes != 18000 || a.Kept != 360 || len(l.Probes()) != 360 || len(a.URLs) != 100 || len(a.Minutes) != 3 {
		t.Fatalf("aggregates %+v with %d probes kept; want 18000 probes, the 360 failed kept, 100 URLs, 3 minutes", a, len(l.Probes()))
	}
	for _, p := range l.Probes() {
		if !p.Failed || p.Error == "" {
			t.Fatalf("kept a probe that did not fail: %+v", p)
		}
	}
	probes, failed := 0, 0
	for _, u := range a.URLs {
		probes += u.Probes
		failed += u.Failed
	}
	if probes != 18000 || failed != 360 || a.Minutes[1].Probes != 6000 || a.Minutes[1].Failed != 120 || a.Minutes[2].Slowest != 49*time.Millisecond {
		t.Errorf("aggregates add up to %d probes, %d failed; minute 2: %+v, minute 3: %+v", probes, failed, a.Minutes[1], a.Minutes[2])
	}
	// p95 is 47ms, within 1%.
	if s := l.Stats(); s.Probes != 18000 || s.Failed != 360 || s.P95 < 46530*time.Microsecond || s.P95 > 47470*time.Microsecond {
		t.Errorf("stats %+v", s)
	}

	// The report says it aggregated, and keeps the failed probes in full.
	w := &Watch{SHA: newSHA, Start: t0, End: t0.Add(3 * time.Minute), Verdict: run.Healthy}
	l.Fill(w)
	data, err := JSON(&Run{Mode: "watch", Environment: "production", SHA: newSHA, Verdict: run.Healthy, Watch: w})
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Watch struct {
			Total      int  `json:"probes_total"`
			Aggregated bool `json:"aggregated"`
			Aggregates struct {
				Kept    string            `json:"probes_kept"`
				URLs    []json.RawMessage `json:"per_url"`
				Minutes []json.RawMessage `json:"per_minute"`
			} `json:"aggregates"`
			Probes []json.RawMessage `json:"probes"`
		} `json:"watch"`
	}
	if err := json.Unmarshal(data, &doc); err != nil {
		t.Fatal(err)
	}
	dw := doc.Watch
	if !dw.Aggregated || dw.Total != 18000 || len(dw.Probes) != 360 || len(dw.Aggregates.URLs) != 100 || len(dw.Aggregates.Minutes) != 3 ||
		!strings.Contains(dw.Aggregates.Kept, "the 360 failed probes of 18000") {
		t.Errorf("report watch: aggregated %v, %d probes in all, %d kept, %d URLs, %d minutes, kept %q",
			dw.Aggregated, dw.Total, len(dw.Probes), len(dw.Aggregates.URLs), len(dw.Aggregates.Minutes), dw.Aggregates.Kept)
	}
	// The chart has one column per minute.
	if sum := Summary(&Run{Mode: "watch", Environment: "production", SHA: newSHA, Verdict: run.Healthy, Watch: w}); !strings.Contains(sum, `x-axis ["deploy", "+1m", "+2m"]`) ||
		!strings.Contains(sum, "every minute") {
		t.Errorf("chart:\n%s", sum)
	}
}

func TestProgressLine(t *testing.T) {
	few := NewProgress(95)
	round := health.Round{N: 3, Elapsed: 2 * time.Second, Probes: fleetProbes(3, 1)}
	round.Probes[1].Failed, round.Probes[1].Error = true, "status 503 is not an expected status"
	if got, want := few.Line(round), "    +2.0s  round 3   ✓✗✓  failed 1/3 (33.3%)  p95 12ms  https://app-1.example.com/healthz: status 503 is not an expected status"; got != want {
		t.Errorf("3 URLs:\n got %q\nwant %q", got, want)
	}
	many := NewProgress(99)
	round = health.Round{N: 12, Elapsed: 1100 * time.Millisecond, Probes: fleetProbes(100, 1)}
	round.Probes[7].Phase = health.PhaseStartup
	if got, want := many.Line(round), "    +1.1s  round 12  100 URLs: 97 ✓ 2 ✗ 1 starting  failed 2/99 (2%)  p99 49ms  https://app-49.example.com/healthz: status 503 is not an expected status"; got != want {
		t.Errorf("100 URLs:\n got %q\nwant %q", got, want)
	}
}

// A canary's round says which mark is the canary and which the control,
// and counts each apart.
func TestCanaryProgressLine(t *testing.T) {
	pr := NewCanaryProgress(95, []string{"https://app-3.example.com/healthz"})
	round := health.Round{N: 2, Elapsed: 100 * time.Millisecond, Probes: fleetProbes(4, 1)}
	round.Probes[3].Failed, round.Probes[3].Error = true, "status 500 is not an expected status"
	pr.Line(health.Round{N: 1, Probes: fleetProbes(4, 1)})
	want := "   +100ms  round 2   canary ✗  control ✓✓✓  failed: canary 1/2 (50%), control 0/6 (0%)  p95 13ms  canary https://app-3.example.com/healthz: status 500 is not an expected status"
	if got := pr.Line(round); got != want {
		t.Errorf("canary round:\n got %q\nwant %q", got, want)
	}
	start := NewCanaryProgress(95, []string{"https://app-3.example.com/healthz"})
	round = health.Round{N: 1, Probes: fleetProbes(4, 1)}
	round.Probes[3].Phase = health.PhaseStartup
	if got := start.Line(round); !strings.Contains(got, "canary ·  control ✓✓✓  failed: canary not live yet, control 0/3 (0%)") {
		t.Errorf("a canary starting: %q", got)
	}
}
