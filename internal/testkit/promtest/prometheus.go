// Package promtest runs a real Prometheus for tests: Debian's prometheus
// binary, started by the tests themselves on 127.0.0.1 with its own config
// file and a temporary TSDB, scraping services instrumented with
// client_golang every 200ms.
//
// Prometheus 2.42 applies new scrape targets at most every 5 seconds (its
// scrape manager clamps --scrape.discovery-reload-interval to at least 5s),
// so its first sample comes about 5.3s after start and every target added
// later through file_sd or a config reload would wait up to 10s more. One
// Prometheus is therefore shared by the tests of a package, and it scrapes a
// single static target, a hub, which serves the metrics of every Service the
// tests register: a Service is scraped from the next scrape on, 200ms later,
// with its own svc label.
package promtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/prometheus/client_golang/api"
	v1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/prometheus/common/model"
)

// ScrapeInterval is how often Prometheus scrapes the hub.
const ScrapeInterval = 200 * time.Millisecond

// Job is the job label of every series scraped from the hub.
const Job = "immune-test"

// Prometheus is a running Prometheus and the hub it scrapes.
type Prometheus struct {
	// URL is the base URL of Prometheus's HTTP API.
	URL string
	// Ready and FirstSample are how long after start Prometheus answered
	// /-/ready and held its first sample of the hub.
	Ready, FirstSample time.Duration

	api  v1.API
	hub  *hub
	hubs *http.Server // nil for a replica: its primary serves the hub
	cmd  *exec.Cmd
	dir  string
	out  *lockedBuffer
	done chan struct{}

	// bin and hubAddr start a replica: the same binary scraping the same
	// hub.
	bin         string
	hubAddr     string
	replicaOnce sync.Once
	replica     *Prometheus
	replicaErr  error
}

// Shared starts one Prometheus for the tests of a package, on first use.
// Stop it from TestMain after m.Run.
type Shared struct {
	once sync.Once
	p    *Prometheus
	err  error
}

// Get returns the shared Prometheus, starting it on the first call. Without
// the prometheus binary the test is skipped, except in CI (CI=true), where
// that is a failure: CI must install it.
func (s *Shared) Get(t testing.TB) *Prometheus {
	t.Helper()
	bin, err := exec.LookPath("prometheus")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("the prometheus binary is not installed; CI installs Debian's prometheus package in .ci/run")
		}
		t.Skip("the prometheus binary is not installed (apt-get install prometheus); skipping the tests against a real Prometheus")
	}
	s.once.Do(func() {
		s.p, s.err = Start(bin)
		if s.err == nil {
			t.Logf("Prometheus %s ready after %s, first sample after %s", s.p.URL, s.p.Ready.Round(time.Millisecond), s.p.FirstSample.Round(time.Millisecond))
		}
	})
	if s.err != nil {
		t.Fatalf("starting Prometheus: %v", s.err)
	}
	return s.p
}

// Stop stops the shared Prometheus if it was started.
func (s *Shared) Stop() {
	if s.p != nil {
		s.p.Stop()
	}
}

// Start runs bin with its own config and data directory and waits until it
// holds a first sample of the hub.
func Start(bin string) (*Prometheus, error) {
	dir, err := os.MkdirTemp("", "immune-prometheus-")
	if err != nil {
		return nil, err
	}
	p := &Prometheus{dir: dir, hub: &hub{targets: map[string]*prometheus.Registry{}}, out: &lockedBuffer{}}
	hubLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		os.RemoveAll(dir)
		return nil, err
	}
	p.hubs = &http.Server{Handler: p.hub, ReadHeaderTimeout: 5 * time.Second}
	go p.hubs.Serve(hubLn)

	p.bin, p.hubAddr = bin, hubLn.Addr().String()
	configFile, err := writeConfig(dir, p.hubAddr, "a")
	if err != nil {
		p.Stop()
		return nil, err
	}
	if err := p.launchRetrying(bin, configFile, true); err != nil {
		return nil, err
	}
	return p, nil
}

// writeConfig writes the configuration of a Prometheus that scrapes the hub
// at hubAddr. Its replica label (an external label, which queries do not
// show) sets the offset of its scrapes within the interval, as in a real
// HA pair.
func writeConfig(dir, hubAddr, replica string) (string, error) {
	config := fmt.Sprintf(`global:
  scrape_interval: %s
  scrape_timeout: %s
  evaluation_interval: 1m
  external_labels:
    replica: %s
scrape_configs:
  - job_name: %s
    static_configs:
      - targets: ['%s']
`, model.Duration(ScrapeInterval), model.Duration(ScrapeInterval), replica, Job, hubAddr)
	file := filepath.Join(dir, "prometheus.yml")
	return file, os.WriteFile(file, []byte(config), 0o644)
}

// Replica returns a second Prometheus scraping the same hub, as the other
// half of an HA pair: the same configuration but its replica label, so its
// own scrapes (at their own offset) and storage. It starts on the first
// call and stops with p.
func (p *Prometheus) Replica(t testing.TB) *Prometheus {
	t.Helper()
	p.replicaOnce.Do(func() {
		dir, err := os.MkdirTemp("", "immune-prometheus-replica-")
		if err != nil {
			p.replicaErr = err
			return
		}
		r := &Prometheus{dir: dir, hub: p.hub, hubAddr: p.hubAddr, out: &lockedBuffer{}, bin: p.bin}
		configFile, err := writeConfig(dir, p.hubAddr, "b")
		if err != nil {
			r.Stop()
			p.replicaErr = err
			return
		}
		if err := r.launchRetrying(p.bin, configFile, true); err != nil {
			p.replicaErr = err
			return
		}
		p.replica = r
		t.Logf("Prometheus replica %s ready after %s, first sample after %s", r.URL, r.Ready.Round(time.Millisecond), r.FirstSample.Round(time.Millisecond))
	})
	if p.replicaErr != nil {
		t.Fatalf("starting the Prometheus replica: %v", p.replicaErr)
	}
	return p.replica
}

// launchRetrying launches Prometheus, on another port when the free port
// found was taken between the check and Prometheus's listen. It stops p
// when it cannot.
func (p *Prometheus) launchRetrying(bin, configFile string, scrapes bool) error {
	var err error
	for try := 1; ; try++ {
		err = p.launch(bin, configFile, scrapes)
		if err == nil || try == 3 || !strings.Contains(p.out.String(), "address already in use") {
			break
		}
	}
	if err != nil {
		p.Stop()
		return fmt.Errorf("%w\nPrometheus's log:\n%s", err, p.out.String())
	}
	return nil
}

// launch starts Prometheus and waits until it is ready and, when it
// scrapes the hub, holds a first sample of it.
func (p *Prometheus) launch(bin, configFile string, scrapes bool) error {
	port, err := freePort()
	if err != nil {
		return err
	}
	p.URL = "http://" + net.JoinHostPort("127.0.0.1", port)
	start := time.Now()
	p.cmd = exec.Command(bin,
		"--config.file="+configFile,
		"--storage.tsdb.path="+filepath.Join(p.dir, "data"),
		"--web.listen-address=127.0.0.1:"+port,
		"--log.level=warn",
	)
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	// Prometheus dies with the test binary, even when that is killed.
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := p.cmd.Start(); err != nil {
		return err
	}
	p.done = make(chan struct{})
	go func() { p.cmd.Wait(); close(p.done) }()

	client, err := api.NewClient(api.Config{Address: p.URL})
	if err != nil {
		return err
	}
	p.api = v1.NewAPI(client)
	deadline := time.Now().Add(60 * time.Second)
	for p.Ready == 0 {
		if err := p.exited(); err != nil {
			return err
		}
		if time.Now().After(deadline) {
			return errors.New("Prometheus was not ready within 60s")
		}
		if resp, err := http.Get(p.URL + "/-/ready"); err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				p.Ready = time.Since(start)
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	for scrapes && p.FirstSample == 0 {
		if err := p.exited(); err != nil {
			return err
		}
		if time.Now().After(deadline) {
			return errors.New("Prometheus held no sample of the hub within 60s")
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		v, _, _, err := p.api.Query(ctx, fmt.Sprintf(`up{job=%q}`, Job), time.Time{})
		cancel()
		if vec, ok := v.(model.Vector); err == nil && ok && len(vec) > 0 {
			p.FirstSample = time.Since(start)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return nil
}

func (p *Prometheus) exited() error {
	select {
	case <-p.done:
		return fmt.Errorf("Prometheus exited: %v", p.cmd.ProcessState)
	default:
		return nil
	}
}

// Stop stops Prometheus (SIGTERM, then SIGKILL after 10s), its replica and
// the hub, and removes the data directory.
func (p *Prometheus) Stop() {
	if p.replica != nil {
		p.replica.Stop()
	}
	if p.cmd != nil && p.cmd.Process != nil && p.done != nil {
		p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(10 * time.Second):
			p.cmd.Process.Kill()
			<-p.done
		}
	}
	if p.hubs != nil {
		p.hubs.Close()
	}
	os.RemoveAll(p.dir)
}

// Log returns what Prometheus has logged (warnings and errors).
func (p *Prometheus) Log() string { return p.out.String() }

// Query runs an instant query now, for tests that wait for Prometheus to
// catch up.
func (p *Prometheus) Query(ctx context.Context, q string) (model.Value, error) {
	v, _, _, err := p.api.Query(ctx, q, time.Time{})
	return v, err
}

// WaitFor polls q every 50ms until ok accepts its result, and fails the
// test after timeout.
func (p *Prometheus) WaitFor(t testing.TB, q string, timeout time.Duration, ok func(model.Vector) bool) model.Vector {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var last model.Value
	var lastErr error
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		last, lastErr = p.Query(ctx, q)
		cancel()
		if vec, isVec := last.(model.Vector); lastErr == nil && isVec && ok(vec) {
			return vec
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("Prometheus: %s did not reach the expected result within %s; last result %v (error %v)", q, timeout, last, lastErr)
	return nil
}

// hub serves the metrics of every registered Service on one scrape target.
type hub struct {
	mu      sync.Mutex
	targets map[string]*prometheus.Registry
}

func (h *hub) set(id string, reg *prometheus.Registry) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if reg == nil {
		delete(h.targets, id)
	} else {
		h.targets[id] = reg
	}
}

func (h *hub) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h.mu.Lock()
	gs := make(prometheus.Gatherers, 0, len(h.targets))
	for _, reg := range h.targets {
		gs = append(gs, reg)
	}
	h.mu.Unlock()
	promhttp.HandlerFor(gs, promhttp.HandlerOpts{ErrorHandling: promhttp.HTTPErrorOnError}).ServeHTTP(w, r)
}

func freePort() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	_, port, err := net.SplitHostPort(ln.Addr().String())
	return port, err
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
