// Package traffic simulates, seeded, the request and error counts a watch
// reads from Prometheus look by look: traffic that varies (a diurnal ramp),
// a failure rate that changes mid-watch (a regression that starts late, a
// shared outage), errors that come in bursts of consecutive failed requests
// (a retrying client, one broken caller) which may span looks, and traffic
// split at random between a canary and its control. The benchmark tables
// of internal/verdict and the measurement of `immune replay` judge the same
// traces; WriteCSV writes one as `immune replay` reads it.
package traffic

import (
	"bufio"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"strconv"
	"time"
)

// Load is how a stream of requests behaves over a watch; minute is the
// time since the deploy.
type Load struct {
	// PerMinute is the traffic, in requests a minute.
	PerMinute func(minute float64) float64
	// Rate is the share of requests that fail.
	Rate func(minute float64) float64
	// Burst: errors come in bursts of this many consecutive failed
	// requests (1 or 0: independent requests). A burst starts at each
	// request with the chance that makes every request fail at Rate, and
	// may straddle looks.
	Burst int
}

// Constant is a function of time that does not change.
func Constant(v float64) func(float64) float64 { return func(float64) float64 { return v } }

// Step is from, then to from minute at on.
func Step(from, to, at float64) func(float64) float64 {
	return func(m float64) float64 {
		if m >= at {
			return to
		}
		return from
	}
}

// Ramp goes from lo to hi and back over period minutes, as a day's traffic
// does: lo at the start, hi half a period later.
func Ramp(lo, hi, period float64) func(float64) float64 {
	return func(m float64) float64 { return lo + (hi-lo)*(1-math.Cos(2*math.Pi*m/period))/2 }
}

// Look is one look's increments.
type Look struct {
	Requests, Errors int64
}

// Watch draws looks every `every` for `watch` of load: each look's requests
// are Poisson around the traffic at its middle, and fail at the rate at its
// start.
func Watch(rng *rand.Rand, load Load, every, watch time.Duration) []Look {
	n := int(watch / every)
	looks := make([]Look, n)
	s := newStream(rng, load.Burst)
	for i := range looks {
		start := minutes(time.Duration(i) * every)
		mid := start + minutes(every)/2
		req := poisson(rng, load.PerMinute(mid)*minutes(every))
		looks[i] = Look{Requests: int64(req), Errors: int64(s.look(req, load.Rate(start)))}
	}
	return looks
}

// Split draws a canary's and its control's looks: the traffic of total is
// split at random, each request going to the canary with chance share; the
// canary's requests fail at canary's rate, the control's at control's, both
// plus outage's (a shared incident, in points) in the same minutes. Bursts
// are each track's own.
func Split(rng *rand.Rand, total func(float64) float64, share float64, canary, control, outage func(float64) float64, burst int, every, watch time.Duration) (c, s []Look) {
	n := int(watch / every)
	c, s = make([]Look, n), make([]Look, n)
	sc, ss := newStream(rng, burst), newStream(rng, burst)
	for i := range n {
		start := minutes(time.Duration(i) * every)
		req := poisson(rng, total(start+minutes(every)/2)*minutes(every))
		nc := Binomial(rng, req, share)
		add := outage(start)
		c[i] = Look{Requests: int64(nc), Errors: int64(sc.look(nc, min(canary(start)+add, 1)))}
		s[i] = Look{Requests: int64(req - nc), Errors: int64(ss.look(req-nc, min(control(start)+add, 1)))}
	}
	return c, s
}

func minutes(d time.Duration) float64 { return d.Minutes() }

// stream draws which requests fail, in bursts that may span looks.
type stream struct {
	rng     *rand.Rand
	burst   int64
	rate    float64 // the rate the next burst start was drawn at
	logq    float64 // log(1 − chance a burst starts at a request)
	at      int64   // requests so far
	next    int64   // where the next burst starts
	failEnd int64   // the failing run so far ends before this request
}

func newStream(rng *rand.Rand, burst int) *stream {
	return &stream{rng: rng, burst: int64(max(burst, 1)), rate: -1}
}

// gap draws the distance to the next burst's start (at least 1).
func (s *stream) gap() int64 {
	if s.logq == 0 {
		return math.MaxInt64 / 4
	}
	return 1 + int64(math.Log(1-s.rng.Float64())/s.logq)
}

// look returns how many of the next n requests fail at rate.
func (s *stream) look(n int, rate float64) int {
	if rate != s.rate {
		// The chance q a burst starts at a request: 1 − (1 − q)^burst = rate.
		// Memoryless, so a new rate redraws the next start from here.
		s.rate, s.logq = rate, 0
		if rate > 0 {
			s.logq = math.Log1p(-min(rate, 1)) / float64(s.burst)
		}
		s.next = s.at + s.gap() - 1
	}
	start, end := s.at, s.at+int64(n)
	bad := int64(0)
	if s.failEnd > start {
		bad += min(s.failEnd, end) - start
	}
	for s.next < end {
		from := max(s.next, s.failEnd, start)
		if to := min(s.next+s.burst, end); to > from {
			bad += to - from
		}
		s.failEnd = max(s.failEnd, s.next+s.burst)
		s.next += s.gap()
	}
	s.at = end
	return int(bad)
}

// poisson draws a Poisson count of mean lambda (normal beyond 50, rounded).
func poisson(rng *rand.Rand, lambda float64) int {
	switch {
	case lambda <= 0:
		return 0
	case lambda > 50:
		return max(0, int(math.Round(lambda+math.Sqrt(lambda)*rng.NormFloat64())))
	}
	limit, k, p := math.Exp(-lambda), 0, 1.0
	for {
		if p *= rng.Float64(); p <= limit {
			return k
		}
		k++
	}
}

// Binomial draws how many of n requests fail at rate p, exactly: the gaps
// between failures are geometric. The verdict's tables draw with it too.
func Binomial(rng *rand.Rand, n int, p float64) int {
	switch {
	case p <= 0 || n <= 0:
		return 0
	case p >= 1:
		return n
	}
	logq := math.Log1p(-p)
	x := 0
	for i := 0; ; x++ {
		i += 1 + int(math.Log(1-rng.Float64())/logq)
		if i > n {
			return x
		}
	}
}

// WriteCSV writes looks taken every `every` as `immune replay` reads them:
// t (seconds since the deploy, at the end of the look), requests, errors,
// and with control (its looks, as many) control_requests, control_errors.
func WriteCSV(w io.Writer, every time.Duration, looks, control []Look) error {
	b := bufio.NewWriter(w)
	b.WriteString("t,requests,errors")
	if control != nil {
		b.WriteString(",control_requests,control_errors")
	}
	b.WriteString("\n")
	for i, l := range looks {
		b.WriteString(strconv.FormatFloat((time.Duration(i+1) * every).Seconds(), 'f', -1, 64))
		fmt.Fprintf(b, ",%d,%d", l.Requests, l.Errors)
		if control != nil {
			fmt.Fprintf(b, ",%d,%d", control[i].Requests, control[i].Errors)
		}
		b.WriteString("\n")
	}
	return b.Flush()
}
