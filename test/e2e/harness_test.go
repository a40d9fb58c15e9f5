// Package e2e runs the built immune binary end to end, as GitHub runs it and as a
// user runs the CLI: real services on 127.0.0.1, real commands, a real
// Prometheus and the fake GitHub. One tier per scenario: what can be driven in
// process on a stepped clock is tested in its package instead.
package e2e

// This file runs the built binary the way GitHub's runner runs a container
// action: INPUT_* variables (hyphens kept) with action.yml's defaults
// applied, GITHUB_OUTPUT and GITHUB_STEP_SUMMARY files, a real event payload
// at GITHUB_EVENT_PATH, and GITHUB_API_URL pointing at a fake GitHub.

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/immune-cd/immune/internal/testkit/actionyml"
	"github.com/immune-cd/immune/internal/testkit/testservice"
)

// repoRoot is the module's root, where the binary is built from and
// action.yml and the event payloads are read.
const repoRoot = "../.."

// binary is the path of the immune binary built once for all tests.
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "immune-bin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "immune")
	build := exec.Command("go", "build", "-o", binary, repoRoot)
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build:", err)
		os.Exit(1)
	}
	code := m.Run()
	prom.Stop()
	if week.p != nil {
		week.p.Stop()
	}
	os.RemoveAll(dir)
	os.Exit(code)
}

// actionDefaults reads action.yml's input defaults, as the runner applies them.
func actionDefaults(t *testing.T) map[string]string {
	t.Helper()
	defaults, err := actionyml.Defaults(filepath.Join(repoRoot, "action.yml"))
	if err != nil {
		t.Fatal(err)
	}
	return defaults
}

// Commits used across the tests.
const (
	shaGood  = "9f2c1e7a3b4d5c6e7f8091a2b3c4d5e6f7081920" // the push event's before
	shaNew   = "4d8b3f2e1c0a9b8c7d6e5f4a3b2c1d0e9f8a7b6c" // the push event's after
	shaOlder = "1a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d"
	token    = "ghs_16C7e42F292c6912E7710c838347Ae178B4a"
)

// service starts the scripted service running current.
func service(t *testing.T, script map[string]testservice.Behaviour, current string) (*testservice.Service, string) {
	t.Helper()
	svc := testservice.New(script, current)
	srv := httptest.NewServer(svc)
	t.Cleanup(srv.Close)
	return svc, srv.URL
}

// deployVia is a deploy command that deploys through the service's admin
// endpoint, as a real deploy script would.
func deployVia(url string) string {
	return `curl -fsS -X POST "` + url + `/deploy?sha=$IMMUNE_SHA"`
}

// actionRun is one run of the binary as a container action.
type actionRun struct {
	t         *testing.T
	workspace string
	inputs    map[string]string
	env       map[string]string
	// job, when set, starts the job's own deployment (see asJob) and returns
	// what finishes it.
	job func() func(succeeded bool)
}

func newActionRun(t *testing.T, event string, inputs map[string]string) *actionRun {
	t.Helper()
	root := t.TempDir()
	r := &actionRun{t: t, workspace: filepath.Join(root, "workspace"), inputs: actionDefaults(t)}
	for _, dir := range []string{r.workspace, filepath.Join(root, "file_commands"), filepath.Join(root, "workflow")} {
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	// The runner evaluates ${{ github.token }}.
	r.inputs["github-token"] = token
	for k, v := range inputs {
		r.inputs[k] = v
	}
	eventPath := filepath.Join(root, "workflow", "event.json")
	if data, err := os.ReadFile(filepath.Join(repoRoot, "testdata", "events", event+".json")); err == nil {
		if err := os.WriteFile(eventPath, data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	r.env = map[string]string{
		"PATH":                    os.Getenv("PATH"),
		"HOME":                    root,
		"CI":                      "true",
		"GITHUB_ACTIONS":          "true",
		"GITHUB_EVENT_NAME":       event,
		"GITHUB_EVENT_PATH":       eventPath,
		"GITHUB_SHA":              shaNew,
		"GITHUB_REF":              "refs/heads/main",
		"GITHUB_REPOSITORY":       "octo-org/shop",
		"GITHUB_REPOSITORY_OWNER": "octo-org",
		"GITHUB_RUN_ID":           "7412345678",
		"GITHUB_RUN_NUMBER":       "42",
		"GITHUB_RUN_ATTEMPT":      "1",
		"GITHUB_ACTOR":            "monalisa",
		"GITHUB_WORKFLOW":         "deploy",
		"GITHUB_JOB":              "deploy",
		"GITHUB_SERVER_URL":       "https://github.com",
		"GITHUB_API_URL":          "http://127.0.0.1:1", // nothing listens: GitHub unreachable
		"GITHUB_WORKSPACE":        r.workspace,
		"GITHUB_OUTPUT":           filepath.Join(root, "file_commands", "set_output"),
		"GITHUB_STEP_SUMMARY":     filepath.Join(root, "file_commands", "step_summary"),
		"GITHUB_ENV":              filepath.Join(root, "file_commands", "set_env"),
		"GITHUB_PATH":             filepath.Join(root, "file_commands", "add_path"),
		"RUNNER_TEMP":             filepath.Join(root, "temp"),
	}
	return r
}

// result is what a run left behind.
type result struct {
	code    int
	log     string
	outputs map[string]string
	summary string
	report  map[string]any
	ws      string // the run's workspace
}

// command is the binary with the run's environment, as the runner starts it.
func (r *actionRun) command() *exec.Cmd {
	cmd := exec.Command(binary)
	cmd.Dir = r.workspace
	for k, v := range r.env {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	for k, v := range r.inputs {
		// GitHub upper-cases the name and keeps hyphens.
		cmd.Env = append(cmd.Env, "INPUT_"+strings.ToUpper(strings.ReplaceAll(k, " ", "_"))+"="+v)
	}
	return cmd
}

// exitCode is the exit code of a run of a command that ended with err; an
// error that is not an exit (it did not start) fails the test.
func exitCode(t *testing.T, err error) int {
	t.Helper()
	if exit, ok := err.(*exec.ExitError); ok {
		return exit.ExitCode()
	}
	if err != nil {
		t.Fatal(err)
	}
	return 0
}

func (r *actionRun) exec() result {
	r.t.Helper()
	cmd := r.command()
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	var finishJob func(bool)
	if r.job != nil {
		finishJob = r.job()
	}
	err := cmd.Run()
	res := result{log: out.String(), outputs: map[string]string{}, ws: r.workspace, code: exitCode(r.t, err)}
	if finishJob != nil {
		finishJob(res.code == 0)
	}
	res.outputs = parseOutputs(r.t, r.env["GITHUB_OUTPUT"])
	if data, err := os.ReadFile(r.env["GITHUB_STEP_SUMMARY"]); err == nil {
		res.summary = string(data)
	}
	if p := res.outputs["report"]; p != "" {
		if !filepath.IsAbs(p) {
			p = filepath.Join(r.workspace, p)
		}
		// A run whose report could not be written still names it.
		if data, err := os.ReadFile(p); err == nil {
			if err := json.Unmarshal(data, &res.report); err != nil {
				r.t.Fatalf("report is not JSON: %v", err)
			}
		}
	}
	if testing.Verbose() {
		r.t.Logf("exit %d\n%s", res.code, res.log)
	}
	return res
}

// parseOutputs reads a GITHUB_OUTPUT file: name=value lines and
// name<<DELIMITER blocks.
func parseOutputs(t *testing.T, path string) map[string]string {
	t.Helper()
	outputs := map[string]string{}
	f, err := os.Open(path)
	if os.IsNotExist(err) {
		return outputs
	}
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := sc.Text()
		if name, delim, ok := strings.Cut(line, "<<"); ok {
			var value []string
			for sc.Scan() && sc.Text() != delim {
				value = append(value, sc.Text())
			}
			outputs[name] = strings.Join(value, "\n")
		} else if name, value, ok := strings.Cut(line, "="); ok {
			outputs[name] = value
		}
	}
	return outputs
}

// cancelled is a run of the binary cancelled as the runner cancels a job.
type cancelled struct {
	code    int
	log     string
	took    time.Duration // from SIGTERM to the end of the process
	outputs map[string]string
}

// cancelWhen starts the binary, waits (at most 15 s) until ready, lets it go
// on for settle, sends SIGTERM and waits for it to end.
func (r *actionRun) cancelWhen(ready func() bool, settle time.Duration) cancelled {
	r.t.Helper()
	cmd := r.command()
	var out strings.Builder
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		r.t.Fatal(err)
	}
	deadline := time.Now().Add(15 * time.Second)
	for !ready() && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(settle)
	signalled := time.Now()
	if err := cmd.Process.Signal(syscall.SIGTERM); err != nil {
		r.t.Fatal(err)
	}
	err := cmd.Wait()
	return cancelled{log: out.String(), took: time.Since(signalled), outputs: parseOutputs(r.t, r.env["GITHUB_OUTPUT"]), code: exitCode(r.t, err)}
}
