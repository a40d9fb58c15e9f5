package health

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/immune-cd/immune/internal/clock"
	"github.com/immune-cd/immune/internal/redact"
)

// Watch probes every URL on a schedule of its own for Duration, and hands
// each probe that counts to Judge. Probes carry the URL's display name (see
// DisplayNames), never the URL itself, which may hold credentials.
//
// The URLs' schedules are spread over the interval, in groups at least
// 10ms apart (URL i of k starts at about i·Interval/k), so that probes
// spread evenly over time. A URL has at most one probe in flight: a
// slow or hanging URL delays only itself (by at most Timeout, which must
// not exceed Interval), and when a probe ends after its URL's next one was
// due, that next one starts at once and later ones keep their schedule.
// Probes the watch could not start on time (a slow machine) are skipped,
// never made up in a burst.
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
	// Steady, when set, has one entry per URL: true marks a URL that serves
	// a build already running, not the one being watched (a canary's
	// control, the stable fleet). It counts from its first probe (no
	// startup grace, and it never ends the watch for not coming up), and
	// its version is not checked.
	Steady []bool
	// Judge, when set, gets every probe that counts, in the order they
	// end; true ends the watch.
	Judge func(Probe) bool
	// JudgeRound, when set, gets every round once all its probes have
	// ended (as OnRound does, just before it), with every probe, counted
	// (PhaseLive) or not; true ends the watch. Rounds are fixed by the
	// schedule before any probe answers, so they group probes of several
	// URLs without regard to what they show: a two-sample comparison
	// needs that.
	JudgeRound func(Round) bool
	// Record, when set, gets every probe, counted or not, after Judge.
	Record func(Probe)
	// OnRound, when set, is told about each finished round, in order.
	OnRound func(Round)
	// Go starts a probe; nil starts it on a goroutine of its own. Tests on
	// a stepped clock run probes inline, so that a watch is deterministic.
	Go func(probe func())
	// Look, when set, is one more task on the watch's schedule (a look at
	// metrics): once per Interval from the start, like a URL's probe (at
	// most one in flight, started through Go, skipped rather than made up
	// when late, cancelled with the watch), but with no startup grace. It
	// returns what the watch then calls on its own goroutine, in order with
	// Judge: true ends the watch. Looks are not part of rounds.
	Look func(ctx context.Context) (apply func() bool)
}

// Round is the n-th probe of every URL (a URL whose probe was skipped, or
// that stopped being probed, is missing from it).
type Round struct {
	N       int
	Elapsed time.Duration // from the start of the watch to the round's start
	Probes  []Probe       // in the order of Watch.URLs
}

// Result is what a watch saw.
type Result struct {
	Start, End time.Time
	Rounds     int // rounds handed to OnRound
	Probes     int // probes made
	// Stopped is true when Judge ended the watch early.
	Stopped bool
	// NotLive lists URLs (display names) the build never answered healthy
	// within StartupTimeout.
	NotLive []string
	// LiveAfter is, per URL display name, the time from the start to its
	// first counted probe.
	LiveAfter map[string]time.Duration
	// LastError is, per URL display name, the error of its last probe that
	// had one.
	LastError map[string]string
	// Skipped counts probes that could not start on time and were left out.
	Skipped int
	// Looks counts the looks made (see Watch.Look), SkippedLooks those that
	// could not start on time.
	Looks, SkippedLooks int
	// Err is set when the context ended the watch.
	Err error
}

// Elapsed is how long the watch ran.
func (r Result) Elapsed() time.Duration { return r.End.Sub(r.Start) }

// staggerStep is the least time between two groups of URLs' probes.
const staggerStep = 10 * time.Millisecond

// target is the schedule and state of one URL.
type target struct {
	url      string // probed
	name     string // shown: its display name
	offset   time.Duration
	next     int // number of the next slot to start (1-based)
	inFlight bool
	pending  int // a slot that came due while a probe was in flight; 0 = none
	through  int // every slot up to this one has ended or been skipped
	live     bool
	notLive  bool // gave up on: still starting when StartupTimeout passed
	steady   bool // see Watch.Steady
}

// finished is a probe that ended, or a look (i < 0).
type finished struct {
	i     int
	probe Probe
	apply func() bool // a look's
}

// Run runs the watch until Duration has passed, Judge stops it, a URL fails
// to start in time, or ctx ends.
func (w *Watch) Run(ctx context.Context) Result {
	r := newRun(w, ctx)
	defer r.cancel()
	r.loop()
	// Probes still in flight are cancelled and not counted.
	r.cancel()
	r.wg.Wait()
	r.flushRounds()
	if r.res.Err == nil && !r.res.Stopped && len(r.res.NotLive) == 0 {
		// The watch ended inside the startup grace period: a URL that never
		// answered healthy has not come up.
		for _, t := range r.targets {
			if !t.live {
				r.res.NotLive = append(r.res.NotLive, t.name)
			}
		}
	}
	r.res.End = w.Clock.Now()
	return r.res
}

// run is one Run's state; only the Run goroutine touches it.
type run struct {
	w       *Watch
	ctx     context.Context
	probes  context.Context
	cancel  context.CancelFunc
	wg      sync.WaitGroup
	results chan finished
	res     Result
	targets []*target
	look    *target   // the schedule of Watch.Look; nil without
	end     time.Time // no slot starts at or after it
	startup time.Time // the startup deadline; zero when there is none
	expired bool      // the startup deadline has passed
	rounds  map[int]*Round
	emitted int // rounds handed to OnRound
	started int // the highest slot started by any URL
	done    bool
}

func newRun(w *Watch, ctx context.Context) *run {
	start := w.Clock.Now()
	probes, cancel := context.WithCancel(ctx)
	r := &run{
		w: w, ctx: ctx, probes: probes, cancel: cancel,
		results: make(chan finished, len(w.URLs)+1),
		res:     Result{Start: start, LiveAfter: map[string]time.Duration{}, LastError: map[string]string{}},
		end:     start.Add(w.Duration),
		rounds:  map[int]*Round{},
	}
	// URLs are spread over the interval in groups at least staggerStep
	// apart: each wake-up of the watch then starts several probes, which
	// costs less CPU than one wake-up per probe.
	k := len(w.URLs)
	groups := max(min(k, int(w.Interval/staggerStep)), 1)
	names := DisplayNames(w.URLs)
	for i, u := range w.URLs {
		g := i * groups / k
		t := &target{url: u, name: names[i], offset: w.Interval * time.Duration(g) / time.Duration(groups), next: 1}
		t.steady = i < len(w.Steady) && w.Steady[i]
		if w.StartupTimeout <= 0 || t.steady {
			t.live = true
			r.res.LiveAfter[t.name] = 0
		}
		r.targets = append(r.targets, t)
	}
	if w.StartupTimeout > 0 {
		r.startup = start.Add(w.StartupTimeout)
	}
	if w.Look != nil {
		r.look = &target{name: "look", next: 1, live: true}
	}
	return r
}

// late reports whether slot n of t is too late to start at now: by half
// an interval or more.
func (r *run) late(t *target, n int, now time.Time) bool {
	return now.Sub(r.due(t, n)) >= r.w.Interval/2
}

// due is when slot n of t is due.
func (r *run) due(t *target, n int) time.Time {
	return r.res.Start.Add(t.offset + time.Duration(n-1)*r.w.Interval)
}

func (r *run) loop() {
	// One timer serves as long as the next event stays the same.
	var timer <-chan time.Time
	var timerAt time.Time
	for !r.done {
		// Probes that ended are handled before the clock moves on.
		select {
		case f := <-r.results:
			r.finish(f)
			continue
		default:
		}
		if r.ctx.Err() != nil {
			r.res.Err = r.ctx.Err()
			return
		}
		now := r.w.Clock.Now()
		next, waiting := r.nextEvent()
		if next.IsZero() && !waiting {
			return // every slot has ended
		}
		if !next.IsZero() && !next.After(now) {
			r.fire(now)
			continue
		}
		if next.IsZero() {
			timer = nil
		} else if timer == nil || !next.Equal(timerAt) {
			timer, timerAt = r.w.Clock.After(next.Sub(now)), next
		}
		select {
		case f := <-r.results:
			r.finish(f)
		case <-timer:
			timer = nil
		case <-r.ctx.Done():
			r.res.Err = r.ctx.Err()
			return
		}
	}
}

// nextEvent is the time of the next slot or deadline (zero when none is
// left), and whether probes are still in flight.
func (r *run) nextEvent() (next time.Time, inFlight bool) {
	consider := func(t time.Time) {
		if next.IsZero() || t.Before(next) {
			next = t
		}
	}
	for _, t := range r.targets {
		inFlight = inFlight || t.inFlight
		if t.notLive || t.next == 0 {
			continue
		}
		consider(r.due(t, t.next))
	}
	if t := r.look; t != nil {
		inFlight = inFlight || t.inFlight
		if t.next > 0 {
			consider(r.due(t, t.next))
		}
	}
	// The deadline matters only while the watch goes on.
	if !r.startup.IsZero() && !r.expired && (inFlight || !next.IsZero()) {
		consider(r.startup)
	}
	return next, inFlight
}

// fire starts every slot that is due by now, after the startup deadline
// if that is due too.
func (r *run) fire(now time.Time) {
	if !r.startup.IsZero() && !r.expired && !r.startup.After(now) {
		r.expired = true
		for _, t := range r.targets {
			if !t.live && !t.inFlight {
				r.giveUp(t)
			}
		}
		r.checkStartup()
		if r.done {
			return
		}
	}
	r.fireLook(now)
	for i, t := range r.targets {
		if t.notLive || t.next == 0 || r.due(t, t.next).After(now) {
			continue
		}
		// The latest slot that is due; earlier ones the watch could not
		// start in time are skipped, and so is that one if it is half an
		// interval late: the next is closer.
		slot := t.next + int((now.Sub(r.due(t, t.next)))/r.w.Interval)
		r.res.Skipped += slot - t.next
		t.next = slot + 1
		late := r.late(t, slot, now)
		if !r.due(t, t.next).Before(r.end) {
			t.next = 0 // no more slots
		}
		switch {
		case r.expired && !t.live:
			// Too late to come up.
		case late:
			r.res.Skipped++
			if !t.inFlight {
				t.through = slot
			}
		case t.inFlight:
			if t.pending > 0 {
				r.res.Skipped++
			}
			t.pending = slot
		default:
			t.through = slot - 1
			r.start(i, slot)
		}
	}
	r.emitRounds()
}

func (r *run) start(i, slot int) {
	t := r.targets[i]
	t.inFlight = true
	r.started = max(r.started, slot)
	// The probe's time is when the watch started it, so that the report
	// shows the schedule the watch kept, whatever the goroutine's own delay.
	at := r.w.Clock.Now()
	r.wg.Add(1)
	run := func() {
		defer r.wg.Done()
		p := r.w.Probe(r.probes, t.url, r.w.Want)
		p.Time, p.Round, p.URL = at, slot, t.name
		r.results <- finished{i: i, probe: p}
	}
	if r.w.Go != nil {
		r.w.Go(run)
	} else {
		go run()
	}
}

// fireLook starts the look that is due by now, if any, as fire does a
// URL's probe.
func (r *run) fireLook(now time.Time) {
	t := r.look
	if t == nil || t.next == 0 || r.due(t, t.next).After(now) {
		return
	}
	slot := t.next + int((now.Sub(r.due(t, t.next)))/r.w.Interval)
	r.res.SkippedLooks += slot - t.next
	t.next = slot + 1
	late := r.late(t, slot, now)
	if !r.due(t, t.next).Before(r.end) {
		t.next = 0
	}
	switch {
	case late:
		r.res.SkippedLooks++
	case t.inFlight:
		if t.pending > 0 {
			r.res.SkippedLooks++
		}
		t.pending = slot
	default:
		r.startLook()
	}
}

func (r *run) startLook() {
	r.look.inFlight = true
	r.wg.Add(1)
	run := func() {
		defer r.wg.Done()
		r.results <- finished{i: -1, apply: r.w.Look(r.probes)}
	}
	if r.w.Go != nil {
		r.w.Go(run)
	} else {
		go run()
	}
}

// finishLook handles a look that ended.
func (r *run) finishLook(f finished) {
	t := r.look
	t.inFlight = false
	if r.probes.Err() != nil {
		return // cancelled with the watch
	}
	r.res.Looks++
	if !r.res.Stopped && f.apply != nil && f.apply() {
		r.res.Stopped = true
		r.done = true
	}
	if t.pending > 0 {
		slot := t.pending
		t.pending = 0
		if r.done || r.late(t, slot, r.w.Clock.Now()) {
			r.res.SkippedLooks++
		} else {
			r.startLook()
		}
	}
}

// finish handles a probe that ended.
func (r *run) finish(f finished) {
	if f.i < 0 {
		r.finishLook(f)
		return
	}
	t, p := r.targets[f.i], f.probe
	t.inFlight = false
	if r.probes.Err() != nil {
		return // cancelled with the watch; not a measurement
	}
	r.res.Probes++
	r.classify(t, &p)
	if p.Error != "" {
		r.res.LastError[t.name] = p.Error
	}
	if !r.res.Stopped && p.Phase == PhaseLive && r.w.Judge != nil && r.w.Judge(p) {
		r.res.Stopped = true
		r.done = true
	}
	if r.w.Record != nil {
		r.w.Record(p)
	}
	r.addToRound(f.i, p)
	t.through = p.Round
	switch {
	case r.done:
	case t.pending > 0 && !(r.expired && !t.live) && !r.late(t, t.pending, r.w.Clock.Now()):
		t.through = t.pending - 1
		slot := t.pending
		t.pending = 0
		r.start(f.i, slot)
	default:
		if t.pending > 0 {
			r.res.Skipped++
			t.pending = 0
		}
		if t.next > 0 {
			t.through = t.next - 1 // the slots since were skipped
		}
		if r.expired && !t.live {
			r.giveUp(t)
			r.checkStartup()
		}
	}
	r.emitRounds()
}

// giveUp stops probing a URL that did not come up in time.
func (r *run) giveUp(t *target) {
	t.notLive = true
	t.next = 0
}

// checkStartup ends the watch once every URL that did not come up in time
// is known, if there is any.
func (r *run) checkStartup() {
	var notLive []string
	for _, t := range r.targets {
		if !t.live && t.inFlight {
			return // its answer may still bring it up
		}
		if t.notLive {
			notLive = append(notLive, t.name)
		}
	}
	if len(notLive) > 0 {
		r.res.NotLive = notLive
		r.done = true
	}
}

// classify decides whether a probe counts, and turns an answer from the
// wrong version into a failure once the build is live.
func (r *run) classify(t *target, p *Probe) {
	w := r.w
	if !t.live {
		if !p.Failed && (!w.VersionAware || p.VersionMatch) {
			t.live = true
			r.res.LiveAfter[t.name] = p.Time.Sub(r.res.Start)
		} else {
			p.Phase = PhaseStartup
			if !p.Failed && w.VersionAware {
				p.Error = fmt.Sprintf("not yet live: answered by version %s", versionName(p.Version))
			}
			return
		}
	}
	p.Phase = PhaseLive
	if w.VersionAware && !p.VersionMatch && p.Answered && !t.steady {
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

func (r *run) addToRound(i int, p Probe) {
	n := p.Round
	rd := r.rounds[n]
	if rd == nil {
		rd = &Round{N: n, Elapsed: time.Duration(n-1) * r.w.Interval, Probes: make([]Probe, len(r.targets))}
		r.rounds[n] = rd
	}
	rd.Probes[i] = p
}

// emitRounds hands every round that has ended for every URL to OnRound.
func (r *run) emitRounds() {
	upTo := r.started
	for _, t := range r.targets {
		if t.next == 0 && !t.inFlight && t.pending == 0 {
			continue // no more probes of this URL
		}
		upTo = min(upTo, t.through)
	}
	for r.emitted < upTo {
		r.emit(r.emitted + 1)
	}
}

// flushRounds hands what is left of unfinished rounds to OnRound.
func (r *run) flushRounds() {
	last := 0
	for n := range r.rounds {
		last = max(last, n)
	}
	for r.emitted < last {
		r.emit(r.emitted + 1)
	}
}

func (r *run) emit(n int) {
	r.emitted = n
	rd := r.rounds[n]
	delete(r.rounds, n)
	if rd == nil {
		return // every URL's probe of this round was skipped
	}
	probes := rd.Probes[:0]
	for _, p := range rd.Probes {
		if p.URL != "" {
			probes = append(probes, p)
		}
	}
	rd.Probes = probes
	r.res.Rounds++
	if r.w.JudgeRound != nil && !r.res.Stopped && r.ctx.Err() == nil && r.w.JudgeRound(*rd) {
		r.res.Stopped = true
		r.done = true
	}
	if r.w.OnRound != nil {
		r.w.OnRound(*rd)
	}
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
