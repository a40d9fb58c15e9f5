// Package outcome decides, as one pure function, what a run leaves behind
// once it stops: the final state and description of each of its GitHub
// deployments, the commit status, what the state file remembers, who is
// told and what the chat webhook hears last, and, for a run stopped before
// its end, what production runs. Every mode, stage and verdict is a row of
// Decide; the run applies what it returns. A new mode adds its rows here.
package outcome

import (
	"fmt"
	"strings"

	"github.com/immune-cd/immune/internal/notify"
	"github.com/immune-cd/immune/internal/recorder"
	"github.com/immune-cd/immune/internal/report"
	"github.com/immune-cd/immune/internal/run"
	"github.com/immune-cd/immune/internal/sha"
)

// Held says why a regression was not rolled back.
type Held int

// The reasons.
const (
	NotHeld      Held = iota
	AutoRollback      // auto-rollback is false
	NoTarget          // no commit to roll back to is known
	Superseded        // a newer deploy would be undone
)

// Record names one of the run's deployments.
type Record int

// The deployments a run may hold.
const (
	DeployRecord   Record = iota // the deploy's (task deploy)
	RollbackRecord               // the rollback's, after a regression or by hand
	CanaryRecord                 // the canary's (task deploy:canary)
	BisectRecord                 // the bisection step's in flight (task deploy:bisect)
)

// Facts are what the run knows when it stops, as typed fields.
type Facts struct {
	Mode    run.Mode
	Stage   run.Stage // how far a deploy got
	Verdict run.Verdict
	// Stopped is set for a run that did not finish (a cancel, immune
	// failing): the phase it stopped in, and how its records in flight are
	// closed ("cancelled during watch").
	Stopped     run.Phase
	StoppedDesc string

	Environment string
	// Deployer is how the run deployed, for the words that name a step
	// ("the rollback command", "the deploy workflow's rollback run").
	Deployer run.Deployer
	// SHA is the commit deployed (deploy), watched (watch) or rolled back
	// to (rollback); Target the commit rolled back to (deploy), or the same
	// as SHA (rollback); Current what ran before a manual rollback.
	SHA, Target, Current string
	// PendingOn is the commit whose status the run set pending.
	PendingOn string

	// The run's deployments that exist (were created), and whether their
	// commands were started.
	HasDeploy, HasRollback     bool
	DeployStarted, RollbackRan bool
	CanaryOpen, CanaryStarted  bool // the canary's record is still in flight; its command started
	CanaryRemoving             bool // the canary's removal was started
	CanaryPromoted             bool
	// RolledBack: the rollback (or the canary's removal) command ran.
	RolledBack bool
	// RollbackCommandFailed: it ran and failed.
	RollbackCommandFailed bool
	Held                  Held

	// Shadow: a deploy in shadow mode; WouldHave says what it would have
	// done, in a few words ("would have rolled back at +45.0s: ..."), ""
	// when nothing. DeployFailed: the deploy command failed.
	Shadow       bool
	WouldHave    string
	DeployFailed bool

	// Bisect is set once a bisection of the batch began: SHA is then the
	// commit the run deploys now (the head, or the good part shipped);
	// BisectOpen says a step's record is in flight.
	Bisect     *Bisection
	BisectOpen bool

	// Why says in a few words why the build regressed or was not judged;
	// Healthy, how its healthy watch went; RollbackHealthy and RollbackWhy
	// the same of the rollback's watch ("" when it was not watched).
	Why, Healthy, RollbackHealthy, RollbackWhy string
}

// Bisection is what a bisection found, and where it stood.
type Bisection struct {
	// Head is the batch's head, which regressed.
	Head string
	// Culprit is the first bad commit, when named; Suspect the oldest
	// commit seen to regress (the culprit, when named).
	Culprit, Suspect string
	// Shipped is the newest commit found good, deployed to the whole fleet
	// ("" when none was).
	Shipped string
	// Production: the steps went to the whole fleet.
	Production bool
	// The step in flight, for a run stopped during it: its commit,
	// whether its deploy started, and whether it was then removed (or
	// the removal failed).
	Step                     string
	StepStarted, StepRemoved bool
	// RemovalFailed: a step's removal failed; the run ended there.
	RemovalFailed bool
}

// Status is a final deployment status.
type Status struct {
	Of          Record
	State       recorder.State
	Description string
}

// CommitStatus is the run's last commit status.
type CommitStatus struct {
	SHA         string
	State       recorder.CommitState
	Description string
}

// Memory is a verdict the state file remembers about a commit.
type Memory struct {
	SHA     string
	Verdict run.Verdict
}

// Tell is what people hear when the run ends.
type Tell struct {
	// Story is what the authors, the tracking issue and the chat are told
	// about.
	Story report.StoryKind
	// StopsLine: the tracking issue is opened (or updated).
	StopsLine bool
	// Hook is the webhook's last event; "" when it heard its last already.
	Hook notify.Kind
}

// Outcome is what the run leaves behind.
type Outcome struct {
	Statuses []Status
	Commit   *CommitStatus
	Remember []Memory
	// Tell is what people hear; nil for nothing.
	Tell *Tell
	// Recovered: a healthy deploy; if the line was stopped before it, the
	// tracking issue is closed and the webhook hears it recovered.
	Recovered bool
	// WarnDegraded: a healthy watch whose numbers were above the limits is
	// worth a warning.
	WarnDegraded bool
	// Production says what production runs, for a run that stopped early.
	Production string
}

// Decide is what a run with facts f leaves behind.
func Decide(f Facts) Outcome {
	if f.Stopped != run.Done {
		return stopped(f)
	}
	if f.Bisect != nil {
		return bisected(f)
	}
	switch f.Mode {
	case run.ModeWatch:
		return watch(f)
	case run.ModeRollback:
		return manual(f)
	}
	if f.Stage == run.StageCanary {
		return canary(f)
	}
	return deploy(f)
}

// deploy: a deploy that reached the whole fleet.
func deploy(f Facts) Outcome {
	if f.Shadow && f.WouldHave != "" {
		return shadow(f)
	}
	var o Outcome
	switch f.Verdict {
	case run.Healthy:
		desc := "healthy: " + f.Healthy
		o.remember(f.SHA, run.Healthy)
		o.status(DeployRecord, recorder.StateSuccess, desc)
		o.commit(f.SHA, recorder.CommitSuccess, desc)
		o.WarnDegraded, o.Recovered = true, true
	case run.RolledBack:
		o.remember(f.SHA, run.Regressed)
		o.remember(f.Target, run.RolledBack)
		o.status(RollbackRecord, recorder.StateSuccess, "rolled back from "+sha.Short(f.SHA)+": "+f.RollbackHealthy)
		o.commit(f.SHA, recorder.CommitFailure, "rolled back: "+f.Why)
		o.tell(report.RolledBack, notify.RolledBack)
	case run.Inconclusive:
		if f.RolledBack {
			// The regression was rolled back; the rolled-back build was
			// not seen healthy.
			o.remember(f.SHA, run.Regressed)
			o.remember(f.Target, run.Inconclusive)
			o.status(RollbackRecord, recorder.StateError, recorder.Inconclusive+f.RollbackWhy)
			o.commit(f.SHA, recorder.CommitFailure, "rolled back: "+f.Why)
			o.tell(report.RolledBack, notify.RolledBack)
			break
		}
		// GitHub has no state for "not judged": error is the terminal one
		// that claims neither health nor a regression, and its description
		// says which. The gate does not stop the line for it.
		o.remember(f.SHA, run.Inconclusive)
		o.status(DeployRecord, recorder.StateError, recorder.Inconclusive+f.Why)
		o.commit(f.SHA, recorder.CommitError, recorder.Inconclusive+f.Why)
	case run.RollbackFailed:
		o.remember(f.SHA, run.Regressed)
		o.remember(f.Target, run.RollbackFailed)
		why := strings.TrimPrefix(f.Deployer.Step("rollback"), "the ") + " failed"
		if f.RollbackWhy != "" {
			why = "rollback unhealthy: " + f.RollbackWhy
		}
		o.status(RollbackRecord, recorder.StateFailure, why)
		o.commit(f.SHA, recorder.CommitFailure, "rollback failed after: "+f.Why)
		o.tell(report.RollbackFailed, notify.RollbackFailed)
	default: // regressed, not rolled back
		o.remember(f.SHA, run.Regressed)
		o.status(DeployRecord, recorder.StateFailure, "regressed: "+f.Why)
		o.commit(f.SHA, recorder.CommitFailure, "regressed: "+f.Why)
		// The webhook heard "regressed" already. The line is stopped by
		// this run unless another deploy superseded it.
		o.Tell = &Tell{Story: report.NotRolledBack, StopsLine: f.Held != Superseded}
	}
	return o
}

// shadow: a deploy in shadow mode that would have rolled back (or removed
// its canary), and did not: the deployment stays success (error when its
// command failed) and the commit status is never failure, both saying what
// would have been done; the state file remembers the regression, so that
// it is no rollback target; nobody is told (the webhook heard
// would-roll-back when it was found), and the line stays clear.
func shadow(f Facts) Outcome {
	var o Outcome
	desc := recorder.Shadow + f.WouldHave
	o.remember(f.SHA, run.Regressed)
	if f.DeployFailed {
		desc = recorder.Shadow + "the deploy command failed; " + f.WouldHave
		o.status(DeployRecord, recorder.StateError, desc)
		o.commit(f.SHA, recorder.CommitError, desc)
		return o
	}
	o.status(DeployRecord, recorder.StateSuccess, desc)
	o.commit(f.SHA, recorder.CommitSuccess, desc)
	return o
}

// Batch is what a batch that regressed and was rolled back leaves behind
// when a bisection follows: its records are closed as Decide closes them,
// now, but people hear once the bisection ends (see bisected).
func Batch(f Facts) Outcome {
	f.Bisect, f.BisectOpen = nil, false
	o := Decide(f)
	o.Tell = nil
	return o
}

// bisected: a run that bisected its batch after rolling it back. The
// batch's own records were closed when the bisection began (Batch), and
// each step's as it ended (Step); what is left is the good part's deploy,
// which is a deploy like any (a regression there is rolled back and told
// as usual), and the story of the culprit.
func bisected(f Facts) Outcome {
	b := f.Bisect
	if b.RemovalFailed {
		// A step's canary may still run a bad commit: told as a rollback
		// that failed.
		return Outcome{Tell: &Tell{Story: report.RollbackFailed, StopsLine: true, Hook: notify.RollbackFailed}}
	}
	var o Outcome
	if b.Shipped != "" {
		o = deploy(f)
		if f.Verdict != run.Healthy && f.Verdict != run.Inconclusive {
			// The part found good regressed on the whole fleet: the
			// culprit's story does not hold; this regression is told.
			return o
		}
		// The line stays stopped for the culprit: no recovery.
		o.Recovered = false
	}
	if b.Culprit != "" {
		o.remember(b.Culprit, run.Regressed)
	}
	o.Tell = &Tell{Story: report.Bisected, StopsLine: true, Hook: notify.RolledBack}
	return o
}

// Step is the final status of a bisection step's record, and of its
// commit's status: v is its watch's verdict (healthy, regressed or
// inconclusive), why its reason in a few words; culprit says the step named
// its commit the first bad one; removal, that the step's removal failed
// (its error).
func Step(commit, head string, v run.Verdict, why string, culprit bool, removal string) (Status, CommitStatus) {
	of := "bisection of " + sha.Short(head) + "'s batch"
	var st Status
	var cs CommitStatus
	switch v {
	case run.Healthy:
		st = Status{BisectRecord, recorder.StateSuccess, "good: " + why}
		cs = CommitStatus{commit, recorder.CommitSuccess, "good in the " + of + ": " + why}
	case run.Regressed:
		st = Status{BisectRecord, recorder.StateFailure, "bad: " + why}
		cs = CommitStatus{commit, recorder.CommitFailure, "bad in the " + of + ": " + why}
		if culprit {
			st.Description = recorder.CulpritPrefix + "the first bad commit: " + why
			cs.Description = "the first bad commit of " + sha.Short(head) + "'s batch (bisection): " + why
		}
	default:
		st = Status{BisectRecord, recorder.StateError, recorder.Inconclusive + "bisection step not judged: " + why}
		cs = CommitStatus{commit, recorder.CommitError, recorder.Inconclusive + "not judged in the " + of + ": " + why}
	}
	if removal != "" {
		st.Description += "; its removal failed"
	}
	return st, cs
}

// canary: a deploy that ended in its canary stage: the canary regressed,
// or could not be judged; the rest of the fleet never got the build.
func canary(f Facts) Outcome {
	var o Outcome
	if f.Verdict == run.Inconclusive {
		// Not judged: neither healthy nor regressed, and no stop of the
		// line (see recorder.Inconclusive). Nothing is told.
		desc := recorder.Inconclusive + "canary not judged: " + f.Why
		if f.RolledBack && !f.RollbackCommandFailed {
			desc += "; removed"
		}
		o.remember(f.SHA, run.Inconclusive)
		o.closeCanary(f, recorder.StateError, desc)
		o.commit(f.SHA, recorder.CommitError, desc)
		return o
	}
	desc := "canary regressed: " + f.Why
	switch f.Verdict {
	case run.RolledBack:
		desc += "; removed"
		o.tell(report.RolledBack, notify.RolledBack)
	case run.RollbackFailed:
		desc += "; its removal failed"
		o.tell(report.RollbackFailed, notify.RollbackFailed)
	default:
		desc += "; not removed"
		o.Tell = &Tell{Story: report.NotRolledBack, StopsLine: f.Held != Superseded}
	}
	o.remember(f.SHA, run.Regressed)
	o.closeCanary(f, recorder.StateFailure, desc)
	o.commit(f.SHA, recorder.CommitFailure, desc)
	return o
}

// watch: a watch of what runs, with no deploy; the webhook heard a
// regression when the watch found it.
func watch(f Facts) Outcome {
	var o Outcome
	if f.SHA == "" {
		// Nothing to mark or remember.
		o.WarnDegraded = f.Verdict == run.Healthy
		return o
	}
	switch f.Verdict {
	case run.Healthy:
		o.remember(f.SHA, run.Healthy)
		o.commit(f.SHA, recorder.CommitSuccess, "healthy: "+f.Healthy)
		o.WarnDegraded = true
	case run.Inconclusive:
		o.commit(f.SHA, recorder.CommitError, recorder.Inconclusive+f.Why)
	default:
		o.commit(f.SHA, recorder.CommitFailure, "regressed: "+f.Why)
	}
	return o
}

// manual: a rollback by hand, to f.SHA from f.Current.
func manual(f Facts) Outcome {
	var o Outcome
	switch f.Verdict {
	case run.RolledBack:
		o.remember(f.SHA, run.Healthy)
		o.status(RollbackRecord, recorder.StateSuccess, "manual rollback: "+f.Healthy)
		o.commit(f.SHA, recorder.CommitSuccess, "rolled back here by hand: "+f.Healthy)
		o.tell(report.ManualRollback, notify.RolledBack)
	case run.Inconclusive:
		// Rolled back, but not confirmed healthy: the story says so.
		o.remember(f.SHA, run.Inconclusive)
		o.status(RollbackRecord, recorder.StateError, recorder.Inconclusive+f.Why)
		o.commit(f.SHA, recorder.CommitError, recorder.Inconclusive+f.Why)
		o.tell(report.ManualRollback, notify.RolledBack)
	default:
		o.status(RollbackRecord, recorder.StateFailure, f.Why)
		o.commit(f.SHA, recorder.CommitFailure, "rollback failed: "+f.Why)
		o.tell(report.ManualRollbackFailed, notify.RollbackFailed)
	}
	return o
}

// stopped: a run that did not finish. What it was doing was stopped; its
// records in flight are closed as errors (never as healthy, nor as a
// rollback it did not see), and it says what production runs.
func stopped(f Facts) Outcome {
	o := Outcome{Production: production(f)}
	desc := f.StoppedDesc
	switch {
	case f.BisectOpen:
		if b := f.Bisect; b == nil || !b.StepStarted {
			desc = recorder.NotDeployed + desc
		}
		o.status(BisectRecord, recorder.StateError, desc)
	case f.CanaryOpen:
		o.closeCanary(f, recorder.StateError, desc)
	case f.HasRollback && !f.RollbackRan:
		o.status(RollbackRecord, recorder.StateError, recorder.NotDeployed+desc)
	case f.HasRollback:
		o.status(RollbackRecord, recorder.StateError, desc)
	case f.HasDeploy && !f.DeployStarted:
		o.status(DeployRecord, recorder.StateError, recorder.NotDeployed+desc)
	case f.HasDeploy:
		o.status(DeployRecord, recorder.StateError, desc)
	}
	if f.PendingOn != "" {
		o.commit(f.PendingOn, recorder.CommitError, desc)
	}
	if f.Stopped == run.Bisect && f.Bisect != nil {
		o.Tell = bisectStopped(f.Bisect)
	}
	return o
}

// bisectStopped is what people hear of a run stopped during its bisection:
// its batch regressed and was rolled back, which nobody heard yet (see
// Batch), so they hear it now, with what the steps found so far, and the
// line stops. A step whose removal failed or was cut short may have left
// a bad commit live: told as a rollback that failed, as bisected tells it.
func bisectStopped(b *Bisection) *Tell {
	if b.RemovalFailed || b.StepStarted && !b.StepRemoved {
		return &Tell{Story: report.RollbackFailed, StopsLine: true, Hook: notify.RollbackFailed}
	}
	return &Tell{Story: report.Bisected, StopsLine: true, Hook: notify.RolledBack}
}

// production says what production runs after a run stopped in f.Stopped.
func production(f Facts) string {
	ph, env, sh := f.Stopped, f.Environment, sha.Short(f.SHA)
	target := orUnknown(sha.Short(f.Target))
	switch f.Mode {
	case run.ModeWatch:
		if ph == run.Validate {
			return "nothing was watched"
		}
		return fmt.Sprintf("the watch of %s did not finish, so it was not judged", sh)
	case run.ModeRollback:
		to, from := sha.Short(f.SHA), sha.Short(f.Current)
		switch {
		case ph == run.Confirm:
			return fmt.Sprintf("%s was rolled back to %s, but the rollback was not confirmed healthy", env, to)
		case f.RollbackRan:
			return fmt.Sprintf("%s was stopped midway, so %s's state is unknown: it was being restored to %s (replacing %s)", f.Deployer.Step("rollback"), env, to, orUnknown(from))
		}
		return fmt.Sprintf("nothing was rolled back; %s still runs %s", env, orUnknown(from))
	}
	if ph == run.Bisect {
		return bisectProduction(f)
	}
	switch {
	case ph == run.CanaryDeploy && !f.CanaryStarted:
		return fmt.Sprintf("nothing was deployed; %s still runs what it ran before", env)
	case ph == run.CanaryDeploy:
		return fmt.Sprintf("%s was stopped midway, so the canary subset of %s may run %s in part; the rest of %s never got it, and nothing was rolled back", f.Deployer.Step("canary"), env, sh, env)
	case ph == run.CanaryWatch:
		return fmt.Sprintf("%s is live on the canary subset of %s, unjudged, and was not removed; the rest of %s never got it", sh, env, env)
	case ph == run.CanaryRollback && f.CanaryRemoving:
		return fmt.Sprintf("%s regressed as a canary and its removal was stopped midway, so the canary subset's state is unknown: it was being put back on %s; the rest of %s never got %s", sh, target, env, sh)
	case ph == run.CanaryRollback:
		return fmt.Sprintf("%s regressed as a canary and is still live on the canary subset of %s: its removal was not started; the rest of %s never got it", sh, env, env)
	case ph == run.Deploy && !f.DeployStarted && f.CanaryPromoted:
		return fmt.Sprintf("%s passed as a canary and is live on the canary subset of %s; the deploy to the whole fleet was not started", sh, env)
	case ph == run.Record && f.Stage == run.StageCanary && f.RolledBack:
		return fmt.Sprintf("%s regressed as a canary and was removed; the rest of %s never got it", sh, env)
	case ph == run.Confirm:
		return fmt.Sprintf("%s regressed and %s was rolled back to %s, but the rollback was not confirmed healthy", sh, env, target)
	case ph == run.Rollback && f.RollbackRan:
		return fmt.Sprintf("%s regressed, and %s was stopped midway, so %s's state is unknown: it was being restored to %s", sh, f.Deployer.Step("rollback"), env, target)
	case ph == run.Rollback:
		return fmt.Sprintf("%s regressed and is still live on %s: the rollback to %s was not started", sh, env, target)
	case ph == run.Watch || ph == run.Decide:
		return fmt.Sprintf("%s is live on %s, but its watch did not finish: it was not judged, and nothing was rolled back", sh, env)
	case ph == run.Deploy && f.DeployStarted:
		return fmt.Sprintf("%s was stopped midway, so %s may run %s in part, or still %s; nothing was rolled back", f.Deployer.Step("deploy"), env, sh, target)
	}
	return fmt.Sprintf("nothing was deployed; %s still runs what it ran before", env)
}

// bisectProduction says what production runs after a run stopped during
// its bisection: the batch was rolled back; a step's canary (or, in
// production bisection, the whole fleet) was put back on the last good
// commit unless its removal failed or never started.
func bisectProduction(f Facts) string {
	env, target := f.Environment, orUnknown(sha.Short(f.Target))
	b := f.Bisect
	head := sha.Short(f.SHA)
	if b != nil && b.Head != "" {
		head = sha.Short(b.Head)
	}
	rolled := fmt.Sprintf("%s regressed and was rolled back, and the bisection of its batch was stopped", head)
	if b == nil || b.Step == "" {
		return fmt.Sprintf("%s between steps; %s runs %s", rolled, env, target)
	}
	step := sha.Short(b.Step)
	where, whole := "the canary subset of "+env, "the rest of "+env
	if b.Production {
		where, whole = env, env
	}
	switch {
	case !b.StepStarted:
		return fmt.Sprintf("%s before its step on %s deployed anything; %s runs %s", rolled, step, env, target)
	case b.StepRemoved:
		return fmt.Sprintf("%s during its step on %s, which was put back on %s: %s runs %s", rolled, step, target, env, target)
	case b.Production:
		return fmt.Sprintf("%s during its step on %s, and putting %s back on %s failed, so %s may run %s", rolled, step, env, target, env, step)
	}
	return fmt.Sprintf("%s during its step on %s, and putting %s back on %s failed, so it may run %s; %s runs %s", rolled, step, where, target, step, whole, target)
}

func (o *Outcome) remember(commit string, v run.Verdict) {
	o.Remember = append(o.Remember, Memory{SHA: commit, Verdict: v})
}

func (o *Outcome) status(of Record, state recorder.State, desc string) {
	o.Statuses = append(o.Statuses, Status{Of: of, State: state, Description: desc})
}

// closeCanary closes the canary's record, when it is still in flight: as
// never deployed when its command never started and it ends in an error.
func (o *Outcome) closeCanary(f Facts, state recorder.State, desc string) {
	if !f.CanaryOpen {
		return
	}
	if state == recorder.StateError && !f.CanaryStarted {
		desc = recorder.NotDeployed + desc
	}
	o.status(CanaryRecord, state, desc)
}

func (o *Outcome) commit(commit string, state recorder.CommitState, desc string) {
	o.Commit = &CommitStatus{SHA: commit, State: state, Description: desc}
}

func (o *Outcome) tell(story report.StoryKind, hook notify.Kind) {
	o.Tell = &Tell{Story: story, StopsLine: true, Hook: hook}
}

func orUnknown(s string) string {
	if s == "" {
		return "an unknown build"
	}
	return s
}
