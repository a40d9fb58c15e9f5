package promtest

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Backfilled starts a Prometheus of its own for the test on a data
// directory filled beforehand with history: openMetrics (samples with
// timestamps, in the OpenMetrics text format, ending with "# EOF") is
// turned into TSDB blocks by Debian's `promtool tsdb create-blocks-from
// openmetrics`, as an operator backfills, and Prometheus serves them. It
// scrapes nothing. It stops when the test ends. Without the binaries the
// test is skipped, except in CI (CI=true), where that is a failure.
func Backfilled(t testing.TB, openMetrics string) *Prometheus {
	t.Helper()
	bins := map[string]string{}
	for _, name := range []string{"prometheus", "promtool"} {
		bin, err := exec.LookPath(name)
		if err != nil {
			if os.Getenv("CI") == "true" {
				t.Fatalf("the %s binary is not installed; CI installs Debian's prometheus package in .ci/run", name)
			}
			t.Skipf("the %s binary is not installed (apt-get install prometheus); skipping the tests against a backfilled Prometheus", name)
		}
		bins[name] = bin
	}
	p, err := StartBackfilled(bins["prometheus"], bins["promtool"], openMetrics)
	if err != nil {
		t.Fatalf("starting a backfilled Prometheus: %v", err)
	}
	t.Cleanup(p.Stop)
	t.Logf("Prometheus %s on backfilled history, ready after %s", p.URL, p.Ready.Round(time.Millisecond))
	return p
}

// StartBackfilled backfills openMetrics with promtool and starts
// Prometheus on the blocks it made.
func StartBackfilled(prometheusBin, promtoolBin, openMetrics string) (*Prometheus, error) {
	dir, err := os.MkdirTemp("", "immune-prometheus-backfill-")
	if err != nil {
		return nil, err
	}
	p := &Prometheus{dir: dir, out: &lockedBuffer{}}
	input := filepath.Join(dir, "history.om")
	if err := os.WriteFile(input, []byte(openMetrics), 0o644); err != nil {
		p.Stop()
		return nil, err
	}
	data := filepath.Join(dir, "data")
	backfill := exec.Command(promtoolBin, "tsdb", "create-blocks-from", "openmetrics", "--quiet", input, data)
	if out, err := backfill.CombinedOutput(); err != nil {
		p.Stop()
		return nil, fmt.Errorf("promtool tsdb create-blocks-from openmetrics: %v\n%s", err, out)
	}
	if err := os.Remove(input); err != nil {
		p.Stop()
		return nil, err
	}
	configFile := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(configFile, []byte("global:\n  evaluation_interval: 1m\n"), 0o644); err != nil {
		p.Stop()
		return nil, err
	}
	if err := p.launchRetrying(prometheusBin, configFile, false); err != nil {
		return nil, err
	}
	return p, nil
}

// OpenMetrics writes samples in the OpenMetrics text format, for
// Backfilled: families in the order first written, each family's series
// together, in the order written.
type OpenMetrics struct {
	families []*family
	byName   map[string]*family
}

type family struct {
	name, kind string
	series     []string
	lines      map[string]*strings.Builder
}

// Add adds one sample of a series of family name (of kind counter or
// gauge): a counter's series is name_total. Labels are given as
// `code="200",version="abc"`.
func (o *OpenMetrics) Add(name, kind, labels string, value float64, at time.Time) {
	if o.byName == nil {
		o.byName = map[string]*family{}
	}
	f := o.byName[name]
	if f == nil {
		f = &family{name: name, kind: kind, lines: map[string]*strings.Builder{}}
		o.byName[name] = f
		o.families = append(o.families, f)
	}
	b := f.lines[labels]
	if b == nil {
		b = &strings.Builder{}
		f.lines[labels] = b
		f.series = append(f.series, labels)
	}
	metric := name
	if kind == "counter" {
		metric += "_total"
	}
	fmt.Fprintf(b, "%s{%s} %g %d\n", metric, labels, value, at.Unix())
}

// String is the whole exposition, ending with "# EOF".
func (o *OpenMetrics) String() string {
	var b strings.Builder
	for _, f := range o.families {
		fmt.Fprintf(&b, "# TYPE %s %s\n", f.name, f.kind)
		for _, s := range f.series {
			b.WriteString(f.lines[s].String())
		}
	}
	b.WriteString("# EOF\n")
	return b.String()
}
