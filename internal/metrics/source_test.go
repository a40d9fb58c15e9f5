package metrics

// Tests of the adapter against a scripted query API: every branch that the
// real Prometheus (see prometheus_test.go) cannot be made to take on demand.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"strconv"
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
	f := &scripted{t: t, calls: map[string]int{}, times: map[string][]string{}, answer: prometheusLike(t, answer)}
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

// prometheusLike answers, beside what the test scripts, as Prometheus
// does: the series of the rate selectors (totalQ, errorQ) carry their name,
// and a selector read with its restarts (see readCounter) is answered with
// both, the restarts as the script's answer to "resets(" and the selector,
// without a name (as resets() returns them) and marked.
func prometheusLike(t *testing.T, answer func(q string, n int) (int, string)) func(string, int) (int, string) {
	return func(q string, n int) (int, string) {
		sel, _, combined := strings.Cut(q, "\nor\nlabel_replace(")
		if sel != totalQ && sel != errorQ {
			return answer(q, n)
		}
		status, body := answer(sel, n)
		if status != 200 {
			return status, body
		}
		doc := named(t, body, true)
		if combined {
			status, restarts := answer("resets("+sel+"\n[", n)
			if status != 200 {
				return status, restarts
			}
			data := doc["data"].(map[string]any)
			data["result"] = append(data["result"].([]any), named(t, restarts, false)["data"].(map[string]any)["result"].([]any)...)
		}
		out, _ := json.Marshal(doc)
		return status, string(out)
	}
}

// named decodes a vector answer, its series named http_requests_total, or
// without a name and marked as restarts.
func named(t *testing.T, body string, name bool) map[string]any {
	var doc map[string]any
	if err := json.Unmarshal([]byte(body), &doc); err != nil {
		t.Fatalf("scripted answer %q: %v", body, err)
	}
	data, _ := doc["data"].(map[string]any)
	if data == nil {
		return doc
	}
	if data["result"] == nil {
		data["result"] = []any{}
	}
	for _, smp := range data["result"].([]any) {
		metric := smp.(map[string]any)["metric"].(map[string]any)
		if name {
			metric["__name__"] = "http_requests_total"
		} else {
			delete(metric, "__name__")
			metric[restartsLabel] = "1"
		}
	}
	return doc
}

// next takes the next look, 15 s after the one before on the stepped
// clock.
func next(s *Source) Look {
	if step, ok := s.clock.(*clock.Step); ok {
		step.Advance(15 * time.Second)
	}
	return s.Look(context.Background())
}

// vector renders a successful instant-vector answer, with optional
// warnings and infos, evaluated at 1760000000.5.
func vector(ss []series, notes ...string) string { return vectorAt(0, ss, notes...) }

// vectorAt renders a vector evaluated look looks (of 15 s) after
// 1760000000.5.
func vectorAt(look int, ss []series, notes ...string) string {
	return vectorTS(1760000000.5+15*float64(look), ss, notes...)
}

// vectorTS renders a vector evaluated at ts (Unix seconds).
func vectorTS(ts float64, ss []series, notes ...string) string {
	var result []string
	for _, s := range ss {
		labels := map[string]string{}
		for _, kv := range strings.Split(s.labels, ",") {
			if k, v, ok := strings.Cut(kv, "="); ok {
				labels[k] = strings.Trim(v, `"`)
			}
		}
		m, _ := json.Marshal(labels)
		result = append(result, fmt.Sprintf(`{"metric":%s,"value":[%.3f,%q]}`, m, ts, s.value))
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
	return newSourceWith(t, url, specs, Options{Header: header})
}

// newSourceWith is newSource with options (a stepped clock by default).
func newSourceWith(t *testing.T, url string, specs []Spec, opt Options) (*Source, *[]string) {
	t.Helper()
	var log []string
	var mu sync.Mutex
	opt.URL, opt.HTTP = url, &http.Client{}
	if opt.Clock == nil {
		opt.Clock = clock.NewStep(time.Unix(1760000000, 0))
	}
	opt.Log = func(msg string) {
		mu.Lock()
		defer mu.Unlock()
		log = append(log, msg)
	}
	s, err := New(specs, promql.Vars{SHA: "4d8b3f2", Environment: "production"}, opt)
	if err != nil {
		t.Fatal(err)
	}
	return s, &log
}

// rateLooks scripts total and errors per look: a look starts with its
// total query, and its errors query (if any) reads the same look's row. Its
// restarts queries are answered as Prometheus would: a series whose value
// went down since the previous row restarted.
func rateLooks(totals, errs [][]series) func(string, int) (int, string) {
	var mu sync.Mutex
	look := 0
	row := func(rows [][]series, look int) []series {
		if look < 1 {
			return nil
		}
		return rows[min(look, len(rows))-1]
	}
	return func(q string, n int) (int, string) {
		mu.Lock()
		defer mu.Unlock()
		switch {
		case strings.HasPrefix(q, "resets("):
			rows := totals
			if strings.Contains(q, errorQ) {
				rows = errs
			}
			return 200, vectorAt(look-1, restarts(row(rows, look-1), row(rows, look)))
		case q == errorQ:
			return 200, vectorAt(look-1, row(errs, look))
		}
		look++
		return 200, vectorAt(look-1, row(totals, look))
	}
}

// restarts is what resets() says of the series of now, read after before:
// 1 for each whose value went down.
func restarts(before, now []series) []series {
	was := map[string]float64{}
	for _, s := range before {
		was[s.labels], _ = strconv.ParseFloat(s.value, 64)
	}
	var out []series
	for _, s := range now {
		v, _ := strconv.ParseFloat(s.value, 64)
		n := "0"
		if w, ok := was[s.labels]; ok && v < w {
			n = "1"
		}
		out = append(out, series{s.labels, n})
	}
	return out
}

func TestRateLooks(t *testing.T) {
	t.Parallel()
	ok := func(code, v string) series { return series{`code="` + code + `"`, v} }
	totals := [][]series{
		{ok("200", "1000"), ok("500", "10")},                 // starting point
		{ok("200", "1090"), ok("500", "20")},                 // +90, +10
		{ok("200", "1090"), ok("500", "20"), ok("503", "4")}, // a new series: born during the watch
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
		{Series: 3, Requests: 4, Errors: 4, Born: 1, ErrorBorn: 1},
		{Series: 3, Requests: 31, Errors: 1, Resets: 2, ErrorResets: 1},
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
		r := next(s).Readings[0]
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
	next(s)
	r := next(s).Readings[0]
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
	next(s)
	r := next(s).Readings[0]
	if r.Requests != 2 || r.Errors != 2 || r.Held != 3 || len(r.Warnings) != 1 || !strings.Contains(r.Warnings[0], "3 errors are held back") {
		t.Errorf("look 2 = %+v, want 2 requests, 2 errors, 3 held with a warning", r)
	}
	r = next(s).Readings[0]
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
	next(s)
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
		vector([]series{{`route="/a"`, "+Inf"}}), // out: slower than the largest bucket, 3 in a row
		vector([]series{{`route="/a"`, "0.31"}, {`route="/b"`, "NaN"}}), // out, the NaN series not judged
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
		{Series: 1, Value: math.Inf(1), OutOfBounds: true, Streak: 3, Regressed: true},
		{Series: 1, Value: 0.31, OutOfBounds: true, Streak: 4, Regressed: true},
		{Series: 1, Value: 0.3},
		{NoData: NoDataQueryError, Error: "the query returns a matrix; a threshold needs an instant vector or a scalar"},
	}
	for i, w := range want {
		r := next(s).Readings[0]
		w.Metric, w.Kind, w.Attempts = "p99", KindThreshold, 1
		warnings := r.Warnings
		r.Warnings = nil
		if fmt.Sprintf("%+v", r) != fmt.Sprintf("%+v", w) {
			t.Errorf("look %d:\n got %+v\nwant %+v", i+1, r, w)
		}
		if i == 5 && (len(warnings) != 1 || warnings[0] != "1 of 2 series are NaN and are not judged") {
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
	r := next(s).Readings[0]
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
	next(s)
	set(true, 150)
	if r := next(s).Readings[0]; r.NoData != NoDataUnreachable || r.Attempts != 3 {
		t.Errorf("during the outage: %+v", r)
	}
	set(false, 300)
	if r := next(s).Readings[0]; r.Requests != 200 || r.Errors != 20 {
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
		switch {
		case strings.HasPrefix(q, "resets("):
			return 200, vectorAt(look, nil)
		case q == totalQ:
			look++
			return 200, vectorAt(look, []series{{`code="200"`, fmt.Sprint(100 * look)}})
		case look == 2:
			return 500, "errors shard down"
		}
		return 200, vectorAt(look, []series{{`code="500"`, fmt.Sprint(look)}})
	})
	s, _ := newSource(t, url, []Spec{rateSpec}, nil)
	next(s)
	if r := next(s).Readings[0]; r.NoData != NoDataUnreachable || !strings.HasPrefix(r.Error, "errors: HTTP 500") {
		t.Errorf("look 2 = %+v", r)
	}
	if r := next(s).Readings[0]; r.Requests != 200 || r.Errors != 2 {
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
		r := next(s).Readings[0]
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
	r := next(s).Readings[0]
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
	r := next(s).Readings[0]
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

// TestRateReplicaBehind: issue 21's reproduction. Behind a load balancer,
// every other look is answered by a replica whose counter reads lower
// (total 1,000 behind; or errors 15 behind), with no restart in its own
// samples. Before, each lower reading was a restart and the whole counter
// was counted again: 8% errors were judged healthy at 5% allowed ("720 of
// 4,034,500"), and 1% errors regressed. Here nothing is counted twice.
func TestRateReplicaBehind(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name              string
		share             float64 // of errors, truly
		totalLag, errsLag int
		earlier           bool // the replica behind answers as of before the previous look
		lagging           int  // readings of a series behind
		regressed         bool
	}{
		{name: "total 1,000 behind, 8% errors", share: 0.08, totalLag: 1000, lagging: 60, regressed: true},
		{name: "errors 15 behind, 1% errors", share: 0.01, errsLag: 15, lagging: 30},
		{name: "total 1,000 behind as of before the previous look, 8% errors", share: 0.08, totalLag: 1000, earlier: true, lagging: 60, regressed: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			const perLook, looks = 1000, 60
			var mu sync.Mutex
			look := 0
			_, url := newScripted(t, func(q string, n int) (int, string) {
				mu.Lock()
				defer mu.Unlock()
				if strings.HasPrefix(q, "resets(") {
					// Each replica's own samples never go down.
					return 200, vectorAt(look, []series{{`code="200"`, "0"}, {`code="500"`, "0"}})
				}
				if q == totalQ {
					look++
				}
				ts := 1760000000.5 + 15*float64(look)
				if tt.earlier && look%2 == 0 {
					ts -= 16
				}
				requests := 100_000 + look*perLook
				errs := 5000 + int(float64(look*perLook)*tt.share)
				lag := func(v, by int) int {
					if look%2 == 0 {
						return v - by
					}
					return v
				}
				if q == errorQ {
					return 200, vectorTS(ts, []series{{`code="500"`, fmt.Sprint(lag(errs, tt.errsLag))}})
				}
				return 200, vectorTS(ts, []series{{`code="200"`, fmt.Sprint(lag(requests-errs, tt.totalLag))}, {`code="500"`, fmt.Sprint(lag(errs, tt.totalLag))}})
			})
			s, _ := newSource(t, url, []Spec{rateSpec}, nil)
			j := NewJudge([]Spec{{Name: "errors", Errors: errorQ, Total: totalQ, MaxErrorRate: 0.05}}, JudgeOptions{Confidence: 0.99, Signals: 1, MinRequests: 20, Start: s.clock.Now(), Grace: time.Minute})
			var requests, errs int64
			lagging := 0
			var reg *Regression
			for range looks {
				l := next(s)
				r := l.Readings[0]
				requests += r.Requests
				errs += r.Errors
				lagging += r.Lagging + r.ErrorLagging
				if r.Resets+r.ErrorResets > 0 {
					t.Errorf("look %d: %d restarts counted where none happened", look, r.Resets+r.ErrorResets)
				}
				reg = j.Observe(l)
			}
			// The last look (60, even) is the replica behind: everything
			// up to look 59 is counted.
			wantRequests := int64(58 * perLook)
			if tt.totalLag == 0 {
				wantRequests = 59 * perLook
			}
			if requests != wantRequests || lagging != tt.lagging {
				t.Errorf("counted %d requests, %d errors, %d lagging readings; want %d requests, %d lagging", requests, errs, lagging, wantRequests, tt.lagging)
			}
			if (reg != nil) != tt.regressed {
				t.Errorf("regression = %+v, want regressed %v (%d errors of %d requests)", reg, tt.regressed, errs, requests)
			}
			t.Logf("%d errors of %d requests counted; %v", errs, requests, reg)
		})
	}
}

// TestRateLabelsChangeEachLook: issue 21's reproduction. Error series
// whose labels change every look (a label holding a request id, a pod
// name) were each a starting point, never counted: 500 errors of 1,000
// requests a look showed as "+0/1000 failed", healthy. A series first seen
// after the first look was born during the watch: all of it counts.
func TestRateLabelsChangeEachLook(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	look := 0
	_, url := newScripted(t, func(q string, n int) (int, string) {
		mu.Lock()
		defer mu.Unlock()
		switch {
		case strings.HasPrefix(q, "resets("):
			return 200, vectorAt(look, nil)
		case q == totalQ:
			look++
			return 200, vectorAt(look, []series{{`code="200"`, fmt.Sprint(1000 * look)}})
		}
		return 200, vectorAt(look, []series{{fmt.Sprintf(`code="500",request="r%d"`, look), "500"}})
	})
	s, _ := newSource(t, url, []Spec{rateSpec}, nil)
	j := NewJudge([]Spec{{Name: "errors", Errors: errorQ, Total: totalQ, MaxErrorRate: 0.05}}, JudgeOptions{Confidence: 0.99, Signals: 1, MinRequests: 20, Start: s.clock.Now(), Grace: time.Minute})
	next(s)
	l := next(s)
	if r := l.Readings[0]; r.Requests != 1000 || r.Errors != 500 || r.ErrorBorn != 1 {
		t.Fatalf("look 2 = %+v, want 500 errors of 1000 requests, of an errors series born during the watch", r)
	}
	if reg := j.Observe(l); reg == nil {
		t.Errorf("500 errors of 1000 requests, 5%% allowed: not a regression")
	}
}

// TestInfIsAThresholdValue: issue 21's reproduction. {instance="a"} +Inf
// beside {instance="b"} 0.01 with max 1 was healthy: the +Inf series was
// not judged. A quantile at +Inf lies in the +Inf bucket, slower than the
// largest bucket: beyond any max. -Inf is below any min.
func TestInfIsAThresholdValue(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		spec   Spec
		values []series
		value  float64
		out    bool
	}{
		{"+Inf beside a small value, max 1", Spec{Max: f64(1)}, []series{{`instance="a"`, "+Inf"}, {`instance="b"`, "0.01"}}, math.Inf(1), true},
		{"+Inf alone, min 1", Spec{Min: f64(1)}, []series{{`instance="a"`, "+Inf"}}, math.Inf(1), false},
		{"-Inf, min 1", Spec{Min: f64(1)}, []series{{`instance="a"`, "-Inf"}, {`instance="b"`, "3"}}, math.Inf(-1), true},
		{"-Inf alone, max 1", Spec{Max: f64(1)}, []series{{`instance="a"`, "-Inf"}}, math.Inf(-1), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, url := newScripted(t, func(string, int) (int, string) { return 200, vector(tt.values) })
			spec := tt.spec
			spec.Name, spec.Query, spec.Consecutive = "p99", "x", 1
			s, _ := newSource(t, url, []Spec{spec}, nil)
			r := next(s).Readings[0]
			if !r.HasData() || r.Value != tt.value || r.OutOfBounds != tt.out || r.Regressed != tt.out {
				t.Errorf("reading = %+v, want the value %v, out of bounds %v", r, tt.value, tt.out)
			}
		})
	}
}

// TestBounds: issue 21's reproduction. Answers were read whole (1M series:
// 1.6 GB); a 100 MB warning went to the log in one line. An answer past
// the bound on bytes or series is no data, and says which bound; a
// warning is cut, and past a few, counted.
func TestBounds(t *testing.T) {
	t.Parallel()
	huge := func(n int) string {
		var b strings.Builder
		b.WriteString(`{"status":"success","data":{"resultType":"vector","result":[`)
		for i := range n {
			if i > 0 {
				b.WriteString(",")
			}
			fmt.Fprintf(&b, `{"metric":{"code":"200","pod":"p%d"},"value":[1760000000.5,"%d"]}`, i, i)
		}
		b.WriteString("]}}")
		return b.String()
	}
	t.Run("bytes", func(t *testing.T) {
		t.Parallel()
		_, url := newScripted(t, func(string, int) (int, string) { return 200, huge(20_000) })
		s, _ := newSourceWith(t, url, []Spec{rateSpec, {Name: "p99", Query: "x", Max: f64(1)}}, Options{MaxAnswer: 64 << 10})
		for _, r := range next(s).Readings {
			if r.NoData != NoDataQueryError || r.Attempts != 1 || !strings.Contains(r.Error, "the answer is larger than 64 KiB, the most a look reads") {
				t.Errorf("%s: %+v, want no data: the answer past the bound, not retried", r.Metric, r)
			}
		}
		if err := s.Check(context.Background()); err == nil || !strings.Contains(err.Error(), "larger than 64 KiB") {
			t.Errorf("Check() = %v, want the bound named", err)
		}
	})
	t.Run("series", func(t *testing.T) {
		t.Parallel()
		_, url := newScripted(t, func(string, int) (int, string) { return 200, huge(101) })
		s, _ := newSourceWith(t, url, []Spec{rateSpec, {Name: "p99", Query: "x", Max: f64(1)}}, Options{MaxSeries: 100})
		rs := next(s).Readings
		if r := rs[0]; r.NoData != NoDataQueryError || !strings.Contains(r.Error, "total: matched 101 series, more than the 100 a look reads") {
			t.Errorf("rate: %+v", r)
		}
		if r := rs[1]; r.NoData != NoDataQueryError || !strings.Contains(r.Error, "returned 101 series, more than the 100 a look reads") {
			t.Errorf("threshold: %+v", r)
		}
		if err := s.Check(context.Background()); err == nil || !strings.Contains(err.Error(), "more than the 100 a look reads") {
			t.Errorf("Check() = %v, want the bound named", err)
		}
	})
	t.Run("series over the watch", func(t *testing.T) {
		t.Parallel()
		var mu sync.Mutex
		look := 0
		_, url := newScripted(t, func(q string, n int) (int, string) {
			mu.Lock()
			defer mu.Unlock()
			if q == totalQ {
				look++
			}
			// Every look, 30 new series.
			var ss []series
			for i := range 30 {
				ss = append(ss, series{fmt.Sprintf(`pod="p%d-%d"`, look, i), "1"})
			}
			return 200, vectorAt(look, ss)
		})
		s, _ := newSourceWith(t, url, []Spec{rateSpec}, Options{MaxSeries: 30})
		var r Reading
		for range 5 {
			r = next(s).Readings[0]
		}
		if r.NoData != NoDataQueryError || !strings.Contains(r.Error, "150 distinct series over the watch, more than the 120 one watch follows") {
			t.Errorf("look 5 = %+v", r)
		}
	})
	t.Run("warnings", func(t *testing.T) {
		t.Parallel()
		long := strings.Repeat("partial response ", 100_000)
		notes := []string{long}
		for i := range 10 {
			notes = append(notes, fmt.Sprintf("store %d unreachable", i))
		}
		_, url := newScripted(t, func(string, int) (int, string) { return 200, vector([]series{{`a="1"`, "1"}}, notes...) })
		s, log := newSource(t, url, []Spec{{Name: "m", Query: "x", Max: f64(2)}}, nil)
		r := next(s).Readings[0]
		if len(r.Warnings) != maxNotes+1 || len(r.Warnings[0]) > maxNoteBytes+40 || !strings.Contains(r.Warnings[0], "bytes more)") ||
			r.Warnings[maxNotes] != "Prometheus sent 6 more warnings and infos, not shown" {
			t.Errorf("warnings (%d) = %.300q", len(r.Warnings), r.Warnings)
		}
		for _, line := range *log {
			if len(line) > maxNoteBytes+100 {
				t.Errorf("a log line of %d bytes", len(line))
			}
		}
	})
}

// TestMisconfiguredServer: issue 21's reproduction. A certificate the
// runner cannot verify, or a redirect to another host, was "Prometheus
// unreachable": the deploy went ahead and the run ended inconclusive. No
// retry cures either; each is a query error, which refuses the deploy, and
// says what to fix.
func TestMisconfiguredServer(t *testing.T) {
	t.Parallel()
	tlsSrv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t.Errorf("a request got through an unverified certificate")
	}))
	t.Cleanup(tlsSrv.Close)
	elsewhere := httptest.NewServer(http.NotFoundHandler())
	t.Cleanup(elsewhere.Close)
	redirecting := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, elsewhere.URL+r.URL.Path, http.StatusFound)
	}))
	t.Cleanup(redirecting.Close)
	plain := httptest.NewServer(http.NotFoundHandler())
	t.Cleanup(plain.Close)
	tests := []struct{ name, url, want string }{
		{"self-signed certificate", tlsSrv.URL, "the server's TLS certificate cannot be verified (x509: certificate signed by unknown authority); give prometheus-url a certificate the runner trusts"},
		{"redirect to another host", redirecting.URL, "redirected to http://127.0.0.1"},
		{"https to a plain server", strings.Replace(plain.URL, "http://", "https://", 1), "check prometheus-url's scheme"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s, _ := newSource(t, tt.url, []Spec{{Name: "m", Query: "x", Max: f64(2)}}, nil)
			r := next(s).Readings[0]
			if r.NoData != NoDataQueryError || r.Attempts != 1 || !strings.Contains(r.Error, tt.want) {
				t.Errorf("reading = %+v, want a query error after 1 attempt, %q", r, tt.want)
			}
			var qe *QueryError
			if err := s.Check(context.Background()); !errors.As(err, &qe) || qe.NoData != NoDataQueryError {
				t.Errorf("Check() = %v, want a query error", err)
			}
		})
	}
}

// TestTransientAnswers: issue 21's reproduction. A body that stalls and a
// 422 "query timed out" refused a manual rollback outright (exit 2), as if
// the query were wrong. Both are Prometheus having trouble: retried, and
// unreachable if they last.
func TestTransientAnswers(t *testing.T) {
	t.Parallel()
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	stalled := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(200)
		fmt.Fprint(w, `{"status":"success","data":{"resultType":"vector","result":[`)
		w.(http.Flusher).Flush()
		select {
		case <-release:
		case <-r.Context().Done():
		}
	}))
	t.Cleanup(stalled.Close)
	_, timedOut := newScripted(t, func(string, int) (int, string) {
		return 422, apiError("execution", "query timed out in expression evaluation")
	})
	for _, tt := range []struct{ name, url, want string }{
		{"stalled body", stalled.URL, "no answer within the request timeout"},
		{"422 query timed out", timedOut, "Prometheus gave up on the query: query timed out"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s, _ := newSourceWith(t, tt.url, []Spec{{Name: "m", Query: "x", Max: f64(2)}}, Options{RequestTimeout: 100 * time.Millisecond, Clock: clock.Real{}, Backoff: time.Millisecond})
			r := next(s).Readings[0]
			if r.NoData != NoDataUnreachable || r.Attempts != 3 || !strings.Contains(r.Error, tt.want) {
				t.Errorf("reading = %+v, want unreachable after 3 attempts: %q", r, tt.want)
			}
		})
	}
}

// TestDroppedDataIsSaid: whatever a look leaves out is in its reading and,
// once, in the log: series skipped and why, NaN series of a threshold, a
// selector whose restarts Prometheus cannot tell.
func TestDroppedDataIsSaid(t *testing.T) {
	t.Parallel()
	ok := func(code, v string) series { return series{`code="` + code + `"`, v} }
	totals := [][]series{{ok("200", "10"), ok("500", "1")}, {ok("200", "NaN"), ok("500", "2"), ok("503", "-1")}, {ok("200", "NaN"), ok("500", "3"), ok("503", "-1")}}
	errs := [][]series{{ok("500", "1")}, {ok("500", "2")}, {ok("500", "3")}}
	_, url := newScripted(t, rateLooks(totals, errs))
	s, log := newSource(t, url, []Spec{rateSpec}, nil)
	var r Reading
	for range 3 {
		r = next(s).Readings[0]
	}
	want := []string{
		`total: 1 of 3 series skipped, NaN (e.g. http_requests_total{code="200"})`,
		`total: 1 of 3 series skipped, values no counter has (negative, or too large to be exact) (e.g. http_requests_total{code="503"})`,
	}
	if strings.Join(r.Warnings, "|") != strings.Join(want, "|") {
		t.Errorf("warnings = %q, want %q", r.Warnings, want)
	}
	if got := strings.Join(*log, "\n"); strings.Count(got, "series skipped") != 2 || !strings.Contains(got, `metric "errors": total: 1 of 3 series skipped, NaN`) {
		t.Errorf("log = %s\nwant each note once", got)
	}
}
