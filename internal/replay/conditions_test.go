package replay

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/immune-cd/immune/internal/testkit/traffic"
)

var (
	measure = flag.Bool("replay.measure", false, "judge many simulated traces of issue 20's conditions through immune replay and print the figures")
	perf    = flag.Bool("replay.perf", false, "time immune replay over 10,000 files of 240 looks (printed, never asserted)")
)

// condition is one of issue 20's conditions, as traces for replay.
type condition struct {
	name       string
	load       traffic.Load
	canary     float64 // the canary's rate (a canary's trace: 1,000/min, 10% to it, control at 1%)
	outage     bool    // both tracks +9 points, minutes 1 to 11
	onset      float64
	regression bool
	margin     string // --max-error-rate
	target     float64
	median     float64
}

func conditions() []condition {
	c, s := traffic.Constant, traffic.Step
	at := func(rpm, rate float64, burst int) traffic.Load {
		return traffic.Load{PerMinute: c(rpm), Rate: c(rate), Burst: burst}
	}
	diurnal := traffic.Ramp(100, 1000, 120)
	return []condition{
		{name: "5/min, 1% (at the limit)", load: at(5, 0.01, 1), target: 0.01},
		{name: "5/min, 1%, bursts of 10", load: at(5, 0.01, 10), target: 0.02},
		{name: "20/min, 1%, bursts of 10", load: at(20, 0.01, 10), target: 0.02},
		{name: "100→1000/min, 1%", load: traffic.Load{PerMinute: diurnal, Rate: c(0.01)}, target: 0.01},
		{name: "100→1000/min, 1%, bursts of 10", load: traffic.Load{PerMinute: diurnal, Rate: c(0.01), Burst: 10}, target: 0.02},
		{name: "10000/min, 1%, bursts of 30", load: at(10000, 0.01, 30), target: 0.02},
		{name: "10000/min, 0.5% then 2% from minute 30", load: traffic.Load{PerMinute: c(10000), Rate: s(0.005, 0.02, 30)}, onset: 30, regression: true, target: 0.95, median: 2},
		{name: "1000/min, 0.2% then 3% from minute 30", load: traffic.Load{PerMinute: c(1000), Rate: s(0.002, 0.03, 30)}, onset: 30, regression: true, target: 0.99, median: 3},
		{name: "1000/min, 2% (2× regression)", load: at(1000, 0.02, 1), regression: true, target: 0.99, median: 4.5},
		{name: "5/min, 5% (5× regression)", load: at(5, 0.05, 1), regression: true, target: 0.85},
		{name: "canary identical (1%), shared outage", canary: 0.01, outage: true, margin: "0.25%", target: 0.01},
		{name: "canary 5% (5×), shared outage", canary: 0.05, outage: true, margin: "0.25%", regression: true, target: 0.99, median: 15},
		{name: "canary 3% (3×)", canary: 0.03, margin: "0.25%", regression: true, target: 0.99, median: 14},
	}
}

const (
	lookEvery = 15 * time.Second
	watchFor  = time.Hour
)

// writeTraces writes n traces of cond into dir, seeded.
func writeTraces(t testing.TB, dir string, seed uint64, cond condition, n int) []string {
	rng := rand.New(rand.NewPCG(20, seed))
	files := make([]string, n)
	for i := range files {
		var looks, control []traffic.Look
		if cond.canary > 0 {
			outage := traffic.Constant(0)
			if cond.outage {
				outage = func(m float64) float64 {
					if m >= 1 && m < 11 {
						return 0.09
					}
					return 0
				}
			}
			looks, control = traffic.Split(rng, traffic.Constant(1000), 0.1, traffic.Constant(cond.canary), traffic.Constant(0.01), outage, 1, lookEvery, watchFor)
		} else {
			looks = traffic.Watch(rng, cond.load, lookEvery, watchFor)
		}
		var b bytes.Buffer
		if err := traffic.WriteCSV(&b, lookEvery, looks, control); err != nil {
			t.Fatal(err)
		}
		files[i] = filepath.Join(dir, fmt.Sprintf("c%02d-%05d.csv", seed, i))
		if err := os.WriteFile(files[i], b.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return files
}

// replayAll runs immune replay --json over files and returns its results.
func replayAll(t testing.TB, margin string, files []string) []Result {
	var out, errs bytes.Buffer
	code := Main(context.Background(), append([]string{"--json", "--max-error-rate", margin}, files...), &out, &errs)
	if code == ExitBadInput || errs.Len() > 0 {
		t.Fatalf("exit %d: %s", code, errs.String())
	}
	var res []Result
	for _, line := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		var r Result
		if err := json.Unmarshal([]byte(line), &r); err != nil {
			t.Fatalf("%q: %v", line, err)
		}
		res = append(res, r)
	}
	return res
}

// TestConditions judges issue 20's conditions through immune replay: the
// traces of internal/testkit/traffic (the simulator of the traffic table),
// written as CSV files and judged as a user would. With -replay.measure,
// 2,000 traces per condition and the figures printed (for the report);
// without, a few dozen and loose checks.
func TestConditions(t *testing.T) {
	t.Parallel()
	n, slack := 40, 0.15
	if *measure {
		n, slack = 2000, 0
	}
	dir := t.TempDir()
	var report strings.Builder
	fmt.Fprintf(&report, "%d traces per condition through immune replay (looks every 15s for 1h; max-error-rate 1%%, canary 0.25 points)\n", n)
	for i, cond := range conditions() {
		files := writeTraces(t, dir, uint64(i), cond, n)
		margin := cond.margin
		if margin == "" {
			margin = "1%"
		}
		res := replayAll(t, margin, files)
		var minutes []float64
		for _, r := range res {
			if r.Verdict == Regressed {
				minutes = append(minutes, r.T/60-cond.onset)
			}
		}
		share := float64(len(minutes)) / float64(n)
		line := fmt.Sprintf("%-42s %6.2f%%", cond.name, 100*share)
		median := 0.0
		if len(minutes) > 0 {
			slices.Sort(minutes)
			median = minutes[len(minutes)/2]
			line += fmt.Sprintf("  median %g min", median)
		}
		report.WriteString(line + "\n")
		for _, f := range files {
			os.Remove(f)
		}
		switch {
		case !cond.regression && share > cond.target+slack:
			t.Errorf("%s: %.2f%% rolled back, want at most %.0f%%", cond.name, 100*share, 100*cond.target)
		case cond.regression && share < cond.target-slack:
			t.Errorf("%s: caught %.2f%%, want at least %.0f%%", cond.name, 100*share, 100*cond.target)
		case cond.regression && cond.median > 0 && median > cond.median*(1+slack):
			t.Errorf("%s: median %g minutes, want at most %g", cond.name, median, cond.median)
		}
	}
	t.Logf("\n%s", report.String())
}

// TestPerformance times immune replay over 10,000 files of 240 looks
// (1,000 requests a minute at 1%) with -replay.perf; the time is printed,
// not asserted.
func TestPerformance(t *testing.T) {
	if !*perf {
		t.Skip("with -replay.perf")
	}
	dir := t.TempDir()
	files := writeTraces(t, dir, 99, condition{load: traffic.Load{PerMinute: traffic.Constant(1000), Rate: traffic.Constant(0.01)}}, 10000)
	start := time.Now()
	res := replayAll(t, "1%", files)
	t.Logf("immune replay judged %d files of 240 looks in %v", len(res), time.Since(start).Round(time.Millisecond))
}
