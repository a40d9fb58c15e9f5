package githubfake

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"path"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
)

const (
	docWorkflows    = "https://docs.github.com/rest/actions/workflows"
	docWorkflowRuns = "https://docs.github.com/rest/actions/workflow-runs"
)

// RunDetails says how the fake answers a workflow dispatch that asks for
// the run's details (return_run_details: true).
type RunDetails int

const (
	// RunDetailsReturned is github.com's answer since February 2026: 200
	// with workflow_run_id, run_url and html_url.
	RunDetailsReturned RunDetails = iota
	// RunDetailsIgnored is a GitHub Enterprise Server that does not know
	// the parameter and answers 204 with no body, as without it.
	RunDetailsIgnored
	// RunDetailsRejected is a GitHub Enterprise Server whose schema
	// validation refuses the parameter: 422 "return_run_details" is not a
	// permitted key; no run is created.
	RunDetailsRejected
)

// Workflow is a workflow file the fake knows (AddWorkflow).
type Workflow struct {
	ID int64 // assigned by AddWorkflow
	// Path is the file's path, e.g. ".github/workflows/deploy.yml"
	// (required). The API finds the workflow by its id or its file name.
	Path string
	// Name is the workflow's name: default the file name.
	Name string
	// State is "active" (default), "disabled_manually", ...
	State string
	// Inputs are the workflow_dispatch inputs the workflow declares. A
	// dispatch with any other input, or without a required one that has
	// no default, is refused (422), as GitHub does.
	Inputs []WorkflowInput
	// NoDispatch: the workflow has no workflow_dispatch trigger.
	NoDispatch bool
	// RunName is the workflow's run-name: a dispatched run's display
	// title, with each ${{ inputs.NAME }} replaced by the input's value.
	// Empty: the workflow's name, as GitHub titles a workflow_dispatch run
	// without run-name.
	RunName string
	// Queued is how long a dispatched run stays queued before it starts.
	Queued time.Duration
	// Run performs a dispatched run once it is in_progress, as the
	// workflow's jobs would (e.g. by running a deploy script with the
	// run's sha input). Its ctx is cancelled when the run is cancelled
	// (or the fake closes); it returns the run's conclusion: "success",
	// "failure", ... A run cancelled while Run works concludes
	// "cancelled" whatever Run returns. Nil: every run succeeds at once.
	Run func(ctx context.Context, r DispatchedRun) string
	// CreatedAt defaults to the fake's clock.
	CreatedAt time.Time
}

// WorkflowInput is one workflow_dispatch input of a workflow.
type WorkflowInput struct {
	Name     string
	Required bool
	Default  string
}

// DispatchedRun is what Workflow.Run is told of the run it performs.
type DispatchedRun struct {
	ID     int64
	Ref    string // the branch or tag dispatched on
	SHA    string // the commit the ref pointed at
	Inputs map[string]string
}

// WorkflowRun is a workflow run held by the fake.
type WorkflowRun struct {
	ID           int64
	WorkflowID   int64
	RunNumber    int
	Event        string // "workflow_dispatch"
	Status       string // queued, in_progress or completed
	Conclusion   string // "" until completed
	HeadBranch   string
	HeadSHA      string
	DisplayTitle string
	Inputs       map[string]string
	Actor        string
	// CancelRequested is set by a cancel through the API.
	CancelRequested bool
	CreatedAt       time.Time
	UpdatedAt       time.Time
	StartedAt       time.Time
}

// AddWorkflow makes a workflow file known and returns it with its id.
func (f *Server) AddWorkflow(w Workflow) Workflow {
	f.mu.Lock()
	defer f.mu.Unlock()
	if w.Path == "" {
		panic("githubfake: AddWorkflow needs a Path")
	}
	if w.Name == "" {
		w.Name = path.Base(w.Path)
	}
	if w.State == "" {
		w.State = "active"
	}
	if w.CreatedAt.IsZero() {
		w.CreatedAt = f.now()
	}
	w.Inputs = append([]WorkflowInput(nil), w.Inputs...)
	w.ID = f.st.nextWorkflow
	f.st.nextWorkflow++
	p := &w
	f.st.workflows = append(f.st.workflows, p)
	return w
}

// WorkflowRuns returns every workflow run in creation order.
func (f *Server) WorkflowRuns() []WorkflowRun {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]WorkflowRun, 0, len(f.st.runs))
	for _, r := range f.st.runs {
		out = append(out, r.copy())
	}
	return out
}

// WorkflowRun returns one workflow run.
func (f *Server) WorkflowRun(id int64) (WorkflowRun, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if r := f.st.run(id); r != nil {
		return r.copy(), true
	}
	return WorkflowRun{}, false
}

// WaitWorkflowRuns waits until every dispatched run has completed, or
// timeout passes; it reports whether they all did.
func (f *Server) WaitWorkflowRuns(timeout time.Duration) bool {
	done := make(chan struct{})
	go func() { f.runs.Wait(); close(done) }()
	select {
	case <-done:
		return true
	case <-time.After(timeout):
		return false
	}
}

func (r *WorkflowRun) copy() WorkflowRun {
	c := *r
	c.Inputs = make(map[string]string, len(r.Inputs))
	for k, v := range r.Inputs {
		c.Inputs[k] = v
	}
	return c
}

func (s *state) run(id int64) *WorkflowRun {
	return byID(s.runs, id, func(r *WorkflowRun) int64 { return r.ID })
}

// workflow finds a workflow by id or file name, as the API does.
func (s *state) workflow(idOrFile string) *Workflow {
	if id, err := strconv.ParseInt(idOrFile, 10, 64); err == nil {
		for _, w := range s.workflows {
			if w.ID == id {
				return w
			}
		}
		return nil
	}
	for _, w := range s.workflows {
		if path.Base(w.Path) == idOrFile {
			return w
		}
	}
	return nil
}

// dispatchRef resolves the ref a workflow is dispatched on: a branch or a
// tag, never a bare commit.
func (s *state) dispatchRef(ref string) (name, sha string, ok bool) {
	name = ref
	for _, p := range []string{"refs/heads/", "refs/tags/"} {
		name = strings.TrimPrefix(name, p)
	}
	sha, ok = s.branches[name]
	return name, sha, ok
}

var inputExpr = regexp.MustCompile(`\$\{\{\s*(?:github\.event\.)?inputs\.([A-Za-z0-9_-]+)\s*\}\}`)

func (w *Workflow) title(inputs map[string]string) string {
	if w.RunName == "" {
		return w.Name
	}
	return inputExpr.ReplaceAllStringFunc(w.RunName, func(m string) string {
		return inputs[inputExpr.FindStringSubmatch(m)[1]]
	})
}

// dispatch creates a workflow dispatch event; f.mu is held.
func (f *Server) dispatch(req *apiRequest, p params, now time.Time) reply {
	doc := docWorkflows + "#create-a-workflow-dispatch-event"
	w := f.st.workflow(p.name)
	if w == nil {
		return notFound(doc)
	}
	details, asked := req.body["return_run_details"]
	if asked && f.opts.DispatchRunDetails == RunDetailsRejected {
		return invalid(doc, `"return_run_details" is not a permitted key.`)
	}
	if rep, ok := checkFields(doc, req.body, fieldCheck{"ref", "string"}, fieldCheck{"return_run_details", "boolean"}); !ok {
		return rep
	}
	rawInputs, _ := req.body["inputs"]
	inputs := map[string]string{}
	if rawInputs != nil {
		m, ok := rawInputs.(map[string]any)
		if !ok {
			b, _ := json.Marshal(rawInputs)
			return invalid(doc, fmt.Sprintf("For 'properties/inputs', %s is not an object.", b))
		}
		for k, v := range m {
			switch x := v.(type) {
			case string:
				inputs[k] = x
			case bool:
				inputs[k] = strconv.FormatBool(x)
			case float64:
				inputs[k] = strconv.FormatFloat(x, 'f', -1, 64)
			default:
				b, _ := json.Marshal(v)
				return invalid(doc, fmt.Sprintf("For 'properties/%s', %s is not a string.", k, b))
			}
		}
	}
	ref, _ := req.body["ref"].(string)
	if ref == "" {
		return invalid(doc, `"ref" wasn't supplied.`)
	}
	if w.NoDispatch {
		return unprocessable(doc, "Workflow does not have 'workflow_dispatch' trigger")
	}
	if w.State != "active" {
		return unprocessable(doc, "Cannot trigger a 'workflow_dispatch' on a disabled workflow")
	}
	branch, sha, ok := f.st.dispatchRef(ref)
	if !ok {
		return noRef(doc, ref)
	}
	declared := map[string]WorkflowInput{}
	for _, in := range w.Inputs {
		declared[in.Name] = in
	}
	var unexpected []string
	for k := range inputs {
		if _, ok := declared[k]; !ok {
			unexpected = append(unexpected, strconv.Quote(k))
		}
	}
	if len(unexpected) > 0 {
		sort.Strings(unexpected)
		return unprocessable(doc, "Unexpected inputs provided: ["+strings.Join(unexpected, ", ")+"]")
	}
	for _, in := range w.Inputs {
		if _, given := inputs[in.Name]; given {
			continue
		}
		if in.Required && in.Default == "" {
			return unprocessable(doc, fmt.Sprintf("Required input '%s' not provided", in.Name))
		}
		inputs[in.Name] = in.Default
	}

	number := 1
	for _, r := range f.st.runs {
		if r.WorkflowID == w.ID {
			number++
		}
	}
	run := &WorkflowRun{
		ID: f.st.nextRun, WorkflowID: w.ID, RunNumber: number, Event: "workflow_dispatch",
		Status: "queued", HeadBranch: branch, HeadSHA: sha, DisplayTitle: w.title(inputs),
		Inputs: inputs, Actor: f.opts.Login, CreatedAt: now, UpdatedAt: now,
	}
	f.st.nextRun++
	f.st.runs = append(f.st.runs, run)
	ctx, cancel := context.WithCancel(context.Background())
	f.st.runCancel[run.ID] = cancel
	f.runs.Add(1)
	go f.perform(ctx, run.ID, *w, DispatchedRun{ID: run.ID, Ref: branch, SHA: sha, Inputs: run.copy().Inputs})

	if asked && details == true && f.opts.DispatchRunDetails == RunDetailsReturned {
		m := f.tmpl("workflow_dispatch_response")
		m["workflow_run_id"] = run.ID
		m["run_url"] = f.repoAPI() + "/actions/runs/" + strconv.FormatInt(run.ID, 10)
		m["html_url"] = f.repoWeb() + "/actions/runs/" + strconv.FormatInt(run.ID, 10)
		return reply{status: http.StatusOK, body: m}
	}
	return reply{status: http.StatusNoContent}
}

// perform moves a run through its life: queued, in_progress while the
// workflow's Run works, then completed with a conclusion.
func (f *Server) perform(ctx context.Context, id int64, w Workflow, dr DispatchedRun) {
	defer f.runs.Done()
	defer func() {
		f.mu.Lock()
		if cancel := f.st.runCancel[id]; cancel != nil {
			cancel()
			delete(f.st.runCancel, id)
		}
		f.mu.Unlock()
	}()
	if w.Queued > 0 {
		t := time.NewTimer(w.Queued)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
		}
	}
	f.mu.Lock()
	r := f.st.run(id)
	if ctx.Err() != nil {
		r.Status, r.Conclusion, r.UpdatedAt = "completed", "cancelled", f.now()
		f.mu.Unlock()
		return
	}
	r.Status, r.StartedAt, r.UpdatedAt = "in_progress", f.now(), f.now()
	f.mu.Unlock()

	conclusion := "success"
	if w.Run != nil {
		conclusion = w.Run(ctx, dr)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if ctx.Err() != nil || conclusion == "" {
		conclusion = "cancelled"
	}
	r.Status, r.Conclusion, r.UpdatedAt = "completed", conclusion, f.now()
}

// stopRuns cancels every run still going and waits for them (Close).
func (f *Server) stopRuns() {
	f.mu.Lock()
	for _, cancel := range f.st.runCancel {
		cancel()
	}
	f.mu.Unlock()
	f.runs.Wait()
}

func (f *Server) getWorkflow(req *apiRequest, p params, now time.Time) reply {
	return one(f.st.workflow(p.name), docWorkflows+"#get-a-workflow", f.renderWorkflow)
}

func (f *Server) getRun(req *apiRequest, p params, now time.Time) reply {
	return one(f.st.run(p.id), docWorkflowRuns+"#get-a-workflow-run", f.renderRun)
}

func (f *Server) cancelRun(req *apiRequest, p params, now time.Time) reply {
	doc := docWorkflowRuns + "#cancel-a-workflow-run"
	r := f.st.run(p.id)
	if r == nil {
		return notFound(doc)
	}
	if r.Status == "completed" {
		return reply{status: http.StatusConflict, body: errorBody("Cannot cancel a workflow run that is completed.", doc, 409)}
	}
	r.CancelRequested = true
	if cancel := f.st.runCancel[r.ID]; cancel != nil {
		cancel()
	}
	return reply{status: http.StatusAccepted, body: map[string]any{}}
}

// listRuns lists a workflow's runs newest first, filtered as GitHub
// filters them.
func (f *Server) listRuns(req *apiRequest, p params, now time.Time) reply {
	doc := docWorkflowRuns + "#list-workflow-runs-for-a-workflow"
	w := f.st.workflow(p.name)
	if w == nil {
		return notFound(doc)
	}
	q := req.query
	created, ok := parseCreated(q.Get("created"))
	if !ok {
		return invalid(doc, fmt.Sprintf("For 'properties/created', %q is not a date-time range.", q.Get("created")))
	}
	if s := q.Get("status"); s != "" {
		if rep, ok := checkEnum(doc, "status", s, []string{"completed", "action_required", "cancelled", "failure", "neutral", "skipped", "stale", "success", "timed_out", "in_progress", "queued", "requested", "waiting", "pending"}); !ok {
			return rep
		}
	}
	var runs []*WorkflowRun
	for i := len(f.st.runs) - 1; i >= 0; i-- {
		r := f.st.runs[i]
		switch {
		case r.WorkflowID != w.ID,
			now.Sub(r.CreatedAt) < f.opts.RunListedAfter,
			q.Get("event") != "" && q.Get("event") != r.Event,
			q.Get("status") != "" && q.Get("status") != r.Status && q.Get("status") != r.Conclusion,
			q.Get("branch") != "" && q.Get("branch") != r.HeadBranch,
			q.Get("head_sha") != "" && !strings.EqualFold(q.Get("head_sha"), r.HeadSHA),
			q.Get("actor") != "" && !strings.EqualFold(q.Get("actor"), r.Actor),
			!created(r.CreatedAt):
			continue
		}
		runs = append(runs, r)
	}
	lo, hi, h := page(req, len(runs))
	out := []any{}
	for _, r := range runs[lo:hi] {
		out = append(out, f.renderRun(r))
	}
	return reply{status: http.StatusOK, body: map[string]any{"total_count": len(runs), "workflow_runs": out}, header: h}
}

// parseCreated reads GitHub's search syntax for dates: >=T, >T, <=T, <T,
// A..B, or one date (that whole day) or date-time.
func parseCreated(s string) (func(time.Time) bool, bool) {
	if s == "" {
		return func(time.Time) bool { return true }, true
	}
	parse := func(v string) (time.Time, bool, bool) {
		if t, err := time.Parse(time.RFC3339, v); err == nil {
			return t, false, true
		}
		if t, err := time.Parse("2006-01-02", v); err == nil {
			return t, true, true
		}
		return time.Time{}, false, false
	}
	for _, op := range []string{">=", "<=", ">", "<"} {
		if v, ok := strings.CutPrefix(s, op); ok {
			t, _, ok := parse(v)
			if !ok {
				return nil, false
			}
			return func(c time.Time) bool {
				switch op {
				case ">=":
					return !c.Before(t)
				case "<=":
					return !c.After(t)
				case ">":
					return c.After(t)
				}
				return c.Before(t)
			}, true
		}
	}
	if a, b, ok := strings.Cut(s, ".."); ok {
		ta, _, oka := parse(a)
		tb, day, okb := parse(b)
		if !oka || !okb {
			return nil, false
		}
		if day {
			tb = tb.Add(24*time.Hour - time.Nanosecond)
		}
		return func(c time.Time) bool { return !c.Before(ta) && !c.After(tb) }, true
	}
	t, day, ok := parse(s)
	if !ok {
		return nil, false
	}
	if day {
		return func(c time.Time) bool { return !c.Before(t) && c.Before(t.Add(24*time.Hour)) }, true
	}
	return func(c time.Time) bool { return c.Equal(t) }, true
}

func (f *Server) renderWorkflow(w *Workflow) map[string]any {
	m := f.tmpl("workflow")
	id := strconv.FormatInt(w.ID, 10)
	m["id"] = w.ID
	m["node_id"] = nodeID("Workflow", w.ID)
	m["name"] = w.Name
	m["path"] = w.Path
	m["state"] = w.State
	m["created_at"] = ts(w.CreatedAt)
	m["updated_at"] = ts(w.CreatedAt)
	m["url"] = f.repoAPI() + "/actions/workflows/" + id
	m["html_url"] = f.repoWeb() + "/blob/main/" + w.Path
	m["badge_url"] = f.repoWeb() + "/workflows/" + url.PathEscape(w.Name) + "/badge.svg"
	return m
}

func (f *Server) renderRun(r *WorkflowRun) map[string]any {
	m := f.tmpl("workflow_run")
	var w *Workflow
	for _, x := range f.st.workflows {
		if x.ID == r.WorkflowID {
			w = x
		}
	}
	id := strconv.FormatInt(r.ID, 10)
	api := f.repoAPI() + "/actions/runs/" + id
	m["id"] = r.ID
	m["name"] = w.Name
	m["node_id"] = nodeID("WorkflowRun", r.ID)
	m["check_suite_id"] = r.ID + 1_000_000_000
	m["check_suite_node_id"] = nodeID("CheckSuite", r.ID+1_000_000_000)
	m["head_branch"] = r.HeadBranch
	m["head_sha"] = r.HeadSHA
	m["path"] = w.Path + "@" + r.HeadBranch
	m["run_number"] = r.RunNumber
	m["event"] = r.Event
	m["display_title"] = r.DisplayTitle
	m["status"] = r.Status
	m["conclusion"] = nullable(r.Conclusion)
	m["workflow_id"] = r.WorkflowID
	m["url"] = api
	m["html_url"] = f.repoWeb() + "/actions/runs/" + id
	m["created_at"] = ts(r.CreatedAt)
	m["updated_at"] = ts(r.UpdatedAt)
	started := r.StartedAt
	if started.IsZero() {
		started = r.CreatedAt
	}
	m["run_started_at"] = ts(started)
	m["actor"] = f.user(r.Actor, "")
	m["triggering_actor"] = f.user(r.Actor, "")
	m["jobs_url"] = api + "/jobs"
	m["logs_url"] = api + "/logs"
	m["check_suite_url"] = f.repoAPI() + "/check-suites/" + strconv.FormatInt(r.ID+1_000_000_000, 10)
	m["artifacts_url"] = api + "/artifacts"
	m["cancel_url"] = api + "/cancel"
	m["rerun_url"] = api + "/rerun"
	m["workflow_url"] = f.repoAPI() + "/actions/workflows/" + strconv.FormatInt(r.WorkflowID, 10)
	if hc, ok := m["head_commit"].(map[string]any); ok {
		c, _ := f.st.commit(r.HeadSHA)
		hc["id"] = r.HeadSHA
		hc["tree_id"] = treeSHA(r.HeadSHA)
		hc["message"] = c.Message
	}
	// The documented example's repositories are the minimal shape; the
	// fake's full repository carries every field of it.
	m["repository"], m["head_repository"] = f.repository(), f.repository()
	return m
}
