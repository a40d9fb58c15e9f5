//go:build containertest

package containertest

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

// releaseTag is the version the test releases: a full release, so that the
// major tag moves too.
const releaseTag = "v1.2.3"

// TestContainer builds the image from the unchanged Dockerfile with buildah,
// as the release workflow does (its build arguments), checks what is in it,
// runs it with podman the way GitHub's runner runs a container action, pushes
// it to a local registry and runs the release workflow's pin and
// release-commit steps on it, pulls the release's image by digest into an
// empty storage and runs it, and runs a workflow with `uses: ./` at the
// release commit through act (which pulls the image the release's action.yml
// pins). With -startup it also measures start-up from nothing, prebuilt vs
// built from the Dockerfile.
func TestContainer(t *testing.T) {
	l := newLab(t)
	start := time.Now()
	defer func() {
		l.timings = append(l.timings, timing{"total", seconds(time.Since(start))})
		l.summary()
	}()

	// act is a Go program: build it while debootstrap waits on the network.
	actDone := make(chan string, 1)
	go func() { actDone <- l.installAct() }()

	bases, err := dockerfileBases(filepath.Join(l.root, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	if strings.Join(bases, " ") != "golang:1.26-bookworm debian:bookworm-slim" {
		t.Fatalf("the Dockerfile builds FROM %v; this test seeds golang:1.26-bookworm and debian:bookworm-slim", bases)
	}
	l.timed("base images", l.seedImages)

	// The release job's checkout of the tag, with a local origin.
	repo := newReleaseRepo(t, releaseTag)
	values := map[string]string{
		"github.ref_name": releaseTag, "github.sha": repo.TaggedSHA,
		"github.server_url": "https://github.com", "github.repository": "immune-cd/immune",
	}
	buildArgs := l.releaseBuildArgs(values)
	l.timed("image build (release's build arguments)", func() {
		l.build(builtImage, buildArgs)
		// buildah 1.28 leaves ARG values out of a LABEL step's cache key, so a warm storage can hand back
		// labels built with other build arguments (an earlier revision). Then the layers that carry them go,
		// and the build runs again (the steps before the labels still come from the cache). The checks below
		// fail if the labels are still wrong after that.
		for tries := 0; ; tries++ {
			got := l.imageLabel(builtImage, "org.opencontainers.image.revision")
			if got == repo.TaggedSHA {
				break
			}
			stale := strings.Fields(l.must("podman", "images", "--all", "--quiet", "--filter", "label=org.opencontainers.image.revision="+got))
			if got == "" || len(stale) == 0 || tries == 5 {
				l.t.Logf("cached layers carry revision %q, not %s: building again without the cache", got, repo.TaggedSHA)
				l.build(builtImage, append([]string{"--no-cache"}, buildArgs...))
				break
			}
			l.t.Logf("cached layers carry revision %q, not %s: removing the %d cached images with it and building again", got, repo.TaggedSHA, len(stale))
			l.must("podman", append([]string{"rmi", "--force"}, stale...)...)
			l.build(builtImage, buildArgs)
		}
	})
	l.inspect(builtImage, repo.TaggedSHA)
	l.scenarios(builtImage)
	if t.Failed() {
		t.Log("stopping before the release: the image fails above")
		return
	}

	reg := l.startRegistry()
	var pulled pullResult
	l.timed("release: push, pin, release commit, cold pull, run", func() {
		pulled = l.release(reg, repo)
	})
	l.fact("prebuilt: pull into an empty storage", seconds(pulled.Pull))
	l.fact("prebuilt: podman run to the first log line", seconds(pulled.FirstLine))
	l.fact("prebuilt: from nothing to the first log line", seconds(pulled.Pull+pulled.FirstLine))
	l.fact("prebuilt: bytes pulled", megabytes(pulled.Bytes))

	act := <-actDone
	if act != "" {
		l.timed("act end to end (uses: ./ at the release commit)", func() { l.runAct(act, reg, pulled.ActionYML, pulled.Ref) })
	}

	if *startup {
		l.timed("start-up benchmark", func() { l.startupBenchmark(reg, pulled) })
	}
}

// releaseBuildArgs are the build-args of the release workflow's build step,
// with its expressions evaluated.
func (l *lab) releaseBuildArgs(values map[string]string) []string {
	wf, err := LoadWorkflow(releaseWorkflow)
	if err != nil {
		l.t.Fatal(err)
	}
	step, err := wf.Step("image", "build")
	if err != nil {
		l.t.Fatal(err)
	}
	text, err := Expand(step.With["build-args"], values)
	if err != nil {
		l.t.Fatal(err)
	}
	var args []string
	for _, line := range strings.Split(strings.TrimSpace(text), "\n") {
		args = append(args, "--build-arg", strings.TrimSpace(line))
	}
	if len(args) == 0 {
		l.t.Fatal("the release workflow's build step has no build-args")
	}
	return args
}

// build runs `buildah bud` on the unchanged Dockerfile.
func (l *lab) build(image string, buildArgs []string) {
	args := append([]string{"bud", "--isolation", "chroot", "--pull=false", "--layers", "-t", image}, buildArgs...)
	args = append(args, "-f", filepath.Join(l.root, "Dockerfile"), l.root)
	l.t.Logf("buildah %s", strings.Join(args, " "))
	start := time.Now()
	out := l.must("buildah", args...)
	for _, line := range strings.Split(out, "\n") {
		if strings.Contains(line, "STEP ") || strings.HasPrefix(line, "COMMIT") || strings.Contains(line, "Using cache") {
			l.t.Logf("  %s", line)
		}
	}
	l.fact("of which buildah bud", seconds(time.Since(start)))
}

// inspect checks what the image is: its entrypoint, labels, version and
// tools, and its size.
func (l *lab) inspect(image, revision string) {
	cfg := l.inspectConfig("containers-storage:" + image)
	// The entrypoint must be the binary itself: a shell in between drops INPUT_ variables with hyphens.
	l.check("Entrypoint", strings.Join(cfg.Config.Entrypoint, " "), "/usr/local/bin/immune")
	l.check("Cmd", len(cfg.Config.Cmd), 0)
	l.check("architecture", cfg.Architecture, "amd64")
	l.check("label org.opencontainers.image.source", cfg.Config.Labels["org.opencontainers.image.source"], "https://github.com/immune-cd/immune")
	l.check("label org.opencontainers.image.revision", cfg.Config.Labels["org.opencontainers.image.revision"], revision)
	l.check("label org.opencontainers.image.version", cfg.Config.Labels["org.opencontainers.image.version"], releaseTag)
	l.check("immune version in the image", l.must("podman", "run", "--rm", image, "version"), "immune "+releaseTag)

	// What deploy commands need is there; git trusts the mounted workspace; apt is consistent, so a deploy
	// command can still install packages; perl scripts' full perl is gone, perl-base stays.
	script := `for t in bash curl git jq ssh scp ssh-keygen perl; do command -v $t >/dev/null || echo "missing $t"; done
test -s /etc/ssl/certs/ca-certificates.crt || echo "no CA bundle"
echo "safe.directory=$(git config --system --get-all safe.directory)"
apt-get check >/dev/null 2>&1 || echo "apt-get check fails"
[ "$(dpkg-query -W -f='${db:Status-Abbrev}' perl 2>/dev/null)" = "ii " ] && echo "perl installed"
git init -q /tmp/r && git -C /tmp/r -c user.name=a -c user.email=a@b commit -q --allow-empty -m x && git clone -q /tmp/r /tmp/c && git -C /tmp/c log -1 --format=%s`
	got := l.must("podman", "run", "--rm", "--entrypoint", "/bin/sh", image, "-c", script)
	l.check("tools, CA bundle, git's safe.directory, apt, perl, a git clone", got, "safe.directory=*\nx")

	size := l.must("podman", "image", "inspect", "--format", "{{.Size}}", image)
	var n int64
	fmt.Sscan(size, &n)
	l.t.Logf("Image size: %s (%d bytes, uncompressed)", megabytes(n), n)
	l.fact("image size (uncompressed)", megabytes(n))
}

// pullResult is a cold pull of the released image and its first run.
type pullResult struct {
	ActionYML string // the release commit's action.yml
	Ref       string // what its runs.image names, without docker://
	Pull      time.Duration
	FirstLine time.Duration
	Bytes     int64
}

// release does what the release workflow does after its build, against the
// local registry and origin: pushes the image, runs the workflow's pin and
// release-commit steps, then pulls the image the release commit's action.yml
// names into an empty storage, as a runner does, and runs it.
func (l *lab) release(reg *registry, repo *releaseRepo) pullResult {
	image := reg.Host + "/immune-cd/immune"
	digestFile := filepath.Join(l.work, "digest")
	l.must("podman", "push", "--tls-verify=false", "--digestfile", digestFile, builtImage, image+":"+releaseTag)
	data, err := os.ReadFile(digestFile)
	if err != nil {
		l.t.Fatal(err)
	}
	digest := strings.TrimSpace(string(data))
	pushed := reg.Received()
	reg.Served()
	l.t.Logf("pushed %s:%s (%s, %s)", image, releaseTag, digest, megabytes(pushed))
	l.fact("image bytes pushed (compressed layers, config, manifest)", megabytes(pushed))

	rel, err := repo.release(l.t.Context(), image, digest)
	if err != nil {
		l.t.Fatalf("release steps: %v", err)
	}
	repo.check(l.t, rel, image, digest, true)

	// What a user's runner does with `uses: immune-cd/immune@v1.2.3`: read the release commit's action.yml,
	// pull runs.image, run it with the action's defaults.
	actionYML := filepath.Join(l.work, "release-action.yml")
	l.writeFile(actionYML, repo.git(l.t, repo.Origin, "show", releaseTag+":action.yml")+"\n")
	var meta struct{ Runs struct{ Image string } }
	data, _ = os.ReadFile(actionYML)
	if err := yaml.Unmarshal(data, &meta); err != nil {
		l.t.Fatal(err)
	}
	ref, ok := strings.CutPrefix(meta.Runs.Image, "docker://")
	if !l.verify("release action.yml runs a docker:// image", ok, meta.Runs.Image) {
		l.t.FailNow()
	}
	res := pullResult{ActionYML: actionYML, Ref: ref}
	store := l.emptyStorage("prebuilt")
	reg.Served()
	start := time.Now()
	l.must("podman", append(store.Flags(), "pull", "--quiet", "--tls-verify=false", ref)...)
	res.Pull = time.Since(start)
	res.Bytes = reg.Served()
	l.t.Logf("pulled %s into an empty storage in %s (%s)", ref, seconds(res.Pull), megabytes(res.Bytes))

	_, url := l.service(nil, goodSHA)
	run := l.runAction(actionRun{Name: "released", Image: ref, ActionYML: actionYML, Podman: store.Flags(), With: shortInputs(url),
		Env: map[string]string{"GITHUB_SHA": newSHA}, Event: pushEvent(goodSHA, newSHA)})
	res.FirstLine = run.FirstLine
	l.check("released image: exit code", run.Code, 0)
	l.check("released image: verdict", run.Outputs["verdict"], "healthy")
	l.verify("released image: the log names the stamped version", strings.Contains(run.Stdout, "immune "+releaseTag+":"), "no 'immune "+releaseTag+":' in the log")
	l.check("released image: immune version", l.must("podman", append(store.Flags(), "run", "--rm", ref, "version")...), "immune "+releaseTag)
	return res
}

// installAct returns the path of act (nektos/act, pinned), built with go
// install into the cache when it is not there yet, or "" after a failure
// (reported).
func (l *lab) installAct() string {
	bin := filepath.Join(l.cache, "bin")
	act := filepath.Join(bin, "act")
	if out, err := exec.Command(act, "--version").Output(); err == nil && strings.Contains(string(out), strings.TrimPrefix(actVersion, "v")) {
		return act
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	cmd := l.command(ctx, []string{"GOBIN=" + bin, "GOFLAGS=-buildvcs=false"}, "go", "install", actModule+"@"+actVersion)
	if out, err := cmd.CombinedOutput(); err != nil {
		l.t.Errorf("go install %s@%s: %v\n%s", actModule, actVersion, err, tail(string(out), 20))
		return ""
	}
	return act
}
