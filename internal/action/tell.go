package action

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
	"github.com/immune-cd/immune/internal/run"
)

// Telling people: the author of a rolled-back change hears about it on the
// merged pull request(s) of the push, a stopped line shows itself as a
// tracking issue, and a chat webhook hears each event. None of it may delay
// production: the recorder writes the tracking issue and the comments in
// lanes of their own, and the webhook's events go out on another goroutine
// (package notify); the phases only hand them work. The webhook never waits
// on GitHub for longer than one call budget. At the end of the run, finish
// waits a bounded time for all of it. A failure never changes the verdict:
// a missing permission is a warning naming it, once; anything else a
// warning listing what failed.

// tellBudget bounds how long the end of a run waits for the comments and
// the tracking issue.
const tellBudget = 30 * time.Second

// teller collects what the lanes did, read once they are done. Its
// lines are the lanes' log lines, printed at the end so that nothing writes
// to the run's log from another goroutine.
type teller struct {
	mu       sync.Mutex
	lines    []string
	blames   map[string]*blame // by good...bad, found once per run
	told     []string          // "#12 (url)"
	issue    recorder.Issue
	issueDid string // "opened", "updated" or "closed"
	// sendHook sends the webhook's last event now, if it is still waiting
	// for the tracking issue.
	sendHook func()
}

// blame is who to tell about a regressed commit, found once.
type blame struct {
	once  sync.Once
	done  chan struct{}
	found report.Blame
}

func (t *teller) logf(format string, args ...any) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.lines = append(t.lines, fmt.Sprintf(format, args...))
}

// story is what people are told about this run, as it stands; it is built
// on the run's goroutine, so that the lanes never read the run.
func (r *runner) story(kind report.StoryKind) report.Story {
	s := report.Story{
		Kind: kind, Repository: r.ev.Repository, Environment: r.cfg.Environment,
		Reason: r.out.Reason, RunURL: r.out.Links.Run, Actor: r.ev.Actor, FixLabel: r.cfg.FixLabel,
		At: r.d.Clock.Now().UTC(),
	}
	if r.cfg.Mode == run.ModeRollback {
		s.BadSHA, s.RunningSHA = r.current, r.target
		s.RollbackWatch, s.Reason = r.out.Watch, r.cfg.Reason
	} else {
		s.BadSHA, s.RunningSHA = r.sha, r.target
		s.Watch, s.RollbackWatch = r.out.Watch, r.out.RollbackWatch
		if s.Watch == nil && r.out.Canary != nil {
			s.Watch = r.out.Canary.Watch // it regressed as a canary
		}
		s.Chart = report.Chart(r.out)
		if kind == report.NotRolledBack {
			s.NotRolledBack = "see the run"
			if r.heldWhy != "" {
				s.NotRolledBack = r.heldWhy
			}
		}
	}
	if kind == report.Recovered {
		s.BadSHA, s.RunningSHA = "", r.sha
	}
	if kind == report.Bisected {
		r.bisectStory(&s)
	}
	if step := r.out.Rollback; step != nil {
		s.RollbackError = step.Error
	}
	s.BadURL, s.RunningURL = r.ev.CommitURL(s.BadSHA), r.ev.CommitURL(s.RunningSHA)
	return s
}

// hookEvent is the webhook's event of a story.
func hookEvent(kind notify.Kind, s report.Story) notify.Event {
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

// send hands an event to the webhook.
func (r *runner) send(e notify.Event) {
	if r.hook != nil {
		r.hook.Send(e)
	}
}

// tellRegressed is called when a watch found a regression: the webhook
// hears at once.
func (r *runner) tellRegressed() {
	r.send(hookEvent(notify.Regressed, r.story(report.RollingBack)))
}

// tellRollingBack is called as the rollback starts: the authors hear now,
// not after the rollback's watch, and the comment is edited when the run
// ends.
func (r *runner) tellRollingBack() {
	s := r.story(report.RollingBack)
	good, bad := r.target, r.sha
	r.rec.Tell(func(ctx context.Context) {
		s.Blame = r.blameOf(ctx, good, bad)
		r.commentAll(ctx, s)
	})
}

// tellEnd hands over what people hear when the run ends (see
// outcome.Tell): the tracking issue and then the webhook's last event in
// the line's lane, the comments in theirs once the issue is known.
func (r *runner) tellEnd(o outcome.Outcome) {
	if o.Recovered {
		r.tellRecovered()
	}
	tell := o.Tell
	if tell == nil {
		return
	}
	s := r.story(tell.Story)
	good, bad := r.target, s.BadSHA
	if tell.Story == report.Bisected {
		// Told: the culprit's author, or the suspects' authors: the
		// commits after what runs now, up to the oldest seen to regress.
		good = s.RunningSHA
	}
	if !r.rec.Enabled() {
		// Without GitHub the webhook still hears, without the authors.
		if tell.Hook != "" {
			r.send(hookEvent(tell.Hook, s))
		}
		return
	}
	hook := r.hookOnce(tell.Hook, s, good, bad)
	issued := make(chan report.Story, 1)
	r.rec.TellLine(func(ctx context.Context) {
		if bad != "" {
			s.Blame = r.blameOf(ctx, good, bad)
		}
		if tell.StopsLine && bad != "" {
			is, opened, ok := r.rec.StopLine(ctx, report.IssueTitle(s), report.IssueBody(s), report.IssueUpdate(s))
			if ok {
				s.IssueNumber, s.IssueURL = is.Number, is.URL
				r.tell.mu.Lock()
				r.tell.issue, r.tell.issueDid = is, map[bool]string{true: "opened", false: "updated"}[opened]
				r.tell.mu.Unlock()
			}
		}
		hook(&s)
		issued <- s
	})
	if bad == "" {
		return
	}
	r.rec.Tell(func(ctx context.Context) {
		select {
		case s := <-issued:
			r.commentAll(ctx, s)
		case <-ctx.Done():
		}
	})
}

// hookOnce returns what sends the webhook's last event, once: with the
// tracking issue when the line's lane gets there within one GitHub call
// budget, else without it when the budget is over (real time: GitHub is
// real), or at the end of the run.
func (r *runner) hookOnce(kind notify.Kind, s report.Story, good, bad string) func(*report.Story) {
	if kind == "" || r.hook == nil {
		return func(*report.Story) {}
	}
	var once sync.Once
	send := func(s report.Story) { once.Do(func() { r.send(hookEvent(kind, s)) }) }
	late := func() {
		if b, ok := r.knownBlame(good, bad); ok {
			s.Blame = b
		}
		send(s)
	}
	timer := time.AfterFunc(r.rec.Budget(), late)
	r.tell.mu.Lock()
	r.tell.sendHook = func() { timer.Stop(); late() }
	r.tell.mu.Unlock()
	return func(s *report.Story) {
		timer.Stop()
		send(*s)
	}
}

// tellRecovered: a healthy deploy that follows a stopped line closes the
// tracking issue, and the webhook hears it recovered. Whether the line was
// stopped is read in the line's lane too: the run does not wait for it.
func (r *runner) tellRecovered() {
	if r.deploy.dep == nil || !r.rec.Enabled() {
		return
	}
	h, budget := r.deploy.dep, r.rec.Budget()
	s := r.story(report.Recovered)
	r.rec.TellLine(func(ctx context.Context) {
		stopped, known := true, false // when it cannot be told, an open issue is closed anyway
		if dep, ok := h.Wait(ctx, budget); ok {
			if before, err := r.rec.LineBefore(ctx, dep.ID); err == nil {
				stopped, known = before.Stopped, true
			}
		}
		if !stopped {
			return
		}
		is, closed := r.rec.ClearLine(ctx, report.IssueCleared(s))
		if closed {
			s.IssueNumber, s.IssueURL = is.Number, is.URL
			r.tell.mu.Lock()
			r.tell.issue, r.tell.issueDid = is, "closed"
			r.tell.mu.Unlock()
		}
		if known || closed {
			r.send(hookEvent(notify.Recovered, s))
		}
	})
}

// blameOf finds, once per run and pair of commits, whom to tell about
// bad; the lanes share it.
func (r *runner) blameOf(ctx context.Context, good, bad string) report.Blame {
	r.tell.mu.Lock()
	if r.tell.blames == nil {
		r.tell.blames = map[string]*blame{}
	}
	key := good + "..." + bad
	b := r.tell.blames[key]
	if b == nil {
		b = &blame{done: make(chan struct{})}
		r.tell.blames[key] = b
	}
	r.tell.mu.Unlock()
	b.once.Do(func() {
		defer close(b.done)
		found := r.rec.Blame(ctx, good, bad)
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
func (r *runner) knownBlame(good, bad string) (report.Blame, bool) {
	r.tell.mu.Lock()
	b := r.tell.blames[good+"..."+bad]
	r.tell.mu.Unlock()
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

func (r *runner) commentAll(ctx context.Context, s report.Story) {
	var told []string
	for _, pr := range s.Blame.Pulls {
		if u := r.rec.Comment(ctx, pr.Number, s.BadSHA, report.PullComment(s, pr)); u != "" {
			told = append(told, fmt.Sprintf("#%d (%s)", pr.Number, u))
		}
	}
	r.tell.mu.Lock()
	r.tell.told = told
	r.tell.mu.Unlock()
}

// trackingIssueURL links the environment's open tracking issue, for the
// gate's message ("" when there is none, or it cannot be read).
func (r *runner) trackingIssueURL(ctx context.Context) string {
	if !r.rec.Enabled() {
		return ""
	}
	is, ok := r.rec.TrackingIssue(ctx)
	if !ok {
		return ""
	}
	return is.URL
}

// tellFinish is called by finish: it waits, bounded, for the lanes and the
// webhook, and says what people were told and what could not be done.
func (r *runner) tellFinish() {
	wait, hookWait := tellBudget, r.cfg.NotifyTimeout
	if r.out.Verdict == run.Cancelled {
		// The runner kills the container seconds after the cancel.
		wait, hookWait = time.Second, time.Second
	}
	line, comments := true, true
	if r.rec.Enabled() {
		line, comments = r.rec.FinishTelling(wait)
		var late []string
		if !comments {
			late = append(late, "the comments on the pull requests")
		}
		if !line {
			late = append(late, "the tracking issue")
		}
		if len(late) > 0 {
			r.Warn("People not told in time", fmt.Sprintf("%s were not finished within %s of the end of the run, and were given up", strings.Join(late, " and "), wait))
		}
	}
	t := &r.tell
	t.mu.Lock()
	sendHook := t.sendHook
	t.mu.Unlock()
	if sendHook != nil {
		sendHook() // the webhook hears even when GitHub did not answer
	}
	var delivered []notify.Kind
	var failures []string
	if r.hook != nil {
		delivered, failures = r.hook.Close(hookWait)
	}
	t.mu.Lock()
	lines, told, issue, did := t.lines, t.told, t.issue, t.issueDid
	t.mu.Unlock()
	// A lane given up may still write: read nothing more of it.
	if !comments {
		told = nil
	}
	if !line {
		did = ""
	}
	for _, l := range lines {
		r.log.Printf("%s", l)
	}
	if len(told) > 0 {
		r.Note("told the authors on " + strings.Join(told, ", "))
	}
	if did != "" {
		r.Note(fmt.Sprintf("%s the tracking issue #%d of %s: %s", did, issue.Number, r.cfg.Environment, issue.URL))
	}
	if len(delivered) > 0 {
		var ks []string
		for _, k := range delivered {
			ks = append(ks, string(k))
		}
		r.Note("the webhook heard: " + strings.Join(ks, ", "))
	}
	if len(failures) > 0 {
		r.Warn("Chat webhook", "not everything reached the webhook (the verdict stands): "+strings.Join(failures, "; "))
	}
	for _, d := range r.rec.Denied() {
		r.Warn("Optional permission missing", fmt.Sprintf("could not %s: the token lacks %q. Add it to the permissions: block of the workflow or job so that immune can tell people; the run went on without it.", d.What, d.Permission))
	}
	if f := r.rec.NotTold(); len(f) > 0 {
		r.Warn("People not told", "GitHub could not "+strings.Join(f, "; "))
	}
}
