package demo

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/immune-cd/immune/internal/action"
)

// The canary act: a fleet of three stable instances and one canary instance,
// each a real HTTP server on 127.0.0.1 that answers as the build named in
// its track's release file. A deploy with a canary first puts the build on
// the canary alone (IMMUNE_STAGE=canary), compares it with the stable fleet
// in the same rounds, and only then releases it everywhere
// (IMMUNE_STAGE=full).

// The builds of the canary act.
const (
	v2SHA = "5c0ffee2b7d24c6e8f1a2b3c4d5e6f708192a3b4" // good; a downstream outage hits during its canary
	v3SHA = "9badd0c41c9a8f6e5d4c3b2a1908f7e6d5c4b3a2" // fails 2 of every 5 requests
)

// stagedCommand deploys by IMMUNE_STAGE: the canary's release file alone,
// or the stable fleet's and the canary's.
const stagedCommand = `cd "$RELEASES"
printf '%s\n' "$IMMUNE_SHA" > release.tmp
case "$IMMUNE_STAGE" in
canary) mv release.tmp release-canary ;;
*) cp release.tmp release-canary && mv release.tmp release-stable ;;
esac
echo "released $IMMUNE_SHA to the $IMMUNE_STAGE stage ($IMMUNE_REASON)"`

// outageFor is how long the downstream outage of act 1 lasts, from the
// canary's first answer: less than the canary's watch, so that it is over
// when the whole fleet is watched.
const outageFor = 2 * time.Second

// fleet is the demo's instances and the downstream they share.
type fleet struct {
	dir      string
	mu       sync.Mutex
	rng      *rand.Rand
	requests map[string]int // per instance
	outageAt time.Time      // when the outage started; zero before it
	outage   bool           // an outage starts with the canary's next build
}

func (f *fleet) release(track string) string {
	b, err := os.ReadFile(filepath.Join(f.dir, "release-"+track))
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// instance answers /health as its track's build; name tells it from the
// track's other instances. The outage fails every third request of each
// instance, the canary's and the stable ones' alike, from the offset-th:
// the instances fail in turn, not all at once.
func (f *fleet) instance(track, name string, offset int) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		version := f.release(track)
		f.mu.Lock()
		n := f.requests[name]
		f.requests[name]++
		if f.outage && track == "canary" && version == v2SHA && f.outageAt.IsZero() {
			f.outageAt = time.Now()
		}
		down := !f.outageAt.IsZero() && time.Since(f.outageAt) < outageFor && (n+offset)%3 == 2
		jitter := time.Duration(f.rng.IntN(10)) * time.Millisecond
		f.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		time.Sleep(3*time.Millisecond + jitter)
		switch {
		case version == "":
			w.WriteHeader(http.StatusServiceUnavailable)
			json.NewEncoder(w).Encode(map[string]string{"status": "nothing deployed"})
		case down:
			w.WriteHeader(http.StatusBadGateway)
			json.NewEncoder(w).Encode(map[string]string{"status": "error", "version": version, "error": "payments provider unavailable"})
		case version == v3SHA && (n%5 == 1 || n%5 == 3):
			w.WriteHeader(http.StatusInternalServerError)
			json.NewEncoder(w).Encode(map[string]string{"status": "error", "version": version, "error": "nil pointer in checkout"})
		default:
			json.NewEncoder(w).Encode(map[string]string{"status": "ok", "version": version})
		}
	})
}

// serve starts one instance and returns its health URL.
func serve(h http.Handler, closers *[]func()) (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ln)
	*closers = append(*closers, func() { srv.Close() })
	return "http://" + ln.Addr().String() + "/health", nil
}

// Canary runs the canary act alone and returns 0 when it went as it should.
func Canary(ctx context.Context, o Options) int {
	dir, err := os.MkdirTemp("", "immune-demo-canary-")
	if err != nil {
		fmt.Fprintf(o.Stdout, "demo: %v\n", err)
		return action.ExitError
	}
	defer removeDemo(o.Stdout, dir)
	return canaryAct(ctx, o, dir)
}

func canaryAct(ctx context.Context, o Options, dir string) int {
	w := o.Stdout
	if err := os.MkdirAll(dir, 0o755); err != nil {
		fmt.Fprintf(w, "demo: %v\n", err)
		return action.ExitError
	}
	f := &fleet{dir: dir, rng: rand.New(rand.NewPCG(3, 4)), requests: map[string]int{}}
	for _, track := range []string{"stable", "canary"} {
		if err := os.WriteFile(filepath.Join(dir, "release-"+track), []byte(goodSHA+"\n"), 0o644); err != nil {
			fmt.Fprintf(w, "demo: %v\n", err)
			return action.ExitError
		}
	}
	var closers []func()
	defer func() {
		for _, c := range closers {
			c()
		}
	}()
	var stable []string
	for i := range 3 {
		u, err := serve(f.instance("stable", fmt.Sprintf("stable-%d", i+1), i), &closers)
		if err != nil {
			fmt.Fprintf(w, "demo: %v\n", err)
			return action.ExitError
		}
		stable = append(stable, u)
	}
	canary, err := serve(f.instance("canary", "canary", 1), &closers)
	if err != nil {
		fmt.Fprintf(w, "demo: %v\n", err)
		return action.ExitError
	}
	fmt.Fprintf(w, "immune demo, canary act: a fleet of three stable instances and one canary instance on 127.0.0.1, all on v1 (%s).\n", goodSHA[:7])
	fmt.Fprintf(w, "Each deploy puts the build on the canary first (IMMUNE_STAGE=canary), compares it with the stable fleet in the same\n")
	fmt.Fprintf(w, "rounds, and only then releases it to every instance (IMMUNE_STAGE=full). The command (RELEASES is the folder\n")
	fmt.Fprintf(w, "the instances read their build from):\n%s\n", indent(stagedCommand))
	fmt.Fprintf(w, "Each round below shows the canary's mark, then the control's: the three stable instances, in order\n")
	fmt.Fprintf(w, "(✓ healthy, ✗ failed, · not up yet), and what failed so far on each side.\n\n")

	inputs := func(sha, previous string) map[string]string {
		return map[string]string{
			"mode":              "deploy",
			"sha":               sha,
			"previous-sha":      previous, // then the state file: the last healthy deploy
			"canary-command":    stagedCommand,
			"deploy-command":    stagedCommand,
			"canary-health-url": canary,
			"health-url":        strings.Join(stable, "\n"),
			"interval":          "100ms",
			"timeout":           "100ms",
			"canary-duration":   "5s",
			"duration":          "1500ms",
			"startup-timeout":   "1s",
			"rollback-duration": "1s",
			"expect-version":    "json:version",
			"state-file":        filepath.Join(dir, "state.json"),
		}
	}

	fmt.Fprintf(w, "━━ Deploy v2 (%s) with a canary; for %s of its canary a downstream outage fails 1 in 3 requests on every\n", v2SHA[:7], outageFor)
	fmt.Fprintf(w, "   instance, the canary and each stable one alike\n")
	f.mu.Lock()
	f.outage = true
	f.mu.Unlock()
	first := runDemo(ctx, o, workspace(dir, 1, v2SHA), dir, inputs(v2SHA, goodSHA))
	fmt.Fprintf(w, "\n━━ Deploy v3 (%s) with a canary; v3 fails 2 of every 5 requests on the canary\n", v3SHA[:7])
	second := runDemo(ctx, o, workspace(dir, 2, v3SHA), dir, inputs(v3SHA, ""))

	fmt.Fprintf(w, "\n━━ Result\n")
	fmt.Fprintf(w, "v2 exit code %d: the outage hit the canary and the stable fleet alike, so it was not the build's doing; v2 went everywhere.\n", first)
	fmt.Fprintf(w, "v3 exit code %d: worse than the stable fleet at the same time, so the canary was removed; the stable instances run %s and never ran v3.\n", second, short(f.release("stable")))
	if first != action.ExitOK || second != action.ExitRegressed || f.release("stable") != v2SHA || f.release("canary") != v2SHA {
		fmt.Fprintf(w, "demo: the canary act did not go as expected\n")
		return action.ExitRegressed
	}
	fmt.Fprintf(w, "A before/after comparison would have blamed v2 for the outage; the canary compares with the rest of the fleet at the same time.\n")
	return action.ExitOK
}

func indent(s string) string {
	return "  " + strings.ReplaceAll(s, "\n", "\n  ")
}

func short(s string) string { return s[:min(7, len(s))] }
