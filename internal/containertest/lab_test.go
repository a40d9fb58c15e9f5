//go:build containertest

package containertest

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"
)

var (
	cold    = flag.Bool("cold", false, "start from nothing: delete the cache folder and this test's images (base images, build layers, built images) first")
	startup = flag.Bool("startup", false, "also measure start-up from nothing: the image pulled prebuilt vs built from the Dockerfile without a cache (heavy: a second full build)")
	keep    = flag.Bool("keep", false, "keep the run folder (workspaces, logs, outputs) and print its path")
	graph   = flag.String("storage", "/var/lib/containers/immune-container-test", "image storage of the test (podman's graphroot); not the machine's, so that base images named as the Dockerfile names them collide with nothing else")
)

// Names in the machine's image storage. Base images carry the names the
// Dockerfile uses; the rest carry this test's names, so that nothing else on
// the machine is touched.
const (
	debianImage = "docker.io/library/debian:bookworm-slim"
	golangImage = "docker.io/library/golang:1.26-bookworm"
	builtImage  = "localhost/immune:container-test"
	actModule   = "github.com/nektos/act"
	actVersion  = "v0.2.89"
	suite       = "bookworm"
	// rootfsRecipe changes whenever rootfsTarball or seedImages makes
	// something different, so that cached base images are remade.
	rootfsRecipe = "2"
)

// tools are the commands the test needs; .ci/run installs them from Debian.
var tools = []string{"buildah", "podman", "runc", "skopeo", "debootstrap", "docker-registry", "git", "tar"}

// lab is one run of the container test: the repository, the cache, the run
// folder, the environment every command gets, and the timings.
type lab struct {
	t       *testing.T
	root    string // the repository
	cache   string // kept between runs: root filesystem tarball, config files, act
	work    string // this run's folder
	env     []string
	mirror  DebianMirror
	timings []timing
	facts   []timing
}

type timing struct{ name, value string }

func newLab(t *testing.T) *lab {
	t.Helper()
	root, err := filepath.Abs(repoRoot)
	if err != nil {
		t.Fatal(err)
	}
	if os.Geteuid() != 0 {
		t.Fatal("the container test runs as root (buildah, podman, debootstrap)")
	}
	var missing []string
	for _, tool := range tools {
		if _, err := exec.LookPath(tool); err != nil {
			missing = append(missing, tool)
		}
	}
	if len(missing) > 0 {
		t.Fatalf("missing %s: .ci/run installs them (apt-get install buildah podman runc skopeo debootstrap docker-registry)", strings.Join(missing, ", "))
	}
	l := &lab{t: t, root: root, cache: filepath.Join(root, ".ci", "cache", "container-test")}
	if l.work, err = os.MkdirTemp("", "immune-container-test-"); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if *keep || t.Failed() {
			t.Logf("run folder kept: %s", l.work)
			return
		}
		os.RemoveAll(l.work)
	})
	l.writeConf()
	if *cold {
		t.Log("Cold start: deleting the cache folder and this test's images")
		l.run(context.Background(), "podman", "rmi", "-f", builtImage, golangImage, debianImage)
		l.run(context.Background(), "podman", "image", "prune", "-f")
		if err := os.RemoveAll(l.cache); err != nil {
			t.Fatal(err)
		}
		l.writeConf()
	}
	files, err := AptSourceFiles("/etc/apt/sources.list.d")
	if err != nil {
		t.Fatal(err)
	}
	if l.mirror, err = MirrorFromAptSources(files, suite); err != nil {
		t.Fatal(err)
	}
	t.Logf("Debian mirror from apt's sources: %s (security: %s)", l.mirror.Archive, orNone(l.mirror.Security))
	return l
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

// writeConf points podman, buildah and skopeo at config files for this kind
// of machine and at the test's own image storage: crun (podman's default runtime) fails here on hybrid cgroups and
// on raising rlimits, so runc with cgroupfs; short names such as
// golang:1.26-bookworm resolve to docker.io, where the seeded base images are
// tagged.
func (l *lab) writeConf() {
	conf := filepath.Join(l.cache, "conf")
	l.writeFile(filepath.Join(conf, "containers.conf"), `[containers]
default_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
`)
	l.writeFile(filepath.Join(conf, "registries.conf"), `unqualified-search-registries = ["docker.io"]
short-name-mode = "permissive"
`)
	// runroot holds locks and mount state: on /run, short (podman refuses runroots over 50 characters).
	l.writeFile(filepath.Join(conf, "storage.conf"), fmt.Sprintf(`[storage]
driver = "overlay"
graphroot = %q
runroot = %q
`, *graph, "/run/ict-"+fmt.Sprintf("%x", sha256.Sum256([]byte(*graph)))[:12]))
	l.env = append(os.Environ(),
		"CONTAINERS_STORAGE_CONF="+filepath.Join(conf, "storage.conf"),
		"CONTAINERS_CONF="+filepath.Join(conf, "containers.conf"),
		"CONTAINERS_REGISTRIES_CONF="+filepath.Join(conf, "registries.conf"),
		"BUILDAH_ISOLATION=chroot")
}

func (l *lab) writeFile(path, text string) {
	l.t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		l.t.Fatal(err)
	}
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		l.t.Fatal(err)
	}
}

// command is name with args in the lab's environment.
func (l *lab) command(ctx context.Context, env []string, name string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = append(append([]string{}, l.env...), env...)
	cmd.Dir = l.root
	cmd.WaitDelay = 10 * time.Second
	return cmd
}

// run runs a command and returns its combined output.
func (l *lab) run(ctx context.Context, name string, args ...string) (string, error) {
	out, err := l.command(ctx, nil, name, args...).CombinedOutput()
	return string(out), err
}

// must runs a command, failing the test with the end of its output when it
// fails, and returns its standard output, trimmed.
func (l *lab) must(name string, args ...string) string {
	l.t.Helper()
	return l.mustEnv(nil, name, args...)
}

func (l *lab) mustEnv(env []string, name string, args ...string) string {
	l.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	cmd := l.command(ctx, env, name, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		l.t.Fatalf("%s %s: %v\n%s%s", name, strings.Join(args, " "), err, tail(stdout.String(), 40), tail(stderr.String(), 40))
	}
	return strings.TrimSpace(stdout.String())
}

// tail is the last n lines of s.
func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = append([]string{"..."}, lines[len(lines)-n:]...)
	}
	return strings.Join(lines, "\n") + "\n"
}

// timed runs f and records how long it took.
func (l *lab) timed(name string, f func()) time.Duration {
	start := time.Now()
	f()
	d := time.Since(start)
	l.timings = append(l.timings, timing{name, seconds(d)})
	return d
}

func (l *lab) fact(name, value string) { l.facts = append(l.facts, timing{name, value}) }

func seconds(d time.Duration) string { return fmt.Sprintf("%.2fs", d.Seconds()) }

func megabytes(n int64) string { return fmt.Sprintf("%.1f MB", float64(n)/1e6) }

// summary logs the timings and facts.
func (l *lab) summary() {
	var b strings.Builder
	b.WriteString("Timings\n")
	for _, x := range append(l.timings, l.facts...) {
		fmt.Fprintf(&b, "  %-48s %12s\n", x.name, x.value)
	}
	l.t.Log(b.String())
}

// check records a comparison: a line in the log when it holds, an error when
// it does not.
func (l *lab) check(name string, got, want any) bool {
	l.t.Helper()
	if fmt.Sprint(got) == fmt.Sprint(want) {
		l.t.Logf("ok    %s = %q", name, fmt.Sprint(got))
		return true
	}
	l.t.Errorf("FAIL  %s: got %q, want %q", name, fmt.Sprint(got), fmt.Sprint(want))
	return false
}

func (l *lab) verify(name string, ok bool, detail ...any) bool {
	l.t.Helper()
	if ok {
		l.t.Logf("ok    %s", name)
		return true
	}
	l.t.Errorf("FAIL  %s %s", name, fmt.Sprint(detail...))
	return false
}

// imageLabel is a label of an image in the machine's storage ("" when the
// image or the label is missing).
func (l *lab) imageLabel(image, label string) string {
	out, err := l.run(context.Background(), "podman", "image", "inspect", "--format", fmt.Sprintf("{{index .Labels %q}}", label), image)
	if err != nil {
		return ""
	}
	return strings.TrimSpace(out)
}

// imageConfig is the OCI configuration of an image, as skopeo reads it.
type imageConfig struct {
	Architecture string `json:"architecture"`
	OS           string `json:"os"`
	Config       struct {
		Entrypoint []string          `json:"Entrypoint"`
		Cmd        []string          `json:"Cmd"`
		Labels     map[string]string `json:"Labels"`
		Env        []string          `json:"Env"`
	} `json:"config"`
}

func (l *lab) inspectConfig(ref string) imageConfig {
	l.t.Helper()
	var c imageConfig
	if err := json.Unmarshal([]byte(l.must("skopeo", "inspect", "--config", ref)), &c); err != nil {
		l.t.Fatal(err)
	}
	return c
}

// ---------------------------------------------------------------------------------------------------------
// Base images

// seedKey is what the seeded base images are made of; an image whose
// immune.seed label differs is remade.
func (l *lab) seedKey() string {
	h := sha256.New()
	fmt.Fprintln(h, "recipe", rootfsRecipe, l.mirror.Suite, l.mirror.Archive, l.mirror.Security, runtime.GOARCH)
	certs, _ := filepath.Glob("/usr/local/share/ca-certificates/*.crt")
	for _, c := range certs {
		data, _ := os.ReadFile(c)
		h.Write(data)
	}
	fmt.Fprintln(h, l.must("go", "env", "GOVERSION", "GOROOT"))
	return hex.EncodeToString(h.Sum(nil))[:16]
}

// seedImages makes the Dockerfile's base images in local storage, under the
// names the Dockerfile uses:
//   - debian:bookworm-slim: the root filesystem, trusting the host's proxy CA
//     certificates (in /usr/local/share/ca-certificates, so the
//     ca-certificates package that the Dockerfile installs adds them to the
//     bundle);
//   - golang:1.26-bookworm: that plus the machine's Go toolchain and the
//     host's CA bundle (go mod download in the build goes through a
//     TLS-re-signing proxy), with the official image's GOPATH, PATH and
//     working directory, and GOTOOLCHAIN=local.
func (l *lab) seedImages() {
	key := l.seedKey()
	if l.imageLabel(debianImage, "immune.seed") == key && l.imageLabel(golangImage, "immune.seed") == key {
		l.t.Logf("Base images up to date (seed %s): %s, %s", key, debianImage, golangImage)
		return
	}
	tarball := l.rootfsTarball()
	l.t.Logf("Seeding %s", debianImage)
	ctr := l.must("buildah", "from", "scratch")
	l.must("buildah", "add", "--quiet", ctr, tarball, "/")
	if certs, _ := filepath.Glob("/usr/local/share/ca-certificates/*.crt"); len(certs) > 0 {
		l.must("buildah", "copy", "--quiet", ctr, "/usr/local/share/ca-certificates/", "/usr/local/share/ca-certificates/")
	}
	l.must("buildah", "config", "--cmd", "bash", "--env", "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
		"--os", "linux", "--arch", runtime.GOARCH, "--label", "immune.seed="+key, ctr)
	l.must("buildah", "commit", "--quiet", "--rm", ctr, debianImage)

	goroot := l.must("go", "env", "GOROOT")
	gover := strings.TrimPrefix(l.must("go", "env", "GOVERSION"), "go")
	l.t.Logf("Seeding %s from the machine's Go %s", golangImage, gover)
	ctr = l.must("buildah", "from", "--pull=false", debianImage)
	l.must("buildah", "copy", "--quiet", ctr, goroot, "/usr/local/go")
	l.must("buildah", "copy", "--quiet", ctr, "/etc/ssl/certs/ca-certificates.crt", "/etc/ssl/certs/ca-certificates.crt")
	l.must("buildah", "run", ctr, "--", "mkdir", "-p", "/go/bin", "/go/src")
	l.must("buildah", "config", "--env", "GOLANG_VERSION="+gover, "--env", "GOPATH=/go", "--env", "GOTOOLCHAIN=local",
		"--env", "PATH=/go/bin:/usr/local/go/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
		"--workingdir", "/go", "--label", "immune.seed="+key, ctr)
	l.must("buildah", "commit", "--quiet", "--rm", ctr, golangImage)
}

// rootfsTarball makes (once) a slim Debian root filesystem like the official
// bookworm-slim image: debootstrap minbase from apt's own mirror, with docs,
// man pages, locales, apt lists and downloaded packages removed and kept out
// of later installs, and apt sources for the release, its updates and its
// security updates from the same mirrors.
func (l *lab) rootfsTarball() string {
	tarball := filepath.Join(l.cache, "debian-"+suite+"-minbase-"+rootfsRecipe+".tar")
	if fi, err := os.Stat(tarball); err == nil && fi.Size() > 0 {
		l.t.Logf("Cached root filesystem: %s (%s)", tarball, megabytes(fi.Size()))
		return tarball
	}
	dir := filepath.Join(l.cache, "rootfs.tmp")
	os.RemoveAll(dir)
	l.t.Logf("debootstrap --variant=minbase %s from %s (cold, about a minute)", suite, l.mirror.Archive)
	logFile := filepath.Join(l.cache, "debootstrap.log")
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	if out, err := l.run(ctx, "debootstrap", "--variant=minbase", suite, dir, l.mirror.Archive); err != nil {
		os.WriteFile(logFile, []byte(out), 0o644)
		l.t.Fatalf("debootstrap failed: %v\n%s", err, tail(out, 20))
	}
	for _, pattern := range []string{"var/cache/apt/archives/*.deb", "var/lib/apt/lists/*", "usr/share/man/*", "usr/share/info/*", "usr/share/locale/*", "var/log/*.log"} {
		matches, _ := filepath.Glob(filepath.Join(dir, pattern))
		for _, m := range matches {
			os.RemoveAll(m)
		}
	}
	l.must("find", filepath.Join(dir, "usr/share/doc"), "-mindepth", "1", "-not", "-name", "copyright", "-not", "-type", "d", "-delete")
	l.writeFile(filepath.Join(dir, "etc/dpkg/dpkg.cfg.d/docker"), `# Like the official slim image: no docs, man pages or translations.
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/groff/*
path-exclude /usr/share/info/*
path-exclude /usr/share/lintian/*
path-exclude /usr/share/linda/*
path-exclude /usr/share/locale/*
`)
	l.writeFile(filepath.Join(dir, "etc/apt/apt.conf.d/docker-clean"), `DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
`)
	os.Remove(filepath.Join(dir, "etc/apt/sources.list"))
	sources := fmt.Sprintf(`Types: deb
URIs: %s
Suites: %s %s-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
`, l.mirror.Archive, suite, suite)
	if l.mirror.Security != "" {
		sources += fmt.Sprintf(`
Types: deb
URIs: %s
Suites: %s-security
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
`, l.mirror.Security, suite)
	}
	l.writeFile(filepath.Join(dir, "etc/apt/sources.list.d/debian.sources"), sources)
	l.writeFile(filepath.Join(dir, "etc/hostname"), "")
	l.writeFile(filepath.Join(dir, "etc/resolv.conf"), "")
	l.must("tar", "--numeric-owner", "-C", dir, "-cf", tarball+".tmp", ".")
	if err := os.Rename(tarball+".tmp", tarball); err != nil {
		l.t.Fatal(err)
	}
	os.RemoveAll(dir)
	fi, _ := os.Stat(tarball)
	l.t.Logf("Root filesystem: %s (%s)", tarball, megabytes(fi.Size()))
	return tarball
}

// dockerfileBases are the images the Dockerfile builds FROM.
func dockerfileBases(dockerfile string) ([]string, error) {
	data, err := os.ReadFile(dockerfile)
	if err != nil {
		return nil, err
	}
	var bases []string
	for _, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) < 2 || !strings.EqualFold(f[0], "FROM") {
			continue
		}
		f = f[1:]
		for len(f) > 0 && strings.HasPrefix(f[0], "--") {
			f = f[1:]
		}
		if len(f) == 0 {
			return nil, errors.New("a FROM line without an image")
		}
		bases = append(bases, f[0])
	}
	return bases, nil
}
