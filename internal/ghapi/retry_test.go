package ghapi

import (
	"context"
	"errors"
	"net/http"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/immune-cd/immune/internal/testkit/githubfake"
)

const deploymentsPath = "/repos/octo-org/shop/deployments"

func TestRetries(t *testing.T) {
	s := time.Second
	tests := []struct {
		name       string
		faults     []githubfake.Fault
		tweak      func(*Options)
		wantSleeps []time.Duration
		wantCalls  int // requests that reached the fake
		wantErr    func(error) bool
	}{
		{
			name:       "500 twice then success",
			faults:     []githubfake.Fault{{Path: deploymentsPath, Status: 500, Times: 2}},
			wantSleeps: []time.Duration{1 * s, 2 * s},
			wantCalls:  3,
		},
		{
			name:       "502 and 503 with Retry-After longer than the backoff",
			faults:     []githubfake.Fault{{Path: deploymentsPath, Status: 503, Times: 1, Header: http.Header{"Retry-After": {"7"}}}},
			wantSleeps: []time.Duration{7 * s},
			wantCalls:  2,
		},
		{
			name:       "connection dropped once",
			faults:     []githubfake.Fault{{Path: deploymentsPath, Drop: true, Times: 1}},
			wantSleeps: []time.Duration{1 * s},
			wantCalls:  2,
		},
		{
			name:       "primary rate limit waits for X-RateLimit-Reset",
			faults:     []githubfake.Fault{{Path: deploymentsPath, RateLimit: githubfake.PrimaryRateLimit, RetryAfter: 30 * s, Times: 1}},
			wantSleeps: []time.Duration{31 * s}, // reset plus a second of slack
			wantCalls:  2,
		},
		{
			name:       "primary rate limit as 429",
			faults:     []githubfake.Fault{{Path: deploymentsPath, Status: 429, RateLimit: githubfake.PrimaryRateLimit, RetryAfter: 10 * s, Times: 1}},
			wantSleeps: []time.Duration{11 * s},
			wantCalls:  2,
		},
		{
			name:       "secondary rate limit waits for Retry-After",
			faults:     []githubfake.Fault{{Path: deploymentsPath, RateLimit: githubfake.SecondaryRateLimit, RetryAfter: 5 * s, Times: 1}},
			wantSleeps: []time.Duration{5 * s},
			wantCalls:  2,
		},
		{
			name:       "secondary rate limit without Retry-After waits a minute",
			faults:     []githubfake.Fault{{Path: deploymentsPath, RateLimit: githubfake.SecondaryRateLimit, Times: 1}},
			wantSleeps: []time.Duration{60 * s},
			wantCalls:  2,
		},
		{
			name:       "bare 429 is a secondary limit",
			faults:     []githubfake.Fault{{Path: deploymentsPath, Status: 429, Message: "Too Many Requests", Times: 1}},
			wantSleeps: []time.Duration{60 * s},
			wantCalls:  2,
		},
		{
			name:      "primary reset beyond the cap fails fast",
			faults:    []githubfake.Fault{{Path: deploymentsPath, RateLimit: githubfake.PrimaryRateLimit, RetryAfter: 45 * time.Minute}},
			wantCalls: 1,
			wantErr: func(err error) bool {
				var rl *RateLimitError
				return errors.As(err, &rl) && !rl.Secondary && rl.Wait > 44*time.Minute && rl.MaxWait == time.Minute &&
					strings.Contains(err.Error(), "longer than the 1m0s immune waits") &&
					strings.Contains(err.Error(), "API rate limit exceeded for installation")
			},
		},
		{
			name:      "secondary Retry-After beyond the cap fails fast",
			faults:    []githubfake.Fault{{Path: deploymentsPath, RateLimit: githubfake.SecondaryRateLimit, RetryAfter: 2 * time.Minute}},
			wantCalls: 1,
			wantErr: func(err error) bool {
				var rl *RateLimitError
				return errors.As(err, &rl) && rl.Secondary && rl.Wait == 2*time.Minute
			},
		},
		{
			name:       "waits add up to the cap",
			faults:     []githubfake.Fault{{Path: deploymentsPath, RateLimit: githubfake.SecondaryRateLimit, RetryAfter: 25 * s}},
			wantSleeps: []time.Duration{25 * s, 25 * s},
			wantCalls:  3,
			wantErr: func(err error) bool {
				var rl *RateLimitError
				return errors.As(err, &rl) && rl.Attempts == 3
			},
		},
		{
			name:       "server errors until retries run out",
			faults:     []githubfake.Fault{{Path: deploymentsPath, Status: 502}},
			wantSleeps: []time.Duration{1 * s, 2 * s, 4 * s, 8 * s},
			wantCalls:  5,
			wantErr: func(err error) bool {
				var ue *UnavailableError
				return errors.As(err, &ue) && ue.Attempts == 5 && ue.Status == 502 &&
					strings.Contains(err.Error(), "GitHub API unavailable after 5 attempts: 502 Bad Gateway")
			},
		},
		{
			name:       "rate limited through every retry",
			faults:     []githubfake.Fault{{Path: deploymentsPath, RateLimit: githubfake.SecondaryRateLimit, RetryAfter: 2 * s}},
			wantSleeps: []time.Duration{2 * s, 2 * s, 2 * s, 2 * s},
			wantCalls:  5,
			wantErr: func(err error) bool {
				var rl *RateLimitError
				return errors.As(err, &rl) && strings.Contains(err.Error(), "still exceeded after 5 attempts")
			},
		},
		{
			name:      "retries disabled",
			faults:    []githubfake.Fault{{Path: deploymentsPath, Status: 500}},
			tweak:     func(o *Options) { o.MaxRetries = -1 },
			wantCalls: 1,
			wantErr: func(err error) bool {
				var ue *UnavailableError
				return errors.As(err, &ue) && ue.Attempts == 1
			},
		},
		{
			name:       "smaller cap",
			faults:     []githubfake.Fault{{Path: deploymentsPath, Status: 500}},
			tweak:      func(o *Options) { o.MaxWait = 5 * time.Second },
			wantSleeps: []time.Duration{1 * s, 2 * s},
			wantCalls:  3,
			wantErr:    func(err error) bool { var ue *UnavailableError; return errors.As(err, &ue) },
		},
		{
			name:      "a plain 403 is not retried",
			faults:    []githubfake.Fault{{Path: deploymentsPath, Status: 403}},
			wantCalls: 1,
			wantErr:   func(err error) bool { var pe *PermissionError; return errors.As(err, &pe) },
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := setup(t, githubfake.Options{}, tt.tweak)
			e.fake.SeedDeployment("production", commitID(1), "success")
			for _, f := range tt.faults {
				e.fake.Inject(f)
			}
			_, err := e.client.Deployments(ctx(t), "production", 0)
			if tt.wantErr == nil && err != nil {
				t.Fatalf("unexpected error: %v", err)
			}
			if tt.wantErr != nil && (err == nil || !tt.wantErr(err)) {
				t.Fatalf("error %v (%T) is not the one expected", err, err)
			}
			if got := e.clock.Sleeps(); !reflect.DeepEqual(got, tt.wantSleeps) {
				t.Errorf("sleeps %v, want %v", got, tt.wantSleeps)
			}
			if got := e.count("GET", "/deployments"); got != tt.wantCalls {
				t.Errorf("%d list requests, want %d", got, tt.wantCalls)
			}
			if err != nil && !strings.HasPrefix(err.Error(), `list deployments of environment "production": `) {
				t.Errorf("error lacks context: %v", err)
			}
		})
	}
}

// A retried POST sends the same body again and creates one deployment.
func TestRetriedPostReplaysBody(t *testing.T) {
	e := setup(t, githubfake.Options{}, nil)
	e.fake.AddCommit(commitID(1), "x")
	e.fake.Inject(githubfake.Fault{Method: "POST", Path: deploymentsPath, Status: 502, Times: 1})
	e.fake.Inject(githubfake.Fault{Method: "POST", Path: deploymentsPath, RateLimit: githubfake.SecondaryRateLimit, RetryAfter: 3 * time.Second, Times: 1})
	d, err := e.client.CreateDeployment(ctx(t), DeploymentRequest{SHA: commitID(1), Payload: map[string]any{"k": "v"}})
	if err != nil {
		t.Fatal(err)
	}
	calls := e.fake.Calls()
	if len(calls) != 3 {
		t.Fatalf("%d calls", len(calls))
	}
	for i, c := range calls {
		if !reflect.DeepEqual(c.Body, calls[0].Body) || c.Body == nil {
			t.Errorf("attempt %d sent %v, want %v", i+1, c.Body, calls[0].Body)
		}
	}
	if ds := e.fake.Deployments(); len(ds) != 1 || ds[0].ID != d.ID {
		t.Errorf("deployments %+v", ds)
	}
	if got, want := e.clock.Sleeps(), []time.Duration{time.Second, 3 * time.Second}; !reflect.DeepEqual(got, want) {
		t.Errorf("sleeps %v, want %v", got, want)
	}
}

// The quota used up by a successful answer (X-RateLimit-Remaining: 0) makes
// the next request wait for the reset rather than be refused. The clock
// starts at the real time, so go-github would refuse on its own if it ever
// kept that answer's rate limit: the test shows it does not.
func TestExhaustedQuotaWaitsForReset(t *testing.T) {
	clk := newClock()
	clk.now = time.Now().UTC().Truncate(time.Second)
	f := githubfake.Start(t, githubfake.Options{Token: testToken, Now: clk.Now, RateLimit: 2})
	for i := 0; i < 3; i++ {
		f.SeedDeployment("production", commitID(i), "failure")
	}
	c, err := New(Options{HTTPClient: f.Client(), APIURL: f.URL(), Token: testToken, Repository: f.Repository(),
		Sleep: clk.Sleep, Now: clk.Now, MaxWait: 2 * time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	// One list and three status requests; the quota of 2 runs out after
	// the second, whose answer says Remaining: 0.
	list, err := c.Deployments(ctx(t), "production", 0)
	if err != nil || len(list) != 3 {
		t.Fatalf("%d deployments, %v", len(list), err)
	}
	sleeps := clk.Sleeps()
	if len(sleeps) != 1 || sleeps[0] < 59*time.Minute || sleeps[0] > time.Hour+time.Second {
		t.Errorf("sleeps %v, want one wait for the hourly reset", sleeps)
	}
	for _, call := range f.Calls() {
		if call.Status != http.StatusOK {
			t.Errorf("%s %s answered %d: a request went out before the reset", call.Method, call.Path, call.Status)
		}
	}

	// With the default cap the same situation fails at once, without
	// asking GitHub: in the next window, a list and a status request use up
	// the quota of 2, and the next call is refused locally.
	clk.mu.Lock()
	clk.now = clk.now.Add(time.Hour)
	clk.mu.Unlock()
	c2, _ := New(Options{HTTPClient: f.Client(), APIURL: f.URL(), Token: testToken, Repository: f.Repository(),
		Sleep: clk.Sleep, Now: clk.Now})
	if _, err := c2.Deployments(ctx(t), "production", 1); err != nil {
		t.Fatal(err)
	}
	before := len(f.Calls())
	_, err = c2.Deployments(ctx(t), "production", 1)
	var rl *RateLimitError
	if !errors.As(err, &rl) {
		t.Fatalf("got %v, want a RateLimitError", err)
	}
	if after := len(f.Calls()); after != before {
		t.Errorf("%d requests sent while the quota was known to be exhausted", after-before)
	}
}

func TestAttemptTimeout(t *testing.T) {
	e := setup(t, githubfake.Options{}, func(o *Options) { o.AttemptTimeout = 50 * time.Millisecond })
	e.fake.Inject(githubfake.Fault{Path: deploymentsPath, Delay: 5 * time.Second, Times: 1})
	start := time.Now()
	if _, err := e.client.Deployments(ctx(t), "production", 0); err != nil {
		t.Fatal(err)
	}
	if time.Since(start) > 3*time.Second {
		t.Errorf("took %s: the slow attempt was not abandoned", time.Since(start))
	}
	if got := e.clock.Sleeps(); !reflect.DeepEqual(got, []time.Duration{time.Second}) {
		t.Errorf("sleeps %v", got)
	}
}

func TestGitHubDown(t *testing.T) {
	e := setup(t, githubfake.Options{}, nil)
	e.fake.SetDown(true)
	err := e.client.SetCommitStatus(ctx(t), CommitStatus{SHA: commitID(1), State: "pending", Context: "immune"})
	var ue *UnavailableError
	if !errors.As(err, &ue) || ue.Attempts != 5 || ue.Status != 0 {
		t.Fatalf("got %v", err)
	}
	if !strings.HasPrefix(err.Error(), `set commit status "immune" of `) {
		t.Errorf("error lacks context: %v", err)
	}
}

func TestCancelDuringBackoff(t *testing.T) {
	e := setup(t, githubfake.Options{}, func(o *Options) { o.Sleep = sleep })
	e.fake.Inject(githubfake.Fault{Path: deploymentsPath, Status: 500})
	c, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := e.client.Deployments(c, "production", 0)
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("got %v, want the context's error", err)
	}
	if time.Since(start) > 900*time.Millisecond {
		t.Errorf("took %s: the backoff ignored the context", time.Since(start))
	}
}

func TestBackoff(t *testing.T) {
	var got []time.Duration
	for a := 1; a <= 8; a++ {
		got = append(got, backoff(a))
	}
	want := []time.Duration{1, 2, 4, 8, 16, 30, 30, 30}
	for i := range want {
		want[i] *= time.Second
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("backoff %v, want %v", got, want)
	}
}
