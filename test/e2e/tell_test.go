package e2e

// End-to-end tests of what people are told: the comment on the merged pull
// requests of a rolled-back push, the tracking issue of the stopped line,
// and the chat webhook, from the binary as the runner starts it, against
// the fake GitHub and a real HTTP receiver.

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/immune-cd/immune/internal/testkit/githubfake"
	"github.com/immune-cd/immune/internal/testkit/testservice"
)

// Commits of the push that regresses: after shaGood, #11 (hubot) merged
// as shaMerge11, a direct push by octocat, then #12 (monalisa) merged as
// shaNew, the push's head.
const (
	shaMerge11 = "b1b2b3b4b5b6b7b8b9b0c1c2c3c4c5c6c7c8c9c0"
	shaDirect  = "d1d2d3d4d5d6d7d8d9d0e1e2e3e4e5e6e7e8e9e0"
	shaFix     = "f1f2f3f4f5f6f7f8f9f0a1a2a3a4a5a6a7a8a9a0"
)

// pushOfThree is a fake GitHub whose default branch holds shaOlder,
// shaGood (deployed healthy by immune), then a push of three commits from
// two merged pull requests, ending in shaNew.
func pushOfThree(t *testing.T, o githubfake.Options) *githubfake.Server {
	t.Helper()
	o.Owner, o.Repo, o.Token = "octo-org", "shop", token
	f := githubfake.Start(t, o)
	f.AddCommit(shaOlder, "Checkout: show the tax line")
	f.AddCommit(shaGood, "Search: faster facets")
	f.AddPull(githubfake.PullRequest{Number: 11, Title: "Search: cache facets", Author: "hubot", Merged: true, MergeCommitSHA: shaMerge11,
		Commits: []githubfake.Commit{{SHA: "a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0", Message: "cache facets"}}})
	f.AddAuthoredCommit(githubfake.Commit{SHA: shaDirect, Message: "Bump the copyright year", Author: "octocat"})
	f.AddPull(githubfake.PullRequest{Number: 12, Title: "Checkout: cache the tax table", Author: "monalisa", Merged: true, MergeCommitSHA: shaNew,
		Commits: []githubfake.Commit{{SHA: "c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0c0", Message: "cache the tax table"}}})
	f.AddComment(githubfake.IssueComment{Number: 12, Body: "LGTM", Author: "octocat"})
	seedOurs(f, "production", "deploy", shaGood, nil, "in_progress", "success")
	return f
}

// ours lists the comments immune left on a pull request.
func ours(f *githubfake.Server, pr int) []githubfake.IssueComment {
	var out []githubfake.IssueComment
	for _, c := range f.Comments(pr) {
		if strings.HasPrefix(c.Body, "<!-- immune:regression") {
			out = append(out, c)
		}
	}
	return out
}

// hook is a real webhook receiver: it checks every signature the way a
// receiver checks GitHub's X-Hub-Signature-256, and records the events.
type hook struct {
	mu     sync.Mutex
	events []map[string]any
	bad    int
	srv    *httptest.Server
	url    string
}

const hookSecret = "whsec_tellTestKey"

func newHook(t *testing.T) *hook {
	h := &hook{}
	h.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mac := hmac.New(sha256.New, []byte(hookSecret))
		mac.Write(body)
		want := "sha256=" + hex.EncodeToString(mac.Sum(nil))
		var e map[string]any
		err := json.Unmarshal(body, &e)
		h.mu.Lock()
		defer h.mu.Unlock()
		if !hmac.Equal([]byte(want), []byte(r.Header.Get("X-Immune-Signature-256"))) || err != nil || r.Header.Get("X-Immune-Event") != e["event"] {
			h.bad++
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		h.events = append(h.events, e)
	}))
	t.Cleanup(h.srv.Close)
	h.url = h.srv.URL + "/services/T0123/B0456/" + "tellTestWebhookToken"
	return h
}

func (h *hook) kinds() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	var ks []string
	for _, e := range h.events {
		ks = append(ks, e["event"].(string))
	}
	return strings.Join(ks, " → ")
}

func (h *hook) inputs(extra map[string]string) map[string]string {
	extra["notify-webhook"] = h.url
	extra["notify-secret"] = hookSecret
	return extra
}

// The whole story: a push of three commits from two pull requests regresses
// and is rolled back; both authors hear it once on their pull request, the
// line's tracking issue opens, and the webhook hears regressed then
// rolled-back. A re-run of the job edits the comments rather than adding
// any, and updates the issue. The fix deploys healthy: the issue closes with
// a comment and the webhook hears recovered.
func TestTellTheAuthorsAndStopTheLine(t *testing.T) {
	t.Parallel()
	f := pushOfThree(t, githubfake.Options{})
	h := newHook(t)
	svc, url := service(t, map[string]testservice.Behaviour{shaNew: {FailRate: 1}}, shaGood)
	in := h.inputs(map[string]string{"startup-timeout": "0s"})

	res := newActionRun(t, "push", fast(url, in)).useGitHub(f).exec()
	if res.code != 1 || res.outputs["verdict"] != "rolled-back" || svc.Current() != shaGood {
		t.Fatalf("exit %d, verdict %s, service runs %s\n%s", res.code, res.outputs["verdict"], svc.Current(), res.log)
	}
	assertNoToken(t, res)
	for name, text := range map[string]string{"summary": res.summary, "log": strings.ReplaceAll(res.log, "::add-mask::"+h.url, "")} {
		if strings.Contains(text, "tellTestWebhookToken") || strings.Contains(text, hookSecret) && !strings.Contains(text, "::add-mask::"+hookSecret) {
			t.Errorf("the %s shows the webhook's URL or secret", name)
		}
	}
	c12, c11 := ours(f, 12), ours(f, 11)
	if len(c12) != 1 || len(c11) != 1 || len(f.Comments(12)) != 2 {
		t.Fatalf("comments: %d on #12, %d on #11 (want one each)", len(c12), len(c11))
	}
	for _, want := range []string{"@monalisa", "⏪ `4d8b3f2` regressed on production and was rolled back", "9 of", "`9f2c1e7`", "xychart-beta",
		"Revert this pull request with its **Revert** button", "`immune:fix`", "https://github.com/octo-org/shop/actions/runs/7412345678",
		"#11 (@hubot)", "3 commits"} {
		if !strings.Contains(c12[0].Body, want) && !(want == "9 of" && strings.Contains(c12[0].Body, "probes failed")) {
			t.Errorf("the comment on #12 lacks %q:\n%s", want, c12[0].Body)
		}
	}
	if !strings.Contains(c11[0].Body, "@hubot") || !strings.Contains(c11[0].Body, "Reverting this pull request alone does not revert `4d8b3f2`") {
		t.Errorf("the comment on #11:\n%s", c11[0].Body)
	}
	if len(ours(f, 0)) != 0 || len(f.Comments(13)) != 0 {
		t.Error("comments elsewhere")
	}

	issues := f.Issues()
	if len(issues) != 1 || issues[0].State != "open" || len(issues[0].Labels) != 1 || issues[0].Labels[0] != "immune:stopped" {
		t.Fatalf("issues: %+v", issues)
	}
	is := issues[0]
	if !strings.Contains(is.Title, "production") || !strings.Contains(is.Title, "4d8b3f2") || !strings.Contains(is.Title, "@monalisa") {
		t.Errorf("issue title %q", is.Title)
	}
	issueURL := f.ServerURL() + "/octo-org/shop/issues/" + strconv.Itoa(is.Number)
	if !strings.Contains(c12[0].Body, issueURL) {
		t.Errorf("the comment does not link the tracking issue %s", issueURL)
	}
	if got := h.kinds(); got != "regressed → rolled-back" || h.bad != 0 {
		t.Errorf("webhook heard %q (%d bad signatures), want regressed → rolled-back", got, h.bad)
	}
	h.mu.Lock()
	rb := h.events[1]
	h.mu.Unlock()
	if rb["author"] != "monalisa" || rb["sha"] != shaNew || rb["running_sha"] != shaGood || rb["issue_url"] != issueURL ||
		!strings.HasPrefix(rb["text"].(string), "⏪ octo-org/shop: production was rolled back from `4d8b3f2` by @monalisa (#12)") {
		t.Errorf("rolled-back event: %v", rb)
	}
	t.Logf("comment on #12:\n%s\nissue #%d: %s\n%s", c12[0].Body, is.Number, is.Title, is.Body)

	// A re-run of the same job: the same comments, edited; the issue
	// updated, with a comment for its watchers.
	rerun := newActionRun(t, "push", fast(url, in)).useGitHub(f)
	rerun.env["GITHUB_RUN_ATTEMPT"] = "2"
	res = rerun.exec()
	if res.code != 1 || res.outputs["verdict"] != "rolled-back" {
		t.Fatalf("re-run: exit %d, verdict %s\n%s", res.code, res.outputs["verdict"], res.log)
	}
	if len(ours(f, 12)) != 1 || len(ours(f, 11)) != 1 || f.CallCount("PATCH", "/repos/octo-org/shop/issues/comments/"+strconv.FormatInt(c12[0].ID, 10)) < 2 {
		t.Errorf("re-run: %d comments on #12, %d on #11, want the same one each, edited", len(ours(f, 12)), len(ours(f, 11)))
	}
	if issues := f.Issues(); len(issues) != 1 || issues[0].State != "open" || len(f.Comments(is.Number)) != 1 ||
		!strings.HasPrefix(f.Comments(is.Number)[0].Body, "⏪ Stopped again") {
		t.Errorf("re-run: issues %+v, issue comments %+v", issues, f.Comments(is.Number))
	}

	// The fix deploys healthy: the issue closes, the webhook hears it.
	f.AddPull(githubfake.PullRequest{Number: 14, Title: "Revert the tax table cache", Author: "monalisa", Merged: true, MergeCommitSHA: shaFix})
	fix := newActionRun(t, "push", fast(url, in)).useGitHub(f)
	fix.env["GITHUB_SHA"] = shaFix
	fix.env["GITHUB_EVENT_PATH"] = writeEvent(t, `{"ref":"refs/heads/main","before":"`+shaNew+`","after":"`+shaFix+`"}`)
	res = fix.exec()
	if res.code != 0 || res.outputs["verdict"] != "healthy" {
		t.Fatalf("fix: exit %d, verdict %s\n%s", res.code, res.outputs["verdict"], res.log)
	}
	closed := f.Issues()[0]
	cs := f.Comments(is.Number)
	if closed.State != "closed" || closed.StateReason != "completed" || len(cs) != 2 || !strings.Contains(cs[1].Body, "`f1f2f3f`") || !strings.Contains(cs[1].Body, "the line is clear again") {
		t.Errorf("after the fix: issue %+v, comments %+v", closed, cs)
	}
	if got := h.kinds(); got != "regressed → rolled-back → regressed → rolled-back → recovered" || h.bad != 0 {
		t.Errorf("webhook heard %q (%d bad signatures)", got, h.bad)
	}
	if !strings.Contains(res.log, "closed the tracking issue #"+strconv.Itoa(is.Number)) {
		t.Errorf("the fix's log does not say it closed the issue:\n%s", res.log)
	}
	// A healthy deploy on a clear line touches no issue.
	calls := f.CallCount("GET", "/repos/octo-org/shop/issues")
	again := newActionRun(t, "push", fast(url, in)).useGitHub(f)
	again.env["GITHUB_SHA"] = shaFix
	if res = again.exec(); res.code != 0 || f.CallCount("GET", "/repos/octo-org/shop/issues") != calls {
		t.Errorf("a healthy deploy on a clear line: exit %d, read the issues", res.code)
	}
}

// Without pull-requests: write and issues: write the run warns once for
// each, naming it, and the verdict is the same.
func TestTellWithoutThePermissions(t *testing.T) {
	t.Parallel()
	f := pushOfThree(t, githubfake.Options{Permissions: map[string]string{
		"contents": "read", "deployments": "write", "statuses": "write", "pull-requests": "read",
	}})
	svc, url := service(t, map[string]testservice.Behaviour{shaNew: {FailRate: 1}}, shaGood)
	res := newActionRun(t, "push", fast(url, map[string]string{"startup-timeout": "0s"})).useGitHub(f).exec()
	if res.code != 1 || res.outputs["verdict"] != "rolled-back" || svc.Current() != shaGood || len(f.Deployments()) != 3 {
		t.Fatalf("exit %d, verdict %s, service runs %s, %d deployments\n%s", res.code, res.outputs["verdict"], svc.Current(), len(f.Deployments()), res.log)
	}
	for _, perm := range []string{"pull-requests: write", "issues: write"} {
		n := 0
		for _, line := range strings.Split(res.log, "\n") {
			if strings.HasPrefix(line, "::warning title=Optional permission missing::") && strings.Contains(line, `lacks "`+perm+`"`) {
				n++
			}
		}
		if n != 1 {
			t.Errorf("%d warnings naming %q, want 1:\n%s", n, perm, res.log)
		}
	}
	if len(ours(f, 12)) != 0 || len(f.Issues()) != 0 {
		t.Error("wrote without the permission")
	}
	if n := f.CallCount("POST", "/repos/octo-org/shop/issues/11/comments"); n != 0 {
		t.Errorf("tried #11 after #12 was refused: %d calls", n)
	}
	if strings.Contains(res.log, "GitHub records incomplete") {
		t.Errorf("the optional permissions count as missing records:\n%s", res.log)
	}
}

// A receiver that answers 500, or hangs, does not delay the rollback: the
// rollback command starts while the webhook is still being tried, and the
// verdict is the same. The end of the run waits for it at most
// notify-timeout.
func TestSlowWebhookDoesNotDelayTheRollback(t *testing.T) {
	t.Parallel()
	const timeout = 3 * time.Second
	for _, mode := range []string{"500", "hang"} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			var mu sync.Mutex
			var first, ended time.Time
			attempts := 0
			release := make(chan struct{})
			recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				// Read the body: the server notices a closed connection
				// only once it has.
				_, _ = io.ReadAll(r.Body)
				mu.Lock()
				attempts++
				if first.IsZero() {
					first = time.Now()
				}
				mu.Unlock()
				if mode == "hang" {
					select {
					case <-r.Context().Done():
					case <-release:
					}
					mu.Lock()
					ended = time.Now()
					mu.Unlock()
					return
				}
				w.WriteHeader(http.StatusInternalServerError)
			}))
			t.Cleanup(recv.Close)
			t.Cleanup(func() { close(release) })
			f := fakeGitHub(t)
			seedOurs(f, "production", "deploy", shaGood, nil, "success")
			svc, url := service(t, map[string]testservice.Behaviour{shaNew: {FailRate: 1}}, shaGood)
			// The rollback command notes when it starts, in nanoseconds.
			cmd := `if [ "$IMMUNE_REASON" = rollback ]; then date +%s%N > rollback-started; fi; ` + deployVia(url)
			run := newActionRun(t, "push", fast(url, map[string]string{
				"startup-timeout": "0s", "deploy-command": cmd, "notify-webhook": recv.URL + "/hook", "notify-timeout": timeout.String(),
			})).useGitHub(f)
			began := time.Now()
			res := run.exec()
			took := time.Since(began)
			if res.code != 1 || res.outputs["verdict"] != "rolled-back" || svc.Current() != shaGood {
				t.Fatalf("exit %d, verdict %s, service runs %s\n%s", res.code, res.outputs["verdict"], svc.Current(), res.log)
			}
			raw, err := os.ReadFile(filepath.Join(run.workspace, "rollback-started"))
			if err != nil {
				t.Fatal(err)
			}
			ns, _ := strconv.ParseInt(strings.TrimSpace(string(raw)), 10, 64)
			started := time.Unix(0, ns)
			mu.Lock()
			defer mu.Unlock()
			if first.IsZero() {
				t.Fatal("the webhook was never called")
			}
			// The issue's bound: no more than the timeout after the
			// regressed event went out.
			if d := started.Sub(first); d > timeout {
				t.Errorf("the rollback started %s after the regressed event, more than notify-timeout %s", d, timeout)
			}
			if mode == "hang" && (ended.IsZero() || !started.Before(ended)) {
				t.Errorf("the rollback did not start while the webhook hung (started %s, webhook given up %s)", started.Format(time.StampMicro), ended.Format(time.StampMicro))
			}
			if mode == "500" && attempts != 3 {
				t.Errorf("%d attempts, want 3 for regressed and none for the rest", attempts)
			}
			if !strings.Contains(res.log, "::warning title=Chat webhook::") {
				t.Errorf("no warning about the webhook:\n%s", res.log)
			}
			t.Logf("rollback started %s after the first webhook request; the run took %s", started.Sub(first).Round(time.Millisecond), took.Round(time.Millisecond))
		})
	}
}

// A manual rollback tells the author of what it replaced, opens the
// tracking issue, and the gate's failure links it.
func TestManualRollbackTellsAndTheGateLinksTheIssue(t *testing.T) {
	t.Parallel()
	f := pushOfThree(t, githubfake.Options{})
	seedOurs(f, "production", "deploy", shaNew, nil, "in_progress", "success")
	svc, url := service(t, nil, shaNew)
	run := newActionRun(t, "workflow_dispatch", fast(url, map[string]string{"reason": "checkout totals are wrong", "duration": "500ms"})).useGitHub(f)
	run.env["GITHUB_ACTOR"] = "octocat"
	res := run.exec()
	if res.code != 0 || res.outputs["verdict"] != "rolled-back" || svc.Current() != shaGood {
		t.Fatalf("exit %d, verdict %s, service runs %s\n%s", res.code, res.outputs["verdict"], svc.Current(), res.log)
	}
	c := ours(f, 12)
	if len(c) != 1 || !strings.Contains(c[0].Body, "@octocat rolled production back from") || !strings.Contains(c[0].Body, "checkout totals are wrong") {
		t.Fatalf("comment on #12: %+v", c)
	}
	issues := f.Issues()
	if len(issues) != 1 || !strings.Contains(issues[0].Title, "was rolled back by hand") {
		t.Fatalf("issues: %+v", issues)
	}
	f.AddPullRequest(20, "e0e0e0e0e0e0e0e0e0e0e0e0e0e0e0e0e0e0e0e0", nil, []githubfake.Commit{{SHA: "e0e0e0e0e0e0e0e0e0e0e0e0e0e0e0e0e0e0e0e0", Message: "another change"}})
	gate := newActionRun(t, "pull_request", map[string]string{"mode": "auto"}).useGitHub(f)
	gate.env["GITHUB_EVENT_PATH"] = writeEvent(t, `{"number":20,"pull_request":{"number":20}}`)
	res = gate.exec()
	link := f.ServerURL() + "/octo-org/shop/issues/" + strconv.Itoa(issues[0].Number)
	if res.code != 1 || res.outputs["verdict"] != "stopped" || !strings.Contains(res.log, "tracking issue: "+link) || !strings.Contains(res.summary, link) {
		t.Errorf("gate: exit %d, verdict %s; want stopped, linking %s\n%s", res.code, res.outputs["verdict"], link, res.log)
	}
}

// A slow GitHub (every call about people takes a second) on a push of ten
// pull requests: the comments cannot all be written within the run's
// budget, but the webhook hears the rollback and the tracking issue opens
// all the same: the line's issue has a lane of its own, and the webhook
// waits on GitHub for one call budget at most.
func TestSlowGitHubStillStopsTheLineAndTellsTheWebhook(t *testing.T) {
	t.Parallel()
	f := githubfake.Start(t, githubfake.Options{Owner: "octo-org", Repo: "shop", Token: token})
	f.AddCommit(shaGood, "Search: faster facets")
	for i := 1; i <= 10; i++ {
		merge := fmt.Sprintf("%02d%038x", i, i)
		if i == 10 {
			merge = shaNew
		}
		f.AddPull(githubfake.PullRequest{Number: 100 + i, Title: fmt.Sprintf("Change %d", i), Author: "dev" + strconv.Itoa(i), Merged: true, MergeCommitSHA: merge,
			Commits: []githubfake.Commit{{SHA: fmt.Sprintf("%02d%038x", 50+i, i), Message: "change"}}})
	}
	seedOurs(f, "production", "deploy", shaGood, nil, "in_progress", "success")
	for _, p := range []string{"issues", "commits", "compare", "labels", "pulls"} {
		f.Inject(githubfake.Fault{PathPrefix: "/repos/octo-org/shop/" + p, Delay: time.Second})
	}
	h := newHook(t)
	svc, url := service(t, map[string]testservice.Behaviour{shaNew: {FailRate: 1}}, shaGood)
	res := newActionRun(t, "push", fast(url, h.inputs(map[string]string{"startup-timeout": "0s"}))).useGitHub(f).exec()
	if res.code != 1 || res.outputs["verdict"] != "rolled-back" || svc.Current() != shaGood {
		t.Fatalf("exit %d, verdict %s, service runs %s\n%s", res.code, res.outputs["verdict"], svc.Current(), res.log)
	}
	if got := h.kinds(); got != "regressed → rolled-back" {
		t.Errorf("the webhook heard %q, want regressed → rolled-back\n%s", got, res.log)
	}
	if is := f.Issues(); len(is) != 1 || is[0].State != "open" {
		t.Errorf("tracking issues %+v, want one open\n%s", is, res.log)
	}
}

// What immune made is found again by what only immune can claim, and
// never made twice: the answers to the POSTs that open the tracking issue
// and comment on #12 are lost after GitHub acted, yet there is one of
// each; a comment someone else wrote with immune's marker is left as it
// is; a human who removes the issue's label and writes notes above it does
// not make the re-run open a second issue, and the notes stay.
func TestTellOnceAndOnlyOwnWhatImmuneMade(t *testing.T) {
	t.Parallel()
	f := pushOfThree(t, githubfake.Options{})
	marker := `<!-- immune:regression environment="production" sha=` + shaNew + ` -->`
	theirs := f.AddComment(githubfake.IssueComment{Number: 12, Body: marker + "\nnot immune's", Author: "mallory"})
	f.Inject(githubfake.Fault{Method: "POST", Path: "/repos/octo-org/shop/issues", Times: 1, Status: 502, AfterServing: true})
	f.Inject(githubfake.Fault{Method: "POST", Path: "/repos/octo-org/shop/issues/12/comments", Times: 1, Drop: true, AfterServing: true})
	svc, url := service(t, map[string]testservice.Behaviour{shaNew: {FailRate: 1}}, shaGood)
	in := map[string]string{"startup-timeout": "0s"}

	res := newActionRun(t, "push", fast(url, in)).useGitHub(f).exec()
	if res.code != 1 || res.outputs["verdict"] != "rolled-back" || svc.Current() != shaGood {
		t.Fatalf("exit %d, verdict %s, service runs %s\n%s", res.code, res.outputs["verdict"], svc.Current(), res.log)
	}
	issues := f.Issues()
	if len(issues) != 1 {
		t.Fatalf("%d tracking issues after a lost answer, want 1\n%s", len(issues), res.log)
	}
	own := func() []githubfake.IssueComment {
		var out []githubfake.IssueComment
		for _, c := range ours(f, 12) {
			if c.Author == "github-actions[bot]" {
				out = append(out, c)
			}
		}
		return out
	}
	if len(own()) != 1 || f.Comments(12)[1].Body != theirs.Body {
		t.Fatalf("comments on #12 after a lost answer: %+v", f.Comments(12))
	}
	if !strings.Contains(res.log, "but GitHub had made it") {
		t.Errorf("the log does not say the lost creates were found:\n%s", res.log)
	}

	// A human removes the label and writes notes above immune's text.
	f.UpdateIssue(issues[0].Number, func(is *githubfake.Issue) {
		is.Labels = nil
		is.Body = "Triage: @oncall is on it.\n\n" + is.Body
	})
	rerun := newActionRun(t, "push", fast(url, in)).useGitHub(f)
	rerun.env["GITHUB_RUN_ATTEMPT"] = "2"
	if res = rerun.exec(); res.code != 1 {
		t.Fatalf("re-run: exit %d\n%s", res.code, res.log)
	}
	issues = f.Issues()
	if len(issues) != 1 || !strings.HasPrefix(issues[0].Body, "Triage: @oncall is on it.\n\n<!-- immune:stopped") || len(f.Comments(issues[0].Number)) != 1 {
		t.Errorf("re-run: %d issues; body %.80q; %d comments on the issue", len(issues), issues[0].Body, len(f.Comments(issues[0].Number)))
	}
	if len(own()) != 1 || f.Comments(12)[1].Body != theirs.Body {
		t.Errorf("re-run: comments on #12: %+v", f.Comments(12))
	}
}

// An account without push access opens the tracking issue without its
// label (GitHub drops it silently): the run says so, and the next stop
// finds the issue all the same.
func TestTrackingIssueWhoseLabelGitHubDropped(t *testing.T) {
	t.Parallel()
	f := pushOfThree(t, githubfake.Options{NoPushAccess: true})
	svc, url := service(t, map[string]testservice.Behaviour{shaNew: {FailRate: 1}}, shaGood)
	in := map[string]string{"startup-timeout": "0s"}
	res := newActionRun(t, "push", fast(url, in)).useGitHub(f).exec()
	if res.code != 1 || svc.Current() != shaGood || len(f.Issues()) != 1 || len(f.Issues()[0].Labels) != 0 {
		t.Fatalf("exit %d, %d issues %+v\n%s", res.code, len(f.Issues()), f.Issues(), res.log)
	}
	if !strings.Contains(res.log, "GitHub dropped the label") || !strings.Contains(res.summary, "GitHub dropped the label") {
		t.Errorf("the run does not say the label was dropped:\n%s", res.log)
	}
	rerun := newActionRun(t, "push", fast(url, in)).useGitHub(f)
	rerun.env["GITHUB_RUN_ATTEMPT"] = "2"
	if res = rerun.exec(); res.code != 1 || len(f.Issues()) != 1 {
		t.Errorf("re-run: exit %d, %d issues", res.code, len(f.Issues()))
	}
}
