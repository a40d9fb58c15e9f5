package ghapi

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/immune-cd/immune/internal/githubfake"
)

func TestDeploymentRoundTrip(t *testing.T) {
	e := setup(t, githubfake.Options{}, nil)
	e.fake.AddCommit(sha(1), "ship it")
	c := e.client

	d, err := c.CreateDeployment(ctx(t), DeploymentRequest{
		SHA:         sha(1),
		Environment: "staging",
		Task:        "deploy:immune",
		Description: "immune run 7",
		Payload:     map[string]any{"immune": map[string]any{"run_id": 7, "previous_sha": sha(0)}},
	})
	if err != nil {
		t.Fatal(err)
	}
	if d.ID == 0 || d.SHA != sha(1) || d.Ref != sha(1) || d.Environment != "staging" || d.Task != "deploy:immune" ||
		d.Creator != "github-actions[bot]" || d.CreatedAt.IsZero() || !strings.HasSuffix(d.URL, fmt.Sprintf("/deployments/%d", d.ID)) {
		t.Errorf("deployment %+v", d)
	}
	if got := d.Payload["immune"].(map[string]any)["previous_sha"]; got != sha(0) {
		t.Errorf("payload %v", d.Payload)
	}

	// The exact request body: no auto-merge, no status checks, the payload.
	calls := e.fake.Calls()
	if len(calls) != 1 {
		t.Fatalf("%d calls", len(calls))
	}
	want := map[string]any{
		"ref":               sha(1),
		"task":              "deploy:immune",
		"auto_merge":        false,
		"required_contexts": []any{},
		"environment":       "staging",
		"description":       "immune run 7",
		"payload":           map[string]any{"immune": map[string]any{"run_id": float64(7), "previous_sha": sha(0)}},
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
		SHA: sha(1), State: "success", Context: "immune/staging", Description: long, TargetURL: "https://x/runs/7",
	}); err != nil {
		t.Fatal(err)
	}
	cs := e.fake.CommitStatuses(sha(1))
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
	e.fake.AddBranch("main", sha(2))
	yes, no := true, false

	d, err := e.client.CreateDeployment(ctx(t), DeploymentRequest{SHA: sha(2), Ref: "main",
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
	e.fake.AddBranch("main", sha(3))
	d, err = e.client.CreateDeployment(ctx(t), DeploymentRequest{SHA: sha(2), Ref: "main"})
	if err == nil || d.ID == 0 || !strings.Contains(err.Error(), "resolved ref \"main\"") {
		t.Errorf("moved branch: %+v, %v", d, err)
	}

	if _, err := e.client.CreateDeployment(ctx(t), DeploymentRequest{}); err == nil {
		t.Error("no SHA accepted")
	}
}

func TestLastKnownGood(t *testing.T) {
	type seed struct {
		env    string
		sha    int
		states []string
	}
	tests := []struct {
		name        string
		history     []seed // oldest first
		exclude     int    // -1: none
		wantFound   bool
		wantSHA     int
		wantStatusQ int // deployment status requests
	}{
		{
			name: "newest success",
			history: []seed{
				{"production", 1, []string{"success"}},
				{"production", 2, []string{"in_progress", "success"}},
			},
			exclude: -1, wantFound: true, wantSHA: 2, wantStatusQ: 1,
		},
		{
			name: "skips failed, in progress, rolled back over, no status, other environments",
			history: []seed{
				{"production", 1, []string{"success"}},
				{"production", 2, []string{"success", "inactive"}},    // rolled back over
				{"staging", 3, []string{"success"}},                   // other environment
				{"production", 4, []string{"in_progress", "failure"}}, // failed
				{"production", 5, []string{"error"}},
				{"production", 6, nil},                               // no status yet
				{"production", 7, []string{"queued", "in_progress"}}, // in progress
			},
			exclude: -1, wantFound: true, wantSHA: 1, wantStatusQ: 6,
		},
		{
			name: "excludes the commit being deployed without asking for its status",
			history: []seed{
				{"production", 1, []string{"success"}},
				{"production", 2, []string{"success"}},
				{"production", 3, []string{"success"}},
			},
			exclude: 3, wantFound: true, wantSHA: 2, wantStatusQ: 1,
		},
		{
			name: "every deployment of the excluded commit is skipped",
			history: []seed{
				{"production", 1, []string{"success"}},
				{"production", 2, []string{"success"}},
				{"production", 1, []string{"failure"}},
				{"production", 2, []string{"success"}},
			},
			exclude: 2, wantFound: true, wantSHA: 1, wantStatusQ: 2,
		},
		{
			name: "nothing good",
			history: []seed{
				{"production", 1, []string{"failure"}},
				{"production", 2, []string{"success"}},
			},
			exclude: 2, wantFound: false, wantStatusQ: 1,
		},
		{
			name:    "empty history",
			exclude: -1, wantFound: false, wantStatusQ: 0,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := setup(t, githubfake.Options{}, nil)
			for _, s := range tt.history {
				e.fake.SeedDeployment(s.env, sha(s.sha), s.states...)
			}
			exclude := ""
			if tt.exclude >= 0 {
				exclude = sha(tt.exclude)[:12] // a prefix works too
			}
			d, found, err := e.client.LastKnownGood(ctx(t), "production", exclude, 0)
			if err != nil {
				t.Fatal(err)
			}
			if found != tt.wantFound || found && (d.SHA != sha(tt.wantSHA) || d.LatestState != "success") {
				t.Errorf("found=%v %+v, want found=%v sha %d", found, d, tt.wantFound, tt.wantSHA)
			}
			if got := e.statusCalls(); got != tt.wantStatusQ {
				t.Errorf("%d status requests, want %d", got, tt.wantStatusQ)
			}
			if got := e.count("GET", "/deployments"); got != 1 {
				t.Errorf("%d list requests, want 1", got)
			}
		})
	}
}

func TestLastKnownGoodPagesLazily(t *testing.T) {
	tests := []struct {
		name        string
		goodAt      int // position of the success, newest first; -1 for none
		max         int
		wantFound   bool
		wantPages   []string // page query of each list request
		wantPerPage string
		wantStatusQ int
	}{
		{"found on page 2 stops there", 129, 200, true, []string{"1", "2"}, "100", 130},
		{"default bound of 100", 129, 0, false, []string{"1"}, "100", 100},
		{"bound of 250 across 3 pages", -1, 250, false, []string{"1", "2", "3"}, "100", 250},
		{"small bound asks for a small page", 3, 20, true, []string{"1"}, "20", 4},
		{"bound capped at MaxHistory", -1, 5000, false, []string{"1", "2", "3"}, "100", 300},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := setup(t, githubfake.Options{}, nil)
			const total = 300
			for i := 0; i < total; i++ {
				state := "failure"
				if total-1-i == tt.goodAt {
					state = "success"
				}
				e.fake.SeedDeployment("production", sha(i), state)
			}
			d, found, err := e.client.LastKnownGood(ctx(t), "production", "", tt.max)
			if err != nil {
				t.Fatal(err)
			}
			if found != tt.wantFound || found && d.SHA != sha(total-1-tt.goodAt) {
				t.Errorf("found=%v %s, want found=%v", found, d.SHA, tt.wantFound)
			}
			var pages []string
			for _, c := range e.fake.Calls() {
				if c.Path == "/repos/octo-org/shop/deployments" {
					pages = append(pages, c.Query.Get("page"))
					if got := c.Query.Get("per_page"); got != tt.wantPerPage {
						t.Errorf("per_page=%s, want %s", got, tt.wantPerPage)
					}
					if got := c.Query.Get("environment"); got != "production" {
						t.Errorf("environment=%s", got)
					}
				}
			}
			if !reflect.DeepEqual(pages, tt.wantPages) {
				t.Errorf("list requests for pages %v, want %v", pages, tt.wantPages)
			}
			if got := e.statusCalls(); got != tt.wantStatusQ {
				t.Errorf("%d status requests, want %d", got, tt.wantStatusQ)
			}
		})
	}
}

func TestDeploymentsBounded(t *testing.T) {
	e := setup(t, githubfake.Options{}, nil)
	for i := 0; i < 130; i++ {
		e.fake.SeedDeployment("production", sha(i), "success")
	}
	e.fake.SeedDeployment("staging", sha(500), "failure")
	list, err := e.client.Deployments(ctx(t), "production", 110)
	if err != nil {
		t.Fatal(err)
	}
	if len(list) != 110 || list[0].SHA != sha(129) || list[109].SHA != sha(20) {
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

func TestNewerDeployments(t *testing.T) {
	e := setup(t, githubfake.Options{}, nil)
	f := e.fake
	f.SeedDeployment("production", sha(1), "success")
	mine := f.SeedDeployment("production", sha(2), "in_progress")
	f.SeedDeployment("staging", sha(3), "success")
	n1 := f.SeedDeployment("production", sha(4), "queued")
	n2 := f.SeedDeployment("production", sha(5), "in_progress", "success")

	than := Deployment{ID: mine.ID}
	newer, err := e.client.NewerDeployments(ctx(t), "production", than)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, d := range newer {
		got = append(got, fmt.Sprintf("%d:%s", d.ID, d.LatestState))
	}
	want := []string{fmt.Sprintf("%d:success", n2.ID), fmt.Sprintf("%d:queued", n1.ID)}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("newer %v, want %v", got, want)
	}
	if got := e.statusCalls(); got != 2 {
		t.Errorf("%d status requests, want 2 (none for older deployments)", got)
	}

	none, err := e.client.NewerDeployments(ctx(t), "production", Deployment{ID: n2.ID})
	if err != nil || len(none) != 0 {
		t.Errorf("newest: %v, %v", none, err)
	}

	// Without an id, creation time decides.
	byTime, err := e.client.NewerDeployments(ctx(t), "production", Deployment{CreatedAt: mine.CreatedAt.Add(-1)})
	if err != nil || len(byTime) != 4 {
		t.Errorf("by time: %d, %v", len(byTime), err)
	}
}

func TestDeploymentStatusErrors(t *testing.T) {
	e := setup(t, githubfake.Options{}, nil)
	d := e.fake.SeedDeployment("production", sha(1))
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
