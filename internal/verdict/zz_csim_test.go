package verdict

import (
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"testing"
)

type cLoad struct {
	name    string
	rpm     float64
	share   float64
	pc, ps  float64
	outFrom float64
	outTo   float64
	outAdd  float64
	burst   int
	onset   float64
}

type cJudgeFn func() func(nc, xc, ns, xs int64) bool

func cRow(seed uint64, ld cLoad, watches int, judges []cJudgeFn) []countsCell {
	rng := rand.New(rand.NewPCG(seed, 7))
	cells := make([]countsCell, len(judges))
	for range watches {
		sc := &simStream{rng: rng, burst: max(ld.burst, 1)}
		ss := &simStream{rng: rng, burst: max(ld.burst, 1)}
		js := make([]func(nc, xc, ns, xs int64) bool, len(judges))
		for i, j := range judges {
			js[i] = j()
		}
		done := make([]bool, len(js))
		for i := 0; i < 240; i++ {
			m := float64(i) * 0.25
			n := poisson(rng, ld.rpm*0.25)
			nc := draw(rng, n, ld.share)
			pc, ps := ld.pc, ld.ps
			if m >= ld.outFrom && m < ld.outTo {
				pc, ps = pc+ld.outAdd, ps+ld.outAdd
			}
			xc := sc.look(nc, pc)
			xs := ss.look(n-nc, ps)
			for k, j := range js {
				if !done[k] && j(int64(nc), int64(xc), int64(n-nc), int64(xs)) {
					done[k] = true
					cells[k].rolledBack++
					cells[k].minutes = append(cells[k].minutes, float64(i+1)*0.25-ld.onset)
				}
			}
		}
	}
	return cells
}

var cLoads = []cLoad{
	{name: "1000 10% ident", rpm: 1000, share: 0.1, pc: 0.01, ps: 0.01},
	{name: "1000 10% limit", rpm: 1000, share: 0.1, pc: 0.0125, ps: 0.01},
	{name: "1000 10% limit out", rpm: 1000, share: 0.1, pc: 0.0125, ps: 0.01, outFrom: 1, outTo: 11, outAdd: 0.09},
	{name: "1000 10% ident out", rpm: 1000, share: 0.1, pc: 0.01, ps: 0.01, outFrom: 1, outTo: 11, outAdd: 0.09},
	{name: "1000 10% ident b10", rpm: 1000, share: 0.1, pc: 0.01, ps: 0.01, burst: 10},
	{name: "1000 10% limit b10", rpm: 1000, share: 0.1, pc: 0.0125, ps: 0.01, burst: 10},
	{name: "100 50% limit b10", rpm: 100, share: 0.5, pc: 0.0125, ps: 0.01, burst: 10},
	{name: "1000 10% 5%", rpm: 1000, share: 0.1, pc: 0.05, ps: 0.01},
	{name: "1000 10% 5% out", rpm: 1000, share: 0.1, pc: 0.05, ps: 0.01, outFrom: 1, outTo: 11, outAdd: 0.09},
	{name: "1000 10% 3%", rpm: 1000, share: 0.1, pc: 0.03, ps: 0.01},
	{name: "1000 5% 3%", rpm: 1000, share: 0.05, pc: 0.03, ps: 0.01},
	{name: "1000 50% 3%", rpm: 1000, share: 0.5, pc: 0.03, ps: 0.01},
	{name: "100 50% 3%", rpm: 100, share: 0.5, pc: 0.03, ps: 0.01},
	{name: "1000 10% 2%", rpm: 1000, share: 0.1, pc: 0.02, ps: 0.01},
	{name: "1000 50% 2%", rpm: 1000, share: 0.5, pc: 0.02, ps: 0.01},
}

func todayCanary() func(nc, xc, ns, xs int64) bool {
	l := DefaultLimits()
	l.MaxErrorRate, l.Dispersion = canaryMargin, true
	c := NewCanary(l, CanaryOptions{})
	return func(nc, xc, ns, xs int64) bool {
		return c.Look([]Observation{Count("canary", nc, xc, nil)}, []Observation{Count("stable", ns, xs, nil)}).Outcome == Regressed
	}
}

var cJudges = map[string]cJudgeFn{"today": todayCanary}

func TestCSim(t *testing.T) {
	names := []string{"today"}
	for k := range cJudges {
		if k != "today" {
			names = append(names, k)
		}
	}
	sort.Strings(names[1:])
	var js []cJudgeFn
	for _, k := range names {
		js = append(js, cJudges[k])
	}
	watches := 1000
	if w := os.Getenv("SIMW"); w != "" {
		watches, _ = strconv.Atoi(w)
	}
	loads := cLoads
	if f := os.Getenv("SIMF"); f != "" {
		loads = nil
		for _, ld := range cLoads {
			if strings.Contains(f, "|"+ld.name+"|") {
				loads = append(loads, ld)
			}
		}
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
			res[i] = cRow(h, ld, watches, js)
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
	_ = math.Abs
}
