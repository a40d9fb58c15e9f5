package e2e

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/immune-cd/immune/internal/testkit/testservice"
)

// fleetURLs starts n services running shaNew and returns their health
// URLs; bad, when at least 0, is the index of the one that behaves as b.
func fleetURLs(t *testing.T, n, bad int, b testservice.Behaviour) []string {
	t.Helper()
	urls := make([]string, n)
	for i := range urls {
		var script map[string]testservice.Behaviour
		if i == bad {
			script = map[string]testservice.Behaviour{shaNew: b}
		}
		_, url := service(t, script, shaNew)
		urls[i] = url + "/health"
	}
	return urls
}

// fleetWatch watches urls in watch mode, as the action does, every
// interval for d; each probe may take the whole interval.
func fleetWatch(t *testing.T, urls []string, interval, d time.Duration) result {
	t.Helper()
	return newActionRun(t, "push", map[string]string{
		"mode":            "watch",
		"health-url":      strings.Join(urls, "\n"),
		"interval":        interval.String(),
		"timeout":         interval.String(),
		"duration":        d.String(),
		"startup-timeout": "1s",
		"github-token":    "",
	}).exec()
}

// reportProbes reads the probes of the report's watch.
func reportProbes(t *testing.T, res result) []map[string]any {
	t.Helper()
	watch, _ := res.report["watch"].(map[string]any)
	var probes []map[string]any
	for _, p := range watch["probes"].([]any) {
		probes = append(probes, p.(map[string]any))
	}
	return probes
}

// TestFleetHealthy: 100 healthy URLs, each on a schedule of its own. Every
// URL is probed about once per interval, never twice in a burst, and the
// progress lines count the URLs instead of drawing 100 marks.
func TestFleetHealthy(t *testing.T) {
	t.Parallel()
	urls := fleetURLs(t, 100, -1, testservice.Behaviour{})
	res := fleetWatch(t, urls, 100*time.Millisecond, 3*time.Second)
	if res.code != 0 || res.outputs["verdict"] != "healthy" {
		t.Fatalf("exit %d, verdict %q\n%s", res.code, res.outputs["verdict"], res.log)
	}
	times := map[string][]time.Time{}
	for _, p := range reportProbes(t, res) {
		at, err := time.Parse(time.RFC3339Nano, p["time"].(string))
		if err != nil {
			t.Fatal(err)
		}
		times[p["url"].(string)] = append(times[p["url"].(string)], at)
	}
	if len(times) != 100 {
		t.Fatalf("probes of %d URLs in the report, want 100", len(times))
	}
	for _, u := range urls {
		ts := times[u]
		// 30 slots; a loaded machine may skip some (a third of them on
		// two cores shared with other work), never make them up.
		if len(ts) < 10 || len(ts) > 30 {
			t.Errorf("%s: %d probes in 3s at 100ms, want 10 to 30", u, len(ts))
		}
		for i := 1; i < len(ts); i++ {
			if gap := ts[i].Sub(ts[i-1]); gap < 50*time.Millisecond {
				t.Errorf("%s: probes %d and %d only %v apart: a burst", u, i, i+1, gap)
			}
		}
	}
	// A loaded machine may fit a URL's first probe into the next round.
	if !regexp.MustCompile(`round 1 +\d+ URLs: `).MatchString(res.log) || strings.Contains(res.log, strings.Repeat("✓", 20)) {
		t.Errorf("progress lines should count 100 URLs, not mark each:\n%s", firstLines(res.log, 8))
	}
}

// TestFleetOneBadURL: 99 healthy URLs and one failing 30% of its requests
// (never three in a row). The rate test of that URL catches it, and the
// verdict names it.
func TestFleetOneBadURL(t *testing.T) {
	t.Parallel()
	const bad = 37
	urls := fleetURLs(t, 100, bad, testservice.Behaviour{FailRate: 0.3})
	// A probe may take a quarter of a second: on a loaded machine, probes
	// of the healthy URLs that time out are failures too, which the pooled
	// test would see. The watch ends at the verdict; its length only bounds
	// a loaded machine, where probes are skipped rather than made late.
	res := fleetWatch(t, urls, 250*time.Millisecond, time.Minute)
	if res.code != 1 || res.outputs["verdict"] != "regressed" {
		t.Fatalf("exit %d, verdict %q\n%s", res.code, res.outputs["verdict"], res.log)
	}
	reason, _ := res.report["reason"].(string)
	want := fmt.Sprintf("on %s, ", urls[bad])
	if !strings.HasPrefix(reason, want) || !strings.Contains(reason, "the failure rate is above the allowed 5%") {
		t.Errorf("reason %q, want the error-rate rule on %s", reason, urls[bad])
	}
	watch := res.report["watch"].(map[string]any)
	ev, _ := watch["evidence"].(map[string]any)
	if ev == nil || ev["bad"].(float64) < 3 || ev["limit"].(float64) != ev["bad"].(float64) || ev["allowed_error_rate"].(float64) != 0.05 {
		t.Errorf("evidence %v, want the counts behind the verdict", ev)
	}
	t.Logf("detected after %ss: %s", res.outputs["detected-after"], reason)
}

func firstLines(s string, n int) string {
	lines := strings.SplitN(s, "\n", n+1)
	return strings.Join(lines[:min(n, len(lines))], "\n")
}

var fleetMeasure = flag.Bool("fleet.measure", false, "run TestFleetWatchCost: a real 100-URL watch of 10s, measured")

// TestFleetWatchCost is the README's real-watch measurement, opt-in
// because it takes 20 s of wall time and its figures depend on the
// machine:
//
//	go test -run TestFleetWatchCost -v -fleet.measure .
//
// `immune watch` (the CLI) probes 100 local URLs every 100ms for 10s; the
// services run in this test's process, so the CPU measured is immune's
// alone, HTTP included. It asserts the verdicts, and logs the figures: wall
// time, CPU per probe, how far each probe started from its slot, and with
// one URL failing 30% of its requests, the time to the verdict.
func TestFleetWatchCost(t *testing.T) {
	if !*fleetMeasure {
		t.Skip("opt-in: -fleet.measure")
	}
	for _, tc := range []struct {
		name string
		bad  int
		code int
	}{
		{"100 healthy URLs", -1, 0},
		{"99 healthy, one failing 30%", 63, 1},
	} {
		urls := fleetURLs(t, 100, tc.bad, testservice.Behaviour{FailRate: 0.3})
		dir := t.TempDir()
		args := []string{"watch", "--interval=100ms", "--duration=10s", "--startup-timeout=1s", "--health-url", strings.Join(urls, ",")}
		cmd := exec.Command(binary, args...)
		cmd.Dir = dir
		cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir}
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		start := time.Now()
		err := cmd.Run()
		wall := time.Since(start)
		code := exitCode(t, err)
		if code != tc.code {
			t.Fatalf("%s: exit %d, want %d\n%s", tc.name, code, tc.code, firstLines(out.String(), 20))
		}
		cpu := cmd.ProcessState.UserTime() + cmd.ProcessState.SystemTime()
		data, err := os.ReadFile(filepath.Join(dir, ".immune", "report.json"))
		if err != nil {
			t.Fatal(err)
		}
		var report struct {
			Reason string `json:"reason"`
			Watch  struct {
				Start    time.Time `json:"start"`
				End      time.Time `json:"end"`
				Total    int       `json:"probes_total"`
				Detected float64   `json:"detected_after_seconds"`
				Probes   []struct {
					Time  time.Time `json:"time"`
					Round int       `json:"round"`
					URL   string    `json:"url"`
				} `json:"probes"`
			} `json:"watch"`
		}
		if err := json.Unmarshal(data, &report); err != nil {
			t.Fatal(err)
		}
		w := report.Watch
		// A URL's slot n is due at its first probe's slot plus n-1
		// intervals; lateness is how far after that each probe started.
		first := map[string]time.Time{}
		var late []time.Duration
		for _, p := range w.Probes {
			if p.Round == 1 {
				first[p.URL] = p.Time
			}
		}
		for _, p := range w.Probes {
			if f, ok := first[p.URL]; ok {
				late = append(late, p.Time.Sub(f.Add(time.Duration(p.Round-1)*100*time.Millisecond)))
			}
		}
		slices.Sort(late)
		q := func(f float64) time.Duration { return late[int(f*float64(len(late)-1))] }
		t.Logf("%s: exit %d after %v of wall time; watch %v for 10s planned (%+.2f%%); %d probes; CPU %v = %.0f µs per probe; "+
			"probe start after its slot: median %v, p99 %v, max %v; detected after %.2fs: %s",
			tc.name, code, wall.Round(time.Millisecond), w.End.Sub(w.Start).Round(time.Millisecond),
			100*(w.End.Sub(w.Start).Seconds()-10)/10, w.Total, cpu.Round(time.Millisecond),
			float64(cpu.Microseconds())/float64(w.Total), q(0.5).Round(10*time.Microsecond), q(0.99).Round(10*time.Microsecond), q(1).Round(10*time.Microsecond),
			w.Detected, report.Reason)
	}
}

// TestFleetCancelled: the runner cancels the job (SIGTERM) while 100 URLs
// are watched. The run ends without a verdict; how long it took to notice
// is logged, not asserted.
func TestFleetCancelled(t *testing.T) {
	t.Parallel()
	// The first URL counts its probes: the cancel comes once the watch is
	// under way, however long a loaded machine takes to start it.
	var probed atomic.Int64
	first := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { probed.Add(1) }))
	t.Cleanup(first.Close)
	urls := append([]string{first.URL + "/health"}, fleetURLs(t, 99, -1, testservice.Behaviour{})...)
	run := newActionRun(t, "push", map[string]string{
		"mode": "watch", "health-url": strings.Join(urls, "\n"), "interval": "100ms", "duration": "1m", "github-token": "",
	})
	c := run.cancelWhen(func() bool { return probed.Load() > 0 }, 300*time.Millisecond)
	if c.code != 1 || c.outputs["verdict"] != "cancelled" {
		t.Fatalf("exit %d, verdict %q; want exit 1, cancelled\n%s", c.code, c.outputs["verdict"], firstLines(c.log, 30))
	}
	t.Logf("the run ended %v after SIGTERM", c.took.Round(time.Millisecond))
}
