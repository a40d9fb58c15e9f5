package report

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/immune-cd/immune/internal/backtest"
	"github.com/immune-cd/immune/internal/history"
	"github.com/immune-cd/immune/internal/metrics"
	"github.com/immune-cd/immune/internal/stats"
	"github.com/immune-cd/immune/internal/testkit/historyseed"
)

func TestStatsSummaryGolden(t *testing.T) {
	from := historyseed.FiftyStart
	r := stats.Compute(history.Read{Environment: "production", Deployments: historyseed.Fifty(historyseed.FiftyStart), Jobs: 40, Foreign: 2},
		stats.Period{From: from, To: from.Add(10 * 24 * time.Hour)})
	golden(t, "stats-fifty.md", StatsSummary(r))
	data, err := StatsJSON(r)
	if err != nil || !json.Valid(data) {
		t.Fatalf("JSON %v:\n%s", err, data)
	}
}

func TestStatsSummaryOfNothing(t *testing.T) {
	from := historyseed.FiftyStart
	got := StatsSummary(stats.Compute(history.Read{Environment: "qa|<b>"}, stats.Period{From: from, To: from.Add(24 * time.Hour)}))
	for _, want := range []string{"the record of qa\\|&lt;b&gt;", "— (no change judged)", "— (none in the records)", "nothing to compute"} {
		if !strings.Contains(got, want) {
			t.Errorf("the summary of no history lacks %q:\n%s", want, got)
		}
	}
}

// backtestWeek is a backtest as the week of historyseed makes it: one
// deploy rolled back, one regressed and rolled back then that is still,
// one cut short by a rollback, one inconclusive.
func backtestWeek() backtest.Report {
	start := time.Date(2024, 3, 5, 14, 0, 0, 0, time.UTC)
	ok := []backtest.Metric{{Name: "http-errors", Kind: metrics.KindRate, Looks: 30, Summary: "metric http-errors: 72 of 16800 requests failed (0.43%), within the allowed 2%"}}
	return backtest.Report{
		Environment: "production", Asked: 5,
		Config: []string{"a look every 30s for 15m (startup grace 1m), confidence 99%", "metric http-errors: errors at most 2%"},
		Results: []backtest.Result{
			{ID: 1000010, SHA: historyseed.SHA("e"), RunURL: "https://github.com/octo-org/shop/actions/runs/10", Start: start.Add(72 * time.Hour),
				Recorded: history.Healthy, Verdict: backtest.WouldPass, Watched: 15 * time.Minute, Metrics: ok, Agreement: backtest.Agrees,
				Reason: ok[0].Summary},
			{ID: 1000008, SHA: historyseed.SHA("d"), Start: start.Add(48 * time.Hour), Recorded: history.Failed, RecordedAfter: 2*time.Minute + 10*time.Second,
				RecordedReason: "regressed: 12 of 40 probes failed", Verdict: backtest.Undecided, Watched: 2*time.Minute + 10*time.Second,
				Reason: "so far: metric http-errors: 3 of 1200 requests failed (0.25%), within the allowed 2%",
				Cut:    &backtest.Cut{By: "rollback", ID: 1000009, After: 2*time.Minute + 10*time.Second}},
			{ID: 1000006, SHA: historyseed.SHA("c"), Start: start.Add(24 * time.Hour), Recorded: history.Healthy, Verdict: backtest.WouldRollBack,
				Serving: 30 * time.Second, After: 90 * time.Second, Watched: 60 * time.Second, Agreement: backtest.NewAlarm,
				Reason: "on metric http-errors, 118 of 1200 requests failed (9.8%); the failure rate is above the allowed 2% with 99% confidence"},
			{ID: 1000004, SHA: historyseed.SHA("b"), Start: start, Recorded: history.Failed, RecordedAfter: time.Minute, Verdict: backtest.WouldRollBack,
				After: 60 * time.Second, Watched: time.Minute, Agreement: backtest.Agrees, Baseline: "http-errors against production (9f2c1e7)",
				Reason: "on metric http-errors, 60 of 600 requests failed (10%); the failure rate is above the allowed 2% with 99% confidence"},
			{ID: 1000002, SHA: historyseed.SHA("a"), Start: start.Add(-24 * time.Hour), Recorded: history.Healthy, Verdict: backtest.Inconclusive,
				Watched: 15 * time.Minute, Reason: "metric http-errors: no look had data (the last: empty)"},
		},
		Counts:      backtest.Counts{WouldRollBack: 2, WouldPass: 1, Inconclusive: 1, Undecided: 1, Agrees: 2, NewAlarms: 1},
		SkippedJobs: 5, SkippedForeign: 1, SkippedOther: 2,
		Notes: []string{"health-url is probed live but cannot be replayed: only the metrics are judged here (the probes keep their share of the false-alarm allowance)"},
	}
}

func TestBacktestSummaryGolden(t *testing.T) {
	r := backtestWeek()
	golden(t, "backtest-week.md", BacktestSummary(r))
	data, err := BacktestJSON(r)
	if err != nil || !json.Valid(data) || !strings.Contains(string(data), `"verdict": "would-roll-back"`) {
		t.Fatalf("JSON %v:\n%s", err, data)
	}
}

func TestBacktestHeadlines(t *testing.T) {
	for _, tt := range []struct {
		r    backtest.Report
		want string
	}{
		{backtest.Report{Environment: "qa"}, "no deploy of immune's to replay"},
		{backtest.Report{Environment: "qa", Results: make([]backtest.Result, 2), Counts: backtest.Counts{Inconclusive: 1, NotReplayed: 1}}, "too little data to judge any of the last 2 deploys"},
		{backtest.Report{Environment: "qa", Results: make([]backtest.Result, 3), Counts: backtest.Counts{WouldRollBack: 3, NewAlarms: 2}}, "would have rolled back 3 of the last 3 deploys, 2 recorded healthy"},
	} {
		if got := BacktestSummary(tt.r); !strings.Contains(got, tt.want) {
			t.Errorf("headline of %+v: want %q in\n%s", tt.r.Counts, tt.want, got)
		}
	}
}
