package event

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/sethvargo/go-githubactions"
)

// load reads one of the repository's real event payloads.
func load(t *testing.T, name string) map[string]any {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", "..", "testdata", "events", name+".json"))
	if err != nil {
		t.Fatal(err)
	}
	var ev map[string]any
	if err := json.Unmarshal(data, &ev); err != nil {
		t.Fatal(err)
	}
	return ev
}

func TestFrom(t *testing.T) {
	t.Parallel()
	push := load(t, "push")
	deleted := load(t, "push")
	deleted["deleted"], deleted["after"] = true, "0000000000000000000000000000000000000000"
	newBranch := load(t, "push")
	newBranch["before"] = "0000000000000000000000000000000000000000"
	hostile := load(t, "push")
	hostile["before"] = "9f2c1e7\n::stop-commands::x"
	tests := []struct {
		name, event string
		payload     map[string]any
		before      string
		deleted     bool
		pr          int
	}{
		{"push", "push", push, "9f2c1e7a3b4d5c6e7f8091a2b3c4d5e6f7081920", false, 0},
		{"a push that deleted its branch", "push", deleted, "9f2c1e7a3b4d5c6e7f8091a2b3c4d5e6f7081920", true, 0},
		{"a new branch has no before", "push", newBranch, "", false, 0},
		{"a before that is not a SHA is not taken", "push", hostile, "", false, 0},
		{"pull request", "pull_request", load(t, "pull_request"), "", false, 123},
		{"merge queue", "merge_group", load(t, "merge_group"), "", false, 123},
		{"dispatch", "workflow_dispatch", load(t, "workflow_dispatch"), "", false, 0},
	}
	for _, tt := range tests {
		e := From(&githubactions.GitHubContext{EventName: tt.event, Event: tt.payload, RunID: 7, RunAttempt: 2, Actor: "monalisa"})
		if e.Before != tt.before || e.Deleted != tt.deleted || e.PullRequest != tt.pr || e.RunAttempt != 2 || e.Actor != "monalisa" {
			t.Errorf("%s: %+v", tt.name, e)
		}
		if tt.pr == 0 && e.PullRequestErr == nil {
			t.Errorf("%s: no error for a missing pull request", tt.name)
		}
	}
}

func TestURLs(t *testing.T) {
	e := Event{Repository: "o/r", RunID: 7}
	if got := e.RunURL(); got != "https://github.com/o/r/actions/runs/7" {
		t.Error(got)
	}
	e.ServerURL = "https://ghe.example.com/"
	if got := e.RunURL(); got != "https://ghe.example.com/o/r/actions/runs/7" {
		t.Error(got)
	}
	if got := e.CommitURL("abc"); got != "https://ghe.example.com/o/r/commit/abc" {
		t.Error(got)
	}
	if got := e.DeploymentsURL(); got != "https://ghe.example.com/o/r/deployments" {
		t.Error(got)
	}
	if got := (Event{}).RunURL() + (Event{}).CommitURL("abc") + (Event{}).DeploymentsURL(); got != "" {
		t.Errorf("outside a repository: %q", got)
	}
}
