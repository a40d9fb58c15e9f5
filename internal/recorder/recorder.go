package recorder

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
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
	// CallBudget bounds each call, retries included; a call that takes
	// longer is treated like GitHub being down, for the rest of the run.
	// Default DefaultCallBudget.
	CallBudget time.Duration
	// RequestID makes each create recognisable, so that a create retried
	// after a lost answer finds the deployment the first attempt made.
	// Default: random.
	RequestID func() string
}

// DefaultCallBudget is the time one call to GitHub may take.
const DefaultCallBudget = 5 * time.Second

// MaxStatusReads bounds how many deployment statuses one read of the
// history fetches (one request each).
const MaxStatusReads = 50

// Recorder reads and writes one environment's records. Reads answer at
// once (within the call budget); writes go to a queue that one goroutine
// works through in order, so that no write ever holds up a deploy or a
// rollback. Flush waits for the queue.
type Recorder struct {
	o Options

	mu      sync.Mutex
	missing []string // what could not be recorded or read
	down    error    // set once GitHub proved unreachable or too slow
	ignored map[int64]bool

	queue   []func()
	working bool
	idle    *sync.Cond // signalled when the queue is empty and no write runs
}

// New returns a Recorder.
func New(o Options) *Recorder {
	if o.Logf == nil {
		o.Logf = func(string, ...any) {}
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.CallBudget <= 0 {
		o.CallBudget = DefaultCallBudget
	}
	if o.RequestID == nil {
		o.RequestID = randomID
	}
	r := &Recorder{o: o, ignored: map[int64]bool{}}
	r.idle = sync.NewCond(&r.mu)
	return r
}

func randomID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// ErrDisabled is returned by reads when there is no GitHub to read.
var ErrDisabled = errors.New("no GitHub token")

// Enabled reports whether GitHub is in use.
func (r *Recorder) Enabled() bool { return r.o.GitHub != nil }

// call runs fn against GitHub, within the call budget, unless GitHub is
// disabled or down. what names the call for the log ("create the
// deployment"). A call cut short by the budget marks GitHub down: a slow
// GitHub is treated like a missing one, so that it costs the run one
// budget, not one per call.
func (r *Recorder) call(ctx context.Context, what string, fn func(context.Context, GitHub) error) error {
	if r.o.GitHub == nil {
		return ErrDisabled
	}
	r.mu.Lock()
	down := r.down
	if down != nil {
		r.missing = append(r.missing, what+" (skipped: GitHub unreachable)")
	}
	r.mu.Unlock()
	if down != nil {
		return down
	}
	cctx, cancel := context.WithTimeout(ctx, r.o.CallBudget)
	defer cancel()
	err := fn(cctx, r.o.GitHub)
	if err == nil {
		return nil
	}
	var unavailable *ghapi.UnavailableError
	var limited *ghapi.RateLimitError
	slow := errors.Is(cctx.Err(), context.DeadlineExceeded) && ctx.Err() == nil
	if slow {
		err = fmt.Errorf("GitHub did not answer within %s: %w", r.o.CallBudget, err)
	}
	r.mu.Lock()
	if slow || errors.As(err, &unavailable) || errors.As(err, &limited) {
		r.down = err
	}
	r.missing = append(r.missing, what)
	r.mu.Unlock()
	r.o.Logf("GitHub: could not %s: %v", what, err)
	return err
}

// Missing lists what could not be recorded or read, and why GitHub was
// given up on, if it was.
func (r *Recorder) Missing() (what []string, down error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.missing...), r.down
}

// Down reports whether GitHub was given up on.
func (r *Recorder) Down() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.down != nil
}

// enqueue adds a write to the queue and starts the worker if it sleeps.
func (r *Recorder) enqueue(write func()) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.queue = append(r.queue, write)
	if !r.working {
		r.working = true
		go r.work()
	}
}

// work runs the queued writes in order.
func (r *Recorder) work() {
	r.mu.Lock()
	for len(r.queue) > 0 {
		w := r.queue[0]
		r.queue = r.queue[1:]
		r.mu.Unlock()
		w()
		r.mu.Lock()
	}
	r.working = false
	r.idle.Broadcast()
	r.mu.Unlock()
}

// Flush waits until every queued write was made, or ctx ends; then it
// reports the writes still queued as missing.
func (r *Recorder) Flush(ctx context.Context) {
	done := make(chan struct{})
	go func() {
		r.mu.Lock()
		for r.working {
			r.idle.Wait()
		}
		r.mu.Unlock()
		close(done)
	}()
	select {
	case <-done:
	case <-ctx.Done():
		r.mu.Lock()
		if n := len(r.queue); n > 0 {
			r.missing = append(r.missing, fmt.Sprintf("%d more record(s) (the run ended before GitHub took them)", n))
		}
		r.mu.Unlock()
	}
}

// walk reads the environment's history newest first through fn, skipping
// the deployments that keep is false for, which are listed in the log once.
//
// fn gets a status function that reads a deployment's latest status, at
// most MaxStatusReads times per walk; past that the walk ends, and says so.
func (r *Recorder) walk(ctx context.Context, what string, keep func(Origin) bool, fn func(d *ghapi.Deployment, status func(*ghapi.Deployment) error) (bool, error)) error {
	var skipped []ghapi.Deployment
	seen, reads := 0, 0
	errCap := errors.New("status cap")
	err := r.call(ctx, what, func(ctx context.Context, gh GitHub) error {
		status := func(d *ghapi.Deployment) error {
			if reads++; reads > MaxStatusReads {
				return errCap
			}
			return gh.LatestStatus(ctx, d)
		}
		err := gh.WalkDeployments(ctx, r.o.Environment, HistoryLimit, func(d *ghapi.Deployment) (bool, error) {
			seen++
			if o := OriginOf(*d); !keep(o) {
				r.mu.Lock()
				if !r.ignored[d.ID] {
					r.ignored[d.ID] = true
					skipped = append(skipped, *d)
				}
				r.mu.Unlock()
				return true, nil
			}
			return fn(d, status)
		})
		if errors.Is(err, errCap) {
			r.o.Logf("GitHub: read the statuses of %d deployments of %s to %s and stopped there", MaxStatusReads, r.o.Environment, what)
			return nil
		}
		return err
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
// healthy and whose commit is not exclude. Canaries do not count: a
// canary's success says nothing of the whole environment.
func (r *Recorder) LastGood(ctx context.Context, exclude string) (ghapi.Deployment, bool, error) {
	return r.newestOurs(ctx, "read the last healthy deployment of "+r.env(),
		func(d ghapi.Deployment) bool { return isCanary(d) || exclude != "" && sha.Same(d.SHA, exclude) }, wasHealthy)
}

// Current finds what the environment runs now: the newest of immune's
// deployments that got as far as its command, canaries aside (they ran on
// a subset only).
func (r *Recorder) Current(ctx context.Context) (ghapi.Deployment, bool, error) {
	return r.newestOurs(ctx, "find what "+r.env()+" runs now", isCanary, ran)
}

func isCanary(d ghapi.Deployment) bool { return Task(d.Task) == TaskCanary }

// newestOurs finds the newest of immune's deployments that match, by
// their latest status; skip spares the status read of those that cannot.
func (r *Recorder) newestOurs(ctx context.Context, what string, skip, match func(ghapi.Deployment) bool) (ghapi.Deployment, bool, error) {
	var found *ghapi.Deployment
	err := r.walk(ctx, what, onlyOurs, func(d *ghapi.Deployment, status func(*ghapi.Deployment) error) (bool, error) {
		if skip(*d) {
			return true, nil
		}
		if err := status(d); err != nil {
			return false, err
		}
		if match(*d) {
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
	err := r.walk(ctx, "check for deployments newer than "+fmt.Sprint(than.ID), notAJobs, func(d *ghapi.Deployment, status func(*ghapi.Deployment) error) (bool, error) {
		if d.ID <= than.ID {
			return false, nil // newest first: the rest is older
		}
		if err := status(d); err != nil {
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
	err := r.walk(ctx, "check whether another run is deploying to "+r.env(), onlyOurs, func(d *ghapi.Deployment, status func(*ghapi.Deployment) error) (bool, error) {
		if before != 0 && d.ID >= before {
			return true, nil
		}
		p, _ := PayloadOf(*d)
		if !now.Before(d.CreatedAt.Add(p.Hold())) {
			return true, nil // its run is over, or presumed dead
		}
		if err := status(d); err != nil {
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
	err := r.walk(ctx, "read the deployments of "+r.env(), notAJobs, func(d *ghapi.Deployment, status func(*ghapi.Deployment) error) (bool, error) {
		if len(history) == 0 {
			if err := status(d); err != nil {
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
	err := r.call(ctx, "resolve "+ref, func(ctx context.Context, gh GitHub) (err error) {
		full, err = gh.ResolveCommit(ctx, ref)
		return err
	})
	return full, err
}

// Labels returns a pull request's labels.
func (r *Recorder) Labels(ctx context.Context, pr int) ([]string, error) {
	var labels []string
	err := r.call(ctx, fmt.Sprintf("read the labels of #%d", pr), func(ctx context.Context, gh GitHub) (err error) {
		labels, err = gh.PullRequestLabels(ctx, pr)
		return err
	})
	return labels, err
}

// Commits returns a pull request's commits.
func (r *Recorder) Commits(ctx context.Context, pr int) ([]ghapi.Commit, error) {
	var commits []ghapi.Commit
	err := r.call(ctx, fmt.Sprintf("read the commits of #%d", pr), func(ctx context.Context, gh GitHub) (err error) {
		commits, err = gh.PullRequestCommits(ctx, pr)
		return err
	})
	return commits, err
}

// Handle is a deployment this run records. GitHub's answer to the create
// arrives in the background; Known and Wait read it.
type Handle struct {
	done chan struct{}
	dep  ghapi.Deployment
}

// Known returns the deployment if GitHub has answered the create.
func (h *Handle) Known() (ghapi.Deployment, bool) {
	if h == nil {
		return ghapi.Deployment{}, false
	}
	select {
	case <-h.done:
		return h.dep, h.dep.ID != 0
	default:
		return ghapi.Deployment{}, false
	}
}

// Wait waits, at most max (real time: it waits for GitHub), for GitHub's
// answer to the create.
func (h *Handle) Wait(ctx context.Context, max time.Duration) (ghapi.Deployment, bool) {
	if h == nil {
		return ghapi.Deployment{}, false
	}
	t := time.NewTimer(max)
	defer t.Stop()
	select {
	case <-h.done:
	case <-t.C:
	case <-ctx.Done():
	}
	return h.Known()
}

// Budget is the time one call to GitHub may take.
func (r *Recorder) Budget() time.Duration { return r.o.CallBudget }

// Create records, in the background, a deployment of commit with immune's
// payload (and a request id that makes a retried create find the first
// attempt's deployment), ref = the full SHA, and the given first state
// (queued or in_progress). The handle is nil when GitHub is not in use.
func (r *Recorder) Create(task Task, commit string, p Payload, first State, desc string) *Handle {
	if !r.Enabled() {
		return nil
	}
	h := &Handle{done: make(chan struct{})}
	p.RequestID = r.o.RequestID()
	r.enqueue(func() {
		defer close(h.done)
		var dep ghapi.Deployment
		err := r.call(context.Background(), fmt.Sprintf("create the %s deployment of %s", task, sha.Short(commit)), func(ctx context.Context, gh GitHub) (err error) {
			dep, err = gh.CreateDeployment(ctx, ghapi.DeploymentRequest{
				SHA:         commit,
				Environment: r.o.Environment,
				Task:        string(task),
				Description: fmt.Sprintf("immune %s of %s", task, sha.Short(commit)),
				Payload:     p.Map(),
				Same: func(d ghapi.Deployment) bool {
					got, ok := PayloadOf(d)
					return ok && got.RequestID == p.RequestID
				},
			})
			return err
		})
		if err != nil && dep.ID == 0 {
			return
		}
		dep.LatestState, dep.LatestDescription = string(first), desc
		h.dep = dep
		r.setStatus(dep.ID, first, desc)
	})
	return h
}

// SetStatus adds, in the background, a status to a recorded deployment;
// a nil handle, or one GitHub never created, is skipped.
func (r *Recorder) SetStatus(h *Handle, state State, desc string) {
	if h == nil {
		return
	}
	r.enqueue(func() {
		<-h.done // the create was queued first: it is done
		if h.dep.ID != 0 {
			r.setStatus(h.dep.ID, state, desc)
		}
	})
}

func (r *Recorder) setStatus(id int64, state State, desc string) {
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
	_ = r.call(context.Background(), fmt.Sprintf("set deployment %d to %s", id, state), func(ctx context.Context, gh GitHub) error {
		return gh.SetDeploymentStatus(ctx, id, s)
	})
}

// CommitStatus sets, in the background, the immune/<environment> commit
// status on a commit, which must be a full SHA (GitHub refuses
// abbreviations).
func (r *Recorder) CommitStatus(commit string, state CommitState, desc string) {
	if !r.Enabled() {
		return
	}
	if !sha.IsFull(commit) {
		r.mu.Lock()
		r.missing = append(r.missing, fmt.Sprintf("set the %s commit status of %q (not a full commit SHA)", StatusContext(r.env()), commit))
		r.mu.Unlock()
		return
	}
	r.enqueue(func() {
		_ = r.call(context.Background(), fmt.Sprintf("set the %s commit status to %s", StatusContext(r.env()), state), func(ctx context.Context, gh GitHub) error {
			return gh.SetCommitStatus(ctx, ghapi.CommitStatus{
				SHA: commit, State: string(state), Context: StatusContext(r.env()), Description: desc, TargetURL: r.o.RunURL,
			})
		})
	})
}
