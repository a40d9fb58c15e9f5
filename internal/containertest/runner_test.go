//go:build containertest

package containertest

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"github.com/immune-cd/immune/internal/testkit/actionyml"
	"github.com/immune-cd/immune/internal/testkit/testservice"
)

// Two commits that look real; the scenarios deploy them.
const (
	goodSHA = "1f0c2d3e4b5a69788796a5b4c3d2e1f00f1e2d3c"
	newSHA  = "9a8b7c6d5e4f30211203f4e5d6c7b8a99a8b7c6d"
	badSHA  = "c0ffee00badc0de0000000000000000000bad0a1"
)

// actionRun is one run of the image as GitHub's runner runs a container
// action:
//
//	docker run --workdir /github/workspace --rm -e INPUT_... -e GITHUB_... -v <home>:/github/home
//	  -v <workflow>:/github/workflow -v <file_commands>:/github/file_commands -v <workspace>:/github/workspace IMAGE
//
// with every input of action.yml that has a default (the runner applies them)
// overridden by the step's with:, named INPUT_<NAME> upper-cased with hyphens
// kept.
type actionRun struct {
	Name      string
	Image     string
	ActionYML string            // the action's metadata, for its defaults; "" for `uses: docker://IMAGE` (no defaults)
	With      map[string]string // the step's with:
	Token     string            // github.token, where a default says ${{ github.token }}
	Env       map[string]string // GITHUB_SHA and the like
	Event     string            // the event payload (GITHUB_EVENT_PATH)
	Workspace string            // a prepared workspace; "" makes one with a README
	Podman    []string          // global podman flags (another image storage)
}

// actionResult is what a run left.
type actionResult struct {
	Code      int
	Stdout    string
	Stderr    string
	Outputs   map[string]string
	Summary   string
	Workspace string
	Duration  time.Duration // podman run to exit
	FirstLine time.Duration // podman run to the action's first line of output
	First     string        // that line
}

func (l *lab) runAction(r actionRun) actionResult {
	l.t.Helper()
	base := filepath.Join(l.work, r.Name)
	res := actionResult{Workspace: r.Workspace}
	if res.Workspace == "" {
		res.Workspace = filepath.Join(base, "workspace")
		l.writeFile(filepath.Join(res.Workspace, "README.md"), "A checked-out repository.\n")
	}
	for _, d := range []string{"home", "workflow", "file_commands"} {
		if err := os.MkdirAll(filepath.Join(base, d), 0o755); err != nil {
			l.t.Fatal(err)
		}
	}
	l.writeFile(filepath.Join(base, "workflow", "event.json"), r.Event)
	files := map[string]string{}
	for _, f := range []string{"GITHUB_OUTPUT:set_output", "GITHUB_STEP_SUMMARY:step_summary", "GITHUB_ENV:set_env", "GITHUB_PATH:add_path", "GITHUB_STATE:save_state"} {
		name, file, _ := strings.Cut(f, ":")
		files[name] = file + "_" + r.Name
		l.writeFile(filepath.Join(base, "file_commands", files[name]), "")
	}

	inputs := map[string]string{}
	if r.ActionYML != "" {
		defaults, err := actionyml.Defaults(r.ActionYML)
		if err != nil {
			l.t.Fatal(err)
		}
		if len(defaults) < 10 {
			l.t.Fatalf("read only %d input defaults from %s", len(defaults), r.ActionYML)
		}
		for k, v := range defaults {
			switch {
			case v == "${{ github.token }}":
				v = r.Token
			case strings.Contains(v, "${{"):
				l.t.Fatalf("action.yml default of %s is an expression this test does not evaluate: %s", k, v)
			}
			inputs[k] = v
		}
	}
	for k, v := range r.With {
		inputs[k] = v
	}

	args := append(append([]string{}, r.Podman...), "run", "--rm", "--name", "immune-ct-"+r.Name,
		"--workdir", "/github/workspace", "--network", "host",
		"-v", filepath.Join(base, "home")+":/github/home", "-v", filepath.Join(base, "workflow")+":/github/workflow",
		"-v", filepath.Join(base, "file_commands")+":/github/file_commands", "-v", res.Workspace+":/github/workspace")
	names := make([]string, 0, len(inputs))
	for k := range inputs {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		// The runner's name: upper case, spaces to underscores, hyphens kept (INPUT_HEALTH-URL).
		args = append(args, "-e", "INPUT_"+strings.ReplaceAll(strings.ToUpper(k), " ", "_")+"="+inputs[k])
	}
	env := map[string]string{
		"HOME": "/github/home", "CI": "true", "GITHUB_ACTIONS": "true", "GITHUB_JOB": "deploy",
		"GITHUB_REF": "refs/heads/main", "GITHUB_REF_NAME": "main", "GITHUB_REF_TYPE": "branch",
		"GITHUB_REPOSITORY": "immune-cd/shop", "GITHUB_REPOSITORY_OWNER": "immune-cd",
		"GITHUB_RUN_ID": "4242", "GITHUB_RUN_NUMBER": "7", "GITHUB_RUN_ATTEMPT": "1",
		"GITHUB_ACTOR": "octocat", "GITHUB_WORKFLOW": "deploy", "GITHUB_ACTION": "__immune-cd_immune",
		"GITHUB_SERVER_URL": "https://github.com", "GITHUB_EVENT_NAME": "push",
		"GITHUB_EVENT_PATH": "/github/workflow/event.json", "GITHUB_WORKSPACE": "/github/workspace",
		"RUNNER_OS": "Linux", "RUNNER_ARCH": "X64", "RUNNER_NAME": "container-test", "RUNNER_TEMP": "/tmp",
		"RUNNER_ENVIRONMENT": "self-hosted",
	}
	for name, file := range files {
		env[name] = "/github/file_commands/" + file
	}
	for k, v := range r.Env {
		env[k] = v
	}
	names = names[:0]
	for k := range env {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		args = append(args, "-e", k+"="+env[k])
	}
	args = append(args, r.Image)

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cmd := l.command(ctx, nil, "podman", args...)
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		l.t.Fatal(err)
	}
	var stderr, out bytes.Buffer
	cmd.Stderr = &stderr
	start := time.Now()
	if err := cmd.Start(); err != nil {
		l.t.Fatal(err)
	}
	res.FirstLine = -1
	sc := bufio.NewScanner(stdout)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if res.FirstLine < 0 {
			res.FirstLine, res.First = time.Since(start), sc.Text()
		}
		out.WriteString(sc.Text() + "\n")
	}
	err = cmd.Wait()
	res.Duration = time.Since(start)
	if exit, ok := err.(*exec.ExitError); ok {
		res.Code = exit.ExitCode()
	} else if err != nil {
		l.t.Fatalf("podman run: %v\n%s", err, stderr.String())
	}
	res.Stdout, res.Stderr = out.String(), stderr.String()
	l.t.Logf("%s: container exit code %d after %s (first line after %s)\n%s%s", r.Name, res.Code, seconds(res.Duration), seconds(res.FirstLine),
		indent(res.Stdout), indent(res.Stderr))
	data, _ := os.ReadFile(filepath.Join(base, "file_commands", files["GITHUB_OUTPUT"]))
	if res.Outputs, err = ParseOutputs(string(data)); err != nil {
		l.t.Errorf("%s: GITHUB_OUTPUT: %v", r.Name, err)
	}
	data, _ = os.ReadFile(filepath.Join(base, "file_commands", files["GITHUB_STEP_SUMMARY"]))
	res.Summary = string(data)
	return res
}

func indent(s string) string {
	if s == "" {
		return ""
	}
	return "  | " + strings.ReplaceAll(strings.TrimRight(s, "\n"), "\n", "\n  | ") + "\n"
}

// pushEvent is a push event as GitHub writes it.
func pushEvent(before, after string) string {
	return fmt.Sprintf(`{
  "ref": "refs/heads/main",
  "before": %[1]q,
  "after": %[2]q,
  "created": false,
  "deleted": false,
  "forced": false,
  "base_ref": null,
  "compare": "https://github.com/immune-cd/shop/compare/%[3]s...%[4]s",
  "commits": [{"id": %[2]q, "message": "Change the shop", "timestamp": "2026-11-25T21:00:00Z",
    "author": {"name": "Octo Cat", "email": "octocat@example.com", "username": "octocat"}, "distinct": true}],
  "head_commit": {"id": %[2]q, "message": "Change the shop", "timestamp": "2026-11-25T21:00:00Z"},
  "repository": {"id": 1296269, "name": "shop", "full_name": "immune-cd/shop", "private": false,
    "owner": {"login": "immune-cd", "id": 1}, "default_branch": "main", "html_url": "https://github.com/immune-cd/shop"},
  "pusher": {"name": "octocat", "email": "octocat@example.com"},
  "sender": {"login": "octocat", "id": 583231, "type": "User"}
}
`, before, after, before[:12], after[:12])
}

// service starts the scripted test service on 127.0.0.1, reachable from a
// container on the host's network.
func (l *lab) service(script map[string]testservice.Behaviour, current string) (*testservice.Service, string) {
	svc := testservice.New(script, current)
	srv := httptest.NewServer(svc)
	l.t.Cleanup(srv.Close)
	return svc, srv.URL
}

// deployCommand runs inside the image: it uses the image's curl and jq, over
// the host's network. (No pipe from curl into jq: /bin/sh has no pipefail, so
// a failed curl would pass.)
func deployCommand(url string) string {
	return `out=$(curl -fsS -X POST "` + url + `/deploy?sha=$IMMUNE_SHA") && echo "$out" | jq -e --arg s "$IMMUNE_SHA" '.deployed == $s' >/dev/null && echo "deployed $IMMUNE_SHA ($IMMUNE_REASON) to $IMMUNE_ENVIRONMENT"`
}

// shortInputs are with: values that make a watch take seconds.
func shortInputs(url string) map[string]string {
	return map[string]string{
		"health-url": url + "/health", "deploy-command": deployCommand(url),
		"interval": "100ms", "timeout": "100ms", "duration": "2s", "startup-timeout": "1s", "rollback-duration": "1s",
		"deploy-timeout": "30s", "expect-version": "header:X-Version",
	}
}

func with(m map[string]string, kv ...string) map[string]string {
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return m
}
