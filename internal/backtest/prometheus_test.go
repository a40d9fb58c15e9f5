package backtest

// The backtest against real parts: a Prometheus started on a week of
// history that promtool backfilled, and the fake GitHub holding the week's
// deployments as immune recorded them, beside GitHub's job deployments and
// one made by hand.

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/immune-cd/immune/internal/clock"
	"github.com/immune-cd/immune/internal/ghapi"
	"github.com/immune-cd/immune/internal/history"
	"github.com/immune-cd/immune/internal/metrics"
	"github.com/immune-cd/immune/internal/promql"
	"github.com/immune-cd/immune/internal/testkit/githubfake"
	"github.com/immune-cd/immune/internal/testkit/historyseed"
	"github.com/immune-cd/immune/internal/testkit/promtest"
)

func weekSettings(maxErrorRate float64) Settings {
	p99 := 0.5
	return Settings{
		Environment: "production",
		Specs: []metrics.Spec{
			{Name: "http-errors", Errors: `http_requests_total{code=~"5..",version="${SHA}"}`, Total: `http_requests_total{version="${SHA}"}`, MaxErrorRate: maxErrorRate},
			{Name: "p99", Query: `http_p99_seconds{version="${SHA}"}`, Max: &p99, Consecutive: 3},
		},
		Interval: 30 * time.Second, Duration: 15 * time.Minute, StartupTimeout: time.Minute,
		Confidence: 0.99, MinRequests: 20,
	}
}

func TestWeekAgainstBackfilledPrometheus(t *testing.T) {
	now := time.Now()
	week := historyseed.NewWeek(now)
	prom := promtest.Backfilled(t, week.OpenMetrics)

	gh := githubfake.Start(t, githubfake.Options{})
	historyseed.Write(gh, "production", week.Deployments, true)
	gh.AddDeployment(githubfake.Deployment{SHA: historyseed.SHA("by-hand"), Environment: "production", CreatedAt: now.Add(-3 * time.Hour)})
	client, err := ghapi.New(ghapi.Options{HTTPClient: gh.Client(), APIURL: gh.URL(), Token: "t", Repository: gh.Repository()})
	if err != nil {
		t.Fatal(err)
	}
	reader := history.FromGitHub(client)
	sources := func(specs []metrics.Spec, vars promql.Vars) (*metrics.Source, error) {
		return metrics.New(specs, vars, metrics.Options{URL: prom.URL, HTTP: &http.Client{}, Clock: clock.Real{}, RequestTimeout: 10 * time.Second})
	}

	t.Run("this configuration rolls back the bad deploy at about the right time and passes the other four", func(t *testing.T) {
		rep, err := Run(context.Background(), reader, sources, weekSettings(0.02), 5, now)
		if err != nil {
			t.Fatal(err)
		}
		logReport(t, rep)
		if len(rep.Results) != 5 || rep.SkippedJobs != 5 || rep.SkippedForeign != 1 {
			t.Fatalf("%d results, %d job and %d foreign deployments skipped; want 5, 5 and 1", len(rep.Results), rep.SkippedJobs, rep.SkippedForeign)
		}
		for i, r := range rep.Results {
			d := week.Deployments[len(week.Deployments)-1-i] // newest first
			if r.SHA != d.SHA {
				t.Fatalf("result %d is deployment %d of %s, want %s", i, r.ID, r.SHA, d.SHA)
			}
			bad := len(week.Deployments)-1-i == week.Bad
			switch {
			case bad:
				// The build served from +30s; the judge needs a look with
				// data as a starting point, then the next one's counts.
				from, until := week.BadFrom.Sub(d.Started), week.BadFrom.Sub(d.Started)+2*time.Minute
				if r.Verdict != WouldRollBack || r.After < from || r.After > until {
					t.Errorf("the bad deploy: %s at +%s (%s), want a rollback between +%s and +%s", r.Verdict, r.After, r.Reason, from, until)
				}
				if r.Cut == nil || r.Cut.By != "deploy" || r.Cut.After != 10*time.Minute {
					t.Errorf("the bad deploy's watch: cut %+v, want cut by the next deploy at +10m", r.Cut)
				}
				if r.Agreement != NewAlarm {
					t.Errorf("the bad deploy, recorded healthy: agreement %q, want %q", r.Agreement, NewAlarm)
				}
			case r.Verdict != WouldPass:
				t.Errorf("deploy %d: %s (%s), want it to pass", r.ID, r.Verdict, r.Reason)
			}
		}
		if c := rep.Counts; c.WouldRollBack != 1 || c.WouldPass != 4 || c.Agrees != 4 || c.NewAlarms != 1 {
			t.Errorf("counts %+v", c)
		}
	})

	t.Run("a limit tighter than the builds' 0.5% of errors shows the false alarms it would raise", func(t *testing.T) {
		rep, err := Run(context.Background(), reader, sources, weekSettings(0.002), 5, now)
		if err != nil {
			t.Fatal(err)
		}
		logReport(t, rep)
		for _, r := range rep.Results {
			if r.Verdict != WouldRollBack || r.Agreement != NewAlarm {
				t.Errorf("deploy %d: %s, %q (%s); want a rollback, a new alarm", r.ID, r.Verdict, r.Agreement, r.Reason)
			}
		}
		if rep.Counts.NewAlarms != 5 {
			t.Errorf("%d new alarms, want 5 (four false, and the bad deploy)", rep.Counts.NewAlarms)
		}
	})

	t.Run("a query Prometheus holds nothing for is too little data, said so", func(t *testing.T) {
		s := weekSettings(0.02)
		s.Specs = s.Specs[:1]
		s.Specs[0].Total = `http_requests_total{version="${SHA}",region="mars"}`
		rep, err := Run(context.Background(), reader, sources, s, 2, now)
		if err != nil {
			t.Fatal(err)
		}
		logReport(t, rep)
		for _, r := range rep.Results {
			if r.Verdict != Inconclusive {
				t.Errorf("deploy %d: %s (%s), want inconclusive", r.ID, r.Verdict, r.Reason)
			}
		}
		if len(rep.Notes) == 0 || rep.Notes[len(rep.Notes)-1][:16] != "too little data:" {
			t.Errorf("notes %q, want too little data", rep.Notes)
		}
	})
}

func logReport(t *testing.T, rep Report) {
	t.Helper()
	for _, r := range rep.Results {
		t.Logf("%d %s recorded %s; now %s at +%s: %s", r.ID, r.SHA[:7], r.Recorded, r.Verdict, r.After, r.Reason)
	}
	for _, n := range rep.Notes {
		t.Logf("note: %s", n)
	}
}
