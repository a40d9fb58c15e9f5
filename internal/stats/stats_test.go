package stats

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/immune-cd/immune/internal/history"
	"github.com/immune-cd/immune/internal/testkit/historyseed"
)

// TestFifty computes the record of historyseed.Fifty, whose figures are
// worked out by hand below from the rules of its comment.
func TestFifty(t *testing.T) {
	from := historyseed.FiftyStart
	h := history.Read{Environment: "production", Deployments: historyseed.Fifty(historyseed.FiftyStart), Jobs: 40, Foreign: 2}
	if len(h.Deployments) != 50 {
		t.Fatalf("the seed has %d deployments, want 50", len(h.Deployments))
	}
	r := Compute(h, Period{From: from, To: from.Add(10 * 24 * time.Hour)})
	out, _ := json.MarshalIndent(r, "", "  ")
	t.Logf("the record of the fifty:\n%s", figures(r))

	// Changes: the 40 deploys but the one that never deployed (39), and
	// the canary that regressed (1): 40. The canaries that passed are
	// their deploys; the 5 rollbacks and the 2 deploys before the period
	// are not changes.
	// Healthy: 40 - 5 regressed - 2 inconclusive - 1 cancelled - 1 never
	// deployed - 1 running = 30. Regressed: 5 deploys + 1 canary = 6.
	want := Counts{Total: 40, Healthy: 30, Regressed: 6, Inconclusive: 2, Cancelled: 1, Running: 1}
	if r.Changes != want {
		t.Errorf("changes %+v, want %+v", r.Changes, want)
	}
	// 40 changes over 10 days.
	if r.Days != 10 || r.PerDay != 4 {
		t.Errorf("%v days, %v a day; want 10 days, 4 a day", r.Days, r.PerDay)
	}
	// Judged: 30 + 6 + 2 = 38; failed 6: 6/38.
	if cfr := r.ChangeFailureRate; cfr == nil || cfr.Count != 6 || cfr.Of != 38 || cfr.Rate != 6.0/38 {
		t.Errorf("change failure rate %+v, want 6 of 38", cfr)
	}
	// Detection: deploys 1, 2, 3, 4 and 10 minutes, the canary 5: sorted
	// 1 2 3 4 5 10, median (3+4)/2 = 3.5, mean 25/6 minutes = 4m10s.
	check(t, "detection time", r.DetectionTime, Durations{N: 6, Median: 3*time.Minute + 30*time.Second, Mean: 4*time.Minute + 10*time.Second, Min: time.Minute, Max: 10 * time.Minute})
	// Restore: the four rolled back, from the start to the rollback's
	// end: detection + 1 minute: 2, 3, 4, 5 minutes; the one not rolled
	// back (slot 37, started at 11:01 on day 9) to the end of the next
	// deploy (slot 38, 13:00 + 1 + 5 minutes = 13:06): 2h05m. Sorted 2 3 4
	// 5 125: median 4, mean 139/5 minutes = 27m48s. The canary is not an
	// outage of the environment.
	check(t, "time to restore", r.TimeToRestore, Durations{N: 5, Median: 4 * time.Minute, Mean: 27*time.Minute + 48*time.Second, Min: 2 * time.Minute, Max: 2*time.Hour + 5*time.Minute})
	if r.OpenRegressions != 0 {
		t.Errorf("%d open regressions, want 0", r.OpenRegressions)
	}
	// Lead time: 36+i minutes for each healthy deploy i with a known
	// commit time: the 30 healthy slots but 2 and 3, 28 of them:
	// 0 1 4 6 7 8 10 11 12 14 15 16 18 19 20 21 23 24 25 27 28 29 31 32 34
	// 35 36 38. Their sum: 0+...+39 = 780, less the 10 slots not healthy
	// (5+13+22+30+37+9+26+17+33+39 = 231) and 2 and 3: 544. Lead times sum
	// to 28*36 + 544 = 1552 minutes; mean 1552/28 minutes; median: the
	// 14th and 15th slots, 19 and 20: 36+19.5 = 55.5 minutes; min 36, max
	// 36+38.
	check(t, "lead time", r.LeadTime, Durations{N: 28, Median: 55*time.Minute + 30*time.Second, Mean: 1552 * time.Minute / 28, Min: 36 * time.Minute, Max: 74 * time.Minute})
	if r.NoCommitTime != 2 {
		t.Errorf("%d healthy deploys without a commit time, want 2", r.NoCommitTime)
	}
	// Per day: four slots a day; day 4 has the canary that regressed too,
	// day 8 lost slot 33 (never deployed). Regressions on days 1 (slot 5),
	// 3 (13), 4 (the canary), 5 (22), 7 (30) and 9 (37).
	var changes, regressed []int
	for _, b := range r.Buckets {
		changes, regressed = append(changes, b.Changes), append(regressed, b.Regressed)
	}
	if got, want := ints(changes), "4 4 4 4 5 4 4 4 3 4"; got != want {
		t.Errorf("changes per day %s, want %s", got, want)
	}
	if got, want := ints(regressed), "0 1 0 1 1 1 0 1 0 1"; got != want {
		t.Errorf("regressions per day %s, want %s", got, want)
	}
	// Which records were used: all 50 listed; the 2 before the period, the
	// one never deployed, the 2 canaries that passed, and the manual
	// rollback (which restored nothing) fed nothing; the 4 rollbacks after
	// a regression restored one each.
	if len(r.Records) != 50 {
		t.Fatalf("%d records, want 50", len(r.Records))
	}
	why := map[string]int{}
	restored := 0
	for _, rec := range r.Records {
		if rec.Why != "" {
			why[rec.Why]++
		}
		if contains(rec.Used, UsedRestored) {
			restored++
		}
	}
	wantWhy := map[string]int{"outside the period": 2, "its command never ran": 1, "a canary that passed: counted as the deploy that followed it": 2, "a rollback: not a change": 1}
	if !equalCounts(why, wantWhy) {
		t.Errorf("records left out: %v, want %v", why, wantWhy)
	}
	// 4 rollbacks, and slot 38 for slot 37.
	if restored != 5 {
		t.Errorf("%d records restored a regression, want 5", restored)
	}
	if r.SkippedJobs != 40 || r.SkippedForeign != 2 {
		t.Errorf("skipped %d jobs' and %d foreign deployments, want 40 and 2", r.SkippedJobs, r.SkippedForeign)
	}
	if !strings.Contains(string(out), `"median_seconds": 210`) {
		t.Errorf("the JSON does not give the detection time's median in seconds (210):\n%s", out)
	}
	if len(r.Notes) != 1 || !strings.Contains(r.Notes[0], "2 healthy deploy(s) left out") {
		t.Errorf("notes %q, want only the lead time's 2 left out", r.Notes)
	}
}

// figures prints the record's figures for the test log.
func figures(r Report) string {
	var b strings.Builder
	b.WriteString("changes ")
	b.WriteString(jsonOf(r.Changes))
	b.WriteString("\nper day ")
	b.WriteString(jsonOf(r.PerDay))
	b.WriteString("\nchange failure rate ")
	b.WriteString(jsonOf(r.ChangeFailureRate))
	for _, f := range []struct {
		name string
		d    Durations
	}{{"time to restore", r.TimeToRestore}, {"lead time", r.LeadTime}, {"detection time", r.DetectionTime}} {
		b.WriteString("\n" + f.name + " n=" + jsonOf(f.d.N) + " median " + f.d.Median.String() + " mean " + f.d.Mean.String() + " min " + f.d.Min.String() + " max " + f.d.Max.String())
	}
	return b.String()
}

func jsonOf(v any) string { b, _ := json.Marshal(v); return string(b) }

func check(t *testing.T, name string, got, want Durations) {
	t.Helper()
	if got != want {
		t.Errorf("%s: got %+v, want %+v", name, got, want)
	}
}

func ints(xs []int) string {
	s := make([]string, len(xs))
	for i, x := range xs {
		s[i] = jsonOf(x)
	}
	return strings.Join(s, " ")
}

func equalCounts(a, b map[string]int) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if b[k] != v {
			return false
		}
	}
	return true
}

// at is a time on day 0 of a period starting at t0.
var t0 = time.Date(2024, 5, 6, 0, 0, 0, 0, time.UTC)

func at(h, m int) time.Time { return t0.Add(time.Duration(h)*time.Hour + time.Duration(m)*time.Minute) }

func deploy(id int64, name string, created time.Time, o history.Outcome, run time.Duration) history.Deployment {
	d := history.Deployment{ID: id, SHA: historyseed.SHA(name), Kind: history.KindDeploy, Created: created, Started: created, Outcome: o}
	if o != history.Running {
		d.Ended = created.Add(run)
	}
	return d
}

func TestComputeTable(t *testing.T) {
	day := Period{From: t0, To: t0.Add(24 * time.Hour)}
	tests := []struct {
		name  string
		h     []history.Deployment
		check func(t *testing.T, r Report)
	}{
		{
			name: "no history: nothing to compute, and it says so",
			check: func(t *testing.T, r Report) {
				if r.Changes.Total != 0 || r.ChangeFailureRate != nil || r.PerDay != 0 {
					t.Errorf("figures from nothing: %+v", r)
				}
				if len(r.Notes) != 1 || !strings.Contains(r.Notes[0], "nothing to compute") {
					t.Errorf("notes %q", r.Notes)
				}
			},
		},
		{
			name: "a regression not restored yet is open, with no time to restore",
			h: []history.Deployment{
				deploy(1, "a", at(9, 0), history.Healthy, 5*time.Minute),
				deploy(2, "b", at(10, 0), history.Failed, 3*time.Minute),
			},
			check: func(t *testing.T, r Report) {
				if r.OpenRegressions != 1 || r.TimeToRestore.N != 0 || r.DetectionTime.N != 1 || r.DetectionTime.Max != 3*time.Minute {
					t.Errorf("open %d, restore %+v, detection %+v", r.OpenRegressions, r.TimeToRestore, r.DetectionTime)
				}
				if r.ChangeFailureRate.Rate != 0.5 {
					t.Errorf("change failure rate %+v, want 1 of 2", r.ChangeFailureRate)
				}
				if !strings.Contains(strings.Join(r.Notes, "\n"), "1 regression(s) with no healthy deployment after them") {
					t.Errorf("notes %q", r.Notes)
				}
			},
		},
		{
			name: "the next healthy deploy restores, not an inconclusive one nor a canary",
			h: []history.Deployment{
				deploy(1, "b", at(10, 0), history.Failed, 3*time.Minute),
				deploy(2, "c", at(11, 0), history.Inconclusive, 5*time.Minute),
				{ID: 3, SHA: historyseed.SHA("d"), Kind: history.KindCanary, Created: at(11, 30), Started: at(11, 30), Ended: at(11, 40), Outcome: history.Healthy},
				deploy(4, "d", at(12, 0), history.Healthy, 5*time.Minute),
			},
			check: func(t *testing.T, r Report) {
				if r.TimeToRestore.N != 1 || r.TimeToRestore.Max != 2*time.Hour+5*time.Minute {
					t.Errorf("restore %+v, want 2h05m (10:00 to 12:05)", r.TimeToRestore)
				}
				if r.Changes.Total != 3 {
					t.Errorf("changes %+v: the canary that passed is its deploy", r.Changes)
				}
			},
		},
		{
			name: "bisection steps are neither changes nor restores",
			h: []history.Deployment{
				deploy(1, "e", at(10, 0), history.Failed, 5*time.Minute),
				{ID: 2, SHA: historyseed.SHA("c"), Kind: history.KindBisect, Created: at(10, 6), Started: at(10, 6), Ended: at(10, 11), Outcome: history.Healthy},
				{ID: 3, SHA: historyseed.SHA("d"), Kind: history.KindBisect, Created: at(10, 12), Started: at(10, 12), Ended: at(10, 15), Outcome: history.Failed},
				deploy(4, "c", at(10, 16), history.Healthy, 5*time.Minute),
			},
			check: func(t *testing.T, r Report) {
				if r.Changes.Total != 2 || r.Changes.Regressed != 1 || r.Changes.Healthy != 1 {
					t.Errorf("changes %+v: want the batch that regressed and the good part's deploy", r.Changes)
				}
				if r.TimeToRestore.N != 1 || r.TimeToRestore.Max != 21*time.Minute {
					t.Errorf("restore %+v, want 21m (10:00 to the good part's deploy seen healthy at 10:21)", r.TimeToRestore)
				}
			},
		},
		{
			name: "a redeploy of a commit already healthy is not a second lead time",
			h: []history.Deployment{
				withCommit(deploy(1, "a", at(9, 0), history.Healthy, 5*time.Minute), at(8, 0)),
				withCommit(deploy(2, "a", at(10, 0), history.Healthy, 5*time.Minute), at(8, 0)),
			},
			check: func(t *testing.T, r Report) {
				if r.LeadTime.N != 1 || r.LeadTime.Max != 65*time.Minute {
					t.Errorf("lead time %+v, want one of 1h05m", r.LeadTime)
				}
			},
		},
		{
			name: "no commit times: no lead time, and why",
			h:    []history.Deployment{deploy(1, "a", at(9, 0), history.Healthy, 5*time.Minute)},
			check: func(t *testing.T, r Report) {
				if r.LeadTime.N != 0 || !strings.Contains(strings.Join(r.Notes, "\n"), "the commit time of none of the 1 healthy deploy(s) is known") {
					t.Errorf("lead time %+v, notes %q", r.LeadTime, r.Notes)
				}
			},
		},
		{
			name: "a cut history covers only what was read",
			h:    []history.Deployment{deploy(1, "a", at(12, 0), history.Healthy, 5*time.Minute)},
			check: func(t *testing.T, r Report) {
				if !r.From.Equal(at(12, 0)) || r.Days != 0.5 {
					t.Errorf("from %s, %v days; want from 12:00, half a day", r.From, r.Days)
				}
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := history.Read{Environment: "production", Deployments: tt.h}
			if strings.HasPrefix(tt.name, "a cut history") {
				h.Limited = "read the newest 1 of immune's deployments and stopped there"
			}
			tt.check(t, Compute(h, day))
		})
	}
}

func withCommit(d history.Deployment, c time.Time) history.Deployment {
	d.Committed = c
	return d
}

func TestBucketsByWeek(t *testing.T) {
	r := Compute(history.Read{Deployments: []history.Deployment{deploy(1, "a", t0.Add(8*24*time.Hour), history.Healthy, time.Minute)}},
		Period{From: t0, To: t0.Add(60 * 24 * time.Hour)})
	if len(r.Buckets) != 9 || r.Buckets[1].Changes != 1 {
		t.Errorf("60 days in %d buckets (want 9 weeks), the deploy of day 8 in week %v", len(r.Buckets), r.Buckets)
	}
}
