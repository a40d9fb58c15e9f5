//go:build containertest

package containertest

import (
	"fmt"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// startupBenchmark measures, in one run, the time from nothing (an empty
// image storage) to the action's first log line:
//   - prebuilt: the release's image pulled by digest from the local registry,
//     then run, as a runner does for `docker://...@sha256:...`;
//   - built: the Dockerfile's base images pulled from the same registry (as
//     a mirror of docker.io), the image built without a cache, then run, as a
//     runner does for `image: Dockerfile`;
//
// and the image bytes each pulled. The goal: prebuilt at most 5 s here, and at
// least 5 times faster than the build. It reports; it asserts no speed.
func (l *lab) startupBenchmark(reg *registry, prebuilt pullResult) {
	// The base images go to the local registry, under their docker.io names.
	for _, img := range []string{golangImage, debianImage} {
		l.must("podman", "push", "--quiet", "--tls-verify=false", img, reg.Host+"/"+strings.TrimPrefix(img, "docker.io/"))
	}
	mirror := filepath.Join(l.work, "registries-mirror.conf")
	l.writeFile(mirror, fmt.Sprintf(`unqualified-search-registries = ["docker.io"]
short-name-mode = "permissive"

[[registry]]
prefix = "docker.io"
location = "docker.io"

[[registry.mirror]]
location = %q
insecure = true
`, reg.Host))
	env := []string{"CONTAINERS_REGISTRIES_CONF=" + mirror}
	actionYML := filepath.Join(l.root, "action.yml")

	// Prebuilt, again, so that both paths are measured side by side, and three times: a pull takes seconds,
	// so the machine's other work moves it; the table shows the median run and the range.
	type sample struct {
		pull, first time.Duration
		bytes       int64
	}
	var samples []sample
	for i := range 3 {
		store := l.emptyStorage(fmt.Sprintf("bench-prebuilt-%d", i))
		reg.Served()
		start := time.Now()
		l.must("podman", append(store.Flags(), "pull", "--quiet", "--tls-verify=false", prebuilt.Ref)...)
		pull, bytes := time.Since(start), reg.Served()
		_, url := l.service(nil, goodSHA)
		run := l.runAction(actionRun{Name: fmt.Sprintf("bench-prebuilt-%d", i), Image: prebuilt.Ref, Podman: store.Flags(), ActionYML: actionYML,
			With: shortInputs(url), Env: map[string]string{"GITHUB_SHA": newSHA}, Event: pushEvent(goodSHA, newSHA)})
		l.check("benchmark, prebuilt: exit code", run.Code, 0)
		samples = append(samples, sample{pull, run.FirstLine, bytes})
	}
	sort.Slice(samples, func(i, j int) bool { return samples[i].pull+samples[i].first < samples[j].pull+samples[j].first })
	median := samples[len(samples)/2]
	prePull, preFirst, preBytes := median.pull, median.first, median.bytes
	preRange := fmt.Sprintf("%s–%s", secs(samples[0].pull+samples[0].first), secs(samples[len(samples)-1].pull+samples[len(samples)-1].first))

	store := l.emptyStorage("bench-built")
	reg.Served()
	start := time.Now()
	for _, img := range []string{golangImage, debianImage} {
		l.mustEnv(env, "buildah", append(store.Flags(), "pull", "--quiet", img)...)
	}
	basePull, baseBytes := time.Since(start), reg.Served()
	start = time.Now()
	l.mustEnv(env, "buildah", append(store.Flags(), "bud", "--isolation", "chroot", "--pull=false", "--no-cache",
		"-t", "localhost/immune:startup-built", "-f", filepath.Join(l.root, "Dockerfile"), l.root)...)
	build := time.Since(start)
	_, url := l.service(nil, goodSHA)
	run := l.runAction(actionRun{Name: "bench-built", Image: "localhost/immune:startup-built", Podman: store.Flags(), ActionYML: actionYML,
		With: shortInputs(url), Env: map[string]string{"GITHUB_SHA": newSHA}, Event: pushEvent(goodSHA, newSHA)})
	l.check("benchmark, built: exit code", run.Code, 0)
	builtFirst := run.FirstLine

	preTotal := prePull + preFirst
	builtTotal := basePull + build + builtFirst
	ratio := builtTotal.Seconds() / preTotal.Seconds()
	goal := "met"
	if preTotal > 5*time.Second || ratio < 5 {
		goal = "NOT met"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "Start-up from an empty image storage to the action's first log line (podman %s, docker-registry on 127.0.0.1):\n\n",
		l.must("podman", "version", "--format", "{{.Client.Version}}"))
	b.WriteString("| How the runner gets the image | Pull | Build | Start to first line | Total | Image bytes pulled |\n")
	b.WriteString("|---|---:|---:|---:|---:|---:|\n")
	fmt.Fprintf(&b, "| Prebuilt, `docker://…@sha256:…` (release; median of 3, total %s) | %s | — | %s | **%s** | %s |\n",
		preRange, secs(prePull), secs(preFirst), secs(preTotal), megabytes(preBytes))
	fmt.Fprintf(&b, "| `image: Dockerfile`, no cache (branch) | %s (base images) | %s | %s | **%s** | %s |\n",
		secs(basePull), secs(build), secs(builtFirst), secs(builtTotal), megabytes(baseBytes))
	fmt.Fprintf(&b, "\nPrebuilt is %.1f× faster. Goal (prebuilt ≤ 5 s, ≥ 5× faster): %s.\n", ratio, goal)
	l.t.Log(b.String())
	l.writeFile(filepath.Join(l.cache, "startup.md"), b.String())
	l.t.Logf("table also in %s", filepath.Join(l.cache, "startup.md"))
}

func secs(d time.Duration) string { return fmt.Sprintf("%.1f s", d.Seconds()) }
