package deploy

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/immune-cd/immune/internal/clock"
	"github.com/immune-cd/immune/internal/ghapi"
	"github.com/immune-cd/immune/internal/sha"
)

// The inputs a deploy workflow declares (on: workflow_dispatch: inputs:).
// DispatchIDInput carries an id unique to each dispatch; the workflow shows
// it in its run-name, which is how the run is found where GitHub does not
// return it.
const (
	InputSHA         = "sha"
	InputPreviousSHA = "previous-sha"
	InputEnvironment = "environment"
	InputReason      = "reason"
	InputStage       = "stage"
	DispatchIDInput  = "dispatch-id"
)

// WorkflowInputs lists the inputs every dispatch sends, in the order the
// README shows them.
var WorkflowInputs = []string{InputSHA, InputPreviousSHA, InputEnvironment, InputReason, InputStage, DispatchIDInput}

// ErrNotStarted is wrapped by a deployer's error when nothing was started:
// the dispatch or the hook was refused, so production is as it was.
var ErrNotStarted = errors.New("nothing was started")

// WorkflowAPI is what the workflow deployer needs of GitHub; *ghapi.Client
// has it.
type WorkflowAPI interface {
	GetWorkflow(ctx context.Context, workflow string) (ghapi.Workflow, error)
	DispatchWorkflow(ctx context.Context, d ghapi.Dispatch) (ghapi.Dispatched, error)
	GetWorkflowRun(ctx context.Context, id int64) (ghapi.WorkflowRun, error)
	CancelWorkflowRun(ctx context.Context, id int64) error
	WorkflowRuns(ctx context.Context, workflow string, f ghapi.RunFilter) ([]ghapi.WorkflowRun, error)
}

// Run is a workflow run a deployer started, for the log and the summary.
type Run struct {
	ID  int64
	URL string // the run's web page
}

// Defaults of Workflow.
const (
	DefaultPoll = 10 * time.Second
	// firstPoll is the first wait between two looks; each next one is
	// twice as long, up to Poll: a run that finishes quickly is seen
	// quickly, and a long one costs a request per Poll.
	firstPoll         = 500 * time.Millisecond
	DefaultCancelWait = time.Minute
	// findFor bounds the search for a run GitHub did not name: its lists
	// show a new run within seconds.
	findFor = 2 * time.Minute
	// lostFor is how long a dispatch whose answer was lost is looked for
	// before it is sent again.
	lostFor          = 30 * time.Second
	dispatchAttempts = 3
	// cancelBudget bounds the requests that cancel a run after the job
	// was cancelled: the runner kills the container seconds later.
	cancelBudget = 10 * time.Second
)

// Workflow deploys by dispatching the user's deploy workflow (on a full
// runner, with its tools and its environment's secrets) and awaiting the
// run: conclusion success is deployed, anything else a failed deploy. A
// run still going at Timeout, or when ctx is cancelled, is cancelled
// through the API.
type Workflow struct {
	API      WorkflowAPI
	Workflow string // file name (deploy.yml) or id
	Ref      string // the branch or tag whose workflow file runs
	Timeout  time.Duration
	// Poll is how often the run is looked at, once it has run for a
	// while (the first looks come sooner); default DefaultPoll.
	Poll time.Duration
	// CancelWait is how long a run cancelled at Timeout is awaited, so
	// that a rollback does not race it; default DefaultCancelWait.
	CancelWait time.Duration
	Clock      clock.Clock
	// Output receives a line per step (the run's link, its status).
	Output io.Writer
	// Started, when set, is told of the run as soon as it is known.
	Started func(Run)
	// NewID makes dispatch ids; default random.
	NewID func() string
}

// Check makes sure, before anything is deployed, that GitHub knows the
// workflow, that it is enabled, and that the token can see it.
func (w *Workflow) Check(ctx context.Context) error {
	got, err := w.API.GetWorkflow(ctx, w.Workflow)
	var pe *ghapi.PermissionError
	switch {
	case errors.Is(err, ghapi.ErrNoSuchWorkflow):
		return fmt.Errorf("GitHub knows no workflow %s in this repository: name a file in .github/workflows on the default branch, or a workflow's id (%w)", w.Workflow, err)
	case errors.As(err, &pe):
		return fmt.Errorf("the token cannot read workflow %s: add \"actions: write\" to the permissions: block (immune dispatches it and follows its runs) (%w)", w.Workflow, err)
	case err != nil:
		return fmt.Errorf("cannot check workflow %s: %w", w.Workflow, err)
	case got.State != "active":
		return fmt.Errorf("workflow %s (%s) is %s: enable it, or it cannot be dispatched", w.Workflow, got.Path, strings.ReplaceAll(got.State, "_", " "))
	}
	return nil
}

// Deploy dispatches the workflow with the request as inputs and waits for
// the run.
func (w *Workflow) Deploy(ctx context.Context, req Request) error {
	w.defaults()
	id := w.NewID()
	stage := req.Stage
	if stage == "" {
		stage = "full"
	}
	d := ghapi.Dispatch{Workflow: w.Workflow, Ref: w.Ref, Inputs: map[string]string{
		InputSHA: req.SHA, InputPreviousSHA: req.PreviousSHA, InputEnvironment: req.Environment,
		InputReason: req.Reason, InputStage: stage, DispatchIDInput: id,
	}}
	start := w.Clock.Now()
	deadline := start.Add(w.Timeout)
	w.printf("Dispatching workflow %s on %s: %s %s (stage %s), dispatch id %s.", w.Workflow, w.Ref, req.Reason, sha.Short(req.SHA), stage, id)
	run, err := w.dispatch(ctx, d, id, start, deadline)
	if err != nil {
		return err
	}
	w.printf("Workflow run: %s", run.HTMLURL)
	if w.Started != nil {
		w.Started(Run{ID: run.ID, URL: run.HTMLURL})
	}
	return w.await(ctx, run, deadline)
}

func (w *Workflow) defaults() {
	if w.Poll <= 0 {
		w.Poll = DefaultPoll
	}
	if w.CancelWait <= 0 {
		w.CancelWait = DefaultCancelWait
	}
	if w.Clock == nil {
		w.Clock = clock.Real{}
	}
	if w.Output == nil {
		w.Output = io.Discard
	}
	if w.NewID == nil {
		w.NewID = NewDispatchID
	}
}

func (w *Workflow) printf(format string, args ...any) {
	fmt.Fprintf(w.Output, format+"\n", args...)
}

// dispatch creates the run and finds out which it is. An answer lost on
// the way back may hide a run GitHub made: it is looked for before the
// dispatch is sent again, so that one deploy never starts two runs.
func (w *Workflow) dispatch(ctx context.Context, d ghapi.Dispatch, id string, start, deadline time.Time) (ghapi.WorkflowRun, error) {
	for attempt := 1; ; attempt++ {
		sent, err := w.API.DispatchWorkflow(ctx, d)
		var ue *ghapi.UnavailableError
		switch {
		case err == nil && sent.RunID != 0:
			return ghapi.WorkflowRun{ID: sent.RunID, HTMLURL: sent.HTMLURL, URL: sent.RunURL, Status: "queued"}, nil
		case err == nil:
			w.printf("GitHub did not say which run the dispatch started (an Enterprise Server without return_run_details): looking for the run titled with dispatch id %s.", id)
			run, found, err := w.find(ctx, id, start, minTime(deadline, w.Clock.Now().Add(findFor)))
			switch {
			case err != nil:
				return run, err
			case !found:
				return run, fmt.Errorf("workflow %s was dispatched, but no run of it shows dispatch id %s in its title after %s: "+
					"show ${{ inputs.%s }} in the workflow's run-name, or use a GitHub that returns the run (return_run_details)",
					w.Workflow, id, findFor, DispatchIDInput)
			}
			return run, nil
		case ctx.Err() != nil:
			return ghapi.WorkflowRun{}, w.cancelledDispatch(ctx, id, start)
		case errors.As(err, &ue) && attempt < dispatchAttempts:
			w.printf("The dispatch's answer was lost (%v): looking for a run with dispatch id %s before dispatching again.", err, id)
			run, found, ferr := w.find(ctx, id, start, minTime(deadline, w.Clock.Now().Add(lostFor)))
			if found {
				return run, nil
			}
			if ferr != nil && ctx.Err() != nil {
				return run, ferr
			}
		case errors.As(err, &ue):
			return ghapi.WorkflowRun{}, fmt.Errorf("dispatch of workflow %s: %w; GitHub may or may not have started a run (its title shows dispatch id %s)", w.Workflow, err, id)
		default:
			var ae *ghapi.APIError
			if errors.As(err, &ae) && ae.Status == 422 {
				return ghapi.WorkflowRun{}, fmt.Errorf("%w; deploy-workflow must name a workflow with an on: workflow_dispatch trigger that declares the inputs %s, and deploy-workflow-ref a branch or tag (%w)",
					err, strings.Join(WorkflowInputs, ", "), ErrNotStarted)
			}
			return ghapi.WorkflowRun{}, fmt.Errorf("%w (%w)", err, ErrNotStarted)
		}
	}
}

// find looks among the workflow's recent workflow_dispatch runs for the
// one whose title shows id, until until. No other run's title can show it.
func (w *Workflow) find(ctx context.Context, id string, since, until time.Time) (ghapi.WorkflowRun, bool, error) {
	// GitHub's clock and ours differ a little; the id, not the time,
	// decides.
	from := since.Add(-5 * time.Minute)
	wait := w.firstWait()
	for {
		runs, err := w.API.WorkflowRuns(ctx, w.Workflow, ghapi.RunFilter{Event: "workflow_dispatch", CreatedFrom: from})
		if err == nil {
			for _, r := range runs {
				if strings.Contains(r.DisplayTitle, id) {
					return r, true, nil
				}
			}
		} else if isPermanent(err) {
			return ghapi.WorkflowRun{}, false, fmt.Errorf("look for the dispatched run: %w", err)
		}
		if !w.Clock.Now().Add(wait).Before(until) {
			return ghapi.WorkflowRun{}, false, nil
		}
		select {
		case <-ctx.Done():
			return ghapi.WorkflowRun{}, false, w.cancelledDispatch(ctx, id, since)
		case <-w.Clock.After(wait):
		}
		wait = min(2*wait, w.Poll)
	}
}

// cancelledDispatch: the job was cancelled before the run was known. One
// last look, within the seconds left, finds and cancels it if GitHub
// made it.
func (w *Workflow) cancelledDispatch(ctx context.Context, id string, since time.Time) error {
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cancelBudget)
	defer cancel()
	runs, err := w.API.WorkflowRuns(cctx, w.Workflow, ghapi.RunFilter{Event: "workflow_dispatch", CreatedFrom: since.Add(-5 * time.Minute)})
	if err == nil {
		for _, r := range runs {
			if strings.Contains(r.DisplayTitle, id) {
				return w.cancelRun(ctx, r, fmt.Errorf("cancelled while dispatching: %w", ctx.Err()))
			}
		}
	}
	return fmt.Errorf("cancelled while dispatching workflow %s (%w); no run of it with dispatch id %s was found to cancel", w.Workflow, ctx.Err(), id)
}

// await follows the run until it completes, the deadline passes or ctx is
// cancelled.
func (w *Workflow) await(ctx context.Context, run ghapi.WorkflowRun, deadline time.Time) error {
	status := run.Status
	var lastErr error
	poll := w.firstWait()
	for {
		select {
		case <-ctx.Done():
			return w.cancelRun(ctx, run, fmt.Errorf("cancelled: %w", ctx.Err()))
		default:
		}
		got, err := w.API.GetWorkflowRun(ctx, run.ID)
		switch {
		case err != nil && ctx.Err() != nil:
			return w.cancelRun(ctx, run, fmt.Errorf("cancelled: %w", ctx.Err()))
		case err != nil && isPermanent(err):
			return fmt.Errorf("cannot follow workflow run %s: %w", run.HTMLURL, err)
		case err != nil:
			if lastErr == nil {
				w.printf("Cannot read the workflow run (%v); trying again.", err)
			}
			lastErr = err
		default:
			lastErr = nil
			if got.HTMLURL == "" {
				got.HTMLURL = run.HTMLURL
			}
			run = got
			if run.Status != status {
				status = run.Status
				if run.Completed() {
					w.printf("Workflow run %d: completed, %s.", run.ID, orNone(run.Conclusion))
				} else {
					w.printf("Workflow run %d: %s.", run.ID, strings.ReplaceAll(status, "_", " "))
				}
			}
			if run.Completed() {
				if run.Conclusion == "success" {
					return nil
				}
				return fmt.Errorf("workflow run %d concluded %s: %s", run.ID, orNone(run.Conclusion), run.HTMLURL)
			}
		}
		if !w.Clock.Now().Before(deadline) {
			why := fmt.Sprintf("workflow run %d did not finish within %s", run.ID, w.Timeout)
			if lastErr != nil {
				why += fmt.Sprintf(" (GitHub: %v)", lastErr)
			}
			return w.stopAtTimeout(ctx, run, why)
		}
		wait := min(poll, deadline.Sub(w.Clock.Now()))
		select {
		case <-ctx.Done():
			return w.cancelRun(ctx, run, fmt.Errorf("cancelled: %w", ctx.Err()))
		case <-w.Clock.After(wait):
		}
		poll = min(2*poll, w.Poll)
	}
}

// cancelRun cancels the run after the job was cancelled, within the few
// seconds the runner leaves, and says so.
func (w *Workflow) cancelRun(ctx context.Context, run ghapi.WorkflowRun, cause error) error {
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cancelBudget)
	defer cancel()
	switch err := w.API.CancelWorkflowRun(cctx, run.ID); {
	case err == nil:
		w.printf("Cancelled workflow run %s.", run.HTMLURL)
		return fmt.Errorf("%w; immune cancelled workflow run %d: %s", cause, run.ID, run.HTMLURL)
	case errors.Is(err, ghapi.ErrRunCompleted):
		return fmt.Errorf("%w; workflow run %d had already completed: %s", cause, run.ID, run.HTMLURL)
	default:
		w.printf("Could not cancel workflow run %s: %v", run.HTMLURL, err)
		return fmt.Errorf("%w; immune could not cancel workflow run %d, which may still deploy (%v): %s", cause, run.ID, err, run.HTMLURL)
	}
}

// stopAtTimeout cancels a run that outlived the deploy timeout and waits a
// bounded time for it to stop, so that what follows (a rollback) does not
// race it.
func (w *Workflow) stopAtTimeout(ctx context.Context, run ghapi.WorkflowRun, why string) error {
	if err := w.API.CancelWorkflowRun(ctx, run.ID); err != nil {
		if errors.Is(err, ghapi.ErrRunCompleted) {
			if got, gerr := w.API.GetWorkflowRun(ctx, run.ID); gerr == nil && got.Conclusion == "success" {
				return nil // it finished as the deadline passed
			}
			return fmt.Errorf("%s: %s", why, run.HTMLURL)
		}
		return fmt.Errorf("%s, and immune could not cancel it, so it may still deploy (%v): %s", why, err, run.HTMLURL)
	}
	w.printf("Cancelled workflow run %s: it did not finish within %s.", run.HTMLURL, w.Timeout)
	until := w.Clock.Now().Add(w.CancelWait)
	poll := w.firstWait()
	for {
		got, err := w.API.GetWorkflowRun(ctx, run.ID)
		if err == nil && got.Completed() {
			return fmt.Errorf("%s; immune cancelled it (it concluded %s): %s", why, orNone(got.Conclusion), run.HTMLURL)
		}
		if !w.Clock.Now().Before(until) || ctx.Err() != nil {
			return fmt.Errorf("%s; immune cancelled it, but it had not stopped %s later: %s", why, w.CancelWait, run.HTMLURL)
		}
		select {
		case <-ctx.Done():
		case <-w.Clock.After(min(poll, until.Sub(w.Clock.Now()))):
		}
		poll = min(2*poll, w.Poll)
	}
}

func (w *Workflow) firstWait() time.Duration { return min(firstPoll, w.Poll) }

// isPermanent tells errors that waiting will not cure: a missing
// permission, an unknown workflow or run.
func isPermanent(err error) bool {
	var pe *ghapi.PermissionError
	var ae *ghapi.APIError
	return errors.As(err, &pe) || errors.As(err, &ae) && ae.Status >= 400 && ae.Status < 500 && ae.Status != 429
}

func orNone(s string) string {
	if s == "" {
		return "without a conclusion"
	}
	return s
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

// NewDispatchID is a random id for one dispatch or hook delivery.
func NewDispatchID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return "immune-" + hex.EncodeToString(b[:])
}
