// Package githubfake emulates the part of GitHub's REST API that immune uses,
// as a stateful in-process HTTP server for tests.
//
// The fake keeps deployments, deployment statuses, commit statuses, commits
// (and which are on the default branch), pull requests, issues, their
// comments, the repository's labels, its workflows and their runs (a
// dispatched run is queued, then in_progress while a test-provided function
// performs it, then completed; a cancel stops it) for one repository, answers with JSON shaped like the
// examples in GitHub's REST documentation (built from the templates in the
// module's testdata/github directory), validates requests the way GitHub
// does (authentication, required fields, enums, the 140-character
// description limit, unknown ids), paginates with a Link header, and can
// inject faults: server errors, permission errors, primary and secondary
// rate limits, slow answers, dropped connections and a complete outage.
//
// It is a normal package so that the tests of any package, and end-to-end
// tests of the action, can start it; production code must not import it.
package githubfake

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// Options configures a fake GitHub.
type Options struct {
	// Owner and Repo name the single repository the fake serves. Requests
	// for any other repository get GitHub's 404. Defaults: "octo-org" and
	// "shop". Names are matched case-insensitively, as on GitHub.
	Owner, Repo string

	// Token, when set, must be presented as "Authorization: Bearer <token>"
	// or "Authorization: token <token>"; anything else gets a 401. When
	// empty, authentication is not checked.
	Token string

	// PathPrefix serves the API under a path, like GitHub Enterprise Server
	// does under "/api/v3". Requests outside the prefix get a 404.
	PathPrefix string

	// Login is the user that creates deployments and statuses through the
	// API. Default "github-actions[bot]", the identity behind GITHUB_TOKEN.
	Login string

	// Now is the fake's clock, used for created_at/updated_at and rate limit
	// resets. Default time.Now. Timestamps are truncated to seconds, as
	// GitHub's are.
	Now func() time.Time

	// RateLimit is the number of requests allowed per hour-long window
	// before the fake answers with a primary rate limit error, as GitHub
	// does. Default 5000.
	RateLimit int

	// Permissions, when non-nil, emulates the permissions granted to the
	// token, as a workflow's permissions: block does: keys are "deployments",
	// "statuses", "contents", "pull-requests" (or "pull_requests"),
	// "issues" and "actions", and values are "read" or "write" ("none" or absent denies).
	// A request that needs more than it is granted gets GitHub's 403
	// "Resource not accessible by integration". Nil grants everything.
	// Issue endpoints on a pull request's number (its conversation's
	// comments) accept "issues" or "pull-requests"; on an issue, only
	// "issues".
	Permissions map[string]string

	// DispatchRunDetails says how a workflow dispatch that asks for the
	// run's details is answered: as github.com does (default), or as an
	// older GitHub Enterprise Server does.
	DispatchRunDetails RunDetails

	// RunListedAfter delays a new workflow run's appearance in run lists,
	// as GitHub's lists lag behind a dispatch. Getting the run by id is
	// not delayed.
	RunListedAfter time.Duration

	// OldestFirst lists deployments and deployment statuses oldest first.
	// GitHub lists them newest first, but its REST description promises no
	// order for them (it does for comments): this proves that a client
	// takes the newest by id, not by place in the list.
	OldestFirst bool

	// NoPushAccess makes the token's user one without push access to the
	// repository: as GitHub documents, the labels it sets when it creates
	// or updates an issue are silently dropped.
	NoPushAccess bool

	// TemplateDir is the directory holding the JSON templates. Default: the
	// module's testdata/github, found by walking up from the working
	// directory or from this source file.
	TemplateDir string
}

// Server is a running fake GitHub. It is safe for concurrent use.
type Server struct {
	opts   Options
	srv    *httptest.Server
	tpl    *templates
	closed chan struct{}
	once   sync.Once

	mu   sync.Mutex
	st   state
	runs sync.WaitGroup // workflow runs still going
}

// Call is one request the fake received.
type Call struct {
	Method string
	// Path is the request path relative to the API root (without
	// Options.PathPrefix), unescaped, e.g. "/repos/o/r/deployments".
	Path  string
	Query url.Values
	// Body is the JSON request body decoded into any (nil when there was
	// none; the raw text when it was not JSON).
	Body any
	// Accept is the request's Accept header.
	Accept string
	// Status is the status the fake answered with; 0 when it dropped the
	// connection without answering.
	Status int
}

// New starts a fake GitHub. It panics if the templates cannot be loaded,
// like httptest.NewServer panics when it cannot listen. Call Close when done,
// or use Start, which does that at the end of the test.
func New(o Options) *Server {
	f, err := newServer(o)
	if err != nil {
		panic("githubfake: " + err.Error())
	}
	return f
}

// Start starts a fake GitHub for the test and closes it when the test ends.
func Start(tb testing.TB, o Options) *Server {
	tb.Helper()
	f, err := newServer(o)
	if err != nil {
		tb.Fatalf("githubfake: %v", err)
	}
	tb.Cleanup(f.Close)
	return f
}

func newServer(o Options) (*Server, error) {
	if o.Owner == "" {
		o.Owner = "octo-org"
	}
	if o.Repo == "" {
		o.Repo = "shop"
	}
	if o.Login == "" {
		o.Login = "github-actions[bot]"
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.RateLimit <= 0 {
		o.RateLimit = 5000
	}
	o.PathPrefix = strings.TrimRight(o.PathPrefix, "/")
	if o.PathPrefix != "" && !strings.HasPrefix(o.PathPrefix, "/") {
		o.PathPrefix = "/" + o.PathPrefix
	}
	t, err := loadTemplates(o.TemplateDir)
	if err != nil {
		return nil, err
	}
	f := &Server{opts: o, tpl: t, closed: make(chan struct{}), st: newState()}
	f.srv = httptest.NewServer(f)
	return f, nil
}

// URL returns the API root, e.g. "http://127.0.0.1:1234" or, with a
// PathPrefix, "http://127.0.0.1:1234/api/v3". Use it as GITHUB_API_URL.
func (f *Server) URL() string { return f.srv.URL + f.opts.PathPrefix }

// ServerURL returns the web root, to use as GITHUB_SERVER_URL.
func (f *Server) ServerURL() string { return f.srv.URL }

// Repository returns "owner/repo", to use as GITHUB_REPOSITORY.
func (f *Server) Repository() string { return f.opts.Owner + "/" + f.opts.Repo }

// Client returns an HTTP client for the fake's server.
func (f *Server) Client() *http.Client { return f.srv.Client() }

// Close stops the server. Requests held by a Delay fault are released;
// workflow runs still going are cancelled and waited for (a Workflow.Run
// must return once its ctx is done).
func (f *Server) Close() {
	f.once.Do(func() {
		close(f.closed)
		f.srv.CloseClientConnections()
		f.srv.Close()
		f.stopRuns()
	})
}

// Calls returns every request received so far, in order.
func (f *Server) Calls() []Call {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]Call, len(f.st.calls))
	copy(out, f.st.calls)
	return out
}

// CallCount returns how many requests matched method and path ("" matches
// any method; path is compared exactly, relative to the API root).
func (f *Server) CallCount(method, path string) int {
	n := 0
	for _, c := range f.Calls() {
		if (method == "" || c.Method == method) && c.Path == path {
			n++
		}
	}
	return n
}

// ResetCalls forgets the recorded calls.
func (f *Server) ResetCalls() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.st.calls = nil
}

// SetDown makes every request fail (true) by closing the connection without
// an answer, as when GitHub is unreachable, or restores service (false).
func (f *Server) SetDown(down bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.st.down = down
}

// reply is what a handler answers.
type reply struct {
	status int
	body   any    // JSON-encoded unless raw is set
	raw    []byte // sent as is
	header http.Header
}

// apiRequest is a request after routing.
type apiRequest struct {
	method string
	path   string   // relative to the API root
	rest   []string // unescaped path segments after /repos/{owner}/{repo}
	query  url.Values
	body   map[string]any
	raw    []byte
	accept string
	base   string // scheme://host + prefix, for Link headers
}

const maxBody = 1 << 20

func (f *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	call := Call{Method: r.Method, Query: r.URL.Query(), Accept: r.Header.Get("Accept")}
	raw, _ := io.ReadAll(io.LimitReader(r.Body, maxBody))
	call.Body = decodeCallBody(raw)

	p := r.URL.Path
	inPrefix := true
	if f.opts.PathPrefix != "" {
		if p == f.opts.PathPrefix || strings.HasPrefix(p, f.opts.PathPrefix+"/") {
			p = strings.TrimPrefix(p, f.opts.PathPrefix)
		} else {
			inPrefix = false
		}
	}
	if p == "" {
		p = "/"
	}
	call.Path = p

	f.mu.Lock()
	down := f.st.down
	fault, faulted := f.st.takeFault(r.Method, p)
	f.mu.Unlock()

	if down {
		f.record(call)
		drop(w)
		return
	}
	if faulted && fault.Delay > 0 {
		t := time.NewTimer(fault.Delay)
		select {
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
			f.record(call) // the client gave up; Status 0
			return
		case <-f.closed:
			t.Stop()
			f.record(call)
			return
		}
	}
	if faulted && fault.Drop && !fault.AfterServing {
		f.record(call)
		drop(w)
		return
	}

	req := &apiRequest{
		method: r.Method,
		path:   p,
		query:  call.Query,
		raw:    raw,
		accept: call.Accept,
		base:   "http://" + r.Host + f.opts.PathPrefix,
	}

	var rep reply
	now := f.now()
	switch {
	case !inPrefix:
		rep = notFound("https://docs.github.com/rest")
	case faulted && fault.answers():
		rep = f.faultReply(fault, now, p)
	default:
		rep = f.serve(r, req, now)
	}
	if faulted && fault.AfterServing {
		if fault.Drop {
			f.record(call)
			drop(w)
			return
		}
		rep = f.faultReply(fault, now, p)
	}
	call.Status = rep.status
	f.record(call)
	f.write(w, rep)
}

func decodeCallBody(raw []byte) any {
	if len(bytes.TrimSpace(raw)) == 0 {
		return nil
	}
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		return string(raw)
	}
	return v
}

func (f *Server) record(c Call) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.st.calls = append(f.st.calls, c)
}

func (f *Server) now() time.Time { return f.opts.Now().UTC().Truncate(time.Second) }

// serve authenticates, applies the rate limit window and dispatches.
func (f *Server) serve(r *http.Request, req *apiRequest, now time.Time) reply {
	if rep, ok := f.authenticate(r.Header.Get("Authorization")); !ok {
		return rep
	}

	f.mu.Lock()
	defer f.mu.Unlock()

	rl := f.st.spend(now, f.opts.RateLimit)
	var rep reply
	if rl.exceeded {
		rep = reply{status: http.StatusForbidden, body: errorBody(
			"API rate limit exceeded for installation ID 1.",
			"https://docs.github.com/rest/overview/rate-limits-for-the-rest-api#about-rate-limits", 403)}
	} else {
		rep = f.route(req, now)
	}
	if rep.header == nil {
		rep.header = http.Header{}
	}
	rl.set(rep.header, f.opts.RateLimit)
	return rep
}

func (f *Server) authenticate(h string) (reply, bool) {
	if f.opts.Token == "" {
		return reply{}, true
	}
	doc := "https://docs.github.com/rest"
	if h == "" {
		return reply{status: http.StatusUnauthorized, body: errorBody("Requires authentication", doc, 401)}, false
	}
	scheme, tok, _ := strings.Cut(h, " ")
	if (!strings.EqualFold(scheme, "bearer") && !strings.EqualFold(scheme, "token")) || tok != f.opts.Token {
		return reply{status: http.StatusUnauthorized, body: errorBody("Bad credentials", doc, 401)}, false
	}
	return reply{}, true
}

func (f *Server) write(w http.ResponseWriter, rep reply) {
	h := w.Header()
	for k, vs := range rep.header {
		for _, v := range vs {
			h.Add(k, v)
		}
	}
	h.Set("X-GitHub-Api-Version-Selected", "2022-11-28")
	h.Set("X-GitHub-Media-Type", "github.v3; format=json")
	f.mu.Lock()
	f.st.requestSeq++
	h.Set("X-GitHub-Request-Id", fmt.Sprintf("FAKE:%04X:%06X", f.st.requestSeq%0xFFFF, f.st.requestSeq))
	f.mu.Unlock()
	var payload []byte
	if rep.raw != nil {
		payload = rep.raw
	} else if rep.body != nil {
		b, err := json.MarshalIndent(rep.body, "", "  ")
		if err != nil {
			rep.status = http.StatusInternalServerError
			b = []byte(`{"message":"githubfake: cannot encode response"}`)
		}
		payload = append(b, '\n')
		if h.Get("Content-Type") == "" {
			h.Set("Content-Type", "application/json; charset=utf-8")
		}
	}
	if rep.status == 0 {
		rep.status = http.StatusOK
	}
	w.WriteHeader(rep.status)
	_, _ = w.Write(payload)
}

// drop closes the connection without answering.
func drop(w http.ResponseWriter) {
	hj, ok := w.(http.Hijacker)
	if !ok {
		panic(http.ErrAbortHandler)
	}
	conn, _, err := hj.Hijack()
	if err != nil {
		panic(http.ErrAbortHandler)
	}
	_ = conn.Close()
}

// errorBody is GitHub's error document.
func errorBody(message, doc string, status int) map[string]any {
	return map[string]any{
		"message":           message,
		"documentation_url": doc,
		"status":            strconv.Itoa(status),
	}
}

func notFound(doc string) reply {
	return reply{status: http.StatusNotFound, body: errorBody("Not Found", doc, 404)}
}

// one is GitHub's answer to a GET of one thing: v rendered, or 404 (with
// the endpoint's doc) when there is no such thing.
func one[T any](v *T, doc string, render func(*T) map[string]any) reply {
	if v == nil {
		return notFound(doc)
	}
	return reply{status: http.StatusOK, body: render(v)}
}

// unprocessable is GitHub's 422 with message.
func unprocessable(doc, message string) reply {
	return reply{status: http.StatusUnprocessableEntity, body: errorBody(message, doc, 422)}
}

// invalid is GitHub's answer to a request that fails schema validation.
func invalid(doc, detail string) reply {
	return unprocessable(doc, "Invalid request.\n\n"+detail)
}

// validationFailed is GitHub's answer to a request that fails a model
// validation.
func validationFailed(doc, resource, field, code, message string) reply {
	e := map[string]any{"resource": resource, "field": field, "code": code}
	if message != "" {
		e["message"] = message
	}
	b := errorBody("Validation Failed", doc, 422)
	b["errors"] = []any{e}
	return reply{status: http.StatusUnprocessableEntity, body: b}
}

// rateWindow is the primary rate limit emulation: an hour-long window.
type rateWindow struct {
	used  int
	reset time.Time
}

type rateState struct {
	remaining int
	used      int
	reset     time.Time
	exceeded  bool
}

func (s *state) spend(now time.Time, limit int) rateState {
	if s.rate.reset.IsZero() || !now.Before(s.rate.reset) {
		s.rate = rateWindow{reset: now.Add(time.Hour)}
	}
	if s.rate.used >= limit {
		return rateState{remaining: 0, used: s.rate.used, reset: s.rate.reset, exceeded: true}
	}
	s.rate.used++
	return rateState{remaining: limit - s.rate.used, used: s.rate.used, reset: s.rate.reset}
}

func (r rateState) set(h http.Header, limit int) {
	h.Set("X-RateLimit-Limit", strconv.Itoa(limit))
	h.Set("X-RateLimit-Remaining", strconv.Itoa(r.remaining))
	h.Set("X-RateLimit-Used", strconv.Itoa(r.used))
	h.Set("X-RateLimit-Reset", strconv.FormatInt(epochCeil(r.reset), 10))
	h.Set("X-RateLimit-Resource", "core")
}

// epochCeil is t in Unix seconds, rounded up.
func epochCeil(t time.Time) int64 {
	s := t.Unix()
	if t.Nanosecond() > 0 {
		s++
	}
	return s
}
