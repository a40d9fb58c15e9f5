// Package demo runs the whole loop on this machine: a real HTTP service on
// 127.0.0.1, a real shell command that deploys to it, a healthy v1, a v2 that
// fails a share of its requests, the detection and the rollback; then the
// canary act (canary.go): a fleet with a canary, a shared outage that is not
// the build's doing, and a bad build stopped at the canary.
package demo

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/sethvargo/go-githubactions"

	"github.com/immune-cd/immune/internal/action"
	"github.com/immune-cd/immune/internal/clock"
	"github.com/immune-cd/immune/internal/config"
)

// Options are the demo's dependencies.
type Options struct {
	Stdout     io.Writer
	HTTP       *http.Client
	Executable string
	Environ    []string
}

// The two builds of the demo service.
const (
	goodSHA = "a1f3c9e0b7d24c6e8f1a2b3c4d5e6f708192a3b4"
	badSHA  = "e7b2d41c9a8f6e5d4c3b2a1908f7e6d5c4b3a291"
)

// deployCommand is what a user's deploy-command would be: it only sees the
// commit through IMMUNE_SHA and "deploys" by switching the file the
// service reads its version from (in RELEASES), atomically, like a symlink
// switch.
const deployCommand = `cd "$RELEASES" && printf '%s\n' "$IMMUNE_SHA" > release.tmp && mv release.tmp release && echo "released $IMMUNE_SHA ($IMMUNE_REASON)"`

// Run runs the demo and returns 0 when the story went as it should.
func Run(ctx context.Context, o Options) int {
	dir, err := os.MkdirTemp("", "immune-demo-")
	if err != nil {
		fmt.Fprintf(o.Stdout, "demo: %v\n", err)
		return action.ExitError
	}
	defer removeDemo(o.Stdout, dir)

	svc := &service{release: filepath.Join(dir, "release"), rng: rand.New(rand.NewPCG(1, 2))}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintf(o.Stdout, "demo: %v\n", err)
		return action.ExitError
	}
	srv := &http.Server{Handler: svc, ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ln)
	defer srv.Close()
	url := "http://" + ln.Addr().String() + "/health"

	w := o.Stdout
	fmt.Fprintf(w, "immune demo: a service on %s; v1 (%s) is healthy, v2 (%s) fails 2 of every 5 requests.\n", url, goodSHA[:7], badSHA[:7])
	fmt.Fprintf(w, "Each deploy runs a real shell command (RELEASES is the folder the service reads its build from): %s\n\n", deployCommand)

	n := 0
	run := func(sha string) int {
		n++
		return runDemo(ctx, o, workspace(dir, n, sha), dir, map[string]string{
			"mode":              "deploy",
			"sha":               sha,
			"deploy-command":    deployCommand,
			"health-url":        url,
			"interval":          "150ms",
			"timeout":           "150ms",
			"duration":          "3s",
			"startup-timeout":   "1s",
			"rollback-duration": "1500ms",
			"max-latency":       "200ms",
			"expect-version":    "json:version",
			"state-file":        filepath.Join(dir, "state.json"),
		})
	}

	fmt.Fprintf(w, "━━ Deploy v1 (%s)\n", goodSHA[:7])
	first := run(goodSHA)
	fmt.Fprintf(w, "\n━━ Deploy v2 (%s)\n", badSHA[:7])
	second := run(badSHA)

	served := svc.current()
	fmt.Fprintf(w, "\n━━ Result\n")
	fmt.Fprintf(w, "v1 exit code %d (healthy), v2 exit code %d (regressed and rolled back); the service now runs %s.\n", first, second, served[:min(7, len(served))])
	if first != action.ExitOK || second != action.ExitRegressed || served != goodSHA {
		fmt.Fprintf(w, "demo: the story did not go as expected\n")
		return action.ExitRegressed
	}
	fmt.Fprintf(w, "That is the loop: deploy every commit, watch it, revert what regresses.\n")
	fmt.Fprintf(w, "Each run's JSON report (every probe) is in its own folder, named above.\n\n")
	return canaryAct(ctx, o, filepath.Join(dir, "canary"))
}

// workspace is the folder of the demo's nth run, where its report is
// written: each run's report has a path of its own.
func workspace(dir string, n int, commit string) string {
	return filepath.Join(dir, fmt.Sprintf("run-%d-%s", n, short(commit)))
}

// removeDemo removes the demo's folder: the demo leaves nothing behind.
func removeDemo(w io.Writer, dir string) {
	if err := os.RemoveAll(dir); err != nil {
		fmt.Fprintf(w, "demo: could not remove %s: %v\n", dir, err)
		return
	}
	fmt.Fprintf(w, "\nThe demo's folder (%s: its reports and state file) is removed; the demo leaves nothing behind.\n", dir)
}

// runDemo runs one deploy with the given inputs, as the CLI would, in the
// workspace ws, with RELEASES set to the folder the services read their
// builds from.
func runDemo(ctx context.Context, o Options, ws, releases string, inputs map[string]string) int {
	w := o.Stdout
	if err := os.MkdirAll(ws, 0o755); err != nil {
		fmt.Fprintf(w, "demo: %v\n", err)
		return action.ExitError
	}
	cfg, err := config.Parse(func(name string) string { return inputs[name] }, config.Env{Workspace: ws})
	if err != nil {
		fmt.Fprintf(w, "demo: %v\n", err)
		return action.ExitError
	}
	getenv := func(string) string { return "" }
	return action.Run(ctx, action.Deps{
		GHA:     githubactions.New(githubactions.WithGetenv(getenv), githubactions.WithWriter(w)),
		Getenv:  getenv,
		Stdout:  w,
		HTTP:    o.HTTP,
		Clock:   clock.Real{},
		Environ: append(slices.Clip(o.Environ), "RELEASES="+releases),
		Plain:   true,
		Grace:   time.Second,
	}, cfg)
}

// service answers /health as the build named in its release file would.
type service struct {
	release  string
	mu       sync.Mutex
	rng      *rand.Rand // latency jitter, seeded
	requests int
}

func (s *service) current() string {
	b, err := os.ReadFile(s.release)
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

func (s *service) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	version := s.current()
	w.Header().Set("Content-Type", "application/json")
	s.mu.Lock()
	s.requests++
	n := s.requests
	jitter := time.Duration(s.rng.IntN(15)) * time.Millisecond
	s.mu.Unlock()
	switch version {
	case "":
		w.WriteHeader(http.StatusServiceUnavailable)
		json.NewEncoder(w).Encode(map[string]string{"status": "nothing deployed"})
		return
	case badSHA:
		// v2 has a bug: 2 of every 5 requests fail (never 3 in a row, so
		// it takes the error-rate test to see it), and it is slower.
		time.Sleep(20*time.Millisecond + 2*jitter)
		if n%5 == 1 || n%5 == 3 {
			w.WriteHeader(http.StatusInternalServerError)
			json.NewEncoder(w).Encode(map[string]string{"status": "error", "version": version, "error": "nil pointer in checkout"})
			return
		}
	default:
		time.Sleep(5*time.Millisecond + jitter)
	}
	json.NewEncoder(w).Encode(map[string]string{"status": "ok", "version": version})
}
