// Package historyseed builds deployment histories for tests: a fixed
// history of 50 of immune's deployments whose figures the stats tests
// compute by hand, and the writing of any history into the fake GitHub as
// immune records it (its payload, its statuses at their times), with the
// deployments GitHub Actions makes for jobs beside them.
//
// Production code must not import it.
package historyseed

import (
	"crypto/sha1"
	"encoding/hex"
	"fmt"
	"math"
	"math/rand/v2"
	"time"

	"github.com/immune-cd/immune/internal/history"
	"github.com/immune-cd/immune/internal/recorder"
	"github.com/immune-cd/immune/internal/testkit/githubfake"
	"github.com/immune-cd/immune/internal/testkit/promtest"
)

// SHA is a stable, fake commit id for a name.
func SHA(name string) string {
	h := sha1.Sum([]byte(name))
	return hex.EncodeToString(h[:])
}

// FiftyStart is a start for Fifty's period, a day at midnight UTC.
var FiftyStart = time.Date(2024, 3, 1, 0, 0, 0, 0, time.UTC)

// Deploy returns the time of deploy slot i of Fifty from start: four a
// day, 9, 11, 13 and 15 hours into each day.
func Deploy(start time.Time, i int) time.Time {
	return start.Add(time.Duration(i/4)*24*time.Hour + 9*time.Hour + time.Duration(i%4)*2*time.Hour)
}

// The deploy slots of Fifty that did not end healthy.
var (
	// FiftyRegressed maps each regressed deploy to its detection time
	// (start to failure status); every one but the last was rolled back.
	FiftyRegressed     = map[int]time.Duration{5: time.Minute, 13: 2 * time.Minute, 22: 3 * time.Minute, 30: 4 * time.Minute, 37: 10 * time.Minute}
	FiftyNotRolledBack = 37
	FiftyInconclusive  = []int{9, 26}
	FiftyCancelled     = 17
	FiftyNotDeployed   = 33
	FiftyRunning       = 39
	// FiftyNoCommitTime are healthy deploys whose commit time is unknown.
	FiftyNoCommitTime = []int{2, 3}
	// FiftyCanaried are deploys that a canary of the same commit, which
	// passed, preceded.
	FiftyCanaried = []int{20, 28}
)

// Fifty is a history of 50 of immune's deployments over the ten days from
// start, oldest first:
//   - 40 deploys, four a day (Deploy(start, i), i = 0..39), each started a minute
//     after it was made; a healthy one ends 5 minutes after its start, its
//     commit made 30+i minutes before it was (lead time 36+i minutes),
//     save FiftyNoCommitTime, whose commit time is unknown;
//   - FiftyRegressed regressed, each after its detection time; all but
//     FiftyNotRolledBack rolled back by a rollback made at the failure,
//     healthy a minute later (4 rollbacks);
//   - FiftyInconclusive inconclusive, FiftyCancelled cancelled 2 minutes
//     in, FiftyNotDeployed never deployed (it gave up waiting),
//     FiftyRunning still running;
//   - 3 canaries: before FiftyCanaried, one each that passed (made 10
//     minutes before the deploy, healthy 2 minutes before it), and one of
//     its own commit that regressed on day 4 at 10:00 (started a minute
//     after, failed 5 minutes later);
//   - a manual rollback on day 7 at 8:00, healthy a minute later;
//   - 2 deploys the day before the period, healthy.
//
// IDs grow with creation.
func Fifty(start time.Time) []history.Deployment {
	var ds []history.Deployment
	add := func(d history.Deployment) {
		d.ID = int64(1_000_001 + len(ds))
		ds = append(ds, d)
	}
	for k := 0; k < 2; k++ {
		at := start.Add(-24*time.Hour + time.Duration(10+k)*time.Hour)
		add(history.Deployment{SHA: SHA(fmt.Sprintf("before-%d", k)), Kind: history.KindDeploy, Created: at,
			Started: at.Add(time.Minute), Ended: at.Add(6 * time.Minute), Outcome: history.Healthy, Description: "healthy: 0 of 60 probes failed",
			Committed: at.Add(-time.Hour)})
	}
	in := func(i int, set []int) bool {
		for _, x := range set {
			if x == i {
				return true
			}
		}
		return false
	}
	for i := 0; i < 40; i++ {
		at := Deploy(start, i)
		commit := SHA(fmt.Sprintf("commit-%d", i))
		if i == 28 {
			m := start.Add(7*24*time.Hour + 8*time.Hour)
			add(history.Deployment{SHA: SHA("commit-24"), Kind: history.KindRollback, Manual: true, RolledBackFrom: SHA("commit-27"),
				Created: m, Started: m, Ended: m.Add(time.Minute), Outcome: history.Healthy, Description: "manual rollback: 0 of 12 probes failed"})
		}
		if in(i, FiftyCanaried) {
			add(history.Deployment{SHA: commit, Kind: history.KindCanary, Created: at.Add(-10 * time.Minute),
				Started: at.Add(-9 * time.Minute), Ended: at.Add(-2 * time.Minute), Outcome: history.Healthy, Description: "canary healthy against the control"})
		}
		if i == 17 {
			c := start.Add(4*24*time.Hour + 10*time.Hour)
			add(history.Deployment{SHA: SHA("canary-bad"), Kind: history.KindCanary, Created: c, Started: c.Add(time.Minute),
				Ended: c.Add(6 * time.Minute), Outcome: history.Failed, Description: "regressed: 9 of 20 probes failed"})
		}
		d := history.Deployment{SHA: commit, Kind: history.KindDeploy, PreviousSHA: SHA(fmt.Sprintf("commit-%d", i-1)),
			Created: at, Started: at.Add(time.Minute), Committed: at.Add(-time.Duration(30+i) * time.Minute)}
		if in(i, FiftyNoCommitTime) {
			d.Committed = time.Time{}
		}
		detect, regressed := FiftyRegressed[i]
		switch {
		case regressed:
			d.Outcome, d.Ended, d.Description = history.Failed, d.Started.Add(detect), "regressed: 12 of 40 probes failed"
		case in(i, FiftyInconclusive):
			d.Outcome, d.Ended, d.Description = history.Inconclusive, d.Started.Add(5*time.Minute), recorder.Inconclusive+"metric http-errors counted 3 requests over the watch"
		case i == FiftyCancelled:
			d.Outcome, d.Ended, d.Description = history.Errored, d.Started.Add(2*time.Minute), "cancelled during the watch"
		case i == FiftyNotDeployed:
			d.Started = time.Time{}
			d.Outcome, d.Ended, d.Description = history.NotDeployed, at.Add(15*time.Minute), recorder.NotDeployed+"another run held the environment past lock-timeout"
		case i == FiftyRunning:
			d.Outcome = history.Running
		default:
			d.Outcome, d.Ended, d.Description = history.Healthy, d.Started.Add(5*time.Minute), "healthy: 0 of 60 probes failed"
		}
		if d.Outcome != history.Healthy {
			d.Committed = time.Time{} // only healthy deploys' commits are read
		}
		add(d)
		if regressed && i != FiftyNotRolledBack {
			add(history.Deployment{SHA: SHA(fmt.Sprintf("commit-%d", i-1)), Kind: history.KindRollback, RolledBackFrom: commit,
				Created: d.Ended, Started: d.Ended, Ended: d.Ended.Add(time.Minute), Outcome: history.Healthy, Description: "rolled back from " + commit[:7]})
		}
	}
	return ds
}

// Write records ds in the fake GitHub, in environment, as immune records
// them: the task and payload of their kind, and the statuses their
// outcome implies at their times (queued at creation; in_progress at
// start; the final status at the end). With jobs, each deploy is preceded
// by the deployment GitHub Actions makes for the job that ran it (ref
// "main", an empty payload), which ends in success. Commit times become
// the commits' dates.
func Write(f *githubfake.Server, environment string, ds []history.Deployment, jobs bool) {
	for _, d := range ds {
		if !d.Committed.IsZero() {
			f.AddAuthoredCommit(githubfake.Commit{SHA: d.SHA, Date: d.Committed})
		}
		if jobs && d.Kind != history.KindRollback {
			j := f.AddDeployment(githubfake.Deployment{SHA: d.SHA, Ref: "main", Environment: environment, CreatedAt: d.Created.Add(-time.Minute), Job: true})
			f.AddDeploymentStatus(j.ID, githubfake.DeploymentStatus{State: "in_progress", CreatedAt: d.Created.Add(-time.Minute)})
			end := d.Ended
			if end.IsZero() {
				end = d.Created
			}
			f.AddDeploymentStatus(j.ID, githubfake.DeploymentStatus{State: "success", CreatedAt: end})
		}
		task := recorder.TaskDeploy
		p := recorder.Payload{Tool: recorder.Tool, Version: "v1.0.0", Actor: "octocat", RunURL: fmt.Sprintf("https://github.com/octo-org/shop/actions/runs/%d", d.ID)}
		switch d.Kind {
		case history.KindRollback:
			task = recorder.TaskRollback
			p.RolledBackFrom, p.Manual = d.RolledBackFrom, d.Manual
		case history.KindCanary:
			task = recorder.TaskCanary
		default:
			p.PreviousSHA = d.PreviousSHA
		}
		g := f.AddDeployment(githubfake.Deployment{SHA: d.SHA, Ref: d.SHA, Task: string(task), Environment: environment,
			Description: fmt.Sprintf("immune %s of %s", task, d.SHA[:7]), Payload: p.Map(), CreatedAt: d.Created})
		f.AddDeploymentStatus(g.ID, githubfake.DeploymentStatus{State: "queued", CreatedAt: d.Created})
		if !d.Started.IsZero() {
			f.AddDeploymentStatus(g.ID, githubfake.DeploymentStatus{State: "in_progress", CreatedAt: d.Started})
		}
		if state := finalState(d.Outcome); state != "" {
			f.AddDeploymentStatus(g.ID, githubfake.DeploymentStatus{State: state, Description: d.Description, CreatedAt: d.Ended})
		}
	}
}

func finalState(o history.Outcome) string {
	switch o {
	case history.Healthy:
		return "success"
	case history.Failed:
		return "failure"
	case history.Inconclusive, history.Errored, history.NotDeployed:
		return "error"
	}
	return ""
}

// Week is a week of history ending at now: five of immune's deploys
// recorded healthy (each started at its time, its build serving 30s later,
// watched 5 minutes), and the metrics Prometheus would hold of them, for
// promtest.Backfilled: every build serves 20 requests a second, counted in
// http_requests_total{code,version} (a scrape every 15s within an hour of a
// deploy, every 5 minutes elsewhere), with
// http_p99_seconds{version} beside it. Every build fails 0.5% of its
// requests with a p99 about 0.18s, save the third (Bad), which fails 8%
// with a p99 of 0.9s for the 10 minutes it served (BadFrom to BadUntil),
// until the fourth replaced it.
type Week struct {
	Deployments []history.Deployment
	OpenMetrics string
	// Bad is the index of the bad deploy; BadFrom and BadUntil when it
	// served.
	Bad               int
	BadFrom, BadUntil time.Time
	// Live is how long after a deploy's start its build served.
	Live time.Duration
}

// near reports whether t is within d of one of ts.
func near(t time.Time, ts []time.Time, d time.Duration) bool {
	for _, x := range ts {
		if t.Sub(x) < d && x.Sub(t) < d {
			return true
		}
	}
	return false
}

// NewWeek builds the week ending at now (truncated to the minute).
func NewWeek(now time.Time) Week {
	now = now.UTC().Truncate(time.Minute)
	day := 24 * time.Hour
	starts := []time.Time{
		now.Add(-6*day + 3*time.Hour),
		now.Add(-4*day + 5*time.Hour),
		now.Add(-2*day + 4*time.Hour),
		now.Add(-2*day + 4*time.Hour + 10*time.Minute),
		now.Add(-day + 2*time.Hour),
	}
	w := Week{Bad: 2, Live: 30 * time.Second}
	prev := SHA("week-0")
	for i, s := range starts {
		commit := SHA(fmt.Sprintf("week-%d", i+1))
		w.Deployments = append(w.Deployments, history.Deployment{
			ID: int64(2_000_001 + i), SHA: commit, Kind: history.KindDeploy, PreviousSHA: prev,
			Created: s.Add(-20 * time.Second), Started: s, Ended: s.Add(w.Live + 5*time.Minute),
			Outcome: history.Healthy, Description: "healthy: 0 of 60 probes failed, p95 12ms",
			Committed: s.Add(-time.Hour),
		})
		prev = commit
	}
	w.BadFrom, w.BadUntil = starts[w.Bad].Add(w.Live), starts[w.Bad+1].Add(w.Live)

	// Each build serves from its deploy's start + Live to the next one's.
	var om promtest.OpenMetrics
	rnd := rand.New(rand.NewPCG(23, 7))
	from := now.Add(-7 * day)
	builds := append([]string{SHA("week-0")}, shas(w.Deployments)...)
	bounds := append([]time.Time{from}, liveTimes(starts, w.Live)...)
	bounds = append(bounds, now)
	const scrape, perScrape = 15 * time.Second, 300
	for b, version := range builds {
		share, p99 := 0.005, 0.18
		if b == w.Bad+1 {
			share, p99 = 0.08, 0.9
		}
		var ok, failed float64
		labels := fmt.Sprintf(`version="%s"`, version)
		for at := bounds[b]; at.Before(bounds[b+1]); at = at.Add(scrape) {
			errs := 0
			for range perScrape {
				if rnd.Float64() < share {
					errs++
				}
			}
			ok += float64(perScrape - errs)
			failed += float64(errs)
			if !near(at, starts, time.Hour) && at.Sub(from)%(5*time.Minute) != 0 {
				// Far from any deploy, the history keeps a sample every 5
				// minutes: what the backtest reads is as scraped, and
				// promtool, which reads the file once per 2-hour block,
				// has a tenth of the week to read.
				continue
			}
			om.Add("http_requests", "counter", `code="200",`+labels, ok, at)
			om.Add("http_requests", "counter", `code="500",`+labels, failed, at)
			om.Add("http_p99_seconds", "gauge", labels, math.Round((p99+0.04*rnd.Float64())*1000)/1000, at)
		}
	}
	w.OpenMetrics = om.String()
	return w
}

func shas(ds []history.Deployment) []string {
	out := make([]string, len(ds))
	for i, d := range ds {
		out[i] = d.SHA
	}
	return out
}

func liveTimes(starts []time.Time, live time.Duration) []time.Time {
	out := make([]time.Time, len(starts))
	for i, s := range starts {
		out[i] = s.Add(live)
	}
	return out
}
