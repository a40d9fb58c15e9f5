package promtest

import (
	"fmt"
	"os"
	"testing"
	"time"

	"github.com/prometheus/common/model"
)

var shared Shared

func TestMain(m *testing.M) {
	code := m.Run()
	shared.Stop()
	os.Exit(code)
}

// TestHits: after k requests, exactly floor(k × share) have failed.
func TestHits(t *testing.T) {
	t.Parallel()
	for _, share := range []float64{0, 0.01, 0.25, 0.3, 0.5, 1} {
		var failed int64
		for n := range int64(1000) {
			if hits(n, share) {
				failed++
			}
			if want := int64(float64(n+1) * share); failed != want {
				t.Fatalf("share %v: %d of the first %d failed, want %d", share, failed, n+1, want)
			}
		}
	}
}

// TestServiceIsScraped: a registered service's counters reach Prometheus
// within a few scrapes, with its labels, and a restart shows as a reset.
func TestServiceIsScraped(t *testing.T) {
	p := shared.Get(t)
	svc := p.NewService(t, ServiceOptions{Version: "v1", Labels: map[string]string{"environment": "qa"}})
	svc.SetErrorShare(0.25)
	svc.Send(t, 8)
	if got := svc.Truth("v1"); got != (Counts{Requests: 8, Errors: 2}) {
		t.Fatalf("truth = %+v", got)
	}
	sel := fmt.Sprintf(`http_requests_total{svc=%q,environment="qa",version="v1",track="stable"}`, svc.ID)
	start := time.Now()
	p.WaitFor(t, "sum("+sel+")", 5*time.Second, func(v model.Vector) bool { return len(v) == 1 && v[0].Value == 8 })
	t.Logf("a new service's requests were in Prometheus after %s", time.Since(start).Round(time.Millisecond))
	p.WaitFor(t, "sum(http_request_duration_seconds_count{svc=\""+svc.ID+"\"})", 5*time.Second, func(v model.Vector) bool { return len(v) == 1 && v[0].Value == 8 })

	svc.Restart()
	svc.Send(t, 3)
	p.WaitFor(t, "sum("+sel+")", 5*time.Second, func(v model.Vector) bool { return len(v) == 1 && v[0].Value == 3 })
	p.WaitFor(t, "resets("+sel+"[1m])", 5*time.Second, func(v model.Vector) bool { return len(v) > 0 && v[0].Value >= 1 })

	svc.SetDown(true)
	p.WaitFor(t, sel, 5*time.Second, func(v model.Vector) bool { return len(v) == 0 })
	svc.SetDown(false)
	p.WaitFor(t, sel, 5*time.Second, func(v model.Vector) bool { return len(v) == 2 })
}

// TestLoad: the load generator keeps its rate while answers are slow: it
// never waits for an answer (one request at a time, at 50ms each, would
// make 20 in a second), and never bursts past its rate. The lower bound
// leaves room for a loaded machine.
func TestLoad(t *testing.T) {
	p := shared.Get(t)
	svc := p.NewService(t, ServiceOptions{Version: "v1"})
	svc.SetLatency(50 * time.Millisecond)
	stop := svc.Load(100)
	time.Sleep(time.Second)
	stop()
	if got := svc.Truth("v1").Requests; got < 40 || got > 110 {
		t.Errorf("100 requests a second for 1s served %d", got)
	}
}

// TestBackfilled: a week of history backfilled by promtool is served by
// the Prometheus started on it, sample for sample.
func TestBackfilled(t *testing.T) {
	t.Parallel()
	now := time.Now().Truncate(time.Minute)
	var om OpenMetrics
	start := now.Add(-7 * 24 * time.Hour)
	for at, n := start, 0; at.Before(now); at, n = at.Add(time.Minute), n+1 {
		om.Add("http_requests", "counter", `code="200"`, float64(10*n), at)
	}
	p := Backfilled(t, om.String())
	for _, back := range []time.Duration{7*24*time.Hour - time.Minute, 3 * 24 * time.Hour, time.Hour} {
		at := now.Add(-back)
		want := 10 * float64(at.Sub(start)/time.Minute)
		v, _, _, err := p.api.Query(t.Context(), `http_requests_total{code="200"}`, at)
		if err != nil {
			t.Fatal(err)
		}
		vec, ok := v.(model.Vector)
		if !ok || len(vec) != 1 || float64(vec[0].Value) != want {
			t.Errorf("%s ago: %v, want one series at %v", back, v, want)
		}
	}
}
