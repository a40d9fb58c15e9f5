package verdict_test

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/immune-cd/immune/internal/clock"
	"github.com/immune-cd/immune/internal/health"
	"github.com/immune-cd/immune/internal/report"
	"github.com/immune-cd/immune/internal/run"
	"github.com/immune-cd/immune/internal/verdict"
)

// The cost table (testdata/cost.txt): what a long watch of many URLs
// costs, measured on a stepped clock so that an hour takes only as long
// as the work. Every probe is a real HTTP request to one of 100 local
// services run by a child process, so the CPU measured is the watch's
// alone: the prober, the schedule, the verdict engine, the probe log, the
// progress lines and the JSON report. Its figures depend on the machine;
// the golden file is rewritten with -tables.update, never compared.

const costServers = "IMMUNE_COST_SERVERS"

// TestMain runs the services of the cost table when the test binary is
// started as that child.
func TestMain(m *testing.M) {
	if n, _ := strconv.Atoi(os.Getenv(costServers)); n > 0 {
		serveCostServices(n)
		return
	}
	os.Exit(m.Run())
}

// serveCostServices listens on n ports, prints their health URLs on one
// line, and serves until standard input closes. Each fails 1% of its
// requests (evenly spread, never two in a row).
func serveCostServices(n int) {
	var urls []string
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		urls = append(urls, "http://"+ln.Addr().String()+"/health")
		requests := 0
		go http.Serve(ln, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			requests++ // one client, one request at a time per service
			w.Header().Set("Content-Type", "application/json")
			if requests%100 == 0 {
				w.WriteHeader(http.StatusInternalServerError)
			}
			fmt.Fprint(w, `{"status":"ok"}`)
		}))
	}
	fmt.Println(strings.Join(urls, " "))
	io.Copy(io.Discard, os.Stdin)
}

func TestCostTable(t *testing.T) {
	if testing.Short() {
		t.Skip("starts 100 services")
	}
	const urls = 100
	interval := time.Second
	duration := 2 * time.Minute
	if flagSet("tables.full") {
		duration = time.Hour
	}
	child := exec.Command(os.Args[0])
	child.Env = append(os.Environ(), costServers+"="+strconv.Itoa(urls))
	stdin, err := child.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := child.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	child.Stderr = os.Stderr
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stdin.Close(); child.Wait() })
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	targets := strings.Fields(line)

	limits := verdict.DefaultLimits()
	limits.MaxLatency = 300 * time.Millisecond
	limits.Horizon = int(duration / interval)
	limits.Targets = urls
	setupStart := time.Now()
	engine := verdict.New(limits)
	setup := time.Since(setupStart)

	start := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	c := clock.NewStep(start)
	transport := http.DefaultTransport.(*http.Transport).Clone()
	transport.MaxIdleConns, transport.MaxIdleConnsPerHost = 0, 8
	prober := &health.Prober{Client: health.NoRedirects(&http.Client{Transport: transport}), Clock: c, Timeout: interval,
		Header: http.Header{}, Accept: func(code int) bool { return code < 300 }, UserAgent: "immune/cost"}
	log := report.NewProbeLog(start, 0, limits.LatencyPercentile)
	progress := report.NewProgress(limits.LatencyPercentile)
	var last verdict.Decision
	var peak uint64
	var mem runtime.MemStats
	w := &health.Watch{
		Probe: prober.Probe, Clock: c, URLs: targets, Interval: interval, Duration: duration,
		Go: func(probe func()) { probe() },
		Judge: func(p health.Probe) bool {
			var latency time.Duration
			if p.Answered {
				latency = p.Latency
			}
			last = engine.Observe(verdict.Probe(p.URL, p.Failed, latency))
			return last.Outcome == verdict.Regressed
		},
		Record: log.Add,
		OnRound: func(r health.Round) {
			fmt.Fprintln(io.Discard, progress.Line(r))
			if r.N%60 == 0 {
				runtime.ReadMemStats(&mem)
				peak = max(peak, mem.HeapInuse)
			}
		},
	}
	runtime.GC()
	before := cpuTime()
	res := w.Run(context.Background())
	if last.Outcome != verdict.Regressed {
		last = engine.Finish()
	}
	rw := &report.Watch{SHA: "cost", Start: res.Start, End: res.End, Planned: duration, Verdict: run.Verdict(last.Outcome.String()), Reason: last.Reason, Evidence: &last.Evidence}
	log.Fill(rw)
	data, err := report.JSON(&report.Run{Mode: "watch", Environment: "production", Verdict: rw.Verdict, Reason: rw.Reason, Watch: rw})
	if err != nil {
		t.Fatal(err)
	}
	cpu := cpuTime() - before
	runtime.ReadMemStats(&mem)
	peak = max(peak, mem.HeapInuse)

	if res.Probes != urls*int(duration/interval) || last.Outcome != verdict.Healthy || rw.Aggregates == nil {
		t.Fatalf("%d probes, verdict %v (%s), aggregated %v", res.Probes, last.Outcome, last.Reason, rw.Aggregates != nil)
	}
	perObs := engineCost()
	var b strings.Builder
	fmt.Fprintf(&b, "Cost of a watch: %d URLs probed every %v for %v on a stepped clock (%d probes), each a real HTTP\n", urls, interval, duration, res.Probes)
	fmt.Fprintf(&b, "request to one of %d local services in another process (1%% of requests fail). CPU is this process's user and\n", urls)
	b.WriteString("system time for the whole watch: prober, schedule, verdict engine, probe log, progress lines and the JSON\n")
	fmt.Fprintf(&b, "report. Measured with %s on %d cores (%s/%s); the figures vary by machine and load.\n\n", runtime.Version(), runtime.NumCPU(), runtime.GOOS, runtime.GOARCH)
	fmt.Fprintf(&b, "CPU per probe, end to end          %.0f µs\n", float64(cpu.Microseconds())/float64(res.Probes))
	fmt.Fprintf(&b, "verdict engine alone               %.2f µs per observation (100 URLs, latency rule on)\n", perObs.Seconds()*1e6)
	worst, worstAt := setUpCost()
	fmt.Fprintf(&b, "engine set-up (choosing tests)     %.2f ms for this watch; at most %.1f ms for any horizon (%s)\n",
		float64(setup.Microseconds())/1000, float64(worst.Microseconds())/1000, worstAt)
	fmt.Fprintf(&b, "peak Go heap in use                %.1f MB\n", float64(peak)/1e6)
	fmt.Fprintf(&b, "report.json                        %.2f MB: %d failed probes in full, aggregates for %d URLs and %d minutes\n",
		float64(len(data))/1e6, rw.Aggregates.Kept, len(rw.Aggregates.URLs), len(rw.Aggregates.Minutes))
	table := b.String()
	t.Logf("\n%s", table)
	if flagSet("tables.full") && flagSet("tables.update") {
		if err := os.WriteFile("testdata/cost.txt", []byte(table), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// engineCost is the verdict engine's time per observation over a 100-URL
// watch, as BenchmarkObserveFleet measures it.
func engineCost() time.Duration {
	l := verdict.DefaultLimits()
	l.MaxLatency, l.Horizon, l.Targets = 300*time.Millisecond, 3600, 100
	obs := make([]verdict.Observation, 10000)
	for i := range obs {
		obs[i] = verdict.Probe(fmt.Sprintf("https://app-%d.example.com/healthz", i%100), i%97 == 0, time.Duration(20+i%50)*time.Millisecond)
	}
	r := testing.Benchmark(func(b *testing.B) {
		e := verdict.New(l)
		b.ResetTimer()
		i := 0
		for b.Loop() {
			e.Observe(obs[i%len(obs)])
			i++
		}
	})
	return time.Duration(r.NsPerOp())
}

// flagSet reads a boolean flag of the package's tests (tables_test.go).
func flagSet(name string) bool {
	return flag.Lookup(name).Value.(flag.Getter).Get().(bool)
}

// setUpCost is the longest an engine took to choose and plan its tests,
// over watches of 1 and 100 URLs from 10 to a million probes each.
func setUpCost() (worst time.Duration, at string) {
	for _, urls := range []int{1, 100} {
		for _, h := range []int{10, 100, 300, 600, 1000, 3600, 86400, 1_000_000} {
			l := verdict.DefaultLimits()
			l.MaxLatency, l.Horizon, l.Targets = 300*time.Millisecond, h, urls
			start := time.Now()
			verdict.New(l)
			if d := time.Since(start); d > worst {
				worst, at = d, fmt.Sprintf("%d URLs, %d probes each", urls, h)
				if urls == 1 {
					at = fmt.Sprintf("1 URL, %d probes", h)
				}
			}
		}
	}
	return worst, at
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
