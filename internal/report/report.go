// Package report renders a finished run and writes it (Publish): the step
// outputs, the job summary (markdown with a chart), the plain-text report
// for terminals, and the JSON report with every probe. It decides nothing.
package report

import (
	"encoding/json"
	"fmt"
	"math"
	"strconv"
	"time"

	"github.com/immune-cd/immune/internal/health"
	"github.com/immune-cd/immune/internal/latency"
	"github.com/immune-cd/immune/internal/run"
	"github.com/immune-cd/immune/internal/verdict"
)

// Run is everything a run did and found.
type Run struct {
	Mode string `json:"mode"`
	// Phases are the phases the run went through, in order.
	Phases []run.Phase `json:"phases,omitempty"`
	// StoppedIn is the phase a cancelled run stopped in.
	StoppedIn   run.Phase `json:"stopped_in,omitempty"`
	Environment string    `json:"environment"`
	// Stage is how far a deploy went (deploy mode only).
	Stage          run.Stage   `json:"stage,omitempty"`
	SHA            string      `json:"sha"`
	PreviousSHA    string      `json:"previous_sha,omitempty"`
	PreviousSource string      `json:"previous_source,omitempty"`
	Verdict        run.Verdict `json:"verdict"`
	Reason         string      `json:"reason"`
	RolledBack     bool        `json:"rolled_back"`
	Start          time.Time   `json:"start"`
	End            time.Time   `json:"end"`

	// Canary is the canary stage, when the deploy had one.
	Canary        *Canary `json:"canary,omitempty"`
	Deploy        *Step   `json:"deploy,omitempty"`
	Baseline      *Watch  `json:"baseline,omitempty"`
	Watch         *Watch  `json:"watch,omitempty"`
	Rollback      *Step   `json:"rollback,omitempty"`
	RollbackWatch *Watch  `json:"rollback_watch,omitempty"`
	// Bisect is the bisection of the batch that regressed, when there was
	// one.
	Bisect *Bisection `json:"bisect,omitempty"`
	// Culprit is the commit that broke production, when known (the
	// culprit-sha output); Shipped the commit this run shipped to the whole
	// fleet and watched healthy (shipped-sha).
	Culprit string `json:"culprit_sha,omitempty"`
	Shipped string `json:"shipped_sha,omitempty"`

	// Notes explain choices the run made (e.g. why nothing was rolled back).
	Notes []string `json:"notes,omitempty"`
	// Warnings are problems that did not change the verdict.
	Warnings []string `json:"warnings,omitempty"`
	Links    Links    `json:"links"`

	DeploymentID int64 `json:"deployment_id,omitempty"`
	// Gate holds the gate's findings in gate mode.
	Gate *Gate `json:"gate,omitempty"`

	// Shadow: the run was in shadow mode; WouldHave is what it would have
	// done, had it not been (nil when it would have done nothing).
	Shadow    bool       `json:"shadow,omitempty"`
	WouldHave *WouldHave `json:"would_have,omitempty"`
}

// WouldHave is what a run in shadow mode would have done.
type WouldHave struct {
	// Action is "roll back" or "remove the canary"; Target the commit it
	// would have rolled back to.
	Action string `json:"action"`
	Target string `json:"target,omitempty"`
	// After is when, from the start of the watch that found it (the
	// canary's, for a canary).
	After  time.Duration `json:"-"`
	Reason string        `json:"reason"`
	// AfterSeconds is After for scripts.
	AfterSeconds float64 `json:"after_seconds"`
}

// Text says what a shadow run would have done: "would have rolled back at
// +45.0s: on metric ...".
func (w *WouldHave) Text() string {
	did := "rolled back"
	if w.Action == ActionRemoveCanary {
		did = "removed the canary"
	}
	return fmt.Sprintf("would have %s at +%s: %s", did, FormatDuration(w.After), w.Reason)
}

// The actions a shadow run would have taken.
const (
	ActionRollBack     = "roll back"
	ActionRemoveCanary = "remove the canary"
)

// Links point at the run's records in GitHub.
type Links struct {
	Run                string `json:"run,omitempty"`
	Commit             string `json:"commit,omitempty"`
	PreviousCommit     string `json:"previous_commit,omitempty"`
	Deployment         string `json:"deployment,omitempty"`
	RollbackDeployment string `json:"rollback_deployment,omitempty"`
}

// Step is one deploy, rollback, canary or canary removal: a run of a
// command, a dispatched run of the deploy workflow, or a call of the deploy
// hook.
type Step struct {
	SHA   string    `json:"sha"`
	Start time.Time `json:"start"`
	End   time.Time `json:"end"`
	Error string    `json:"error,omitempty"`
	// NotStarted: the deployer was refused before anything began (GitHub
	// refused the dispatch, the hook refused the call), so production is
	// as it was.
	NotStarted bool `json:"not_started,omitempty"`
	// By is the deployer; "" is a command.
	By run.Deployer `json:"by,omitempty"`
	// RunURL is the dispatched workflow run's page (By workflow).
	RunURL string `json:"run_url,omitempty"`
}

// outcome is how a failed step reads in the summary's table: "failed: …",
// or "not started: …" when the deployer refused it.
func (s *Step) outcome() string {
	if s.NotStarted {
		return "not started: " + md(s.Error, maxError)
	}
	return "failed: " + md(s.Error, maxError)
}

// what names the step's kind in the summary: "command", "workflow run" or
// "hook".
func (s *Step) what() string {
	switch s.By {
	case run.ByWorkflow:
		return "workflow run"
	case run.ByHook:
		return "hook"
	}
	return "command"
}

// Watch is one watch of a build.
type Watch struct {
	SHA     string        `json:"sha"`
	Start   time.Time     `json:"start"`
	End     time.Time     `json:"end"`
	Planned time.Duration `json:"-"`
	// Probes are the probes kept in full: every probe, or when Aggregates
	// is set (a watch with more probes than a ProbeLog keeps), the failed
	// ones.
	Probes     []health.Probe `json:"-"`
	Aggregates *Aggregates    `json:"-"`
	Verdict    run.Verdict    `json:"verdict"` // healthy or regressed
	Rule       string         `json:"rule,omitempty"`
	Reason     string         `json:"reason"`
	// Why says in a few words why the watch regressed or was not judged,
	// for GitHub's 140-character descriptions.
	Why      string `json:"-"`
	Detected bool   `json:"-"` // the watch ended early on a regression
	Stats    Stats  `json:"stats"`
	// Evidence is the verdict engine's numbers behind Verdict, when it
	// judged (not for a startup timeout or a cancelled watch).
	Evidence *verdict.Evidence `json:"-"`
	// LiveAfter is, per URL, when the build first answered healthy.
	LiveAfter map[string]time.Duration `json:"-"`
	// Metric names the metric whose rule decided Verdict ("" for the
	// health probes).
	Metric string `json:"metric,omitempty"`
	// Metrics are what the watch saw of each metric.
	Metrics []MetricWatch `json:"metrics,omitempty"`
}

// DetectedAfter is the time from the start of the watch to the regression
// verdict, or 0 when the watch ran to its end.
func (w *Watch) DetectedAfter() time.Duration {
	if w == nil || !w.Detected {
		return 0
	}
	return w.End.Sub(w.Start)
}

// Stats summarises the judged probes of a watch.
type Stats struct {
	Probes    int           `json:"probes"`
	Failed    int           `json:"failed"`
	Slow      int           `json:"slow,omitempty"`
	P50       time.Duration `json:"-"`
	P95       time.Duration `json:"-"`
	ErrorRate float64       `json:"error_rate"`
	// Percentile is latency-percentile and AtPercentile the latency there,
	// what the latency rule judges (P95 is always the 95th, for the output
	// of that name).
	Percentile   float64       `json:"-"`
	AtPercentile time.Duration `json:"-"`
}

// Gate is what the pull-request gate found.
type Gate struct {
	PullRequest int    `json:"pull_request,omitempty"`
	BadSHA      string `json:"bad_sha,omitempty"`
	StoppedAt   string `json:"stopped_at,omitempty"`
	StoppedBy   string `json:"stopped_by,omitempty"`
	RunURL      string `json:"run_url,omitempty"`
	IssueURL    string `json:"issue_url,omitempty"` // the tracking issue of the stopped line
	Allowed     string `json:"allowed,omitempty"`   // why a stopped line let this PR through
}

// StatsOf computes Stats over the live probes.
func StatsOf(probes []health.Probe) Stats {
	l := NewProbeLog(time.Time{}, len(probes)+1, 95)
	for _, p := range probes {
		l.Add(p)
	}
	return l.Stats()
}

// Quantile returns the q-quantile of ds (nearest rank), 0 for none.
func Quantile(ds []time.Duration, q float64) time.Duration { return latency.Quantile(ds, q) }

// Output is one step output.
type Output struct{ Name, Value string }

// Outputs returns the step outputs of a run, in action.yml's order.
func Outputs(r *Run, reportPath string) []Output {
	var s Stats
	w := judged(r)
	if w != nil {
		s = w.Stats
	}
	detected := ""
	if d := w.DetectedAfter(); d > 0 {
		detected = strconv.FormatFloat(d.Seconds(), 'f', 2, 64)
	}
	deployment := ""
	if r.DeploymentID != 0 {
		deployment = strconv.FormatInt(r.DeploymentID, 10)
	}
	return []Output{
		{"verdict", string(r.Verdict)},
		{"stage", string(r.Stage)},
		{"sha", r.SHA},
		{"previous-sha", r.PreviousSHA},
		{"rolled-back", strconv.FormatBool(r.RolledBack)},
		{"error-rate", strconv.FormatFloat(s.ErrorRate, 'f', 4, 64)},
		{"latency-p95-ms", strconv.FormatInt(s.P95.Milliseconds(), 10)},
		{"probes", strconv.Itoa(s.Probes)},
		{"detected-after", detected},
		{"report", reportPath},
		{"deployment-id", deployment},
		{"shadow", strconv.FormatBool(r.Shadow)},
		{"culprit-sha", r.Culprit},
		{"shipped-sha", r.Shipped},
	}
}

// JSON renders the report file: the run, and every probe of each watch
// or, past a ProbeLog's cap, every failed probe with aggregates per URL and
// per minute ("aggregated": true).
func JSON(r *Run) ([]byte, error) {
	type probe struct {
		Time      time.Time `json:"time"`
		Round     int       `json:"round"`
		URL       string    `json:"url"`
		Phase     string    `json:"phase"`
		Status    int       `json:"status,omitempty"`
		LatencyMS float64   `json:"latency_ms"`
		Version   string    `json:"version,omitempty"`
		Failed    bool      `json:"failed"`
		Error     string    `json:"error,omitempty"`
	}
	type urlAggregate struct {
		URL          string  `json:"url"`
		Probes       int     `json:"probes"`
		Startup      int     `json:"startup_probes"`
		Failed       int     `json:"failed"`
		P50MS        float64 `json:"latency_p50_ms"`
		P95MS        float64 `json:"latency_p95_ms"`
		PercentileMS float64 `json:"latency_percentile_ms"`
		SlowestMS    float64 `json:"slowest_ms"`
	}
	type minuteAggregate struct {
		Minute    int     `json:"minute"`
		Probes    int     `json:"probes"`
		Startup   int     `json:"startup_probes"`
		Failed    int     `json:"failed"`
		P50MS     float64 `json:"latency_p50_ms"`
		P95MS     float64 `json:"latency_p95_ms"`
		SlowestMS float64 `json:"slowest_ms"`
	}
	type aggregates struct {
		Kept    string            `json:"probes_kept"`
		URLs    []urlAggregate    `json:"per_url"`
		Minutes []minuteAggregate `json:"per_minute"`
	}
	type control struct {
		Judged    int64    `json:"judged"`
		Bad       int64    `json:"bad"`
		ErrorRate float64  `json:"error_rate"`
		LatencyMS *float64 `json:"latency_ms,omitempty"`
		Margin    float64  `json:"margin"`
		Ratio     float64  `json:"likelihood_ratio"`
		Bound     float64  `json:"bound"`
	}
	type evidence struct {
		Judged           int64    `json:"judged"`
		Bad              int64    `json:"bad"`
		Limit            int64    `json:"limit,omitempty"`
		Final            bool     `json:"final_look,omitempty"`
		ErrorRate        float64  `json:"error_rate"`
		AllowedErrorRate float64  `json:"allowed_error_rate"`
		Percentile       float64  `json:"latency_percentile,omitempty"`
		LatencyMS        *float64 `json:"latency_ms,omitempty"`
		MaxLatencyMS     *float64 `json:"max_latency_ms,omitempty"`
		Confidence       float64  `json:"confidence"`
		BaselineRate     *float64 `json:"baseline_error_rate,omitempty"`
		BaselineMS       *float64 `json:"baseline_latency_ms,omitempty"`
		Control          *control `json:"control,omitempty"`
	}
	type watch struct {
		*Watch
		PlannedSeconds float64            `json:"planned_seconds"`
		DetectedAfter  *float64           `json:"detected_after_seconds,omitempty"`
		P50MS          float64            `json:"latency_p50_ms"`
		P95MS          float64            `json:"latency_p95_ms"`
		LiveAfter      map[string]float64 `json:"live_after_seconds,omitempty"`
		Evidence       *evidence          `json:"evidence,omitempty"`
		Total          int                `json:"probes_total"`
		Aggregated     bool               `json:"aggregated"`
		Aggregates     *aggregates        `json:"aggregates,omitempty"`
		Probes         []probe            `json:"probes"`
	}
	msPtr := func(d time.Duration) *float64 { v := ms(d); return &v }
	conv := func(w *Watch) *watch {
		if w == nil {
			return nil
		}
		out := &watch{Watch: w, PlannedSeconds: w.Planned.Seconds(), P50MS: ms(w.Stats.P50), P95MS: ms(w.Stats.P95), Probes: []probe{}, Total: len(w.Probes)}
		if d := w.DetectedAfter(); d > 0 {
			s := d.Seconds()
			out.DetectedAfter = &s
		}
		if len(w.LiveAfter) > 0 {
			out.LiveAfter = map[string]float64{}
			for u, d := range w.LiveAfter {
				out.LiveAfter[u] = d.Seconds()
			}
		}
		if e := w.Evidence; e != nil {
			ev := &evidence{Judged: e.Judged, Bad: e.Bad, Limit: e.Limit, Final: e.Final, ErrorRate: e.ErrorRate,
				AllowedErrorRate: e.AllowedErrorRate, Confidence: e.Confidence}
			if e.Percentile > 0 && (e.Latency > 0 || e.MaxLatency > 0) {
				ev.Percentile, ev.LatencyMS = e.Percentile, msPtr(e.Latency)
				if e.MaxLatency > 0 {
					ev.MaxLatencyMS = msPtr(e.MaxLatency)
				}
			}
			if e.Baseline {
				rate := e.BaselineErrorRate
				ev.BaselineRate, ev.BaselineMS = &rate, msPtr(e.BaselineLatency)
			}
			if c := e.Canary; c != nil {
				ev.Control = &control{c.ControlJudged, c.ControlBad, c.ControlErrorRate, nil, c.Margin, math.Round(c.Ratio*100) / 100, c.Bound}
				if c.ControlLatency > 0 {
					ev.Control.LatencyMS = msPtr(c.ControlLatency)
				}
			}
			out.Evidence = ev
		}
		if a := w.Aggregates; a != nil {
			out.Total, out.Aggregated = a.Probes, true
			out.Aggregates = &aggregates{Kept: fmt.Sprintf("the %d failed probes of %d; the rest are in the aggregates", a.Kept, a.Probes)}
			for _, u := range a.URLs {
				out.Aggregates.URLs = append(out.Aggregates.URLs, urlAggregate{u.URL, u.Probes, u.Startup, u.Failed, ms(u.P50), ms(u.P95), ms(u.Percentile), ms(u.Slowest)})
			}
			for _, m := range a.Minutes {
				out.Aggregates.Minutes = append(out.Aggregates.Minutes, minuteAggregate{m.Minute, m.Probes, m.Startup, m.Failed, ms(m.P50), ms(m.P95), ms(m.Slowest)})
			}
		}
		for _, p := range w.Probes {
			out.Probes = append(out.Probes, probe{p.Time, p.Round, p.URL, p.Phase, p.Status, ms(p.Latency), p.Version, p.Failed, p.Error})
		}
		return out
	}
	type canary struct {
		*Canary
		Watch   *watch `json:"watch,omitempty"`
		Control *watch `json:"control,omitempty"`
	}
	var c *canary
	if r.Canary != nil {
		c = &canary{r.Canary, conv(r.Canary.Watch), conv(r.Canary.Control)}
	}
	type step struct {
		BisectStep
		Watch   *watch `json:"watch,omitempty"`
		Control *watch `json:"control,omitempty"`
	}
	type pass struct {
		*Pass
		Watch         *watch `json:"watch,omitempty"`
		RollbackWatch *watch `json:"rollback_watch,omitempty"`
	}
	type bisection struct {
		*Bisection
		Steps []step `json:"steps"`
		Ship  *pass  `json:"ship,omitempty"`
	}
	var bs *bisection
	if r.Bisect != nil {
		bs = &bisection{Bisection: r.Bisect, Steps: []step{}}
		for _, s := range r.Bisect.Steps {
			bs.Steps = append(bs.Steps, step{s, conv(s.Watch), conv(s.Control)})
		}
		if p := r.Bisect.Ship; p != nil {
			bs.Ship = &pass{p, conv(p.Watch), conv(p.RollbackWatch)}
		}
	}
	doc := struct {
		Tool string `json:"tool"`
		*Run
		Canary        *canary    `json:"canary,omitempty"`
		Baseline      *watch     `json:"baseline,omitempty"`
		Watch         *watch     `json:"watch,omitempty"`
		RollbackWatch *watch     `json:"rollback_watch,omitempty"`
		Bisect        *bisection `json:"bisect,omitempty"`
	}{"immune", r, c, conv(r.Baseline), conv(r.Watch), conv(r.RollbackWatch), bs}
	return json.MarshalIndent(doc, "", "  ")
}

func ms(d time.Duration) float64 { return math.Round(float64(d)/1e4) / 100 }

// FormatDuration prints a duration for people: 840ms, 4.2s, 2m05s, 2h05m,
// 3d04h.
func FormatDuration(d time.Duration) string {
	switch {
	case d < 10*time.Millisecond:
		return strconv.FormatFloat(float64(d)/1e6, 'f', 1, 64) + "ms"
	case d < time.Second:
		return fmt.Sprintf("%dms", d.Milliseconds())
	case d < time.Minute:
		return strconv.FormatFloat(d.Seconds(), 'f', 1, 64) + "s"
	case d < time.Hour:
		d = d.Round(time.Second)
		return fmt.Sprintf("%dm%02ds", int(d.Minutes()), int(d.Seconds())%60)
	case d < 24*time.Hour:
		d = d.Round(time.Minute)
		return fmt.Sprintf("%dh%02dm", int(d.Hours()), int(d.Minutes())%60)
	}
	d = d.Round(time.Hour)
	return fmt.Sprintf("%dd%02dh", int(d.Hours())/24, int(d.Hours())%24)
}
