// Package run names the parts of one run of immune: the phases it goes
// through and the verdicts it can end with. It is vocabulary only, shared
// by the orchestration, the records, the state file and the report, so that
// each value is declared once and typed.
package run

// Verdict is how a run ended. Its string is the `verdict` output.
type Verdict string

// The verdicts.
const (
	// None: the run ended before it had anything to say (invalid input,
	// or a manual rollback that could not start).
	None Verdict = ""
	// Healthy: the new build passed its watch.
	Healthy Verdict = "healthy"
	// Regressed: the new build regressed and was not rolled back (auto-rollback
	// off, no target, or superseded by a newer deploy).
	Regressed Verdict = "regressed"
	// RolledBack: the regression was rolled back and the rollback was
	// watched healthy; in rollback mode, the manual rollback succeeded.
	RolledBack Verdict = "rolled-back"
	// RollbackFailed: the rollback command failed or the rolled-back build
	// was not healthy: production may be down.
	RollbackFailed Verdict = "rollback-failed"
	// Inconclusive: the watch could not judge the build, and nothing
	// regressed it: a metric had no data for too long, or a rate metric
	// counted fewer than min-requests requests. Nothing was rolled back
	// (unless an earlier regression was, and this is the rollback's watch),
	// and the build is not recorded as healthy.
	Inconclusive Verdict = "inconclusive"
	// Cancelled: the job was cancelled; what ran was stopped.
	Cancelled Verdict = "cancelled"
	// Skipped: there was nothing to do (a push that deleted its ref), or the
	// environment stayed busy with another run past lock-timeout.
	Skipped Verdict = "skipped"
	// Clear, Stopped and FixAllowed are the gate's verdicts.
	Clear      Verdict = "clear"
	Stopped    Verdict = "stopped"
	FixAllowed Verdict = "fix-allowed"
)

// Phase is a step of the run. The deploy mode goes through them in this
// order (the canary's only with a canary, and the canary's rollback only
// when the canary regressed); the other modes use a part.
type Phase string

// The phases.
const (
	// Validate checks what the inputs alone cannot: the commit exists, the
	// environment is free, a rollback target is known.
	Validate Phase = "validate"
	// Baseline probes the current production before the deploy.
	Baseline Phase = "baseline"
	// CanaryDeploy runs the canary command: the new build on a subset.
	CanaryDeploy Phase = "canary-deploy"
	// CanaryWatch judges the canary against the control, the stable fleet.
	CanaryWatch Phase = "canary-watch"
	// CanaryRollback removes a canary that regressed.
	CanaryRollback Phase = "canary-rollback"
	// Deploy runs the deploy command.
	Deploy Phase = "deploy"
	// Watch probes the new build.
	Watch Phase = "watch"
	// Decide turns what the watch saw into a verdict and chooses what next.
	Decide Phase = "decide"
	// Rollback runs the rollback command.
	Rollback Phase = "rollback"
	// Confirm watches the rolled-back build.
	Confirm Phase = "confirm"
	// Bisect searches a batch that regressed and was rolled back for its
	// first bad commit, step by step on the canary; the newest commit
	// found good then goes through deploy, watch, decide (and, should it
	// regress, rollback and confirm) like any deploy.
	Bisect Phase = "bisect"
	// Record writes the final records: statuses, the state file.
	Record Phase = "record"
	// Done ends the machine.
	Done Phase = ""
)

// Changed reports whether production may have changed by the time a run in
// phase p stopped: from the canary's or the deploy command on, it may have.
func (p Phase) Changed() bool {
	switch p {
	case Validate, Baseline, Done:
		return false
	}
	return true
}

// Stage is how far a deploy reached: the canary subset, or the whole fleet.
// Its string is the `stage` output and the commands' IMMUNE_STAGE.
type Stage string

// The stages.
const (
	// StageNone: not a deploy (watch, rollback and gate modes).
	StageNone Stage = ""
	// StageCanary: the new build went, at most, to the canary subset.
	StageCanary Stage = "canary"
	// StageFull: the deploy command ran for the whole fleet.
	StageFull Stage = "full"
)

// Deployer is how a run puts a commit live: through exactly one of them.
type Deployer string

// The deployers.
const (
	// ByCommand runs deploy-command (rollback-command, the canary's
	// commands) in the action's container.
	ByCommand Deployer = "command"
	// ByWorkflow dispatches deploy-workflow for every step, told apart by
	// its reason and stage inputs, and awaits its run.
	ByWorkflow Deployer = "workflow"
	// ByHook POSTs every step to deploy-hook.
	ByHook Deployer = "hook"
)

// Step names one step of a deployer ("deploy", "rollback", "canary",
// "canary removal"): "the rollback command", "the deploy workflow's
// rollback run", "the deploy hook's rollback call".
func (d Deployer) Step(step string) string {
	switch d {
	case ByWorkflow:
		return "the deploy workflow's " + step + " run"
	case ByHook:
		return "the deploy hook's " + step + " call"
	}
	return "the " + step + " command"
}

// Mode is what a run does. Its string is the `mode` input.
type Mode string

// The modes. ModeAuto is resolved from the event before a run starts.
const (
	ModeAuto     Mode = "auto"
	ModeDeploy   Mode = "deploy"
	ModeWatch    Mode = "watch"
	ModeRollback Mode = "rollback"
	ModeGate     Mode = "gate"
	// ModeBacktest replays the environment's last deploys against the
	// metrics inputs; ModeStats writes its delivery record. Neither
	// deploys anything.
	ModeBacktest Mode = "backtest"
	ModeStats    Mode = "stats"
)
