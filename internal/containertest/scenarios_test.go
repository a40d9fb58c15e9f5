//go:build containertest

package containertest

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/immune-cd/immune/internal/testkit/githubfake"
	"github.com/immune-cd/immune/internal/testkit/testservice"
)

const token = "ghs_containerTestDummyToken0000000000000"

// scenarios runs the image as the runner does, in the ways users meet it.
func (l *lab) scenarios(image string) {
	actionYML := filepath.Join(l.root, "action.yml")

	l.timed("scenario (a) healthy, recorded in GitHub", func() {
		svc, url := l.service(nil, goodSHA)
		gh := githubfake.Start(l.t, githubfake.Options{Owner: "immune-cd", Repo: "shop", Token: token})
		gh.AddCommit(goodSHA, "Search: faster facets")
		gh.AddCommit(newSHA, "Checkout: cache the tax table")
		res := l.runAction(actionRun{Name: "healthy", Image: image, ActionYML: actionYML, With: shortInputs(url), Token: token,
			Env:   map[string]string{"GITHUB_SHA": newSHA, "GITHUB_API_URL": gh.URL(), "GITHUB_GRAPHQL_URL": gh.URL() + "/graphql"},
			Event: pushEvent(goodSHA, newSHA)})
		l.check("(a) exit code", res.Code, 0)
		l.check("(a) output verdict", res.Outputs["verdict"], "healthy")
		l.check("(a) output rolled-back", res.Outputs["rolled-back"], "false")
		l.check("(a) output sha", res.Outputs["sha"], newSHA)
		l.check("(a) output previous-sha (push event's before)", res.Outputs["previous-sha"], goodSHA)
		l.check("(a) service runs", svc.Current(), newSHA)
		l.verify("(a) job summary written", res.Summary != "")
		l.verify("(a) state file written in the workspace", fileHas(filepath.Join(res.Workspace, ".immune", "state.json")))
		l.verify("(a) report written in the workspace", fileHas(filepath.Join(res.Workspace, ".immune", "report.json")))
		l.check("(a) GitHub deployments created", gh.CallCount("POST", "/repos/immune-cd/shop/deployments"), 1)
		l.check("(a) output deployment-id", res.Outputs["deployment-id"] != "", true)
		l.verify("(a) commit status set", gh.CallCount("POST", "/repos/immune-cd/shop/statuses/"+newSHA) >= 2)
		// The runner reads ::add-mask:: and hides the value; anywhere else the token is a leak.
		leaks := []string{}
		for _, line := range strings.Split(res.Stdout+res.Stderr, "\n") {
			if strings.Contains(line, "ghs_containerTestDummyToken") && line != "::add-mask::"+token {
				leaks = append(leaks, line)
			}
		}
		for name, text := range map[string]string{"summary": res.Summary, "outputs": fmt.Sprint(res.Outputs)} {
			if strings.Contains(text, "ghs_containerTestDummyToken") {
				leaks = append(leaks, name)
			}
		}
		l.verify("(a) the token appears nowhere but in ::add-mask::", len(leaks) == 0, leaks)
	})

	l.timed("scenario (b) crash + rollback", func() {
		svc, url := l.service(map[string]testservice.Behaviour{badSHA: {FailRate: 1, FailStatus: 503}}, goodSHA)
		// No token (github-token: ''), no GitHub API: the state file and the push event are all it has.
		res := l.runAction(actionRun{Name: "crash", Image: image, ActionYML: actionYML, With: shortInputs(url),
			Env: map[string]string{"GITHUB_SHA": badSHA}, Event: pushEvent(goodSHA, badSHA)})
		l.check("(b) exit code", res.Code, 1)
		l.check("(b) output verdict", res.Outputs["verdict"], "rolled-back")
		l.check("(b) output rolled-back", res.Outputs["rolled-back"], "true")
		l.check("(b) output sha", res.Outputs["sha"], badSHA)
		l.check("(b) output previous-sha (push event's before)", res.Outputs["previous-sha"], goodSHA)
		l.check("(b) service runs the rollback target", svc.Current(), goodSHA)
		l.verify("(b) job summary written", res.Summary != "")
	})

	l.timed("scenario (c) rollback fails too", func() {
		_, url := l.service(map[string]testservice.Behaviour{badSHA: {FailRate: 1, FailStatus: 503}, goodSHA: {FailRate: 1, FailStatus: 502}}, goodSHA)
		res := l.runAction(actionRun{Name: "rollback-fails", Image: image, ActionYML: actionYML, With: shortInputs(url),
			Env: map[string]string{"GITHUB_SHA": badSHA}, Event: pushEvent(goodSHA, badSHA)})
		l.check("(c) exit code", res.Code, 1)
		l.check("(c) output verdict", res.Outputs["verdict"], "rollback-failed")
		l.check("(c) output rolled-back", res.Outputs["rolled-back"], "true")
		l.check("(c) output previous-sha", res.Outputs["previous-sha"], goodSHA)
	})

	l.timed("scenario (d) uses: docker://", func() {
		// A step with uses: docker://IMAGE has no action.yml, so no defaults: inputs from with: only.
		_, url := l.service(nil, goodSHA)
		res := l.runAction(actionRun{Name: "docker-uses", Image: image, With: shortInputs(url),
			Env: map[string]string{"GITHUB_SHA": newSHA}, Event: pushEvent(goodSHA, newSHA)})
		l.check("(d) exit code", res.Code, 0)
		l.check("(d) output verdict", res.Outputs["verdict"], "healthy")
		l.check("(d) output previous-sha", res.Outputs["previous-sha"], goodSHA)
	})

	l.timed("scenario (e) invalid input", func() {
		svc, url := l.service(nil, goodSHA)
		res := l.runAction(actionRun{Name: "bad-input", Image: image, ActionYML: actionYML, With: with(shortInputs(url), "interval", "soon"),
			Env: map[string]string{"GITHUB_SHA": newSHA}, Event: pushEvent(goodSHA, newSHA)})
		l.check("(e) exit code", res.Code, 2)
		l.check("(e) nothing deployed", len(svc.Deploys()), 0)
		l.verify("(e) the log names the input", strings.Contains(res.Stdout, "interval"))
	})

	l.timed("scenario (f) git in a workspace of another user", func() {
		l.scenarioGitWorkspace(image, actionYML)
	})
}

// scenarioGitWorkspace: the runner mounts a workspace that its own user
// (uid 1001 on hosted runners) checked out, and the container runs as root:
// git refuses such a repository ("detected dubious ownership",
// actions/runner#2033) unless the image trusts it. A deploy command that
// reads the checkout must work.
func (l *lab) scenarioGitWorkspace(image, actionYML string) {
	ws := filepath.Join(l.work, "git-workspace", "workspace")
	l.writeFile(filepath.Join(ws, "deploy.sh"), "#!/bin/sh\necho deploying\n")
	id := []string{"-c", "user.name=Runner", "-c", "user.email=runner@localhost"}
	l.must("git", "-C", ws, "init", "-q", "-b", "main")
	l.must("git", "-C", ws, "add", "-A")
	l.must("git", append(append([]string{"-C", ws}, id...), "commit", "-q", "-m", "The checked-out commit")...)
	head := l.must("git", "-C", ws, "rev-parse", "HEAD")
	l.must("chown", "-R", "1001:1001", ws)

	// Without the image's system-wide safe.directory, git refuses: the workspace really is foreign to root.
	out, err := l.run(l.t.Context(), "podman", "run", "--rm", "--entrypoint", "git", "-e", "GIT_CONFIG_NOSYSTEM=1",
		"-v", ws+":/github/workspace", image, "-C", "/github/workspace", "log", "-1")
	l.verify("(f) control: without the image's git config, git refuses the workspace", err != nil && strings.Contains(out, "dubious ownership"), out)

	svc, url := l.service(nil, goodSHA)
	cmd := `head=$(git -C "$GITHUB_WORKSPACE" log -1 --format=%H) && test "$head" = ` + head + ` && echo "workspace at $head" && ` + deployCommand(url)
	res := l.runAction(actionRun{Name: "git-workspace", Image: image, ActionYML: actionYML, Workspace: ws,
		With: with(shortInputs(url), "deploy-command", cmd), Env: map[string]string{"GITHUB_SHA": newSHA}, Event: pushEvent(goodSHA, newSHA)})
	l.check("(f) exit code", res.Code, 0)
	l.check("(f) output verdict", res.Outputs["verdict"], "healthy")
	l.verify("(f) the deploy command read the checkout with git", strings.Contains(res.Stdout, "workspace at "+head), "no 'workspace at "+head+"' in the log")
	l.check("(f) service runs", svc.Current(), newSHA)
}

func fileHas(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Size() > 0
}
