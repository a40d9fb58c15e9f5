package metrics

// The failure modes other deploy guards' users keep hitting (issue 11), each
// reproduced against the real Prometheus, with what this adapter reports
// instead. The verdict each reading leads to is the verdict engine's part:
// these tests pin the readings it will be given.

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/model"

	"github.com/immune-cd/immune/internal/promql"
	"github.com/immune-cd/immune/internal/testkit/promtest"
)

// ratioQuery is the error ratio Argo Rollouts' and Flagger's examples use,
// over a short window.
func ratioQuery(svc *promtest.Service, version string) string {
	return fmt.Sprintf(`sum(rate(http_requests_total{svc=%q,version=%q,code=~"5.."}[1s])) / sum(rate(http_requests_total{svc=%q,version=%q}[1s]))`, svc.ID, version, svc.ID, version)
}

// TestAnchorArgoRollouts1466EmptyResult: argo-rollouts#1466. A healthy new
// build has served no 5xx yet, so its error series do not exist and the
// ratio query returns an empty vector; Argo's analysis errors on the empty
// result and aborts the rollout. Here the rate metric has data (no error
// series is zero errors) and the ratio threshold is "no data", with no error
// and no effect on its streak.
func TestAnchorArgoRollouts1466EmptyResult(t *testing.T) {
	t.Parallel()
	p := prom.Get(t)
	svc := p.NewService(t, promtest.ServiceOptions{Version: sha, LazySeries: true})
	svc.Send(t, 1)
	seriesPresent(t, p, svc, sha)
	w := newWatch(t, p.URL, []Spec{
		rateOf(svc),
		{Name: "argo-ratio", Query: ratioQuery(svc, sha), Max: f64(0.05), Consecutive: 1},
	}, vars, nil)
	w.look()
	svc.Send(t, 25)
	caughtUp(t, p, svc, sha)
	rs := w.look()
	if r := rs[0]; !r.HasData() || r.Requests != 25 || r.Errors != 0 {
		t.Errorf("rate metric: %+v, want 25 requests and 0 errors: no error series means no errors", r)
	}
	if r := rs[1]; r.NoData != NoDataEmpty || r.Error != "" || r.Regressed || r.Streak != 0 {
		t.Errorf("ratio threshold: %+v, want no data (empty), not an error and not a regression", r)
	}
}

// TestAnchorFlagger1095NaN: flagger PR #1095. With no traffic the success
// rate is 0/0 = NaN, NaN < threshold is false, and Flagger passed the check.
// Here NaN is "no data": never a pass, so it does not break a run of bad
// looks either; the third bad look regresses.
func TestAnchorFlagger1095NaN(t *testing.T) {
	t.Parallel()
	p := prom.Get(t)
	svc := p.NewService(t, promtest.ServiceOptions{Version: sha})
	seriesPresent(t, p, svc, sha)
	success := fmt.Sprintf(`sum(rate(http_requests_total{svc=%q,code!~"5.."}[1s])) / sum(rate(http_requests_total{svc=%q}[1s])) * 100`, svc.ID, svc.ID)
	w := newWatch(t, p.URL, []Spec{{Name: "request-success-rate", Query: success, Min: f64(99), Consecutive: 3}}, vars, nil)

	svc.SetErrorShare(0.5)
	stop := svc.Load(50)
	time.Sleep(1200 * time.Millisecond)
	var bad []Reading
	bad = append(bad, w.look()[0])
	time.Sleep(250 * time.Millisecond)
	bad = append(bad, w.look()[0])
	stop()
	// No traffic: every rate in the window drops to zero, 0/0.
	var nan Reading
	p.WaitFor(t, fmt.Sprintf(`sum(rate(http_requests_total{svc=%q}[1s])) == 0`, svc.ID), 10*time.Second, func(v model.Vector) bool { return len(v) == 1 })
	nan = w.look()[0]
	stop = svc.Load(50)
	defer stop()
	time.Sleep(1200 * time.Millisecond)
	third := w.look()[0]

	for i, r := range bad {
		if !r.OutOfBounds || r.Streak != i+1 || r.Regressed {
			t.Errorf("bad look %d: %+v", i+1, r)
		}
	}
	if nan.NoData != NoDataNaN || nan.OutOfBounds || nan.Streak != 0 {
		t.Errorf("look without traffic: %+v, want no data (NaN)", nan)
	}
	if !third.OutOfBounds || third.Streak != 3 || !third.Regressed {
		t.Errorf("third bad look: %+v, want a regression (the NaN look did not reset the run)", third)
	}
	t.Logf("success rates: %.1f, %.1f, NaN, %.1f", bad[0].Value, bad[1].Value, third.Value)
}

// TestAnchorSpinnaker5622NaNControlIsNotZero: spinnaker#5622. The control
// (the build before) had no traffic, its metric was NaN, Kayenta replaced it
// with 0, and a canary with 307 errors passed. Here the control's ratio is
// "no data" (never 0) and its rate metric has zero requests (no evidence,
// not a 0% error rate), while the canary's 307 errors are counted exactly.
func TestAnchorSpinnaker5622NaNControlIsNotZero(t *testing.T) {
	t.Parallel()
	p := prom.Get(t)
	control := p.NewService(t, promtest.ServiceOptions{Version: prevSHA, Track: "stable"})
	canary := p.NewService(t, promtest.ServiceOptions{Version: sha, Track: "canary"})
	seriesPresent(t, p, control, prevSHA)
	seriesPresent(t, p, canary, sha)

	specs := func(svc *promtest.Service) []Spec {
		return []Spec{
			rateOf(svc),
			{Name: "error-ratio", Query: ratioQuery(svc, "${SHA}"), Max: f64(0.01), Consecutive: 1},
		}
	}
	// The control is read as its own build: ${SHA} is the previous SHA, as
	// a baseline or a canary's control will be.
	controlW := newWatch(t, p.URL, specs(control), promql.Vars{SHA: prevSHA}, nil)
	canaryW := newWatch(t, p.URL, specs(canary), vars, nil)
	controlW.look()
	canaryW.look()

	canary.SetErrorShare(0.307)
	canary.Send(t, 1000)
	caughtUp(t, p, canary, sha)
	c := controlW.look()
	k := canaryW.look()
	if truth := canary.Truth(sha); truth.Errors != 307 || k[0].Requests != truth.Requests || k[0].Errors != truth.Errors {
		t.Errorf("canary: %+v, served %+v", k[0], truth)
	} else {
		t.Logf("canary: %d errors of %d requests counted exactly", k[0].Errors, k[0].Requests)
	}
	if c[0].Requests != 0 || c[0].Errors != 0 || !c[0].HasData() {
		t.Errorf("control rate: %+v, want data with no requests", c[0])
	}
	if c[1].NoData != NoDataNaN || c[1].Value != 0 || c[1].OutOfBounds {
		t.Errorf("control ratio: %+v, want no data (NaN), never a value of 0", c[1])
	}
}

// TestAnchorOneTransient5xxAtLowTraffic: at low traffic one transient 5xx
// is "a huge %" for a tool that judges a ratio per interval (1 of 4 is 25%
// against a 1% limit). Here the look reports the counts, 1 error of 4
// requests, for the count test to weigh by its 4 requests; and a transient
// 503 from Prometheus in the same look is retried, not reported as data.
func TestAnchorOneTransient5xxAtLowTraffic(t *testing.T) {
	t.Parallel()
	p := prom.Get(t)
	svc := p.NewService(t, promtest.ServiceOptions{Version: sha})
	seriesPresent(t, p, svc, sha)
	px := newSwitchProxy(t, p.URL)
	w := newWatch(t, px.url, []Spec{rateOf(svc)}, vars, nil)
	w.look()
	svc.SetErrorShare(0.25)
	svc.Send(t, 4)
	caughtUp(t, p, svc, sha)
	px.failNext.Store(1)
	r := w.look()[0]
	if r.Requests != 4 || r.Errors != 1 || r.Attempts != 2 {
		t.Errorf("look = %+v, want 1 error of 4 requests after 2 attempts", r)
	}
	if log := w.logText(); !strings.Contains(log, "attempt 1 of 3 failed: HTTP 503") {
		t.Errorf("the retry is not logged: %s", log)
	}
}
