package githubfake

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

const (
	docDeployments      = "https://docs.github.com/rest/deployments/deployments"
	docDeploymentStatus = "https://docs.github.com/rest/deployments/statuses"
	docStatuses         = "https://docs.github.com/rest/commits/statuses"
	docCommits          = "https://docs.github.com/rest/commits/commits"
	docPulls            = "https://docs.github.com/rest/pulls/pulls"
	docLabels           = "https://docs.github.com/rest/issues/labels"

	// maxDescription is GitHub's limit for status descriptions.
	maxDescription = 140
	// maxStatusesPerContext is GitHub's limit of statuses per SHA and context.
	maxStatusesPerContext = 1000
	// maxPullCommits is how many commits GitHub lists for a pull request.
	maxPullCommits = 250
)

type handler func(f *Server, req *apiRequest, p params, now time.Time) reply

type params struct {
	id   int64
	n    int
	ref  string
	name string
}

// route is one endpoint under /repos/{owner}/{repo}. In pattern, "{id}" is a
// numeric id, "{n}" a number, "{name}" one segment and "{ref}" one or more
// segments.
type route struct {
	method  string
	pattern string
	perm    string // "deployments:write"; alternatives separated by "|"
	doc     string
	h       handler
	// permFor, when set, decides the permission from the request's
	// parameters (an issue endpoint on a pull request's number).
	permFor func(s *state, p params) string
}

// routes is the table of endpoints the fake serves.
func routes() []route {
	return []route{
		{"GET", "deployments", "deployments:read", docDeployments + "#list-deployments", (*Server).listDeployments, nil},
		{"POST", "deployments", "deployments:write", docDeployments + "#create-a-deployment", (*Server).createDeployment, nil},
		{"GET", "deployments/{id}", "deployments:read", docDeployments + "#get-a-deployment", (*Server).getDeployment, nil},
		{"GET", "deployments/{id}/statuses", "deployments:read", docDeploymentStatus + "#list-deployment-statuses", (*Server).listDeploymentStatuses, nil},
		{"POST", "deployments/{id}/statuses", "deployments:write", docDeploymentStatus + "#create-a-deployment-status", (*Server).createDeploymentStatus, nil},
		{"GET", "environments/{name}", "actions:read", docEnvironments + "#get-an-environment", (*Server).getEnvironment, nil},
		{"GET", "deployments/{id}/statuses/{n}", "deployments:read", docDeploymentStatus + "#get-a-deployment-status", (*Server).getDeploymentStatus, nil},
		{"POST", "statuses/{ref}", "statuses:write", docStatuses + "#create-a-commit-status", (*Server).createCommitStatus, nil},
		{"GET", "commits/{ref}/statuses", "statuses:read", docStatuses + "#list-commit-statuses-for-a-reference", (*Server).listCommitStatuses, nil},
		{"GET", "commits/{ref}/status", "statuses:read", docStatuses + "#get-the-combined-status-for-a-specific-reference", (*Server).combinedStatus, nil},
		{"GET", "commits/{ref}/pulls", "pull-requests:read", docCommits + "#list-pull-requests-associated-with-a-commit", (*Server).commitPulls, nil},
		{"GET", "commits/{ref}", "contents:read", docCommits + "#get-a-commit", (*Server).getCommit, nil},
		{"GET", "pulls/{n}", "pull-requests:read", docPulls + "#get-a-pull-request", (*Server).getPull, nil},
		{"GET", "pulls/{n}/commits", "pull-requests:read", docPulls + "#list-commits-on-a-pull-request", (*Server).pullCommits, nil},
		{"GET", "issues/{n}/labels", "pull-requests:read|issues:read", docLabels + "#list-labels-for-an-issue", (*Server).issueLabels, nil},
		{"GET", "issues", "issues:read", docIssues + "#list-repository-issues", (*Server).listIssues, nil},
		{"POST", "issues", "issues:write", docIssues + "#create-an-issue", (*Server).createIssue, nil},
		{"PATCH", "issues/comments/{id}", "", docIssueComments + "#update-an-issue-comment", (*Server).editComment, commentPerm},
		{"GET", "issues/{n}", "", docIssues + "#get-an-issue", (*Server).getIssue, issuePerm("read")},
		{"PATCH", "issues/{n}", "", docIssues + "#update-an-issue", (*Server).editIssue, issuePerm("write")},
		{"GET", "issues/{n}/comments", "", docIssueComments + "#list-issue-comments", (*Server).listComments, issuePerm("read")},
		{"POST", "issues/{n}/comments", "", docIssueComments + "#create-an-issue-comment", (*Server).createComment, issuePerm("write")},
		{"GET", "labels/{name}", "issues:read|pull-requests:read", docLabels + "#get-a-label", (*Server).getLabel, nil},
		{"POST", "labels", "issues:write|pull-requests:write", docLabels + "#create-a-label", (*Server).createLabel, nil},
		{"GET", "compare/{ref}", "contents:read", docCompare, (*Server).compare, nil},
		{"GET", "actions/workflows/{name}", "actions:read", docWorkflows + "#get-a-workflow", (*Server).getWorkflow, nil},
		{"POST", "actions/workflows/{name}/dispatches", "actions:write", docWorkflows + "#create-a-workflow-dispatch-event", (*Server).dispatch, nil},
		{"GET", "actions/workflows/{name}/runs", "actions:read", docWorkflowRuns + "#list-workflow-runs-for-a-workflow", (*Server).listRuns, nil},
		{"GET", "actions/runs/{id}", "actions:read", docWorkflowRuns + "#get-a-workflow-run", (*Server).getRun, nil},
		{"POST", "actions/runs/{id}/cancel", "actions:write", docWorkflowRuns + "#cancel-a-workflow-run", (*Server).cancelRun, nil},
	}
}

// match reports whether segs fit the pattern, and extracts its parameters.
func (rt route) match(segs []string) (params, bool) {
	pat := strings.Split(rt.pattern, "/")
	var p params
	refAt := -1
	for i, s := range pat {
		if s == "{ref}" {
			refAt = i
		}
	}
	if refAt >= 0 {
		tail := len(pat) - refAt - 1
		if len(segs) < len(pat) {
			return p, false
		}
		refSegs := segs[refAt : len(segs)-tail]
		p.ref = strings.Join(refSegs, "/")
		segs = append(append(append([]string{}, segs[:refAt]...), "{ref}"), segs[len(segs)-tail:]...)
	}
	if len(segs) != len(pat) {
		return p, false
	}
	for i, s := range pat {
		switch s {
		case "{ref}":
		case "{name}":
			p.name = segs[i]
		case "{id}":
			id, err := strconv.ParseInt(segs[i], 10, 64)
			if err != nil || id <= 0 {
				return p, false
			}
			p.id = id
		case "{n}":
			n, err := strconv.Atoi(segs[i])
			if err != nil || n <= 0 {
				return p, false
			}
			p.n = n
		default:
			if segs[i] != s {
				return p, false
			}
		}
	}
	return p, true
}

// splitRepoPath splits "/repos/{owner}/{repo}/rest..." into its parts.
func splitRepoPath(p string) (owner, repo string, rest []string, ok bool) {
	segs := strings.Split(strings.Trim(p, "/"), "/")
	if len(segs) < 4 || segs[0] != "repos" {
		return "", "", nil, false
	}
	return segs[1], segs[2], segs[3:], true
}

// docFor is the documentation link GitHub would put in an error for p.
func docFor(p string) string {
	if _, _, rest, ok := splitRepoPath(p); ok {
		for _, rt := range routes() {
			if _, ok := rt.match(rest); ok {
				return rt.doc
			}
		}
	}
	return "https://docs.github.com/rest"
}

// route dispatches a request; f.mu is held.
func (f *Server) route(req *apiRequest, now time.Time) reply {
	owner, repo, rest, ok := splitRepoPath(req.path)
	if !ok {
		return notFound("https://docs.github.com/rest")
	}
	var found *route
	var p params
	table := routes()
	for i := range table {
		rt := &table[i]
		if pp, ok := rt.match(rest); ok && rt.method == req.method {
			found, p = rt, pp
			break
		}
	}
	if found == nil {
		// GitHub answers 404 for unknown routes and unsupported methods.
		return notFound("https://docs.github.com/rest")
	}
	req.rest = rest
	if !strings.EqualFold(owner, f.opts.Owner) || !strings.EqualFold(repo, f.opts.Repo) {
		return notFound(found.doc)
	}
	perm := found.perm
	if found.permFor != nil {
		perm = found.permFor(&f.st, p)
	}
	if !f.granted(perm) {
		return reply{status: http.StatusForbidden, body: errorBody("Resource not accessible by integration", found.doc, 403)}
	}
	if req.method == http.MethodPost || req.method == http.MethodPatch {
		var body map[string]any
		if len(strings.TrimSpace(string(req.raw))) > 0 {
			if err := json.Unmarshal(req.raw, &body); err != nil {
				return reply{status: http.StatusBadRequest, body: errorBody("Problems parsing JSON", found.doc, 400)}
			}
		}
		if body == nil {
			body = map[string]any{}
		}
		req.body = body
	}
	return found.h(f, req, p, now)
}

// granted checks a route's permission against Options.Permissions.
func (f *Server) granted(perm string) bool {
	if f.opts.Permissions == nil {
		return true
	}
	level := map[string]int{"read": 1, "write": 2}
	for _, alt := range strings.Split(perm, "|") {
		scope, need, _ := strings.Cut(alt, ":")
		have := f.opts.Permissions[scope]
		if have == "" {
			have = f.opts.Permissions[strings.ReplaceAll(scope, "-", "_")]
		}
		if level[have] >= level[need] {
			return true
		}
	}
	return false
}

// page applies per_page/page to n items and builds the Link header.
func page(req *apiRequest, n int) (lo, hi int, h http.Header) {
	per := 30
	if v, err := strconv.Atoi(req.query.Get("per_page")); err == nil && v > 0 {
		per = min(v, 100)
	}
	pg := 1
	if v, err := strconv.Atoi(req.query.Get("page")); err == nil && v > 0 {
		pg = v
	}
	last := max(1, (n+per-1)/per)
	lo = min((pg-1)*per, n)
	hi = min(lo+per, n)

	h = http.Header{}
	link := func(p int, rel string) string {
		q := url.Values{}
		for k, vs := range req.query {
			q[k] = vs
		}
		q.Set("per_page", strconv.Itoa(per))
		q.Set("page", strconv.Itoa(p))
		u := req.base + (&url.URL{Path: req.path}).EscapedPath() + "?" + q.Encode()
		return fmt.Sprintf("<%s>; rel=%q", u, rel)
	}
	var links []string
	if pg > 1 {
		links = append(links, link(min(pg-1, last), "prev"))
	}
	if pg < last {
		links = append(links, link(pg+1, "next"), link(last, "last"))
	}
	if pg > 1 {
		links = append(links, link(1, "first"))
	}
	if len(links) > 0 {
		h.Set("Link", strings.Join(links, ", "))
	}
	return lo, hi, h
}

// listed answers one page of items, rendered, with GitHub's Link header.
func listed[T any](req *apiRequest, items []T, render func(T) any) reply {
	lo, hi, h := page(req, len(items))
	out := []any{}
	for _, it := range items[lo:hi] {
		out = append(out, render(it))
	}
	return reply{status: http.StatusOK, body: out, header: h}
}

func created(body any) reply { return reply{status: http.StatusCreated, body: body} }

func noCommit(doc, ref string) reply {
	return unprocessable(doc, "No commit found for SHA: "+ref)
}

func noRef(doc, ref string) reply { return unprocessable(doc, "No ref found for: "+ref) }

// fieldChecks validates the JSON types of body fields the way GitHub's
// schema validation reports them.
type fieldCheck struct {
	name string
	kind string // "string", "boolean", "string-or-null", "array-of-strings", "object-or-string"
}

func checkFields(doc string, body map[string]any, checks ...fieldCheck) (reply, bool) {
	for _, c := range checks {
		v, ok := body[c.name]
		if !ok {
			continue
		}
		good := false
		switch c.kind {
		case "string":
			_, good = v.(string)
		case "string-or-null":
			_, good = v.(string)
			good = good || v == nil
		case "boolean":
			_, good = v.(bool)
		case "array-of-strings":
			if a, isArr := v.([]any); isArr {
				good = true
				for _, e := range a {
					if _, s := e.(string); !s {
						good = false
					}
				}
			}
		case "object-or-string":
			switch v.(type) {
			case map[string]any, string:
				good = true
			}
		}
		if !good {
			b, _ := json.Marshal(v)
			return invalid(doc, fmt.Sprintf("For 'properties/%s', %s is not a %s.", c.name, b, strings.ReplaceAll(c.kind, "-", " "))), false
		}
	}
	return reply{}, true
}

func checkEnum(doc, field, v string, allowed []string) (reply, bool) {
	if contains(allowed, v) {
		return reply{}, true
	}
	quoted := make([]string, len(allowed))
	for i, a := range allowed {
		quoted[i] = strconv.Quote(a)
	}
	return invalid(doc, fmt.Sprintf("For 'properties/%s', %q is not a member of [%s].", field, v, strings.Join(quoted, ", "))), false
}

func str(body map[string]any, k string) string {
	s, _ := body[k].(string)
	return s
}

func (f *Server) listDeployments(req *apiRequest, _ params, _ time.Time) reply {
	q := req.query
	var match []*Deployment
	for k := range f.st.deployments {
		i := len(f.st.deployments) - 1 - k // newest first
		if f.opts.OldestFirst {
			i = k
		}
		d := f.st.deployments[i]
		// GitHub does not document whether this filter minds letter case:
		// the fake takes the stricter reading, and minds it.
		if v := q.Get("environment"); v != "" && d.Environment != v {
			continue
		}
		if v := q.Get("sha"); v != "" && d.SHA != strings.ToLower(v) {
			continue
		}
		if v := q.Get("ref"); v != "" && d.Ref != v {
			continue
		}
		if v := q.Get("task"); v != "" && d.Task != v {
			continue
		}
		match = append(match, d)
	}
	return listed(req, match, func(d *Deployment) any { return f.renderDeployment(d) })
}

func (f *Server) createDeployment(req *apiRequest, _ params, now time.Time) reply {
	doc := docDeployments + "#create-a-deployment"
	b := req.body
	if rep, ok := checkFields(doc, b,
		fieldCheck{"ref", "string"}, fieldCheck{"task", "string"}, fieldCheck{"auto_merge", "boolean"},
		fieldCheck{"required_contexts", "array-of-strings"}, fieldCheck{"payload", "object-or-string"},
		fieldCheck{"environment", "string"}, fieldCheck{"description", "string-or-null"},
		fieldCheck{"transient_environment", "boolean"}, fieldCheck{"production_environment", "boolean"},
	); !ok {
		return rep
	}
	ref, ok := b["ref"].(string)
	if !ok {
		return invalid(doc, `"ref" wasn't supplied.`)
	}
	sha, ok := f.st.resolve(ref)
	if !ok {
		return noRef(doc, ref)
	}

	// Commit status checks, unless bypassed with an empty required_contexts.
	latest := map[string]string{}
	for _, s := range f.st.commitStatuses[sha] {
		latest[s.Context] = s.State
	}
	var required []string
	if rc, given := b["required_contexts"].([]any); given {
		for _, c := range rc {
			required = append(required, c.(string))
		}
	} else {
		for c := range latest {
			required = append(required, c)
		}
		sort.Strings(required)
	}
	var failing []any
	for _, c := range required {
		if st := latest[c]; st != "success" {
			if st == "" {
				st = "missing"
			}
			failing = append(failing, map[string]any{"context": c, "state": st})
		}
	}
	if len(failing) > 0 {
		body := errorBody("Conflict: Commit status checks failed for "+ref+".", doc, 409)
		body["errors"] = []any{map[string]any{
			"contexts": failing, "resource": "Deployment", "field": "required_contexts", "code": "invalid",
		}}
		return reply{status: http.StatusConflict, body: body}
	}

	d := Deployment{
		SHA:         sha,
		Ref:         ref,
		Task:        "deploy",
		Environment: "production",
		Description: str(b, "description"),
		Creator:     f.opts.Login,
		Payload:     map[string]any{},
		CreatedAt:   now,
		UpdatedAt:   now,
	}
	if v := str(b, "task"); v != "" {
		d.Task = v
	}
	if v := str(b, "environment"); v != "" {
		d.Environment = v
	}
	d.OriginalEnvironment = d.Environment
	if v, ok := b["payload"]; ok {
		d.Payload = v
	}
	d.ProductionEnvironment = d.Environment == "production"
	if v, ok := b["production_environment"].(bool); ok {
		d.ProductionEnvironment = v
	}
	if v, ok := b["transient_environment"].(bool); ok {
		d.TransientEnvironment = v
	}
	return created(f.renderDeployment(f.st.insertDeployment(d)))
}

func (f *Server) getDeployment(_ *apiRequest, p params, _ time.Time) reply {
	return one(f.st.deployment(p.id), docDeployments+"#get-a-deployment", f.renderDeployment)
}

func (f *Server) listDeploymentStatuses(req *apiRequest, p params, _ time.Time) reply {
	if f.st.deployment(p.id) == nil {
		return notFound(docDeploymentStatus + "#list-deployment-statuses")
	}
	ss := f.st.depStatuses[p.id]
	lo, hi, h := page(req, len(ss))
	out := []any{}
	for k := lo; k < hi; k++ {
		i := len(ss) - 1 - k // newest first
		if f.opts.OldestFirst {
			i = k
		}
		out = append(out, f.renderDeploymentStatus(ss[i]))
	}
	return reply{status: http.StatusOK, body: out, header: h}
}

func (f *Server) getDeploymentStatus(_ *apiRequest, p params, _ time.Time) reply {
	for _, s := range f.st.depStatuses[p.id] {
		if s.ID == int64(p.n) {
			return reply{status: http.StatusOK, body: f.renderDeploymentStatus(s)}
		}
	}
	return notFound(docDeploymentStatus + "#get-a-deployment-status")
}

// checkStatus validates a new status as GitHub does: its state is
// required and one of states, its description at most maxDescription
// characters (resource names the status in that error).
func checkStatus(doc, resource string, b map[string]any, states []string) (string, reply, bool) {
	state, ok := b["state"].(string)
	if !ok {
		return "", invalid(doc, `"state" wasn't supplied.`), false
	}
	if rep, ok := checkEnum(doc, "state", state, states); !ok {
		return "", rep, false
	}
	if utf8.RuneCountInString(str(b, "description")) > maxDescription {
		return "", validationFailed(doc, resource, "description", "custom",
			fmt.Sprintf("description is too long (maximum is %d characters)", maxDescription)), false
	}
	return state, reply{}, true
}

func (f *Server) createDeploymentStatus(req *apiRequest, p params, now time.Time) reply {
	doc := docDeploymentStatus + "#create-a-deployment-status"
	d := f.st.deployment(p.id)
	if d == nil {
		return notFound(doc)
	}
	b := req.body
	if rep, ok := checkFields(doc, b,
		fieldCheck{"state", "string"}, fieldCheck{"target_url", "string"}, fieldCheck{"log_url", "string"},
		fieldCheck{"description", "string"}, fieldCheck{"environment", "string"},
		fieldCheck{"environment_url", "string"}, fieldCheck{"auto_inactive", "boolean"},
	); !ok {
		return rep
	}
	state, rep, ok := checkStatus(doc, "DeploymentStatus", b, deploymentStates())
	if !ok {
		return rep
	}
	if env := str(b, "environment"); env != "" {
		d.Environment = env
	}
	logURL := str(b, "log_url")
	if logURL == "" {
		logURL = str(b, "target_url")
	}
	s := f.st.insertDeploymentStatus(d, DeploymentStatus{
		State:          state,
		Description:    str(b, "description"),
		Environment:    d.Environment,
		EnvironmentURL: str(b, "environment_url"),
		LogURL:         logURL,
		Creator:        f.opts.Login,
		CreatedAt:      now,
	})
	autoInactive := true
	if v, ok := b["auto_inactive"].(bool); ok {
		autoInactive = v
	}
	if state == "success" && autoInactive {
		f.st.inactivatePrior(d, f.opts.Login, now)
	}
	return created(f.renderDeploymentStatus(s))
}

// inactivatePrior does what GitHub does for a success status: every prior
// non-transient deployment of the same environment that is active (its
// latest status is success) becomes inactive. The REST description still
// says "non-production" with a preview media type for production ones;
// that preview has graduated, and GitHub inactivates production
// deployments too (the environments page shows only the newest as
// active). The jobs' deployments GitHub makes for `environment:` end with
// such a success, so this happens to every earlier success.
func (s *state) inactivatePrior(d *Deployment, login string, now time.Time) {
	for _, e := range s.deployments {
		if e.ID >= d.ID {
			break
		}
		if e.Environment != d.Environment || e.TransientEnvironment {
			continue
		}
		if l := s.latestDeploymentStatus(e.ID); l == nil || l.State != "success" {
			continue
		}
		s.insertDeploymentStatus(e, DeploymentStatus{
			State: "inactive", Environment: e.Environment, Creator: login, CreatedAt: now,
		})
	}
}

func (f *Server) createCommitStatus(req *apiRequest, p params, now time.Time) reply {
	doc := docStatuses + "#create-a-commit-status"
	b := req.body
	if rep, ok := checkFields(doc, b,
		fieldCheck{"state", "string"}, fieldCheck{"target_url", "string-or-null"},
		fieldCheck{"description", "string-or-null"}, fieldCheck{"context", "string"},
	); !ok {
		return rep
	}
	// Unlike most endpoints, commit statuses take only a full SHA: an
	// abbreviation, a branch or a tag is refused with 422.
	if len(p.ref) != 40 || !isHex(p.ref) {
		return noCommit(doc, p.ref)
	}
	sha, ok := f.st.resolve(p.ref)
	if !ok {
		return noCommit(doc, p.ref)
	}
	state, rep, ok := checkStatus(doc, "Status", b, commitStates())
	if !ok {
		return rep
	}
	ctx := str(b, "context")
	if ctx == "" {
		ctx = "default"
	}
	n := 0
	for _, s := range f.st.commitStatuses[sha] {
		if s.Context == ctx {
			n++
		}
	}
	if n >= maxStatusesPerContext {
		return validationFailed(doc, "Status", "", "custom", "This SHA and context has reached the maximum number of statuses.")
	}
	s := f.st.insertCommitStatus(CommitStatus{
		SHA: sha, State: state, Context: ctx, Description: str(b, "description"),
		TargetURL: str(b, "target_url"), Creator: f.opts.Login, CreatedAt: now,
	})
	return created(f.renderCommitStatus(s, true))
}

func (f *Server) listCommitStatuses(req *apiRequest, p params, _ time.Time) reply {
	doc := docStatuses + "#list-commit-statuses-for-a-reference"
	sha, ok := f.st.resolve(p.ref)
	if !ok {
		return noCommit(doc, p.ref)
	}
	ss := f.st.commitStatuses[sha]
	lo, hi, h := page(req, len(ss))
	out := []any{}
	for i := len(ss) - 1 - lo; i > len(ss)-1-hi; i-- {
		out = append(out, f.renderCommitStatus(ss[i], true))
	}
	return reply{status: http.StatusOK, body: out, header: h}
}

func (f *Server) combinedStatus(req *apiRequest, p params, _ time.Time) reply {
	doc := docStatuses + "#get-the-combined-status-for-a-specific-reference"
	sha, ok := f.st.resolve(p.ref)
	if !ok {
		return noCommit(doc, p.ref)
	}
	// Latest status per context, most recent first.
	seen := map[string]bool{}
	var latest []*CommitStatus
	ss := f.st.commitStatuses[sha]
	for i := len(ss) - 1; i >= 0; i-- {
		if !seen[ss[i].Context] {
			seen[ss[i].Context] = true
			latest = append(latest, ss[i])
		}
	}
	combined := "success"
	if len(latest) == 0 {
		combined = "pending"
	}
	for _, s := range latest {
		switch s.State {
		case "error", "failure":
			combined = "failure"
		case "pending":
			if combined != "failure" {
				combined = "pending"
			}
		}
	}
	lo, hi, h := page(req, len(latest))
	statuses := []any{}
	for _, s := range latest[lo:hi] {
		statuses = append(statuses, f.renderCommitStatus(s, false))
	}
	m := f.tmpl("combined_status")
	m["state"] = combined
	m["statuses"] = statuses
	m["sha"] = sha
	m["total_count"] = len(latest)
	m["repository"] = f.repository()
	m["commit_url"] = f.repoAPI() + "/commits/" + sha
	m["url"] = f.repoAPI() + "/commits/" + sha + "/status"
	return reply{status: http.StatusOK, body: m, header: h}
}

func (f *Server) getCommit(req *apiRequest, p params, _ time.Time) reply {
	sha, ok := f.st.resolve(p.ref)
	if !ok {
		return noCommit(docCommits+"#get-a-commit", p.ref)
	}
	if strings.Contains(req.accept, "vnd.github.sha") || strings.Contains(req.accept, "vnd.github.v3.sha") {
		h := http.Header{}
		h.Set("Content-Type", "application/vnd.github.sha; charset=utf-8")
		return reply{status: http.StatusOK, raw: []byte(sha), header: h}
	}
	c, i := f.st.commit(sha)
	parent := ""
	if i > 0 {
		parent = f.st.commits[i-1].SHA
	}
	return reply{status: http.StatusOK, body: f.renderCommit(c, parent, true)}
}

// commitPulls lists the pull requests associated with a commit the way
// GitHub documents it: for a commit on the default branch, the merged pull
// request that introduced it (its merge commit, or one of its commits); for
// any other commit, the merged and open pull requests that contain it.
func (f *Server) commitPulls(req *apiRequest, p params, _ time.Time) reply {
	sha, ok := f.st.resolve(p.ref)
	if !ok {
		return noCommit(docCommits+"#list-pull-requests-associated-with-a-commit", p.ref)
	}
	_, onDefault := f.st.onMain[sha]
	var nums []int
	for n, pr := range f.st.pulls {
		hit := pr.HeadSHA == sha || pr.MergeCommitSHA == sha
		for _, c := range pr.Commits {
			hit = hit || c.SHA == sha
		}
		if hit && (pr.Merged || !onDefault) {
			nums = append(nums, n)
		}
	}
	sort.Sort(sort.Reverse(sort.IntSlice(nums)))
	return listed(req, nums, func(n int) any { return f.renderPullSimple(f.st.pulls[n], f.baseSHA(f.st.pulls[n])) })
}

// baseSHA guesses the base of a pull request: the parent of its first
// commit, if known.
func (f *Server) baseSHA(pr *PullRequest) string {
	first := pr.HeadSHA
	if len(pr.Commits) > 0 {
		first = pr.Commits[0].SHA
	}
	if _, i := f.st.commit(first); i > 0 {
		return f.st.commits[i-1].SHA
	}
	return first
}

func (f *Server) getPull(_ *apiRequest, p params, _ time.Time) reply {
	pr, ok := f.st.pulls[p.n]
	if !ok {
		return notFound(docPulls + "#get-a-pull-request")
	}
	return reply{status: http.StatusOK, body: f.renderPull(pr, f.baseSHA(pr))}
}

func (f *Server) pullCommits(req *apiRequest, p params, _ time.Time) reply {
	pr, ok := f.st.pulls[p.n]
	if !ok {
		return notFound(docPulls + "#list-commits-on-a-pull-request")
	}
	commits := pr.Commits
	if len(commits) > maxPullCommits {
		commits = commits[:maxPullCommits]
	}
	lo, hi, h := page(req, len(commits))
	out := []any{}
	for i := lo; i < hi; i++ {
		parent := ""
		if i > 0 {
			parent = commits[i-1].SHA
		} else if b := f.baseSHA(pr); b != commits[0].SHA {
			parent = b
		}
		out = append(out, f.renderCommit(commits[i], parent, false))
	}
	return reply{status: http.StatusOK, body: out, header: h}
}

func (f *Server) issueLabels(req *apiRequest, p params, _ time.Time) reply {
	v, ok := f.st.issueView(p.n)
	if !ok {
		return notFound(docLabels + "#list-labels-for-an-issue")
	}
	return listed(req, v.Labels, func(l string) any { return f.renderLabel(l) })
}
