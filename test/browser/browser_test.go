// Package browser renders what people read as GitHub shows it: every golden
// Markdown file of internal/report, and the job summaries of real runs of the
// binary, through a GitHub-flavoured Markdown renderer and the pinned Mermaid
// versions (package.json: 11.17.2 and 10.9.8) in headless Chromium (Debian's).
// A diagram Mermaid cannot parse fails the test, and so does a chart that
// does not read: a clipped title, colliding or repeated x labels, too many
// columns, a bar for a healthy build's startup. The screenshots stay as PNG
// files a reviewer can open (see artifacts).
//
// It needs node, the npm packages (npm ci in this folder) and Chromium: with
// CI=true it fails without them, elsewhere it skips.
package browser

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/immune-cd/immune/internal/testkit/actionyml"
)

// repoRoot is the module's root.
const repoRoot = "../.."

// versions are the Mermaid packages of package.json, as render.mjs names
// them.
var versions = []string{"mermaid", "mermaid10"}

// artifacts is where the screenshots are kept: $IMMUNE_ARTIFACTS/browser,
// or .ci/artifacts/browser in the checkout.
func artifacts(t *testing.T) string {
	dir := os.Getenv("IMMUNE_ARTIFACTS")
	if dir == "" {
		dir = filepath.Join(repoRoot, ".ci", "artifacts")
	}
	dir, err := filepath.Abs(filepath.Join(dir, "browser"))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	return dir
}

// tools finds node, Chromium and the npm packages; without them the test
// fails in CI and skips elsewhere.
func tools(t *testing.T) (node, chromium string) {
	t.Helper()
	missing := func(what string) {
		if os.Getenv("CI") == "true" {
			t.Fatalf("%s: CI renders in a real browser, and .ci/run installs it", what)
		}
		t.Skipf("%s (CI fails without it; .ci/run installs it)", what)
	}
	node, err := exec.LookPath("node")
	if err != nil {
		missing("no node on PATH")
	}
	chromium = os.Getenv("CHROMIUM")
	if chromium == "" {
		chromium = "/usr/bin/chromium"
	}
	if _, err := os.Stat(chromium); err != nil {
		missing("no Chromium at " + chromium)
	}
	for _, v := range versions {
		if _, err := os.Stat(filepath.Join("node_modules", v, "dist", "mermaid.min.js")); err != nil {
			missing("no " + v + " in test/browser/node_modules (npm ci)")
		}
	}
	return node, chromium
}

// diagram is what render.mjs found of one diagram.
type diagram struct {
	Source       string   `json:"source"`
	OK           bool     `json:"ok"`
	Error        string   `json:"error"`
	Title        string   `json:"title"`
	TitleClipped bool     `json:"titleClipped"`
	XLabels      []string `json:"xLabels"`
	ShownLabels  []string `json:"shownLabels"`
	Overlaps     int      `json:"overlaps"`
	Bars         []int    `json:"bars"`
}

// page is what render.mjs found of one file.
type page struct {
	File       string    `json:"file"`
	Mermaid    string    `json:"mermaid"`
	PNG        string    `json:"png"`
	Diagrams   []diagram `json:"diagrams"`
	PageErrors []string  `json:"pageErrors"`
}

// render renders files with one Mermaid version and returns what it found.
func render(t *testing.T, node, chromium, out, version string, files []string) []page {
	t.Helper()
	args := append([]string{"render.mjs", "--out", out, "--mermaid", version, "--browser", chromium}, files...)
	cmd := exec.Command(node, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("node render.mjs (%s): %v\n%s", version, err, stderr.String())
	}
	var pages []page
	if err := json.Unmarshal(stdout.Bytes(), &pages); err != nil {
		t.Fatalf("render.mjs printed no JSON: %v\n%s", err, stdout.String())
	}
	if len(pages) != len(files) {
		t.Fatalf("render.mjs rendered %d of %d files", len(pages), len(files))
	}
	return pages
}

// check fails for what a reader could not read in a page.
func check(t *testing.T, p page) {
	t.Helper()
	name := filepath.Base(p.File) + " (Mermaid " + p.Mermaid + ")"
	for _, e := range p.PageErrors {
		t.Errorf("%s: the page threw: %s", name, e)
	}
	for i, d := range p.Diagrams {
		where := fmt.Sprintf("%s, diagram %d", name, i+1)
		if !d.OK {
			t.Errorf("%s: Mermaid could not parse it: %s\n%s", where, d.Error, d.Source)
			continue
		}
		if !strings.Contains(d.Source, "xychart-beta") {
			continue
		}
		if n := utf8.RuneCountInString(d.Title); n > 80 || d.TitleClipped {
			t.Errorf("%s: title %q (%d characters) clipped %v", where, d.Title, n, d.TitleClipped)
		}
		seen := map[string]bool{}
		for _, l := range d.XLabels {
			if seen[l] {
				t.Errorf("%s: x label %q twice: Mermaid draws both columns as one", where, l)
			}
			seen[l] = true
		}
		if len(d.XLabels) > 60 {
			t.Errorf("%s: %d columns, more than 60", where, len(d.XLabels))
		}
		if d.Overlaps > 0 {
			t.Errorf("%s: %d x labels overlap their neighbour: %q", where, d.Overlaps, d.ShownLabels)
		}
	}
}

// TestMarkdownRendersInChromium renders every golden Markdown file of
// internal/report and the job summaries of real runs with each pinned
// Mermaid, and keeps the screenshots.
func TestMarkdownRendersInChromium(t *testing.T) {
	node, chromium := tools(t)
	out := artifacts(t)
	files, err := filepath.Glob(filepath.Join(repoRoot, "internal", "report", "testdata", "*.md"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no golden Markdown files (%v)", err)
	}
	real := realSummaries(t, out)
	files = append(files, real.rollback, real.startup)
	// The checks must see what they look for: a diagram Mermaid cannot
	// parse, and a chart as immune drew it before (a long title, labels
	// repeated and colliding).
	bad := filepath.Join(t.TempDir(), "not-a-chart.md")
	old := filepath.Join(t.TempDir(), "old-chart.md")
	labels := `"deploy", "+5.0s", "+10.0s", "+15.0s", "+20.0s", "+25.0s", "+30.0s", "+35.0s", "+40.0s", "+45.0s", "+50.0s", "+55.0s", "+1m00s"`
	for path, md := range map[string]string{
		bad: "```mermaid\nxychart-beta\n  x-axis [\"a\", \"b\"\n  bar [1, 2]\n```\n",
		old: "```mermaid\nxychart-beta\n  title \"Slowest answer per round (line, ms) and failed probes (bars, full height = all failed)\"\n" +
			"  x-axis [" + labels + ", \"rollback\", " + labels[len(`"deploy", `):] + "]\n  y-axis \"ms\" 0 --> 500\n" +
			"  bar [" + strings.Repeat("500, ", 26) + "500]\n```\n",
	} {
		if err := os.WriteFile(path, []byte(md), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	files = append(files, bad, old)
	for _, v := range versions {
		pages := render(t, node, chromium, out, v, files)
		for _, p := range pages {
			switch p.File {
			case bad:
				if len(p.Diagrams) != 1 || p.Diagrams[0].OK || p.Diagrams[0].Error == "" {
					t.Errorf("a diagram that does not parse was not caught (Mermaid %s): %+v", p.Mermaid, p.Diagrams)
				}
				continue
			case old:
				if d := p.Diagrams; len(d) != 1 || !d[0].OK || !d[0].TitleClipped || d[0].Overlaps == 0 || len(d[0].XLabels) != 26 {
					t.Errorf("the old chart's clipped title and colliding labels were not caught (Mermaid %s): %+v", p.Mermaid, d)
				}
				continue
			case real.startup:
				checkStartup(t, p)
			}
			check(t, p)
		}
		t.Logf("%d files rendered with %s; screenshots in %s", len(pages), pages[0].Mermaid, filepath.Dir(pages[0].PNG))
	}
}

// checkStartup: the chart of a healthy deploy that answered 503 while it
// started draws no failure, and says what it left out.
func checkStartup(t *testing.T, p page) {
	t.Helper()
	var failures *diagram
	for i, d := range p.Diagrams {
		if strings.Contains(d.Title, "Failed probes") {
			failures = &p.Diagrams[i]
		}
	}
	if failures == nil {
		t.Fatalf("the startup run's summary has no failure chart: %+v", p.Diagrams)
	}
	for _, n := range failures.Bars {
		if n != 0 {
			t.Errorf("a healthy deploy's startup drawn as failures (Mermaid %s): %d bars\n%s", p.Mermaid, n, failures.Source)
		}
	}
}

// summaries are the job summaries of real runs.
type summaries struct{ rollback, startup string }

const (
	goodSHA = "9f2c1e7a3b4d5c6e7f8091a2b3c4d5e6f7081920"
	badSHA  = "4d8b3f2e1c0a9b8c7d6e5f4a3b2c1d0e9f8a7b6c"
)

// service answers /health as the build last deployed to it (POST
// /deploy?sha=): 503 for its first startup after a deploy, then 200, but
// 500 for 2 of every 5 requests of badSHA.
type service struct {
	mu       sync.Mutex
	sha      string
	deployed time.Time
	startup  time.Duration
	n        int
}

func (s *service) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if r.URL.Path == "/deploy" {
		s.sha, s.deployed, s.n = r.URL.Query().Get("sha"), time.Now(), 0
		return
	}
	s.n++
	switch {
	case time.Since(s.deployed) < s.startup:
		w.WriteHeader(http.StatusServiceUnavailable)
	case s.sha == badSHA && (s.n%5 == 1 || s.n%5 == 3):
		w.WriteHeader(http.StatusInternalServerError)
	}
	fmt.Fprintf(w, "%s\n", s.sha)
}

// realSummaries runs the binary as GitHub's runner runs the action, twice:
// a deploy that regresses and is rolled back, and a healthy deploy that
// answers 503 for its first 600 ms. It returns the summaries' paths, kept
// beside the screenshots.
func realSummaries(t *testing.T, out string) summaries {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "immune")
	if b, err := exec.Command("go", "build", "-o", bin, repoRoot).CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, b)
	}
	svc := &service{sha: goodSHA, startup: 600 * time.Millisecond}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: svc, ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	url := "http://" + ln.Addr().String()

	run := func(name, sha string, inputs map[string]string, wantVerdict string) string {
		in := map[string]string{
			"mode": "deploy", "sha": sha, "previous-sha": goodSHA, "github-token": "",
			"deploy-command": `curl -fsS -X POST "` + url + `/deploy?sha=$IMMUNE_SHA"`, "health-url": url + "/health",
			"interval": "100ms", "timeout": "100ms", "duration": "2s", "startup-timeout": "1s", "rollback-duration": "1s",
		}
		for k, v := range inputs {
			in[k] = v
		}
		summary := runAction(t, bin, in, sha, wantVerdict)
		path := filepath.Join(out, name+".md")
		if err := os.WriteFile(path, []byte(summary), 0o644); err != nil {
			t.Fatal(err)
		}
		return path
	}
	svc.mu.Lock()
	svc.startup = 0
	svc.mu.Unlock()
	rollback := run("summary-real-rollback", badSHA, nil, "rolled-back")
	svc.mu.Lock()
	svc.startup = 600 * time.Millisecond
	svc.mu.Unlock()
	startup := run("summary-real-startup", goodSHA, map[string]string{"previous-sha": ""}, "healthy")
	return summaries{rollback: rollback, startup: startup}
}

// runAction runs the binary with the runner's environment and the inputs
// (action.yml's defaults applied), and returns its job summary.
func runAction(t *testing.T, bin string, inputs map[string]string, sha, wantVerdict string) string {
	t.Helper()
	root := t.TempDir()
	ws, files := filepath.Join(root, "workspace"), filepath.Join(root, "files")
	for _, d := range []string{ws, files} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	env := []string{
		"PATH=" + os.Getenv("PATH"), "HOME=" + root, "CI=true", "GITHUB_ACTIONS=true", "GITHUB_EVENT_NAME=push",
		"GITHUB_SHA=" + sha, "GITHUB_REF=refs/heads/main", "GITHUB_REPOSITORY=octo-org/shop", "GITHUB_RUN_ID=7412345678",
		"GITHUB_RUN_ATTEMPT=1", "GITHUB_ACTOR=monalisa", "GITHUB_SERVER_URL=https://github.com", "GITHUB_API_URL=http://127.0.0.1:1",
		"GITHUB_WORKSPACE=" + ws, "GITHUB_OUTPUT=" + filepath.Join(files, "output"), "GITHUB_STEP_SUMMARY=" + filepath.Join(files, "summary"),
		"RUNNER_TEMP=" + filepath.Join(root, "temp"),
	}
	for name, v := range actionDefaults(t) {
		if _, set := inputs[name]; !set {
			inputs[name] = v
		}
	}
	for name, v := range inputs {
		env = append(env, "INPUT_"+strings.ToUpper(name)+"="+v)
	}
	cmd := exec.Command(bin)
	cmd.Dir, cmd.Env = ws, env
	log, _ := cmd.CombinedOutput()
	outputs, _ := os.ReadFile(filepath.Join(files, "output"))
	if !strings.Contains(string(outputs), "verdict<<") || !strings.Contains(string(outputs), "\n"+wantVerdict+"\n") {
		t.Fatalf("verdict is not %s:\n%s\noutputs:\n%s", wantVerdict, log, outputs)
	}
	summary, err := os.ReadFile(filepath.Join(files, "summary"))
	if err != nil || len(summary) == 0 {
		t.Fatalf("no job summary (%v):\n%s", err, log)
	}
	return string(summary)
}

// actionDefaults reads action.yml's input defaults, as the runner applies
// them, but for expressions (${{ github.token }}), which the runner
// evaluates and this test leaves unset.
func actionDefaults(t *testing.T) map[string]string {
	t.Helper()
	all, err := actionyml.Defaults(filepath.Join(repoRoot, "action.yml"))
	if err != nil {
		t.Fatal(err)
	}
	defaults := map[string]string{}
	for name, v := range all {
		if !strings.HasPrefix(v, "${{") {
			defaults[name] = v
		}
	}
	return defaults
}
