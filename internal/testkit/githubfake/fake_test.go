package githubfake

import (
	"bytes"
	"crypto/sha1"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-github/v60/github"
)

const token = "ghs_fakeTestToken123"

var t0 = time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)

// sha is a deterministic commit id whose prefixes are unique.
func sha(n int) string {
	h := sha1.Sum([]byte(strconv.Itoa(n)))
	return hex.EncodeToString(h[:])
}

type answer struct {
	status int
	header http.Header
	body   any
	raw    []byte
}

func call(t *testing.T, f *Server, method, path string, body any) answer {
	t.Helper()
	return callAuth(t, f, method, path, body, "Bearer "+token)
}

func callAuth(t *testing.T, f *Server, method, path string, body any, auth string) answer {
	t.Helper()
	var rd io.Reader
	if body != nil {
		if s, ok := body.(string); ok {
			rd = strings.NewReader(s)
		} else {
			b, err := json.Marshal(body)
			if err != nil {
				t.Fatal(err)
			}
			rd = bytes.NewReader(b)
		}
	}
	req, err := http.NewRequest(method, f.URL()+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	resp, err := f.Client().Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	a := answer{status: resp.StatusCode, header: resp.Header, raw: raw}
	if len(raw) > 0 {
		_ = json.Unmarshal(raw, &a.body)
	}
	return a
}

func (a answer) obj(t *testing.T) map[string]any {
	t.Helper()
	m, ok := a.body.(map[string]any)
	if !ok {
		t.Fatalf("answer %d is not an object: %s", a.status, a.raw)
	}
	return m
}

func (a answer) list(t *testing.T) []any {
	t.Helper()
	l, ok := a.body.([]any)
	if !ok {
		t.Fatalf("answer %d is not a list: %s", a.status, a.raw)
	}
	return l
}

func newFake(t *testing.T, o Options) *Server {
	t.Helper()
	if o.Token == "" {
		o.Token = token
	}
	if o.Now == nil {
		o.Now = func() time.Time { return t0 }
	}
	return Start(t, o)
}

func TestListDeploymentsPagesNewestFirst(t *testing.T) {
	f := newFake(t, Options{Owner: "octo-org", Repo: "shop"})
	for i := 0; i < 75; i++ {
		env := "production"
		if i%5 == 0 {
			env = "staging" // 15 of them
		}
		f.AddDeployment(Deployment{SHA: sha(i), Environment: env})
	}
	const base = "/repos/octo-org/shop/deployments"
	var prod []string // production SHAs, newest first
	for i := 74; i >= 0; i-- {
		if i%5 != 0 {
			prod = append(prod, sha(i))
		}
	}
	tests := []struct {
		query     string
		wantLen   int
		wantFirst string // sha of the first item
		wantRels  []string
		wantNext  string
	}{
		{"?environment=production&per_page=25", 25, prod[0], []string{"next", "last"}, "page=2"},
		{"?environment=production&per_page=25&page=2", 25, prod[25], []string{"prev", "next", "last", "first"}, "page=3"},
		{"?environment=production&per_page=25&page=3", 10, prod[50], []string{"prev", "first"}, ""},
		{"?environment=production&per_page=25&page=4", 0, "", []string{"prev", "first"}, ""},
		{"?environment=staging", 15, sha(70), nil, ""},
		{"?per_page=500", 75, sha(74), nil, ""}, // capped at 100
		{"?sha=" + sha(3), 1, sha(3), nil, ""},
		{"?environment=nowhere", 0, "", nil, ""},
		{"?environment=production", 30, prod[0], []string{"next", "last"}, "page=2"}, // default 30
	}
	for _, tt := range tests {
		t.Run(tt.query, func(t *testing.T) {
			a := call(t, f, "GET", base+tt.query, nil)
			if a.status != 200 {
				t.Fatalf("status %d: %s", a.status, a.raw)
			}
			l := a.list(t)
			if len(l) != tt.wantLen {
				t.Fatalf("got %d items, want %d", len(l), tt.wantLen)
			}
			if tt.wantLen > 0 {
				if got := l[0].(map[string]any)["sha"]; got != tt.wantFirst {
					t.Errorf("first sha %v, want %s", got, tt.wantFirst)
				}
				prev := int64(1 << 62)
				for _, it := range l {
					id, _ := it.(map[string]any)["id"].(float64)
					if int64(id) >= prev {
						t.Fatalf("not newest first: %v after %v", id, prev)
					}
					prev = int64(id)
				}
			}
			link := a.header.Get("Link")
			var rels []string
			for _, part := range strings.Split(link, ",") {
				if _, rel, ok := strings.Cut(part, "rel="); ok {
					rels = append(rels, strings.Trim(rel, `"`))
				}
			}
			if !reflect.DeepEqual(rels, tt.wantRels) {
				t.Errorf("Link rels %v, want %v (Link: %s)", rels, tt.wantRels, link)
			}
			if tt.wantNext != "" {
				next := ""
				for _, part := range strings.Split(link, ",") {
					if strings.HasSuffix(part, `rel="next"`) {
						u, err := url.Parse(strings.Trim(strings.TrimSpace(strings.Split(part, ";")[0]), "<>"))
						if err != nil {
							t.Fatal(err)
						}
						next = "page=" + u.Query().Get("page")
					}
				}
				if next != tt.wantNext {
					t.Errorf("next link has %q, want %q (Link: %s)", next, tt.wantNext, link)
				}
			}
			if link != "" && !strings.Contains(link, f.URL()+base+"?") {
				t.Errorf("Link %s does not point at the fake", link)
			}
		})
	}
}

func TestValidation(t *testing.T) {
	f := newFake(t, Options{})
	f.AddCommit(sha(1), "first")
	d := f.SeedDeployment("production", sha(1), "success")
	repo := "/repos/octo-org/shop"
	long := strings.Repeat("é", 141)
	tests := []struct {
		name       string
		method     string
		path       string
		body       any
		auth       string
		wantStatus int
		wantMsg    string
	}{
		{"no auth", "GET", repo + "/deployments", nil, "-", 401, "Requires authentication"},
		{"wrong token", "GET", repo + "/deployments", nil, "Bearer nope", 401, "Bad credentials"},
		{"token scheme", "GET", repo + "/deployments", nil, "token " + token, 200, ""},
		{"unknown repo", "GET", "/repos/other/shop/deployments", nil, "", 404, "Not Found"},
		{"repo case-insensitive", "GET", "/repos/Octo-Org/SHOP/deployments", nil, "", 200, ""},
		{"unknown route", "GET", repo + "/nothing", nil, "", 404, "Not Found"},
		{"unsupported method", "DELETE", repo + "/deployments", nil, "", 404, "Not Found"},
		{"missing ref", "POST", repo + "/deployments", map[string]any{"environment": "x"}, "", 422, "\"ref\" wasn't supplied."},
		{"bad type", "POST", repo + "/deployments", map[string]any{"ref": sha(1), "auto_merge": "no"}, "", 422, "'properties/auto_merge'"},
		{"bad json", "POST", repo + "/deployments", "{", "", 400, "Problems parsing JSON"},
		{"unknown ref", "POST", repo + "/deployments", map[string]any{"ref": "nope"}, "", 422, "No ref found for: nope"},
		{"unknown deployment", "GET", repo + "/deployments/42", nil, "", 404, "Not Found"},
		{"status on unknown deployment", "POST", repo + "/deployments/42/statuses", map[string]any{"state": "success"}, "", 404, "Not Found"},
		{"status without state", "POST", repo + fmt.Sprintf("/deployments/%d/statuses", d.ID), map[string]any{}, "", 422, "\"state\" wasn't supplied."},
		{"status bad state", "POST", repo + fmt.Sprintf("/deployments/%d/statuses", d.ID), map[string]any{"state": "done"}, "", 422, "is not a member of"},
		{"status long description", "POST", repo + fmt.Sprintf("/deployments/%d/statuses", d.ID), map[string]any{"state": "success", "description": long}, "", 422, "Validation Failed"},
		{"status 140 runes ok", "POST", repo + fmt.Sprintf("/deployments/%d/statuses", d.ID), map[string]any{"state": "queued", "description": long[2:]}, "", 201, ""},
		{"commit status bad state", "POST", repo + "/statuses/" + sha(1), map[string]any{"state": "in_progress"}, "", 422, "is not a member of"},
		{"commit status long", "POST", repo + "/statuses/" + sha(1), map[string]any{"state": "success", "description": long}, "", 422, "Validation Failed"},
		{"commit status unknown sha", "POST", repo + "/statuses/" + sha(9), map[string]any{"state": "success"}, "", 422, "No commit found for SHA: " + sha(9)},
		{"commit unknown", "GET", repo + "/commits/deadbeef00", nil, "", 422, "No commit found for SHA: deadbeef00"},
		{"commit short", "GET", repo + "/commits/" + sha(1)[:7], nil, "", 200, ""},
		{"commit too short", "GET", repo + "/commits/" + sha(1)[:6], nil, "", 422, "No commit found"},
		{"pull unknown", "GET", repo + "/pulls/7", nil, "", 404, "Not Found"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			auth := "Bearer " + token
			if tt.auth == "-" {
				auth = ""
			} else if tt.auth != "" {
				auth = tt.auth
			}
			a := callAuth(t, f, tt.method, tt.path, tt.body, auth)
			if a.status != tt.wantStatus {
				t.Fatalf("status %d, want %d: %s", a.status, tt.wantStatus, a.raw)
			}
			if tt.wantMsg != "" {
				m := a.obj(t)
				if msg, _ := m["message"].(string); !strings.Contains(msg, tt.wantMsg) {
					t.Errorf("message %q, want it to contain %q", msg, tt.wantMsg)
				}
				if _, ok := m["documentation_url"].(string); !ok {
					t.Errorf("error without documentation_url: %s", a.raw)
				}
				if m["status"] != strconv.Itoa(tt.wantStatus) {
					t.Errorf("error status field %v, want %d", m["status"], tt.wantStatus)
				}
			}
		})
	}
}

func TestAmbiguousPrefixDoesNotResolve(t *testing.T) {
	f := newFake(t, Options{})
	f.AddCommit("abcdef1000000000000000000000000000000000", "a")
	f.AddCommit("abcdef1999999999999999999999999999999999", "b")
	if a := call(t, f, "GET", "/repos/octo-org/shop/commits/abcdef1", nil); a.status != 422 {
		t.Errorf("ambiguous prefix: status %d, want 422", a.status)
	}
	if a := call(t, f, "GET", "/repos/octo-org/shop/commits/abcdef19", nil); a.status != 200 {
		t.Errorf("unique prefix: status %d, want 200", a.status)
	}
	f.AddBranch("main", "abcdef1999999999999999999999999999999999")
	a := call(t, f, "GET", "/repos/octo-org/shop/commits/main", nil)
	if got := a.obj(t)["sha"]; got != "abcdef1999999999999999999999999999999999" {
		t.Errorf("branch resolves to %v", got)
	}
	// The SHA media type answers the bare id, as GitHub does.
	req, _ := http.NewRequest("GET", f.URL()+"/repos/octo-org/shop/commits/heads/main", nil)
	req.Header.Set("Authorization", "token "+token)
	req.Header.Set("Accept", "application/vnd.github.v3.sha")
	resp, err := f.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(b) != "abcdef1999999999999999999999999999999999" {
		t.Errorf("sha media type answered %q", b)
	}
}

func TestDeploymentLifecycle(t *testing.T) {
	clock := t0
	var mu sync.Mutex
	f := newFake(t, Options{Now: func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		clock = clock.Add(time.Second)
		return clock
	}})
	f.AddCommit(sha(1), "one")
	f.AddCommit(sha(2), "two")
	repo := "/repos/octo-org/shop"

	a := call(t, f, "POST", repo+"/deployments", map[string]any{
		"ref": sha(1)[:10], "environment": "staging", "auto_merge": false, "required_contexts": []string{},
		"payload": map[string]any{"run": 7}, "description": "first",
	})
	if a.status != 201 {
		t.Fatalf("create: %d %s", a.status, a.raw)
	}
	d1 := a.obj(t)
	if d1["sha"] != sha(1) || d1["ref"] != sha(1)[:10] || d1["environment"] != "staging" || d1["task"] != "deploy" ||
		d1["production_environment"] != false || d1["transient_environment"] != false {
		t.Errorf("deployment: %s", a.raw)
	}
	if p, _ := d1["payload"].(map[string]any); p["run"] != float64(7) {
		t.Errorf("payload %v", d1["payload"])
	}
	id1 := int64(d1["id"].(float64))
	if got, want := d1["statuses_url"], fmt.Sprintf("%s%s/deployments/%d/statuses", f.URL(), repo, id1); got != want {
		t.Errorf("statuses_url %v, want %v", got, want)
	}
	if c := d1["creator"].(map[string]any); c["login"] != "github-actions[bot]" || c["type"] != "Bot" {
		t.Errorf("creator %v", c)
	}

	for _, st := range []string{"queued", "in_progress", "success"} {
		if a := call(t, f, "POST", fmt.Sprintf("%s/deployments/%d/statuses", repo, id1), map[string]any{"state": st, "log_url": "https://ci/run/1"}); a.status != 201 {
			t.Fatalf("status %s: %d %s", st, a.status, a.raw)
		}
	}
	a = call(t, f, "GET", fmt.Sprintf("%s/deployments/%d/statuses?per_page=1", repo, id1), nil)
	l := a.list(t)
	if len(l) != 1 || l[0].(map[string]any)["state"] != "success" || l[0].(map[string]any)["target_url"] != "https://ci/run/1" {
		t.Fatalf("latest status: %s", a.raw)
	}
	if !strings.Contains(a.header.Get("Link"), `rel="next"`) {
		t.Errorf("statuses Link: %q", a.header.Get("Link"))
	}

	// A second success in the non-production environment inactivates the
	// first, as GitHub documents; auto_inactive: false prevents it.
	a = call(t, f, "POST", repo+"/deployments", map[string]any{"ref": sha(2), "environment": "staging", "required_contexts": []string{}})
	id2 := int64(a.obj(t)["id"].(float64))
	call(t, f, "POST", fmt.Sprintf("%s/deployments/%d/statuses", repo, id2), map[string]any{"state": "success", "auto_inactive": false})
	if got := f.LatestDeploymentState(id1); got != "success" {
		t.Errorf("auto_inactive false: first deployment is %q", got)
	}
	call(t, f, "POST", fmt.Sprintf("%s/deployments/%d/statuses", repo, id2), map[string]any{"state": "success"})
	if got := f.LatestDeploymentState(id1); got != "inactive" {
		t.Errorf("after success: first deployment is %q, want inactive", got)
	}
	if got := f.LatestDeploymentState(id2); got != "success" {
		t.Errorf("second deployment is %q", got)
	}
	if ss := f.DeploymentStatuses(id1); len(ss) != 4 || ss[0].State != "queued" || !ss[0].CreatedAt.Before(ss[3].CreatedAt) {
		t.Errorf("statuses in creation order: %+v", ss)
	}
}

// Production deployments are inactivated too (the REST description's
// "non-production" predates the graduated preview; see inactivatePrior).
func TestProductionDeploymentsBecomeInactive(t *testing.T) {
	f := newFake(t, Options{})
	old := f.SeedDeployment("production", sha(1), "success")
	failed := f.SeedDeployment("production", sha(2), "failure")
	a := call(t, f, "POST", "/repos/octo-org/shop/deployments", map[string]any{"ref": sha(1), "required_contexts": []string{}})
	id := int64(a.obj(t)["id"].(float64))
	call(t, f, "POST", fmt.Sprintf("/repos/octo-org/shop/deployments/%d/statuses", id), map[string]any{"state": "success"})
	if got := f.LatestDeploymentState(old.ID); got != "inactive" {
		t.Errorf("earlier successful production deployment is %q, want inactive", got)
	}
	if got := f.LatestDeploymentState(failed.ID); got != "failure" {
		t.Errorf("a failed deployment became %q; only successes are inactivated", got)
	}
}

// A job that names environment: gets a deployment of its own, with the
// branch as ref, an empty payload, the actor as creator, and statuses that
// follow the job.
func TestJobDeployments(t *testing.T) {
	f := newFake(t, Options{})
	ours := f.SeedDeployment("production", sha(1), "success")
	job := f.StartJob("production", "main", sha(2), "monalisa")
	a := call(t, f, "GET", "/repos/octo-org/shop/deployments?environment=production", nil)
	l := a.list(t)
	if len(l) != 2 {
		t.Fatalf("%d deployments: %s", len(l), a.raw)
	}
	d := l[0].(map[string]any)
	if d["ref"] != "main" || d["sha"] != sha(2) || d["task"] != "deploy" || d["description"] != nil ||
		fmt.Sprint(d["payload"]) != "map[]" || d["creator"].(map[string]any)["login"] != "monalisa" || int64(d["id"].(float64)) != job.ID {
		t.Errorf("job deployment: %s", a.raw)
	}
	if got := f.LatestDeploymentState(job.ID); got != "in_progress" {
		t.Errorf("running job's deployment is %q", got)
	}
	job.Finish(true)
	if got := f.LatestDeploymentState(job.ID); got != "success" {
		t.Errorf("finished job's deployment is %q", got)
	}
	if got := f.LatestDeploymentState(ours.ID); got != "inactive" {
		t.Errorf("the job's success left the earlier deployment %q, want inactive", got)
	}
	failed := f.StartJob("production", "main", sha(3), "monalisa")
	failed.Finish(false)
	if got := f.LatestDeploymentState(failed.ID); got != "failure" {
		t.Errorf("failed job's deployment is %q", got)
	}
}

// Commit statuses take only a full SHA.
func TestCommitStatusNeedsTheFullSHA(t *testing.T) {
	f := newFake(t, Options{})
	f.AddCommit(sha(1), "x")
	f.AddBranch("main", sha(1))
	for _, ref := range []string{sha(1)[:7], "main"} {
		a := call(t, f, "POST", "/repos/octo-org/shop/statuses/"+ref, map[string]any{"state": "success"})
		if a.status != 422 || !strings.Contains(string(a.raw), "No commit found for SHA: "+ref) {
			t.Errorf("status on %q: %d %s", ref, a.status, a.raw)
		}
	}
	if a := call(t, f, "POST", "/repos/octo-org/shop/statuses/"+sha(1), map[string]any{"state": "success"}); a.status != 201 {
		t.Errorf("status on the full SHA: %d %s", a.status, a.raw)
	}
}

func TestRequiredContexts(t *testing.T) {
	f := newFake(t, Options{})
	f.AddCommitStatus(CommitStatus{SHA: sha(1), State: "failure", Context: "ci/test"})
	path := "/repos/octo-org/shop/deployments"
	if a := call(t, f, "POST", path, map[string]any{"ref": sha(1)}); a.status != 409 {
		t.Fatalf("omitted required_contexts with a failing status: %d %s", a.status, a.raw)
	}
	if a := call(t, f, "POST", path, map[string]any{"ref": sha(1), "required_contexts": []string{"ci/other"}}); a.status != 409 {
		t.Fatalf("missing required context: %d %s", a.status, a.raw)
	}
	if a := call(t, f, "POST", path, map[string]any{"ref": sha(1), "required_contexts": []string{}}); a.status != 201 {
		t.Fatalf("empty required_contexts bypasses checks: %d %s", a.status, a.raw)
	}
}

func TestCommitStatuses(t *testing.T) {
	f := newFake(t, Options{})
	f.AddCommit(sha(1), "one")
	repo := "/repos/octo-org/shop"
	for _, s := range []map[string]any{
		{"state": "pending", "context": "immune"},
		{"state": "success", "context": "ci"},
		{"state": "failure", "context": "immune", "description": "regressed", "target_url": "https://x/1"},
	} {
		if a := call(t, f, "POST", repo+"/statuses/"+sha(1), s); a.status != 201 {
			t.Fatalf("create: %d %s", a.status, a.raw)
		}
	}
	a := call(t, f, "GET", repo+"/commits/"+sha(1)+"/statuses", nil)
	l := a.list(t)
	if len(l) != 3 || l[0].(map[string]any)["state"] != "failure" {
		t.Errorf("statuses newest first: %s", a.raw)
	}
	a = call(t, f, "GET", repo+"/commits/"+sha(1)+"/status", nil)
	m := a.obj(t)
	if m["state"] != "failure" || m["total_count"] != float64(2) || m["sha"] != sha(1) {
		t.Errorf("combined: %s", a.raw)
	}
	got := f.CommitStatuses(sha(1)[:8])
	if len(got) != 3 || got[2].Description != "regressed" || got[0].Context != "immune" {
		t.Errorf("CommitStatuses: %+v", got)
	}
}

func TestPullRequests(t *testing.T) {
	f := newFake(t, Options{})
	var commits []Commit
	for i := 0; i < 260; i++ {
		commits = append(commits, Commit{SHA: sha(100 + i), Message: fmt.Sprintf("commit %d", i)})
	}
	f.AddPullRequest(12, "", []string{"immune:skip", "bug"}, commits)
	repo := "/repos/octo-org/shop"

	a := call(t, f, "GET", repo+"/pulls/12", nil)
	pr := a.obj(t)
	if pr["number"] != float64(12) || pr["head"].(map[string]any)["sha"] != sha(359) || len(pr["labels"].([]any)) != 2 {
		t.Errorf("pull: %s", a.raw[:min(len(a.raw), 400)])
	}
	a = call(t, f, "GET", repo+"/issues/12/labels", nil)
	if l := a.list(t); len(l) != 2 || l[0].(map[string]any)["name"] != "immune:skip" {
		t.Errorf("labels: %s", a.raw)
	}
	total := 0
	for p := 1; p <= 4; p++ {
		a = call(t, f, "GET", fmt.Sprintf("%s/pulls/12/commits?per_page=100&page=%d", repo, p), nil)
		total += len(a.list(t))
	}
	if total != 250 {
		t.Errorf("pull commits listed %d, want GitHub's maximum 250", total)
	}
	a = call(t, f, "GET", repo+"/commits/"+sha(120)+"/pulls", nil)
	if l := a.list(t); len(l) != 1 || l[0].(map[string]any)["number"] != float64(12) {
		t.Errorf("pulls for commit: %d items", len(l))
	}
}

func TestFaults(t *testing.T) {
	f := newFake(t, Options{})
	path := "/repos/octo-org/shop/deployments"
	tests := []struct {
		name       string
		fault      Fault
		wantStatus int
		wantMsg    string
		wantHeader map[string]string
	}{
		{"server error", Fault{Path: path, Status: 502}, 502, "Bad Gateway", nil},
		{"default 500", Fault{Path: path}, 500, "Server Error", nil},
		{"permission", Fault{Method: "GET", Path: path, Status: 403}, 403, "Resource not accessible by integration", nil},
		{"glob", Fault{Path: "/repos/*/shop/deployments", Status: 404}, 404, "Not Found", nil},
		{"primary", Fault{Path: path, RateLimit: PrimaryRateLimit, RetryAfter: 30 * time.Second}, 403,
			"API rate limit exceeded", map[string]string{"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": strconv.FormatInt(t0.Add(30*time.Second).Unix(), 10)}},
		{"primary 429", Fault{Path: path, Status: 429, RateLimit: PrimaryRateLimit}, 429, "API rate limit exceeded", map[string]string{"X-RateLimit-Remaining": "0"}},
		{"secondary", Fault{PathPrefix: "/repos/", RateLimit: SecondaryRateLimit, RetryAfter: 1500 * time.Millisecond}, 403,
			"secondary rate limit", map[string]string{"Retry-After": "2"}},
		{"secondary without retry-after", Fault{Path: path, RateLimit: SecondaryRateLimit}, 403, "secondary rate limit", map[string]string{"Retry-After": ""}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f.ClearFaults()
			tt.fault.Times = 1
			f.Inject(tt.fault)
			a := call(t, f, "GET", path, nil)
			if a.status != tt.wantStatus {
				t.Fatalf("status %d, want %d: %s", a.status, tt.wantStatus, a.raw)
			}
			if msg, _ := a.obj(t)["message"].(string); !strings.Contains(msg, tt.wantMsg) {
				t.Errorf("message %q, want %q", msg, tt.wantMsg)
			}
			for k, v := range tt.wantHeader {
				if got := a.header.Get(k); got != v {
					t.Errorf("%s: %q, want %q", k, got, v)
				}
			}
			if a := call(t, f, "GET", path, nil); a.status != 200 {
				t.Errorf("fault outlived Times: %d", a.status)
			}
		})
	}
}

func TestFaultTimesAndMatching(t *testing.T) {
	f := newFake(t, Options{})
	f.Inject(Fault{Method: "POST", Path: "/repos/octo-org/shop/deployments", Status: 500, Times: 2})
	path := "/repos/octo-org/shop/deployments"
	body := map[string]any{"ref": sha(1), "required_contexts": []string{}}
	f.AddCommit(sha(1), "x")
	if a := call(t, f, "GET", path, nil); a.status != 200 {
		t.Errorf("GET matched a POST fault: %d", a.status)
	}
	got := []int{}
	for i := 0; i < 3; i++ {
		got = append(got, call(t, f, "POST", path, body).status)
	}
	if want := []int{500, 500, 201}; !reflect.DeepEqual(got, want) {
		t.Errorf("statuses %v, want %v", got, want)
	}
	if n := len(f.Deployments()); n != 1 {
		t.Errorf("%d deployments, want 1 (faulted requests must not create)", n)
	}
	calls := f.Calls()
	if len(calls) != 4 || calls[1].Status != 500 || calls[3].Status != 201 || calls[3].Method != "POST" {
		t.Errorf("calls: %+v", calls)
	}
	if b, _ := calls[3].Body.(map[string]any); b["ref"] != sha(1) {
		t.Errorf("recorded body %v", calls[3].Body)
	}
}

func TestDownAndDrop(t *testing.T) {
	f := newFake(t, Options{})
	path := f.URL() + "/repos/octo-org/shop/deployments"
	get := func() error {
		req, _ := http.NewRequest("GET", path, nil)
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := f.Client().Do(req)
		if err == nil {
			resp.Body.Close()
		}
		return err
	}
	f.SetDown(true)
	if err := get(); err == nil {
		t.Error("request succeeded while down")
	}
	f.SetDown(false)
	if err := get(); err != nil {
		t.Errorf("request failed after recovery: %v", err)
	}
	f.Inject(Fault{Drop: true, Times: 1})
	if err := get(); err == nil {
		t.Error("dropped request succeeded")
	}
	calls := f.Calls()
	if calls[0].Status != 0 || calls[1].Status != 200 {
		t.Errorf("calls %+v", calls)
	}
}

func TestDelay(t *testing.T) {
	f := newFake(t, Options{})
	f.Inject(Fault{Delay: 50 * time.Millisecond, Times: 1})
	start := time.Now()
	a := call(t, f, "GET", "/repos/octo-org/shop/deployments", nil)
	if a.status != 200 || time.Since(start) < 50*time.Millisecond {
		t.Errorf("delayed answer: %d after %s", a.status, time.Since(start))
	}
	// A long delay is released when the server closes.
	f.Inject(Fault{Delay: time.Hour, Times: 1})
	done := make(chan struct{})
	go func() {
		defer close(done)
		req, _ := http.NewRequest("GET", f.URL()+"/repos/octo-org/shop/deployments", nil)
		if resp, err := f.Client().Do(req); err == nil {
			resp.Body.Close()
		}
	}()
	time.Sleep(20 * time.Millisecond)
	f.Close()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Close did not release a delayed request")
	}
}

func TestPermissions(t *testing.T) {
	f := newFake(t, Options{Permissions: map[string]string{"deployments": "read", "pull_requests": "read"}})
	f.AddCommit(sha(1), "x")
	f.AddPullRequest(1, sha(1), nil, nil)
	tests := []struct {
		method, path string
		body         any
		want         int
	}{
		{"GET", "/repos/octo-org/shop/deployments", nil, 200},
		{"POST", "/repos/octo-org/shop/deployments", map[string]any{"ref": sha(1)}, 403},
		{"POST", "/repos/octo-org/shop/statuses/" + sha(1), map[string]any{"state": "success"}, 403},
		{"GET", "/repos/octo-org/shop/commits/" + sha(1), nil, 403},
		{"GET", "/repos/octo-org/shop/issues/1/labels", nil, 200},
	}
	for _, tt := range tests {
		a := call(t, f, tt.method, tt.path, tt.body)
		if a.status != tt.want {
			t.Errorf("%s %s: %d, want %d", tt.method, tt.path, a.status, tt.want)
		}
		if tt.want == 403 && a.obj(t)["message"] != "Resource not accessible by integration" {
			t.Errorf("403 message: %s", a.raw)
		}
	}
}

func TestPrimaryRateLimitWindow(t *testing.T) {
	now := t0
	var mu sync.Mutex
	f := newFake(t, Options{RateLimit: 2, Now: func() time.Time { mu.Lock(); defer mu.Unlock(); return now }})
	path := "/repos/octo-org/shop/deployments"
	var remaining []string
	for i := 0; i < 3; i++ {
		a := call(t, f, "GET", path, nil)
		remaining = append(remaining, fmt.Sprint(a.status, "/", a.header.Get("X-RateLimit-Remaining")))
	}
	if want := []string{"200/1", "200/0", "403/0"}; !reflect.DeepEqual(remaining, want) {
		t.Errorf("got %v, want %v", remaining, want)
	}
	mu.Lock()
	now = now.Add(time.Hour)
	mu.Unlock()
	if a := call(t, f, "GET", path, nil); a.status != 200 {
		t.Errorf("after the reset: %d", a.status)
	}
}

func TestPathPrefix(t *testing.T) {
	f := newFake(t, Options{PathPrefix: "/api/v3/"})
	if !strings.HasSuffix(f.URL(), "/api/v3") {
		t.Fatalf("URL %s", f.URL())
	}
	if a := call(t, f, "GET", "/repos/octo-org/shop/deployments", nil); a.status != 200 {
		t.Errorf("under the prefix: %d", a.status)
	}
	req, _ := http.NewRequest("GET", f.ServerURL()+"/repos/octo-org/shop/deployments", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := f.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 404 {
		t.Errorf("outside the prefix: %d, want 404", resp.StatusCode)
	}
	if c := f.Calls(); c[0].Path != "/repos/octo-org/shop/deployments" {
		t.Errorf("recorded path %q", c[0].Path)
	}
}

// example is the documented example of GitHub's answer named template
// (testdata/github).
func example(t *testing.T, template string) map[string]any {
	t.Helper()
	raw, err := os.ReadFile(filepath.Join("..", "..", "..", "testdata", "github", template+".json"))
	if err != nil {
		t.Fatal(err)
	}
	var want map[string]any
	if err := json.Unmarshal(raw, &want); err != nil {
		t.Fatal(err)
	}
	return want
}

// keysBeyond lists the keys of a that b lacks, sorted.
func keysBeyond(a, b map[string]any) []string {
	var out []string
	for k := range a {
		if _, ok := b[k]; !ok {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}

// TestShapesMatchTemplates checks that every answer keeps the documented
// example's fields and decodes into go-github's types.
func TestShapesMatchTemplates(t *testing.T) {
	f := newFake(t, Options{})
	f.AddCommit(sha(1), "one")
	f.AddCommit(sha(2), "two")
	d := f.SeedDeployment("production", sha(2), "success")
	f.AddCommitStatus(CommitStatus{SHA: sha(2), State: "success", Context: "ci"})
	f.AddPullRequest(3, sha(2), []string{"bug"}, []Commit{{SHA: sha(2), Message: "two"}})
	f.AddPull(PullRequest{Number: 4, Commits: []Commit{{SHA: sha(6), Message: "six"}}, Merged: true, MergeCommitSHA: sha(7)})
	is := f.AddIssue(Issue{Title: "Found a bug", Labels: []string{"bug"}})
	f.AddComment(IssueComment{Number: is.Number, Body: "Me too"})
	repo := "/repos/octo-org/shop"
	tests := []struct {
		template string
		path     string
		list     bool
		into     any
	}{
		{"deployment", repo + "/deployments", true, &[]*github.Deployment{}},
		{"deployment", fmt.Sprintf("%s/deployments/%d", repo, d.ID), false, &github.Deployment{}},
		{"deployment_status", fmt.Sprintf("%s/deployments/%d/statuses", repo, d.ID), true, &[]*github.DeploymentStatus{}},
		{"status", repo + "/commits/" + sha(2) + "/statuses", true, &[]*github.RepoStatus{}},
		{"combined_status", repo + "/commits/" + sha(2) + "/status", false, &github.CombinedStatus{}},
		{"commit", repo + "/commits/" + sha(2), false, &github.RepositoryCommit{}},
		{"pull_request", repo + "/pulls/3", false, &github.PullRequest{}},
		{"pull_request_simple", repo + "/commits/" + sha(7) + "/pulls", true, &[]*github.PullRequest{}},
		{"label", repo + "/issues/3/labels", true, &[]*github.Label{}},
		{"label", repo + "/labels/bug", false, &github.Label{}},
		{"issue", repo + "/issues/3", false, &github.Issue{}},
		{"issue", repo + "/issues?state=all&direction=asc", true, &[]*github.Issue{}},
		{"issue_comment", fmt.Sprintf("%s/issues/%d/comments", repo, is.Number), true, &[]*github.IssueComment{}},
		{"comparison", repo + "/compare/" + sha(1) + "..." + sha(2), false, &github.CommitsComparison{}},
		{"environment", repo + "/environments/Production", false, &github.Environment{}},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			want := example(t, tt.template)
			a := call(t, f, "GET", tt.path, nil)
			if a.status != 200 {
				t.Fatalf("%d %s", a.status, a.raw)
			}
			got := a.body
			if tt.list {
				l := a.list(t)
				if len(l) == 0 {
					t.Fatal("empty list")
				}
				got = l[0]
			}
			g := got.(map[string]any)
			if missing := keysBeyond(want, g); len(missing) > 0 {
				t.Errorf("fields of the documented example missing: %v", missing)
			}
			if strings.HasSuffix(tt.template, "_simple") {
				// A simple shape has no more than its example: code must
				// not come to rely on a field GitHub does not send there.
				if extra := keysBeyond(g, want); len(extra) > 0 {
					t.Errorf("fields beyond the simple shape: %v", extra)
				}
			}
			if err := json.Unmarshal(a.raw, tt.into); err != nil {
				t.Errorf("does not decode into %T: %v", tt.into, err)
			}
			if bytes.Contains(a.raw, []byte("api.github.com")) {
				t.Errorf("answer still links to api.github.com")
			}
		})
	}
}

func TestEnvironmentsIgnoreLetterCase(t *testing.T) {
	f := newFake(t, Options{})
	f.SeedDeployment("Production", sha(1), "success")
	if e := f.AddEnvironment("production"); e.Name != "Production" {
		t.Errorf("AddEnvironment made %q beside Production", e.Name)
	}
	repo := "/repos/octo-org/shop"
	for _, name := range []string{"production", "PRODUCTION", "Production"} {
		a := call(t, f, "GET", repo+"/environments/"+name, nil)
		if a.status != 200 || a.obj(t)["name"] != "Production" {
			t.Errorf("GET %s: %d %s", name, a.status, a.raw)
		}
	}
	if a := call(t, f, "GET", repo+"/environments/staging", nil); a.status != 404 {
		t.Errorf("an environment nobody made: %d", a.status)
	}
	if n := len(f.Environments()); n != 1 {
		t.Errorf("%d environments, want 1", n)
	}
	// The stricter reading of the listing's filter (see listDeployments).
	if l := call(t, f, "GET", repo+"/deployments?environment=production", nil).list(t); len(l) != 0 {
		t.Errorf("the filter production listed %d deployments of Production", len(l))
	}
	g := newFake(t, Options{Permissions: map[string]string{"deployments": "write"}})
	g.AddEnvironment("production")
	if a := call(t, g, "GET", repo+"/environments/production", nil); a.status != 403 {
		t.Errorf("without actions: read: %d", a.status)
	}
}

func TestConcurrentUse(t *testing.T) {
	f := newFake(t, Options{})
	f.AddCommit(sha(1), "x")
	var wg sync.WaitGroup
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			a := call(t, f, "POST", "/repos/octo-org/shop/deployments", map[string]any{"ref": sha(1), "required_contexts": []string{}})
			if a.status != 201 {
				t.Errorf("create: %d", a.status)
			}
			_ = f.Deployments()
			_ = f.Calls()
		}()
	}
	wg.Wait()
	ds := f.Deployments()
	if len(ds) != 20 {
		t.Fatalf("%d deployments", len(ds))
	}
	for i := 1; i < len(ds); i++ {
		if ds[i].ID != ds[i-1].ID+1 {
			t.Fatalf("ids not consecutive: %d after %d", ds[i].ID, ds[i-1].ID)
		}
	}
}
