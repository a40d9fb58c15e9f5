package verdict

import (
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
)

// scratch simulator for the design of the counts judge (not committed)

type simLoad struct {
	name     string
	rpm      func(m float64) float64
	rate     func(m float64) float64
	burst    int
	geomB    bool // burst sizes geometric with mean burst
	poisson  bool
	onsetMin float64 // for delays: minutes of the onset (0 = from start)
}

type simStream struct {
	rng     *rand.Rand
	burst   int
	geom    bool
	next    int64 // absolute request index of the next burst start
	at      int64
	failEnd int64
	q       float64
}

func (s *simStream) gap() int64 {
	if s.q <= 0 {
		return math.MaxInt64 / 4
	}
	if s.q >= 1 {
		return 1
	}
	return 1 + int64(math.Log(1-s.rng.Float64())/math.Log1p(-s.q))
}

func (s *simStream) size() int64 {
	if !s.geom || s.burst <= 1 {
		return int64(s.burst)
	}
	p := 1 / float64(s.burst)
	return 1 + int64(math.Log(1-s.rng.Float64())/math.Log1p(-p))
}

// look returns how many of the next n requests fail at rate.
func (s *simStream) look(n int, rate float64) int {
	b := float64(s.burst)
	q := 1 - math.Pow(1-rate, 1/b)
	if s.geom {
		q = rate / b // approx
	}
	if q != s.q {
		s.q = q
		s.next = s.at + s.gap() - 1
	}
	start, end := s.at, s.at+int64(n)
	bad := int64(0)
	if s.failEnd > start {
		bad += min(s.failEnd, end) - start
	}
	for s.next < end {
		sz := s.size()
		from := max(s.next, s.failEnd, start)
		to := min(s.next+sz, end)
		if to > from {
			bad += to - from
		}
		s.failEnd = max(s.failEnd, s.next+sz)
		s.next += s.gap()
	}
	s.at = end
	return int(bad)
}

func poisson(rng *rand.Rand, lam float64) int {
	if lam <= 0 {
		return 0
	}
	if lam > 50 {
		return max(0, int(math.Round(lam+math.Sqrt(lam)*rng.NormFloat64())))
	}
	l := math.Exp(-lam)
	k, p := 0, 1.0
	for {
		p *= rng.Float64()
		if p <= l {
			return k
		}
		k++
	}
}

type judgeFn func() func(n, x int64) bool

func simRow(seed uint64, ld simLoad, watches int, judges []judgeFn) []countsCell {
	rng := rand.New(rand.NewPCG(seed, 99))
	cells := make([]countsCell, len(judges))
	looks := 240
	for range watches {
		st := &simStream{rng: rng, burst: max(ld.burst, 1), geom: ld.geomB}
		js := make([]func(n, x int64) bool, len(judges))
		for i, j := range judges {
			js[i] = j()
		}
		done := make([]bool, len(js))
		for i := 0; i < looks; i++ {
			m := float64(i) * 0.25
			lam := ld.rpm(m+0.125) * 0.25
			n := int(math.Round(lam))
			if ld.poisson {
				n = poisson(rng, lam)
			}
			x := st.look(n, ld.rate(m))
			for k, j := range js {
				if !done[k] && j(int64(n), int64(x)) {
					done[k] = true
					cells[k].rolledBack++
					cells[k].minutes = append(cells[k].minutes, float64(i+1)*0.25-ld.onsetMin)
				}
			}
		}
	}
	return cells
}

func constant(v float64) func(float64) float64 { return func(float64) float64 { return v } }
func step(a, b, at float64) func(float64) float64 {
	return func(m float64) float64 {
		if m >= at {
			return b
		}
		return a
	}
}
func diurnal(lo, hi float64) func(float64) float64 {
	return func(m float64) float64 { return lo + (hi-lo)*(1-math.Cos(math.Pi*m/60))/2 }
}

var simLoads = []simLoad{
	{name: "5/min 1% indep", rpm: constant(5), rate: constant(0.01), poisson: true},
	{name: "5/min 1% b10", rpm: constant(5), rate: constant(0.01), burst: 10, poisson: true},
	{name: "20/min 1% b10", rpm: constant(20), rate: constant(0.01), burst: 10, poisson: true},
	{name: "100/min 1% b10", rpm: constant(100), rate: constant(0.01), burst: 10, poisson: true},
	{name: "1000/min 1% b10", rpm: constant(1000), rate: constant(0.01), burst: 10, poisson: true},
	{name: "10k/min 1% b10", rpm: constant(10000), rate: constant(0.01), burst: 10, poisson: true},
	{name: "10k/min 1% b30", rpm: constant(10000), rate: constant(0.01), burst: 30, poisson: true},
	{name: "1000/min 1% b30", rpm: constant(1000), rate: constant(0.01), burst: 30, poisson: true},
	{name: "10k/min 1% indep", rpm: constant(10000), rate: constant(0.01), poisson: true},
	{name: "1000/min 1% indep", rpm: constant(1000), rate: constant(0.01), poisson: true},
	{name: "100/min 1% indep", rpm: constant(100), rate: constant(0.01), poisson: true},
	{name: "diurnal 1% indep", rpm: diurnal(100, 1000), rate: constant(0.01), poisson: true},
	{name: "diurnal 1% b10", rpm: diurnal(100, 1000), rate: constant(0.01), burst: 10, poisson: true},
	{name: "5/min 1% geo10", rpm: constant(5), rate: constant(0.01), burst: 10, geomB: true, poisson: true},
	{name: "10k 0.5->1% @30 b10", rpm: constant(10000), rate: step(0.005, 0.01, 30), burst: 10, poisson: true},
	{name: "10k 0.5->2% @30", rpm: constant(10000), rate: step(0.005, 0.02, 30), poisson: true, onsetMin: 30},
	{name: "1000 0.2->3% @30", rpm: constant(1000), rate: step(0.002, 0.03, 30), poisson: true, onsetMin: 30},
	{name: "1000 2% start", rpm: constant(1000), rate: constant(0.02), poisson: true},
	{name: "5/min 5% start", rpm: constant(5), rate: constant(0.05), poisson: true},
	{name: "100/min 5% b10", rpm: constant(100), rate: constant(0.05), burst: 10, poisson: true},
	{name: "100/min 5% start", rpm: constant(100), rate: constant(0.05), poisson: true},
	{name: "100/min 2% start", rpm: constant(100), rate: constant(0.02), poisson: true},
	{name: "20/min 5% start", rpm: constant(20), rate: constant(0.05), poisson: true},
}

func todayJudge() func(n, x int64) bool {
	e := New(countLimits(0.01, true))
	return func(n, x int64) bool { return e.Observe(Count("m", n, x, nil)).Outcome == Regressed }
}

var simJudges = map[string]judgeFn{"today": todayJudge}

func TestSim(t *testing.T) {
	names := []string{"today"}
	for k := range simJudges {
		if k != "today" {
			names = append(names, k)
		}
	}
	slices.Sort(names[1:])
	var js []judgeFn
	for _, k := range names {
		js = append(js, simJudges[k])
	}
	watches := 2000
	loads := simLoads
	if f := os.Getenv("SIMF"); f != "" {
		loads = nil
		for _, ld := range simLoads {
			if strings.Contains(f, "|"+ld.name+"|") {
				loads = append(loads, ld)
			}
		}
	}
	if w := os.Getenv("SIMW"); w != "" {
		watches, _ = strconv.Atoi(w)
	}
	res := make([][]countsCell, len(loads))
	var wg sync.WaitGroup
	sem := make(chan struct{}, 2)
	for i, ld := range loads {
		wg.Go(func() {
			sem <- struct{}{}
			defer func() { <-sem }()
			h := uint64(14695981039346656037)
			for _, c := range ld.name {
				h = (h ^ uint64(c)) * 1099511628211
			}
			res[i] = simRow(h, ld, watches, js)
		})
	}
	wg.Wait()
	fmt.Printf("%-22s", "")
	for _, k := range names {
		fmt.Printf(" %-22s", k)
	}
	fmt.Println()
	for i, ld := range loads {
		fmt.Printf("%-22s", ld.name)
		for _, c := range res[i] {
			s := fmt.Sprintf("%.2f%%", 100*float64(c.rolledBack)/float64(watches))
			if c.rolledBack > 0 {
				m := slices.Clone(c.minutes)
				slices.Sort(m)
				s += fmt.Sprintf(" %g/%g", m[len(m)/2], m[min(len(m)-1, int(0.95*float64(len(m))))])
			}
			fmt.Printf(" %-22s", s)
		}
		fmt.Println()
	}
}

