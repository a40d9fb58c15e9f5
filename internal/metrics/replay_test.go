package metrics

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/immune-cd/immune/internal/clock"
	"github.com/immune-cd/immune/internal/promql"
)

// history is a fake query API over fixed series: each query maps to its
// series, and each series to its value at each step (NaN: absent). It
// answers instant queries at a time (or, without one, at the step the test
// set as now) and range queries, as Prometheus does: the same value at the
// same instant either way.
type history struct {
	t     *testing.T
	start time.Time
	step  time.Duration
	data  map[string]map[string][]float64 // query -> labels -> per step

	mu       sync.Mutex
	now      int
	requests map[string]int // path -> count
}

func (h *history) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		h.t.Error(err)
	}
	h.mu.Lock()
	if h.requests == nil {
		h.requests = map[string]int{}
	}
	h.requests[r.URL.Path]++
	now := h.now
	h.mu.Unlock()
	q := r.Form.Get("query")
	series := h.data[q]
	marked := map[string][]float64{} // restarts, marked as such (see readCounter)
	if sel, ok := strings.CutPrefix(q, "resets("); ok {
		sel, _, _ = strings.Cut(sel, "\n[")
		series = restartsOf(h.data[sel])
	}
	if sel, _, ok := strings.Cut(q, "\nor\nlabel_replace("); ok {
		series, marked = h.data[sel], restartsOf(h.data[sel])
	}
	at := func(k int) []any { return []any{float64(h.start.Add(time.Duration(k)*h.step).UnixMilli()) / 1000, ""} }
	var result []any
	switch r.URL.Path {
	case "/api/v1/query":
		k := now
		if ts := r.Form.Get("time"); ts != "" {
			f, _ := strconv.ParseFloat(ts, 64)
			k = int(math.Round((f - float64(h.start.Unix())) / h.step.Seconds()))
		}
		for i, set := range []map[string][]float64{series, marked} {
			for labels, values := range set {
				if k < len(values) && !math.IsNaN(values[k]) {
					v := at(k)
					v[1] = strconv.FormatFloat(values[k], 'f', -1, 64)
					metric := map[string]string{"s": labels}
					if i == 1 {
						metric[restartsLabel] = "1"
					}
					result = append(result, map[string]any{"metric": metric, "value": v})
				}
			}
		}
		writeData(w, "vector", result)
	case "/api/v1/query_range":
		from, _ := strconv.ParseFloat(r.Form.Get("start"), 64)
		to, _ := strconv.ParseFloat(r.Form.Get("end"), 64)
		step, _ := strconv.ParseFloat(r.Form.Get("step"), 64)
		for labels, values := range series {
			var points []any
			for t := from; t <= to+1e-9; t += step {
				k := int(math.Round((t - float64(h.start.Unix())) / h.step.Seconds()))
				if k < len(values) && !math.IsNaN(values[k]) {
					v := at(k)
					v[1] = strconv.FormatFloat(values[k], 'f', -1, 64)
					points = append(points, v)
				}
			}
			if points != nil {
				result = append(result, map[string]any{"metric": map[string]string{"s": labels}, "values": points})
			}
		}
		writeData(w, "matrix", result)
	default:
		http.NotFound(w, r)
	}
}

// restartsOf is what the restarts query (see counter.resetsQuery) says of
// each step of series: 1 where a series is lower than at its step before
// with a value, as resets() sees it, 0 elsewhere it has a value.
func restartsOf(series map[string][]float64) map[string][]float64 {
	out := map[string][]float64{}
	for labels, values := range series {
		r := make([]float64, len(values))
		last := math.NaN()
		for k, v := range values {
			r[k] = math.NaN()
			if math.IsNaN(v) {
				continue
			}
			r[k] = 0
			if v < last {
				r[k] = 1
			}
			last = v
		}
		out[labels] = r
	}
	return out
}

func writeData(w http.ResponseWriter, kind string, result []any) {
	if result == nil {
		result = []any{}
	}
	b, _ := json.Marshal(map[string]any{"status": "success", "data": map[string]any{"resultType": kind, "result": result}})
	w.Header().Set("Content-Type", "application/json")
	w.Write(b)
}

// TestReplayReadsAsLiveLooks: a replay's looks are the live looks at the
// same instants, reading for reading, through every case the counters
// handle: a series that appears late, one that goes missing and comes
// back, a restart, errors counted ahead of their requests (held back),
// steps without data, and a threshold's streak.
func TestReplayReadsAsLiveLooks(t *testing.T) {
	nan := math.NaN()
	start := time.Unix(1_760_000_000, 0)
	h := &history{t: t, start: start, step: 5 * time.Second, data: map[string]map[string][]float64{
		"total": {
			"a": {10, 20, 30, nan, 45, 5, 15, 25, 35, 45, nan, nan},
			"b": {nan, nan, nan, nan, 100, 110, 120, 130, 140, 150, nan, nan},
		},
		"errs": {
			"a": {1, 2, 3, nan, 4, 1, 2, 3, 40, 41, nan, nan},
		},
		"p99": {
			"x": {0.1, 0.5, 0.6, 0.7, nan, 0.8, 0.2, 0.9, 0.9, 0.9, 0.9, nan},
		},
	}}
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	max := 0.4
	specs := []Spec{{Name: "errors", Errors: "errs", Total: "total"}, {Name: "p99", Query: "p99", Max: &max, Consecutive: 3}}
	newSource := func(clk clock.Clock) *Source {
		src, err := New(specs, promql.Vars{}, Options{URL: srv.URL, HTTP: srv.Client(), Clock: clk, Attempts: 1})
		if err != nil {
			t.Fatal(err)
		}
		return src
	}
	n := len(h.data["total"]["a"])
	// The live looks run on a clock in step with the history: after the
	// first, a look is evaluated at its time less the settle (see
	// lookRate), which falls within its step.
	clk := clock.NewStep(start)
	live := newSource(clk)
	var want []Look
	for k := 0; k < n; k++ {
		h.mu.Lock()
		h.now = k
		h.mu.Unlock()
		if k > 0 {
			clk.Advance(h.step)
		}
		l := live.Look(context.Background())
		l.At = start.Add(time.Duration(k) * h.step)
		want = append(want, l)
	}
	got := newSource(clock.Real{}).Replay(context.Background(), start, h.step, n)
	for k := range want {
		if !reflect.DeepEqual(got[k], want[k]) {
			t.Errorf("step %d:\nreplayed %+v\nlive     %+v", k, got[k], want[k])
		}
	}
	// The looks are what the counters say, not merely equal: 10 more
	// requests at step 1, b's first 100 (born during the watch) with a's
	// 15 at step 4, the restart counted from 5, the 37 errors beyond step
	// 8's 20 requests held back.
	if r := got[1].Readings[0]; r.Requests != 10 || r.Errors != 1 {
		t.Errorf("step 1: %+v", r)
	}
	if r := got[4].Readings[0]; r.Requests != 115 || r.Born != 1 {
		t.Errorf("step 4 (b born, a +15): %+v", r)
	}
	if r := got[5].Readings[0]; r.Requests != 15 || r.Resets != 1 {
		t.Errorf("step 5 (a restarted, b +10): %+v", r)
	}
	if r := got[8].Readings[0]; r.Requests != 20 || r.Errors != 20 || r.Held != 17 {
		t.Errorf("step 8: %+v", r)
	}
	if r := got[9].Readings[1]; !r.Regressed || r.Streak != 3 {
		t.Errorf("step 9: p99 %+v, want its third look in a row over 0.4", r)
	}
	if r := got[11].Readings[0]; r.NoData != NoDataEmpty {
		t.Errorf("step 11: %+v, want no data", r)
	}
	if c := h.requests["/api/v1/query_range"]; c != 5 {
		t.Errorf("%d range queries, want 5 (total, errors, their restarts, p99)", c)
	}
}

// TestReplayInPieces: a replay longer than MaxReplaySteps is read in
// pieces, each a range query, and a failed query leaves its looks without
// data.
func TestReplayInPieces(t *testing.T) {
	var mu sync.Mutex
	var ranges [][2]string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		r.ParseForm()
		mu.Lock()
		ranges = append(ranges, [2]string{r.Form.Get("start"), r.Form.Get("end")})
		mu.Unlock()
		if len(ranges) == 2 {
			w.WriteHeader(http.StatusBadRequest)
			fmt.Fprint(w, `{"status":"error","errorType":"bad_data","error":"exceeded maximum resolution"}`)
			return
		}
		writeData(w, "matrix", nil)
	}))
	t.Cleanup(srv.Close)
	max := 1.0
	src, err := New([]Spec{{Name: "v", Query: "v", Max: &max}}, promql.Vars{}, Options{URL: srv.URL, HTTP: srv.Client(), Clock: clock.Real{}, Attempts: 1})
	if err != nil {
		t.Fatal(err)
	}
	start := time.Unix(1_760_000_000, 0)
	looks := src.Replay(context.Background(), start, time.Second, MaxReplaySteps+5)
	if len(ranges) != 2 || ranges[1][0] != strconv.Itoa(int(start.Unix())+MaxReplaySteps) {
		t.Fatalf("range queries %v, want two, the second from step %d", ranges, MaxReplaySteps)
	}
	if r := looks[0].Readings[0]; r.NoData != NoDataEmpty {
		t.Errorf("first piece: %+v, want empty", r)
	}
	if r := looks[MaxReplaySteps+1].Readings[0]; r.NoData != NoDataQueryError || r.Error == "" {
		t.Errorf("second piece: %+v, want the query's error", r)
	}
}
