package health

import (
	"context"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/immune-cd/immune/internal/clock"
)

// scripted returns a probe function that answers from a per-URL script of
// outcomes by round: "ok", "fail", "old" (healthy, previous version).
func scripted(c clock.Clock, script map[string][]string) func(context.Context, string, string) Probe {
	calls := map[string]int{}
	return func(_ context.Context, url, want string) Probe {
		steps := script[url]
		step := steps[min(calls[url], len(steps)-1)]
		calls[url]++
		p := Probe{Time: c.Now(), URL: url, Answered: true, Status: 200, Latency: 10 * time.Millisecond, Version: want, VersionMatch: true}
		switch step {
		case "fail":
			p.Status, p.Failed, p.Error = 503, true, "status 503 is not an expected status"
		case "old":
			p.Version, p.VersionMatch = "old1234", false
		}
		return p
	}
}

// inline runs probes where they are started, so that a watch on a
// stepped clock is deterministic.
func inline(probe func()) { probe() }

func newWatch(c clock.Clock, script map[string][]string, urls ...string) *Watch {
	return &Watch{
		Go:             inline,
		Probe:          scripted(c, script),
		Clock:          c,
		URLs:           urls,
		Want:           "new1234",
		Interval:       100 * time.Millisecond,
		Duration:       time.Second,
		StartupTimeout: 300 * time.Millisecond,
		Judge:          func(Probe) bool { return false },
	}
}

func phases(probes []Probe) string {
	var b strings.Builder
	for _, p := range probes {
		switch {
		case p.Phase == PhaseStartup:
			b.WriteString("s")
		case p.Failed:
			b.WriteString("F")
		default:
			b.WriteString(".")
		}
	}
	return b.String()
}

func TestWatch(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name         string
		script       []string
		versionAware bool
		startup      time.Duration
		stopAfter    int // Judge stops at the n-th judged probe (0: never)
		wantPhases   string
		wantNotLive  bool
		wantStopped  bool
		wantElapsed  time.Duration
	}{
		{name: "healthy runs the whole duration", script: []string{"ok"}, wantPhases: "..........", wantElapsed: 900 * time.Millisecond},
		{name: "failures before the first healthy answer do not count", script: []string{"fail", "fail", "ok", "fail"}, wantPhases: "ss.FFFFFFF", wantElapsed: 900 * time.Millisecond},
		{name: "never healthy ends the watch at the startup timeout", script: []string{"fail"}, wantPhases: "sss", wantNotLive: true, wantElapsed: 300 * time.Millisecond},
		{name: "no startup grace counts every failure", script: []string{"fail", "ok"}, startup: -1, wantPhases: "F.........", wantElapsed: 900 * time.Millisecond},
		{name: "the old version is not yet live", script: []string{"old", "old", "ok"}, versionAware: true, wantPhases: "ss........", wantElapsed: 900 * time.Millisecond},
		{name: "the old version after going live is a failure", script: []string{"ok", "ok", "old", "ok"}, versionAware: true, wantPhases: "..F.......", wantElapsed: 900 * time.Millisecond},
		{name: "without version checks the old version is healthy", script: []string{"old"}, wantPhases: "..........", wantElapsed: 900 * time.Millisecond},
		{name: "the old version past the startup timeout", script: []string{"old"}, versionAware: true, wantPhases: "sss", wantNotLive: true, wantElapsed: 300 * time.Millisecond},
		{name: "a watch shorter than the startup grace still needs a healthy answer", script: []string{"fail"}, startup: 5 * time.Second, wantPhases: "ssssssssss", wantNotLive: true, wantElapsed: 900 * time.Millisecond},
		{name: "judge stops early", script: []string{"ok", "fail"}, stopAfter: 4, wantPhases: ".FFF", wantStopped: true, wantElapsed: 300 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := clock.NewStep(time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC))
			w := newWatch(c, map[string][]string{"http://a/h": tt.script}, "http://a/h")
			w.VersionAware = tt.versionAware
			if tt.startup != 0 {
				w.StartupTimeout = max(tt.startup, 0)
			}
			judged := 0
			w.Judge = func(Probe) bool { judged++; return judged == tt.stopAfter }
			var probes []Probe
			w.Record = func(p Probe) { probes = append(probes, p) }
			res := w.Run(context.Background())
			if got := phases(probes); got != tt.wantPhases {
				t.Errorf("phases = %q, want %q", got, tt.wantPhases)
			}
			if (len(res.NotLive) > 0) != tt.wantNotLive || res.Stopped != tt.wantStopped {
				t.Errorf("NotLive = %v, Stopped = %v; want %v, %v", res.NotLive, res.Stopped, tt.wantNotLive, tt.wantStopped)
			}
			if res.Elapsed() != tt.wantElapsed {
				t.Errorf("elapsed = %s, want %s", res.Elapsed(), tt.wantElapsed)
			}
		})
	}
}

func TestWatchJudgesEveryURL(t *testing.T) {
	t.Parallel()
	c := clock.NewStep(time.Unix(0, 0))
	w := newWatch(c, map[string][]string{"http://a/h": {"ok"}, "http://b/h": {"fail", "ok", "fail"}}, "http://a/h", "http://b/h")
	var judged []string
	w.Judge = func(p Probe) bool { judged = append(judged, p.URL); return false }
	var rounds int
	w.OnRound = func(r Round) { rounds++ }
	res := w.Run(context.Background())
	if rounds != 10 || res.Rounds != 10 {
		t.Errorf("rounds = %d (%d reported), want 10", rounds, res.Rounds)
	}
	// b starts in round 2; a is judged from round 1. b is probed half an
	// interval after a.
	if len(judged) != 19 || judged[0] != "http://a/h" || judged[1] != "http://a/h" || judged[2] != "http://b/h" {
		t.Errorf("judged = %v", judged)
	}
	if res.LiveAfter["http://a/h"] != 0 || res.LiveAfter["http://b/h"] != 150*time.Millisecond {
		t.Errorf("LiveAfter = %v", res.LiveAfter)
	}
}

func TestWatchOneURLNeverLive(t *testing.T) {
	t.Parallel()
	c := clock.NewStep(time.Unix(0, 0))
	w := newWatch(c, map[string][]string{"http://a/h": {"ok"}, "http://b/h": {"fail"}}, "http://a/h", "http://b/h")
	res := w.Run(context.Background())
	if len(res.NotLive) != 1 || res.NotLive[0] != "http://b/h" {
		t.Errorf("NotLive = %v, want only b", res.NotLive)
	}
}

func TestWatchCancelled(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithCancel(context.Background())
	w := newWatch(clock.Real{}, map[string][]string{"http://a/h": {"ok"}}, "http://a/h")
	w.Duration = time.Minute
	w.OnRound = func(r Round) {
		if r.N >= 2 {
			cancel()
		}
	}
	res := w.Run(ctx)
	if res.Err == nil || res.Rounds != 2 {
		t.Errorf("Err = %v after %d rounds, want cancelled after 2", res.Err, res.Rounds)
	}
}

// TestWatchSchedule: each URL keeps a schedule of its own, offset by
// i·interval/k, and every round has every URL's probe.
func TestWatchSchedule(t *testing.T) {
	t.Parallel()
	start := time.Unix(0, 0)
	c := clock.NewStep(start)
	urls := []string{"http://a/h", "http://b/h", "http://c/h", "http://d/h"}
	w := newWatch(c, map[string][]string{}, urls...)
	w.Probe = func(_ context.Context, url, _ string) Probe {
		return Probe{Time: c.Now(), URL: url, Answered: true, Status: 200, Latency: time.Millisecond}
	}
	w.StartupTimeout = 0
	times := map[string][]time.Duration{}
	w.Record = func(p Probe) { times[p.URL] = append(times[p.URL], p.Time.Sub(start)) }
	var rounds []int
	w.OnRound = func(r Round) {
		if len(r.Probes) != len(urls) {
			t.Errorf("round %d has %d probes", r.N, len(r.Probes))
		}
		rounds = append(rounds, r.N)
	}
	res := w.Run(context.Background())
	for i, u := range urls {
		if len(times[u]) != 10 {
			t.Fatalf("%s: %d probes, want 10", u, len(times[u]))
		}
		for n, at := range times[u] {
			if want := time.Duration(i)*25*time.Millisecond + time.Duration(n)*100*time.Millisecond; at != want {
				t.Errorf("%s probe %d at %v, want %v", u, n+1, at, want)
			}
		}
	}
	if len(rounds) != 10 || rounds[9] != 10 || res.Rounds != 10 || res.Probes != 40 || res.Skipped != 0 {
		t.Errorf("rounds %v, result %+v", rounds, res)
	}
}

// TestWatchNoCatchUpBurst: after a stall (here the clock jumps 5½
// intervals while a round is reported), the missed probes are skipped, not
// made up back to back.
func TestWatchNoCatchUpBurst(t *testing.T) {
	t.Parallel()
	start := time.Unix(0, 0)
	c := clock.NewStep(start)
	w := newWatch(c, map[string][]string{"http://a/h": {"ok"}, "http://b/h": {"ok"}}, "http://a/h", "http://b/h")
	w.StartupTimeout = 0
	w.OnRound = func(r Round) {
		if r.N == 2 {
			c.Advance(550 * time.Millisecond)
		}
	}
	times := map[string][]time.Duration{}
	w.Record = func(p Probe) { times[p.URL] = append(times[p.URL], p.Time.Sub(start)) }
	res := w.Run(context.Background())
	ms := func(v ...int) []time.Duration {
		var ds []time.Duration
		for _, x := range v {
			ds = append(ds, time.Duration(x)*time.Millisecond)
		}
		return ds
	}
	// Round 2 ends with b's probe at 150ms; the clock is then at 700ms.
	want := map[string][]time.Duration{
		"http://a/h": ms(0, 100, 700, 800, 900),
		"http://b/h": ms(50, 150, 750, 850, 950),
	}
	for u, w := range want {
		if got := times[u]; !slices.Equal(got, w) {
			t.Errorf("%s probed at %v, want %v", u, got, w)
		}
	}
	if res.Skipped != 10 {
		t.Errorf("skipped %d probes, want 10", res.Skipped)
	}
}

// TestWatchSlowURLDelaysOnlyItself runs on the real clock: one URL takes
// three intervals to answer; the other keeps its schedule, and the slow
// one never has two probes in flight.
func TestWatchSlowURLDelaysOnlyItself(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	inFlight, most := 0, 0
	w := &Watch{
		Clock:    clock.Real{},
		URLs:     []string{"http://fast/h", "http://slow/h"},
		Interval: 50 * time.Millisecond,
		Duration: time.Second,
		Judge:    func(Probe) bool { return false },
		Probe: func(ctx context.Context, url, _ string) Probe {
			p := Probe{Time: time.Now(), URL: url, Answered: true, Status: 200}
			if url == "http://slow/h" {
				mu.Lock()
				inFlight++
				most = max(most, inFlight)
				mu.Unlock()
				time.Sleep(150 * time.Millisecond)
				mu.Lock()
				inFlight--
				mu.Unlock()
			}
			return p
		},
	}
	count := map[string]int{}
	w.Record = func(p Probe) { count[p.URL]++ }
	res := w.Run(context.Background())
	// Rounds that waited for the slow URL would leave the fast one about 7.
	if count["http://fast/h"] < 14 || count["http://slow/h"] > 8 || most != 1 {
		t.Errorf("fast %d probes, slow %d, at most %d slow probes in flight; want ≥ 14 fast (of 20), 7 or so slow, one at a time (%+v)",
			count["http://fast/h"], count["http://slow/h"], most, res)
	}
}

// TestWatchLook: a look (at metrics) runs once per interval from the
// start, with or without URLs, applies on the watch's goroutine in order,
// can end the watch, and is skipped rather than made up when a look runs
// long.
func TestWatchLook(t *testing.T) {
	t.Parallel()
	t.Run("without URLs", func(t *testing.T) {
		t.Parallel()
		c := clock.NewStep(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
		w := newWatch(c, nil)
		var at []time.Duration
		start := c.Now()
		w.Look = func(ctx context.Context) func() bool {
			seen := c.Now().Sub(start)
			return func() bool { at = append(at, seen); return false }
		}
		res := w.Run(context.Background())
		want := []time.Duration{0, 100, 200, 300, 400, 500, 600, 700, 800, 900}
		for i := range want {
			want[i] *= time.Millisecond
		}
		if !slices.Equal(at, want) || res.Looks != 10 || res.Probes != 0 || len(res.NotLive) != 0 || res.Stopped {
			t.Errorf("looks at %v (%d), result %+v", at, res.Looks, res)
		}
	})
	t.Run("beside URLs, ending the watch", func(t *testing.T) {
		t.Parallel()
		c := clock.NewStep(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
		w := newWatch(c, map[string][]string{"http://a/h": {"ok"}}, "http://a/h")
		looks := 0
		w.Look = func(ctx context.Context) func() bool {
			return func() bool { looks++; return looks == 4 }
		}
		res := w.Run(context.Background())
		if !res.Stopped || res.Looks != 4 || res.Elapsed() != 300*time.Millisecond || res.Probes < 3 {
			t.Errorf("result %+v after %v", res, res.Elapsed())
		}
	})
	t.Run("a slow look skips the next, no burst", func(t *testing.T) {
		t.Parallel()
		c := clock.NewStep(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
		w := newWatch(c, nil)
		var at []time.Duration
		start := c.Now()
		n := 0
		w.Look = func(ctx context.Context) func() bool {
			seen := c.Now().Sub(start)
			if n++; n == 2 {
				c.Advance(260 * time.Millisecond) // the look at 100ms ends at 360ms
			}
			return func() bool { at = append(at, seen); return false }
		}
		res := w.Run(context.Background())
		want := []time.Duration{0, 100, 400, 500, 600, 700, 800, 900}
		for i := range want {
			want[i] *= time.Millisecond
		}
		if !slices.Equal(at, want) || res.SkippedLooks != 2 {
			t.Errorf("looks at %v, %d skipped; want %v, 2 skipped", at, res.SkippedLooks, want)
		}
	})
}

// A steady URL (a canary's control) counts from its first probe, is never
// given up on for not coming up, and its version is not checked; the other
// URLs keep their startup grace and version check.
func TestWatchSteadyURLs(t *testing.T) {
	t.Parallel()
	c := clock.NewStep(time.Unix(0, 0))
	w := newWatch(c, map[string][]string{
		"http://canary/h": {"old", "ok", "ok", "old", "ok"},
		"http://stable/h": {"fail", "fail", "fail", "fail", "old"},
	}, "http://canary/h", "http://stable/h")
	w.VersionAware = true
	w.Steady = []bool{false, true}
	byURL := map[string][]Probe{}
	w.Record = func(p Probe) { byURL[p.URL] = append(byURL[p.URL], p) }
	res := w.Run(context.Background())
	if len(res.NotLive) != 0 || res.Stopped {
		t.Fatalf("NotLive %v, Stopped %v", res.NotLive, res.Stopped)
	}
	if got := phases(byURL["http://canary/h"]); got != "s..F......" {
		t.Errorf("canary phases = %q", got)
	}
	// The control's failures count from the first probe, and its old
	// version is no failure.
	if got := phases(byURL["http://stable/h"]); got != "FFFF......" {
		t.Errorf("control phases = %q", got)
	}
	if res.LiveAfter["http://stable/h"] != 0 {
		t.Errorf("LiveAfter = %v", res.LiveAfter)
	}
}

// JudgeRound sees each round whole, every URL's probe of it, once all have
// ended; true ends the watch there.
func TestWatchJudgeRound(t *testing.T) {
	t.Parallel()
	c := clock.NewStep(time.Unix(0, 0))
	w := newWatch(c, map[string][]string{"http://a/h": {"ok"}, "http://b/h": {"ok", "ok", "ok", "fail"}}, "http://a/h", "http://b/h")
	w.Judge = nil
	var seen []string
	w.JudgeRound = func(r Round) bool {
		var s []string
		for _, p := range r.Probes {
			s = append(s, p.URL+map[bool]string{true: "F", false: "."}[p.Failed])
		}
		seen = append(seen, strings.Join(s, " "))
		return r.Probes[1].Failed
	}
	rounds := 0
	w.OnRound = func(Round) { rounds++ }
	res := w.Run(context.Background())
	want := []string{"http://a/h. http://b/h.", "http://a/h. http://b/h.", "http://a/h. http://b/h.", "http://a/h. http://b/hF"}
	if !slices.Equal(seen, want) || !res.Stopped || rounds != 4 {
		t.Fatalf("rounds judged %q, stopped %v, OnRound %d times; want %q, stopped", seen, res.Stopped, rounds, want)
	}
	if res.Elapsed() != 350*time.Millisecond {
		t.Errorf("elapsed %s, want 350ms (round 4's last probe)", res.Elapsed())
	}
}
