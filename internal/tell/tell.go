// Package tell tells people what a run did: the authors of a rolled-back
// change hear about it on the merged pull request(s) of the push, a stopped
// line shows itself as a tracking issue, and a chat webhook hears each
// event. None of it may delay production: the recorder writes the tracking
// issue and the comments in lanes of their own, and the webhook's events go
// out on another goroutine (package notify); the run only hands them
// stories. The webhook never waits on GitHub for longer than one call
// budget. At the end of the run, Finish waits a bounded time for all of it
// and says what was told. A failure never changes the verdict: a missing
// permission is a warning naming it, once; anything else a warning listing
// what failed.
package tell

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/immune-cd/immune/internal/notify"
	"github.com/immune-cd/immune/internal/outcome"
	"github.com/immune-cd/immune/internal/recorder"
	"github.com/immune-cd/immune/internal/report"
)

// Budget bounds how long the end of a run waits for the comments and the
// tracking issue.
const Budget = 30 * time.Second

// Lines collects the log lines of what runs in the background (the
// recorder's lanes, the webhook), printed at the end of the run so that
// nothing writes to the run's log from another goroutine.
type Lines struct {
	mu    sync.Mutex
	lines []string
}

// Logf adds a line.
func (l *Lines) Logf(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, fmt.Sprintf(format, args...))
}

func (l *Lines) all() []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]string(nil), l.lines...)
}

// Teller hands stories to the lanes and the webhook, and collects what
// they did.
type Teller struct {
	rec   *recorder.Recorder
	hook  *notify.Notifier // nil without a webhook
	lines *Lines

	mu       sync.Mutex
	blames   map[string]*blame // by good...bad, found once per run
	told     []string          // "#12 (url)"
	issue    recorder.Issue
	issueDid string // "opened", "updated" or "closed"
	// sendHook sends the webhook's last event now, if it is still waiting
	// for the tracking issue.
	sendHook func()
}

// New returns a Teller writing through rec and hook (nil without a
// webhook); lines are what both log.
func New(rec *recorder.Recorder, hook *notify.Notifier, lines *Lines) *Teller {
	return &Teller{rec: rec, hook: hook, lines: lines, blames: map[string]*blame{}}
}

// blame is who to tell about a regressed commit, found once.
type blame struct {
	once  sync.Once
	done  chan struct{}
	found report.Blame
}

// Event is the webhook's event of a story.
func Event(kind notify.Kind, s report.Story) notify.Event {
	e := notify.Event{
		Text: report.ChatText(s), Event: kind, Repository: s.Repository, Environment: s.Environment,
		SHA: s.BadSHA, RunningSHA: s.RunningSHA, Author: s.Blame.Author.Login, Reason: s.Reason,
		RunURL: s.RunURL, IssueURL: s.IssueURL, Time: s.At,
		Manual: s.Kind == report.ManualRollback || s.Kind == report.ManualRollbackFailed,
	}
	if kind == notify.Recovered {
		e.SHA, e.Reason = s.RunningSHA, ""
	}
	for _, p := range s.Blame.Pulls {
		e.PullRequests = append(e.PullRequests, p.Number)
	}
	return e
}

// Hear hands the webhook an event of s, at once.
func (t *Teller) Hear(kind notify.Kind, s report.Story) {
	if t.hook != nil {
		t.hook.Send(Event(kind, s))
	}
}

// RollingBack tells the authors of the commits after good up to s.BadSHA
// now, as the rollback starts, not after the rollback's watch; the comment
// is edited when the run ends.
func (t *Teller) RollingBack(s report.Story, good string) {
	t.rec.Tell(func(ctx context.Context) {
		s.Blame = t.blameOf(ctx, good, s.BadSHA)
		t.commentAll(ctx, s)
	})
}

// End hands over what people hear when the run ends (see outcome.Tell),
// about s and the commits after good: the tracking issue and then the
// webhook's last event in the line's lane, the comments in theirs once the
// issue is known.
func (t *Teller) End(tell *outcome.Tell, s report.Story, good string) {
	bad := s.BadSHA
	if !t.rec.Enabled() {
		// Without GitHub the webhook still hears, without the authors.
		if tell.Hook != "" {
			t.Hear(tell.Hook, s)
		}
		return
	}
	hook := t.hookOnce(tell.Hook, s, good, bad)
	issued := make(chan report.Story, 1)
	t.rec.TellLine(func(ctx context.Context) {
		if bad != "" {
			s.Blame = t.blameOf(ctx, good, bad)
		}
		if tell.StopsLine && bad != "" {
			is, opened, ok := t.rec.StopLine(ctx, report.IssueTitle(s), report.IssueBody(s), report.IssueUpdate(s))
			if ok {
				s.IssueNumber, s.IssueURL = is.Number, is.URL
				t.did(is, map[bool]string{true: "opened", false: "updated"}[opened])
			}
		}
		hook(&s)
		issued <- s
	})
	if bad == "" {
		return
	}
	t.rec.Tell(func(ctx context.Context) {
		select {
		case s := <-issued:
			t.commentAll(ctx, s)
		case <-ctx.Done():
		}
	})
}

func (t *Teller) did(is recorder.Issue, what string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.issue, t.issueDid = is, what
}

// hookOnce returns what sends the webhook's last event, once: with the
// tracking issue when the line's lane gets there within one GitHub call
// budget, else without it when the budget is over (real time: GitHub is
// real), or at the end of the run.
func (t *Teller) hookOnce(kind notify.Kind, s report.Story, good, bad string) func(*report.Story) {
	if kind == "" || t.hook == nil {
		return func(*report.Story) {}
	}
	var once sync.Once
	send := func(s report.Story) { once.Do(func() { t.Hear(kind, s) }) }
	late := func() {
		if b, ok := t.knownBlame(good, bad); ok {
			s.Blame = b
		}
		send(s)
	}
	timer := time.AfterFunc(t.rec.Budget(), late)
	t.mu.Lock()
	t.sendHook = func() { timer.Stop(); late() }
	t.mu.Unlock()
	return func(s *report.Story) {
		timer.Stop()
		send(*s)
	}
}

// Recovered: a healthy deploy (its record dep) that follows a stopped line
// closes the tracking issue, and the webhook hears it recovered. Whether
// the line was stopped is read in the line's lane too: the run does not
// wait for it.
func (t *Teller) Recovered(s report.Story, dep *recorder.Handle) {
	if dep == nil || !t.rec.Enabled() {
		return
	}
	budget := t.rec.Budget()
	t.rec.TellLine(func(ctx context.Context) {
		stopped, known := true, false // when it cannot be told, an open issue is closed anyway
		if d, ok := dep.Wait(ctx, budget); ok {
			if before, err := t.rec.LineBefore(ctx, d.ID); err == nil {
				stopped, known = before.Stopped, true
			}
		}
		if !stopped {
			return
		}
		is, closed := t.rec.ClearLine(ctx, report.IssueCleared(s))
		if closed {
			s.IssueNumber, s.IssueURL = is.Number, is.URL
			t.did(is, "closed")
		}
		if known || closed {
			t.Hear(notify.Recovered, s)
		}
	})
}

// blameOf finds, once per run and pair of commits, whom to tell about
// bad; the lanes share it.
func (t *Teller) blameOf(ctx context.Context, good, bad string) report.Blame {
	t.mu.Lock()
	key := good + "..." + bad
	b := t.blames[key]
	if b == nil {
		b = &blame{done: make(chan struct{})}
		t.blames[key] = b
	}
	t.mu.Unlock()
	b.once.Do(func() {
		defer close(b.done)
		found := t.rec.Blame(ctx, good, bad)
		out := report.Blame{
			Author: report.Person{Login: found.Author.Login, Name: found.Author.Name}, BadPull: found.BadPull,
			Base: good, Commits: found.Commits, Examined: found.Examined, Capped: found.Capped,
		}
		for _, p := range found.Pulls {
			out.Pulls = append(out.Pulls, report.Pull{Number: p.Number, Title: p.Title, URL: p.URL, Author: p.Author, MergeCommitSHA: p.MergeCommitSHA})
		}
		b.found = out
	})
	return b.found
}

// knownBlame is the blame of good...bad if it was found already.
func (t *Teller) knownBlame(good, bad string) (report.Blame, bool) {
	t.mu.Lock()
	b := t.blames[good+"..."+bad]
	t.mu.Unlock()
	if b == nil {
		return report.Blame{}, false
	}
	select {
	case <-b.done:
		return b.found, true
	default:
		return report.Blame{}, false
	}
}

func (t *Teller) commentAll(ctx context.Context, s report.Story) {
	var told []string
	for _, pr := range s.Blame.Pulls {
		if u := t.rec.Comment(ctx, pr.Number, s.BadSHA, report.PullComment(s, pr)); u != "" {
			told = append(told, fmt.Sprintf("#%d (%s)", pr.Number, u))
		}
	}
	t.mu.Lock()
	t.told = told
	t.mu.Unlock()
}

// TrackingIssueURL links the environment's open tracking issue, for the
// gate's message ("" when there is none, or it cannot be read).
func (t *Teller) TrackingIssueURL(ctx context.Context) string {
	if !t.rec.Enabled() {
		return ""
	}
	is, ok := t.rec.TrackingIssue(ctx)
	if !ok {
		return ""
	}
	return is.URL
}

// Warning is a warning for the run's log and report.
type Warning struct{ Title, Message string }

// Summary is what Finish says: the background's log lines, then notes and
// warnings.
type Summary struct {
	Lines    []string
	Notes    []string
	Warnings []Warning
}

// Finish waits, at most wait for GitHub and hookWait for the webhook, for
// what people are told, and says what they were told and what could not be
// done. environment names the tracking issue's.
func (t *Teller) Finish(wait, hookWait time.Duration, environment string) Summary {
	var sum Summary
	line, comments := true, true
	if t.rec.Enabled() {
		line, comments = t.rec.FinishTelling(wait)
		var late []string
		if !comments {
			late = append(late, "the comments on the pull requests")
		}
		if !line {
			late = append(late, "the tracking issue")
		}
		if len(late) > 0 {
			sum.Warnings = append(sum.Warnings, Warning{"People not told in time", fmt.Sprintf("%s were not finished within %s of the end of the run, and were given up", strings.Join(late, " and "), wait)})
		}
	}
	t.mu.Lock()
	sendHook := t.sendHook
	t.mu.Unlock()
	if sendHook != nil {
		sendHook() // the webhook hears even when GitHub did not answer
	}
	var delivered []notify.Kind
	var failures []string
	if t.hook != nil {
		delivered, failures = t.hook.Close(hookWait)
	}
	t.mu.Lock()
	told, issue, did := t.told, t.issue, t.issueDid
	t.mu.Unlock()
	// A lane given up may still write: read nothing more of it.
	if !comments {
		told = nil
	}
	if !line {
		did = ""
	}
	sum.Lines = t.lines.all()
	if len(told) > 0 {
		sum.Notes = append(sum.Notes, "told the authors on "+strings.Join(told, ", "))
	}
	if did != "" {
		sum.Notes = append(sum.Notes, fmt.Sprintf("%s the tracking issue #%d of %s: %s", did, issue.Number, environment, issue.URL))
	}
	if len(delivered) > 0 {
		var ks []string
		for _, k := range delivered {
			ks = append(ks, string(k))
		}
		sum.Notes = append(sum.Notes, "the webhook heard: "+strings.Join(ks, ", "))
	}
	if len(failures) > 0 {
		sum.Warnings = append(sum.Warnings, Warning{"Chat webhook", "not everything reached the webhook (the verdict stands): " + strings.Join(failures, "; ")})
	}
	for _, d := range t.rec.Denied() {
		sum.Warnings = append(sum.Warnings, Warning{"Optional permission missing", fmt.Sprintf("could not %s: the token lacks %q. Add it to the permissions: block of the workflow or job so that immune can tell people; the run went on without it.", d.What, d.Permission)})
	}
	if f := t.rec.NotTold(); len(f) > 0 {
		sum.Warnings = append(sum.Warnings, Warning{"People not told", "GitHub could not " + strings.Join(f, "; ")})
	}
	return sum
}
