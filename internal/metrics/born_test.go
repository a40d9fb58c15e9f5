package metrics

// Issue 20's condition against the real Prometheus: a service whose error
// series appear with its first error (client libraries create a series at
// its first increment), 10 instances, low traffic, a 5× regression, is
// detected as often as the same traffic with series declared at zero from
// the start. The traffic is generated here, recorded into Prometheus's own
// storage by promtool (as scrapes every 15 s of a watch an hour long,
// ending two hours ago), and read back look by look on a stepped clock,
// through the Source and the Judge a run uses.

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/immune-cd/immune/internal/clock"
	"github.com/immune-cd/immune/internal/promql"
	"github.com/immune-cd/immune/internal/testkit/promtest"
)

// bornTrace is the traffic of one watch: per instance, the times of its
// requests and whether each failed.
type bornTrace struct {
	pods [][]bornRequest
}

type bornRequest struct {
	at     time.Duration // after the deploy
	failed bool
}

// bornCondition is the condition: 5 requests a minute over 10
// instances, 5% failing against 1% allowed, looks every 15 s for an hour,
// scrapes every 15 s at their own offset.
var bornCondition = struct {
	pods                   int
	perMinute, failing     float64
	allowed                float64
	look, scrape, scrapeAt time.Duration
	looks                  int
}{pods: 10, perMinute: 5, failing: 0.05, allowed: 0.01, look: 15 * time.Second, scrape: 15 * time.Second, scrapeAt: 7 * time.Second, looks: 240}

func newBornTrace(seed uint64) bornTrace {
	c := bornCondition
	rng := rand.New(rand.NewPCG(seed, 20))
	end := time.Duration(c.looks) * c.look
	perPod := c.perMinute / float64(c.pods) / 60 // per second
	tr := bornTrace{pods: make([][]bornRequest, c.pods)}
	for i := range tr.pods {
		at := 0.0
		for {
			at += rng.ExpFloat64() / perPod
			d := time.Duration(at * float64(time.Second))
			if d > end {
				break
			}
			tr.pods[i] = append(tr.pods[i], bornRequest{at: d, failed: rng.Float64() < c.failing})
		}
	}
	return tr
}

// openMetrics writes the trace's counters as Prometheus scraped them:
// http_requests_total{watch,mode,pod,code}. Lazily ("born"), a series has
// no sample before its first increment; declared, it is 0 from the first
// scrape.
func (tr bornTrace) openMetrics(b *strings.Builder, watch int, mode string, deploy time.Time) {
	c := bornCondition
	for p, reqs := range tr.pods {
		for _, code := range []string{"200", "500"} {
			n, next := 0, 0
			for s := c.scrapeAt; s <= time.Duration(c.looks)*c.look+c.scrapeAt; s += c.scrape {
				for next < len(reqs) && reqs[next].at <= s {
					if reqs[next].failed == (code == "500") {
						n++
					}
					next++
				}
				if n == 0 && mode == "born" {
					continue
				}
				fmt.Fprintf(b, "http_requests_total{watch=\"%d\",mode=%q,pod=\"p%d\",code=%q} %d %s\n",
					watch, mode, p, code, n, strconv.FormatFloat(float64(deploy.Add(s).UnixMilli())/1000, 'f', 3, 64))
			}
		}
	}
}

// TestPrometheusBornSeriesDetectedAsDeclared: each watch's looks count the
// same requests and errors whether its series were born at their first
// increment or declared at zero, so the regression is caught in as many
// watches, at the same looks. IMMUNE_BORN_WATCHES sets the number of
// watches (default 4); the README's figure is from 200.
func TestPrometheusBornSeriesDetectedAsDeclared(t *testing.T) {
	if testing.Short() {
		t.Skip("reads hours of recorded traffic")
	}
	watches := 4
	if n, err := strconv.Atoi(os.Getenv("IMMUNE_BORN_WATCHES")); err == nil && n > 0 {
		watches = n
	}
	c := bornCondition
	deploy := time.Now().Add(-3 * time.Hour).Truncate(time.Minute)
	var om strings.Builder
	om.WriteString("# HELP http_requests Requests served.\n# TYPE http_requests counter\n")
	traces := make([]bornTrace, watches)
	for w := range traces {
		traces[w] = newBornTrace(uint64(w + 1))
		for _, mode := range []string{"born", "declared"} {
			traces[w].openMetrics(&om, w, mode, deploy)
		}
	}
	om.WriteString("# EOF\n")
	p := promtest.Backfilled(t, om.String())

	modes := []string{"born", "declared"}
	var specs []Spec
	for w := range watches {
		for _, mode := range modes {
			sel := fmt.Sprintf(`http_requests_total{watch="%d",mode=%q`, w, mode)
			specs = append(specs, Spec{Name: fmt.Sprintf("w%d-%s", w, mode), Total: sel + "}", Errors: sel + `,code="500"}`, MaxErrorRate: c.allowed})
		}
	}
	clk := clock.NewStep(deploy)
	src, err := New(specs, promql.Vars{}, Options{URL: p.URL, HTTP: newClient(), Clock: clk, AtClock: true, RequestTimeout: 30 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	judges := make([]*Judge, len(specs))
	for i, s := range specs {
		judges[i] = NewJudge([]Spec{s}, JudgeOptions{Confidence: 0.99, Signals: 1, MinRequests: 20, Start: deploy, Grace: 2 * c.look})
	}
	caught := make([]int, len(specs)) // the look that caught the regression, 0 if none
	counted := make([][2]int64, len(specs))
	mismatches := 0
	for k := 1; k <= c.looks; k++ {
		clk.Advance(c.look)
		l := src.Look(context.Background())
		for i, r := range l.Readings {
			if r.NoData != "" && r.NoData != NoDataEmpty {
				t.Fatalf("look %d of %s: no data: %s %s", k, r.Metric, r.NoData, r.Error)
			}
			counted[i][0] += r.Requests
			counted[i][1] += r.Errors
			if judges[i].Observe(Look{At: l.At, Readings: []Reading{r}}) != nil && caught[i] == 0 {
				caught[i] = k
			}
		}
		for w := range watches {
			born, declared := l.Readings[2*w], l.Readings[2*w+1]
			if (born.Requests != declared.Requests || born.Errors != declared.Errors) && mismatches < 10 {
				mismatches++
				t.Errorf("watch %d, look %d: born series counted %d errors of %d requests, declared %d of %d",
					w, k, born.Errors, born.Requests, declared.Errors, declared.Requests)
			}
		}
	}
	detected := map[string]int{}
	var at = map[string][]int{}
	for i, s := range specs {
		mode := modes[i%2]
		if caught[i] > 0 {
			detected[mode]++
			at[mode] = append(at[mode], caught[i])
		}
		w := i / 2
		if truth := traces[w].served(); mode == "declared" && (counted[i][0] > truth[0] || counted[i][1] > truth[1]) {
			t.Errorf("%s counted %d errors of %d requests, more than served (%d of %d)", s.Name, counted[i][1], counted[i][0], truth[1], truth[0])
		}
	}
	t.Logf("%d watches each: caught with series born at their first increment %d (%.0f%%), declared %d (%.0f%%); looks of detection, born %v, declared %v",
		watches, detected["born"], 100*float64(detected["born"])/float64(watches), detected["declared"], 100*float64(detected["declared"])/float64(watches), at["born"], at["declared"])
	if detected["born"] != detected["declared"] {
		t.Errorf("caught %d watches with born series, %d with declared ones", detected["born"], detected["declared"])
	}
}

// served is what the trace served in all: requests and errors.
func (tr bornTrace) served() [2]int64 {
	var n [2]int64
	for _, reqs := range tr.pods {
		for _, r := range reqs {
			n[0]++
			if r.failed {
				n[1]++
			}
		}
	}
	return n
}

// newClient keeps a connection per concurrent query.
func newClient() *http.Client {
	return &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
}
