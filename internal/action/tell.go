package action

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/immune-cd/immune/internal/config"
	"github.com/immune-cd/immune/internal/ghapi"
	"github.com/immune-cd/immune/internal/notify"
	"github.com/immune-cd/immune/internal/recorder"
	"github.com/immune-cd/immune/internal/report"
	"github.com/immune-cd/immune/internal/run"
	"github.com/immune-cd/immune/internal/version"
)

// Telling people: the author of a rolled-back change hears about it on the
// merged pull request(s) of the push, a stopped line shows itself as a
// tracking issue, and a chat webhook hears each event. None of it may delay
// production: the GitHub writes run on one goroutine of their own, in
// order, and the webhook's events on another (package notify); the phases
// only hand them work. At the end of the run, finish waits a bounded time
// for both. A failure never changes the verdict: a missing permission is a
// warning naming it, once; anything else a warning listing what failed.

// tellBudget bounds how long the end of a run waits for the comments and
// the tracking issue.
const tellBudget = 30 * time.Second

// teller hands work to the two background senders and collects what they
// did.
type teller struct {
	// rec reads GitHub for the senders: a Recorder of their own, which
	// logs into lines, so that nothing writes to the run's log from
	// another goroutine.
	rec    *recorder.Recorder
	people *recorder.People // nil without GitHub
	hook   *notify.Notifier // nil without a webhook
	work   chan func(context.Context)
	done   chan struct{}
	ctx    context.Context
	cancel context.CancelFunc

	mu    sync.Mutex
	lines []string // log lines of the background senders, printed at the end
	// What the GitHub sender did, read once it is done.
	blame    *recorder.Blame
	blameKey string
	told     []string // "#12 (url)"
	issue    ghapi.Issue
	issueDid string // "opened", "updated" or "closed"
}

// newTeller is called by newRunner.
func (r *runner) newTeller() *teller {
	t := &teller{}
	t.ctx, t.cancel = context.WithCancel(context.Background())
	t.rec = recorder.New(recorder.Options{GitHub: r.d.GitHub, Environment: r.cfg.Environment, Logf: t.logf, Now: r.d.Clock.Now})
	t.people = t.rec.People(nil)
	t.people.ShareDown(r.rec)
	if r.cfg.NotifyWebhook != "" && r.cfg.Mode != config.ModeGate {
		t.hook = notify.Start(notify.Options{
			URL: r.cfg.NotifyWebhook, Secret: r.cfg.NotifySecret, Client: r.d.HTTP, Clock: r.d.Clock,
			Timeout: r.cfg.NotifyTimeout, UserAgent: "immune/" + version.String(), Logf: t.logf,
		})
	}
	return t
}

func (t *teller) logf(format string, args ...any) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.lines = append(t.lines, fmt.Sprintf(format, args...))
}

// later runs fn on the GitHub sender, after what was handed to it before.
func (t *teller) later(fn func(ctx context.Context)) {
	if t.people == nil {
		return
	}
	if t.work == nil {
		t.work, t.done = make(chan func(context.Context), 8), make(chan struct{})
		go func() {
			defer close(t.done)
			for fn := range t.work {
				if t.ctx.Err() == nil {
					fn(t.ctx)
				}
			}
		}()
	}
	t.work <- fn
}

// send hands an event to the webhook.
func (t *teller) send(e notify.Event) {
	if t.hook != nil {
		t.hook.Send(e)
	}
}

// story is what people are told about this run, as it stands; it is built
// on the run's goroutine, so that the senders never read the run.
func (r *runner) story(kind report.StoryKind) report.Story {
	s := report.Story{
		Kind: kind, Repository: r.ev.Repository, Environment: r.cfg.Environment,
		Reason: r.out.Reason, RunURL: r.out.Links.Run, Actor: r.ev.Actor, FixLabel: r.cfg.FixLabel,
		At: r.d.Clock.Now().UTC(),
	}
	if r.cfg.Mode == config.ModeRollback {
		s.BadSHA, s.RunningSHA = r.current, r.target
		s.RollbackWatch, s.Reason = r.out.Watch, r.cfg.Reason
	} else {
		s.BadSHA, s.RunningSHA = r.cfg.SHA, r.target
		s.Watch, s.RollbackWatch = r.out.Watch, r.out.RollbackWatch
		if s.Watch == nil && r.out.Canary != nil {
			s.Watch = r.out.Canary.Watch // it regressed as a canary
		}
		s.Chart = report.Chart(r.out)
		if kind == report.NotRolledBack {
			s.NotRolledBack = "see the run"
			if n := len(r.out.Notes); n > 0 {
				s.NotRolledBack = strings.TrimPrefix(r.out.Notes[n-1], "not rolling back: ")
			}
		}
	}
	if kind == report.Recovered {
		s.BadSHA, s.RunningSHA = "", r.cfg.SHA
	}
	if step := r.out.Rollback; step != nil {
		s.RollbackError = step.Error
	}
	s.BadURL, s.RunningURL = r.commitURL(s.BadSHA), r.commitURL(s.RunningSHA)
	return s
}

// event is the webhook's event of a story.
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

// tellRegressed is called by decide when the watch found a regression: the
// webhook hears at once.
func (r *runner) tellRegressed() {
	r.tell.send(hookEvent(notify.Regressed, r.story(report.RollingBack)))
}

// tellRollingBack is called as the rollback starts: the authors hear now,
// not after the rollback's watch, and the comment is edited when the run
// ends.
func (r *runner) tellRollingBack() {
	s := r.story(report.RollingBack)
	good, bad := r.target, r.cfg.SHA
	r.tell.later(func(ctx context.Context) {
		r.tell.comment(ctx, s, good, bad)
	})
}

// tellRecord is deferred by the record phases: it hands over the comments,
// the tracking issue and the webhook's last event for the verdict.
func (r *runner) tellRecord() {
	if r.out.Verdict == run.Cancelled {
		return
	}
	manual := r.cfg.Mode == config.ModeRollback
	var kind report.StoryKind
	var hook notify.Kind
	switch v := r.out.Verdict; {
	case v == run.Healthy && !manual:
		r.tellRecovered()
		return
	case (v == run.RolledBack || v == run.Inconclusive) && manual:
		// An inconclusive manual rollback was still rolled back; the story
		// says it was not confirmed healthy.
		kind, hook = report.ManualRollback, notify.RolledBack
	case v == run.Inconclusive && r.out.Stage == run.StageCanary:
		// A canary that could not be judged was removed: nothing was
		// shown bad, and the line goes on.
		return
	case v == run.Inconclusive && r.out.RolledBack:
		kind, hook = report.RolledBack, notify.RolledBack
	case v == run.RollbackFailed && manual:
		kind, hook = report.ManualRollbackFailed, notify.RollbackFailed
	case v == run.RolledBack:
		kind, hook = report.RolledBack, notify.RolledBack
	case v == run.RollbackFailed:
		kind, hook = report.RollbackFailed, notify.RollbackFailed
	case v == run.Regressed:
		kind = report.NotRolledBack // the webhook heard "regressed" already
	default:
		return
	}
	s := r.story(kind)
	good, bad := r.target, s.BadSHA
	// The line is stopped by this run unless another deploy superseded it.
	stops := !(kind == report.NotRolledBack && r.wasSuperseded)
	r.tell.later(func(ctx context.Context) {
		t := r.tell
		if bad != "" {
			s.Blame = t.blameOf(ctx, good, bad)
		}
		if stops && bad != "" {
			is, opened, ok := t.people.Stopped(ctx, report.IssueTitle(s), report.IssueBody(s), report.IssueUpdate(s))
			if ok {
				s.IssueNumber, s.IssueURL = is.Number, is.HTMLURL
				t.mu.Lock()
				t.issue, t.issueDid = is, map[bool]string{true: "opened", false: "updated"}[opened]
				t.mu.Unlock()
			}
		}
		if bad != "" {
			t.commentAll(ctx, s)
		}
		if hook != "" {
			t.send(hookEvent(hook, s))
		}
	})
	if r.tell.people == nil && hook != "" {
		// Without GitHub the webhook still hears, without the authors.
		r.tell.send(hookEvent(hook, s))
	}
}

// tellRecovered: a healthy deploy that follows a stopped line closes the
// tracking issue, and the webhook hears it recovered. Whether the line was
// stopped is read in the background too: the run does not wait for it.
func (r *runner) tellRecovered() {
	if r.dep == nil || r.tell.people == nil {
		return
	}
	h, budget := r.dep, r.rec.Budget()
	s := r.story(report.Recovered)
	r.tell.later(func(ctx context.Context) {
		t := r.tell
		stopped, known := true, false // when it cannot be told, an open issue is closed anyway
		if dep, ok := h.Wait(ctx, budget); ok {
			if before, err := t.rec.LineBefore(ctx, dep.ID); err == nil {
				stopped, known = before.Stopped, true
			}
		}
		if !stopped {
			return
		}
		is, closed := t.people.Clear(ctx, report.IssueCleared(s))
		if closed {
			s.IssueNumber, s.IssueURL = is.Number, is.HTMLURL
			t.mu.Lock()
			t.issue, t.issueDid = is, "closed"
			t.mu.Unlock()
		}
		if known || closed {
			t.send(hookEvent(notify.Recovered, s))
		}
	})
}

// blameOf finds, once per run, whom to tell about bad.
func (t *teller) blameOf(ctx context.Context, good, bad string) report.Blame {
	key := good + "..." + bad
	if t.blame == nil || t.blameKey != key {
		b := t.people.Blame(ctx, good, bad)
		t.blame, t.blameKey = &b, key
	}
	b := t.blame
	out := report.Blame{
		Author: report.Person{Login: b.Author.Login, Name: b.Author.Name}, BadPull: b.BadPull,
		Base: good, Commits: b.Commits, Examined: b.Examined, Capped: b.Capped,
	}
	for _, p := range b.Pulls {
		out.Pulls = append(out.Pulls, report.Pull{Number: p.Number, Title: p.Title, URL: p.HTMLURL, Author: p.Author, MergeCommitSHA: p.MergeCommitSHA})
	}
	return out
}

// comment finds whom to tell and comments on their pull requests.
func (t *teller) comment(ctx context.Context, s report.Story, good, bad string) {
	s.Blame = t.blameOf(ctx, good, bad)
	t.commentAll(ctx, s)
}

func (t *teller) commentAll(ctx context.Context, s report.Story) {
	var told []string
	for _, pr := range s.Blame.Pulls {
		if u := t.people.Comment(ctx, pr.Number, s.BadSHA, report.PullComment(s, pr)); u != "" {
			told = append(told, fmt.Sprintf("#%d (%s)", pr.Number, u))
		}
	}
	t.mu.Lock()
	t.told = told
	t.mu.Unlock()
}

// trackingIssueURL links the environment's open tracking issue, for the
// gate's message ("" when there is none, or it cannot be read).
func (r *runner) trackingIssueURL(ctx context.Context) string {
	if r.tell.people == nil {
		return ""
	}
	is, ok := r.tell.people.StoppedIssue(ctx, ghapi.IssuesRead)
	if !ok {
		return ""
	}
	return is.HTMLURL
}

// tellFinish is called by finish: it waits, bounded, for the senders, and
// says what people were told and what could not be done.
func (r *runner) tellFinish() {
	t := r.tell
	wait, hookWait := tellBudget, r.cfg.NotifyTimeout
	if r.out.Verdict == run.Cancelled {
		// The runner kills the container seconds after the cancel.
		wait, hookWait = time.Second, time.Second
	}
	if t.work != nil {
		close(t.work)
		timer := time.NewTimer(wait) // real time: the senders make real requests
		select {
		case <-t.done:
		case <-timer.C:
			t.cancel()
			r.warn("People not told in time", fmt.Sprintf("the comments and the tracking issue were not finished within %s of the end of the run, and were given up", wait))
		}
		timer.Stop()
	}
	t.cancel()
	var delivered []notify.Kind
	var failures []string
	if t.hook != nil {
		delivered, failures = t.hook.Close(hookWait)
	}
	t.mu.Lock()
	lines, told, issue, did := t.lines, t.told, t.issue, t.issueDid
	t.mu.Unlock()
	if t.work != nil {
		select {
		case <-t.done:
		default:
			// Given up: the sender may still write; read nothing more of it.
			told, did = nil, ""
		}
	}
	for _, l := range lines {
		r.log.Printf("%s", l)
	}
	if len(told) > 0 {
		r.note("told the authors on " + strings.Join(told, ", "))
	}
	if did != "" {
		r.note(fmt.Sprintf("%s the tracking issue #%d of %s: %s", did, issue.Number, r.cfg.Environment, issue.HTMLURL))
	}
	if len(delivered) > 0 {
		var ks []string
		for _, k := range delivered {
			ks = append(ks, string(k))
		}
		r.note("the webhook heard: " + strings.Join(ks, ", "))
	}
	if len(failures) > 0 {
		r.warn("Chat webhook", "not everything reached the webhook (the verdict stands): "+strings.Join(failures, "; "))
	}
	for _, d := range t.people.Denied() {
		r.warn("Optional permission missing", fmt.Sprintf("could not %s: the token lacks %q. Add it to the permissions: block of the workflow or job so that immune can tell people; the run went on without it.", d.What, d.Permission))
	}
	if f := t.people.Failed(); len(f) > 0 {
		r.warn("People not told", "GitHub could not "+strings.Join(f, "; "))
	}
}
