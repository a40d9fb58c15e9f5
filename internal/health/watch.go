package health

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/immune-cd/immune/internal/clock"
	"github.com/immune-cd/immune/internal/redact"
)

// Watch probes every URL once per round for Duration, and hands each probe
// that counts to Judge. Probes carry the URL's display name (see
// DisplayNames), never the URL itself, which may hold credentials.
//
// A URL is "starting" until the build answers it healthy (and, with a
// version source, as the expected version); probes before that do not count
// as long as StartupTimeout has not passed. A URL still starting when
// StartupTimeout has passed ends the watch (see Result.NotLive).
type Watch struct {
	Probe          func(ctx context.Context, url, want string) Probe
	Clock          clock.Clock
	URLs           []string
	Want           string // the version expected to answer
	VersionAware   bool   // whether probes carry a version to check
	Interval       time.Duration
	Duration       time.Duration
	StartupTimeout time.Duration
	// Judge gets every probe that counts, in order; true ends the watch.
	Judge func(Probe) bool
	// OnRound, when set, is told about each finished round.
	OnRound func(Round)
}

// Round is one pass over all URLs.
type Round struct {
	N       int
	Elapsed time.Duration // since the start of the watch
	Probes  []Probe
}

// Result is what a watch saw.
type Result struct {
	Start, End time.Time
	Rounds     int
	Probes     []Probe
	// Stopped is true when Judge ended the watch early.
	Stopped bool
	// NotLive lists URLs the build never answered healthy within StartupTimeout.
	NotLive []string
	// LiveAfter is, per URL, the time from the start to its first counted probe.
	LiveAfter map[string]time.Duration
	// Err is set when the context ended the watch.
	Err error
}

// Elapsed is how long the watch ran.
func (r Result) Elapsed() time.Duration { return r.End.Sub(r.Start) }

// Run runs the watch until Duration has passed, Judge stops it, a URL fails
// to start in time, or ctx ends.
func (w *Watch) Run(ctx context.Context) Result {
	res := Result{Start: w.Clock.Now(), LiveAfter: map[string]time.Duration{}}
	names := DisplayNames(w.URLs)
	live := map[string]bool{}
	if w.StartupTimeout <= 0 {
		for _, u := range names {
			live[u], res.LiveAfter[u] = true, 0
		}
	}
	for n := 0; ; n++ {
		due := res.Start.Add(time.Duration(n) * w.Interval)
		if n > 0 && !due.Before(res.Start.Add(w.Duration)) {
			break
		}
		if wait := due.Sub(w.Clock.Now()); wait > 0 {
			select {
			case <-ctx.Done():
				res.Err = ctx.Err()
				res.End = w.Clock.Now()
				return res
			case <-w.Clock.After(wait):
			}
		}
		if ctx.Err() != nil {
			res.Err = ctx.Err()
			break
		}
		elapsed := w.Clock.Now().Sub(res.Start)
		if w.StartupTimeout > 0 && elapsed >= w.StartupTimeout {
			for _, u := range names {
				if !live[u] {
					res.NotLive = append(res.NotLive, u)
				}
			}
			if len(res.NotLive) > 0 {
				break
			}
		}

		round := Round{N: n + 1, Elapsed: elapsed, Probes: w.probeAll(ctx, n+1, names)}
		res.Rounds++
		for i := range round.Probes {
			p := &round.Probes[i]
			w.classify(p, live, res.LiveAfter, p.Time.Sub(res.Start))
			res.Probes = append(res.Probes, *p)
			// Once Judge has decided, the rest of the round is kept for the
			// report but not judged.
			if !res.Stopped && p.Phase == PhaseLive && w.Judge(*p) {
				res.Stopped = true
			}
		}
		if w.OnRound != nil {
			w.OnRound(round)
		}
		if res.Stopped {
			break
		}
	}
	if res.Err == nil && !res.Stopped && len(res.NotLive) == 0 {
		// The watch ended inside the startup grace period: a URL that never
		// answered healthy has not come up.
		for _, u := range names {
			if !live[u] {
				res.NotLive = append(res.NotLive, u)
			}
		}
	}
	res.End = w.Clock.Now()
	return res
}

// classify decides whether a probe counts, and turns an answer from the
// wrong version into a failure once the build is live.
func (w *Watch) classify(p *Probe, live map[string]bool, liveAfter map[string]time.Duration, at time.Duration) {
	if !live[p.URL] {
		if !p.Failed && (!w.VersionAware || p.VersionMatch) {
			live[p.URL] = true
			liveAfter[p.URL] = at
		} else {
			p.Phase = PhaseStartup
			if !p.Failed && w.VersionAware {
				p.Error = fmt.Sprintf("not yet live: answered by version %s", versionName(p.Version))
			}
			return
		}
	}
	p.Phase = PhaseLive
	if w.VersionAware && !p.VersionMatch && p.Answered {
		msg := fmt.Sprintf("answered by version %s, expected %s", versionName(p.Version), w.Want)
		if p.Failed {
			msg = p.Error + "; " + msg
		}
		p.Failed, p.Error = true, msg
	}
}

func versionName(v string) string {
	if v == "" {
		return "(unknown)"
	}
	return v
}

// probeAll probes every URL at once and returns the probes in URL order,
// each named by its display name.
func (w *Watch) probeAll(ctx context.Context, round int, names []string) []Probe {
	probes := make([]Probe, len(w.URLs))
	var wg sync.WaitGroup
	for i, u := range w.URLs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			probes[i] = w.Probe(ctx, u, w.Want)
			probes[i].Round = round
			probes[i].URL = names[i]
		}()
	}
	wg.Wait()
	return probes
}

// DisplayNames are the names URLs are shown by, in the log, the report and
// the verdict's reasons: redacted (no user info, no query values), and
// told apart by a number when two redact to the same text.
func DisplayNames(urls []string) []string {
	names := make([]string, len(urls))
	seen := map[string]int{}
	for i, u := range urls {
		n := redact.URL(u)
		if seen[n]++; seen[n] > 1 {
			n = fmt.Sprintf("%s (%d)", n, seen[n])
		}
		names[i] = n
	}
	return names
}
