package verdict

import (
	"fmt"
	"github.com/immune-cd/immune/internal/pct"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	sim "github.com/immune-cd/immune/internal/testkit/traffic"
)

// The canary table (testdata/canary.txt): a canary judged against the
// stable fleet at the same time, on traffic split between them, beside the
// way Kayenta (Spinnaker's canary judge) and an Argo Rollouts experiment
// judge the same traces; and the shared-incident trace, where both tracks
// degrade together, beside immune's own baseline mode (a before/after
// comparison), which that trace fools.

const (
	canarySeed       = 20240612
	canaryLook       = 15 * time.Second // one look per scrape
	canaryWatch      = time.Hour
	canaryControl    = 0.01   // the stable fleet's failure rate
	canaryMargin     = 0.0025 // max-error-rate: the allowed increase, in points
	kayentaEvery     = 10     // minutes between Kayenta's judgments
	kayentaConf      = 0.98
	kayentaTolerance = 0.25
	argoThreshold    = 1 - canaryControl - canaryMargin // success rate per minute
	incidentFrom     = 10                               // minutes
	incidentTo       = 25
	incidentRate     = 0.10 // both tracks' failure rate during the incident
	baselineMinutes  = 10   // baseline mode: production probed before the deploy
	baselineMargin   = 0.02 // baseline mode's max-error-rate (see the table's header)
)

var (
	canaryTraffic = []int{100, 1000}
	canaryShares  = []float64{0.05, 0.10, 0.50}
	canaryBuilds  = []struct {
		name string
		rate float64
	}{
		{"identical (1%)", 0.01},
		{"at limit (1.25%)", 0.0125},
		{"2× (2%)", 0.02},
		{"5× (5%)", 0.05},
	}
	canaryPolicies   = []string{"immune", "kayenta 98%", "argo limit=0", "argo limit=3"}
	incidentPolicies = []string{"immune", "kayenta 98%", "argo limit=0", "argo limit=3", "immune baseline"}
)

func canaryWatches() int {
	if *tablesFull {
		return 10000
	}
	return 200
}

// canaryTrace is one watch's traffic, look by look: requests and failures
// of each track.
type canaryTrace struct {
	nc, xc, ns, xs []int
}

// traceOf draws a watch: each look's requests go to the canary with
// probability share, and fail at the build's rate (canary) or the
// control's; during an incident, both tracks fail at incidentRate.
func traceOf(rng *rand.Rand, rpm int, share, build float64, incident bool) canaryTrace {
	looks := int(canaryWatch / canaryLook)
	perLook := rpm * int(canaryLook/time.Second) / 60
	tr := canaryTrace{make([]int, looks), make([]int, looks), make([]int, looks), make([]int, looks)}
	for i := range looks {
		pc, ps := build, canaryControl
		if m := minuteOf(i); incident && m >= incidentFrom && m < incidentTo {
			pc, ps = incidentRate, incidentRate
		}
		nc := sim.Binomial(rng, perLook, share)
		tr.nc[i], tr.ns[i] = nc, perLook-nc
		tr.xc[i], tr.xs[i] = sim.Binomial(rng, nc, pc), sim.Binomial(rng, perLook-nc, ps)
	}
	return tr
}

func minuteOf(look int) int { return look * int(canaryLook/time.Second) / 60 }

// immuneCanary is the minute at which immune's canary judgment regresses
// the trace, or -1.
func immuneCanary(tr canaryTrace) float64 {
	l := DefaultLimits()
	l.MaxErrorRate, l.Dispersion = canaryMargin, true // as a rate metric is judged
	c := NewCanary(l, CanaryOptions{})
	for i := range tr.nc {
		d := c.Look([]Observation{Count("canary", int64(tr.nc[i]), int64(tr.xc[i]), nil)},
			[]Observation{Count("stable", int64(tr.ns[i]), int64(tr.xs[i]), nil)})
		if d.Outcome == Regressed {
			return float64(i+1) * canaryLook.Minutes()
		}
	}
	return -1
}

// immuneBaseline is immune's baseline mode on the same traffic without a
// canary: production (at the control's rate) is looked at for
// baselineMinutes before the deploy, then the new build takes all the
// traffic and is judged against it. It returns the minute of the rollback,
// or -1.
func immuneBaseline(rng *rand.Rand, rpm int, tr canaryTrace) float64 {
	l := DefaultLimits()
	l.MaxErrorRate, l.Dispersion = baselineMargin, true
	perLook := rpm * int(canaryLook/time.Second) / 60
	b := NewBaseline(l)
	for range baselineMinutes * 60 / int(canaryLook/time.Second) {
		b.Observe(Count("shop", int64(perLook), int64(sim.Binomial(rng, perLook, canaryControl)), nil))
	}
	e := New(l)
	if bad, _ := b.Unhealthy(); !bad {
		e = NewWithBaseline(l, b)
	}
	for i := range tr.nc {
		// The new build serves both tracks' traffic: the trace's failures
		// of the canary and of the control, which follow the same rates on
		// the incident trace.
		d := e.Observe(Count("shop", int64(tr.nc[i]+tr.ns[i]), int64(tr.xc[i]+tr.xs[i]), nil))
		if d.Outcome == Regressed {
			return float64(i+1) * canaryLook.Minutes()
		}
	}
	return -1
}

// argoExperiment is an Argo Rollouts experiment whose analysis measures the
// canary's success rate each minute against argoThreshold (a minute
// without canary traffic passes: the usual isNaN guard); it fails when the
// failed measurements exceed failureLimit. It returns the minute of the
// failure, or -1.
func argoExperiment(tr canaryTrace, failureLimit int) float64 {
	failed := 0
	per := int(time.Minute / canaryLook)
	for start := 0; start+per <= len(tr.nc); start += per {
		n, x := 0, 0
		for i := start; i < start+per; i++ {
			n, x = n+tr.nc[i], x+tr.xc[i]
		}
		if n > 0 && float64(n-x)/float64(n) < argoThreshold {
			failed++
		}
		if failed > failureLimit {
			return float64(start/per + 1)
		}
	}
	return -1
}

// kayenta is Spinnaker's canary analysis with its NetflixACAJudge: every
// kayentaEvery minutes it judges the per-minute failure rates of the canary
// against the control's since the start (minutes without requests are
// removed), and the analysis fails at the first judgment that classifies
// the metric High. The classifier is Kayenta's Mann-Whitney one: the
// confidence interval at kayentaConf of the shift between the canary's and
// the control's values (the order statistics of their pairwise
// differences, with the normal approximation and the tie-corrected
// variance), High when its lower end is above kayentaTolerance times the
// Hodges-Lehmann estimate and the ratio of the means is at least 1; equal
// samples, or a single value in all, pass. It returns the minute of the
// failure, or -1.
func kayenta(tr canaryTrace, diffs []float64) float64 {
	per := int(time.Minute / canaryLook)
	var canary, control []float64
	for start := 0; start+per <= len(tr.nc); start += per {
		nc, xc, ns, xs := 0, 0, 0, 0
		for i := start; i < start+per; i++ {
			nc, xc, ns, xs = nc+tr.nc[i], xc+tr.xc[i], ns+tr.ns[i], xs+tr.xs[i]
		}
		if nc > 0 {
			canary = append(canary, float64(xc)/float64(nc))
		}
		if ns > 0 {
			control = append(control, float64(xs)/float64(ns))
		}
		minute := start/per + 1
		if minute%kayentaEvery == 0 && mannWhitneyHigh(canary, control, diffs) {
			return float64(minute)
		}
	}
	return -1
}

// mannWhitneyHigh is Kayenta's MannWhitneyClassifier on one metric,
// direction "increase".
func mannWhitneyHigh(exp, ctl []float64, diffs []float64) bool {
	m, n := len(exp), len(ctl)
	if m == 0 || n == 0 {
		return false // no data
	}
	se, sc := slices.Clone(exp), slices.Clone(ctl)
	slices.Sort(se)
	slices.Sort(sc)
	if slices.Equal(se, sc) {
		return false
	}
	if se[0] == se[m-1] && sc[0] == sc[n-1] && se[0] == sc[0] {
		return false
	}
	diffs = diffs[:0]
	for _, e := range exp {
		for _, c := range ctl {
			diffs = append(diffs, e-c)
		}
	}
	slices.Sort(diffs)
	mn := len(diffs)
	estimate := diffs[mn/2]
	if mn%2 == 0 {
		estimate = (diffs[mn/2-1] + diffs[mn/2]) / 2
	}
	// Tie-corrected variance of U over the pooled sample.
	pooled := append(se, sc...)
	slices.Sort(pooled)
	ties := 0.0
	for i := 0; i < len(pooled); {
		j := i
		for j < len(pooled) && pooled[j] == pooled[i] {
			j++
		}
		t := float64(j - i)
		ties += t*t*t - t
		i = j
	}
	N := float64(m + n)
	variance := float64(m) * float64(n) / 12 * ((N + 1) - ties/(N*(N-1)))
	z := kayentaZ
	k := int(math.Round(float64(mn)/2 - z*math.Sqrt(max(variance, 0))))
	if k < 1 {
		return false // the interval is unbounded below
	}
	lower := diffs[k-1]
	meanE, meanC := mean(exp), mean(ctl)
	deviation := 1.0
	if meanC != 0 {
		deviation = math.NaN()
		if meanE != 0 {
			deviation = meanE / meanC
		}
	}
	return lower > kayentaTolerance*math.Abs(estimate) && deviation >= 1
}

func mean(xs []float64) float64 {
	s := 0.0
	for _, x := range xs {
		s += x
	}
	return s / float64(len(xs))
}

// kayentaZ is the normal quantile of Kayenta's two-sided interval.
var kayentaZ = normalQuantile(1 - (1-kayentaConf)/2)

// normalQuantile is the standard normal's p-quantile, by bisection on the
// error function.
func normalQuantile(p float64) float64 {
	lo, hi := -10.0, 10.0
	for range 200 {
		mid := (lo + hi) / 2
		if 0.5*math.Erfc(-mid/math.Sqrt2) < p {
			lo = mid
		} else {
			hi = mid
		}
	}
	return (lo + hi) / 2
}

type canaryRow struct {
	rpm      int
	share    float64
	build    int // index in canaryBuilds; -1 for the incident
	cells    []countsCell
	watches  int
	incident bool
}

func (r canaryRow) label() string {
	build := "shared incident"
	if !r.incident {
		build = canaryBuilds[r.build].name
	}
	return fmt.Sprintf("%-12s %-8s %-16s", fmt.Sprintf("%d/min", r.rpm), strings.TrimSuffix(fmt.Sprintf("%.0f%%", 100*r.share), ".0"), build)
}

func simulateCanaryRow(seed uint64, r *canaryRow) {
	rng := rand.New(rand.NewPCG(canarySeed, seed))
	n := len(canaryPolicies)
	if r.incident {
		n = len(incidentPolicies)
	}
	r.cells = make([]countsCell, n)
	rate := canaryControl
	if !r.incident {
		rate = canaryBuilds[r.build].rate
	}
	diffs := make([]float64, 0, 64*64)
	for range r.watches {
		tr := traceOf(rng, r.rpm, r.share, rate, r.incident)
		minutes := []float64{immuneCanary(tr), kayenta(tr, diffs), argoExperiment(tr, 0), argoExperiment(tr, 3)}
		if r.incident {
			minutes = append(minutes, immuneBaseline(rng, r.rpm, tr))
		}
		for j, m := range minutes {
			if m >= 0 {
				r.cells[j].rolledBack++
				r.cells[j].minutes = append(r.cells[j].minutes, m)
			}
		}
	}
}

func TestCanaryTable(t *testing.T) {
	watches := canaryWatches()
	start := time.Now()
	var rows []*canaryRow
	for _, rpm := range canaryTraffic {
		for _, share := range canaryShares {
			for b := range canaryBuilds {
				rows = append(rows, &canaryRow{rpm: rpm, share: share, build: b, watches: watches})
			}
		}
	}
	for _, rpm := range canaryTraffic {
		for _, share := range canaryShares {
			rows = append(rows, &canaryRow{rpm: rpm, share: share, build: -1, incident: true, watches: watches})
		}
	}
	var wg sync.WaitGroup
	sem := make(chan struct{}, 2)
	for i, r := range rows {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			simulateCanaryRow(uint64(i), r)
		})
	}
	wg.Wait()

	cell := func(c countsCell) string {
		s := fmt.Sprintf("%.2f%%", 100*float64(c.rolledBack)/float64(watches))
		if c.rolledBack > 0 {
			s += fmt.Sprintf(" %s/%s", trimFloat(c.quantile(0.5)), trimFloat(c.quantile(0.95)))
		}
		return s
	}
	var b strings.Builder
	fmt.Fprintf(&b, "Canary against control: %d simulated watches per row, seed %d. Traffic is split at random between the\n", watches, canarySeed)
	fmt.Fprintf(&b, "canary (its share) and the stable fleet, whose failure rate is %s; the canary runs the build. Each watch lasts\n", pct.Of(canaryControl, 2))
	fmt.Fprintf(&b, "%v. immune looks at both tracks' request and error counts every %v and judges them as a rate metric:\n", canaryWatch, canaryLook)
	fmt.Fprintf(&b, "its two-sample test (max-error-rate %s points over the control, confidence 99%%, dispersion correction).\n", pct.Points(canaryMargin, 2))
	fmt.Fprintf(&b, "Kayenta judges the per-minute failure rates every %d minutes with its Mann-Whitney classifier (%s confidence,\n", kayentaEvery, pct.Of(kayentaConf, 2))
	fmt.Fprintf(&b, "tolerance %s, over the minutes so far) and fails at the first High. The Argo experiment measures the canary's\n", trimFloat(kayentaTolerance))
	fmt.Fprintf(&b, "success rate each minute against %s (the control's usual rate plus the allowed %s points) and fails when\n", pct.Of(argoThreshold, 2), pct.Points(canaryMargin, 2))
	b.WriteString("failed measurements > failureLimit.\n")
	b.WriteString("Cells: share of watches failed (a false alarm for the identical build and the one at the limit, a detection\n")
	b.WriteString("for 2× and 5×), then median/p95 minutes to the failure.\n\n")
	header := func(policies []string) {
		fmt.Fprintf(&b, "%-12s %-8s %-16s", "traffic", "canary", "build")
		for _, name := range policies {
			fmt.Fprintf(&b, " %-20s", name)
		}
		b.WriteString("\n")
	}
	header(canaryPolicies)
	for _, r := range rows {
		if r.incident {
			continue
		}
		b.WriteString(r.label())
		for _, c := range r.cells {
			fmt.Fprintf(&b, " %-20s", cell(c))
		}
		b.WriteString("\n")
	}
	fmt.Fprintf(&b, "\nShared incident: identical builds, and from minute %d to %d a downstream outage fails %s of both tracks'\n", incidentFrom, incidentTo, pct.Of(incidentRate, 2))
	fmt.Fprintf(&b, "requests. Every failure is a false alarm. \"immune baseline\" is immune's baseline mode on the same traffic\n")
	fmt.Fprintf(&b, "without a canary: production looked at for %d minutes before the deploy, then the new build, serving\n", baselineMinutes)
	fmt.Fprintf(&b, "everyone, judged against it (max-error-rate %s points: baseline mode also checks production itself against\n", pct.Points(baselineMargin, 2))
	b.WriteString("max-error-rate, so it must be above production's 1%).\n\n")
	header(incidentPolicies)
	for _, r := range rows {
		if !r.incident {
			continue
		}
		b.WriteString(r.label())
		for _, c := range r.cells {
			fmt.Fprintf(&b, " %-20s", cell(c))
		}
		b.WriteString("\n")
	}
	table := tidy(b.String())
	t.Logf("\n%s(%v)", table, time.Since(start).Round(time.Millisecond))

	// Loose forms of the claims, checked in every run.
	share := func(c countsCell) float64 { return float64(c.rolledBack) / float64(watches) }
	bound := 0.01
	if !*tablesFull {
		bound = 0.04
	}
	for _, r := range rows {
		immune := r.cells[0]
		switch {
		case r.incident:
			if share(immune) > bound {
				t.Errorf("%s: immune rolled back %.2f%% of watches", r.label(), 100*share(immune))
			}
			// Baseline mode blames the incident on the new build; at 100
			// requests a minute a 10-minute baseline leaves production's own
			// rate uncertain enough to spare it in some watches.
			if base := r.cells[len(r.cells)-1]; share(base) < map[int]float64{100: 0.5, 1000: 0.9}[r.rpm] {
				t.Errorf("%s: baseline mode rolled back only %.2f%% of watches; the trace does not show what it should", r.label(), 100*share(base))
			}
		case canaryBuilds[r.build].rate <= canaryControl+canaryMargin:
			if share(immune) > bound {
				t.Errorf("%s: immune rolled back %.2f%% of builds within the margin", r.label(), 100*share(immune))
			}
		case canaryBuilds[r.build].rate == 0.05 && r.rpm == 1000:
			if share(immune) < 0.99 {
				t.Errorf("%s: immune caught %.2f%% of 5× regressions", r.label(), 100*share(immune))
			}
		}
	}
	goldenTable(t, "canary.txt", table)
}
