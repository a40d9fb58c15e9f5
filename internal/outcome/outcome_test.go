package outcome

import (
	"reflect"
	"testing"

	"github.com/immune-cd/immune/internal/notify"
	"github.com/immune-cd/immune/internal/recorder"
	"github.com/immune-cd/immune/internal/report"
	"github.com/immune-cd/immune/internal/run"
)

const (
	bad  = "4d8b3f2e1c0a9b8c7d6e5f4a3b2c1d0e9f8a7b6c"
	good = "9f2c1e7a3b4d5c6e7f8091a2b3c4d5e6f7081920"
)

func st(of Record, s recorder.State, d string) []Status {
	return []Status{{Of: of, State: s, Description: d}}
}
func cs(sha string, s recorder.CommitState, d string) *CommitStatus {
	return &CommitStatus{SHA: sha, State: s, Description: d}
}
func mem(pairs ...any) []Memory {
	var m []Memory
	for i := 0; i < len(pairs); i += 2 {
		m = append(m, Memory{SHA: pairs[i].(string), Verdict: pairs[i+1].(run.Verdict)})
	}
	return m
}
func told(s report.StoryKind, stops bool, h notify.Kind) *Tell {
	return &Tell{Story: s, StopsLine: stops, Hook: h}
}

// TestDecide: every row of what a finished run leaves behind.
func TestDecide(t *testing.T) {
	t.Parallel()
	deploy := Facts{Mode: run.ModeDeploy, Stage: run.StageFull, Environment: "production", SHA: bad, Target: good,
		HasDeploy: true, DeployStarted: true, Why: "9 of 20 probes failed", Healthy: "0 of 60 probes failed, p95 20ms"}
	rolled := deploy
	rolled.HasRollback, rolled.RollbackRan, rolled.RolledBack, rolled.RollbackHealthy = true, true, true, "0 of 12 probes failed, p95 18ms"
	canary := Facts{Mode: run.ModeDeploy, Stage: run.StageCanary, Environment: "production", SHA: bad, Target: good,
		CanaryOpen: true, CanaryStarted: true, Why: "the canary failed 9 of 20"}
	removed := canary
	removed.RolledBack = true
	watchF := Facts{Mode: run.ModeWatch, Environment: "production", SHA: bad, Why: "9 of 20 probes failed", Healthy: "0 of 60 probes failed, p95 20ms"}
	manualF := Facts{Mode: run.ModeRollback, Environment: "production", SHA: good, Target: good, Current: bad,
		HasRollback: true, RollbackRan: true, Healthy: "0 of 12 probes failed, p95 18ms", Why: "rollback command failed"}
	with := func(f Facts, change func(*Facts)) Facts { change(&f); return f }
	tests := []decision{
		{"deploy healthy", with(deploy, func(f *Facts) { f.Verdict = run.Healthy }), Outcome{
			Statuses: st(DeployRecord, recorder.StateSuccess, "healthy: 0 of 60 probes failed, p95 20ms"),
			Commit:   cs(bad, recorder.CommitSuccess, "healthy: 0 of 60 probes failed, p95 20ms"),
			Remember: mem(bad, run.Healthy), Recovered: true, WarnDegraded: true}},
		{"deploy rolled back", with(rolled, func(f *Facts) { f.Verdict = run.RolledBack }), Outcome{
			Statuses: st(RollbackRecord, recorder.StateSuccess, "rolled back from 4d8b3f2: 0 of 12 probes failed, p95 18ms"),
			Commit:   cs(bad, recorder.CommitFailure, "rolled back: 9 of 20 probes failed"),
			Remember: mem(bad, run.Regressed, good, run.RolledBack), Tell: told(report.RolledBack, true, notify.RolledBack)}},
		{"deploy rolled back, the rollback not judged", with(rolled, func(f *Facts) { f.Verdict, f.RollbackWhy = run.Inconclusive, "metric m: no look had data" }), Outcome{
			Statuses: st(RollbackRecord, recorder.StateError, "inconclusive: metric m: no look had data"),
			Commit:   cs(bad, recorder.CommitFailure, "rolled back: 9 of 20 probes failed"),
			Remember: mem(bad, run.Regressed, good, run.Inconclusive), Tell: told(report.RolledBack, true, notify.RolledBack)}},
		{"deploy not judged", with(deploy, func(f *Facts) { f.Verdict, f.Why = run.Inconclusive, "metric m: no look had data" }), Outcome{
			Statuses: st(DeployRecord, recorder.StateError, "inconclusive: metric m: no look had data"),
			Commit:   cs(bad, recorder.CommitError, "inconclusive: metric m: no look had data"),
			Remember: mem(bad, run.Inconclusive)}},
		{"rollback command failed", with(rolled, func(f *Facts) { f.Verdict = run.RollbackFailed }), Outcome{
			Statuses: st(RollbackRecord, recorder.StateFailure, "rollback command failed"),
			Commit:   cs(bad, recorder.CommitFailure, "rollback failed after: 9 of 20 probes failed"),
			Remember: mem(bad, run.Regressed, good, run.RollbackFailed), Tell: told(report.RollbackFailed, true, notify.RollbackFailed)}},
		{"rollback unhealthy", with(rolled, func(f *Facts) { f.Verdict, f.RollbackWhy = run.RollbackFailed, "12 of 12 probes failed" }), Outcome{
			Statuses: st(RollbackRecord, recorder.StateFailure, "rollback unhealthy: 12 of 12 probes failed"),
			Commit:   cs(bad, recorder.CommitFailure, "rollback failed after: 9 of 20 probes failed"),
			Remember: mem(bad, run.Regressed, good, run.RollbackFailed), Tell: told(report.RollbackFailed, true, notify.RollbackFailed)}},
		{"shadow: would have rolled back: the deployment stays success, the commit status is not failure, nobody is told", with(deploy, func(f *Facts) {
			f.Verdict, f.Shadow, f.WouldHave = run.Regressed, true, "would have rolled back at +45.0s: 9 of 20 probes failed"
		}), Outcome{
			Statuses: st(DeployRecord, recorder.StateSuccess, "shadow: would have rolled back at +45.0s: 9 of 20 probes failed"),
			Commit:   cs(bad, recorder.CommitSuccess, "shadow: would have rolled back at +45.0s: 9 of 20 probes failed"),
			Remember: mem(bad, run.Regressed)}},
		{"shadow: would have removed the canary, promoted, the whole fleet healthy: the canary's verdict stands", with(deploy, func(f *Facts) {
			f.Verdict, f.Shadow, f.WouldHave, f.CanaryPromoted = run.Regressed, true, "would have removed the canary at +10.0s: the canary failed 9 of 20", true
		}), Outcome{
			Statuses: st(DeployRecord, recorder.StateSuccess, "shadow: would have removed the canary at +10.0s: the canary failed 9 of 20"),
			Commit:   cs(bad, recorder.CommitSuccess, "shadow: would have removed the canary at +10.0s: the canary failed 9 of 20"),
			Remember: mem(bad, run.Regressed)}},
		{"shadow: the deploy command failed: an error, never failure", with(deploy, func(f *Facts) {
			f.Verdict, f.Shadow, f.DeployFailed, f.WouldHave = run.Regressed, true, true, "would have rolled back at +3.0s: deploy command failed"
		}), Outcome{
			Statuses: st(DeployRecord, recorder.StateError, "shadow: the deploy command failed; would have rolled back at +3.0s: deploy command failed"),
			Commit:   cs(bad, recorder.CommitError, "shadow: the deploy command failed; would have rolled back at +3.0s: deploy command failed"),
			Remember: mem(bad, run.Regressed)}},
		{"shadow, healthy: as a live deploy", with(deploy, func(f *Facts) { f.Verdict, f.Shadow = run.Healthy, true }), Outcome{
			Statuses: st(DeployRecord, recorder.StateSuccess, "healthy: 0 of 60 probes failed, p95 20ms"),
			Commit:   cs(bad, recorder.CommitSuccess, "healthy: 0 of 60 probes failed, p95 20ms"),
			Remember: mem(bad, run.Healthy), Recovered: true, WarnDegraded: true}},
		{"regressed, auto-rollback off", with(deploy, func(f *Facts) { f.Verdict, f.Held = run.Regressed, AutoRollback }), Outcome{
			Statuses: st(DeployRecord, recorder.StateFailure, "regressed: 9 of 20 probes failed"),
			Commit:   cs(bad, recorder.CommitFailure, "regressed: 9 of 20 probes failed"),
			Remember: mem(bad, run.Regressed), Tell: told(report.NotRolledBack, true, "")}},
		{"regressed, superseded: the line is not stopped", with(deploy, func(f *Facts) { f.Verdict, f.Held = run.Regressed, Superseded }), Outcome{
			Statuses: st(DeployRecord, recorder.StateFailure, "regressed: 9 of 20 probes failed"),
			Commit:   cs(bad, recorder.CommitFailure, "regressed: 9 of 20 probes failed"),
			Remember: mem(bad, run.Regressed), Tell: told(report.NotRolledBack, false, "")}},

		{"canary removed", with(removed, func(f *Facts) { f.Verdict = run.RolledBack }), Outcome{
			Statuses: st(CanaryRecord, recorder.StateFailure, "canary regressed: the canary failed 9 of 20; removed"),
			Commit:   cs(bad, recorder.CommitFailure, "canary regressed: the canary failed 9 of 20; removed"),
			Remember: mem(bad, run.Regressed), Tell: told(report.RolledBack, true, notify.RolledBack)}},
		{"canary removal failed", with(removed, func(f *Facts) { f.Verdict = run.RollbackFailed }), Outcome{
			Statuses: st(CanaryRecord, recorder.StateFailure, "canary regressed: the canary failed 9 of 20; its removal failed"),
			Commit:   cs(bad, recorder.CommitFailure, "canary regressed: the canary failed 9 of 20; its removal failed"),
			Remember: mem(bad, run.Regressed), Tell: told(report.RollbackFailed, true, notify.RollbackFailed)}},
		{"canary not removed", with(canary, func(f *Facts) { f.Verdict, f.Held = run.Regressed, AutoRollback }), Outcome{
			Statuses: st(CanaryRecord, recorder.StateFailure, "canary regressed: the canary failed 9 of 20; not removed"),
			Commit:   cs(bad, recorder.CommitFailure, "canary regressed: the canary failed 9 of 20; not removed"),
			Remember: mem(bad, run.Regressed), Tell: told(report.NotRolledBack, true, "")}},
		{"canary not judged, removed", with(removed, func(f *Facts) { f.Verdict, f.Why = run.Inconclusive, "metric m: no look had data" }), Outcome{
			Statuses: st(CanaryRecord, recorder.StateError, "inconclusive: canary not judged: metric m: no look had data; removed"),
			Commit:   cs(bad, recorder.CommitError, "inconclusive: canary not judged: metric m: no look had data; removed"),
			Remember: mem(bad, run.Inconclusive)}},
		{"canary command failed before it started", with(canary, func(f *Facts) {
			f.Verdict, f.Why, f.CanaryStarted = run.Inconclusive, "x", false
		}), Outcome{
			Statuses: st(CanaryRecord, recorder.StateError, "not deployed: inconclusive: canary not judged: x"),
			Commit:   cs(bad, recorder.CommitError, "inconclusive: canary not judged: x"),
			Remember: mem(bad, run.Inconclusive)}},
		{"canary closed already", with(removed, func(f *Facts) { f.Verdict, f.CanaryOpen = run.RolledBack, false }), Outcome{
			Commit:   cs(bad, recorder.CommitFailure, "canary regressed: the canary failed 9 of 20; removed"),
			Remember: mem(bad, run.Regressed), Tell: told(report.RolledBack, true, notify.RolledBack)}},

		{"watch healthy", with(watchF, func(f *Facts) { f.Verdict = run.Healthy }), Outcome{
			Commit: cs(bad, recorder.CommitSuccess, "healthy: 0 of 60 probes failed, p95 20ms"), Remember: mem(bad, run.Healthy), WarnDegraded: true}},
		{"watch not judged", with(watchF, func(f *Facts) { f.Verdict, f.Why = run.Inconclusive, "metric m: no look had data" }), Outcome{
			Commit: cs(bad, recorder.CommitError, "inconclusive: metric m: no look had data")}},
		{"watch regressed", with(watchF, func(f *Facts) { f.Verdict = run.Regressed }), Outcome{
			Commit: cs(bad, recorder.CommitFailure, "regressed: 9 of 20 probes failed")}},
		{"watch of what runs, healthy", with(watchF, func(f *Facts) { f.Verdict, f.SHA = run.Healthy, "" }), Outcome{WarnDegraded: true}},
		{"watch of what runs, regressed", with(watchF, func(f *Facts) { f.Verdict, f.SHA = run.Regressed, "" }), Outcome{}},

		{"manual rollback", with(manualF, func(f *Facts) { f.Verdict = run.RolledBack }), Outcome{
			Statuses: st(RollbackRecord, recorder.StateSuccess, "manual rollback: 0 of 12 probes failed, p95 18ms"),
			Commit:   cs(good, recorder.CommitSuccess, "rolled back here by hand: 0 of 12 probes failed, p95 18ms"),
			Remember: mem(good, run.Healthy), Tell: told(report.ManualRollback, true, notify.RolledBack)}},
		{"manual rollback not judged", with(manualF, func(f *Facts) { f.Verdict, f.Why = run.Inconclusive, "metric m: no look had data" }), Outcome{
			Statuses: st(RollbackRecord, recorder.StateError, "inconclusive: metric m: no look had data"),
			Commit:   cs(good, recorder.CommitError, "inconclusive: metric m: no look had data"),
			Remember: mem(good, run.Inconclusive), Tell: told(report.ManualRollback, true, notify.RolledBack)}},
		{"manual rollback failed", with(manualF, func(f *Facts) { f.Verdict = run.RollbackFailed }), Outcome{
			Statuses: st(RollbackRecord, recorder.StateFailure, "rollback command failed"),
			Commit:   cs(good, recorder.CommitFailure, "rollback failed: rollback command failed"),
			Tell:     told(report.ManualRollbackFailed, true, notify.RollbackFailed)}},
	}
	checkDecide(t, tests)
}

// decision is a case of Decide: the facts, and what it decides.
type decision struct {
	name string
	f    Facts
	want Outcome
}

// checkDecide runs Decide on each case.
func checkDecide(t *testing.T, tests []decision) {
	t.Helper()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Decide(tt.f); !reflect.DeepEqual(got, tt.want) {
				t.Errorf("Decide =\n%+v\nwant\n%+v", got, tt.want)
			}
		})
	}
}

// TestStopped: a run stopped midway closes its records in flight as
// errors, never as healthy, and says what production runs.
func TestStopped(t *testing.T) {
	t.Parallel()
	base := Facts{Mode: run.ModeDeploy, Environment: "production", SHA: bad, Target: good, StoppedDesc: "cancelled during watch"}
	with := func(f Facts, change func(*Facts)) Facts { change(&f); return f }
	tests := []struct {
		name       string
		f          Facts
		statuses   []Status
		commit     *CommitStatus
		production string
	}{
		{"validate", with(base, func(f *Facts) { f.Stopped = run.Validate }), nil, nil,
			"nothing was deployed; production still runs what it ran before"},
		{"deploy not started", with(base, func(f *Facts) { f.Stopped, f.HasDeploy = run.Deploy, true }),
			st(DeployRecord, recorder.StateError, "not deployed: cancelled during watch"), nil,
			"nothing was deployed; production still runs what it ran before"},
		{"deploy midway", with(base, func(f *Facts) { f.Stopped, f.HasDeploy, f.DeployStarted, f.PendingOn = run.Deploy, true, true, bad }),
			st(DeployRecord, recorder.StateError, "cancelled during watch"), cs(bad, recorder.CommitError, "cancelled during watch"),
			"the deploy command was stopped midway, so production may run 4d8b3f2 in part, or still 9f2c1e7; nothing was rolled back"},
		{"watch", with(base, func(f *Facts) { f.Stopped, f.HasDeploy, f.DeployStarted = run.Watch, true, true }),
			st(DeployRecord, recorder.StateError, "cancelled during watch"), nil,
			"4d8b3f2 is live on production, but its watch did not finish: it was not judged, and nothing was rolled back"},
		{"rollback not started", with(base, func(f *Facts) {
			f.Stopped, f.HasDeploy, f.DeployStarted, f.HasRollback = run.Rollback, true, true, true
		}),
			st(RollbackRecord, recorder.StateError, "not deployed: cancelled during watch"), nil,
			"4d8b3f2 regressed and is still live on production: the rollback to 9f2c1e7 was not started"},
		{"rollback midway", with(base, func(f *Facts) { f.Stopped, f.HasDeploy, f.HasRollback, f.RollbackRan = run.Rollback, true, true, true }),
			st(RollbackRecord, recorder.StateError, "cancelled during watch"), nil,
			"4d8b3f2 regressed, and the rollback command was stopped midway, so production's state is unknown: it was being restored to 9f2c1e7"},
		{"confirm", with(base, func(f *Facts) { f.Stopped, f.HasRollback, f.RollbackRan = run.Confirm, true, true }),
			st(RollbackRecord, recorder.StateError, "cancelled during watch"), nil,
			"4d8b3f2 regressed and production was rolled back to 9f2c1e7, but the rollback was not confirmed healthy"},
		{"canary deploy not started", with(base, func(f *Facts) { f.Stopped, f.CanaryOpen = run.CanaryDeploy, true }),
			st(CanaryRecord, recorder.StateError, "not deployed: cancelled during watch"), nil,
			"nothing was deployed; production still runs what it ran before"},
		{"canary deploy midway", with(base, func(f *Facts) { f.Stopped, f.CanaryOpen, f.CanaryStarted = run.CanaryDeploy, true, true }),
			st(CanaryRecord, recorder.StateError, "cancelled during watch"), nil,
			"the canary command was stopped midway, so the canary subset of production may run 4d8b3f2 in part; the rest of production never got it, and nothing was rolled back"},
		{"canary watch", with(base, func(f *Facts) { f.Stopped, f.CanaryOpen, f.CanaryStarted = run.CanaryWatch, true, true }),
			st(CanaryRecord, recorder.StateError, "cancelled during watch"), nil,
			"4d8b3f2 is live on the canary subset of production, unjudged, and was not removed; the rest of production never got it"},
		{"canary removal not started", with(base, func(f *Facts) { f.Stopped, f.CanaryOpen, f.CanaryStarted = run.CanaryRollback, true, true }),
			st(CanaryRecord, recorder.StateError, "cancelled during watch"), nil,
			"4d8b3f2 regressed as a canary and is still live on the canary subset of production: its removal was not started; the rest of production never got it"},
		{"canary removal midway", with(base, func(f *Facts) {
			f.Stopped, f.CanaryOpen, f.CanaryStarted, f.CanaryRemoving = run.CanaryRollback, true, true, true
		}), st(CanaryRecord, recorder.StateError, "cancelled during watch"), nil,
			"4d8b3f2 regressed as a canary and its removal was stopped midway, so the canary subset's state is unknown: it was being put back on 9f2c1e7; the rest of production never got 4d8b3f2"},
		{"promoted, the fleet's deploy not started", with(base, func(f *Facts) { f.Stopped, f.CanaryPromoted, f.HasDeploy = run.Deploy, true, true }),
			st(DeployRecord, recorder.StateError, "not deployed: cancelled during watch"), nil,
			"4d8b3f2 passed as a canary and is live on the canary subset of production; the deploy to the whole fleet was not started"},
		{"a canary removed, records unwritten", with(base, func(f *Facts) { f.Stopped, f.Stage, f.RolledBack = run.Record, run.StageCanary, true }), nil, nil,
			"4d8b3f2 regressed as a canary and was removed; the rest of production never got it"},
		{"watch mode, validate", with(base, func(f *Facts) { f.Mode, f.Stopped = run.ModeWatch, run.Validate }), nil, nil, "nothing was watched"},
		{"watch mode", with(base, func(f *Facts) { f.Mode, f.Stopped, f.PendingOn = run.ModeWatch, run.Watch, bad }), nil,
			cs(bad, recorder.CommitError, "cancelled during watch"), "the watch of 4d8b3f2 did not finish, so it was not judged"},
		{"manual, not started", with(base, func(f *Facts) {
			f.Mode, f.Stopped, f.SHA, f.Current, f.HasRollback = run.ModeRollback, run.Rollback, good, bad, true
		}),
			st(RollbackRecord, recorder.StateError, "not deployed: cancelled during watch"), nil, "nothing was rolled back; production still runs 4d8b3f2"},
		{"manual, midway", with(base, func(f *Facts) {
			f.Mode, f.Stopped, f.SHA, f.Current, f.HasRollback, f.RollbackRan = run.ModeRollback, run.Rollback, good, "", true, true
		}), st(RollbackRecord, recorder.StateError, "cancelled during watch"), nil,
			"the rollback command was stopped midway, so production's state is unknown: it was being restored to 9f2c1e7 (replacing an unknown build)"},
		{"manual, confirm", with(base, func(f *Facts) {
			f.Mode, f.Stopped, f.SHA, f.HasRollback, f.RollbackRan = run.ModeRollback, run.Confirm, good, true, true
		}),
			st(RollbackRecord, recorder.StateError, "cancelled during watch"), nil,
			"production was rolled back to 9f2c1e7, but the rollback was not confirmed healthy"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Decide(tt.f)
			want := Outcome{Statuses: tt.statuses, Commit: tt.commit, Production: tt.production}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("Decide =\n%+v\nwant\n%+v", got, want)
			}
		})
	}
}
