package metrics

// Tests of the adapter against a scripted query API: every branch that the
// real Prometheus (see prometheus_test.go) cannot be made to take on demand.

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/immune-cd/immune/internal/clock"
	"github.com/immune-cd/immune/internal/promql"
)

// series is one series of a scripted answer.
type series struct {
	labels string // e.g. `code="200"`
	value  string // as Prometheus writes it: "5", "NaN", "+Inf"
}

// scripted is a fake query API: answer returns the HTTP status and body
// for the n-th request (from 1) of a query.
type scripted struct {
	t      *testing.T
	mu     sync.Mutex
	calls  map[string]int
	times  map[string][]string // the time parameter of each request, per query
	header []http.Header
	answer func(query string, n int) (int, string)
}

func newScripted(t *testing.T, answer func(query string, n int) (int, string)) (*scripted, string) {
	f := &scripted{t: t, calls: map[string]int{}, times: map[string][]string{}, answer: answer}
	srv := httptest.NewServer(f)
	t.Cleanup(srv.Close)
	return f, srv.URL
}

func (f *scripted) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path != "/api/v1/query" {
		http.NotFound(w, r)
		return
	}
	if err := r.ParseForm(); err != nil {
		f.t.Error(err)
	}
	q := r.Form.Get("query")
	f.mu.Lock()
	f.calls[q]++
	n := f.calls[q]
	f.times[q] = append(f.times[q], r.Form.Get("time"))
	f.header = append(f.header, r.Header.Clone())
	f.mu.Unlock()
	status, body := f.answer(q, n)
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	fmt.Fprint(w, body)
}

func (f *scripted) count(q string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.calls[q]
}

// vector renders a successful instant-vector answer, with optional
// warnings and infos.
func vector(ss []series, notes ...string) string {
	var result []string
	for _, s := range ss {
		labels := map[string]string{}
		for _, kv := range strings.Split(s.labels, ",") {
			if k, v, ok := strings.Cut(kv, "="); ok {
				labels[k] = strings.Trim(v, `"`)
			}
		}
		m, _ := json.Marshal(labels)
		result = append(result, fmt.Sprintf(`{"metric":%s,"value":[1760000000.5,%q]}`, m, s.value))
	}
	body := fmt.Sprintf(`{"status":"success","data":{"resultType":"vector","result":[%s]}`, strings.Join(result, ","))
	var warnings, infos []string
	for _, n := range notes {
		if after, ok := strings.CutPrefix(n, "info:"); ok {
			infos = append(infos, after)
		} else {
			warnings = append(warnings, n)
		}
	}
	if len(warnings) > 0 {
		w, _ := json.Marshal(warnings)
		body += `,"warnings":` + string(w)
	}
	if len(infos) > 0 {
		i, _ := json.Marshal(infos)
		body += `,"infos":` + string(i)
	}
	return body + "}"
}

func scalar(v string) string {
	return fmt.Sprintf(`{"status":"success","data":{"resultType":"scalar","result":[1760000000.5,%q]}}`, v)
}

func apiError(kind, msg string) string {
	return fmt.Sprintf(`{"status":"error","errorType":%q,"error":%q}`, kind, msg)
}

const (
	totalQ = `http_requests_total{job="shop"}`
	errorQ = `http_requests_total{job="shop",code=~"5.."}`
)

var rateSpec = Spec{Name: "errors", Errors: errorQ, Total: totalQ}

func f64(v float64) *float64 { return &v }

// newSource builds a Source on a stepped clock that collects its log.
func newSource(t *testing.T, url string, specs []Spec, header http.Header) (*Source, *[]string) {
	t.Helper()
	var log []string
	var mu sync.Mutex
	s, err := New(specs, promql.Vars{SHA: "4d8b3f2", Environment: "production"}, Options{
		URL:    url,
		Header: header,
		HTTP:   &http.Client{},
		Clock:  clock.NewStep(time.Unix(1760000000, 0)),
		Log: func(msg string) {
			mu.Lock()
			defer mu.Unlock()
			log = append(log, msg)
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	return s, &log
}

// rateLooks scripts total and errors per look: a look starts with its
// total query, and its errors query (if any) reads the same look's row.
func rateLooks(totals, errs [][]series) func(string, int) (int, string) {
	var mu sync.Mutex
	look := 0
	return func(q string, n int) (int, string) {
		mu.Lock()
		defer mu.Unlock()
		if q != errorQ {
			look++
			return 200, vector(totals[min(look, len(totals))-1])
		}
		return 200, vector(errs[min(look, len(errs))-1])
	}
}

func TestRateLooks(t *testing.T) {
	t.Parallel()
	ok := func(code, v string) series { return series{`code="` + code + `"`, v} }
	totals := [][]series{
		{ok("200", "1000"), ok("500", "10")},                 // starting point
		{ok("200", "1090"), ok("500", "20")},                 // +90, +10
		{ok("200", "1090"), ok("500", "20"), ok("503", "4")}, // a new series: a starting point
		{ok("200", "30"), ok("500", "1"), ok("503", "4")},    // a restart: 30 and 1
		{ok("200", "NaN"), ok("500", "3"), ok("503", "6")},   // a NaN series is skipped
		{ok("200", "80"), ok("500", "3"), ok("503", "6")},    // it comes back: +50
		{}, // nothing: no data
		{ok("200", "100"), ok("500", "5"), ok("503", "6")},       // +20 +2 since the last look with data
		{ok("200", "100"), ok("500", "5"), ok("503", "6")},       // no traffic: data, zero counts
		{ok("200", "NaN"), ok("500", "NaN"), ok("503", "+Inf")},  // nothing usable
		{ok("200", "101"), ok("500", "-Inf"), ok("503", "-Inf")}, // errors not usable at all
		{ok("200", "110"), ok("500", "7"), ok("503", "6")},       // counted from the last look with data
	}
	errs := [][]series{
		{ok("500", "10")},
		{ok("500", "20")},
		{ok("500", "20"), ok("503", "4")},
		{ok("500", "1"), ok("503", "4")},
		{ok("500", "3"), ok("503", "6")},
		{ok("500", "3"), ok("503", "6")},
		{},
		{ok("500", "5"), ok("503", "6")},
		{ok("500", "5"), ok("503", "6")},
		{ok("500", "NaN"), ok("503", "+Inf")},
		{ok("500", "-Inf"), ok("503", "-Inf")},
		{ok("500", "7"), ok("503", "NaN")},
	}
	want := []Reading{
		{Series: 2, NewSeries: 2},
		{Series: 2, Requests: 100, Errors: 10},
		{Series: 3, NewSeries: 1},
		{Series: 3, Requests: 31, Errors: 1, Resets: 2},
		{Series: 2, Requests: 4, Errors: 4},
		{Series: 3, Requests: 50},
		{NoData: NoDataEmpty},
		{Series: 3, Requests: 22, Errors: 2},
		{Series: 3},
		{NoData: NoDataNaN},
		{NoData: NoDataInf},
		{Series: 3, Requests: 12, Errors: 2},
	}
	_, url := newScripted(t, rateLooks(totals, errs))
	s, _ := newSource(t, url, []Spec{rateSpec}, nil)
	for i, w := range want {
		r := s.Look(context.Background()).Readings[0]
		w.Metric, w.Kind, w.Attempts = "errors", KindRate, 1
		if w.NoData != "" {
			w.Attempts = r.Attempts
		}
		r.Warnings = nil
		if fmt.Sprintf("%+v", r) != fmt.Sprintf("%+v", w) {
			t.Errorf("look %d:\n got %+v\nwant %+v", i+1, r, w)
		}
	}
}

// TestRateErrorsEmptyIsZero: an errors selector that matches nothing means
// no error has happened yet (error series appear with the first error); it is
// data, unlike an empty total.
func TestRateErrorsEmptyIsZero(t *testing.T) {
	t.Parallel()
	totals := [][]series{{{`code="200"`, "10"}}, {{`code="200"`, "25"}}}
	_, url := newScripted(t, rateLooks(totals, [][]series{{}}))
	s, _ := newSource(t, url, []Spec{rateSpec}, nil)
	s.Look(context.Background())
	r := s.Look(context.Background()).Readings[0]
	if !r.HasData() || r.Requests != 15 || r.Errors != 0 {
		t.Errorf("reading = %+v, want 15 requests, 0 errors", r)
	}
}

// TestRateHoldsBackErrorsAheadOfTotal: errors from another metric, scraped
// ahead of its requests, wait for them: a look never has more errors than
// requests, and none is dropped.
func TestRateHoldsBackErrorsAheadOfTotal(t *testing.T) {
	t.Parallel()
	totals := [][]series{{{`a="1"`, "0"}}, {{`a="1"`, "2"}}, {{`a="1"`, "10"}}}
	errs := [][]series{{{`b="1"`, "0"}}, {{`b="1"`, "5"}}, {{`b="1"`, "6"}}}
	_, url := newScripted(t, rateLooks(totals, errs))
	s, _ := newSource(t, url, []Spec{rateSpec}, nil)
	s.Look(context.Background())
	r := s.Look(context.Background()).Readings[0]
	if r.Requests != 2 || r.Errors != 2 || r.Held != 3 || len(r.Warnings) != 1 || !strings.Contains(r.Warnings[0], "3 errors are held back") {
		t.Errorf("look 2 = %+v, want 2 requests, 2 errors, 3 held with a warning", r)
	}
	r = s.Look(context.Background()).Readings[0]
	if r.Requests != 8 || r.Errors != 4 || r.Held != 0 {
		t.Errorf("look 3 = %+v, want 8 requests, 4 errors (1 new + 3 held), 0 held", r)
	}
}

// TestRateReadsErrorsAtTotalsInstant: both selectors of a look are
// evaluated at the same instant, so they see the same scrapes.
func TestRateReadsErrorsAtTotalsInstant(t *testing.T) {
	t.Parallel()
	f, url := newScripted(t, rateLooks([][]series{{{`code="200"`, "1"}}}, [][]series{{}}))
	s, _ := newSource(t, url, []Spec{rateSpec}, nil)
	s.Look(context.Background())
	if got := f.times[totalQ]; len(got) != 1 || got[0] != "" {
		t.Errorf("total was sent time %q, want none (the server's now)", got)
	}
	if got := f.times[errorQ]; len(got) != 1 || got[0] != "1760000000.5" {
		t.Errorf("errors was sent time %q, want total's evaluation time 1760000000.5", got)
	}
}

func TestThresholdLooks(t *testing.T) {
	t.Parallel()
	answers := []string{
		vector([]series{{`route="/a"`, "0.2"}, {`route="/b"`, "0.45"}}), // /b is out
		scalar("0.5"),                            // out
		vector(nil),                              // no data, streak kept
		vector([]series{{`route="/a"`, "NaN"}}),  // no data, streak kept
		vector([]series{{`route="/a"`, "+Inf"}}), // no data, streak kept
		vector([]series{{`route="/a"`, "0.31"}, {`route="/b"`, "NaN"}}), // out, the NaN series not judged: 3 in a row
		vector([]series{{`route="/a"`, "0.3"}}),                         // equal to max: in bounds
		`{"status":"success","data":{"resultType":"matrix","result":[]}}`,
	}
	_, url := newScripted(t, func(q string, n int) (int, string) { return 200, answers[n-1] })
	s, _ := newSource(t, url, []Spec{{Name: "p99", Query: `histogram_quantile(0.99, x)`, Max: f64(0.3)}}, nil)
	want := []Reading{
		{Series: 2, Value: 0.45, OutOfBounds: true, Streak: 1},
		{Series: 1, Value: 0.5, OutOfBounds: true, Streak: 2},
		{NoData: NoDataEmpty},
		{NoData: NoDataNaN},
		{NoData: NoDataInf},
		{Series: 1, Value: 0.31, OutOfBounds: true, Streak: 3, Regressed: true},
		{Series: 1, Value: 0.3},
		{NoData: NoDataQueryError, Error: "the query returns a matrix; a threshold needs an instant vector or a scalar"},
	}
	for i, w := range want {
		r := s.Look(context.Background()).Readings[0]
		w.Metric, w.Kind, w.Attempts = "p99", KindThreshold, 1
		warnings := r.Warnings
		r.Warnings = nil
		if fmt.Sprintf("%+v", r) != fmt.Sprintf("%+v", w) {
			t.Errorf("look %d:\n got %+v\nwant %+v", i+1, r, w)
		}
		if i == 5 && (len(warnings) != 1 || warnings[0] != "1 of 2 series are NaN or Inf and are not judged") {
			t.Errorf("look 6 warnings = %q", warnings)
		}
	}
}

func TestThresholdMin(t *testing.T) {
	t.Parallel()
	_, url := newScripted(t, func(q string, n int) (int, string) {
		return 200, vector([]series{{`a="1"`, "120"}, {`a="2"`, "80"}})
	})
	s, _ := newSource(t, url, []Spec{{Name: "throughput", Query: `x`, Min: f64(100), Consecutive: 1}}, nil)
	r := s.Look(context.Background()).Readings[0]
	if r.Value != 80 || !r.OutOfBounds || !r.Regressed {
		t.Errorf("reading = %+v, want 80 below min 100 and regressed at once", r)
	}
}

// TestRetries: what a retry can cure is retried within the look, with
// backoff on the injected clock; the rest is not.
func TestRetries(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name     string
		answers  []int // HTTP status per attempt (200 answers data)
		body     string
		noData   NoData
		attempts int
		err      string
	}{
		{name: "one transient 503", answers: []int{503, 200}, attempts: 2},
		{name: "429 then 502 then data", answers: []int{429, 502, 200}, attempts: 3},
		{name: "5xx every time", answers: []int{503, 503, 503, 503}, noData: NoDataUnreachable, attempts: 3, err: "HTTP 503: overloaded"},
		{name: "bad query is not retried", answers: []int{400}, body: apiError("bad_data", `1:5: parse error: unexpected "}"`), noData: NoDataQueryError, attempts: 1, err: `Prometheus rejected the query: 1:5: parse error: unexpected "}"`},
		{name: "execution error is not retried", answers: []int{422}, body: apiError("execution", "many-to-many matching not allowed"), noData: NoDataQueryError, attempts: 1, err: "Prometheus rejected the query: many-to-many"},
		{name: "401 names the input to check", answers: []int{401}, body: "no", noData: NoDataQueryError, attempts: 1, err: "HTTP 401: Prometheus refused the credentials; check prometheus-headers"},
		{name: "404 says what the URL should be", answers: []int{404}, body: "404 page not found", noData: NoDataQueryError, attempts: 1, err: "prometheus-url is the server's base URL, without /api/v1"},
		{name: "HTML instead of the API", answers: []int{200}, body: "<html>login</html>", noData: NoDataQueryError, attempts: 1, err: "the answer is not Prometheus's query API"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, url := newScripted(t, func(q string, n int) (int, string) {
				status := tt.answers[min(n, len(tt.answers))-1]
				switch {
				case tt.body != "":
					return status, tt.body
				case status == 200:
					return 200, scalar("1")
				}
				return status, "overloaded"
			})
			s, log := newSource(t, url, []Spec{{Name: "m", Query: "x", Max: f64(2)}}, nil)
			start := s.clock.Now()
			r := s.Look(context.Background()).Readings[0]
			if r.NoData != tt.noData || r.Attempts != tt.attempts || !strings.Contains(r.Error, tt.err) {
				t.Errorf("reading = %+v\nwant no data %q after %d attempts, error containing %q", r, tt.noData, tt.attempts, tt.err)
			}
			if tt.noData == "" && (r.Value != 1 || r.Error != "") {
				t.Errorf("reading = %+v, want the value after the retries", r)
			}
			// Backoff 250ms then 500ms, on the stepped clock.
			wantWait := []time.Duration{0, 0, 250 * time.Millisecond, 750 * time.Millisecond}[tt.attempts]
			if retried := tt.attempts > 1 && (tt.noData == "" || tt.noData == NoDataUnreachable); retried {
				if got := s.clock.Now().Sub(start); got != wantWait {
					t.Errorf("waited %s, want %s", got, wantWait)
				}
				if len(*log) != tt.attempts-1 || !strings.Contains((*log)[0], `metric "m": attempt 1 of 3 failed`) {
					t.Errorf("log = %q, want one line per retry", *log)
				}
			}
		})
	}
}

// TestOutageLosesNothing: a look that cannot read Prometheus leaves the
// counters where they were, so the next look counts the requests of both
// intervals.
func TestOutageLosesNothing(t *testing.T) {
	t.Parallel()
	down := false
	var mu sync.Mutex
	value := 100
	_, url := newScripted(t, func(q string, n int) (int, string) {
		mu.Lock()
		defer mu.Unlock()
		if down {
			return 503, "down"
		}
		if q == errorQ {
			return 200, vector([]series{{`code="500"`, fmt.Sprint(value / 10)}})
		}
		return 200, vector([]series{{`code="200"`, fmt.Sprint(value)}})
	})
	s, _ := newSource(t, url, []Spec{rateSpec}, nil)
	set := func(d bool, v int) { mu.Lock(); down, value = d, v; mu.Unlock() }
	s.Look(context.Background())
	set(true, 150)
	if r := s.Look(context.Background()).Readings[0]; r.NoData != NoDataUnreachable || r.Attempts != 3 {
		t.Errorf("during the outage: %+v", r)
	}
	set(false, 300)
	if r := s.Look(context.Background()).Readings[0]; r.Requests != 200 || r.Errors != 20 {
		t.Errorf("after the outage: %+v, want the 200 requests and 20 errors since the last look with data", r)
	}
}

// TestErrorsQueryFailsToo: when total is read but errors is not, neither
// counter moves on.
func TestErrorsQueryFailsToo(t *testing.T) {
	t.Parallel()
	look := 0
	var mu sync.Mutex
	_, url := newScripted(t, func(q string, n int) (int, string) {
		mu.Lock()
		defer mu.Unlock()
		if q == totalQ {
			look++
			return 200, vector([]series{{`code="200"`, fmt.Sprint(100 * look)}})
		}
		if look == 2 {
			return 500, "errors shard down"
		}
		return 200, vector([]series{{`code="500"`, fmt.Sprint(look)}})
	})
	s, _ := newSource(t, url, []Spec{rateSpec}, nil)
	s.Look(context.Background())
	if r := s.Look(context.Background()).Readings[0]; r.NoData != NoDataUnreachable || !strings.HasPrefix(r.Error, "errors: HTTP 500") {
		t.Errorf("look 2 = %+v", r)
	}
	if r := s.Look(context.Background()).Readings[0]; r.Requests != 200 || r.Errors != 2 {
		t.Errorf("look 3 = %+v, want 200 requests and 2 errors since look 1", r)
	}
}

// TestWarningsAndInfos: Prometheus's notes are in every reading and logged
// once per metric.
func TestWarningsAndInfos(t *testing.T) {
	t.Parallel()
	_, url := newScripted(t, func(q string, n int) (int, string) {
		return 200, vector([]series{{`a="1"`, "1"}}, "partial response: store eu-1 unreachable", "info:PromQL info: metric might not be a counter")
	})
	s, log := newSource(t, url, []Spec{{Name: "m", Query: "x", Max: f64(2)}}, nil)
	for range 3 {
		r := s.Look(context.Background()).Readings[0]
		want := []string{"Prometheus warning: partial response: store eu-1 unreachable", "Prometheus info: PromQL info: metric might not be a counter"}
		if strings.Join(r.Warnings, "|") != strings.Join(want, "|") {
			t.Errorf("warnings = %q, want %q", r.Warnings, want)
		}
	}
	if len(*log) != 2 || !strings.HasPrefix((*log)[0], `metric "m": Prometheus warning: partial response`) {
		t.Errorf("log = %q, want each note once", *log)
	}
}

// TestHeadersAreSentAndNeverShown: the headers reach the server, and a
// server that echoes them back (in an error body, a warning) does not get
// them into a reading or the log.
func TestHeadersAreSentAndNeverShown(t *testing.T) {
	t.Parallel()
	const token = "s3cr3t-t0ken-value"
	f, url := newScripted(t, func(q string, n int) (int, string) {
		if n == 1 {
			return 500, "upstream rejected Authorization: Bearer " + token
		}
		return 200, vector([]series{{`a="1"`, "1"}}, "echo: tenant=tenant-blue-42 auth="+token)
	})
	header := http.Header{"Authorization": {"Bearer " + token}, "X-Scope-Orgid": {"tenant-blue-42"}}
	s, log := newSource(t, url, []Spec{{Name: "m", Query: "x", Max: f64(2)}}, header)
	r := s.Look(context.Background()).Readings[0]
	f.mu.Lock()
	got := f.header[0]
	f.mu.Unlock()
	if got.Get("Authorization") != "Bearer "+token || got.Get("X-Scope-OrgID") != "tenant-blue-42" {
		t.Errorf("server got headers %v", got)
	}
	shown := fmt.Sprintf("%+v %q", r, *log)
	for _, secret := range []string{token, "tenant-blue-42"} {
		if strings.Contains(shown, secret) {
			t.Errorf("a header value leaks: %s", shown)
		}
	}
	if !strings.Contains(shown, "auth=REDACTED") || !strings.Contains(shown, "Authorization: REDACTED") {
		t.Errorf("expected the echoes, redacted: %s", shown)
	}
}

// TestRedirectsStayOnTheHost: a redirect to another server would carry the
// headers there; it is refused.
func TestRedirectsStayOnTheHost(t *testing.T) {
	t.Parallel()
	elsewhere := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t.Errorf("the redirect was followed, with headers %v", r.Header)
	}))
	defer elsewhere.Close()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, elsewhere.URL+r.URL.Path, http.StatusTemporaryRedirect)
	}))
	defer srv.Close()
	s, _ := newSource(t, srv.URL, []Spec{{Name: "m", Query: "x", Max: f64(2)}}, http.Header{"Authorization": {"Bearer abcdefgh"}})
	r := s.Look(context.Background()).Readings[0]
	if r.HasData() || !strings.Contains(r.Error, "redirected to http://127.0.0.1") {
		t.Errorf("reading = %+v, want the redirect refused", r)
	}
}

// TestLookEndsWithItsContext: a look never outlasts its context.
func TestLookEndsWithItsContext(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		<-release
	}))
	defer srv.Close()
	defer close(release)
	s, err := New([]Spec{rateSpec}, promql.Vars{}, Options{URL: srv.URL, HTTP: &http.Client{}, Clock: clock.Real{}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	r := s.Look(ctx).Readings[0]
	if r.NoData != NoDataUnreachable || !strings.Contains(r.Error, "the look ended") {
		t.Errorf("reading = %+v", r)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("the look took %s after its context ended", d)
	}
}

func TestCheck(t *testing.T) {
	t.Parallel()
	_, url := newScripted(t, func(q string, n int) (int, string) {
		switch q {
		case "bad(":
			return 400, apiError("bad_data", "unexpected end of input")
		case "range[5m]":
			return 200, `{"status":"success","data":{"resultType":"matrix","result":[]}}`
		}
		return 200, vector(nil)
	})
	s, _ := newSource(t, url, []Spec{
		rateSpec,
		{Name: "broken", Query: "bad(", Max: f64(1)},
		{Name: "ranged", Query: "range[5m]", Max: f64(1)},
	}, nil)
	err := s.Check(context.Background())
	if err == nil {
		t.Fatal("Check() = nil")
	}
	for _, want := range []string{
		`metric "broken": query error: Prometheus rejected the query: unexpected end of input (query: bad()`,
		`metric "ranged": query error: the query returns a matrix`,
	} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("Check() = %v\nwant it to contain %q", err, want)
		}
	}
	if strings.Contains(err.Error(), `"errors"`) {
		t.Errorf("Check() blames the good metric: %v", err)
	}
}

func TestNewRefuses(t *testing.T) {
	t.Parallel()
	opt := Options{URL: "http://127.0.0.1:9", HTTP: &http.Client{}, Clock: clock.Real{}}
	tests := []struct {
		spec Spec
		vars promql.Vars
		want string
	}{
		{Spec{Name: "r", Errors: "rate(x[1m])", Total: "x"}, promql.Vars{}, `metric 1 ("r"): errors: expected the end of the selector`},
		{Spec{Name: "r", Errors: `x{v="${PREVIOUS_SHA}"}`, Total: "x"}, promql.Vars{SHA: "a"}, `errors: ${PREVIOUS_SHA} has no value in this run`},
		{Spec{Name: "q", Query: `x{v="${BUILD}"}`, Max: f64(1)}, promql.Vars{}, "query: unknown placeholder ${BUILD}"},
		{Spec{Name: "q", Query: `x`}, promql.Vars{}, "a threshold metric needs max or min"},
		{Spec{Name: "r", Total: "x"}, promql.Vars{}, "a rate metric needs errors and total"},
	}
	for _, tt := range tests {
		_, err := New([]Spec{tt.spec}, tt.vars, opt)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("New(%+v) = %v, want %q", tt.spec, err, tt.want)
		}
	}
	for _, u := range []string{"", "prometheus:9090", "http://user:pw@host/"} {
		o := opt
		o.URL = u
		if _, err := New(nil, promql.Vars{}, o); err == nil || strings.Contains(err.Error(), "pw") {
			t.Errorf("New with URL %q = %v", u, err)
		}
	}
}

// TestMetricsShowsExpandedQueries: the queries as sent, for the log.
func TestMetricsShowsExpandedQueries(t *testing.T) {
	t.Parallel()
	s, _ := newSource(t, "http://127.0.0.1:9", []Spec{{Name: "r", Errors: `x{v="${SHA}",c="5"}`, Total: `x{v="${SHA}"}`}}, nil)
	got := s.Metrics()
	if len(got) != 1 || got[0].Errors != `x{v="4d8b3f2",c="5"}` || got[0].Total != `x{v="4d8b3f2"}` || got[0].Kind != KindRate {
		t.Errorf("Metrics() = %+v", got)
	}
}
