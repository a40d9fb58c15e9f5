package ghapi

import (
	"errors"
	"fmt"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/google/go-github/v60/github"
	"github.com/immune-cd/immune/internal/testkit/githubfake"
)

func TestNewValidates(t *testing.T) {
	tests := []struct {
		name    string
		opts    Options
		wantErr string
	}{
		{"ok", Options{Token: "t", Repository: "o/r"}, ""},
		{"no token", Options{Repository: "o/r"}, "no GitHub token"},
		{"blank token", Options{Token: "  ", Repository: "o/r"}, "no GitHub token"},
		{"no repository", Options{Token: "t"}, `invalid repository ""`},
		{"bad repository", Options{Token: "t", Repository: "o/r/x"}, "want owner/name"},
		{"half repository", Options{Token: "t", Repository: "o/"}, "want owner/name"},
		{"bad scheme", Options{Token: "t", Repository: "o/r", APIURL: "ftp://x"}, "invalid GitHub API URL"},
		{"credentials in URL", Options{Token: "t", Repository: "o/r", APIURL: "https://u:p@ghe.example.com/api/v3"}, "must not contain credentials"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := New(tt.opts)
			if tt.wantErr == "" && err != nil || tt.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tt.wantErr)) {
				t.Errorf("got %v, want %q", err, tt.wantErr)
			}
		})
	}
}

func TestAPIURLs(t *testing.T) {
	tests := []struct {
		in, base, upload string
	}{
		{"", "https://api.github.com/", "https://uploads.github.com/"},
		{"https://api.github.com", "https://api.github.com/", "https://uploads.github.com/"},
		{"https://api.github.com/", "https://api.github.com/", "https://uploads.github.com/"},
		{"https://ghe.example.com/api/v3", "https://ghe.example.com/api/v3/", "https://ghe.example.com/api/uploads/"},
		{"https://ghe.example.com/api/v3//", "https://ghe.example.com/api/v3/", "https://ghe.example.com/api/uploads/"},
		{"https://api.octo.ghe.com", "https://api.octo.ghe.com/", "https://api.octo.ghe.com/api/uploads/"},
		{"http://127.0.0.1:8080", "http://127.0.0.1:8080/", "http://127.0.0.1:8080/api/uploads/"},
		{"http://127.0.0.1:8080/prefix/", "http://127.0.0.1:8080/prefix/", "http://127.0.0.1:8080/api/uploads/"},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			b, u, err := apiURLs(tt.in)
			if err != nil {
				t.Fatal(err)
			}
			if b.String() != tt.base || u.String() != tt.upload {
				t.Errorf("got %s %s, want %s %s", b, u, tt.base, tt.upload)
			}
		})
	}
}

// GitHub Enterprise Server serves the API under /api/v3.
func TestEnterpriseServer(t *testing.T) {
	for _, suffix := range []string{"", "/"} {
		t.Run("trailing slash "+fmt.Sprint(suffix != ""), func(t *testing.T) {
			e := setup(t, githubfake.Options{PathPrefix: "/api/v3"}, func(o *Options) { o.APIURL += suffix })
			if !strings.HasSuffix(e.fake.URL(), "/api/v3") {
				t.Fatalf("fake URL %s", e.fake.URL())
			}
			e.fake.AddCommit(commitID(1), "x")
			d, err := e.client.CreateDeployment(ctx(t), DeploymentRequest{SHA: commitID(1)})
			if err != nil {
				t.Fatal(err)
			}
			if got, err := e.client.ResolveCommit(ctx(t), commitID(1)[:7]); err != nil || got != commitID(1) {
				t.Fatalf("resolve: %s %v", got, err)
			}
			if !strings.Contains(d.URL, "/api/v3/repos/octo-org/shop/deployments/") {
				t.Errorf("deployment URL %s", d.URL)
			}
			for _, c := range e.fake.Calls() {
				if c.Status >= 400 {
					t.Errorf("%s %s answered %d", c.Method, c.Path, c.Status)
				}
			}
		})
	}
}

func TestPermissionErrors(t *testing.T) {
	tests := []struct {
		name     string
		perms    map[string]string
		fault    *githubfake.Fault
		call     func(e *env) error
		wantPerm string
		wantCode int
	}{
		{
			name:  "create deployment, 403 injected",
			fault: &githubfake.Fault{Method: "POST", Path: deploymentsPath, Status: 403},
			call: func(e *env) error {
				_, err := e.client.CreateDeployment(ctx0(), DeploymentRequest{SHA: commitID(1)})
				return err
			},
			wantPerm: "deployments: write", wantCode: 403,
		},
		{
			name:  "deployment status with read-only deployments",
			perms: map[string]string{"deployments": "read"},
			call: func(e *env) error {
				return e.client.SetDeploymentStatus(ctx0(), e.deployment, DeploymentStatus{State: "success"})
			},
			wantPerm: "deployments: write", wantCode: 403,
		},
		{
			name:     "list deployments without access",
			perms:    map[string]string{},
			call:     func(e *env) error { _, err := e.client.Deployments(ctx0(), "production", 0); return err },
			wantPerm: "deployments: read", wantCode: 403,
		},
		{
			name:  "commit status",
			perms: map[string]string{"deployments": "write"},
			call: func(e *env) error {
				return e.client.SetCommitStatus(ctx0(), CommitStatus{SHA: commitID(1), State: "success"})
			},
			wantPerm: "statuses: write", wantCode: 403,
		},
		{
			name:     "resolve commit",
			perms:    map[string]string{"deployments": "write"},
			call:     func(e *env) error { _, err := e.client.ResolveCommit(ctx0(), commitID(1)); return err },
			wantPerm: "contents: read", wantCode: 403,
		},
		{
			name:     "pull request labels",
			perms:    map[string]string{"contents": "read"},
			call:     func(e *env) error { _, err := e.client.PullRequestLabels(ctx0(), 1); return err },
			wantPerm: "pull-requests: read", wantCode: 403,
		},
		{
			name:     "pull request commits",
			perms:    map[string]string{"contents": "read"},
			call:     func(e *env) error { _, err := e.client.PullRequestCommits(ctx0(), 1); return err },
			wantPerm: "pull-requests: read", wantCode: 403,
		},
		{
			name:  "repository hidden from the token: 404",
			fault: &githubfake.Fault{Method: "POST", Path: deploymentsPath, Status: 404},
			call: func(e *env) error {
				_, err := e.client.CreateDeployment(ctx0(), DeploymentRequest{SHA: commitID(1)})
				return err
			},
			wantPerm: "deployments: write", wantCode: 404,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := setup(t, githubfake.Options{Permissions: tt.perms}, nil)
			e.fake.AddPullRequest(1, commitID(1), []string{"x"}, nil)
			e.deployment = e.fake.SeedDeployment("production", commitID(1)).ID
			if tt.fault != nil {
				e.fake.Inject(*tt.fault)
			}
			err := tt.call(e)
			var pe *PermissionError
			if !errors.As(err, &pe) {
				t.Fatalf("got %v (%T), want a PermissionError", err, err)
			}
			if pe.Permission != tt.wantPerm || pe.Status != tt.wantCode || pe.Repository != "octo-org/shop" {
				t.Errorf("got %+v", pe)
			}
			msg := err.Error()
			if !strings.Contains(msg, `"`+tt.wantPerm+`"`) || !strings.Contains(msg, "permissions: block") {
				t.Errorf("message does not say what to add: %s", msg)
			}
			if tt.wantCode == 403 && !strings.Contains(msg, "Resource not accessible by integration") {
				t.Errorf("message lacks GitHub's reason: %s", msg)
			}
			if got := len(e.clock.Sleeps()); got != 0 {
				t.Errorf("permission errors were retried (%d sleeps)", got)
			}
		})
	}
}

func TestResolveCommit(t *testing.T) {
	e := setup(t, githubfake.Options{}, nil)
	e.fake.AddCommit(commitID(1), "one")
	e.fake.AddCommit(commitID(2), "two")
	e.fake.AddBranch("main", commitID(2))
	tests := []struct {
		ref      string
		want     string
		noCommit bool
	}{
		{commitID(1), commitID(1), false},
		{strings.ToUpper(commitID(1)), commitID(1), false},
		{commitID(1)[:7], commitID(1), false},
		{commitID(2)[:12], commitID(2), false},
		{"main", commitID(2), false},
		{"deadbeefdeadbeef", "", true},
		{commitID(3), "", true},
		{"no-such-branch", "", true},
	}
	for _, tt := range tests {
		t.Run(tt.ref, func(t *testing.T) {
			got, err := e.client.ResolveCommit(ctx(t), tt.ref)
			if tt.noCommit {
				if !errors.Is(err, ErrNoSuchCommit) {
					t.Fatalf("got %q, %v; want ErrNoSuchCommit", got, err)
				}
				var pe *PermissionError
				if errors.As(err, &pe) {
					t.Errorf("an unknown commit is not a permission error: %v", err)
				}
				if !strings.Contains(err.Error(), "No commit found for SHA") {
					t.Errorf("message %v", err)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Errorf("got %q, %v; want %s", got, err, tt.want)
			}
		})
	}
	if _, err := e.client.ResolveCommit(ctx(t), " "); err == nil {
		t.Error("empty ref accepted")
	}
	e.fake.Inject(githubfake.Fault{PathPrefix: "/repos/octo-org/shop/commits/", Status: 404, Times: 1})
	if _, err := e.client.ResolveCommit(ctx(t), commitID(1)); !errors.Is(err, ErrNoSuchCommit) || !strings.Contains(err.Error(), "contents: read") {
		t.Errorf("404: %v", err)
	}
}

func TestPullRequests(t *testing.T) {
	e := setup(t, githubfake.Options{}, nil)
	var commits []githubfake.Commit
	for i := 0; i < 260; i++ {
		commits = append(commits, githubfake.Commit{SHA: commitID(100 + i), Message: fmt.Sprintf("change %d\n\nbody", i)})
	}
	labels := []string{"immune:canary"}
	for i := 0; i < 120; i++ {
		labels = append(labels, fmt.Sprintf("l%03d", i))
	}
	e.fake.AddPullRequest(42, "", labels, commits)
	e.fake.AddPullRequest(43, commitID(7), nil, []githubfake.Commit{{SHA: commitID(7), Message: "small"}})

	got, err := e.client.PullRequestLabels(ctx(t), 42)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, labels) {
		t.Errorf("labels: %d, first %v", len(got), got[:2])
	}
	if n := e.count("GET", "/issues/42/labels"); n != 2 {
		t.Errorf("%d label pages", n)
	}

	cs, err := e.client.PullRequestCommits(ctx(t), 42)
	if err != nil {
		t.Fatal(err)
	}
	if len(cs) != 250 || cs[0] != (Commit{SHA: commitID(100), Message: "change 0\n\nbody"}) || cs[249].SHA != commitID(349) {
		t.Errorf("commits: %d, first %+v", len(cs), cs[0])
	}
	if n := e.count("GET", "/pulls/42/commits"); n != 3 {
		t.Errorf("%d commit pages, want 3", n)
	}

	prs, err := e.client.PullRequestsForCommit(ctx(t), commitID(7))
	if err != nil {
		t.Fatal(err)
	}
	if len(prs) != 1 || prs[0].Number != 43 || prs[0].HeadSHA != commitID(7) || prs[0].BaseRef != "main" || prs[0].State != "open" {
		t.Errorf("pulls for commit: %+v", prs)
	}

	none, err := e.client.PullRequestLabels(ctx(t), 43)
	if err != nil || len(none) != 0 {
		t.Errorf("no labels: %v %v", none, err)
	}

	_, err = e.client.PullRequestLabels(ctx(t), 99)
	var ae *APIError
	var pe *PermissionError
	if !errors.As(err, &ae) || ae.Status != 404 || errors.As(err, &pe) || !strings.Contains(err.Error(), "pull request #99 does not exist") {
		t.Errorf("unknown pull request: %v", err)
	}
}

// The token never shows in an error or log line, whatever fails.
func TestTokenNeverInErrors(t *testing.T) {
	e := setup(t, githubfake.Options{}, nil)
	e.fake.AddCommit(commitID(1), "x")
	var errs []error
	collect := func(err error) {
		if err == nil {
			t.Error("expected an error")
			return
		}
		errs = append(errs, err)
	}
	// Wrong token: 401.
	bad, err := New(Options{HTTPClient: e.fake.Client(), APIURL: e.fake.URL(), Token: testToken + "x",
		Repository: e.fake.Repository(), Sleep: e.clock.Sleep, Now: e.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	_, err = bad.Deployments(ctx(t), "production", 0)
	collect(err)
	var ae *APIError
	if !errors.As(err, &ae) || ae.Status != 401 || !strings.Contains(err.Error(), "Bad credentials") {
		t.Errorf("401: %v", err)
	}

	e.fake.Inject(githubfake.Fault{Path: deploymentsPath, Status: 500})
	_, err = e.client.Deployments(ctx(t), "production", 0)
	collect(err)
	e.fake.ClearFaults()
	e.fake.Inject(githubfake.Fault{Path: deploymentsPath, RateLimit: githubfake.PrimaryRateLimit, RetryAfter: 3600e9})
	_, err = e.client.CreateDeployment(ctx(t), DeploymentRequest{SHA: commitID(1)})
	collect(err)
	e.fake.ClearFaults()
	e.fake.SetDown(true)
	collect(e.client.SetDeploymentStatus(ctx(t), 1, DeploymentStatus{State: "failure"}))
	e.fake.SetDown(false)
	_, err = e.client.ResolveCommit(ctx(t), "nope-"+testToken)
	collect(err)

	for _, err := range errs {
		if strings.Contains(err.Error(), testToken) || strings.Contains(fmt.Sprintf("%+v", err), testToken) {
			t.Errorf("token in error: %v", err)
		}
	}
	if strings.Contains(e.logs.String(), testToken) {
		t.Errorf("token in logs: %s", e.logs.String())
	}
	if e.logs.String() == "" {
		t.Error("retries were not logged")
	}
}

// A proxy in front of GitHub that echoes the token lowercased, or cut
// short, does not get it into an error.
func TestTokenEchoedByAProxy(t *testing.T) {
	e := setup(t, githubfake.Options{}, nil)
	lower := strings.ToLower(testToken)
	for _, echo := range []string{lower, strings.ToUpper(testToken), testToken[:12] + "…", "…" + testToken[len(testToken)-10:]} {
		e.fake.ClearFaults()
		e.fake.Inject(githubfake.Fault{Path: deploymentsPath, Status: 401, Message: "proxy: token " + echo + " refused"})
		_, err := e.client.Deployments(ctx(t), "production", 0)
		if err == nil {
			t.Fatal("no error")
		}
		got := strings.ToLower(err.Error())
		for _, part := range []string{lower, lower[:8], lower[len(lower)-8:]} {
			if strings.Contains(got, part) {
				t.Errorf("echo %q: the error shows %q: %v", echo, part, err)
			}
		}
		if !strings.Contains(err.Error(), "proxy: token ") || !strings.Contains(err.Error(), "REDACTED") {
			t.Errorf("echo %q: %v", echo, err)
		}
	}
}

func TestHelpers(t *testing.T) {
	tests := []struct{ in, want string }{
		{"short", "short"},
		{strings.Repeat("a", 140), strings.Repeat("a", 140)},
		{strings.Repeat("a", 141), strings.Repeat("a", 139) + "…"},
		{strings.Repeat("é", 150), strings.Repeat("é", 139) + "…"},
	}
	for _, tt := range tests {
		if got := TruncateDescription(tt.in); got != tt.want {
			t.Errorf("TruncateDescription(%d chars) = %q", len(tt.in), got)
		}
	}
}

// go-github's own rate limit errors, should one ever get through, become
// this package's RateLimitError.
func TestClassifyGoGitHubRateLimits(t *testing.T) {
	clk := newClock()
	c, err := New(Options{Token: "t", Repository: "o/r", Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	resp := &http.Response{StatusCode: 403}
	wait := 90 * time.Second
	tests := []struct {
		err           error
		wantSecondary bool
		wantWait      time.Duration
	}{
		{&github.RateLimitError{Response: resp, Message: "API rate limit exceeded",
			Rate: github.Rate{Reset: github.Timestamp{Time: clk.Now().Add(time.Hour)}}}, false, time.Hour},
		{&github.AbuseRateLimitError{Response: resp, Message: "secondary", RetryAfter: &wait}, true, wait},
	}
	for _, tt := range tests {
		got := c.classify(access{op: "x", permission: "deployments: read"}, tt.err)
		var rl *RateLimitError
		if !errors.As(got, &rl) || rl.Secondary != tt.wantSecondary || rl.Wait != tt.wantWait || rl.Status != 403 {
			t.Errorf("classify(%T) = %#v", tt.err, got)
		}
		if !strings.Contains(got.Error(), "still exceeded after 1 attempt (GitHub: ") {
			t.Errorf("message: %v", got)
		}
	}
}
