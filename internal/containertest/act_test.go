//go:build containertest

package containertest

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"time"
)

// runAct runs testdata/workflows/act-deploy.yml through act: a workflow whose
// steps say `uses: ./` on a checkout of the release commit, so act reads the
// release's action.yml, pulls the image it names by digest from the local
// registry (as the runner does for `uses: immune-cd/immune@v1.2.3`), and runs
// it twice, a healthy deploy and a crash that is rolled back; a later step
// checks the outputs. What act needs on this machine:
//   - -P ubuntu-latest=-self-hosted: jobs run on the host (no job container
//     image can be pulled);
//   - DOCKER_HOST=unix://<socket of `podman system service`>: act pulls and
//     runs the action's image through the Docker API, which podman serves
//     (here with the local registry marked insecure: it speaks plain HTTP);
//   - a repository with a commit: act reads HEAD for GITHUB_SHA. The project's
//     tree with the release's action.yml is copied (without .git and
//     .ci/cache) into a folder that gets a throwaway history;
//   - a first step that copies that repository into act's workspace: on a
//     self-hosted platform act checks nothing out, and `uses: ./` is resolved
//     in the workspace (IMMUNE_SRC says where from);
//   - --container-options "-v <act cache dir>:<same path>": act hands the
//     action's container GITHUB_OUTPUT and the other file-command paths as host
//     paths under its cache folder;
//   - --container-options "--network host": otherwise act starts the action's
//     container on the default bridge network, where 127.0.0.1 is the
//     container itself and the test service is out of reach (on GitHub the job's
//     services: or the runner's address would be used).
func (l *lab) runAct(act string, reg *registry, releaseActionYML, pulledRef string) {
	l.t.Logf("act: %s", l.must(act, "--version"))
	sock := filepath.Join(l.work, "podman.sock")
	logf, err := os.Create(filepath.Join(l.work, "podman-service.log"))
	if err != nil {
		l.t.Fatal(err)
	}
	registries := filepath.Join(l.work, "registries-act.conf")
	l.writeFile(registries, fmt.Sprintf(`unqualified-search-registries = ["docker.io"]
short-name-mode = "permissive"

[[registry]]
location = %q
insecure = true
`, reg.Host))
	service := exec.Command("podman", "system", "service", "--time=0", "unix://"+sock)
	service.Env, service.Stdout, service.Stderr = append(append([]string{}, l.env...), "CONTAINERS_REGISTRIES_CONF="+registries), logf, logf
	if err := service.Start(); err != nil {
		l.t.Fatal(err)
	}
	defer func() {
		service.Process.Kill()
		service.Wait()
		logf.Close()
	}()
	client := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", sock)
	}}}
	for deadline := time.Now().Add(20 * time.Second); ; {
		resp, err := client.Get("http://podman/_ping")
		if err == nil {
			resp.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			data, _ := os.ReadFile(logf.Name())
			l.t.Fatalf("podman system service does not answer on %s: %v\n%s", sock, err, data)
		}
		time.Sleep(100 * time.Millisecond)
	}

	src := filepath.Join(l.work, "act-repo")
	if err := os.MkdirAll(src, 0o755); err != nil {
		l.t.Fatal(err)
	}
	l.must("bash", "-c", `tar -C "$1" --exclude=./.git --exclude=./.ci/cache -cf - . | tar -C "$2" -xf -`, "copy", l.root, src)
	release, err := os.ReadFile(releaseActionYML)
	if err != nil {
		l.t.Fatal(err)
	}
	l.writeFile(filepath.Join(src, "action.yml"), string(release))
	l.must("rm", "-f", filepath.Join(src, "Dockerfile")) // nothing to build: the release's action.yml names its image
	id := []string{"-c", "user.name=container-test", "-c", "user.email=container-test@localhost"}
	l.must("git", "-C", src, "init", "-q", "-b", "main")
	l.must("git", "-C", src, "add", "-A")
	l.must("git", append(append([]string{"-C", src}, id...), "commit", "-q", "-m", "act test tree: the release commit")...)
	sha := l.must("git", "-C", src, "rev-parse", "HEAD")
	event := filepath.Join(l.work, "act-event.json")
	l.writeFile(event, fmt.Sprintf(`{"ref": "refs/heads/main", "before": %q, "after": %q,
 "repository": {"name": "immune", "full_name": "immune-cd/immune", "owner": {"login": "immune-cd"}, "default_branch": "main"},
 "head_commit": {"id": %q, "message": "act test tree: the release commit"}}
`, goodSHA, sha, sha))
	testservice := filepath.Join(l.work, "testservice")
	l.must("go", "build", "-o", testservice, "./internal/testkit/testservice/cmd/testservice")
	xdg := filepath.Join(l.work, "xdg-cache")
	if err := os.MkdirAll(filepath.Join(xdg, "act"), 0o755); err != nil {
		l.t.Fatal(err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	cmd := l.command(ctx, []string{"DOCKER_HOST=unix://" + sock, "XDG_CACHE_HOME=" + xdg}, act,
		"push", "-W", "testdata/workflows/act-deploy.yml", "-e", event,
		"-P", "ubuntu-latest=-self-hosted",
		"--container-options", "--network host -v "+filepath.Join(xdg, "act")+":"+filepath.Join(xdg, "act"),
		"--env", "IMMUNE_SRC="+src, "--env", "IMMUNE_TESTSERVICE="+testservice,
		"--env", "IMMUNE_GOOD_SHA="+goodSHA, "--env", "IMMUNE_BAD_SHA="+badSHA)
	cmd.Dir = src
	start := time.Now()
	out, err := cmd.CombinedOutput()
	code := 0
	if exit, ok := err.(*exec.ExitError); ok {
		code = exit.ExitCode()
	} else if err != nil {
		l.t.Fatalf("act: %v", err)
	}
	// act prints a line per line of a step's script; keep the rest.
	noise := regexp.MustCompile(`^\s*\[.*\]\s+\|\s+[·✓✗ ]*$`)
	var kept []string
	for _, line := range strings.Split(string(out), "\n") {
		if !noise.MatchString(line) {
			kept = append(kept, line)
		}
	}
	l.t.Logf("act exit code %d after %s\n%s", code, seconds(time.Since(start)), indent(tail(strings.Join(kept, "\n"), 120)))
	l.fact("of which the act run", seconds(time.Since(start)))
	l.check("act run exit code", code, 0)
	l.verify("act: a later step saw the expected outputs", strings.Contains(string(out), "ACT-CHECK: all outputs as expected"))
	l.verify("act: the action ran the release's image (immune "+releaseTag+")", strings.Contains(string(out), "immune "+releaseTag+": deploying"))
	// act pulled it into the test's storage under this run's registry address: it goes with the registry.
	l.run(l.t.Context(), "podman", "rmi", "--force", pulledRef)
}
