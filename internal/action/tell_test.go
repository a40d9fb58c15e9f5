package action

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/immune-cd/immune/internal/deploy"
	"github.com/immune-cd/immune/internal/notify"
	"github.com/immune-cd/immune/internal/recorder"
	"github.com/immune-cd/immune/internal/testkit/githubfake"
)

// heard is an in-process webhook receiver that checks signatures.
type heard struct {
	mu     sync.Mutex
	events []notify.Event
	bad    int
}

func (h *heard) serve(t *testing.T) string {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var e notify.Event
		h.mu.Lock()
		defer h.mu.Unlock()
		if json.Unmarshal(body, &e) != nil || !notify.Verify("k", body, r.Header.Get(notify.SignatureHeader)) {
			h.bad++
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		h.events = append(h.events, e)
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

func (h *heard) kinds() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var ks []string
	for _, e := range h.events {
		ks = append(ks, string(e.Event))
	}
	return strings.Join(ks, " ")
}

// Every verdict tells whom it should: the comment on the regressed
// commit's pull request (its headline says what happened), the tracking
// issue while the line is stopped, the webhook's events in order.
func TestTellTransitions(t *testing.T) {
	t.Parallel()
	stoppedLine := func(m *machine) {
		p := recorder.Payload{Tool: recorder.Tool, RolledBackFrom: shaOther}
		d := m.gh.AddDeployment(githubfake.Deployment{SHA: shaGood, Task: string(recorder.TaskRollback), Payload: p.Map(), CreatedAt: t0.Add(-time.Minute)})
		m.gh.AddDeploymentStatus(d.ID, githubfake.DeploymentStatus{State: "success", CreatedAt: t0.Add(-time.Minute)})
		m.gh.AddIssue(githubfake.Issue{Title: "production is stopped", Labels: []string{recorder.StoppedLabel},
			Body: recorder.IssueMarker("production") + "\nstopped by 5e6f7a8"})
	}
	tests := []struct {
		name     string
		event    string
		inputs   map[string]string
		setup    func(m *machine)
		events   string
		headline string // of the comment on #12; "" for none
		issue    string // state of the tracking issue; "" for none
		title    string
	}{
		{name: "rolled back", setup: func(m *machine) { m.world.down[shaNew] = true },
			events: "regressed rolled-back", headline: "### ⏪ `4d8b3f2` regressed on production and was rolled back", issue: "open", title: "⛔ production is stopped: 4d8b3f2 by @monalisa was rolled back"},
		{name: "the rollback fails", setup: func(m *machine) { m.world.down[shaNew], m.world.fails[shaGood] = true, true },
			events: "regressed rollback-failed", headline: "### 🚨 `4d8b3f2` regressed on production and the rollback failed", issue: "open", title: "🚨 production is stopped"},
		{name: "auto-rollback off", inputs: map[string]string{"auto-rollback": "false"}, setup: func(m *machine) { m.world.down[shaNew] = true },
			events: "regressed", headline: "### ❌ `4d8b3f2` regressed on production", issue: "open", title: "⛔ production is stopped: 4d8b3f2 by @monalisa regressed"},
		{name: "superseded", setup: func(m *machine) {
			m.world.down[shaNew] = true
			m.world.onDeploy = func(req deploy.Request) {
				if req.SHA == shaNew {
					m.ours(recorder.TaskDeploy, shaOther, m.clk.Now(), "in_progress")
				}
			}
		}, events: "regressed", headline: "### ❌ `4d8b3f2` regressed on production"},
		{name: "healthy on a clear line", events: ""},
		{name: "healthy after a stopped line", setup: stoppedLine, events: "recovered", issue: "closed"},
		{name: "manual rollback", event: "workflow_dispatch", inputs: map[string]string{"reason": "totals are wrong"},
			setup:  func(m *machine) { m.ours(recorder.TaskDeploy, shaNew, t0.Add(-time.Minute), "success") },
			events: "rolled-back", headline: "### ⏪ production was rolled back from `4d8b3f2` by hand", issue: "open", title: "was rolled back by hand"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			var h heard
			in := map[string]string{"notify-secret": "k"}
			for k, v := range tt.inputs {
				in[k] = v
			}
			event := tt.event
			if event == "" {
				event = "push"
			}
			m := newMachine(t, event, in)
			m.inputs["notify-webhook"] = h.serve(t)
			m.ours(recorder.TaskDeploy, shaGood, t0.Add(-time.Hour), "in_progress", "success")
			m.gh.AddPull(githubfake.PullRequest{Number: 12, Author: "monalisa", Merged: true, MergeCommitSHA: shaNew})
			if tt.setup != nil {
				tt.setup(m)
			}
			res := m.run()
			if got := h.kinds(); got != tt.events || h.bad != 0 {
				t.Errorf("webhook heard %q (%d bad), want %q\n%s", got, h.bad, tt.events, res.log)
			}
			var mine []githubfake.IssueComment
			for _, c := range m.gh.Comments(12) {
				if strings.HasPrefix(c.Body, "<!-- immune:regression") {
					mine = append(mine, c)
				}
			}
			switch {
			case tt.headline == "" && len(mine) != 0:
				t.Errorf("commented: %s", mine[0].Body)
			case tt.headline != "" && (len(mine) != 1 || !strings.Contains(mine[0].Body, tt.headline+"\n")):
				t.Errorf("comments on #12: %+v, want one with %q\n%s", mine, tt.headline, res.log)
			}
			issues := m.gh.Issues()
			switch {
			case tt.issue == "" && len(issues) != 0:
				t.Errorf("issues: %+v", issues)
			case tt.issue != "" && (len(issues) != 1 || issues[0].State != tt.issue || !strings.Contains(issues[0].Title, tt.title)):
				t.Errorf("issues: %+v, want one %s titled %q\n%s", issues, tt.issue, tt.title, res.log)
			}
			if strings.Contains(res.log, "::warning") {
				t.Errorf("warnings:\n%s", res.log)
			}
		})
	}
}

// The events carry what a chat bot needs.
func TestWebhookEventFields(t *testing.T) {
	t.Parallel()
	var h heard
	m := newMachine(t, "push", map[string]string{"notify-secret": "k"})
	m.inputs["notify-webhook"] = h.serve(t)
	m.ours(recorder.TaskDeploy, shaGood, t0.Add(-time.Hour), "in_progress", "success")
	m.gh.AddPull(githubfake.PullRequest{Number: 12, Author: "monalisa", Merged: true, MergeCommitSHA: shaNew})
	m.world.down[shaNew] = true
	m.run()
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.events) != 2 {
		t.Fatalf("events: %+v", h.events)
	}
	reg, rb := h.events[0], h.events[1]
	if reg.SHA != shaNew || reg.RunningSHA != shaGood || reg.Environment != "production" || reg.Repository != "octo-org/shop" || !strings.HasPrefix(reg.Text, "❌ octo-org/shop: `4d8b3f2` regressed on production: ") {
		t.Errorf("regressed: %+v", reg)
	}
	if rb.Author != "monalisa" || len(rb.PullRequests) != 1 || rb.PullRequests[0] != 12 || rb.IssueURL == "" || rb.RunURL != "https://github.com/octo-org/shop/actions/runs/7412345678" {
		t.Errorf("rolled-back: %+v", rb)
	}
}

// A cancelled run tells no one that it rolled back.
func TestCancelledRunTellsNothingFinal(t *testing.T) {
	t.Parallel()
	var h heard
	m := newMachine(t, "push", nil)
	m.inputs["notify-webhook"] = h.serve(t)
	m.ours(recorder.TaskDeploy, shaGood, t0.Add(-time.Hour), "in_progress", "success")
	m.gh.AddPull(githubfake.PullRequest{Number: 12, Author: "monalisa", Merged: true, MergeCommitSHA: shaNew})
	m.world.down[shaNew] = true
	m.world.onDeploy = func(req deploy.Request) {
		if req.Reason == deploy.ReasonRollback {
			m.cancel()
		}
	}
	res := m.run()
	if res.out["verdict"] != "cancelled" || len(m.gh.Issues()) != 0 || strings.Contains(h.kinds(), "rolled-back") {
		t.Errorf("verdict %s, issues %+v, webhook %q\n%s", res.out["verdict"], m.gh.Issues(), h.kinds(), res.log)
	}
}
