package ghapi

import (
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/immune-cd/immune/internal/testkit/githubfake"
)

func TestDeploymentRoundTrip(t *testing.T) {
	e := setup(t, githubfake.Options{}, nil)
	e.fake.AddCommit(commitID(1), "ship it")
	c := e.client

	d, err := c.CreateDeployment(ctx(t), DeploymentRequest{
		SHA:         commitID(1),
		Environment: "staging",
		Task:        "deploy:immune",
		Description: "immune run 7",
		Payload:     map[string]any{"immune": map[string]any{"run_id": 7, "previous_sha": commitID(0)}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if d.ID == 0 || d.SHA != commitID(1) || d.Ref != commitID(1) || d.Environment != "staging" || d.Task != "deploy:immune" ||
		d.Creator != "github-actions[bot]" || d.CreatedAt.IsZero() || !strings.HasSuffix(d.URL, fmt.Sprintf("/deployments/%d", d.ID)) {
		t.Errorf("deployment %+v", d)
	}
	if got := d.Payload["immune"].(map[string]any)["previous_sha"]; got != commitID(0) {
		t.Errorf("payload %v", d.Payload)
	}

	// The exact request body: no auto-merge, no status checks, the payload.
	calls := e.fake.Calls()
	if len(calls) != 1 {
		t.Fatalf("%d calls", len(calls))
	}
	want := map[string]any{
		"ref":               commitID(1),
		"task":              "deploy:immune",
		"auto_merge":        false,
		"required_contexts": []any{},
		"environment":       "staging",
		"description":       "immune run 7",
		"payload":           map[string]any{"immune": map[string]any{"run_id": float64(7), "previous_sha": commitID(0)}},
	}
	if !reflect.DeepEqual(calls[0].Body, want) {
		t.Errorf("request body\n got %#v\nwant %#v", calls[0].Body, want)
	}

	long := strings.Repeat("health check /ready answered 503 ", 10)
	if err := c.SetDeploymentStatus(ctx(t), d.ID, DeploymentStatus{
		State: "in_progress", Description: long, LogURL: "https://github.com/octo-org/shop/actions/runs/7",
		EnvironmentURL: "https://staging.shop.example",
	}); err != nil {
		t.Fatal(err)
	}
	ss := e.fake.DeploymentStatuses(d.ID)
	if len(ss) != 1 {
		t.Fatalf("%d statuses", len(ss))
	}
	if n := utf8.RuneCountInString(ss[0].Description); n > MaxDescriptionLength || n < 130 || !strings.HasSuffix(ss[0].Description, "…") {
		t.Errorf("description of %d characters: %q", n, ss[0].Description)
	}
	if ss[0].LogURL != "https://github.com/octo-org/shop/actions/runs/7" || ss[0].EnvironmentURL != "https://staging.shop.example" {
		t.Errorf("status %+v", ss[0])
	}

	if err := c.SetCommitStatus(ctx(t), CommitStatus{
		SHA: commitID(1), State: "success", Context: "immune/staging", Description: long, TargetURL: "https://x/runs/7",
	}); err != nil {
		t.Fatal(err)
	}
	cs := e.fake.CommitStatuses(commitID(1))
	if len(cs) != 1 || cs[0].Context != "immune/staging" || cs[0].State != "success" || utf8.RuneCountInString(cs[0].Description) > MaxDescriptionLength {
		t.Errorf("commit statuses %+v", cs)
	}
	body := e.fake.Calls()[2].Body.(map[string]any)
	if body["context"] != "immune/staging" || body["target_url"] != "https://x/runs/7" || body["state"] != "success" {
		t.Errorf("commit status body %v", body)
	}

	list, err := c.Deployments(ctx(t), "staging", 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 1 || list[0].LatestState != "in_progress" || list[0].LogURL == "" || list[0].LatestStatusAt.IsZero() {
		t.Errorf("deployments %+v", list)
	}
}

func TestCreateDeploymentOptions(t *testing.T) {
	e := setup(t, githubfake.Options{}, nil)
	e.fake.AddBranch("main", commitID(2))
	yes, no := true, false

	d, err := e.client.CreateDeployment(ctx(t), DeploymentRequest{SHA: commitID(2), Ref: "main",
		ProductionEnvironment: &yes, TransientEnvironment: &no})
	if err != nil {
		t.Fatal(err)
	}
	if d.Ref != "main" || d.Environment != "production" || d.Task != "deploy" {
		t.Errorf("%+v", d)
	}
	body := e.fake.Calls()[0].Body.(map[string]any)
	if body["production_environment"] != true || body["transient_environment"] != false || body["payload"] != nil {
		t.Errorf("body %v", body)
	}

	// The branch moved on: GitHub deploys its head, which is not the commit
	// asked for.
	e.fake.AddBranch("main", commitID(3))
	d, err = e.client.CreateDeployment(ctx(t), DeploymentRequest{SHA: commitID(2), Ref: "main"})
	if err == nil || d.ID == 0 || !strings.Contains(err.Error(), "resolved ref \"main\"") {
		t.Errorf("moved branch: %+v, %v", d, err)
	}

	if _, err := e.client.CreateDeployment(ctx(t), DeploymentRequest{}); err == nil {
		t.Error("no SHA accepted")
	}
}

func TestDeploymentsBounded(t *testing.T) {
	e := setup(t, githubfake.Options{}, nil)
	for i := 0; i < 130; i++ {
		e.fake.SeedDeployment("production", commitID(i), "success")
	}
	e.fake.SeedDeployment("staging", commitID(500), "failure")
	list, err := e.client.Deployments(ctx(t), "production", 110)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 110 || list[0].SHA != commitID(129) || list[109].SHA != commitID(20) {
		t.Fatalf("%d deployments, first %s", len(list), list[0].SHA)
	}
	for i := 1; i < len(list); i++ {
		if list[i].ID >= list[i-1].ID {
			t.Fatal("not newest first")
		}
	}
	if got := e.count("GET", "/deployments"); got != 2 {
		t.Errorf("%d list requests, want 2", got)
	}
	all, err := e.client.Deployments(ctx(t), "", 5)
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 5 || all[0].Environment != "staging" || all[0].LatestState != "failure" {
		t.Errorf("all environments: %+v", all[0])
	}
}

func TestDeploymentStatusErrors(t *testing.T) {
	e := setup(t, githubfake.Options{}, nil)
	d := e.fake.SeedDeployment("production", commitID(1))
	err := e.client.SetDeploymentStatus(ctx(t), d.ID, DeploymentStatus{State: "done"})
	var ae *APIError
	if !errors.As(err, &ae) || ae.Status != 422 || !strings.Contains(err.Error(), "is not a member of") ||
		!strings.HasPrefix(err.Error(), fmt.Sprintf("set status of deployment %d to done: GitHub answered 422", d.ID)) {
		t.Errorf("invalid state: %v", err)
	}
	// An unknown deployment: 404, which may also be a missing permission.
	err = e.client.SetDeploymentStatus(ctx(t), 99, DeploymentStatus{State: "success"})
	if !errors.As(err, &ae) || ae.Status != 404 ||
		!strings.Contains(err.Error(), `deployment 99 does not exist in octo-org/shop, or the token cannot see it (it needs "deployments: write")`) {
		t.Errorf("unknown deployment: %v", err)
	}
}

// GitHub made the deployment but the answer was lost (a 502 from in front
// of it, a dropped connection): the retry finds it and makes no second one.
func TestCreateDeploymentIsIdempotent(t *testing.T) {
	for _, fault := range []githubfake.Fault{
		{Method: "POST", Path: "/repos/octo-org/shop/deployments", Times: 1, Status: 502, AfterServing: true},
		{Method: "POST", Path: "/repos/octo-org/shop/deployments", Times: 1, Drop: true, AfterServing: true},
	} {
		e := setup(t, githubfake.Options{}, nil)
		e.fake.AddCommit(commitID(1), "x")
		e.fake.Inject(fault)
		id := "req-42"
		d, err := e.client.CreateDeployment(ctx(t), DeploymentRequest{SHA: commitID(1), Payload: map[string]any{"request_id": id},
			Same: func(d Deployment) bool { return d.Payload["request_id"] == id }})
		if err != nil || d.ID == 0 {
			t.Fatalf("%+v: CreateDeployment = %+v, %v", fault, d, err)
		}
		if n := len(e.fake.Deployments()); n != 1 {
			t.Errorf("%+v: %d deployments, want 1", fault, n)
		}
		if !strings.Contains(e.logs.String(), fmt.Sprintf("but GitHub had made it: using deployment %d", d.ID)) {
			t.Errorf("log: %s", e.logs)
		}
	}
	// Without Same, the old behaviour: the transport retries the POST, and
	// GitHub gets two.
	e := setup(t, githubfake.Options{}, nil)
	e.fake.AddCommit(commitID(1), "x")
	e.fake.Inject(githubfake.Fault{Method: "POST", Path: "/repos/octo-org/shop/deployments", Times: 1, Status: 502, AfterServing: true})
	if _, err := e.client.CreateDeployment(ctx(t), DeploymentRequest{SHA: commitID(1)}); err != nil {
		t.Fatal(err)
	}
	if n := len(e.fake.Deployments()); n != 2 {
		t.Errorf("without Same: %d deployments; the fault did not act after serving", n)
	}
}

// A create GitHub never made is retried.
func TestCreateDeploymentRetriesWhatGitHubDidNotMake(t *testing.T) {
	e := setup(t, githubfake.Options{}, nil)
	e.fake.AddCommit(commitID(1), "x")
	e.fake.Inject(githubfake.Fault{Method: "POST", Path: "/repos/octo-org/shop/deployments", Times: 2, Status: 503})
	d, err := e.client.CreateDeployment(ctx(t), DeploymentRequest{SHA: commitID(1), Payload: map[string]any{"request_id": "r"},
		Same: func(d Deployment) bool { return d.Payload["request_id"] == "r" }})
	if err != nil || d.ID == 0 || len(e.fake.Deployments()) != 1 {
		t.Fatalf("CreateDeployment = %+v, %v; %d deployments", d, err, len(e.fake.Deployments()))
	}
}

// An answer larger than MaxAnswer is an error, not memory spent.
func TestAnswerSizeIsCapped(t *testing.T) {
	big := strings.Repeat("x", MaxAnswer+10)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `[{"id": 1, "description": %q}]`, big)
	}))
	defer srv.Close()
	c, err := New(Options{HTTPClient: srv.Client(), APIURL: srv.URL, Token: testToken, Repository: "o/r", MaxRetries: -1})
	if err != nil {
		t.Fatal(err)
	}
	_, err = c.Deployments(ctx(t), "production", 1)
	if err == nil || !strings.Contains(err.Error(), "larger than 16 MiB") {
		t.Errorf("Deployments() = %v, want the size error", err)
	}
}

// GitHub's REST description promises no order for deployments and their
// statuses: listed oldest first, across pages, the newest are still taken
// by id, and a lost create is still found among the newest.
func TestNewestByIDWhateverTheOrder(t *testing.T) {
	for _, oldestFirst := range []bool{false, true} {
		e := setup(t, githubfake.Options{OldestFirst: oldestFirst}, nil)
		var ids []int64
		for i := 1; i <= 250; i++ {
			d := e.fake.SeedDeployment("production", commitID(i%7+1), "queued", "in_progress", "success")
			ids = append(ids, d.ID)
		}
		e.fake.AddDeploymentStatus(ids[249], githubfake.DeploymentStatus{State: "failure"})
		list, err := e.client.Deployments(ctx(t), "production", 120)
		if err != nil {
			t.Fatal(err)
		}
		if len(list) != 120 || list[0].ID != ids[249] || list[119].ID != ids[130] || list[0].LatestState != "failure" || list[1].LatestState != "success" {
			t.Errorf("oldest first %v: %d deployments, %d..%d, latest states %s, %s", oldestFirst, len(list), list[0].ID, list[len(list)-1].ID, list[0].LatestState, list[1].LatestState)
		}
		for i := 1; i < len(list); i++ {
			if list[i].ID >= list[i-1].ID {
				t.Fatalf("oldest first %v: not newest first at %d", oldestFirst, i)
			}
		}
		n := 0
		err = e.client.WalkDeployments(ctx(t), "production", 300, func(d *Deployment) (bool, error) {
			n++
			return d.ID != ids[240], nil
		})
		if err != nil || n != 10 {
			t.Errorf("oldest first %v: walked %d deployments to the 10th newest (%v)", oldestFirst, n, err)
		}
	}
}
