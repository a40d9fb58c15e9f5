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
)

// The quality tables compare the engine with the rules other deploy tools
// use, on the same simulated watches: one URL (testdata/quality.txt), and
// fleets of 10 and 100 URLs with one bad URL or all of them bad
// (testdata/fleet.txt). See tables_test.go for how to run them in full.

const (
	qualitySeed     = 20240601
	qualityProbes   = 300
	baselineProbes  = 60
	qualityLatency  = 300 * time.Millisecond // MaxLatency of the latency rows
	latencySigma    = 0.5                    // log-space spread of the simulated latencies
	healthyP95      = qualityLatency / 3
	regressedP95    = 3 * qualityLatency
	qualityMaxError = 0.05
	fleetNoise      = 0.01 // failure rate of the healthy URLs beside one bad one
)

// watchesPerRow is how many watches each row simulates, by fleet size.
func watchesPerRow(urls int) int {
	full := map[int]int{1: 10000, 10: 2000, 100: 500}
	short := map[int]int{1: 500, 10: 40, 100: 8}
	if *tablesFull {
		return full[urls]
	}
	return short[urls]
}

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

// healthy is how the other URLs of a fleet with one bad URL behave in
// scenario sc: like production in the baseline rows, else a little noisy.
func (sc scenario) healthy() scenario {
	h := scenario{name: "healthy", failRate: fleetNoise, p95: healthyP95, latency: sc.latency, baseline: sc.baseline}
	if sc.baseline > 0 {
		h.failRate = sc.baseline
	}
	return h
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
	if o.Failed > 0 {
		a.failed++
	}
	return a.failed > a.failureLimit
}

// flagger rolls back when its failed-checks counter reaches the analysis
// threshold.
type flagger struct{ threshold, failed int }

func (f *flagger) observe(o Observation) bool {
	if o.Failed > 0 {
		f.failed++
	}
	return f.failed >= f.threshold
}

// inARow rolls back after n failures in a row, like the retry loop of URL
// health-check actions.
type inARow struct{ n, run int }

func (r *inARow) observe(o Observation) bool {
	if o.Failed > 0 {
		r.run++
	} else {
		r.run = 0
	}
	return r.run >= r.n
}

// slowAsFailed wraps a reference policy for the latency rows: tools that
// check latency count a slow measurement as failed.
type slowAsFailed struct {
	policy
	limit time.Duration
}

func (s slowAsFailed) observe(o Observation) bool {
	if o.Latency > s.limit {
		o.Failed = 1
	}
	return s.policy.observe(o)
}

var referenceNames = []string{"argo limit=0", "argo limit=3", "flagger thr=5", "3 in a row"}

// references are the reference tools, each watching every one of urls
// with an analysis of its own, as a tool with one analysis per URL does:
// any URL's rollback rolls the build back. refs[tool][url].
func references(sc scenario, urls int) [][]policy {
	make := []func() policy{
		func() policy { return &argoRollouts{failureLimit: 0} },
		func() policy { return &argoRollouts{failureLimit: 3} },
		func() policy { return &flagger{threshold: 5} },
		func() policy { return &inARow{n: 3} },
	}
	refs := make2(len(make), urls)
	for i, m := range make {
		for u := range urls {
			refs[i][u] = m()
			if sc.latency {
				refs[i][u] = slowAsFailed{refs[i][u], qualityLatency}
			}
		}
	}
	return refs
}

func make2(n, m int) [][]policy {
	p := make([][]policy, n)
	for i := range p {
		p[i] = make([]policy, m)
	}
	return p
}

func qualityLimits(sc scenario, urls int) Limits {
	l := DefaultLimits()
	l.MaxErrorRate = qualityMaxError
	l.Horizon = qualityProbes
	l.Targets = urls
	if sc.latency {
		l.MaxLatency = qualityLatency
	}
	return l
}

// probeSource simulates probes: independent failures (or strict
// alternation) and lognormal latencies with the given p95.
type probeSource struct {
	rng      *rand.Rand
	target   string
	failRate float64
	flapping bool
	median   float64 // seconds
	i        int
}

func newProbeSource(rng *rand.Rand, target string, sc scenario, failRate float64) *probeSource {
	const z95 = 1.6448536269514722
	return &probeSource{rng: rng, target: target, failRate: failRate, flapping: sc.flapping, median: sc.p95.Seconds() / math.Exp(z95*latencySigma)}
}

func (p *probeSource) next() Observation {
	p.i++
	failed := p.rng.Float64() < p.failRate
	if p.flapping {
		failed = p.i%2 == 0
	}
	latency := time.Duration(p.median * math.Exp(latencySigma*p.rng.NormFloat64()) * float64(time.Second))
	return Probe(p.target, failed, max(latency, time.Microsecond))
}

// rowResult is what one policy did over the watches of one row.
type rowResult struct {
	rolledBack int
	at         []int // probe (round) numbers of the rollbacks
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

// fleet is a table's shape: how many URLs, and whether the scenario
// applies to all of them or to the first only.
type fleet struct {
	urls   int
	allBad bool
}

func (f fleet) String() string {
	if f.urls == 1 {
		return "1 URL"
	}
	if f.allBad {
		return fmt.Sprintf("%d URLs, all bad", f.urls)
	}
	return fmt.Sprintf("%d URLs, one bad", f.urls)
}

func urlName(i int) string { return fmt.Sprintf("https://app-%d.example.com/healthz", i) }

// simulateRow runs the watches of one row. Its random draws, with one URL,
// are the same as those of the first version of this table, so that it
// stays comparable.
func simulateRow(seed uint64, sc scenario, f fleet, watches int, rateOnly bool) []rowResult {
	rng := rand.New(rand.NewPCG(qualitySeed, seed))
	names := 1 + len(referenceNames)
	if rateOnly {
		names++
	}
	results := make([]rowResult, names)
	l := qualityLimits(sc, f.urls)
	noRun := l
	noRun.ConsecutiveFailures = 0
	// Choosing and planning the tests costs about as much as a watch;
	// tests depend only on the limits, so the row's engines share them.
	tests, rateTests, baseTests := map[testKey]rateTest{}, map[testKey]rateTest{}, map[testKey]rateTest{}
	urls := make([]string, f.urls)
	for i := range urls {
		urls[i] = urlName(i)
	}
	if f.urls == 1 {
		urls[0] = "https://app.example.com/healthz"
	}
	for range watches {
		var base *Baseline
		if sc.baseline > 0 {
			bl := l
			bl.Horizon = baselineProbes
			base = &Baseline{check: build(bl, nil, baseTests)}
			var sources []*probeSource
			for _, u := range urls {
				sources = append(sources, newProbeSource(rng, u, scenario{p95: sc.p95}, sc.baseline))
			}
			for range baselineProbes {
				for _, s := range sources {
					base.Observe(s.next())
				}
			}
			// As the action does: a failing production is no yardstick.
			if unhealthy, _ := base.Unhealthy(); unhealthy {
				base = nil
			}
		}
		engines := []*Engine{build(l, base, tests)}
		if rateOnly {
			engines = append(engines, build(noRun, base, rateTests))
		}
		refs := references(sc, len(urls))
		done := make([]bool, len(engines)+len(refs))
		var sources []*probeSource
		for i, u := range urls {
			s := sc
			if i > 0 && !f.allBad {
				s = sc.healthy()
			}
			sources = append(sources, newProbeSource(rng, u, s, s.failRate))
		}
		rollBack := func(i, n int) {
			done[i] = true
			results[i].rolledBack++
			results[i].at = append(results[i].at, n)
		}
		for n := 1; n <= qualityProbes; n++ {
			for u, src := range sources {
				o := src.next()
				for i, e := range engines {
					if !done[i] && e.Observe(o).Outcome == Regressed {
						rollBack(i, n)
					}
				}
				for j, ref := range refs {
					if i := len(engines) + j; !done[i] && ref[u].observe(o) {
						rollBack(i, n)
					}
				}
			}
		}
		for i, e := range engines {
			if !done[i] && e.Finish().Outcome == Regressed {
				rollBack(i, qualityProbes)
			}
		}
	}
	return results
}

// simulate runs every row of a table, two at a time.
func simulate(f fleet, watches int, rateOnly bool, seedBase uint64) [][]rowResult {
	all := make([][]rowResult, len(scenarios))
	var wg sync.WaitGroup
	sem := make(chan struct{}, 2)
	for i, sc := range scenarios {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			all[i] = simulateRow(seedBase+uint64(i), sc, f, watches, rateOnly)
		})
	}
	wg.Wait()
	return all
}

func formatRows(b *strings.Builder, title string, names []string, all [][]rowResult, watches int) {
	fmt.Fprintf(b, "%-33s", title)
	for _, name := range names {
		fmt.Fprintf(b, " %-19s", name)
	}
	b.WriteString("\n")
	for i, sc := range scenarios {
		fmt.Fprintf(b, "%-33s", sc.name)
		for _, r := range all[i] {
			cell := fmt.Sprintf("%.2f%%", 100*r.share(watches))
			if r.rolledBack > 0 {
				cell += fmt.Sprintf(" %d/%d", r.nearestRank(0.5), r.nearestRank(0.95))
			}
			fmt.Fprintf(b, " %-19s", cell)
		}
		b.WriteString("\n")
	}
}

func formatTable(all [][]rowResult, watches int) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Quality of verdicts: %d simulated watches per row, %d probes each, one target, seed %d.\n", watches, qualityProbes, qualitySeed)
	fmt.Fprintf(&b, "Limits: max-error-rate 5%%, consecutive-failures 3, confidence 99%%, horizon %d probes.\n", qualityProbes)
	fmt.Fprintf(&b, "Latency rows: max-latency %v at p95; latencies are lognormal (sigma %.1f in log space, so p95 = %.1f x median).\n", qualityLatency, latencySigma, math.Exp(1.6448536269514722*latencySigma))
	fmt.Fprintf(&b, "Baseline rows: %d production probes first, then relative judgment (failure rate + 5 points, p95 x 1.5).\n", baselineProbes)
	b.WriteString("Cells: share of watches rolled back (a false alarm on ok rows, a detection on regressed rows),\n")
	b.WriteString("then median/p95 of the probe that rolled back. References count a slow probe as failed on latency rows.\n\n")
	formatRows(&b, "scenario", append([]string{"immune"}, referenceNames...), all, watches)
	return tidy(b.String())
}

func formatFleetTable(tables map[fleet][][]rowResult, fleets []fleet) string {
	var b strings.Builder
	fmt.Fprintf(&b, "Quality of verdicts with many URLs: the rows, limits and seed of quality.txt, on k URLs probed once per round\n")
	fmt.Fprintf(&b, "for %d rounds (Horizon %d, Targets k). One bad: the row's build on one URL, the other URLs healthy (%s failing;\n", qualityProbes, qualityProbes, pct.Of(fleetNoise, 2))
	b.WriteString("baseline rows: as production). All bad: the row's build on every URL. The references judge each URL on its own\n")
	b.WriteString("and roll back when any URL trips. \"rates only\" is immune with consecutive-failures off: its false alarms are\n")
	b.WriteString("the rate tests' alone, which confidence bounds (at most 1% at the limit, over all URLs together).\n")
	b.WriteString("Cells: share of watches rolled back, then median/p95 of the round that rolled back.\n")
	names := append([]string{"immune", "rates only"}, referenceNames...)
	for _, f := range fleets {
		w := watchesPerRow(f.urls)
		b.WriteString("\n")
		formatRows(&b, fmt.Sprintf("%s (%d watches)", f, w), names, tables[f], w)
	}
	return tidy(b.String())
}

func TestQualityTable(t *testing.T) {
	watches := watchesPerRow(1)
	start := time.Now()
	all := simulate(fleet{urls: 1}, watches, false, 0)
	table := formatTable(all, watches)
	t.Logf("\n%s(%v)", table, time.Since(start).Round(time.Millisecond))

	row := func(name string) (immune, inARow rowResult) {
		i := slices.IndexFunc(scenarios, func(s scenario) bool { return s.name == name })
		return all[i][0], all[i][4]
	}
	check := func(what string, ok bool, got string) {
		t.Helper()
		if !ok {
			t.Errorf("%s: got %s", what, got)
		}
	}
	pct := func(r rowResult) string { return fmt.Sprintf("%.2f%%", 100*r.share(watches)) }
	// The targets, in their full-run form; short runs check loose versions.
	loose := func(fullBound, shortBound float64) float64 {
		if *tablesFull {
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

	goldenTable(t, "quality.txt", table)
}

func TestFleetTable(t *testing.T) {
	fleets := []fleet{{10, false}, {10, true}, {100, false}, {100, true}}
	start := time.Now()
	tables := map[fleet][][]rowResult{}
	for i, f := range fleets {
		tables[f] = simulate(f, watchesPerRow(f.urls), true, uint64(1000*(i+1)))
	}
	table := formatFleetTable(tables, fleets)
	t.Logf("\n%s(%v)", table, time.Since(start).Round(time.Millisecond))

	cell := func(f fleet, name string, col int) rowResult {
		i := slices.IndexFunc(scenarios, func(s scenario) bool { return s.name == name })
		return tables[f][i][col]
	}
	const immune, ratesOnly = 0, 1
	for _, f := range fleets {
		w := watchesPerRow(f.urls)
		share := func(r rowResult) string { return fmt.Sprintf("%.2f%%", 100*r.share(w)) }
		// The stated bound: the rate tests roll back a build at the limit
		// on every URL in at most 1 − confidence of watches (a short run
		// allows for its noise).
		bound := 0.01
		if !*tablesFull {
			bound = 0.1
		}
		if f.allBad {
			if r := cell(f, "at the limit, 5% failing", ratesOnly); r.share(w) > bound {
				t.Errorf("%s: the rate tests alone rolled back %s of builds at the limit", f, share(r))
			}
			if r := cell(f, "latency ok, p95 = max/3", ratesOnly); r.share(w) > bound {
				t.Errorf("%s: the rate tests alone rolled back %s of builds with a good latency", f, share(r))
			}
		}
		// One bad URL is caught as surely as it is alone, if later.
		for _, name := range []string{"regressed, 100% failing", "regressed, 50% failing", "regressed, 20% failing", "flapping, every other fails", "latency regressed, p95 = 3×max"} {
			if r := cell(f, name, immune); r.rolledBack != w {
				t.Errorf("%s, %s: caught in %s of watches", f, name, share(r))
			}
		}
		if r := cell(f, "regressed, 100% failing", immune); r.nearestRank(1) > 3 {
			t.Errorf("%s: a URL failing every probe is caught at round %d, want 3 at the latest", f, r.nearestRank(1))
		}
	}
	goldenTable(t, "fleet.txt", table)
}
