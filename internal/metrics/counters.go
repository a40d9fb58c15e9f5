package metrics

import (
	"math"
	"time"
)

// counters follows the series of one counter selector from look to look and
// turns their raw values into an exact increase. It is pure: no I/O, no
// clock.
//
// Each series keeps the value counted up to (its high-water mark). A value
// above it adds the difference. A value below it is one of two things:
//   - a restart (the process's counter started again from zero): its new
//     value is the increase since the restart;
//   - a reading from a replica that is behind (an HA pair behind a load
//     balancer, Thanos deduplication switching replicas): nothing new, and
//     the mark stays until the counter passes it again.
//
// Which one is not guessed from the values: the source asks Prometheus,
// whose resets() sees every scraped sample of the series since shortly
// before the previous look (a drop between two consecutive scrapes of one
// server is a restart; Thanos adjusts replica switches away for resets()).
// That evidence also catches a restart whose new value is already above the
// old one, when a scrape of the new life was below the old life's last.
// Without evidence (a selector resets() cannot run on), or for a series last
// read before the evidence begins (it was away for minutes, and came back
// lower), a lower value is a restart.
//
// A series first seen after the first look answered was born during the
// watch (client libraries create a series at its first increment: the first
// error of a code, the first request of a new pod), so its whole value is
// counted. On the first look every series is a starting point: what it
// counted before the watch is not the watch's.
type counters struct {
	series map[string]track
	// looks counts the looks that answered (an empty answer included: it
	// says that no series existed yet).
	looks int
}

// track is one series' book.
type track struct {
	mark int64 // the value counted up to
	seen int64 // when a look last read it (Unix milliseconds)
}

// sample is one series' raw value in one look.
type sample struct {
	key   string // the series' label set
	bare  string // its labels without the name, as resets() returns them
	value float64
	// resets is how many restarts Prometheus saw in the series since the
	// previous look (evidence), when the look has evidence.
	resets int
}

// increase is what one look added.
type increase struct {
	delta   int64
	series  int // series with a usable value
	fresh   int // starting points: series of the first look
	born    int // series born during the watch, counted from zero
	resets  int // series that restarted
	lagging int // series read below their mark without a restart
}

// maxExact is the largest float64 below which every integer is exact.
const maxExact = 1 << 53

// usable reports whether v can be a counter's value: finite, not negative,
// and small enough to be an exact integer.
func usable(v float64) bool {
	return !math.IsNaN(v) && !math.IsInf(v, 0) && v >= 0 && v < maxExact
}

// tracked is how many series the counters follow.
func (c *counters) tracked() int { return len(c.series) }

// has reports whether the counters follow series key.
func (c *counters) has(key string) bool {
	_, ok := c.series[key]
	return ok
}

// observe adds the samples of one answered look, taken at at, and returns
// their increase since the previous look. Samples must be usable and have
// distinct keys. Their resets are Prometheus's evidence for the series last
// read at or after evidenceFrom (zero: no evidence). Counter values are
// rounded to integers before they are subtracted, so a watch's increases
// add up exactly to the counters' own increase, with no drift.
func (c *counters) observe(samples []sample, at, evidenceFrom time.Time) increase {
	if c.series == nil {
		c.series = make(map[string]track, len(samples))
	}
	now := at.UnixMilli()
	var inc increase
	for _, s := range samples {
		v := int64(math.Round(s.value))
		inc.series++
		tr, seen := c.series[s.key]
		evidence := !evidenceFrom.IsZero() && tr.seen >= evidenceFrom.UnixMilli()
		switch {
		case !seen && c.looks == 0:
			inc.fresh++
		case !seen:
			inc.born++
			inc.delta += v
		case evidence && s.resets > 0:
			inc.resets++
			inc.delta += v
		case v >= tr.mark:
			inc.delta += v - tr.mark
		case !evidence:
			// No word from Prometheus about this series: lower is a
			// restart.
			inc.resets++
			inc.delta += v
		default:
			inc.lagging++
			c.series[s.key] = track{mark: tr.mark, seen: now}
			continue
		}
		c.series[s.key] = track{mark: v, seen: now}
	}
	c.looks++
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
