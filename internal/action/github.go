package action

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/immune-cd/immune/internal/ghapi"
)

// GitHub is what a run records in GitHub and reads back from it.
// *ghapi.Client implements it.
type GitHub interface {
	CreateDeployment(ctx context.Context, r ghapi.DeploymentRequest) (ghapi.Deployment, error)
	SetDeploymentStatus(ctx context.Context, id int64, s ghapi.DeploymentStatus) error
	SetCommitStatus(ctx context.Context, s ghapi.CommitStatus) error
	Deployments(ctx context.Context, environment string, max int) ([]ghapi.Deployment, error)
	LastKnownGood(ctx context.Context, environment, excludeSHA string, max int) (ghapi.Deployment, bool, error)
	NewerDeployments(ctx context.Context, environment string, than ghapi.Deployment) ([]ghapi.Deployment, error)
	ResolveCommit(ctx context.Context, ref string) (string, error)
	PullRequestLabels(ctx context.Context, number int) ([]string, error)
	PullRequestCommits(ctx context.Context, number int) ([]ghapi.Commit, error)
}

// historyLimit bounds how many deployments are read to find a target.
const historyLimit = 100

// records writes the run into GitHub without ever letting GitHub stop the
// deploy, the watch or the rollback: a failed call becomes a line in the
// log and, at the end, one warning listing what could not be recorded.
// After GitHub proved unreachable, later calls are skipped rather than
// retried again, so a GitHub outage costs one round of retries, not one per
// call.
type records struct {
	gh      GitHub // nil: nothing is recorded
	log     *logger
	missing []string // what could not be recorded or read
	down    error    // set once GitHub proved unreachable
}

// enabled reports whether GitHub is in use.
func (rc *records) enabled() bool { return rc.gh != nil }

// call runs fn against GitHub unless it is disabled or down. what names the
// call for the log ("create the deployment").
func (rc *records) call(what string, fn func(GitHub) error) error {
	if rc.gh == nil {
		return errNoGitHub
	}
	if rc.down != nil {
		rc.missing = append(rc.missing, what+" (skipped: GitHub unreachable)")
		return rc.down
	}
	err := fn(rc.gh)
	if err == nil {
		return nil
	}
	var unavailable *ghapi.UnavailableError
	var limited *ghapi.RateLimitError
	if errors.As(err, &unavailable) || errors.As(err, &limited) || errors.Is(err, context.DeadlineExceeded) {
		rc.down = err
	}
	rc.missing = append(rc.missing, what)
	rc.log.Printf("GitHub: could not %s: %v", what, err)
	return err
}

var errNoGitHub = errors.New("no GitHub token")

// warnMissing ends the run with one warning naming what was not recorded.
func (rc *records) warnMissing(warn func(title, msg string)) {
	if len(rc.missing) == 0 {
		return
	}
	msg := "the deploy, watch and rollback ran, but GitHub could not record or answer: " + strings.Join(rc.missing, "; ")
	if rc.down != nil {
		msg += fmt.Sprintf(" (%v)", rc.down)
	}
	warn("GitHub records incomplete", msg)
}
