package report

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/immune-cd/immune/internal/health"
	"github.com/immune-cd/immune/internal/metrics"
	"github.com/immune-cd/immune/internal/run"
)

var update = flag.Bool("update", false, "rewrite the golden files")

const (
	newSHA  = "4d8b3f2e1c0a9b8c7d6e5f4a3b2c1d0e9f8a7b6c"
	goodSHA = "9f2c1e7a3b4d5c6e7f8091a2b3c4d5e6f7081920"
	url     = "https://shop.example.com/healthz"
)

var t0 = time.Date(2026, 11, 25, 10, 2, 30, 0, time.UTC)

// probes makes a watch's probes: one per 5s round, failing where pattern
// has an "x", with latencies from ms.
func probes(start time.Time, pattern string, ms ...int) []health.Probe {
	var ps []health.Probe
	for i, c := range pattern {
		p := health.Probe{
			Time: start.Add(time.Duration(i) * 5 * time.Second), Round: i + 1, URL: url,
			Status: 200, Answered: true, Phase: health.PhaseLive,
			Latency: time.Duration(ms[i%len(ms)]) * time.Millisecond,
		}
		if c == 'x' {
			p.Status, p.Failed, p.Error = 503, true, "status 503 is not an expected status"
		}
		if c == 's' {
			p.Phase, p.Failed, p.Error = PhaseStartupName, true, "connection refused"
			p.Answered, p.Status, p.Latency = false, 0, 0
		}
		ps = append(ps, p)
	}
	return ps
}

// PhaseStartupName is health.PhaseStartup, named for the table above.
const PhaseStartupName = health.PhaseStartup

func watchOf(commit string, start time.Time, planned time.Duration, pattern string, verdict run.Verdict, reason string, detected bool, ms ...int) *Watch {
	ps := probes(start, pattern, ms...)
	w := &Watch{SHA: commit, Start: start, End: ps[len(ps)-1].Time.Add(40 * time.Millisecond), Planned: planned, Probes: ps,
		Verdict: verdict, Reason: reason, Detected: detected, Stats: StatsOf(ps)}
	return w
}

func links() Links {
	return Links{
		Run:                "https://github.com/octo-org/shop/actions/runs/7412345678",
		Commit:             "https://github.com/octo-org/shop/commit/" + newSHA,
		PreviousCommit:     "https://github.com/octo-org/shop/commit/" + goodSHA,
		Deployment:         "https://github.com/octo-org/shop/deployments",
		RollbackDeployment: "https://github.com/octo-org/shop/deployments",
	}
}

// canaryLinks are a canary run's links: no rollback deployment.
func canaryLinks() Links {
	l := links()
	l.RollbackDeployment = ""
	return l
}

func runs() map[string]*Run {
	deploy := &Step{SHA: newSHA, Start: t0, End: t0.Add(12 * time.Second)}
	watchStart := t0.Add(12 * time.Second)
	healthy := &Run{
		Mode: "deploy", Environment: "production", Stage: run.StageFull, SHA: newSHA, PreviousSHA: goodSHA, PreviousSource: "GitHub deployment 1000001",
		Verdict: run.Healthy, Reason: "1 of 12 probes failed (8.3%), above the allowed 5% but not with 99% confidence over so few probes; p95 latency 61ms",
		Start: t0, End: watchStart.Add(time.Minute), Deploy: deploy, Links: links(), DeploymentID: 1000002,
		Watch:    watchOf(newSHA, watchStart, time.Minute, "....x.......", run.Healthy, "", false, 40, 42, 38, 61, 45),
		Warnings: []string{"1 of 12 probes failed (8.3%), above the allowed 5%; not enough evidence to call it a regression"},
	}
	rolledBack := &Run{
		Mode: "deploy", Environment: "production", Stage: run.StageFull, SHA: newSHA, PreviousSHA: goodSHA, PreviousSource: "GitHub deployment 1000001",
		Verdict: run.RolledBack, RolledBack: true,
		Reason: "on https://shop.example.com/healthz, 9 of 12 probes failed (75%); the failure rate is above the allowed 5% with 99% confidence (the sequential test's limit after 12 probes is 4)",
		Start:  t0, Deploy: deploy, Links: links(), DeploymentID: 1000002,
		Watch:         watchOf(newSHA, watchStart, 5*time.Minute, "ss.x.xx.xxxxxx", run.Regressed, "", true, 40, 180, 220, 390),
		Rollback:      &Step{SHA: goodSHA, Start: watchStart.Add(70 * time.Second), End: watchStart.Add(78 * time.Second)},
		RollbackWatch: watchOf(goodSHA, watchStart.Add(78*time.Second), time.Minute, "............", run.Healthy, "0 of 12 probes failed (0%), within the allowed 5%; p95 latency 44ms", false, 39, 44),
	}
	rolledBack.Watch.Stats = StatsOf(rolledBack.Watch.Probes)
	failed := &Run{
		Mode: "deploy", Environment: "production", Stage: run.StageFull, SHA: newSHA, PreviousSHA: goodSHA, PreviousSource: "the state file",
		Verdict: run.RollbackFailed, RolledBack: true,
		Reason: "3 probes in a row failed on https://shop.example.com/healthz",
		Start:  t0, Deploy: deploy, Links: Links{Run: "https://github.com/octo-org/shop/actions/runs/7412345678"},
		Watch:         watchOf(newSHA, watchStart, 5*time.Minute, "..xxx", run.Regressed, "", true, 35),
		Rollback:      &Step{SHA: goodSHA, Start: watchStart.Add(25 * time.Second), End: watchStart.Add(31 * time.Second)},
		RollbackWatch: watchOf(goodSHA, watchStart.Add(31*time.Second), time.Minute, "ssssssssssss", run.Regressed, "no healthy answer from https://shop.example.com/healthz within the startup timeout of 1m00s (last answer: connection refused)", true, 0),
		Notes:         []string{"the rollback target came from the state file"},
	}
	gate := &Run{
		Mode: "gate", Environment: "production", Verdict: run.Stopped,
		Reason: "production was rolled back from 4d8b3f2 to 9f2c1e7 at 2026-11-25T10:09:41Z; #123 is not marked as a fix. To merge the fix, add the label \"immune:fix\" to its pull request, or revert 4d8b3f2.",
		Start:  t0, Links: Links{Run: "https://github.com/octo-org/shop/actions/runs/7412345999"},
		Gate: &Gate{PullRequest: 123, BadSHA: newSHA, StoppedAt: "2026-11-25T10:09:41Z", StoppedBy: "was rolled back from 4d8b3f2 to 9f2c1e7",
			RunURL: "https://github.com/octo-org/shop/actions/runs/7412345678"},
	}
	// Judged by metrics: a rate metric whose errors jump, a latency
	// threshold, Prometheus down for two looks.
	mWatch := &Watch{SHA: newSHA, Start: watchStart, End: watchStart.Add(45 * time.Second), Planned: 5 * time.Minute,
		Verdict: run.Regressed, Rule: "error-rate", Metric: "http-errors", Detected: true,
		Reason: "on metric http-errors, 62 of 1250 requests failed (5%); the failure rate is above the allowed 1% with 99% confidence (the sequential test's limit after 1250 requests is 55)"}
	mWatch.Metrics = metricWatches(watchStart, 10, 0.05, true)
	mRollback := &Watch{SHA: goodSHA, Start: watchStart.Add(60 * time.Second), End: watchStart.Add(120 * time.Second), Planned: time.Minute,
		Verdict: run.Healthy, Reason: "metric http-errors: 0 of 2750 requests failed (0%), within the allowed 1%; metric p99: worst 0.1 in 12 looks, within its max of 0.3"}
	mRollback.Metrics = metricWatches(watchStart.Add(60*time.Second), 12, 0, false)
	metricsRolledBack := &Run{
		Mode: "deploy", Environment: "production", Stage: run.StageFull, SHA: newSHA, PreviousSHA: goodSHA, PreviousSource: "GitHub deployment 1000001",
		Verdict: run.RolledBack, RolledBack: true, Reason: mWatch.Reason,
		Start: t0, Deploy: deploy, Links: links(), DeploymentID: 1000002, Watch: mWatch,
		Rollback:      &Step{SHA: goodSHA, Start: watchStart.Add(50 * time.Second), End: watchStart.Add(60 * time.Second)},
		RollbackWatch: mRollback,
	}
	iWatch := &Watch{SHA: newSHA, Start: watchStart, End: watchStart.Add(time.Minute), Planned: time.Minute, Verdict: run.Inconclusive, Rule: "inconclusive",
		Reason: "not judged: metric http-errors counted 12 requests over the watch, fewer than min-requests (20): too few to clear the build"}
	iWatch.Metrics = metricWatches(watchStart, 12, 0, false)
	iWatch.Metrics[0].Requests, iWatch.Metrics[0].Inconclusive = 12, "metric http-errors counted 12 requests over the watch, fewer than min-requests (20): too few to clear the build"
	inconclusive := &Run{
		Mode: "deploy", Environment: "production", Stage: run.StageFull, SHA: newSHA, PreviousSHA: goodSHA, PreviousSource: "GitHub deployment 1000001",
		Verdict: run.Inconclusive, Reason: iWatch.Reason, Start: t0, Deploy: deploy, Links: links(), DeploymentID: 1000002, Watch: iWatch,
	}
	inconclusive.Links.RollbackDeployment = ""
	canaryStep := &Step{SHA: newSHA, Start: t0, End: t0.Add(6 * time.Second)}
	canaryStart := t0.Add(6 * time.Second)
	removed := &Run{
		Mode: "deploy", Environment: "production", Stage: run.StageCanary, SHA: newSHA, PreviousSHA: goodSHA, PreviousSource: "GitHub deployment 1000001",
		Verdict: run.RolledBack, RolledBack: true,
		Reason: "the canary failed 7 of 14 probes (50%), the control 0 of 14 (0%) in the same rounds; the canary's failure rate is more than 5 points above the control's with 99% confidence (the two-sample test's likelihood ratio is 233, at least 100)",
		Start:  t0, Links: canaryLinks(), DeploymentID: 1000002,
		Canary: &Canary{
			Deploy:  canaryStep,
			Watch:   watchOf(newSHA, canaryStart, 5*time.Minute, "s..x.xx..xx.x.x", run.Regressed, "", true, 40, 45, 52),
			Control: watchOf(goodSHA, canaryStart, 5*time.Minute, "..............", "", "", false, 38, 41),
			Series:  series(15, 1, "s..x.xx..xx.x.x", "s.............."),
			Removal: &Step{SHA: goodSHA, Start: canaryStart.Add(75 * time.Second), End: canaryStart.Add(79 * time.Second)},
		},
	}
	promoted := &Run{
		Mode: "deploy", Environment: "production", Stage: run.StageFull, SHA: newSHA, PreviousSHA: goodSHA, PreviousSource: "GitHub deployment 1000001",
		Verdict: run.Healthy, Reason: "0 of 12 probes failed (0%), within the allowed 5%; p95 latency 44ms",
		Start: t0, Deploy: &Step{SHA: newSHA, Start: t0.Add(70 * time.Second), End: t0.Add(80 * time.Second)}, Links: canaryLinks(), DeploymentID: 1000003,
		Canary: &Canary{
			Deploy:   canaryStep,
			Watch:    watchOf(newSHA, canaryStart, 5*time.Minute, "............", run.Healthy, "", false, 40, 45),
			Control:  watchOf(goodSHA, canaryStart, 5*time.Minute, "....x.......", "", "", false, 38, 41),
			Series:   series(12, 1, "............", "....x......."),
			Promoted: true, Early: true,
		},
		Watch: watchOf(newSHA, t0.Add(80*time.Second), time.Minute, "............", run.Healthy, "", false, 39, 44),
	}
	// Shadow mode: the same regression, seen and let be.
	shadow := &Run{
		Mode: "deploy", Environment: "production", Stage: run.StageFull, SHA: newSHA, PreviousSHA: goodSHA, PreviousSource: "GitHub deployment 1000001",
		Verdict: run.Regressed, Reason: mWatch.Reason, Start: t0, Deploy: deploy, Links: links(), DeploymentID: 1000002, Watch: mWatch,
		Shadow: true, WouldHave: &WouldHave{Action: ActionRollBack, Target: goodSHA, After: 45 * time.Second, AfterSeconds: 45, Reason: mWatch.Reason},
	}
	shadow.Links.RollbackDeployment = ""
	return map[string]*Run{"healthy": healthy, "rolled-back": rolledBack, "rollback-failed": failed, "gate-stopped": gate,
		"metrics-rolled-back": metricsRolledBack, "inconclusive": inconclusive,
		"canary-removed": removed, "canary-promoted": promoted, "shadow": shadow}
}

// series is a canary's chart data: one round per 5s, the canary's probe
// failing where canary has an "x", each of controls control probes where
// control has one.
func series(rounds, controls int, canary, control string) *CanarySeries {
	s := &CanarySeries{}
	for i := range rounds {
		p := CanaryPoint{Elapsed: time.Duration(i) * 5 * time.Second, Canary: 1, Control: controls}
		if canary[i] == 'x' {
			p.CanaryFailed = 1
		}
		if canary[i] == 's' {
			p.Canary = 0
		}
		if control[i] == 'x' {
			p.ControlFailed = 1
		}
		if control[i] == 's' {
			p.Control = 0
		}
		s.Add(p)
	}
	return s
}

// metricWatches are a watch's metrics: http-errors (a rate, 1% allowed)
// at errShare of 250 requests a look, and p99 (a threshold, at most 0.3),
// over looks 5s apart, the second and third without data (Prometheus
// down), the last regressed when regressed.
func metricWatches(start time.Time, looks int, errShare float64, regressed bool) []MetricWatch {
	max, p99 := 0.3, 0.1
	specs := []metrics.Spec{
		{Name: "http-errors", Errors: `x{code="500"}`, Total: "x", MaxErrorRate: 0.01},
		{Name: "p99", Query: "q", Max: &max, Consecutive: 3},
	}
	l := NewMetricLog(start, specs, 0)
	var requests, errs int64
	for i := range looks {
		at := start.Add(time.Duration(i) * 5 * time.Second)
		rate := metrics.Reading{Metric: "http-errors", Kind: metrics.KindRate, Attempts: 1}
		lat := metrics.Reading{Metric: "p99", Kind: metrics.KindThreshold, Attempts: 1, Value: p99}
		switch {
		case i == 0:
			rate.NewSeries = 1
		case i == 1 || i == 2:
			rate = metrics.Reading{Metric: "http-errors", Kind: metrics.KindRate, NoData: metrics.NoDataUnreachable, Error: "total: HTTP 503", Attempts: 3}
			lat = metrics.Reading{Metric: "p99", Kind: metrics.KindThreshold, NoData: metrics.NoDataUnreachable, Error: "HTTP 503", Attempts: 3}
		default:
			rate.Requests = 250
			if i == 3 {
				rate.Requests = 750 // what the outage missed
			}
			rate.Errors = int64(float64(rate.Requests) * errShare)
			requests, errs = requests+rate.Requests, errs+rate.Errors
			lat.Value = p99 + float64(i)/100
		}
		l.Add(metrics.Look{At: at, Readings: []metrics.Reading{rate, lat}})
	}
	outcomes := []metrics.Outcome{
		{Metric: "http-errors", Kind: metrics.KindRate, Looks: looks, NoData: map[metrics.NoData]int{metrics.NoDataUnreachable: 2},
			Requests: requests, Errors: errs, Allowed: 0.01, Baseline: "absolute", Regressed: regressed},
		{Metric: "p99", Kind: metrics.KindThreshold, Looks: looks, NoData: map[metrics.NoData]int{metrics.NoDataUnreachable: 2},
			Value: p99 + float64(looks-1)/100, Worst: p99 + float64(looks-1)/100, Max: &max, Consecutive: 3},
	}
	return l.Metrics(outcomes, []metrics.Expanded{
		{Name: "http-errors", Kind: metrics.KindRate, Errors: `http_requests_total{version="4d8b3f2e1c0a9b8c7d6e5f4a3b2c1d0e9f8a7b6c",code=~"5.."}`, Total: `http_requests_total{version="4d8b3f2e1c0a9b8c7d6e5f4a3b2c1d0e9f8a7b6c"}`},
		{Name: "p99", Kind: metrics.KindThreshold, Query: "q"},
	})
}

// TestMetricLogBounded: past its cap a metric log keeps its looks per
// minute, and says so.
func TestMetricLogBounded(t *testing.T) {
	specs := []metrics.Spec{{Name: "e", Errors: "a", Total: "b"}}
	l := NewMetricLog(t0, specs, 10)
	for i := range 100 {
		l.Add(metrics.Look{At: t0.Add(time.Duration(i) * 5 * time.Second), Readings: []metrics.Reading{{Metric: "e", Kind: metrics.KindRate, Requests: 10, Errors: 1}}})
	}
	m := l.Metrics(nil, nil)[0]
	if len(m.LooksKept) != 10 || !m.Aggregated || m.Looks != 100 || len(m.Minutes) != 9 || m.Minutes[0].Requests != 120 || m.Minutes[0].Looks != 12 {
		t.Errorf("kept %d looks of %d, aggregated %v, %d minutes: %+v", len(m.LooksKept), m.Looks, m.Aggregated, len(m.Minutes), m.Minutes)
	}
	var b strings.Builder
	w := &Watch{Start: t0, Metrics: []MetricWatch{m}}
	writeMetricChart(&b, w, m, nil, nil)
	if !strings.Contains(b.String(), `x-axis ["deploy", "+1m", "+2m",`) || !strings.Contains(b.String(), "every minute") {
		t.Errorf("chart of an aggregated metric:\n%s", b.String())
	}
}

// golden compares got with testdata/name, or rewrites it with -update.
func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if got != string(want) {
		t.Errorf("%s differs from the golden file (go test ./internal/report -update to accept):\n--- got\n%s\n--- want\n%s", name, got, want)
	}
}

func TestSummaryGolden(t *testing.T) {
	for name, r := range runs() {
		t.Run(name, func(t *testing.T) {
			golden(t, "summary-"+name+".md", Summary(r))
		})
	}
}

func TestOutputsGolden(t *testing.T) {
	for name, r := range runs() {
		t.Run(name, func(t *testing.T) {
			var b strings.Builder
			for _, o := range Outputs(r, ".immune/report.json") {
				fmt.Fprintf(&b, "%s=%s\n", o.Name, o.Value)
			}
			golden(t, "outputs-"+name+".txt", b.String())
		})
	}
}

func TestJSONReportHasEveryProbe(t *testing.T) {
	rb := runs()["rolled-back"]
	data, err := JSON(rb)
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Verdict string `json:"verdict"`
		Reason  string `json:"reason"`
		Watch   struct {
			DetectedAfter float64 `json:"detected_after_seconds"`
			Probes        []struct {
				Time      time.Time `json:"time"`
				URL       string    `json:"url"`
				Status    int       `json:"status"`
				LatencyMS float64   `json:"latency_ms"`
				Error     string    `json:"error"`
				Phase     string    `json:"phase"`
			} `json:"probes"`
		} `json:"watch"`
		RollbackWatch struct {
			Probes []json.RawMessage `json:"probes"`
		} `json:"rollback_watch"`
	}
	if err := json.Unmarshal(data, &doc); err != nil {
		t.Fatal(err)
	}
	if doc.Verdict != string(run.RolledBack) || doc.Reason != rb.Reason || len(doc.Watch.Probes) != 14 || len(doc.RollbackWatch.Probes) != 12 {
		t.Fatalf("report = verdict %s, %d + %d probes", doc.Verdict, len(doc.Watch.Probes), len(doc.RollbackWatch.Probes))
	}
	p := doc.Watch.Probes[3]
	if p.URL != url || p.Status != 503 || p.LatencyMS != 390 || p.Error == "" || p.Phase != "live" || !p.Time.Equal(rb.Watch.Probes[3].Time) {
		t.Errorf("probe 4 = %+v", p)
	}
	if doc.Watch.DetectedAfter != rb.Watch.DetectedAfter().Seconds() {
		t.Errorf("detected_after_seconds = %v", doc.Watch.DetectedAfter)
	}
}

// The canary's series stays bounded however long the watch, and keeps
// every count.
func TestCanarySeriesIsBounded(t *testing.T) {
	s := &CanarySeries{}
	for i := range 100000 {
		s.Add(CanaryPoint{Elapsed: time.Duration(i) * time.Second, Canary: 1, CanaryFailed: i % 2, Control: 3})
	}
	canary, failed, control := 0, 0, 0
	for _, p := range s.Points {
		canary, failed, control = canary+p.Canary, failed+p.CanaryFailed, control+p.Control
	}
	if len(s.Points) > maxSeries || canary != 100000 || failed != 50000 || control != 300000 || s.Points[1].Elapsed != time.Duration(s.Per)*time.Second {
		t.Errorf("%d points of %d rounds: %d canary probes, %d failed, %d control; second point at %s", len(s.Points), s.Per, canary, failed, control, s.Points[1].Elapsed)
	}
}

// The JSON report has both tracks of a canary, each probe, and the
// evidence's control numbers.
func TestJSONReportHasTheCanary(t *testing.T) {
	r := runs()["canary-removed"]
	data, err := JSON(r)
	if err != nil {
		t.Fatal(err)
	}
	var doc struct {
		Stage  string `json:"stage"`
		Canary struct {
			Watch   struct{ Probes []json.RawMessage } `json:"watch"`
			Control struct{ Probes []json.RawMessage } `json:"control"`
			Removal struct{ SHA string }               `json:"removal"`
		} `json:"canary"`
	}
	if err := json.Unmarshal(data, &doc); err != nil {
		t.Fatal(err)
	}
	if doc.Stage != "canary" || len(doc.Canary.Watch.Probes) != 15 || len(doc.Canary.Control.Probes) != 14 || doc.Canary.Removal.SHA != goodSHA {
		t.Errorf("report = %+v", doc)
	}
}

func TestQuantile(t *testing.T) {
	ms := func(n ...int) []time.Duration {
		var ds []time.Duration
		for _, v := range n {
			ds = append(ds, time.Duration(v)*time.Millisecond)
		}
		return ds
	}
	tests := []struct {
		in   []time.Duration
		q    float64
		want time.Duration
	}{
		{nil, 0.95, 0},
		{ms(5), 0.95, 5 * time.Millisecond},
		{ms(1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20), 0.95, 19 * time.Millisecond},
		{ms(3, 1, 2), 0.5, 2 * time.Millisecond},
	}
	for _, tt := range tests {
		if got := Quantile(tt.in, tt.q); got != tt.want {
			t.Errorf("Quantile(%v, %v) = %v, want %v", tt.in, tt.q, got, tt.want)
		}
	}
}
