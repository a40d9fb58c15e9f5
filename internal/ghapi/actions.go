package ghapi

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/google/go-github/v60/github"
)

// ErrNoSuchWorkflow is wrapped by the error of a call about a workflow
// GitHub does not know (404).
var ErrNoSuchWorkflow = errors.New("no such workflow")

// ErrRunCompleted is wrapped by CancelWorkflowRun's error when the run had
// already completed (409): there was nothing left to cancel.
var ErrRunCompleted = errors.New("the workflow run had already completed")

// Workflow is one of the repository's workflows.
type Workflow struct {
	ID      int64
	Name    string
	Path    string // e.g. .github/workflows/deploy.yml
	State   string // active, disabled_manually, disabled_inactivity, ...
	HTMLURL string
}

// WorkflowRun is a run of a workflow.
type WorkflowRun struct {
	ID           int64
	WorkflowID   int64
	Name         string
	DisplayTitle string // the run-name, as GitHub rendered it
	Event        string
	// Status: queued, in_progress, completed, waiting, requested or
	// pending. Conclusion, once completed: success, failure, cancelled,
	// timed_out, action_required, neutral, skipped, stale or
	// startup_failure.
	Status     string
	Conclusion string
	HeadBranch string
	HeadSHA    string
	HTMLURL    string // the run's web page
	URL        string // the run's API URL
	Attempt    int
	CreatedAt  time.Time
	UpdatedAt  time.Time
}

// Completed reports whether the run has finished.
func (r WorkflowRun) Completed() bool { return r.Status == "completed" }

// Dispatch is a workflow_dispatch event to create.
type Dispatch struct {
	// Workflow is the workflow's file name (deploy.yml) or numeric id.
	Workflow string
	// Ref is the branch or tag whose version of the workflow runs.
	Ref    string
	Inputs map[string]string
}

// Dispatched is what GitHub said of the run a dispatch created. RunID is 0
// when GitHub did not say (an Enterprise Server that predates
// return_run_details): the run must then be found among the workflow's
// runs.
type Dispatched struct {
	RunID   int64
	RunURL  string // API URL
	HTMLURL string // web page
}

// RunFilter narrows a listing of a workflow's runs.
type RunFilter struct {
	Event string // e.g. workflow_dispatch
	// CreatedFrom, when set, keeps runs created at or after it.
	CreatedFrom time.Time
}

// What the Actions operations need. A 404 on a workflow's endpoint means an
// unknown workflow far more often than a hidden repository.
func actionsRead(op, item string) access {
	return access{op: op, permission: "actions: read", item: item}
}

func actionsWrite(op, item string) access {
	return access{op: op, permission: "actions: write", item: item}
}

// GetWorkflow returns a workflow by file name (deploy.yml) or numeric id.
// An unknown workflow is an error wrapping ErrNoSuchWorkflow.
func (c *Client) GetWorkflow(ctx context.Context, workflow string) (Workflow, error) {
	var (
		w   *github.Workflow
		err error
	)
	if id, ok := workflowID(workflow); ok {
		w, _, err = c.gh().Actions.GetWorkflowByID(ctx, c.owner, c.repo, id)
	} else {
		w, _, err = c.gh().Actions.GetWorkflowByFileName(ctx, c.owner, c.repo, workflow)
	}
	if err != nil {
		return Workflow{}, c.workflowErr(err, actionsRead("get workflow", "workflow "+workflow), "get workflow %s", workflow)
	}
	return Workflow{ID: w.GetID(), Name: w.GetName(), Path: w.GetPath(), State: w.GetState(), HTMLURL: w.GetHTMLURL()}, nil
}

// DispatchWorkflow creates a workflow_dispatch event on d.Ref and asks
// GitHub for the run it creates (return_run_details). An Enterprise Server
// that refuses the parameter is asked again without it; one that ignores
// it answers without the run. Either way the Dispatched has no RunID then.
//
// A dispatch is never retried after a failure GitHub may have acted on: an
// *UnavailableError means the run may or may not exist, and the caller,
// who can recognise its run, decides what to do. A 403 is a
// *PermissionError naming "actions: write"; an unknown workflow wraps
// ErrNoSuchWorkflow; GitHub's 422 (no workflow_dispatch trigger, a ref
// that is not a branch or tag, inputs the workflow does not declare) is an
// *APIError with GitHub's message.
func (c *Client) DispatchWorkflow(ctx context.Context, d Dispatch) (Dispatched, error) {
	out, err := c.dispatch(ctx, d, true)
	var ger *github.ErrorResponse
	if errors.As(err, &ger) && (statusOf(ger.Response) == http.StatusUnprocessableEntity || statusOf(ger.Response) == http.StatusBadRequest) &&
		strings.Contains(ger.Message, "return_run_details") {
		c.logf("GitHub does not know return_run_details (an older Enterprise Server): dispatching without it")
		out, err = c.dispatch(ctx, d, false)
	}
	if err != nil {
		a := actionsWrite("create workflow dispatch event", "workflow "+d.Workflow)
		return Dispatched{}, c.workflowErr(err, a, "dispatch workflow %s on %s", d.Workflow, d.Ref)
	}
	return out, nil
}

func (c *Client) dispatch(ctx context.Context, d Dispatch, details bool) (Dispatched, error) {
	body := struct {
		Ref              string            `json:"ref"`
		Inputs           map[string]string `json:"inputs,omitempty"`
		ReturnRunDetails bool              `json:"return_run_details,omitempty"`
	}{d.Ref, d.Inputs, details}
	g := c.gh()
	u := fmt.Sprintf("repos/%s/%s/actions/workflows/%s/dispatches", url.PathEscape(c.owner), url.PathEscape(c.repo), url.PathEscape(d.Workflow))
	req, err := g.NewRequest(http.MethodPost, u, body)
	if err != nil {
		return Dispatched{}, err
	}
	var out struct {
		RunID   int64  `json:"workflow_run_id"`
		RunURL  string `json:"run_url"`
		HTMLURL string `json:"html_url"`
	}
	if _, err := g.Do(withoutRetries(ctx), req, &out); err != nil {
		return Dispatched{}, err
	}
	return Dispatched{RunID: out.RunID, RunURL: out.RunURL, HTMLURL: out.HTMLURL}, nil
}

// GetWorkflowRun returns a workflow run.
func (c *Client) GetWorkflowRun(ctx context.Context, id int64) (WorkflowRun, error) {
	r, _, err := c.gh().Actions.GetWorkflowRunByID(ctx, c.owner, c.repo, id)
	if err != nil {
		return WorkflowRun{}, c.wrap(err, actionsRead("get workflow run", fmt.Sprintf("workflow run %d", id)), "get workflow run %d", id)
	}
	return fromGitHubRun(r), nil
}

// CancelWorkflowRun asks GitHub to cancel a run (202: the run stops soon
// after). A run that had already completed is an error wrapping
// ErrRunCompleted.
func (c *Client) CancelWorkflowRun(ctx context.Context, id int64) error {
	_, err := c.gh().Actions.CancelWorkflowRunByID(ctx, c.owner, c.repo, id)
	var accepted *github.AcceptedError
	if err == nil || errors.As(err, &accepted) {
		return nil
	}
	var ger *github.ErrorResponse
	if errors.As(err, &ger) && statusOf(ger.Response) == http.StatusConflict {
		return fmt.Errorf("cancel workflow run %d: %w", id, ErrRunCompleted)
	}
	return c.wrap(err, actionsWrite("cancel workflow run", fmt.Sprintf("workflow run %d", id)), "cancel workflow run %d", id)
}

// WorkflowRuns lists the newest runs of a workflow (one page of up to 100,
// newest first), filtered by f.
func (c *Client) WorkflowRuns(ctx context.Context, workflow string, f RunFilter) ([]WorkflowRun, error) {
	opts := &github.ListWorkflowRunsOptions{Event: f.Event, ListOptions: github.ListOptions{PerPage: perPage}}
	if !f.CreatedFrom.IsZero() {
		opts.Created = ">=" + f.CreatedFrom.UTC().Format(time.RFC3339)
	}
	var (
		runs *github.WorkflowRuns
		err  error
	)
	if id, ok := workflowID(workflow); ok {
		runs, _, err = c.gh().Actions.ListWorkflowRunsByID(ctx, c.owner, c.repo, id, opts)
	} else {
		runs, _, err = c.gh().Actions.ListWorkflowRunsByFileName(ctx, c.owner, c.repo, workflow, opts)
	}
	if err != nil {
		return nil, c.workflowErr(err, actionsRead("list workflow runs", "workflow "+workflow), "list runs of workflow %s", workflow)
	}
	out := make([]WorkflowRun, 0, len(runs.WorkflowRuns))
	for _, r := range runs.WorkflowRuns {
		out = append(out, fromGitHubRun(r))
	}
	return out, nil
}

// workflowErr is wrap, with an unknown workflow's 404 also wrapping
// ErrNoSuchWorkflow.
func (c *Client) workflowErr(err error, a access, format string, args ...any) error {
	var ger *github.ErrorResponse
	notFound := errors.As(err, &ger) && statusOf(ger.Response) == http.StatusNotFound
	err = c.wrap(err, a, format, args...)
	if notFound {
		return &sentinelError{err: err, sentinel: ErrNoSuchWorkflow}
	}
	return err
}

// sentinelError is an error that also wraps a sentinel.
type sentinelError struct {
	err, sentinel error
}

func (e *sentinelError) Error() string   { return e.err.Error() }
func (e *sentinelError) Unwrap() []error { return []error{e.err, e.sentinel} }

// workflowID reads a numeric workflow id; anything else is a file name.
func workflowID(s string) (int64, bool) {
	id, err := strconv.ParseInt(s, 10, 64)
	return id, err == nil && id > 0
}

func fromGitHubRun(r *github.WorkflowRun) WorkflowRun {
	return WorkflowRun{
		ID: r.GetID(), WorkflowID: r.GetWorkflowID(), Name: r.GetName(), DisplayTitle: r.GetDisplayTitle(),
		Event: r.GetEvent(), Status: r.GetStatus(), Conclusion: r.GetConclusion(),
		HeadBranch: r.GetHeadBranch(), HeadSHA: r.GetHeadSHA(), HTMLURL: r.GetHTMLURL(), URL: r.GetURL(),
		Attempt: r.GetRunAttempt(), CreatedAt: r.GetCreatedAt().Time, UpdatedAt: r.GetUpdatedAt().Time,
	}
}
