package metrics

import "math"

// counters follows the series of one counter selector from look to look and
// turns their raw values into an exact increase. It is pure: no I/O, no
// clock.
type counters struct {
	// last is each series' last value, kept after the series disappears.
	last map[string]int64
}

// sample is one series' raw value in one look.
type sample struct {
	key   string // the series' label set
	value float64
}

// increase is what one look added.
type increase struct {
	delta  int64
	series int // series with a usable value
	fresh  int // series seen for the first time
	resets int // series whose counter went down
}

// maxExact is the largest float64 below which every integer is exact.
const maxExact = 1 << 53

// usable reports whether v can be a counter's value: finite, not negative,
// and small enough to be an exact integer.
func usable(v float64) bool {
	return !math.IsNaN(v) && !math.IsInf(v, 0) && v >= 0 && v < maxExact
}

// observe adds one look's samples and returns their increase since the
// previous look. Samples must be usable. Counter values are rounded to
// integers before they are subtracted, so a watch's increases add up exactly
// to the counters' own increase, with no drift.
func (c *counters) observe(samples []sample) increase {
	if c.last == nil {
		c.last = make(map[string]int64, len(samples))
	}
	var inc increase
	for _, s := range samples {
		v := int64(math.Round(s.value))
		inc.series++
		prev, seen := c.last[s.key]
		switch {
		case !seen:
			inc.fresh++
		case v < prev:
			inc.resets++
			inc.delta += v
		default:
			inc.delta += v - prev
		}
		c.last[s.key] = v
	}
	return inc
}

// holdBack keeps errors from exceeding requests in a look: errors beyond
// the look's requests wait in *held for later looks.
func holdBack(errors, requests int64, held *int64) int64 {
	avail := errors + *held
	x := min(avail, requests)
	*held = avail - x
	return x
}
