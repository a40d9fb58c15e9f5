package e2e

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/immune-cd/immune/internal/testkit/testservice"
)

// cliRun runs the binary as a CLI outside GitHub Actions: no INPUT_* and no
// GITHUB_* variables.
func cliRun(t *testing.T, dir string, args ...string) (int, string) {
	t.Helper()
	cmd := exec.Command(binary, args...)
	cmd.Dir = dir
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir}
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	code := exitCode(t, cmd.Run())
	return code, out.String()
}

func TestCLI(t *testing.T) {
	t.Parallel()
	svc, url := service(t, map[string]testservice.Behaviour{shaNew: {FailRate: 1}}, "")
	dir := t.TempDir()
	common := []string{"--health-url", url + "/health", "--deploy-command", deployVia(url), "--interval=100ms", "--duration=1s", "--startup-timeout=0s", "--rollback-duration=500ms"}

	code, out := cliRun(t, dir, append([]string{"deploy", "--sha", shaGood}, common...)...)
	if code != 0 || !strings.Contains(out, "Verdict: healthy") || strings.Contains(out, "::") {
		t.Fatalf("first deploy: exit %d, want 0 with plain output\n%s", code, out)
	}
	code, out = cliRun(t, dir, append([]string{"deploy", "--sha", shaNew}, common...)...)
	if code != 1 || !strings.Contains(out, "Verdict: rolled-back") || !strings.Contains(out, "(from the state file)") {
		t.Fatalf("second deploy: exit %d, want 1, rolled back to the state file's commit\n%s", code, out)
	}
	if svc.Current() != shaGood {
		t.Errorf("service runs %s, want %s", svc.Current(), shaGood)
	}
	if _, err := os.Stat(filepath.Join(dir, ".immune", "report.json")); err != nil {
		t.Errorf("no report: %v", err)
	}

	code, out = cliRun(t, dir, "watch", "--sha", shaGood, "--health-url", url+"/health", "--interval=100ms", "--duration=500ms", "--startup-timeout=200ms")
	if code != 0 || !strings.Contains(out, "Verdict: healthy") {
		t.Errorf("watch: exit %d\n%s", code, out)
	}
	// Without --sha and without expect-version, watch judges whatever answers.
	code, out = cliRun(t, dir, "watch", "--health-url", url+"/health", "--interval=100ms", "--duration=500ms", "--startup-timeout=200ms")
	if code != 0 || !strings.Contains(out, "Verdict: healthy — what runs is healthy on production") {
		t.Errorf("watch without --sha: exit %d\n%s", code, out)
	}
	code, out = cliRun(t, dir, "watch", "--health-url", url+"/health", "--expect-version=header:X-Version", "--duration=500ms")
	if code != 2 || !strings.Contains(out, "--sha: --expect-version needs the version to expect: pass --sha") {
		t.Errorf("watch for a version without --sha: exit %d, want 2\n%s", code, out)
	}
}

// TestCLIFirstMinute: what a new user types first works with no other
// flag: the interval and the startup grace follow --duration, and the
// report has no empty field.
func TestCLIFirstMinute(t *testing.T) {
	t.Parallel()
	_, url := service(t, map[string]testservice.Behaviour{}, shaGood)
	code, out := cliRun(t, t.TempDir(), "watch", "--health-url", url+"/health", "--duration", "5s")
	if code != 0 || !strings.Contains(out, "every 500ms for 5s (startup grace 2.5s)") || !strings.Contains(out, "Verdict: healthy — what runs is healthy on production") ||
		!strings.Contains(out, "watched   what runs: 10 probes, 0 failed") {
		t.Errorf("immune watch --health-url URL --duration 5s: exit %d\n%s", code, out)
	}
	for _, empty := range []string{"error:  ", "Verdict:  ", " : ", "watched   :"} {
		if strings.Contains(out, empty) {
			t.Errorf("an empty field (%q) in\n%s", empty, out)
		}
	}
}

func TestCLIErrors(t *testing.T) {
	t.Parallel()
	tests := []struct {
		args []string
		code int
		want string
	}{
		{[]string{"deploy", "--interval=soon", "--sha=abc1234"}, 2, `immune: --interval: "soon" is not a duration`},
		{[]string{"deploy", "--no-such-flag"}, 2, "immune deploy: unknown flag --no-such-flag\nRun 'immune deploy -h' for its flags.\n"},
		{[]string{"watch", "--helth-url=http://127.0.0.1:1/"}, 2, "immune watch: unknown flag --helth-url; did you mean --health-url?\n"},
		{[]string{"watch", "--duration"}, 2, "immune watch: --duration needs a value: --duration=VALUE\n"},
		{[]string{"watch", "--health-url=http://127.0.0.1:1/", "--duration=5s", "--interval=5s"}, 2,
			"immune: --interval: 5s is not shorter than --duration (5s): the watch would judge a single probe"},
		{[]string{"watch", "--health-url=http://127.0.0.1:1/", "--duration=5s", "--interval=6s"}, 2, "immune: --interval: 6s is not shorter than --duration (5s)"},
		{[]string{"wacth"}, 2, "immune: unknown command \"wacth\"; did you mean watch?\n"},
		// CLI words for CLI users: nothing to roll back to says which flag to pass.
		{[]string{"rollback", "--health-url=http://127.0.0.1:1/", "--deploy-command=true", "--duration=2s"}, 2,
			"no earlier healthy deployment of production to roll back to; pass --sha"},
		{[]string{"deploy", "extra"}, 2, `unexpected argument "extra"`},
		{[]string{"ship"}, 2, `unknown command "ship"`},
		{[]string{"version"}, 0, "immune "},
		{[]string{"help"}, 0, "immune demo"},
		{[]string{"deploy", "-h"}, 0, "-health-url"},
		{[]string{"demo", "flight"}, 2, `immune demo: unknown act "flight"`},
		{[]string{"deploy", "-h"}, 0, "-canary-command"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			t.Parallel()
			code, out := cliRun(t, t.TempDir(), tt.args...)
			if code != tt.code || !strings.Contains(out, tt.want) {
				t.Errorf("exit %d, want %d with %q\n%s", code, tt.code, tt.want, out)
			}
			// A mistake is answered in a few lines, not with every flag.
			if lines := strings.Count(out, "\n"); code == 2 && lines > 6 {
				t.Errorf("%d lines for a mistake, want at most 6:\n%s", lines, out)
			}
		})
	}
}

// TestVersionStamped builds the binary as a release does, with the tag
// stamped in by the linker (the Dockerfile's VERSION build argument), and
// checks that `immune version` reports it; without the stamp it falls back
// to what the toolchain recorded.
func TestVersionStamped(t *testing.T) {
	t.Parallel()
	fallback := regexp.MustCompile(`^immune (devel(\+[0-9a-f]{12}(-dirty)?)?|v[0-9]+\.[0-9]+\.[0-9]+\S*)\n$`)
	if code, out := cliRun(t, t.TempDir(), "version"); code != 0 || !fallback.MatchString(out) {
		t.Errorf("unstamped immune version: exit %d, %q; want %s", code, out, fallback)
	}
	bin := filepath.Join(t.TempDir(), "immune")
	build := exec.Command("go", "build", "-trimpath", "-o", bin,
		"-ldflags", "-X github.com/immune-cd/immune/internal/version.stamped=v9.8.7-rc.1", repoRoot)
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	out, err := exec.Command(bin, "version").CombinedOutput()
	if err != nil || string(out) != "immune v9.8.7-rc.1\n" {
		t.Errorf("immune version = %q (%v), want %q", out, err, "immune v9.8.7-rc.1\n")
	}
}

// TestDemo runs `immune demo`, the README's first command: each run has
// a report of its own, the canary act says which mark is which, and the
// demo leaves nothing behind in TMPDIR.
func TestDemo(t *testing.T) {
	t.Parallel()
	dir, tmp := t.TempDir(), t.TempDir()
	cmd := exec.Command(binary, "demo")
	cmd.Dir = dir
	cmd.Env = []string{"PATH=" + os.Getenv("PATH"), "HOME=" + dir, "TMPDIR=" + tmp}
	outb, err := cmd.CombinedOutput()
	out := string(outb)
	if err != nil {
		t.Fatalf("demo: %v\n%s", err, out)
	}
	reports := regexp.MustCompile(`(?m)^Report: (.*)$`).FindAllStringSubmatch(out, -1)
	seen := map[string]bool{}
	for _, r := range reports {
		seen[r[1]] = true
	}
	if len(reports) != 4 || len(seen) != 4 {
		t.Errorf("%d reports, %d paths: want 4 runs, each with its own report\n%v", len(reports), len(seen), reports)
	}
	if left, _ := os.ReadDir(tmp); len(left) != 0 {
		t.Errorf("the demo left %d entries in TMPDIR: %v", len(left), left)
	}
	// The outage of the first canary is shared: it shows on each stable
	// instance (a failure in each of the control's three marks).
	for i := range 3 {
		mark := regexp.MustCompile(`canary .  control ` + strings.Repeat(".", i) + `✗`)
		if !mark.MatchString(out) {
			t.Errorf("no round where stable instance %d failed: the outage is not shared\n%s", i+1, out)
		}
	}
	for _, want := range []string{"━━ Deploy v1", "Verdict: healthy", "━━ Deploy v2", "Verdict: rolled-back", "the service now runs a1f3c9e",
		"━━ Deploy v2 (5c0ffee) with a canary", "promoted", "Verdict: rolled-back — 9badd0c regressed as a canary on production and the canary was removed",
		"the stable instances run 5c0ffee and never ran v3",
		"Each round below shows the canary's mark, then the control's", "failed: canary ", ", control ", "the demo leaves nothing behind"} {
		if !strings.Contains(out, want) {
			t.Errorf("demo output lacks %q\n%s", want, out)
		}
	}
}
