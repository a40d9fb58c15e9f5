package verdict

import (
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// The counts table (testdata/counts.txt): the engine judging counts of
// real traffic, one look per Prometheus scrape, beside the way Argo
// Rollouts and Flagger judge the same traffic: the success rate of each
// 1-minute interval against a threshold.

const (
	countsSeed      = 20240602
	countsAllowed   = 0.01             // max-error-rate
	countsLook      = 15 * time.Second // one look per scrape
	countsWatch     = time.Hour
	lookPerInterval = int(time.Minute / countsLook)
)

var (
	countsTraffic = []int{100, 1000, 10000} // requests per minute
	countsBuilds  = []struct {
		name string
		rate float64
	}{
		{"0.5% (healthy)", 0.005},
		{"1% (at the limit)", 0.01},
		{"2% (2× regression)", 0.02},
		{"5% (5× regression)", 0.05},
	}
	countsPolicies = []string{"immune", "argo limit=0", "argo limit=3", "flagger thr=5"}
)

func countsWatches() int {
	if *tablesFull {
		return 10000
	}
	return 300
}

// binomial draws how many of n requests fail at rate p, exactly: the gaps
// between failures are geometric.
func binomial(rng *rand.Rand, n int, p float64) int {
	if p <= 0 {
		return 0
	}
	logq := math.Log1p(-p)
	x := 0
	for i := 0; ; x++ {
		i += 1 + int(math.Log(1-rng.Float64())/logq)
		if i > n {
			return x
		}
	}
}

// intervalAnalysis is Argo Rollouts' analysis (a success-rate measurement
// per interval, failed when below the threshold; the analysis fails when
// failed > failureLimit) or, with flagger set, Flagger's (rolled back when
// the failed checks reach threshold).
type intervalAnalysis struct {
	limit   int // Argo's failureLimit, or Flagger's threshold
	flagger bool
	n, bad  int // counts of the current interval
	looks   int
	failed  int
}

// observe takes one look's counts and reports whether the analysis fails
// at this look (only at the end of an interval).
func (a *intervalAnalysis) observe(n, bad int) bool {
	a.n, a.bad, a.looks = a.n+n, a.bad+bad, a.looks+1
	if a.looks%lookPerInterval != 0 {
		return false
	}
	if a.n > 0 && float64(a.n-a.bad)/float64(a.n) < 1-countsAllowed {
		a.failed++
	}
	a.n, a.bad = 0, 0
	if a.flagger {
		return a.failed >= a.limit
	}
	return a.failed > a.limit
}

type countsCell struct {
	rolledBack int
	minutes    []float64
}

func (c countsCell) quantile(q float64) float64 {
	s := slices.Clone(c.minutes)
	slices.Sort(s)
	return s[max(int(math.Ceil(q*float64(len(s))))-1, 0)]
}

func simulateCounts(row uint64, rpm int, rate float64, watches int) []countsCell {
	rng := rand.New(rand.NewPCG(countsSeed, row))
	l := DefaultLimits()
	l.MaxErrorRate = countsAllowed
	tests := map[testKey]rateTest{}
	perLook := rpm * int(countsLook/time.Second) / 60
	looks := int(countsWatch / countsLook)
	cells := make([]countsCell, len(countsPolicies))
	for range watches {
		e := build(l, nil, tests)
		refs := []*intervalAnalysis{{limit: 0}, {limit: 3}, {limit: 5, flagger: true}}
		done := make([]bool, len(cells))
		for i := 1; i <= looks; i++ {
			bad := binomial(rng, perLook, rate)
			minutes := float64(i) * countsLook.Minutes()
			if !done[0] && e.Observe(Count("shop", int64(perLook), int64(bad), nil)).Outcome == Regressed {
				done[0] = true
				cells[0].rolledBack++
				cells[0].minutes = append(cells[0].minutes, minutes)
			}
			for j, a := range refs {
				if !done[j+1] && a.observe(perLook, bad) {
					done[j+1] = true
					cells[j+1].rolledBack++
					cells[j+1].minutes = append(cells[j+1].minutes, minutes)
				}
			}
		}
	}
	return cells
}

func TestCountsTable(t *testing.T) {
	watches := countsWatches()
	start := time.Now()
	type row struct {
		rpm   int
		build int
		cells []countsCell
	}
	var rows []row
	for _, rpm := range countsTraffic {
		for b := range countsBuilds {
			rows = append(rows, row{rpm: rpm, build: b})
		}
	}
	var wg sync.WaitGroup
	sem := make(chan struct{}, 2)
	for i := range rows {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			rows[i].cells = simulateCounts(uint64(i), rows[i].rpm, countsBuilds[rows[i].build].rate, watches)
		})
	}
	wg.Wait()

	var b strings.Builder
	fmt.Fprintf(&b, "Counts of real traffic: %d simulated watches per row, seed %d. max-error-rate %s, confidence 99%%.\n", watches, countsSeed, percent(countsAllowed))
	fmt.Fprintf(&b, "Each watch lasts %v; immune looks at the request and error counts every %v (a Prometheus scrape) and\n", countsWatch, countsLook)
	b.WriteString("judges them with its mixture test. Argo Rollouts and Flagger measure the success rate of each 1-minute\n")
	fmt.Fprintf(&b, "interval against %s: Argo's analysis fails when failed measurements > failureLimit, Flagger rolls back\n", percent(1-countsAllowed))
	b.WriteString("when failed checks reach its threshold. Errors are independent (binomial) at the build's rate.\n")
	b.WriteString("Cells: share of watches rolled back (a false alarm at 0.5% and 1%, a detection at 2% and 5%),\n")
	b.WriteString("then median/p95 minutes to the rollback.\n\n")
	fmt.Fprintf(&b, "%-12s %-20s", "traffic", "build")
	for _, name := range countsPolicies {
		fmt.Fprintf(&b, " %-20s", name)
	}
	b.WriteString("\n")
	for _, r := range rows {
		fmt.Fprintf(&b, "%-12s %-20s", fmt.Sprintf("%d/min", r.rpm), countsBuilds[r.build].name)
		for _, c := range r.cells {
			cell := fmt.Sprintf("%.2f%%", 100*float64(c.rolledBack)/float64(watches))
			if c.rolledBack > 0 {
				cell += fmt.Sprintf(" %s/%s", trimFloat(c.quantile(0.5)), trimFloat(c.quantile(0.95)))
			}
			fmt.Fprintf(&b, " %-20s", cell)
		}
		b.WriteString("\n")
	}
	table := tidy(b.String())
	t.Logf("\n%s(%v)", table, time.Since(start).Round(time.Millisecond))

	cell := func(rpm int, rate float64) countsCell {
		for _, r := range rows {
			if r.rpm == rpm && countsBuilds[r.build].rate == rate {
				return r.cells[0]
			}
		}
		t.Fatalf("no row %d/min at %v", rpm, rate)
		return countsCell{}
	}
	bound := 0.01 // the confidence's promise at the limit
	if !*tablesFull {
		bound = 0.03
	}
	for _, rpm := range countsTraffic {
		if c := cell(rpm, 0.01); float64(c.rolledBack)/float64(watches) > bound {
			t.Errorf("%d/min at the limit: %d false alarms in %d watches", rpm, c.rolledBack, watches)
		}
		if c := cell(rpm, 0.05); c.rolledBack < watches*99/100 {
			t.Errorf("%d/min, 5× regression: caught in %d of %d watches", rpm, c.rolledBack, watches)
		}
	}
	if c := cell(1000, 0.05); c.quantile(0.5) > 2 {
		t.Errorf("1000/min, 5× regression: median %v minutes, want under 2", c.quantile(0.5))
	}
	goldenTable(t, "counts.txt", table)
}
