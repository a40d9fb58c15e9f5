package recorder

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/immune-cd/immune/internal/ghapi"
	"github.com/immune-cd/immune/internal/sha"
)

// GitHub is what the recorder needs of GitHub's API. *ghapi.Client
// implements it.
type GitHub interface {
	CreateDeployment(ctx context.Context, r ghapi.DeploymentRequest) (ghapi.Deployment, error)
	SetDeploymentStatus(ctx context.Context, id int64, s ghapi.DeploymentStatus) error
	SetCommitStatus(ctx context.Context, s ghapi.CommitStatus) error
	WalkDeployments(ctx context.Context, environment string, limit int, fn func(*ghapi.Deployment) (bool, error)) error
	LatestStatus(ctx context.Context, d *ghapi.Deployment) error
	ResolveCommit(ctx context.Context, ref string) (string, error)
	PullRequestLabels(ctx context.Context, number int) ([]string, error)
	PullRequestCommits(ctx context.Context, number int) ([]ghapi.Commit, error)
}

// HistoryLimit bounds how many deployments one read of the history walks.
// Job deployments interleave with immune's (one per job), so it is set
// well above the number of immune's deployments a rule needs.
const HistoryLimit = 300

// Options configures a Recorder.
type Options struct {
	// GitHub is the API; nil records nothing.
	GitHub GitHub
	// Environment is the one environment this run records in.
	Environment string
	// RunURL links statuses to the workflow run.
	RunURL string
	// EnvironmentURL is set on deployment statuses.
	EnvironmentURL string
	// Logf receives a line per failed call and per ignored deployment.
	Logf func(format string, args ...any)
	// Now is the clock that judges whether a deployment still holds the
	// environment.
	Now func() time.Time
}

// Recorder reads and writes one environment's records.
type Recorder struct {
	o       Options
	missing []string // what could not be recorded or read
	down    error    // set once GitHub proved unreachable
	ignored map[int64]bool
}

// New returns a Recorder.
func New(o Options) *Recorder {
	if o.Logf == nil {
		o.Logf = func(string, ...any) {}
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	return &Recorder{o: o, ignored: map[int64]bool{}}
}

// ErrDisabled is returned by reads when there is no GitHub to read.
var ErrDisabled = errors.New("no GitHub token")

// Enabled reports whether GitHub is in use.
func (r *Recorder) Enabled() bool { return r.o.GitHub != nil }

// call runs fn against GitHub unless it is disabled or down. what names the
// call for the log ("create the deployment").
func (r *Recorder) call(what string, fn func(GitHub) error) error {
	if r.o.GitHub == nil {
		return ErrDisabled
	}
	if r.down != nil {
		r.missing = append(r.missing, what+" (skipped: GitHub unreachable)")
		return r.down
	}
	err := fn(r.o.GitHub)
	if err == nil {
		return nil
	}
	var unavailable *ghapi.UnavailableError
	var limited *ghapi.RateLimitError
	if errors.As(err, &unavailable) || errors.As(err, &limited) || errors.Is(err, context.DeadlineExceeded) {
		r.down = err
	}
	r.missing = append(r.missing, what)
	r.o.Logf("GitHub: could not %s: %v", what, err)
	return err
}

// Missing lists what could not be recorded or read, and why GitHub was
// given up on, if it was.
func (r *Recorder) Missing() (what []string, down error) { return r.missing, r.down }

// walk reads the environment's history newest first through fn, skipping
// the deployments that keep is false for, which are listed in the log once.
func (r *Recorder) walk(ctx context.Context, what string, keep func(Origin) bool, fn func(*ghapi.Deployment) (bool, error)) error {
	var skipped []ghapi.Deployment
	seen := 0
	err := r.call(what, func(gh GitHub) error {
		return gh.WalkDeployments(ctx, r.o.Environment, HistoryLimit, func(d *ghapi.Deployment) (bool, error) {
			seen++
			if o := OriginOf(*d); !keep(o) {
				if !r.ignored[d.ID] {
					r.ignored[d.ID] = true
					skipped = append(skipped, *d)
				}
				return true, nil
			}
			return fn(d)
		})
	})
	r.logIgnored(skipped)
	if err == nil && seen >= HistoryLimit {
		r.o.Logf("GitHub: read the newest %d deployments of %s to %s and stopped there", HistoryLimit, r.o.Environment, what)
	}
	return err
}

// logIgnored lists, in one line, deployments the rules skipped.
func (r *Recorder) logIgnored(ds []ghapi.Deployment) {
	if len(ds) == 0 {
		return
	}
	byOrigin := map[Origin][]string{}
	for _, d := range ds {
		byOrigin[OriginOf(d)] = append(byOrigin[OriginOf(d)], fmt.Sprintf("%d (%s, ref %s)", d.ID, sha.Short(d.SHA), d.Ref))
	}
	var parts []string
	for _, o := range []Origin{Job, Foreign} {
		ids := byOrigin[o]
		if len(ids) == 0 {
			continue
		}
		shown := ids
		more := ""
		if len(ids) > 5 {
			shown, more = ids[:5], fmt.Sprintf(" and %d more", len(ids)-5)
		}
		parts = append(parts, fmt.Sprintf("%d %s: %s%s", len(ids), o, strings.Join(shown, ", "), more))
	}
	sort.Strings(parts)
	r.o.Logf("History of %s: not immune's, so not a rollback target nor what runs now: %s", r.o.Environment, strings.Join(parts, "; "))
}

func onlyOurs(o Origin) bool    { return o == Ours }
func notAJobs(o Origin) bool    { return o != Job }
func (r *Recorder) env() string { return r.o.Environment }

// LastGood finds the newest of immune's deployments that was watched
// healthy and whose commit is not exclude.
func (r *Recorder) LastGood(ctx context.Context, exclude string) (ghapi.Deployment, bool, error) {
	var found *ghapi.Deployment
	err := r.walk(ctx, "read the last healthy deployment of "+r.env(), onlyOurs, func(d *ghapi.Deployment) (bool, error) {
		if exclude != "" && sha.Same(d.SHA, exclude) {
			return true, nil
		}
		if err := r.o.GitHub.LatestStatus(ctx, d); err != nil {
			return false, err
		}
		if wasHealthy(*d) {
			found = d
			return false, nil
		}
		return true, nil
	})
	if err != nil || found == nil {
		return ghapi.Deployment{}, false, err
	}
	return *found, true, nil
}

// Current finds what the environment runs now: the newest of immune's
// deployments that got as far as its command.
func (r *Recorder) Current(ctx context.Context) (ghapi.Deployment, bool, error) {
	var found *ghapi.Deployment
	err := r.walk(ctx, "find what "+r.env()+" runs now", onlyOurs, func(d *ghapi.Deployment) (bool, error) {
		if err := r.o.GitHub.LatestStatus(ctx, d); err != nil {
			return false, err
		}
		if ran(*d) {
			found = d
			return false, nil
		}
		return true, nil
	})
	if err != nil || found == nil {
		return ghapi.Deployment{}, false, err
	}
	return *found, true, nil
}

// Newer returns the deployments created after than that went live or are
// going live, by immune or not (jobs' excepted), newest first: rolling back
// than would undo them.
func (r *Recorder) Newer(ctx context.Context, than ghapi.Deployment) ([]ghapi.Deployment, error) {
	var newer []ghapi.Deployment
	err := r.walk(ctx, "check for deployments newer than "+fmt.Sprint(than.ID), notAJobs, func(d *ghapi.Deployment) (bool, error) {
		if d.ID <= than.ID {
			return false, nil // newest first: the rest is older
		}
		if err := r.o.GitHub.LatestStatus(ctx, d); err != nil {
			return false, err
		}
		if started(*d) {
			newer = append(newer, *d)
		}
		return true, nil
	})
	return newer, err
}

// Holders returns immune's deployments that hold the environment now
// (queued or in progress within their run's hold), older than before (all
// when before is 0), newest first.
func (r *Recorder) Holders(ctx context.Context, before int64) ([]ghapi.Deployment, error) {
	now := r.o.Now()
	var held []ghapi.Deployment
	err := r.walk(ctx, "check whether another run is deploying to "+r.env(), onlyOurs, func(d *ghapi.Deployment) (bool, error) {
		if before != 0 && d.ID >= before {
			return true, nil
		}
		p, _ := PayloadOf(*d)
		if !now.Before(d.CreatedAt.Add(p.Hold())) {
			return true, nil // its run is over, or presumed dead
		}
		if err := r.o.GitHub.LatestStatus(ctx, d); err != nil {
			return false, err
		}
		if holds(*d, now) {
			held = append(held, *d)
		}
		return true, nil
	})
	return held, err
}

// Line reads whether the line is stopped.
func (r *Recorder) Line(ctx context.Context) (Line, error) {
	var history []ghapi.Deployment
	err := r.walk(ctx, "read the deployments of "+r.env(), notAJobs, func(d *ghapi.Deployment) (bool, error) {
		if len(history) == 0 {
			if err := r.o.GitHub.LatestStatus(ctx, d); err != nil {
				return false, err
			}
		}
		history = append(history, *d)
		// A rollback made without immune's payload needs the commit it
		// replaced: read on until another commit shows.
		_, ours := PayloadOf(history[0])
		needMore := Task(history[0].Task) == TaskRollback && !ours && sha.Same(d.SHA, history[0].SHA)
		return needMore, nil
	})
	if err != nil {
		return Line{}, err
	}
	return LineOf(history), nil
}

// Resolve returns the full SHA of a commit of the repository.
func (r *Recorder) Resolve(ctx context.Context, ref string) (string, error) {
	var full string
	err := r.call("resolve "+ref, func(gh GitHub) (err error) {
		full, err = gh.ResolveCommit(ctx, ref)
		return err
	})
	return full, err
}

// Labels returns a pull request's labels.
func (r *Recorder) Labels(ctx context.Context, pr int) ([]string, error) {
	var labels []string
	err := r.call(fmt.Sprintf("read the labels of #%d", pr), func(gh GitHub) (err error) {
		labels, err = gh.PullRequestLabels(ctx, pr)
		return err
	})
	return labels, err
}

// Commits returns a pull request's commits.
func (r *Recorder) Commits(ctx context.Context, pr int) ([]ghapi.Commit, error) {
	var commits []ghapi.Commit
	err := r.call(fmt.Sprintf("read the commits of #%d", pr), func(gh GitHub) (err error) {
		commits, err = gh.PullRequestCommits(ctx, pr)
		return err
	})
	return commits, err
}

// Create records a deployment of commit with immune's payload, ref = the
// full SHA, and the given first state (queued or in_progress). The zero
// Deployment means nothing was recorded.
func (r *Recorder) Create(ctx context.Context, task Task, commit string, p Payload, first State, desc string) ghapi.Deployment {
	if !r.Enabled() {
		return ghapi.Deployment{}
	}
	var dep ghapi.Deployment
	err := r.call(fmt.Sprintf("create the %s deployment of %s", task, sha.Short(commit)), func(gh GitHub) (err error) {
		dep, err = gh.CreateDeployment(ctx, ghapi.DeploymentRequest{
			SHA:         commit,
			Environment: r.o.Environment,
			Task:        string(task),
			Description: fmt.Sprintf("immune %s of %s", task, sha.Short(commit)),
			Payload:     p.Map(),
		})
		return err
	})
	if err != nil && dep.ID == 0 {
		return ghapi.Deployment{}
	}
	r.SetStatus(ctx, dep, first, desc)
	dep.LatestState, dep.LatestDescription = string(first), desc
	return dep
}

// SetStatus adds a status to a recorded deployment; the zero Deployment is
// skipped.
func (r *Recorder) SetStatus(ctx context.Context, dep ghapi.Deployment, state State, desc string) {
	if dep.ID == 0 {
		return
	}
	s := ghapi.DeploymentStatus{
		State:          string(state),
		Description:    desc,
		LogURL:         r.o.RunURL,
		EnvironmentURL: r.o.EnvironmentURL,
	}
	if state == StateSuccess {
		// Keep earlier successes "success": they are the rollback targets
		// later runs look for.
		no := false
		s.AutoInactive = &no
	}
	_ = r.call(fmt.Sprintf("set deployment %d to %s", dep.ID, state), func(gh GitHub) error {
		return gh.SetDeploymentStatus(ctx, dep.ID, s)
	})
}

// CommitStatus sets the immune/<environment> commit status on a commit,
// which must be a full SHA (GitHub refuses abbreviations).
func (r *Recorder) CommitStatus(ctx context.Context, commit string, state CommitState, desc string) {
	if !r.Enabled() {
		return
	}
	if !sha.IsFull(commit) {
		r.missing = append(r.missing, fmt.Sprintf("set the %s commit status of %q (not a full commit SHA)", StatusContext(r.env()), commit))
		return
	}
	_ = r.call(fmt.Sprintf("set the %s commit status to %s", StatusContext(r.env()), state), func(gh GitHub) error {
		return gh.SetCommitStatus(ctx, ghapi.CommitStatus{
			SHA: commit, State: string(state), Context: StatusContext(r.env()), Description: desc, TargetURL: r.o.RunURL,
		})
	})
}
