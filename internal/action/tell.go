package action

import (
	"time"

	"github.com/immune-cd/immune/internal/notify"
	"github.com/immune-cd/immune/internal/outcome"
	"github.com/immune-cd/immune/internal/report"
	"github.com/immune-cd/immune/internal/run"
	"github.com/immune-cd/immune/internal/tell"
)

// What people are told (package tell), from the run's state: the stories
// are built here, on the run's goroutine, so that the background never
// reads the run.

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

// tellRegressed is called when a watch found a regression: the webhook
// hears at once.
func (r *runner) tellRegressed() { r.tell.Hear(notify.Regressed, r.story(report.RollingBack)) }

// tellRollingBack is called as the rollback starts: the authors hear now.
func (r *runner) tellRollingBack() { r.tell.RollingBack(r.story(report.RollingBack), r.target) }

// tellEnd hands over what people hear when the run ends (see outcome.Tell).
func (r *runner) tellEnd(o outcome.Outcome) {
	if o.Recovered {
		r.tell.Recovered(r.story(report.Recovered), r.deploy.dep)
	}
	if o.Tell == nil {
		return
	}
	s := r.story(o.Tell.Story)
	good := r.target
	if o.Tell.Story == report.Bisected {
		// Told: the culprit's author, or the suspects' authors: the
		// commits after what runs now, up to the oldest seen to regress.
		good = s.RunningSHA
	}
	r.tell.End(o.Tell, s, good)
}

// tellFinish is called by finish: it waits, bounded, for what people are
// told, and says what they were told and what could not be done.
func (r *runner) tellFinish() {
	wait, hookWait := tell.Budget, r.cfg.NotifyTimeout
	if r.out.Verdict == run.Cancelled {
		// The runner kills the container seconds after the cancel.
		wait, hookWait = time.Second, time.Second
	}
	sum := r.tell.Finish(wait, hookWait, r.cfg.Environment)
	for _, l := range sum.Lines {
		r.log.Printf("%s", l)
	}
	for _, n := range sum.Notes {
		r.Note(n)
	}
	for _, w := range sum.Warnings {
		r.Warn(w.Title, w.Message)
	}
}
