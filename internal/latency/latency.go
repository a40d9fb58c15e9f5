// Package latency summarises latencies in bounded memory, for the verdict
// engine, the report and the progress line alike.
//
// A Sketch keeps its first ExactLimit latencies as they are, so quantiles of
// a short watch are the exact nearest-rank values a user can check against
// the probes. Past that it folds them into log-linear buckets (each power
// of two of nanoseconds split into 64 equal parts): a quantile is then
// within 1% of the true nearest-rank value, counts stay exact, and the
// memory is a few kilobytes whatever the number of latencies (up to 2^63).
package latency

import (
	"math"
	"math/bits"
	"slices"
	"time"
)

// ExactLimit is how many latencies a Sketch keeps exactly.
const ExactLimit = 1024

// subBits splits each power of two into 2^subBits buckets.
const subBits = 6

// Sketch summarises latencies. The zero value is empty and ready to use. It
// is not safe for concurrent use (Quantile sorts in place).
type Sketch struct {
	n      int64
	max    time.Duration
	exact  []time.Duration // while n <= ExactLimit; exact[:sorted] is sorted
	sorted int
	// After ExactLimit: counts[i] latencies fell in bucket lo+i (see index);
	// zero counts latencies of 0 or less.
	lo     int
	counts []int64
	zero   int64
}

// Add records one latency.
func (s *Sketch) Add(d time.Duration) { s.AddN(d, 1) }

// AddN records n latencies of d.
func (s *Sketch) AddN(d time.Duration, n int64) {
	if n <= 0 {
		return
	}
	s.n += n
	s.max = max(s.max, d)
	if s.counts == nil && s.zero == 0 && s.n <= ExactLimit {
		for range n {
			s.exact = append(s.exact, d)
		}
		return
	}
	if s.exact != nil {
		s.fold()
	}
	s.bucket(d, n)
}

// fold moves the exact latencies into buckets.
func (s *Sketch) fold() {
	for _, d := range s.exact {
		s.bucket(d, 1)
	}
	s.exact, s.sorted = nil, 0
}

func (s *Sketch) bucket(d time.Duration, n int64) {
	if d <= 0 {
		s.zero += n
		return
	}
	i := index(d)
	switch {
	case len(s.counts) == 0:
		s.lo = i
		s.counts = append(s.counts, 0)
	case i < s.lo:
		grown := make([]int64, len(s.counts)+s.lo-i)
		copy(grown[s.lo-i:], s.counts)
		s.counts, s.lo = grown, i
	case i >= s.lo+len(s.counts):
		s.counts = append(s.counts, make([]int64, i-s.lo-len(s.counts)+1)...)
	}
	s.counts[i-s.lo] += n
}

// index is the bucket of a positive latency: its power of two, and the
// next subBits bits below the leading one.
func index(d time.Duration) int {
	v := uint64(d)
	e := bits.Len64(v) - 1
	var m uint64
	if e >= subBits {
		m = v >> (e - subBits)
	} else {
		m = v << (subBits - e)
	}
	return e<<subBits | int(m&(1<<subBits-1))
}

// middle is a bucket's representative value: the middle of its bounds,
// within 1% of any latency in it.
func middle(i int) time.Duration {
	e, m := i>>subBits, i&(1<<subBits-1)
	lo := math.Ldexp(float64(1<<subBits+m), e-subBits)
	width := math.Ldexp(1, e-subBits)
	return time.Duration(math.Round(lo + width/2))
}

// Merge adds every latency of o.
func (s *Sketch) Merge(o *Sketch) {
	if o == nil || o.n == 0 {
		return
	}
	if o.counts == nil && o.zero == 0 {
		for _, d := range o.exact {
			s.Add(d)
		}
		return
	}
	if s.exact != nil || s.n == 0 {
		s.fold()
	}
	s.n += o.n
	s.max = max(s.max, o.max)
	s.zero += o.zero
	for i, c := range o.counts {
		if c > 0 {
			s.bucket(middle(o.lo+i), c)
		}
	}
}

// Count is how many latencies were added.
func (s *Sketch) Count() int64 { return s.n }

// Max is the largest latency added, 0 for none.
func (s *Sketch) Max() time.Duration { return s.max }

// Exact reports whether quantiles are exact (at most ExactLimit latencies).
func (s *Sketch) Exact() bool { return s.counts == nil && s.zero == 0 }

// Quantile is the nearest-rank q-quantile (0 < q <= 1): the smallest
// latency with at least q of them at or below it; 0 when there are none.
// Past ExactLimit latencies it is within 1% of that value.
func (s *Sketch) Quantile(q float64) time.Duration {
	if s.n == 0 {
		return 0
	}
	r := Rank(q, s.n)
	if s.Exact() {
		if s.sorted < len(s.exact) {
			slices.Sort(s.exact)
			s.sorted = len(s.exact)
		}
		return s.exact[r-1]
	}
	seen := s.zero
	if seen >= r {
		return 0
	}
	for i, c := range s.counts {
		if seen += c; seen >= r {
			return min(middle(s.lo+i), s.max)
		}
	}
	return s.max
}

// Above is how many latencies are longer than d: exact while Exact, else
// counted by bucket (a bucket counts as above when its middle is).
func (s *Sketch) Above(d time.Duration) int64 {
	if s.Exact() {
		var n int64
		for _, v := range s.exact {
			if v > d {
				n++
			}
		}
		return n
	}
	var n int64
	for i, c := range s.counts {
		if middle(s.lo+i) > d {
			n += c
		}
	}
	return n
}

// Rank is the 1-based nearest rank of the q-quantile among n values.
func Rank(q float64, n int64) int64 {
	// The slack keeps 95% of 20 at rank 19 despite rounding.
	r := int64(math.Ceil(q*float64(n) - 1e-9))
	return min(max(r, 1), n)
}

// Quantile is the nearest-rank q-quantile of ds, 0 for none. It does not
// modify ds.
func Quantile(ds []time.Duration, q float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	sorted := slices.Clone(ds)
	slices.Sort(sorted)
	return sorted[Rank(q, int64(len(sorted)))-1]
}
