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
	culprit = "3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c3c"
	shipped = "2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b2b"
)

// The rows of a bisected run: the good part's deploy is a deploy like any,
// the line stays stopped for the culprit, and only the culprit's story is
// told.
func TestDecideBisected(t *testing.T) {
	t.Parallel()
	ship := Facts{Mode: run.ModeDeploy, Stage: run.StageFull, Environment: "production", SHA: shipped, Target: good,
		HasDeploy: true, DeployStarted: true, Healthy: "0 of 60 probes failed, p95 20ms", Why: "9 of 20 probes failed",
		Bisect: &Bisection{Head: bad, Culprit: culprit, Suspect: culprit, Shipped: shipped}}
	with := func(f Facts, change func(*Facts)) Facts {
		b := *f.Bisect
		f.Bisect = &b
		change(&f)
		return f
	}
	bisected := &Tell{Story: report.Bisected, StopsLine: true, Hook: notify.RolledBack}
	tests := []decision{
		{"the good part shipped healthy: no recovery, the culprit told", with(ship, func(f *Facts) { f.Verdict = run.Healthy }), Outcome{
			Statuses: st(DeployRecord, recorder.StateSuccess, "healthy: 0 of 60 probes failed, p95 20ms"),
			Commit:   cs(shipped, recorder.CommitSuccess, "healthy: 0 of 60 probes failed, p95 20ms"),
			Remember: mem(shipped, run.Healthy, culprit, run.Regressed), WarnDegraded: true, Tell: bisected}},
		{"the good part not judged: the culprit told all the same", with(ship, func(f *Facts) { f.Verdict, f.Why = run.Inconclusive, "metric m: no look had data" }), Outcome{
			Statuses: st(DeployRecord, recorder.StateError, "inconclusive: metric m: no look had data"),
			Commit:   cs(shipped, recorder.CommitError, "inconclusive: metric m: no look had data"),
			Remember: mem(shipped, run.Inconclusive, culprit, run.Regressed), Tell: bisected}},
		{"the good part regressed too: rolled back and told as any deploy", with(ship, func(f *Facts) {
			f.Verdict, f.HasRollback, f.RollbackRan, f.RolledBack, f.RollbackHealthy = run.RolledBack, true, true, true, "0 of 12 probes failed"
		}), Outcome{
			Statuses: st(RollbackRecord, recorder.StateSuccess, "rolled back from 2b2b2b2: 0 of 12 probes failed"),
			Commit:   cs(shipped, recorder.CommitFailure, "rolled back: 9 of 20 probes failed"),
			Remember: mem(shipped, run.Regressed, good, run.RolledBack), Tell: told(report.RolledBack, true, notify.RolledBack)}},
		{"nothing shipped: the culprit told", with(ship, func(f *Facts) { f.SHA, f.Verdict, f.Bisect.Shipped = bad, run.RolledBack, "" }), Outcome{
			Remember: mem(culprit, run.Regressed), Tell: bisected}},
		{"no culprit named: the suspects told", with(ship, func(f *Facts) { f.SHA, f.Verdict, f.Bisect.Shipped, f.Bisect.Culprit = bad, run.RolledBack, "", "" }), Outcome{
			Tell: bisected}},
		{"a step's removal failed", with(ship, func(f *Facts) {
			f.SHA, f.Verdict, f.Bisect.Shipped, f.Bisect.RemovalFailed = bad, run.RollbackFailed, "", true
		}), Outcome{
			Tell: told(report.RollbackFailed, true, notify.RollbackFailed)}},
	}
	checkDecide(t, tests)
}

// The batch's records close when the bisection begins, as Decide would
// close them, but nobody is told yet.
func TestBatch(t *testing.T) {
	t.Parallel()
	f := Facts{Mode: run.ModeDeploy, Stage: run.StageCanary, Verdict: run.RolledBack, Environment: "production", SHA: bad, Target: good,
		CanaryOpen: true, CanaryStarted: true, RolledBack: true, Why: "the canary failed 9 of 20",
		Bisect: &Bisection{Head: bad}, BisectOpen: true}
	want := Outcome{
		Statuses: st(CanaryRecord, recorder.StateFailure, "canary regressed: the canary failed 9 of 20; removed"),
		Commit:   cs(bad, recorder.CommitFailure, "canary regressed: the canary failed 9 of 20; removed"),
		Remember: mem(bad, run.Regressed)}
	if got := Batch(f); !reflect.DeepEqual(got, want) {
		t.Errorf("Batch =\n%+v\nwant\n%+v", got, want)
	}
}

func TestStep(t *testing.T) {
	t.Parallel()
	tests := []struct {
		v       run.Verdict
		culprit bool
		removal string
		st      Status
		cs      CommitStatus
	}{
		{run.Healthy, false, "", Status{BisectRecord, recorder.StateSuccess, "good: 0 of 60 failed"},
			CommitStatus{culprit, recorder.CommitSuccess, "good in the bisection of 4d8b3f2's batch: 0 of 60 failed"}},
		{run.Regressed, false, "", Status{BisectRecord, recorder.StateFailure, "bad: 0 of 60 failed"},
			CommitStatus{culprit, recorder.CommitFailure, "bad in the bisection of 4d8b3f2's batch: 0 of 60 failed"}},
		{run.Regressed, true, "", Status{BisectRecord, recorder.StateFailure, "culprit: the first bad commit: 0 of 60 failed"},
			CommitStatus{culprit, recorder.CommitFailure, "the first bad commit of 4d8b3f2's batch (bisection): 0 of 60 failed"}},
		{run.Inconclusive, false, "exit 3", Status{BisectRecord, recorder.StateError, "inconclusive: bisection step not judged: 0 of 60 failed; its removal failed"},
			CommitStatus{culprit, recorder.CommitError, "inconclusive: not judged in the bisection of 4d8b3f2's batch: 0 of 60 failed"}},
	}
	for _, tt := range tests {
		st, cs := Step(culprit, bad, tt.v, "0 of 60 failed", tt.culprit, tt.removal)
		if st != tt.st || cs != tt.cs {
			t.Errorf("Step(%s, culprit %v) = %+v, %+v; want %+v, %+v", tt.v, tt.culprit, st, cs, tt.st, tt.cs)
		}
	}
}

// A run stopped during its bisection closes the step in flight, says what
// runs where, and tells what nobody heard yet: the batch regressed and was
// rolled back (with what the steps found), or, when a step may still be
// live, a rollback that failed. The line stops either way.
func TestStoppedDuringBisection(t *testing.T) {
	t.Parallel()
	base := Facts{Mode: run.ModeDeploy, Stage: run.StageCanary, Environment: "production", SHA: bad, Target: good, Stopped: run.Bisect, StoppedDesc: "cancelled during bisect"}
	with := func(b Bisection, open bool) Facts { f := base; f.Bisect, f.BisectOpen = &b, open; return f }
	tests := []struct {
		name       string
		f          Facts
		statuses   []Status
		production string
		tell       *Tell
	}{
		{"between steps", with(Bisection{Head: bad}, false), nil,
			"4d8b3f2 regressed and was rolled back, and the bisection of its batch was stopped between steps; production runs 9f2c1e7", &Tell{Story: report.Bisected, StopsLine: true, Hook: notify.RolledBack}},
		{"before the step deployed", with(Bisection{Head: bad, Step: culprit}, true), st(BisectRecord, recorder.StateError, "not deployed: cancelled during bisect"),
			"4d8b3f2 regressed and was rolled back, and the bisection of its batch was stopped before its step on 3c3c3c3 deployed anything; production runs 9f2c1e7", &Tell{Story: report.Bisected, StopsLine: true, Hook: notify.RolledBack}},
		{"the step put back", with(Bisection{Head: bad, Step: culprit, StepStarted: true, StepRemoved: true}, true), st(BisectRecord, recorder.StateError, "cancelled during bisect"),
			"4d8b3f2 regressed and was rolled back, and the bisection of its batch was stopped during its step on 3c3c3c3, which was put back on 9f2c1e7: production runs 9f2c1e7", &Tell{Story: report.Bisected, StopsLine: true, Hook: notify.RolledBack}},
		{"the canary not put back", with(Bisection{Head: bad, Step: culprit, StepStarted: true}, true), st(BisectRecord, recorder.StateError, "cancelled during bisect"),
			"4d8b3f2 regressed and was rolled back, and the bisection of its batch was stopped during its step on 3c3c3c3, and putting the canary subset of production back on 9f2c1e7 failed, so it may run 3c3c3c3; the rest of production runs 9f2c1e7", &Tell{Story: report.RollbackFailed, StopsLine: true, Hook: notify.RollbackFailed}},
		{"the fleet not put back", with(Bisection{Head: bad, Step: culprit, StepStarted: true, Production: true}, true), st(BisectRecord, recorder.StateError, "cancelled during bisect"),
			"4d8b3f2 regressed and was rolled back, and the bisection of its batch was stopped during its step on 3c3c3c3, and putting production back on 9f2c1e7 failed, so production may run 3c3c3c3", &Tell{Story: report.RollbackFailed, StopsLine: true, Hook: notify.RollbackFailed}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := Decide(tt.f)
			want := Outcome{Statuses: tt.statuses, Production: tt.production, Tell: tt.tell}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("Decide =\n%+v\nwant\n%+v", got, want)
			}
		})
	}
}
