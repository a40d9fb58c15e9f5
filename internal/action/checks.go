package action

import (
	"context"
	"errors"

	"github.com/immune-cd/immune/internal/run"
	"github.com/immune-cd/immune/internal/state"
)

// remember records a verdict about a commit in the state file.
func (r *runner) remember(commit string, v run.Verdict) {
	sf := &state.File{Path: r.cfg.StateFile}
	if err := sf.Record(r.cfg.Environment, state.Entry{SHA: commit, Verdict: v, At: r.d.Clock.Now().UTC()}); err != nil {
		r.Warn("State file not updated", err.Error())
	}
}

// checkStateFile refuses a state-file that is not immune's before anything
// is deployed: it would be neither read nor written.
func (r *runner) checkStateFile() bool {
	if err := (&state.File{Path: r.cfg.StateFile}).Check(); errors.Is(err, state.ErrNotOurs) {
		r.refuse("Invalid input", "input state-file: "+err.Error())
		return false
	}
	return true
}

// checkMetrics checks the metrics of a watch of commit before anything is
// deployed: with ask, by sending every query once (watch.Watcher.Check);
// without, only what can be checked without Prometheus (Prepare: a manual
// rollback never waits on it). A query that cannot run is invalid input.
func (r *runner) checkMetrics(ctx context.Context, commit, previous string, ask bool) bool {
	check := r.watch.Check
	if !ask {
		check = func(_ context.Context, commit, previous string) error { return r.watch.Prepare(commit, previous) }
	}
	if err := check(ctx, commit, previous); err != nil {
		r.refuse("Invalid input", err.Error())
		return false
	}
	return true
}
