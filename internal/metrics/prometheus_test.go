package metrics

// Tests against a real Prometheus (Debian's binary, see package promtest)
// scraping real services instrumented with client_golang. They check what
// the adapter reports; the verdicts built on these readings are tested where
// the verdict engine consumes them.

import (
	"context"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/common/model"

	"github.com/immune-cd/immune/internal/clock"
	"github.com/immune-cd/immune/internal/promql"
	"github.com/immune-cd/immune/internal/testkit/faultproxy"
	"github.com/immune-cd/immune/internal/testkit/promtest"
)

var prom promtest.Shared

func TestMain(m *testing.M) {
	code := m.Run()
	prom.Stop()
	os.Exit(code)
}

const (
	sha     = "4d8b3f2e1c0a9b8c7d6e5f4a3b2c1d0e9f8a7b6c"
	prevSHA = "9f2c1e7a3b4d5c6e7f8091a2b3c4d5e6f7081920"
)

// watch is a Source on the real clock with a log, and its looks.
type watch struct {
	t     *testing.T
	src   *Source
	mu    sync.Mutex
	log   []string
	looks []Reading // of metric 0
}

func newWatch(t *testing.T, url string, specs []Spec, vars promql.Vars, header http.Header) *watch {
	t.Helper()
	w := &watch{t: t}
	src, err := New(specs, vars, Options{
		URL:            url,
		Header:         header,
		HTTP:           &http.Client{},
		Clock:          clock.Real{},
		Backoff:        50 * time.Millisecond,
		RequestTimeout: 2 * time.Second,
		Settle:         settle,
		Log: func(msg string) {
			w.mu.Lock()
			defer w.mu.Unlock()
			w.log = append(w.log, msg)
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	w.src = src
	return w
}

// look takes one look and returns its readings, checking the invariants
// every reading keeps.
func (w *watch) look() []Reading {
	w.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	l := w.src.Look(ctx)
	for _, r := range l.Readings {
		if r.Errors > r.Requests || r.Requests < 0 || r.Errors < 0 {
			w.t.Errorf("look of %s: %d errors of %d requests", r.Metric, r.Errors, r.Requests)
		}
		if !r.HasData() && (r.Requests != 0 || r.Errors != 0 || r.Value != 0 || r.OutOfBounds) {
			w.t.Errorf("look of %s without data carries numbers: %+v", r.Metric, r)
		}
	}
	w.looks = append(w.looks, l.Readings[0])
	return l.Readings
}

// lookEvery looks every interval until stop is closed.
func (w *watch) lookEvery(interval time.Duration, stop <-chan struct{}) {
	for {
		w.look()
		select {
		case <-stop:
			return
		case <-time.After(interval):
		}
	}
}

// sums adds up the looks so far.
func (w *watch) sums() (requests, errors int64, resets int) {
	for _, r := range w.looks {
		requests += r.Requests
		errors += r.Errors
		resets += r.Resets
	}
	return
}

func (w *watch) logText() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return strings.Join(w.log, "\n")
}

// rateOf is a rate metric over one service's requests of ${SHA}.
func rateOf(svc *promtest.Service) Spec {
	return Spec{
		Name:   "http-errors",
		Errors: fmt.Sprintf(`http_requests_total{svc=%q,version="${SHA}",code=~"5.."}`, svc.ID),
		Total:  fmt.Sprintf(`http_requests_total{svc=%q,version="${SHA}"}`, svc.ID),
	}
}

// caughtUp waits until Prometheus holds the service's counters for version
// as they are, and the look's settle has passed, so that the next look sees
// everything served, and returns what the service served in all.
func caughtUp(t *testing.T, p *promtest.Prometheus, svc *promtest.Service, version string) promtest.Counts {
	t.Helper()
	current := svc.Current(version)
	q := fmt.Sprintf(`sum(http_requests_total{svc=%q,version=%q})`, svc.ID, version)
	p.WaitFor(t, q, 10*time.Second, func(v model.Vector) bool { return len(v) == 1 && int64(v[0].Value) == current.Requests })
	time.Sleep(2 * settle)
	return svc.Truth(version)
}

// settle is the looks' (Options.Settle): the test's scrapes, every 200ms,
// land within milliseconds.
const settle = 20 * time.Millisecond

// seriesPresent waits until the service's series of version are scraped.
func seriesPresent(t *testing.T, p *promtest.Prometheus, svc *promtest.Service, version string) {
	t.Helper()
	p.WaitFor(t, fmt.Sprintf(`http_requests_total{svc=%q,version=%q}`, svc.ID, version), 10*time.Second, func(v model.Vector) bool { return len(v) > 0 })
}

var vars = promql.Vars{SHA: sha, PreviousSHA: prevSHA, Environment: "production"}

// TestPrometheusRateUnderRealTraffic: under real traffic read every 300ms,
// the looks add up exactly to what the service served, and no look has more
// errors than requests.
func TestPrometheusRateUnderRealTraffic(t *testing.T) {
	t.Parallel()
	p := prom.Get(t)
	svc := p.NewService(t, promtest.ServiceOptions{Version: sha})
	svc.SetErrorShare(0.05)
	seriesPresent(t, p, svc, sha)
	w := newWatch(t, p.URL, []Spec{rateOf(svc)}, vars, nil)
	if r := w.look()[0]; !r.HasData() || r.NewSeries != 2 || r.Requests != 0 {
		t.Fatalf("first look = %+v, want the two series as starting points", r)
	}
	stop := svc.Load(100)
	done := make(chan struct{})
	go func() { time.Sleep(3 * time.Second); stop(); close(done) }()
	w.lookEvery(300*time.Millisecond, done)
	truth := caughtUp(t, p, svc, sha)
	w.look()
	n, x, _ := w.sums()
	if n != truth.Requests || x != truth.Errors {
		t.Errorf("looks add up to %d requests, %d errors; the service served %d, %d", n, x, truth.Requests, truth.Errors)
	}
	busy := 0
	for _, r := range w.looks {
		if r.Requests > 0 {
			busy++
		}
	}
	t.Logf("%d looks, %d with requests; %d requests, %d errors", len(w.looks), busy, n, x)
	if truth.Requests < 150 || busy < 5 {
		t.Errorf("too little traffic to test anything: %d requests in %d looks", truth.Requests, busy)
	}
}

// TestPrometheusCounterReset: a restart mid-watch starts the counters from
// zero; it is counted as a reset, and the requests after it are counted.
func TestPrometheusCounterReset(t *testing.T) {
	t.Parallel()
	p := prom.Get(t)

	t.Run("exact when both lives are seen", func(t *testing.T) {
		t.Parallel()
		svc := p.NewService(t, promtest.ServiceOptions{Version: sha})
		svc.SetErrorShare(0.1)
		seriesPresent(t, p, svc, sha)
		w := newWatch(t, p.URL, []Spec{rateOf(svc)}, vars, nil)
		w.look()
		svc.Send(t, 120)
		caughtUp(t, p, svc, sha)
		w.look() // sees the old life's last values
		svc.Restart()
		svc.Send(t, 50) // the new life stays below the old one's count
		truth := caughtUp(t, p, svc, sha)
		r := w.look()[0]
		if r.Resets != 2 || r.Requests != 50 || r.Errors != 5 {
			t.Errorf("look after the restart = %+v, want 2 resets (200 and 500), 50 requests, 5 errors", r)
		}
		if n, x, _ := w.sums(); n != truth.Requests || x != truth.Errors {
			t.Errorf("looks add up to %d, %d; served %d, %d", n, x, truth.Requests, truth.Errors)
		}
	})

	t.Run("under load", func(t *testing.T) {
		t.Parallel()
		svc := p.NewService(t, promtest.ServiceOptions{Version: sha})
		svc.SetErrorShare(0.05)
		seriesPresent(t, p, svc, sha)
		w := newWatch(t, p.URL, []Spec{rateOf(svc)}, vars, nil)
		stop := svc.Load(100)
		done := make(chan struct{})
		go func() {
			time.Sleep(1500 * time.Millisecond)
			svc.Restart()
			time.Sleep(1500 * time.Millisecond)
			stop()
			close(done)
		}()
		w.lookEvery(300*time.Millisecond, done)
		truth := caughtUp(t, p, svc, sha)
		w.look()
		n, x, resets := w.sums()
		t.Logf("served %d requests, %d errors; counted %d, %d, %d resets", truth.Requests, truth.Errors, n, x, resets)
		// What the old life served after the last look before the restart
		// is gone with it (as for any reader of counters); the rest counts.
		if resets < 1 || n > truth.Requests || n < truth.Requests*2/3 || x > truth.Errors {
			t.Errorf("counted %d requests (%d resets), served %d", n, resets, truth.Requests)
		}
	})
}

// TestPrometheusNoData: an empty result and NaN are "no data", not a
// failure and not a pass.
func TestPrometheusNoData(t *testing.T) {
	t.Parallel()
	p := prom.Get(t)
	svc := p.NewService(t, promtest.ServiceOptions{Version: sha})
	seriesPresent(t, p, svc, sha)
	w := newWatch(t, p.URL, []Spec{
		{Name: "never-deployed", Errors: fmt.Sprintf(`http_requests_total{svc=%q,version="nope",code=~"5.."}`, svc.ID), Total: fmt.Sprintf(`http_requests_total{svc=%q,version="nope"}`, svc.ID)},
		{Name: "p90-no-traffic", Query: fmt.Sprintf(`histogram_quantile(0.9, sum by (le) (rate(http_request_duration_seconds_bucket{svc=%q}[1s])))`, svc.ID), Max: f64(0.1)},
		{Name: "error-ratio-no-traffic", Query: fmt.Sprintf(`sum(rate(http_requests_total{svc=%q,code="500"}[1s])) / sum(rate(http_requests_total{svc=%q}[1s]))`, svc.ID, svc.ID), Max: f64(0.01)},
		{Name: "empty-threshold", Query: `up{job="no-such-job"}`, Min: f64(1)},
	}, vars, nil)
	// rate() needs two samples in its window.
	time.Sleep(2 * promtest.ScrapeInterval)
	rs := w.look()
	want := []NoData{NoDataEmpty, NoDataNaN, NoDataNaN, NoDataEmpty}
	for i, r := range rs {
		if r.NoData != want[i] || r.Error != "" || r.Attempts != 1 {
			t.Errorf("%s: %+v, want no data (%s) without an error", r.Metric, r, want[i])
		}
	}
}

// switchProxy stands between the adapter and Prometheus: it passes
// requests, answers 503, or drops the connection.
type switchProxy struct {
	mode     atomic.Value // "up", "503" or "drop"
	failNext atomic.Int64 // answer this many next requests with 503
	requests atomic.Int64
	check    func(r *http.Request) (status int, body string) // optional gate
	url      string
}

func newSwitchProxy(t *testing.T, target string) *switchProxy {
	u, err := url.Parse(target)
	if err != nil {
		t.Fatal(err)
	}
	sp := &switchProxy{}
	sp.mode.Store("up")
	rp := httputil.NewSingleHostReverseProxy(u)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sp.requests.Add(1)
		if sp.check != nil {
			if status, body := sp.check(r); status != 0 {
				http.Error(w, body, status)
				return
			}
		}
		mode := sp.mode.Load()
		if n := sp.failNext.Load(); n > 0 && sp.failNext.CompareAndSwap(n, n-1) {
			mode = "503"
		}
		switch mode {
		case "503":
			io.Copy(io.Discard, r.Body)
			http.Error(w, "upstream unavailable", http.StatusServiceUnavailable)
		case "drop":
			conn, _, err := w.(http.Hijacker).Hijack()
			if err == nil {
				conn.Close()
			}
		default:
			rp.ServeHTTP(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	sp.url = srv.URL
	return sp
}

// TestPrometheusDown: Prometheus unreachable for part of the watch is
// retried within each look and reported; the requests served meanwhile are
// counted at the first look after it. Down for all of the watch, every look
// says so.
func TestPrometheusDown(t *testing.T) {
	t.Parallel()
	p := prom.Get(t)

	t.Run("part of the watch", func(t *testing.T) {
		t.Parallel()
		svc := p.NewService(t, promtest.ServiceOptions{Version: sha})
		svc.SetErrorShare(0.1)
		seriesPresent(t, p, svc, sha)
		px := newSwitchProxy(t, p.URL)
		w := newWatch(t, px.url, []Spec{rateOf(svc)}, vars, nil)
		w.look()
		svc.Send(t, 40)
		caughtUp(t, p, svc, sha)
		if r := w.look()[0]; r.Requests != 40 || r.Errors != 4 {
			t.Fatalf("before the outage: %+v", r)
		}
		for _, mode := range []string{"503", "drop"} {
			px.mode.Store(mode)
			before := px.requests.Load()
			svc.Send(t, 30)
			r := w.look()[0]
			// Go's transport itself resends a request once on a dropped
			// connection, so the proxy sees 3 to 6.
			if sent := px.requests.Load() - before; r.NoData != NoDataUnreachable || r.Attempts != 3 || sent < 3 || sent > 6 {
				t.Errorf("outage (%s): %+v after %d requests, want unreachable after 3 attempts", mode, r, px.requests.Load()-before)
			}
			t.Logf("outage (%s): %s", mode, r.Error)
		}
		px.mode.Store("up")
		truth := caughtUp(t, p, svc, sha)
		if r := w.look()[0]; r.Requests != 60 || r.Errors != 6 {
			t.Errorf("after the outage: %+v, want the 60 requests and 6 errors served during it", r)
		}
		if n, x, _ := w.sums(); n != truth.Requests || x != truth.Errors {
			t.Errorf("looks add up to %d, %d; served %d, %d", n, x, truth.Requests, truth.Errors)
		}
		// The outage's first look logs its retries; the next one's reading
		// says the outage goes on.
		if log := w.logText(); strings.Count(log, "retrying in") != 2 {
			t.Errorf("log = %s\nwant the 2 retries of the outage's first look", log)
		}
	})

	t.Run("network faults", func(t *testing.T) {
		t.Parallel()
		svc := p.NewService(t, promtest.ServiceOptions{Version: sha})
		seriesPresent(t, p, svc, sha)
		fp := faultproxy.Start(t, strings.TrimPrefix(p.URL, "http://"))
		w := &watch{t: t}
		// Faults apply to new connections: no keep-alive, and a short
		// request timeout for the connection that never answers.
		src, err := New([]Spec{rateOf(svc)}, vars, Options{
			URL:            "http://" + fp.Addr(),
			HTTP:           &http.Client{Transport: &http.Transport{DisableKeepAlives: true}},
			Clock:          clock.Real{},
			Backoff:        20 * time.Millisecond,
			RequestTimeout: 300 * time.Millisecond,
			Settle:         settle,
		})
		if err != nil {
			t.Fatal(err)
		}
		w.src = src
		w.look()
		for _, f := range []faultproxy.Faults{{Reset: true}, {Blackhole: true}} {
			fp.Set(f)
			svc.Send(t, 10)
			start := time.Now()
			r := w.look()[0]
			if r.NoData != NoDataUnreachable || r.Attempts != 3 {
				t.Errorf("%+v: %+v, want unreachable after 3 attempts", f, r)
			}
			t.Logf("%+v: %s, after %s", f, r.Error, time.Since(start).Round(10*time.Millisecond))
		}
		fp.Set(faultproxy.Faults{})
		caughtUp(t, p, svc, sha)
		if r := w.look()[0]; r.Requests != 20 {
			t.Errorf("after the faults: %+v, want the 20 requests served during them", r)
		}
	})

	t.Run("all of the watch", func(t *testing.T) {
		t.Parallel()
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		closed := "http://" + ln.Addr().String()
		ln.Close()
		w := newWatch(t, closed, []Spec{{Name: "e", Errors: `x{code="500"}`, Total: `x`}, {Name: "p99", Query: "x", Max: f64(1)}}, vars, nil)
		for range 3 {
			for _, r := range w.look() {
				if r.NoData != NoDataUnreachable || r.Attempts != 3 || !strings.Contains(r.Error, "connection refused") {
					t.Errorf("%+v, want unreachable (connection refused) after 3 attempts", r)
				}
			}
		}
	})
}

// TestPrometheusHeaders: the headers reach Prometheus through a proxy that
// demands them, and never appear in a reading, an error or the log, even
// when the proxy echoes them.
func TestPrometheusHeaders(t *testing.T) {
	t.Parallel()
	p := prom.Get(t)
	svc := p.NewService(t, promtest.ServiceOptions{Version: sha})
	seriesPresent(t, p, svc, sha)
	const token, tenant = "glc_eyJrIjoiZDk2YjY0YjQ2MjYx", "tenant-7f3a9c"
	px := newSwitchProxy(t, p.URL)
	px.check = func(r *http.Request) (int, string) {
		if r.Header.Get("Authorization") != "Bearer "+token || r.Header.Get("X-Scope-OrgID") != tenant {
			return http.StatusUnauthorized, fmt.Sprintf("invalid credentials %q for tenant %q", r.Header.Get("Authorization"), r.Header.Get("X-Scope-OrgID"))
		}
		return 0, ""
	}
	good := http.Header{"Authorization": {"Bearer " + token}, "X-Scope-Orgid": {tenant}}
	w := newWatch(t, px.url, []Spec{rateOf(svc)}, vars, good)
	if r := w.look()[0]; !r.HasData() {
		t.Fatalf("with the right headers: %+v", r)
	}

	const wrong = "glc_WRONGWRONGWRONGWRONG"
	bad := http.Header{"Authorization": {"Bearer " + wrong}, "X-Scope-Orgid": {tenant}}
	wb := newWatch(t, px.url, []Spec{rateOf(svc)}, vars, bad)
	r := wb.look()[0]
	if r.NoData != NoDataQueryError || !strings.Contains(r.Error, "check prometheus-headers") {
		t.Errorf("with a wrong token: %+v", r)
	}
	err := wb.src.Check(context.Background())
	shown := fmt.Sprintf("%+v\n%s\n%v", wb.looks, wb.logText(), err)
	for _, secret := range []string{wrong, tenant, token} {
		if strings.Contains(shown, secret) {
			t.Errorf("a header value is shown:\n%s", shown)
		}
	}
	if err == nil || !strings.Contains(err.Error(), "HTTP 401") {
		t.Errorf("Check() = %v", err)
	}
}

// TestPrometheusPlaceholderEscaping: a hostile environment and a version
// full of regex metacharacters select exactly their own series, in = and =~
// matchers alike.
func TestPrometheusPlaceholderEscaping(t *testing.T) {
	t.Parallel()
	p := prom.Get(t)
	const hostile = `prod"} or vector(1) or {x="\` + "\n#é"
	const version = "v1.2+b"
	target := p.NewService(t, promtest.ServiceOptions{Version: version, Labels: map[string]string{"environment": hostile}})
	// Series an injection or an unquoted regex would also match.
	decoy := p.NewService(t, promtest.ServiceOptions{Version: "v1x2+b", Labels: map[string]string{"environment": "prod"}})
	seriesPresent(t, p, target, version)
	seriesPresent(t, p, decoy, "v1x2+b")
	v := promql.Vars{SHA: version, Environment: hostile}
	specs := []Spec{
		{Name: "equal", Errors: `http_requests_total{environment="${ENVIRONMENT}",version="${SHA}",code="500"}`, Total: `http_requests_total{environment="${ENVIRONMENT}",version="${SHA}"}`},
		{Name: "regex", Errors: `http_requests_total{environment=~'${ENVIRONMENT}',version=~"${SHA}",code="500"}`, Total: `http_requests_total{environment=~'${ENVIRONMENT}',version=~"${SHA}"}`},
		{Name: "count", Query: `count(http_requests_total{environment="${ENVIRONMENT}",version=~"${SHA}"})`, Max: f64(2)},
	}
	w := newWatch(t, p.URL, specs, v, nil)
	for _, r := range w.look() {
		if !r.HasData() || r.Series != 2 && r.Kind == KindRate || r.Kind == KindThreshold && r.Value != 2 {
			t.Errorf("%s: %+v, want the target's 2 series and nothing else", r.Metric, r)
		}
	}
	target.SetErrorShare(0.5)
	target.Send(t, 10)
	decoy.Send(t, 10)
	caughtUp(t, p, target, version)
	caughtUp(t, p, decoy, "v1x2+b")
	for _, r := range w.look()[:2] {
		if r.Requests != 10 || r.Errors != 5 {
			t.Errorf("%s: %+v, want the target's 10 requests and 5 errors", r.Metric, r)
		}
	}
	t.Logf("queries sent: %q", w.src.Metrics()[1].Total)
}

// TestPrometheusThresholdConsecutive: a latency threshold regresses on the
// third look in a row above max, not before.
func TestPrometheusThresholdConsecutive(t *testing.T) {
	t.Parallel()
	p := prom.Get(t)
	svc := p.NewService(t, promtest.ServiceOptions{Version: sha})
	seriesPresent(t, p, svc, sha)
	stop := svc.Load(50)
	defer stop()
	q := fmt.Sprintf(`histogram_quantile(0.9, sum by (le) (rate(http_request_duration_seconds_bucket{svc=%q,version="${SHA}"}[1s])))`, svc.ID)
	w := newWatch(t, p.URL, []Spec{{Name: "p90", Query: q, Max: f64(0.04), Consecutive: 3}}, vars, nil)
	// Fast answers: in bounds.
	time.Sleep(1500 * time.Millisecond)
	if r := w.look()[0]; !r.HasData() || r.OutOfBounds || r.Value > 0.04 {
		t.Fatalf("fast: %+v", r)
	}
	svc.SetLatency(80 * time.Millisecond)
	var run []Reading
	for i := 0; i < 30 && (len(run) == 0 || !run[len(run)-1].Regressed); i++ {
		time.Sleep(250 * time.Millisecond)
		r := w.look()[0]
		if r.OutOfBounds || len(run) > 0 {
			run = append(run, r)
		}
	}
	if len(run) == 0 || !run[len(run)-1].Regressed {
		t.Fatalf("never regressed: %+v", w.looks)
	}
	// Once out of bounds, the slow answers stay slow: looks 1, 2, 3.
	for i, r := range run {
		if !r.OutOfBounds || r.Streak != i+1 || r.Regressed != (i == 2) {
			t.Errorf("look %d after the slowdown: %+v", i+1, r)
		}
	}
	t.Logf("p90 values: %v", values(run))
}

func values(rs []Reading) []float64 {
	var v []float64
	for _, r := range rs {
		v = append(v, r.Value)
	}
	return v
}

// balancer is a load balancer in front of Prometheus replicas: each
// request goes to one of them at random (seeded).
func balancer(t *testing.T, upstreams ...string) string {
	t.Helper()
	var proxies []*httputil.ReverseProxy
	for _, u := range upstreams {
		target, err := url.Parse(u)
		if err != nil {
			t.Fatal(err)
		}
		proxies = append(proxies, httputil.NewSingleHostReverseProxy(target))
	}
	var mu sync.Mutex
	rng := rand.New(rand.NewPCG(21, 1))
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		i := rng.IntN(len(proxies))
		mu.Unlock()
		proxies[i].ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

// TestPrometheusHAPair: an HA pair (two Prometheus scraping the same
// service at their own offsets) behind a load balancer. Under
// traffic, a look often reads a replica that scraped earlier than the one
// before, so a counter reads lower with no restart. Before, that was a
// restart and the counter's whole value was counted again; here the looks
// add up exactly to what was served, and the lower readings are reported.
func TestPrometheusHAPair(t *testing.T) {
	t.Parallel()
	p := prom.Get(t)
	replica := p.Replica(t)
	svc := p.NewService(t, promtest.ServiceOptions{Version: sha})
	svc.SetErrorShare(0.05)
	svc.Send(t, 200) // counters well above a scrape's worth of traffic
	for _, r := range []*promtest.Prometheus{p, replica} {
		caughtUp(t, r, svc, sha)
	}
	w := newWatch(t, balancer(t, p.URL, replica.URL), []Spec{rateOf(svc)}, vars, nil)
	w.look()
	before := svc.Truth(sha)
	stop := svc.Load(200)
	done := make(chan struct{})
	go func() { time.Sleep(4 * time.Second); stop(); close(done) }()
	// Looks closer together than the scrapes, as 15 s looks at services
	// scraped every minute are.
	w.lookEvery(20*time.Millisecond, done)
	var truth promtest.Counts
	for _, r := range []*promtest.Prometheus{p, replica} {
		truth = caughtUp(t, r, svc, sha)
	}
	w.look()
	n, x, resets := w.sums()
	lagging := 0
	for _, r := range w.looks {
		lagging += r.Lagging + r.ErrorLagging
	}
	served := promtest.Counts{Requests: truth.Requests - before.Requests, Errors: truth.Errors - before.Errors}
	t.Logf("%d looks: counted %d requests, %d errors (%d lower readings, %d restarts); served %d, %d", len(w.looks), n, x, lagging, resets, served.Requests, served.Errors)
	if n != served.Requests || x != served.Errors || resets != 0 {
		t.Errorf("counted %d requests, %d errors, %d restarts; served %d, %d, no restart", n, x, resets, served.Requests, served.Errors)
	}
	if lagging == 0 {
		t.Errorf("no look read a replica behind the one before: the test did not test anything")
	}
}

// TestPrometheusSeriesBornDuringTheWatch: a service that creates each
// series at its first increment (as client libraries do) has no series at
// the first look; the series that appear later were born during the watch
// and are counted from zero, so every request and every error is counted.
// Before, each first sighting was a starting point: the first requests and
// the first error of each series were lost.
func TestPrometheusSeriesBornDuringTheWatch(t *testing.T) {
	t.Parallel()
	p := prom.Get(t)
	svc := p.NewService(t, promtest.ServiceOptions{Version: sha, LazySeries: true})
	svc.SetErrorShare(0.25)
	w := newWatch(t, p.URL, []Spec{rateOf(svc)}, vars, nil)
	if r := w.look()[0]; r.NoData != NoDataEmpty {
		t.Fatalf("first look = %+v, want no series yet", r)
	}
	svc.Send(t, 3) // the 200 series is born; the 500 series not yet
	caughtUp(t, p, svc, sha)
	if r := w.look()[0]; r.Requests != 3 || r.Errors != 0 || r.Born != 1 {
		t.Errorf("after the first requests: %+v, want 3 requests of a series born during the watch", r)
	}
	svc.Send(t, 9) // the first errors: the 500 series is born
	truth := caughtUp(t, p, svc, sha)
	if r := w.look()[0]; r.Requests != 9 || r.Errors != 3 || r.Born != 1 || r.ErrorBorn != 1 {
		t.Errorf("after the first errors: %+v, want 9 requests, 3 errors, of series born during the watch", r)
	}
	if n, x, _ := w.sums(); n != truth.Requests || x != truth.Errors {
		t.Errorf("looks add up to %d, %d; served %d, %d", n, x, truth.Requests, truth.Errors)
	}
}

// TestPrometheusRestartAboveOldValue: a process restarts and, by the next
// look, its new counter has passed the old one. The values alone show an
// increase of the difference; Prometheus saw the drop between two scrapes,
// and resets() says so: the restart is counted from zero. Where no scrape
// saw the new life below the old one's last value, nothing can tell.
func TestPrometheusRestartAboveOldValue(t *testing.T) {
	t.Parallel()
	p := prom.Get(t)
	svc := p.NewService(t, promtest.ServiceOptions{Version: sha})
	svc.SetErrorShare(0.1)
	seriesPresent(t, p, svc, sha)
	w := newWatch(t, p.URL, []Spec{rateOf(svc)}, vars, nil)
	w.look()
	svc.Send(t, 20)
	caughtUp(t, p, svc, sha)
	w.look() // 20 requests, 2 errors: the old life's last values
	svc.Restart()
	// Prometheus scrapes the new life at zero, then it serves more than
	// the old one did.
	p.WaitFor(t, fmt.Sprintf(`sum(http_requests_total{svc=%q,version=%q})`, svc.ID, sha), 10*time.Second, func(v model.Vector) bool { return len(v) == 1 && v[0].Value == 0 })
	svc.Send(t, 50)
	truth := caughtUp(t, p, svc, sha)
	r := w.look()[0]
	if r.Requests != 50 || r.Errors != 5 || r.Resets != 2 || r.ErrorResets != 1 {
		t.Errorf("look after the restart = %+v, want 50 requests, 5 errors, 2 restarts of total and 1 of errors", r)
	}
	if n, x, _ := w.sums(); n != truth.Requests || x != truth.Errors {
		t.Errorf("looks add up to %d, %d; served %d, %d", n, x, truth.Requests, truth.Errors)
	}
}
