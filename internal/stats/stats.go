// Package stats computes an environment's delivery record from its
// deployment history (package history): deployments per day, the change
// failure rate, the time to restore, the lead time from commit to healthy
// deploy and the detection time. It is pure: no I/O, no clock.
//
// It computes only what the records support, and says which records fed
// which figure. The definitions:
//   - A change is one of immune's deploys whose command ran, or a canary
//     that ran and did not go on to its full deploy (it regressed, was not
//     judged, or was cancelled at the canary). A canary that passed is
//     counted as the deploy that followed it, not twice. Rollbacks are not
//     changes: they restore.
//   - Deployments per day: changes in the period / the period's days.
//   - Change failure rate: changes that regressed / changes judged
//     (healthy, regressed or inconclusive). Cancelled and running changes
//     are counted apart and in neither.
//   - Time to restore: from a regressed deploy's start (its in_progress
//     status: the bad build began to go out) to the end (success status) of
//     the next deployment seen healthy, a rollback or a deploy. A canary
//     that regressed is left out: it never reached the whole environment.
//     A regression with no healthy deployment after it is open.
//   - Lead time: from a commit's time (the committer's date, from GitHub's
//     commit API) to the end of its first healthy deploy.
//   - Detection time: from a regressed deploy's or canary's start to its
//     regressed (failure) status.
package stats

import (
	"encoding/json"
	"fmt"
	"math"
	"sort"
	"time"

	"github.com/immune-cd/immune/internal/history"
)

// Period is the stretch of time the figures cover: [From, To).
type Period struct {
	From, To time.Time
}

// Days is the period's length in days.
func (p Period) Days() float64 { return p.To.Sub(p.From).Hours() / 24 }

// Report is the record of one environment over a period.
type Report struct {
	Environment string    `json:"environment"`
	From        time.Time `json:"from"`
	To          time.Time `json:"to"`
	Days        float64   `json:"days"`

	Changes Counts  `json:"changes"`
	PerDay  float64 `json:"deployments_per_day"`
	// Buckets count the changes per day (per week over more than
	// MaxDailyBuckets days), for the chart.
	Buckets []Bucket `json:"buckets"`

	// ChangeFailureRate is nil when no change was judged.
	ChangeFailureRate *Rate     `json:"change_failure_rate"`
	TimeToRestore     Durations `json:"time_to_restore"`
	// OpenRegressions are regressed deploys with no healthy deployment
	// after them in the records.
	OpenRegressions int       `json:"open_regressions"`
	LeadTime        Durations `json:"lead_time"`
	// NoCommitTime counts the first healthy deploys of a commit whose
	// commit time is not known (left out of the lead time).
	NoCommitTime  int       `json:"lead_time_unknown"`
	DetectionTime Durations `json:"detection_time"`

	// Records lists every one of immune's deployments read, with what it
	// fed; SkippedJobs and SkippedForeign count the environment's
	// deployments that are not immune's.
	Records        []Record `json:"records"`
	SkippedJobs    int      `json:"skipped_jobs"`
	SkippedForeign int      `json:"skipped_foreign"`
	// Notes say what could not be computed, and what limits the figures.
	Notes []string `json:"notes,omitempty"`
}

// Counts are the changes by how they ended.
type Counts struct {
	Total     int `json:"total"`
	Healthy   int `json:"healthy"`
	Regressed int `json:"regressed"`
	// Shadowed counts the regressed ones that a run in shadow mode let
	// be (it would have rolled them back).
	Shadowed     int `json:"regressed_in_shadow_mode"`
	Inconclusive int `json:"inconclusive"`
	Cancelled    int `json:"cancelled"`
	Running      int `json:"running"`
}

// Judged is how many changes were judged: healthy, regressed or
// inconclusive.
func (c Counts) Judged() int { return c.Healthy + c.Regressed + c.Inconclusive }

// Rate is a share of a count.
type Rate struct {
	Of    int     `json:"of"`
	Count int     `json:"count"`
	Rate  float64 `json:"rate"`
}

// Bucket is one day's (or week's) changes.
type Bucket struct {
	Start     time.Time `json:"start"`
	Changes   int       `json:"changes"`
	Regressed int       `json:"regressed"`
}

// Durations summarizes a set of durations.
type Durations struct {
	N                      int
	Median, Mean, Min, Max time.Duration
}

// MarshalJSON writes the durations in seconds.
func (d Durations) MarshalJSON() ([]byte, error) {
	type out struct {
		N      int      `json:"n"`
		Median *float64 `json:"median_seconds"`
		Mean   *float64 `json:"mean_seconds"`
		Min    *float64 `json:"min_seconds"`
		Max    *float64 `json:"max_seconds"`
	}
	o := out{N: d.N}
	if d.N > 0 {
		s := func(x time.Duration) *float64 { v := x.Seconds(); return &v }
		o.Median, o.Mean, o.Min, o.Max = s(d.Median), s(d.Mean), s(d.Min), s(d.Max)
	}
	return json.Marshal(o)
}

// summarize computes the summary of ds.
func summarize(ds []time.Duration) Durations {
	if len(ds) == 0 {
		return Durations{}
	}
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	var sum time.Duration
	for _, d := range s {
		sum += d
	}
	n := len(s)
	median := s[n/2]
	if n%2 == 0 {
		median = (s[n/2-1] + s[n/2]) / 2
	}
	return Durations{N: n, Median: median, Mean: sum / time.Duration(n), Min: s[0], Max: s[n-1]}
}

// Record is one of immune's deployments and what it fed.
type Record struct {
	ID      int64           `json:"id"`
	SHA     string          `json:"sha"`
	Kind    history.Kind    `json:"kind"`
	Outcome history.Outcome `json:"outcome"`
	Created time.Time       `json:"created"`
	// Used names the figures it fed; Why says why it fed none.
	Used []string `json:"used,omitempty"`
	Why  string   `json:"why,omitempty"`
}

// The figures a record can feed.
const (
	UsedChange    = "change"
	UsedFailure   = "change failure"
	UsedRestore   = "time to restore"
	UsedRestored  = "restored a regression"
	UsedLeadTime  = "lead time"
	UsedDetection = "detection time"
)

// MaxDailyBuckets is the longest period charted day by day; longer ones are
// charted by week.
const MaxDailyBuckets = 31

// Compute computes the record of h over p. Deployments outside p are not
// read as changes; a restore may come from any later deployment of h.
func Compute(h history.Read, p Period) Report {
	r := Report{Environment: h.Environment, From: p.From, To: p.To, SkippedJobs: h.Jobs, SkippedForeign: h.Foreign}
	ds := append([]history.Deployment(nil), h.Deployments...)
	sort.SliceStable(ds, func(i, j int) bool { return ds[i].Created.Before(ds[j].Created) })
	if h.Limited != "" && len(ds) > 0 && ds[0].Created.After(r.From) {
		// Nothing is known of the period before the oldest record read.
		r.From = ds[0].Created
		r.Notes = append(r.Notes, fmt.Sprintf("the history was cut short (%s): the figures cover %s onwards only", h.Limited, r.From.UTC().Format(time.RFC3339)))
	}
	r.Days = Period{r.From, r.To}.Days()
	for _, m := range h.Missing {
		r.Notes = append(r.Notes, "not read: "+m)
	}

	// The next deploy of each canary's commit after it: a canary that
	// passed went on to it.
	promoted := map[int]bool{}
	for i, d := range ds {
		if d.Kind != history.KindCanary || d.Outcome != history.Healthy {
			continue
		}
		for _, e := range ds[i+1:] {
			if e.Kind == history.KindDeploy && e.SHA == d.SHA {
				promoted[i] = true
				break
			}
		}
	}

	in := func(d history.Deployment) bool {
		t := d.LiveSince()
		return !t.Before(r.From) && t.Before(r.To)
	}
	var restore, lead, detect []time.Duration
	leadSeen := map[string]bool{}
	for i, d := range ds {
		rec := Record{ID: d.ID, SHA: d.SHA, Kind: d.Kind, Outcome: d.Outcome, Created: d.Created}
		switch {
		case !in(d):
			rec.Why = "outside the period"
		case d.Kind == history.KindRollback:
			rec.Why = "a rollback: not a change"
		case d.Kind == history.KindBisect:
			rec.Why = "a bisection step: a commit of a batch tried and removed, not a change"
		case !d.Ran():
			rec.Why = "its command never ran"
		case promoted[i]:
			rec.Why = "a canary that passed: counted as the deploy that followed it"
		default:
			rec.Used = append(rec.Used, UsedChange)
			r.Changes.Total++
			r.bucket(d.LiveSince(), d.Outcome == history.Failed)
			switch d.Outcome {
			case history.Healthy:
				r.Changes.Healthy++
			case history.Failed:
				r.Changes.Regressed++
				if d.Shadow {
					r.Changes.Shadowed++
				}
				rec.Used = append(rec.Used, UsedFailure)
			case history.Inconclusive:
				r.Changes.Inconclusive++
			case history.Errored:
				r.Changes.Cancelled++
			case history.Running:
				r.Changes.Running++
			}
		}
		if rec.Why == "" && d.Outcome == history.Failed {
			detect = append(detect, d.Ended.Sub(d.LiveSince()))
			rec.Used = append(rec.Used, UsedDetection)
			if d.Kind == history.KindDeploy {
				if j := nextHealthy(ds, i); j >= 0 {
					restore = append(restore, ds[j].Ended.Sub(d.LiveSince()))
					rec.Used = append(rec.Used, UsedRestore)
				} else {
					r.OpenRegressions++
				}
			}
		}
		if rec.Why == "" && d.Kind == history.KindDeploy && d.Outcome == history.Healthy && !leadSeen[d.SHA] {
			leadSeen[d.SHA] = true
			if d.Committed.IsZero() {
				r.NoCommitTime++
			} else {
				lead = append(lead, d.Ended.Sub(d.Committed))
				rec.Used = append(rec.Used, UsedLeadTime)
			}
		}
		r.Records = append(r.Records, rec)
	}
	// Which deployments restored a regression, for the record.
	for i, d := range ds {
		if d.Kind != history.KindDeploy || d.Outcome != history.Failed || !in(d) || !d.Ran() {
			continue
		}
		if j := nextHealthy(ds, i); j >= 0 && !contains(r.Records[j].Used, UsedRestored) {
			r.Records[j].Used = append(r.Records[j].Used, UsedRestored)
			if r.Records[j].Why != "" && r.Records[j].Why != "outside the period" {
				r.Records[j].Why = ""
			}
		}
	}

	if r.Days > 0 {
		r.PerDay = float64(r.Changes.Total) / r.Days
	}
	if n := r.Changes.Judged(); n > 0 {
		r.ChangeFailureRate = &Rate{Of: n, Count: r.Changes.Regressed, Rate: float64(r.Changes.Regressed) / float64(n)}
	}
	r.TimeToRestore, r.LeadTime, r.DetectionTime = summarize(restore), summarize(lead), summarize(detect)
	r.Notes = append(r.Notes, r.gaps()...)
	r.fillBuckets()
	return r
}

// nextHealthy is the index of the first deployment after ds[i] that is a
// rollback or a deploy seen healthy (not a canary nor a bisection step,
// which ran on part of the fleet, or for a while), or -1.
func nextHealthy(ds []history.Deployment, i int) int {
	for j := i + 1; j < len(ds); j++ {
		e := ds[j]
		if e.Kind != history.KindCanary && e.Kind != history.KindBisect && e.Outcome == history.Healthy && !e.Ended.IsZero() {
			return j
		}
	}
	return -1
}

// gaps says which figures the records cannot support.
func (r *Report) gaps() []string {
	var notes []string
	if r.Changes.Total == 0 {
		return []string{"no change of immune's in the period: nothing to compute"}
	}
	if r.ChangeFailureRate == nil {
		notes = append(notes, "change failure rate: no change in the period was judged")
	}
	switch {
	case r.Changes.Regressed == 0:
		notes = append(notes, "time to restore and detection time: no change regressed in the period")
	case r.TimeToRestore.N == 0 && r.OpenRegressions > 0:
		notes = append(notes, fmt.Sprintf("time to restore: %d regression(s) with no healthy deployment after them yet", r.OpenRegressions))
	}
	if r.LeadTime.N == 0 {
		switch {
		case r.NoCommitTime > 0:
			notes = append(notes, fmt.Sprintf("lead time: the commit time of none of the %d healthy deploy(s) is known", r.NoCommitTime))
		default:
			notes = append(notes, "lead time: no deploy was seen healthy in the period")
		}
	} else if r.NoCommitTime > 0 {
		notes = append(notes, fmt.Sprintf("lead time: %d healthy deploy(s) left out, their commit time unknown", r.NoCommitTime))
	}
	return notes
}

// bucketSize is a day, or a week for a long period.
func (r *Report) bucketSize() time.Duration {
	if r.Days > MaxDailyBuckets {
		return 7 * 24 * time.Hour
	}
	return 24 * time.Hour
}

// firstBucket is the start of the period's first bucket: its first UTC day.
func (r *Report) firstBucket() time.Time {
	f := r.From.UTC()
	return time.Date(f.Year(), f.Month(), f.Day(), 0, 0, 0, 0, time.UTC)
}

func (r *Report) bucket(t time.Time, regressed bool) {
	if r.Buckets == nil {
		r.fillBuckets()
	}
	i := int(t.Sub(r.firstBucket()) / r.bucketSize())
	if i < 0 || i >= len(r.Buckets) {
		return
	}
	r.Buckets[i].Changes++
	if regressed {
		r.Buckets[i].Regressed++
	}
}

// fillBuckets lays out the empty buckets of the period.
func (r *Report) fillBuckets() {
	if r.Buckets != nil || !r.To.After(r.From) {
		return
	}
	size := r.bucketSize()
	n := int(math.Ceil(float64(r.To.Sub(r.firstBucket())) / float64(size)))
	r.Buckets = make([]Bucket, n)
	for i := range r.Buckets {
		r.Buckets[i].Start = r.firstBucket().Add(time.Duration(i) * size)
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
