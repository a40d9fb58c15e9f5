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

	"github.com/immune-cd/immune/internal/bisect"
	"github.com/immune-cd/immune/internal/ghapi"
	"github.com/immune-cd/immune/internal/sha"
)

// GitHub is what the recorder needs of GitHub's API, for the records and
// for what people are told. *ghapi.Client implements it.
type GitHub interface {
	CreateDeployment(ctx context.Context, r ghapi.DeploymentRequest) (ghapi.Deployment, error)
	SetDeploymentStatus(ctx context.Context, id int64, s ghapi.DeploymentStatus) error
	SetCommitStatus(ctx context.Context, s ghapi.CommitStatus) error
	WalkDeployments(ctx context.Context, environment string, limit int, fn func(*ghapi.Deployment) (bool, error)) error
	LatestStatus(ctx context.Context, d *ghapi.Deployment) error
	DeploymentStatuses(ctx context.Context, id int64) ([]ghapi.Status, error)
	CommitTime(ctx context.Context, commit string) (time.Time, error)
	ResolveCommit(ctx context.Context, ref string) (string, error)
	EnvironmentName(ctx context.Context, name string) (string, error)
	PullRequestLabels(ctx context.Context, number int) ([]string, error)
	PullRequestCommits(ctx context.Context, number int) ([]ghapi.Commit, error)

	PullRequestsForCommit(ctx context.Context, commit string) ([]ghapi.PullRequest, error)
	CompareCommits(ctx context.Context, base, head string) (ghapi.Comparison, error)
	CompareAll(ctx context.Context, base, head string, max int) (ghapi.Comparison, error)
	CommitAuthor(ctx context.Context, commit string) (ghapi.CommitInfo, error)
	IssueComments(ctx context.Context, number int) ([]ghapi.IssueComment, error)
	CreateIssueComment(ctx context.Context, number int, body, perm string, same func(ghapi.IssueComment) bool) (ghapi.IssueComment, error)
	EditIssueComment(ctx context.Context, id int64, body, perm string) (ghapi.IssueComment, error)
	OpenIssues(ctx context.Context, label string, limit int, perm string) ([]ghapi.Issue, error)
	OpenIssuesBy(ctx context.Context, creator string, limit int, perm string) ([]ghapi.Issue, error)
	CreateIssue(ctx context.Context, title, body string, labels []string, same func(ghapi.Issue) bool) (ghapi.Issue, error)
	EditIssue(ctx context.Context, number int, e ghapi.IssueEdit) (ghapi.Issue, error)
	EnsureLabel(ctx context.Context, name, color, description string) (bool, error)
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
	// TellLogf receives the lines of what people are told, which come from
	// the lanes' goroutines (default Logf).
	TellLogf func(format string, args ...any)
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

// Recorder reads and writes one environment's records, and what people are
// told about it. Reads answer at once (within the call budget); writes go
// to a lane, each worked through in order by a goroutine of its own, so
// that no write ever holds up a deploy or a rollback: the records
// (deployments and commit statuses); the line (the tracking issue); and the
// comments on pull requests. What people are told never delays a record,
// and the comments never delay the tracking issue. Every call takes
// the same path (calls): one budget, one gave-up state, one list of
// refused permissions.
type Recorder struct {
	o       Options
	c       *calls
	records *lane
	line    *lane // the tracking issue, and what waits for it
	people  *lane // the pull requests' comments

	mu      sync.Mutex
	ignored map[int64]bool
	// me is the login GitHub writes immune's records under, the token's
	// identity (see identity); "" until known.
	me string
	// name is the environment's name as GitHub has it (see learnName);
	// "" when GitHub did not say. ask asks once.
	name string
	ask  sync.Once
}

// New returns a Recorder.
func New(o Options) *Recorder {
	if o.Logf == nil {
		o.Logf = func(string, ...any) {}
	}
	if o.TellLogf == nil {
		o.TellLogf = o.Logf
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
	return &Recorder{
		o:       o,
		c:       &calls{gh: o.GitHub, budget: o.CallBudget, logf: o.Logf, tellLogf: o.TellLogf, denied: map[string]string{}},
		records: newLane(),
		line:    newLane(),
		people:  newLane(),
		ignored: map[int64]bool{},
	}
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

// call runs fn against GitHub for the records (see calls.do).
func (r *Recorder) call(ctx context.Context, what string, fn func(context.Context, GitHub) error) error {
	return r.c.do(ctx, forRecords, what, "", fn)
}

// Missing lists what could not be recorded or read, and why GitHub was
// given up on, if it was.
func (r *Recorder) Missing() (what []string, down error) {
	r.c.mu.Lock()
	defer r.c.mu.Unlock()
	return append([]string(nil), r.c.missing...), r.c.down
}

// Down reports whether GitHub was given up on.
func (r *Recorder) Down() bool {
	r.c.mu.Lock()
	defer r.c.mu.Unlock()
	return r.c.down != nil
}

// enqueue adds a write to the records' lane.
func (r *Recorder) enqueue(write func()) {
	r.records.add(func(context.Context) { write() })
}

// Flush waits until every queued record was written, or ctx ends; then it
// reports the writes still queued as missing.
func (r *Recorder) Flush(ctx context.Context) {
	if done, n := r.records.wait(ctx); !done && n > 0 {
		r.c.note(fmt.Sprintf("%d more record(s) (the run ended before GitHub took them)", n))
	}
}

// walk reads the environment's history newest first through fn, skipping
// the deployments that keep is false for, which are listed in the log once.
//
// fn gets a status function that reads a deployment's latest status, at
// most MaxStatusReads times per walk; past that the walk ends, and says so.
func (r *Recorder) walk(ctx context.Context, what string, keep func(Origin) bool, fn func(d *ghapi.Deployment, status func(*ghapi.Deployment) error) (bool, error)) error {
	r.learnName(ctx)
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
		err := gh.WalkDeployments(ctx, r.env(), HistoryLimit, func(d *ghapi.Deployment) (bool, error) {
			seen++
			o := OriginOf(*d)
			if o == Ours {
				r.learn(d.Creator, false)
			}
			if !keep(o) {
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
			r.o.Logf("GitHub: read the statuses of %d deployments of %s to %s and stopped there", MaxStatusReads, r.env(), what)
			return nil
		}
		return err
	})
	r.logIgnored(skipped)
	if err == nil && seen >= HistoryLimit {
		r.o.Logf("GitHub: read the newest %d deployments of %s to %s and stopped there", HistoryLimit, r.env(), what)
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
	r.o.Logf("History of %s: not immune's, so not a rollback target nor what runs now: %s", r.env(), strings.Join(parts, "; "))
}

func onlyOurs(o Origin) bool { return o == Ours }
func notAJobs(o Origin) bool { return o != Job }

// env is the environment's name as GitHub has it, once learnName learnt
// it, else as given.
func (r *Recorder) env() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.name != "" {
		return r.name
	}
	return r.o.Environment
}

// learnName asks GitHub, once per run, how it spells the environment.
// GitHub's environment names do not depend on letter case ("Environment
// names are not case sensitive", says Managing environments for
// deployment), but its listing of deployments filters by the name given
// and does not say whether letter case counts there: so the history is
// read, and new deployments are recorded, under GitHub's name, and an
// input of "production" reads the history of an environment made as
// "Production". An environment GitHub does not know yet is made by the
// first deployment, under the name as given. Reading the name needs
// "actions: read"; without it, the name is used as given, as it always was.
func (r *Recorder) learnName(ctx context.Context) {
	if r.o.GitHub != nil {
		// Who comes while it is asked waits: nothing reads or records
		// under a name that is about to change.
		r.ask.Do(func() { r.askName(ctx) })
	}
}

func (r *Recorder) askName(ctx context.Context) {
	given := r.o.Environment
	var name string
	err := r.c.do(ctx, forBetterReads, fmt.Sprintf("read how GitHub spells the environment %q (so its history is read as given)", given), "",
		func(ctx context.Context, gh GitHub) (err error) {
			name, err = gh.EnvironmentName(ctx, given)
			if errors.Is(err, ghapi.ErrNoSuchEnvironment) {
				return nil // the first deployment makes it
			}
			return err
		})
	if err != nil || name == "" || name == given || !strings.EqualFold(name, given) {
		return
	}
	r.mu.Lock()
	r.name = name
	r.mu.Unlock()
	r.o.Logf("GitHub spells the environment %q: its history is read, and this run recorded, under that name (the input said %q).", name, given)
}

// LastGood finds the newest of immune's deployments that was watched
// healthy and whose commit is not exclude. Canaries and bisection steps do
// not count: their success says nothing of the whole environment.
func (r *Recorder) LastGood(ctx context.Context, exclude string) (Deployment, bool, error) {
	return r.newestOurs(ctx, "read the last healthy deployment of "+r.env(),
		func(d ghapi.Deployment) bool { return subset(d) || exclude != "" && sha.Same(d.SHA, exclude) }, wasHealthy)
}

// Current finds what the environment runs now: the newest of immune's
// deployments that got as far as its command, canaries and bisection steps
// aside (they ran on a subset, or for a while only).
func (r *Recorder) Current(ctx context.Context) (Deployment, bool, error) {
	return r.newestOurs(ctx, "find what "+r.env()+" runs now", subset, ran)
}

func subset(d ghapi.Deployment) bool { return Task(d.Task).Subset() }

// newestOurs finds the newest of immune's deployments that match, by
// their latest status; skip spares the status read of those that cannot.
func (r *Recorder) newestOurs(ctx context.Context, what string, skip, match func(ghapi.Deployment) bool) (Deployment, bool, error) {
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
		return Deployment{}, false, err
	}
	return deploymentOf(*found), true, nil
}

// Newer returns the deployments created after than that went live or are
// going live, by immune or not (jobs' excepted), newest first: rolling back
// than would undo them.
func (r *Recorder) Newer(ctx context.Context, than Deployment) ([]Deployment, error) {
	var newer []Deployment
	err := r.walk(ctx, "check for deployments newer than "+fmt.Sprint(than.ID), notAJobs, func(d *ghapi.Deployment, status func(*ghapi.Deployment) error) (bool, error) {
		if d.ID <= than.ID {
			return false, nil // newest first: the rest is older
		}
		if err := status(d); err != nil {
			return false, err
		}
		if started(*d) {
			newer = append(newer, deploymentOf(*d))
		}
		return true, nil
	})
	return newer, err
}

// Holders returns immune's deployments that hold the environment now
// (queued or in progress within their run's hold), older than before (all
// when before is 0), newest first.
func (r *Recorder) Holders(ctx context.Context, before int64) ([]Deployment, error) {
	now := r.o.Now()
	var held []Deployment
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
			held = append(held, deploymentOf(*d))
		}
		return true, nil
	})
	return held, err
}

// Line reads whether the line is stopped.
func (r *Recorder) Line(ctx context.Context) (Line, error) {
	return r.lineBefore(ctx, "read the deployments of "+r.env(), 0)
}

// lineBefore reads the line from the deployments older than before (all
// when 0): the statuses of the newest that LineOf needs, and the older
// ones it reads on to.
func (r *Recorder) lineBefore(ctx context.Context, what string, before int64) (Line, error) {
	var history []ghapi.Deployment
	err := r.walk(ctx, what, notAJobs, func(d *ghapi.Deployment, status func(*ghapi.Deployment) error) (bool, error) {
		if before != 0 && d.ID >= before {
			return true, nil
		}
		if decisive(history) < 0 {
			if err := status(d); err != nil {
				return false, err
			}
		}
		history = append(history, *d)
		return needMore(history), nil
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

// Commit is a commit of a pull request.
type Commit struct {
	SHA     string
	Message string
}

// Commits returns a pull request's commits.
func (r *Recorder) Commits(ctx context.Context, pr int) ([]Commit, error) {
	var commits []Commit
	err := r.call(ctx, fmt.Sprintf("read the commits of #%d", pr), func(ctx context.Context, gh GitHub) error {
		got, err := gh.PullRequestCommits(ctx, pr)
		for _, c := range got {
			commits = append(commits, Commit{SHA: c.SHA, Message: c.Message})
		}
		return err
	})
	return commits, err
}

// Batch lists the commits between good (excluded) and bad (included) as
// they landed on the branch: GitHub's comparison, every page of it, in
// first-parent order (see bisect.FirstParent), oldest first. A head that is
// not ahead of good, or a good commit off its first-parent line, is an
// error.
func (r *Recorder) Batch(ctx context.Context, good, bad string) ([]string, error) {
	var cmp ghapi.Comparison
	err := r.call(ctx, fmt.Sprintf("list the commits %s..%s", sha.Short(good), sha.Short(bad)), func(ctx context.Context, gh GitHub) (err error) {
		cmp, err = gh.CompareAll(ctx, good, bad, bisect.MaxBatch)
		return err
	})
	if err != nil {
		return nil, err
	}
	if cmp.Status != "ahead" {
		return nil, fmt.Errorf("%s is %s %s, not ahead of it", sha.Short(bad), cmp.Status, sha.Short(good))
	}
	listing := make([]bisect.Commit, 0, len(cmp.Commits))
	for _, c := range cmp.Commits {
		listing = append(listing, bisect.Commit{SHA: c.SHA, Parents: c.Parents})
	}
	return bisect.FirstParent(good, bad, listing)
}

// ErrNoSuchCommit is returned by Resolve for a ref that is not a commit of
// the repository.
var ErrNoSuchCommit = ghapi.ErrNoSuchCommit

// Handle is a deployment this run records. GitHub's answer to the create
// arrives in the background; Known and Wait read it.
type Handle struct {
	done chan struct{}
	dep  Deployment
}

// Known returns the deployment if GitHub has answered the create.
func (h *Handle) Known() (Deployment, bool) {
	if h == nil {
		return Deployment{}, false
	}
	select {
	case <-h.done:
		return h.dep, h.dep.ID != 0
	default:
		return Deployment{}, false
	}
}

// Wait waits, at most max (real time: it waits for GitHub), for GitHub's
// answer to the create.
func (h *Handle) Wait(ctx context.Context, max time.Duration) (Deployment, bool) {
	if h == nil {
		return Deployment{}, false
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
				Environment: r.env(),
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
		r.learn(dep.Creator, true)
		dep.LatestState, dep.LatestDescription = string(first), desc
		h.dep = deploymentOf(dep)
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
		r.c.note(fmt.Sprintf("set the %s commit status of %q (not a full commit SHA)", StatusContext(r.env()), commit))
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
