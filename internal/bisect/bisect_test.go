package bisect

import (
	"fmt"
	"testing"
)

func batchOf(n int) []string {
	var b []string
	for i := 0; i < n; i++ {
		b = append(b, fmt.Sprintf("c%d", i+1))
	}
	return b
}

// Every culprit of every batch up to 40 commits is found within ⌈log₂ N⌉
// steps, and the newest commit before it is what can ship.
func TestSearchFindsEveryCulprit(t *testing.T) {
	t.Parallel()
	for n := 1; n <= 40; n++ {
		for culprit := 0; culprit < n; culprit++ {
			s := New(batchOf(n))
			steps := 0
			for {
				i, c, ok := s.Next()
				if !ok {
					break
				}
				if c != s.Batch()[i] {
					t.Fatalf("n=%d: Next says %d is %s", n, i, c)
				}
				r := Good
				if i >= culprit {
					r = Bad
				}
				if err := s.Record(i, r); err != nil {
					t.Fatal(err)
				}
				steps++
			}
			if got, want := s.Culprit(), s.Batch()[culprit]; got != want {
				t.Errorf("n=%d culprit %d: found %q", n, culprit, got)
			}
			wantGood := ""
			if culprit > 0 {
				wantGood = s.Batch()[culprit-1]
			}
			if s.Good() != wantGood || len(s.Suspects()) != 1 {
				t.Errorf("n=%d culprit %d: good %q, suspects %v", n, culprit, s.Good(), s.Suspects())
			}
			if steps > MaxSteps(n) {
				t.Errorf("n=%d culprit %d: %d steps, more than ⌈log₂ %d⌉ = %d", n, culprit, steps, n, MaxSteps(n))
			}
		}
	}
}

func TestMaxSteps(t *testing.T) {
	t.Parallel()
	for n, want := range map[int]int{0: 0, 1: 0, 2: 1, 3: 2, 4: 2, 5: 3, 8: 3, 9: 4, 100: 7, 1024: 10} {
		if got := MaxSteps(n); got != want {
			t.Errorf("MaxSteps(%d) = %d, want %d", n, got, want)
		}
	}
}

// The example of the README: c1…c4 after c0, c3 broke it.
func TestSearchOrder(t *testing.T) {
	t.Parallel()
	s := New([]string{"c1", "c2", "c3", "c4"})
	var tried []string
	for {
		i, c, ok := s.Next()
		if !ok {
			break
		}
		tried = append(tried, c)
		_ = s.Record(i, map[bool]Result{true: Bad, false: Good}[c >= "c3"])
	}
	if fmt.Sprint(tried) != "[c2 c3]" || s.Culprit() != "c3" || s.Good() != "c2" {
		t.Errorf("tried %v, culprit %s, good %s", tried, s.Culprit(), s.Good())
	}
}

// A step that cannot decide ends the search: no culprit is named, the
// newest known good can still ship, and the suspects are what is in doubt.
func TestUndecidedStops(t *testing.T) {
	t.Parallel()
	s := New(batchOf(8)) // c1..c8
	i, _, _ := s.Next()  // c4
	_ = s.Record(i, Good)
	i, c, _ := s.Next() // c6
	if c != "c6" {
		t.Fatalf("second step tries %s", c)
	}
	_ = s.Record(i, Undecided)
	if !s.Done() || s.Culprit() != "" || s.Good() != "c4" || fmt.Sprint(s.Suspects()) != "[c5 c6 c7 c8]" || s.OldestBad() != "c8" {
		t.Errorf("done %v, culprit %q, good %q, suspects %v", s.Done(), s.Culprit(), s.Good(), s.Suspects())
	}
	if _, _, ok := s.Next(); ok {
		t.Error("a stopped search goes on")
	}
	if err := s.Record(5, Bad); err == nil {
		t.Error("a step recorded after the end")
	}
}

func TestBatchOfOne(t *testing.T) {
	t.Parallel()
	s := New([]string{"c1"})
	if _, _, ok := s.Next(); ok || s.Culprit() != "c1" || s.Good() != "" {
		t.Errorf("a batch of one: next %v, culprit %q", ok, s.Culprit())
	}
}

func TestRecordChecksTheStep(t *testing.T) {
	t.Parallel()
	s := New(batchOf(4))
	if err := s.Record(3, Bad); err == nil {
		t.Error("recorded a step that was not tried")
	}
}
