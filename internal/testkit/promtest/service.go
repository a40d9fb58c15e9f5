package promtest

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Service is a real HTTP service instrumented with client_golang, as a
// production service would be: http_requests_total{code,version,track} and
// the latency histogram http_request_duration_seconds{version,track}. Tests
// control its version, share of errors, latency and restarts, and drive it
// with real requests. Every series also carries svc (the service's id) and
// the extra labels it was registered with.
type Service struct {
	// URL is the service's own address; GET / is one request.
	URL string
	// ID is the value of its svc label.
	ID string

	prom   *Prometheus
	labels prometheus.Labels
	lazy   bool
	churn  bool
	errorN int64 // errors served, for a churning service's labels
	client *http.Client

	mu        sync.Mutex
	version   string
	track     string
	errShare  float64
	latency   time.Duration
	n         int64 // requests served by this version since it was set
	reg       *prometheus.Registry
	requests  *prometheus.CounterVec
	durations *prometheus.HistogramVec
	down      bool
	truth     map[string]*Counts // per version, across restarts
	life      map[string]*Counts // per version, since the last restart
	script    map[string]Behaviour
	deploys   []string
}

// Behaviour is how one version serves (see Service.Script).
type Behaviour struct {
	ErrorShare float64
	Latency    time.Duration
}

// Counts is what the service really served.
type Counts struct{ Requests, Errors int64 }

// ServiceOptions configures a Service.
type ServiceOptions struct {
	Version string
	Track   string // default "stable"
	// Labels are added to every series (e.g. an environment).
	Labels map[string]string
	// LazySeries leaves each series to appear with its first request, as
	// most services do. By default the 200 and 500 series of the version
	// exist from the start at zero, so a watch sees them before traffic.
	LazySeries bool
	// ChurnErrors counts each error in a series of its own (a request
	// label with a fresh value), as a label that changes all the time (a
	// request id, a pod name under churn) does.
	ChurnErrors bool
}

var serviceIDs atomic.Int64

// NewService starts a Service and registers it with the hub. It stops when
// the test ends.
func (p *Prometheus) NewService(t testing.TB, opt ServiceOptions) *Service {
	t.Helper()
	if opt.Track == "" {
		opt.Track = "stable"
	}
	s := &Service{
		ID:      fmt.Sprintf("svc%d", serviceIDs.Add(1)),
		prom:    p,
		lazy:    opt.LazySeries,
		churn:   opt.ChurnErrors,
		version: opt.Version,
		track:   opt.Track,
		truth:   map[string]*Counts{},
		life:    map[string]*Counts{},
		client:  &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}},
	}
	s.labels = prometheus.Labels{"svc": s.ID}
	for k, v := range opt.Labels {
		s.labels[k] = v
	}
	s.mu.Lock()
	s.newLife()
	s.mu.Unlock()
	srv := httptest.NewServer(http.HandlerFunc(s.serve))
	s.URL = srv.URL
	t.Cleanup(func() {
		p.hub.set(s.ID, nil)
		srv.Close()
		s.client.CloseIdleConnections()
	})
	return s
}

// newLife starts a new process: fresh counters at zero. s.mu is held.
func (s *Service) newLife() {
	s.life = map[string]*Counts{}
	s.reg = prometheus.NewRegistry()
	s.requests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "http_requests_total", Help: "Requests served, by status code.",
	}, []string{"code", "version", "track", "request"})
	s.durations = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "http_request_duration_seconds", Help: "Time to serve a request.",
		Buckets: []float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1},
	}, []string{"version", "track"})
	wrapped := prometheus.WrapRegistererWith(s.labels, s.reg)
	wrapped.MustRegister(s.requests, s.durations)
	s.initSeries()
	if !s.down {
		s.prom.hub.set(s.ID, s.reg)
	}
}

// initSeries creates the version's series at zero, unless lazy. s.mu is held.
func (s *Service) initSeries() {
	if s.lazy {
		return
	}
	// An empty request label is no label: Prometheus drops it.
	s.requests.WithLabelValues("200", s.version, s.track, "")
	s.requests.WithLabelValues("500", s.version, s.track, "")
	s.durations.WithLabelValues(s.version, s.track)
}

func (s *Service) serve(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodPost && r.URL.Path == "/deploy" {
		// A deploy command's admin call: switch versions, as a real deploy
		// would; not a request of the service's.
		version := r.URL.Query().Get("sha")
		if version == "" {
			http.Error(w, "sha is required", http.StatusBadRequest)
			return
		}
		s.Deploy(version)
		fmt.Fprintf(w, "deployed %s\n", version)
		return
	}
	start := time.Now()
	s.mu.Lock()
	version, track, latency := s.version, s.track, s.latency
	fail := hits(s.n, s.errShare)
	s.n++
	s.mu.Unlock()

	if latency > 0 {
		time.Sleep(latency)
	}
	code := http.StatusOK
	if fail {
		code = http.StatusInternalServerError
	}
	w.WriteHeader(code)
	fmt.Fprintf(w, "%s\n", version)

	// The counters and the truth move together, under one lock, so a test
	// can compare what Prometheus scraped with what was served.
	s.mu.Lock()
	defer s.mu.Unlock()
	request := ""
	if fail && s.churn {
		s.errorN++
		request = fmt.Sprintf("r%d", s.errorN)
	}
	s.requests.WithLabelValues(fmt.Sprint(code), version, track, request).Inc()
	s.durations.WithLabelValues(version, track).Observe(time.Since(start).Seconds())
	for _, m := range []map[string]*Counts{s.truth, s.life} {
		c := m[version]
		if c == nil {
			c = &Counts{}
			m[version] = c
		}
		c.Requests++
		if fail {
			c.Errors++
		}
	}
}

// hits spreads a share of requests evenly and deterministically: of the
// first k requests, exactly floor(k × share) fail (with 0.3: the 4th, 7th,
// 10th, 14th, ...).
func hits(n int64, share float64) bool {
	if share <= 0 {
		return false
	}
	return int64(float64(n+1)*share) > int64(float64(n)*share)
}

// SetErrorShare makes this share of the following requests fail with 500.
func (s *Service) SetErrorShare(share float64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.errShare, s.n = share, 0
}

// SetLatency delays every following answer by d.
func (s *Service) SetLatency(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.latency = d
}

// Deploy switches the running version (a deploy that replaces the
// process in place: the counters go on), with its scripted behaviour if it
// has one. POST /deploy?sha=<version> does the same.
func (s *Service) Deploy(version string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.version, s.n = version, 0
	s.deploys = append(s.deploys, version)
	if b, ok := s.script[version]; ok {
		s.errShare, s.latency = b.ErrorShare, b.Latency
	}
	s.initSeries()
}

// Script sets how each version serves once deployed, and at once for the
// running version if the script has it.
func (s *Service) Script(script map[string]Behaviour) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.script = script
	if b, ok := script[s.version]; ok {
		s.errShare, s.latency, s.n = b.ErrorShare, b.Latency, 0
	}
}

// Deploys lists the versions deployed, in order.
func (s *Service) Deploys() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.deploys...)
}

// Version is the running version.
func (s *Service) Version() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.version
}

// Restart restarts the process: every counter starts again from zero, as
// after a crash or a rolling restart.
func (s *Service) Restart() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.newLife()
}

// SetDown takes the service's metrics off the hub (true) or back on
// (false): Prometheus marks its series stale, as when a target goes down.
func (s *Service) SetDown(down bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.down = down
	if down {
		s.prom.hub.set(s.ID, nil)
	} else {
		s.prom.hub.set(s.ID, s.reg)
	}
}

// Truth returns what the service served for version.
func (s *Service) Truth(version string) Counts {
	s.mu.Lock()
	defer s.mu.Unlock()
	if c := s.truth[version]; c != nil {
		return *c
	}
	return Counts{}
}

// Current returns what the service's counters hold for version: what it
// served since its last restart.
func (s *Service) Current(version string) Counts {
	s.mu.Lock()
	defer s.mu.Unlock()
	if c := s.life[version]; c != nil {
		return *c
	}
	return Counts{}
}

// Send sends n requests one after the other.
func (s *Service) Send(t testing.TB, n int) {
	t.Helper()
	for range n {
		if err := s.get(context.Background()); err != nil {
			t.Fatalf("request to the test service: %v", err)
		}
	}
}

func (s *Service) get(ctx context.Context) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.URL, nil)
	if err != nil {
		return err
	}
	resp, err := s.client.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	return nil
}

// Load sends perSecond requests a second in the background, each on its own
// so that latency does not slow the rate, until the returned stop is
// called; stop waits for the requests in flight.
func (s *Service) Load(perSecond int) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(time.Second / time.Duration(perSecond))
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
				wg.Add(1)
				go func() {
					defer wg.Done()
					s.get(context.WithoutCancel(ctx))
				}()
			}
		}
	}()
	var once sync.Once
	return func() {
		once.Do(func() {
			cancel()
			wg.Wait()
		})
	}
}
