package metrics

import "math"

// bounds is a threshold metric's limits.
type bounds struct {
	max, min *float64
}

// worst returns, of values (±Inf included, NaN not), the one furthest
// beyond a bound (or, when all are within, the one closest to a bound), and
// whether it is out of bounds. values must not be empty.
func (b bounds) worst(values []float64) (value float64, out bool) {
	best := math.NaN()
	for _, v := range values {
		if e := b.excess(v); math.IsNaN(best) || e > best {
			best, value = e, v
		}
	}
	return value, best > 0
}

// excess is how far v lies beyond the bounds: positive outside, zero or
// negative inside (a value equal to a bound is inside).
func (b bounds) excess(v float64) float64 {
	e := math.Inf(-1)
	if b.max != nil {
		e = v - *b.max
	}
	if b.min != nil {
		e = max(e, *b.min-v)
	}
	return e
}

// streak is the consecutive rule: this many looks with data in a row out of
// bounds are a regression. Looks without data are not observations and
// leave it as it is.
type streak struct {
	need int
	run  int
}

// observe records one look with data and returns the run so far and
// whether it has reached the rule.
func (s *streak) observe(out bool) (run int, regressed bool) {
	if out {
		s.run++
	} else {
		s.run = 0
	}
	return s.run, s.run >= s.need
}
