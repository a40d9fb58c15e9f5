package health

import (
	"context"
	"strings"
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

func newWatch(c clock.Clock, script map[string][]string, urls ...string) *Watch {
	return &Watch{
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
			res := w.Run(context.Background())
			if got := phases(res.Probes); got != tt.wantPhases {
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
	// b starts in round 2; a is judged from round 1.
	if len(judged) != 19 || judged[0] != "http://a/h" || judged[1] != "http://a/h" || judged[2] != "http://b/h" {
		t.Errorf("judged = %v", judged)
	}
	if res.LiveAfter["http://a/h"] != 0 || res.LiveAfter["http://b/h"] != 100*time.Millisecond {
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
		if r.N == 2 {
			cancel()
		}
	}
	res := w.Run(ctx)
	if res.Err == nil || res.Rounds != 2 {
		t.Errorf("Err = %v after %d rounds, want cancelled after 2", res.Err, res.Rounds)
	}
}
