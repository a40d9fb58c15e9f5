package verdict

import (
	"bytes"
	"flag"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// The quality table compares the engine with the rules other deploy tools
// use, on the same simulated watches. By default (as in CI) it runs a few
// hundred watches per row and checks loose versions of the targets; the
// full run is
//
//	go test ./internal/verdict -run TestQualityTable -v -quality.watches=10000
//
// which also compares with testdata/quality.txt; add -quality.update to
// rewrite that file.
var (
	qualityWatches = flag.Int("quality.watches", 500, "simulated watches per row of the quality table")
	qualityUpdate  = flag.Bool("quality.update", false, "rewrite testdata/quality.txt with the table")
)

const (
	qualitySeed     = 20240601
	qualityProbes   = 300
	baselineProbes  = 60
	fullRunWatches  = 10000
	qualityLatency  = 300 * time.Millisecond // MaxLatency of the latency rows
	latencySigma    = 0.5                    // log-space spread of the simulated latencies
	healthyP95      = qualityLatency / 3
	regressedP95    = 3 * qualityLatency
	qualityGolden   = "quality.txt"
	qualityMaxError = 0.05
)

// A scenario is one row: how probes of the new build behave.
type scenario struct {
	name       string
	regression bool    // detections are wanted (else they are false alarms)
	failRate   float64 // chance a probe fails
	flapping   bool    // fail every other probe instead
	p95        time.Duration
	latency    bool    // the engine has MaxLatency; the reference tools count slow probes as failed
	baseline   float64 // production's failure rate; 0 = no baseline mode
}

var scenarios = []scenario{
	{name: "healthy, 0% failing", failRate: 0, p95: healthyP95},
	{name: "healthy, 1% failing", failRate: 0.01, p95: healthyP95},
	{name: "healthy, 3% failing", failRate: 0.03, p95: healthyP95},
	{name: "at the limit, 5% failing", failRate: 0.05, p95: healthyP95},
	{name: "regressed, 100% failing", regression: true, failRate: 1, p95: healthyP95},
	{name: "regressed, 50% failing", regression: true, failRate: 0.5, p95: healthyP95},
	{name: "regressed, 20% failing", regression: true, failRate: 0.2, p95: healthyP95},
	{name: "regressed, 10% failing", regression: true, failRate: 0.1, p95: healthyP95},
	{name: "flapping, every other fails", regression: true, flapping: true, p95: healthyP95},
	{name: "latency ok, p95 = max/3", latency: true, p95: healthyP95},
	{name: "latency regressed, p95 = 3×max", regression: true, latency: true, p95: regressedP95},
	{name: "baseline 2% → new 2%", failRate: 0.02, baseline: 0.02, p95: healthyP95},
	{name: "baseline 2% → new 7% (at limit)", failRate: 0.07, baseline: 0.02, p95: healthyP95},
	{name: "baseline 2% → new 10%", regression: true, failRate: 0.10, baseline: 0.02, p95: healthyP95},
}

// A policy decides a watch probe by probe: it returns true at the probe
// that rolls back.
type policy interface {
	observe(o Observation) bool
}

// argoRollouts is an Argo Rollouts web metric measured once per probe: a
// failed measurement is counted and the analysis fails when failed >
// failureLimit. (Argo counts transport errors separately against
// consecutiveErrorLimit; here every failed probe is a failed measurement.)
type argoRollouts struct{ failureLimit, failed int }

func (a *argoRollouts) observe(o Observation) bool {
	if o.Failed {
		a.failed++
	}
	return a.failed > a.failureLimit
}

// flagger rolls back when its failed-checks counter reaches the analysis
// threshold.
type flagger struct{ threshold, failed int }

func (f *flagger) observe(o Observation) bool {
	if o.Failed {
		f.failed++
	}
	return f.failed >= f.threshold
}

// inARow rolls back after n failures in a row, like the retry loop of URL
// health-check actions.
type inARow struct{ n, run int }

func (r *inARow) observe(o Observation) bool {
	if o.Failed {
		r.run++
	} else {
		r.run = 0
	}
	return r.run >= r.n
}

// engine runs our Engine as a policy, Finish included.
type engine struct{ e *Engine }

func (e engine) observe(o Observation) bool { return e.e.Observe(o).Outcome == Regressed }

var policyNames = []string{"immune", "argo limit=0", "argo limit=3", "flagger thr=5", "3 in a row"}

// slowAsFailed wraps a reference policy for the latency rows: tools that
// check latency count a slow measurement as failed.
type slowAsFailed struct {
	policy
	limit time.Duration
}

func (s slowAsFailed) observe(o Observation) bool {
	o.Failed = o.Failed || o.Latency > s.limit
	return s.policy.observe(o)
}

func qualityLimits(sc scenario) Limits {
	l := DefaultLimits()
	l.MaxErrorRate = qualityMaxError
	l.Horizon = qualityProbes
	if sc.latency {
		l.MaxLatency = qualityLatency
	}
	return l
}

// probeSource simulates probes: independent failures (or strict
// alternation) and lognormal latencies with the given p95.
type probeSource struct {
	rng      *rand.Rand
	failRate float64
	flapping bool
	median   float64 // seconds
	i        int
}

func newProbeSource(rng *rand.Rand, failRate float64, flapping bool, p95 time.Duration) *probeSource {
	const z95 = 1.6448536269514722
	return &probeSource{rng: rng, failRate: failRate, flapping: flapping, median: p95.Seconds() / math.Exp(z95*latencySigma)}
}

func (p *probeSource) next() Observation {
	p.i++
	failed := p.rng.Float64() < p.failRate
	if p.flapping {
		failed = p.i%2 == 0
	}
	latency := time.Duration(p.median * math.Exp(latencySigma*p.rng.NormFloat64()) * float64(time.Second))
	return Observation{Target: "https://app.example.com/healthz", Failed: failed, Latency: max(latency, time.Microsecond)}
}

// rowResult is what one policy did over the watches of one row.
type rowResult struct {
	rolledBack int
	at         []int // probe numbers of the rollbacks
}

func (r rowResult) share(watches int) float64 { return float64(r.rolledBack) / float64(watches) }

// nearestRank is the q-quantile of the rollback probes, 0 without any.
func (r rowResult) nearestRank(q float64) int {
	if len(r.at) == 0 {
		return 0
	}
	s := slices.Clone(r.at)
	slices.Sort(s)
	return s[max(int(math.Ceil(q*float64(len(s))))-1, 0)]
}

func simulateRow(row int, sc scenario, watches int) []rowResult {
	rng := rand.New(rand.NewPCG(qualitySeed, uint64(row)))
	results := make([]rowResult, len(policyNames))
	l := qualityLimits(sc)
	// Planning the tests costs about as much as a watch; plans depend only on
	// the limits, so the row's engines share them.
	plans := map[planKey]*plan{}
	for range watches {
		e := New(l)
		if sc.baseline > 0 {
			base := newProbeSource(rng, sc.baseline, false, sc.p95)
			obs := make([]Observation, baselineProbes)
			for i := range obs {
				obs[i] = base.next()
			}
			// As the action does: a failing production is no yardstick.
			if b := NewBaseline(obs); !must(b.Unhealthy(l)) {
				e = NewWithBaseline(l, b)
			}
		}
		e.plans = plans
		policies := []policy{engine{e}, &argoRollouts{failureLimit: 0}, &argoRollouts{failureLimit: 3}, &flagger{threshold: 5}, &inARow{n: 3}}
		if sc.latency {
			for i := 1; i < len(policies); i++ {
				policies[i] = slowAsFailed{policies[i], qualityLatency}
			}
		}
		done := make([]bool, len(policies))
		src := newProbeSource(rng, sc.failRate, sc.flapping, sc.p95)
		for n := 1; n <= qualityProbes; n++ {
			o := src.next()
			for i, p := range policies {
				if !done[i] && p.observe(o) {
					done[i] = true
					results[i].rolledBack++
					results[i].at = append(results[i].at, n)
				}
			}
		}
		if !done[0] && e.Finish().Outcome == Regressed {
			results[0].rolledBack++
			results[0].at = append(results[0].at, qualityProbes)
		}
	}
	return results
}

func must(unhealthy bool, _ string) bool { return unhealthy }

func simulateAll(watches int) [][]rowResult {
	all := make([][]rowResult, len(scenarios))
	var wg sync.WaitGroup
	for i, sc := range scenarios {
		wg.Go(func() { all[i] = simulateRow(i, sc, watches) })
	}
	wg.Wait()
	return all
}

func formatTable(all [][]rowResult, watches int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Quality of verdicts: %d simulated watches per row, %d probes each, one target, seed %d.\n", watches, qualityProbes, qualitySeed)
	fmt.Fprintf(&b, "Limits: max-error-rate 5%%, consecutive-failures 3, confidence 99%%, horizon %d probes.\n", qualityProbes)
	fmt.Fprintf(&b, "Latency rows: max-latency %v at p95; latencies are lognormal (sigma %.1f in log space, so p95 = %.1f x median).\n", qualityLatency, latencySigma, math.Exp(1.6448536269514722*latencySigma))
	fmt.Fprintf(&b, "Baseline rows: %d production probes first, then relative judgment (failure rate + 5 points, p95 x 1.5).\n", baselineProbes)
	b.WriteString("Cells: share of watches rolled back (a false alarm on ok rows, a detection on regressed rows),\n")
	b.WriteString("then median/p95 of the probe that rolled back. References count a slow probe as failed on latency rows.\n\n")
	fmt.Fprintf(&b, "%-33s", "scenario")
	for _, name := range policyNames {
		fmt.Fprintf(&b, " %-19s", name)
	}
	b.WriteString("\n")
	for i, sc := range scenarios {
		fmt.Fprintf(&b, "%-33s", sc.name)
		for _, r := range all[i] {
			cell := fmt.Sprintf("%.2f%%", 100*r.share(watches))
			if r.rolledBack > 0 {
				cell += fmt.Sprintf(" %d/%d", r.nearestRank(0.5), r.nearestRank(0.95))
			}
			fmt.Fprintf(&b, " %-19s", cell)
		}
		b.WriteString("\n")
	}
	lines := strings.Split(strings.TrimSpace(b.String()), "\n")
	for i, line := range lines {
		lines[i] = strings.TrimRight(line, " ")
	}
	return strings.Join(lines, "\n") + "\n"
}

func TestQualityTable(t *testing.T) {
	watches := *qualityWatches
	start := time.Now()
	all := simulateAll(watches)
	table := formatTable(all, watches)
	t.Logf("\n%s(%v)", table, time.Since(start).Round(time.Millisecond))

	row := func(name string) (immune, inARow rowResult) {
		i := slices.IndexFunc(scenarios, func(s scenario) bool { return s.name == name })
		return all[i][0], all[i][4]
	}
	full := watches >= fullRunWatches
	check := func(what string, ok bool, got string) {
		t.Helper()
		if !ok {
			t.Errorf("%s: got %s", what, got)
		}
	}
	pct := func(r rowResult) string { return fmt.Sprintf("%.2f%%", 100*r.share(watches)) }

	// The targets, in their full-run form; short runs check loose versions.
	loose := func(fullBound, shortBound float64) float64 {
		if full {
			return fullBound
		}
		return shortBound
	}
	e1, c1 := row("healthy, 1% failing")
	check("false alarms at 1% noise", e1.share(watches) <= loose(0.001, 0.01), pct(e1))
	check("no more false alarms at 1% than 3 in a row", e1.rolledBack <= c1.rolledBack+int(loose(0, 2)), pct(e1)+" vs "+pct(c1))
	e3, _ := row("healthy, 3% failing")
	check("false alarms at 3% noise", e3.share(watches) <= loose(0.015, 0.03), pct(e3))
	e100, _ := row("regressed, 100% failing")
	check("100% failing caught at probe 3", e100.rolledBack == watches && e100.nearestRank(0) == 3 && e100.nearestRank(1) == 3, pct(e100))
	e50, _ := row("regressed, 50% failing")
	check("50% failing: median", e50.nearestRank(0.5) <= int(loose(8, 10)), fmt.Sprint(e50.nearestRank(0.5)))
	e20, c20 := row("regressed, 20% failing")
	check("20% failing: detected", e20.share(watches) >= loose(0.999, 0.99), pct(e20))
	check("20% failing: median", e20.nearestRank(0.5) <= int(loose(30, 35)), fmt.Sprint(e20.nearestRank(0.5)))
	check("20% failing: p95", e20.nearestRank(0.95) <= int(loose(90, 110)), fmt.Sprint(e20.nearestRank(0.95)))
	check("20% failing: 3x sooner than 3 in a row", 3*e20.nearestRank(0.5) <= c20.nearestRank(0.5), fmt.Sprint(e20.nearestRank(0.5), " vs ", c20.nearestRank(0.5)))
	e10, _ := row("regressed, 10% failing")
	check("10% failing: detected", e10.share(watches) >= loose(0.85, 0.75), pct(e10))
	lat, _ := row("latency regressed, p95 = 3×max")
	check("latency regression: median", lat.nearestRank(0.5) <= 20, fmt.Sprint(lat.nearestRank(0.5)))
	latOK, _ := row("latency ok, p95 = max/3")
	check("latency ok: false alarms", latOK.share(watches) <= loose(0.001, 0.01), pct(latOK))
	flap, _ := row("flapping, every other fails")
	check("flapping caught", flap.rolledBack == watches, pct(flap))
	b2, _ := row("baseline 2% → new 2%")
	check("baseline 2% → 2%: false alarms", b2.share(watches) <= loose(0.01, 0.02), pct(b2))

	path := filepath.Join("testdata", qualityGolden)
	if *qualityUpdate {
		if err := os.WriteFile(path, []byte(table), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	if golden, err := os.ReadFile(path); err == nil && bytes.Contains(golden, []byte(fmt.Sprintf(": %d simulated", watches))) && string(golden) != table {
		t.Errorf("the table differs from %s; if the change is intended, rerun with -quality.update and review the diff", path)
	}
}
