// Package target says which commit a rollback goes back to, and what an
// environment runs now, from what is known of its past, in a fixed order:
// the inputs, immune's GitHub records, the state file, the push event.
// It decides; it deploys nothing and writes nothing.
package target

import (
	"context"
	"fmt"

	"github.com/immune-cd/immune/internal/config"
	"github.com/immune-cd/immune/internal/recorder"
	"github.com/immune-cd/immune/internal/sha"
	"github.com/immune-cd/immune/internal/state"
)

// Records are the reads of immune's GitHub history the choice needs;
// *recorder.Recorder has them.
type Records interface {
	Enabled() bool
	LastGood(ctx context.Context, exclude string) (recorder.Deployment, bool, error)
	Current(ctx context.Context) (recorder.Deployment, bool, error)
}

// Finder finds targets for one run.
type Finder struct {
	Config  *config.Config
	Records Records
	// Before is the push event's before ("" for other events).
	Before string
	// Resolve returns the full SHA of a commit of the repository, through
	// GitHub; it is called only when Records is enabled.
	Resolve func(ctx context.Context, want string) (string, error)
	// Warn says that a source could not be read, and the choice went on.
	Warn func(title, msg string)
}

// Rollback is the commit a deploy rolls back to, and where it came from,
// in order: the previous-sha input; the newest of immune's GitHub
// deployments watched healthy, of another commit; the state file; the push
// event's before. "" when none is known.
func (f Finder) Rollback(ctx context.Context) (commit, source string) {
	cfg := f.Config
	if cfg.PreviousSHA != "" {
		return cfg.PreviousSHA, cfg.Input("previous-sha")
	}
	if good, found, err := f.Records.LastGood(ctx, cfg.SHA); err == nil && found {
		return good.SHA, fmt.Sprintf("GitHub deployment %d", good.ID)
	}
	sf := &state.File{Path: cfg.StateFile}
	if last, err := sf.LastGood(cfg.Environment, cfg.SHA); err != nil {
		f.Warn("State file unreadable", err.Error())
	} else if last != "" {
		return last, "the state file"
	}
	if b := f.Before; b != "" && !sha.Same(b, cfg.SHA) {
		return b, "the push event's before"
	}
	return "", ""
}

// Current is what the environment runs now: the newest of immune's
// deployments that ran, else the newest entry of the state file. Without
// it a rollback by hand needs the sha input: then a failed read is no
// error, and "" is returned.
func (f Finder) Current(ctx context.Context) (string, error) {
	cfg := f.Config
	if f.Records.Enabled() {
		d, found, err := f.Records.Current(ctx)
		switch {
		case err != nil && cfg.SHA == "":
			return "", fmt.Errorf("cannot find what %s runs, so cannot pick the commit one step back: %w; pass %s", cfg.Environment, err, cfg.Input("sha"))
		case err != nil:
			return "", nil
		case found:
			return d.SHA, nil
		}
	}
	sf := &state.File{Path: cfg.StateFile}
	return sf.Current(cfg.Environment)
}

// Manual is the commit a rollback by hand deploys, given what runs now:
// the sha input (a commit of the repository, not what runs); else the
// newest of immune's deployments watched healthy, of another commit than
// current; else the state file's.
func (f Finder) Manual(ctx context.Context, current string) (commit, source string, err error) {
	cfg := f.Config
	if want := cfg.SHA; want != "" {
		full, err := f.resolve(ctx, want)
		if err != nil {
			return "", "", err
		}
		if current != "" && sha.Same(full, current) {
			return "", "", fmt.Errorf("input sha: %s already runs %s; nothing to roll back", cfg.Environment, full)
		}
		return full, cfg.Input("sha"), nil
	}
	if f.Records.Enabled() {
		good, found, err := f.Records.LastGood(ctx, current)
		if err != nil {
			return "", "", fmt.Errorf("cannot read the deployments of %s to pick a target: %w; pass %s", cfg.Environment, err, cfg.Input("sha"))
		}
		if found {
			runs := sha.Short(current)
			if runs == "" {
				runs = "an unknown build"
			}
			return good.SHA, fmt.Sprintf("GitHub deployment %d, the last healthy one of another commit than %s", good.ID, runs), nil
		}
	}
	sf := &state.File{Path: cfg.StateFile}
	if last, err := sf.LastGood(cfg.Environment, current); err == nil && last != "" {
		return last, "the state file", nil
	}
	return "", "", fmt.Errorf("no earlier healthy deployment of %s to roll back to; pass %s", cfg.Environment, cfg.Input("sha"))
}

// resolve turns the sha input into the full SHA of a commit of the
// repository: through GitHub, or, without it, as given if it is whole.
func (f Finder) resolve(ctx context.Context, want string) (string, error) {
	if !f.Records.Enabled() {
		if !sha.IsFull(want) {
			return "", fmt.Errorf("input sha: %q is a short SHA; without a github-token only a full 40-character SHA can be used", want)
		}
		return want, nil
	}
	return f.Resolve(ctx, want)
}
