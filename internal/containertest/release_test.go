package containertest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

// repoRoot is the repository's root, seen from this package's directory.
const repoRoot = "../.."

const releaseWorkflow = repoRoot + "/.github/workflows/release.yml"

// node24 are the releases of third-party actions that our workflows and
// the README's examples may use, by full commit SHA: each tag's commit was
// read from the action's repository and its action.yml runs on node24
// (GitHub has retired Node 20 from its runners). A new pin is checked the
// same way before it is added here: the tag's commit (git rev-parse
// TAG^{commit}) and `runs.using` in action.yml at that commit.
var node24 = map[string]string{
	"actions/checkout@3d3c42e5aac5ba805825da76410c181273ba90b1":                      "v7.0.1",
	"docker/setup-qemu-action@96fe6ef7f33517b61c61be40b68a1882f3264fb8":              "v4.2.0",
	"docker/setup-buildx-action@37fe631027851001ddb9b187196cc803df7f5f0e":            "v4.3.0",
	"docker/login-action@4907a6ddec9925e35a0a9e82d7399ccc52663121":                   "v4.1.0",
	"docker/build-push-action@53b7df96c91f9c12dcc8a07bcb9ccacbed38856a":              "v7.3.0",
	"anchore/sbom-action@e22c389904149dbc22b58101806040fa8d37a610":                   "v0.24.0",
	"actions/attest@1e69f48acb82d1966a394da916b4c1698aa569d6":                        "v4.2.2",
	"aws-actions/configure-aws-credentials@e6de054238d6b7531b4efff3b6587d9aade6a06c": "v6.2.3",
}

// TestWorkflowsPinActions: every third-party action in our workflows and
// in the example workflows the README shows is pinned by a full commit
// SHA, with the version it was at in a comment, to a release known to run
// on Node 24. The examples' own action (immune-cd/immune@v1) is what users
// write and is left as it is.
func TestWorkflowsPinActions(t *testing.T) {
	var files []string
	for _, glob := range []string{"/.github/workflows/*.yml", "/testdata/workflows/*.yml"} {
		found, err := filepath.Glob(repoRoot + glob)
		if err != nil || len(found) == 0 {
			t.Fatalf("no workflows in %s: %v", glob, err)
		}
		files = append(files, found...)
	}
	uses := regexp.MustCompile(`^\s*(?:-\s+)?uses:\s*(\S+)(.*)$`)
	pinned := regexp.MustCompile(`^[\w.-]+/[\w./-]+@[0-9a-f]{40}$`)
	comment := regexp.MustCompile(`^\s+# (v\d+(?:\.\d+)*)(?:$|, )`)
	n := 0
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for i, line := range strings.Split(string(data), "\n") {
			m := uses.FindStringSubmatch(line)
			if m == nil || strings.HasPrefix(m[1], "./") || strings.HasPrefix(m[1], "docker://") || m[1] == "immune-cd/immune@v1" {
				continue
			}
			n++
			where := fmt.Sprintf("%s:%d: %s", strings.TrimPrefix(f, repoRoot+"/"), i+1, strings.TrimSpace(line))
			c := comment.FindStringSubmatch(m[2])
			if !pinned.MatchString(m[1]) || c == nil {
				t.Errorf("%s: want owner/repo@<40-hex commit SHA> # vX.Y.Z", where)
				continue
			}
			switch version, ok := node24[m[1]]; {
			case !ok:
				t.Errorf("%s: not a release known to run on node24 (check its tag's commit and action.yml's runs.using, then add it to node24)", where)
			case version != c[1]:
				t.Errorf("%s: that commit is %s, not %s", where, version, c[1])
			}
		}
	}
	if n == 0 {
		t.Error("found no uses: lines")
	}
}

func TestReleaseVersionStep(t *testing.T) {
	wf, err := LoadWorkflow(releaseWorkflow)
	if err != nil {
		t.Fatal(err)
	}
	step, err := wf.Step("image", "version")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		tag  string
		want map[string]string
	}{
		{"v1.2.3", map[string]string{"release": "true", "major": "v1", "image": "ghcr.io/immune-cd/immune", "prerelease": "false",
			"tags": "ghcr.io/immune-cd/immune:v1.2.3,ghcr.io/immune-cd/immune:v1.2,ghcr.io/immune-cd/immune:v1"}},
		{"v1.3.0-rc.1", map[string]string{"release": "true", "major": "v1", "image": "ghcr.io/immune-cd/immune", "prerelease": "true",
			"tags": "ghcr.io/immune-cd/immune:v1.3.0-rc.1"}},
		{"v1", map[string]string{"release": "false"}},
		{"v1.2", map[string]string{"release": "false"}},
		{"v1.2.3;rm", map[string]string{"release": "false"}},
	}
	for _, tt := range tests {
		t.Run(tt.tag, func(t *testing.T) {
			r := &StepRunner{Dir: t.TempDir(), Env: baseEnv(t), Values: map[string]string{
				"github.ref_name": tt.tag, "github.repository_owner": "Immune-CD"}}
			res, err := r.Run(context.Background(), step)
			if err != nil {
				t.Fatal(err)
			}
			if len(res.Outputs) != len(tt.want) {
				t.Errorf("outputs %v, want %v", res.Outputs, tt.want)
			}
			for k, v := range tt.want {
				if res.Outputs[k] != v {
					t.Errorf("output %s = %q, want %q", k, res.Outputs[k], v)
				}
			}
		})
	}
}

// TestReleaseCommit runs the release workflow's pin and release-commit steps
// on a checkout of a tagged commit, with a local origin, and checks what the
// origin holds afterwards. The container test runs the same steps with the
// digest of an image pushed to a local registry.
func TestReleaseCommit(t *testing.T) {
	const digest = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	for _, tag := range []string{"v1.2.3", "v1.3.0-rc.1"} {
		t.Run(tag, func(t *testing.T) {
			repo := newReleaseRepo(t, tag)
			rel, err := repo.release(context.Background(), "ghcr.io/immune-cd/immune", digest)
			if err != nil {
				t.Fatal(err)
			}
			repo.check(t, rel, "ghcr.io/immune-cd/immune", digest, !strings.Contains(tag, "-"))
		})
	}
}

func TestReleaseCommitRefuses(t *testing.T) {
	const digest = "sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	tests := []struct {
		name    string
		prepare func(t *testing.T, r *releaseRepo)
		digest  string
		want    string
	}{
		{name: "no digest", digest: "", want: "the build gave no image digest"},
		{name: "a tag instead of a digest", digest: "v1.2.3", want: "the build gave no image digest"},
		{name: "already pinned", digest: digest, want: "exactly one line '  image: Dockerfile'", prepare: func(t *testing.T, r *releaseRepo) {
			data, _ := os.ReadFile(filepath.Join(r.Checkout, "action.yml"))
			pinned := strings.Replace(string(data), "  image: Dockerfile\n", "  image: 'docker://ghcr.io/immune-cd/immune:v1.2.2@"+digest+"'\n", 1)
			os.WriteFile(filepath.Join(r.Checkout, "action.yml"), []byte(pinned), 0o644)
		}},
		{name: "another file changed", digest: digest, want: "must change action.yml only", prepare: func(t *testing.T, r *releaseRepo) {
			os.WriteFile(filepath.Join(r.Checkout, "Dockerfile"), []byte("FROM scratch\n"), 0o644)
		}},
		{name: "checkout not at the tagged commit", digest: digest, want: "not at the tagged commit", prepare: func(t *testing.T, r *releaseRepo) {
			r.git(t, r.Checkout, "-c", "user.name=t", "-c", "user.email=t@localhost", "commit", "-q", "--allow-empty", "-m", "moved on")
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			repo := newReleaseRepo(t, "v1.2.3")
			if tt.prepare != nil {
				tt.prepare(t, repo)
			}
			_, err := repo.release(context.Background(), "ghcr.io/immune-cd/immune", tt.digest)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("release: %v; want an error with %q", err, tt.want)
			}
			if got := repo.git(t, repo.Origin, "rev-parse", "refs/tags/v1.2.3^{commit}"); got != repo.TaggedSHA {
				t.Errorf("origin's tag moved to %s after a failed release", got)
			}
		})
	}
}

// baseEnv is the environment the runner gives a step, reduced to what ours
// use.
func baseEnv(t *testing.T) []string {
	return []string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir(), "LANG=C.UTF-8"}
}

// releaseRepo is what the release job works on: Origin, a bare repository
// whose main branch holds the project's action.yml and Dockerfile, tagged
// Tag (annotated, as a maintainer pushes it), and Checkout, the tag checked
// out as actions/checkout leaves it (detached at the tagged commit, with
// origin as its remote).
type releaseRepo struct {
	Tag, Origin, Checkout, TaggedSHA string
	env                              []string
}

func newReleaseRepo(t *testing.T, tag string) *releaseRepo {
	t.Helper()
	dir := t.TempDir()
	// Fixed dates: the tagged commit is a function of the files, so the container test's build arguments
	// (REVISION) stay the same between runs and its build can use cached layers.
	env := append(baseEnv(t), "GIT_AUTHOR_DATE=2026-11-30T12:00:00Z", "GIT_COMMITTER_DATE=2026-11-30T12:00:00Z")
	r := &releaseRepo{Tag: tag, Origin: filepath.Join(dir, "origin.git"), Checkout: filepath.Join(dir, "checkout"), env: env}
	work := filepath.Join(dir, "work")
	if err := os.MkdirAll(work, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"action.yml", "Dockerfile", "README.md"} {
		data, err := os.ReadFile(filepath.Join(repoRoot, f))
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(work, f), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	id := []string{"-c", "user.name=Maintainer", "-c", "user.email=maintainer@localhost"}
	r.git(t, work, "init", "-q", "-b", "main")
	r.git(t, work, "add", "-A")
	r.git(t, work, append(id, "commit", "-q", "-m", "A commit on main")...)
	r.git(t, work, append(id, "tag", "-a", "-m", "Release "+tag, tag)...)
	r.TaggedSHA = r.git(t, work, "rev-parse", "HEAD")
	r.git(t, dir, "clone", "-q", "--bare", work, r.Origin)
	r.git(t, dir, "clone", "-q", r.Origin, r.Checkout)
	r.git(t, r.Checkout, "checkout", "-q", "--detach", r.TaggedSHA)
	return r
}

func (r *releaseRepo) git(t *testing.T, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", args...)
	cmd.Dir = dir
	cmd.Env = r.env
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return strings.TrimSpace(string(out))
}

// releaseResult is what the release steps left.
type releaseResult struct {
	Image   string // the pin step's output: docker://IMAGE:TAG@DIGEST
	Commit  string // the release commit
	Summary string
}

// release runs the release workflow's version, pin and release-commit steps
// in the checkout, as the runner would after the image was pushed to image
// with digest.
func (r *releaseRepo) release(ctx context.Context, image, digest string) (releaseResult, error) {
	wf, err := LoadWorkflow(releaseWorkflow)
	if err != nil {
		return releaseResult{}, err
	}
	run := &StepRunner{Dir: r.Checkout, Env: append(append([]string{}, r.env...), "GITHUB_SHA="+r.TaggedSHA), Values: map[string]string{
		"github.ref_name":            r.Tag,
		"github.sha":                 r.TaggedSHA,
		"github.repository_owner":    "immune-cd",
		"steps.build.outputs.digest": digest,
	}}
	var res releaseResult
	for _, id := range []string{"version", "pin", "commit"} {
		step, err := wf.Step("image", id)
		if err != nil {
			return res, err
		}
		if id == "pin" {
			// The workflow pushes to ghcr.io/<owner>/immune; the tests to a local registry.
			run.Values["steps.version.outputs.image"] = image
		}
		out, err := run.Run(ctx, step)
		if err != nil {
			return res, err
		}
		switch id {
		case "pin":
			res.Image = out.Outputs["image"]
		case "commit":
			res.Commit, res.Summary = out.Outputs["sha"], out.Summary
		}
	}
	return res, nil
}

// check verifies the origin after a release: the tag (and the major tag for a
// full release) point at a child of the tagged commit whose only change is
// runs.image, pinned by digest; main still builds from the Dockerfile.
func (r *releaseRepo) check(t *testing.T, rel releaseResult, image, digest string, full bool) {
	t.Helper()
	wantRef := "docker://" + image + ":" + r.Tag + "@" + digest
	if rel.Image != wantRef {
		t.Errorf("pin step output image = %q, want %q", rel.Image, wantRef)
	}
	commit := r.git(t, r.Origin, "rev-parse", "refs/tags/"+r.Tag+"^{commit}")
	if commit != rel.Commit || commit == r.TaggedSHA {
		t.Errorf("origin's %s is at %s; want the release commit %s (the tagged commit was %s)", r.Tag, commit, rel.Commit, r.TaggedSHA)
	}
	if got := r.git(t, r.Origin, "cat-file", "-t", "refs/tags/"+r.Tag); got != "tag" {
		t.Errorf("origin's %s is a %s, want an annotated tag", r.Tag, got)
	}
	if parent := r.git(t, r.Origin, "rev-parse", commit+"^"); parent != r.TaggedSHA {
		t.Errorf("release commit's parent is %s, want the tagged commit %s", parent, r.TaggedSHA)
	}
	if files := r.git(t, r.Origin, "diff", "--name-only", r.TaggedSHA, commit); files != "action.yml" {
		t.Errorf("release commit changes %q, want action.yml only", files)
	}
	before := strings.Split(r.git(t, r.Origin, "show", r.TaggedSHA+":action.yml"), "\n")
	after := strings.Split(r.git(t, r.Origin, "show", commit+":action.yml"), "\n")
	if len(before) != len(after) {
		t.Fatalf("action.yml has %d lines after the release, %d before", len(after), len(before))
	}
	for i := range before {
		if before[i] == after[i] {
			continue
		}
		if before[i] != "  image: Dockerfile" || after[i] != "  image: '"+wantRef+"'" {
			t.Errorf("action.yml line %d: %q became %q", i+1, before[i], after[i])
		}
	}
	var meta struct {
		Runs struct{ Using, Image string }
	}
	if err := yaml.Unmarshal([]byte(strings.Join(after, "\n")), &meta); err != nil {
		t.Fatal(err)
	}
	if meta.Runs.Using != "docker" || meta.Runs.Image != wantRef {
		t.Errorf("release action.yml runs %+v, want docker with image %s", meta.Runs, wantRef)
	}
	major := "v" + strings.SplitN(strings.TrimPrefix(r.Tag, "v"), ".", 2)[0]
	cmd := exec.Command("git", "rev-parse", "-q", "--verify", "refs/tags/"+major+"^{commit}")
	cmd.Dir = r.Origin
	out, _ := cmd.Output()
	if got := strings.TrimSpace(string(out)); full && got != commit {
		t.Errorf("origin's %s is at %q, want the release commit %s", major, got, commit)
	} else if !full && got != "" {
		t.Errorf("a pre-release moved %s to %s", major, got)
	}
	if main := r.git(t, r.Origin, "rev-parse", "main"); main != r.TaggedSHA {
		t.Errorf("origin's main moved to %s", main)
	}
	if !strings.Contains(r.git(t, r.Origin, "show", "main:action.yml")+"\n", "\n  image: Dockerfile\n") {
		t.Error("main's action.yml no longer builds from the Dockerfile")
	}
	if !strings.Contains(rel.Summary, wantRef) {
		t.Errorf("step summary does not name the image:\n%s", rel.Summary)
	}
}

func TestExpand(t *testing.T) {
	values := map[string]string{"github.sha": "abc", "steps.build.outputs.digest": "sha256:1"}
	got, err := Expand("${{ github.sha }}/${{steps.build.outputs.digest}}", values)
	if err != nil || got != "abc/sha256:1" {
		t.Errorf("Expand = %q, %v", got, err)
	}
	if _, err := Expand("${{ github.token }} ${{ secrets.X }}", values); err == nil || !strings.Contains(err.Error(), "github.token") {
		t.Errorf("Expand of unknown names: %v, want an error naming them", err)
	}
}

func TestParseOutputs(t *testing.T) {
	got, err := ParseOutputs("a=1\nb<<EOF\nline 1\nline=2\nEOF\nc=x=y\n")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"a": "1", "b": "line 1\nline=2", "c": "x=y"}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %q, want %q", k, got[k], v)
		}
	}
	if _, err := ParseOutputs("b<<EOF\nno end\n"); err == nil {
		t.Error("an unterminated block parsed")
	}
}
