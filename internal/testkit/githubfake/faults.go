package githubfake

import (
	"net/http"
	"path"
	"strconv"
	"strings"
	"time"
)

// RateLimitKind selects which of GitHub's rate limits a Fault emulates.
type RateLimitKind int

const (
	// NoRateLimit is a plain fault.
	NoRateLimit RateLimitKind = iota
	// PrimaryRateLimit answers like an exhausted hourly quota: 403 (or
	// Fault.Status, e.g. 429), X-RateLimit-Remaining: 0 and
	// X-RateLimit-Reset at now+RetryAfter (default: the end of the fake's
	// current hour-long window), with GitHub's "API rate limit exceeded"
	// message.
	PrimaryRateLimit
	// SecondaryRateLimit answers like GitHub's abuse protection: 403 (or
	// Fault.Status), a Retry-After header of RetryAfter rounded up to whole
	// seconds (omitted when RetryAfter is 0) and GitHub's "You have exceeded
	// a secondary rate limit" message.
	SecondaryRateLimit
)

// Fault describes a misbehaviour to inject. A request matches a fault when
// Method and Path (or PathPrefix) match; the first matching fault with
// remaining uses applies.
type Fault struct {
	// Method to match, e.g. "POST"; "" matches any method.
	Method string
	// Path is a path.Match pattern for the path relative to the API root,
	// e.g. "/repos/o/r/deployments" or "/repos/o/r/deployments/*/statuses".
	// "" matches any path (unless PathPrefix is set).
	Path string
	// PathPrefix matches every path that starts with it.
	PathPrefix string
	// Times is how many matching requests the fault affects; 0 means all of
	// them until ClearFaults.
	Times int

	// Status is the status to answer with. When 0: 403 for rate limits, no
	// fault answer at all when only Delay is set (the request is then
	// served normally, late), and 500 otherwise.
	Status int
	// Message replaces GitHub's documented message for the status: "Server
	// Error" style texts for 5xx, "Resource not accessible by integration"
	// for 403, "Not Found" for 404, "Bad credentials" for 401.
	Message string
	// RateLimit makes the answer a rate limit error; see RateLimitKind.
	RateLimit RateLimitKind
	// RetryAfter sets when a rate limit lifts; see RateLimitKind.
	RetryAfter time.Duration
	// Header adds headers to the answer (e.g. Retry-After on a 503).
	Header http.Header

	// Delay holds the request this long before answering (released early
	// when the client gives up or the server closes).
	Delay time.Duration
	// Drop closes the connection without answering (after Delay).
	Drop bool
	// AfterServing lets the request take effect first (a create creates)
	// and only then answers with the fault or drops the connection: an
	// answer lost after GitHub acted, as a 502 from a proxy in front of
	// GitHub is.
	AfterServing bool
}

// answers reports whether the fault replaces the normal answer.
func (fl Fault) answers() bool {
	if fl.Drop || fl.AfterServing {
		return false
	}
	return fl.Status != 0 || fl.RateLimit != NoRateLimit || fl.Delay == 0
}

func (fl Fault) matches(method, p string) bool {
	if fl.Method != "" && !strings.EqualFold(fl.Method, method) {
		return false
	}
	if fl.PathPrefix != "" && !strings.HasPrefix(p, fl.PathPrefix) {
		return false
	}
	if fl.Path != "" {
		ok, err := path.Match(fl.Path, p)
		if err != nil || !ok {
			return false
		}
	}
	return true
}

type activeFault struct {
	Fault
	left int // remaining uses; -1 for unlimited
}

// Inject adds a fault. Faults apply in the order they were injected.
func (f *Server) Inject(fl Fault) {
	f.mu.Lock()
	defer f.mu.Unlock()
	left := fl.Times
	if left <= 0 {
		left = -1
	}
	f.st.faults = append(f.st.faults, &activeFault{Fault: fl, left: left})
}

// ClearFaults removes every injected fault.
func (f *Server) ClearFaults() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.st.faults = nil
}

// takeFault finds the fault for a request and uses it up once.
func (s *state) takeFault(method, p string) (Fault, bool) {
	for i, af := range s.faults {
		if af.left == 0 || !af.matches(method, p) {
			continue
		}
		if af.left > 0 {
			af.left--
			if af.left == 0 {
				s.faults = append(s.faults[:i:i], s.faults[i+1:]...)
			}
		}
		return af.Fault, true
	}
	return Fault{}, false
}

// faultReply builds the answer for an injected fault, with the headers and
// documented messages GitHub uses.
func (f *Server) faultReply(fl Fault, now time.Time, p string) reply {
	h := http.Header{}
	for k, vs := range fl.Header {
		h[k] = append([]string(nil), vs...)
	}
	status := fl.Status
	limit := f.opts.RateLimit
	const rateDoc = "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api"

	switch fl.RateLimit {
	case PrimaryRateLimit:
		if status == 0 {
			status = http.StatusForbidden
		}
		f.mu.Lock()
		reset := f.st.rate.reset
		f.mu.Unlock()
		if fl.RetryAfter > 0 || reset.IsZero() || !now.Before(reset) {
			d := fl.RetryAfter
			if d <= 0 {
				d = time.Hour
			}
			reset = now.Add(d)
		}
		rateState{remaining: 0, used: limit, reset: reset}.set(h, limit)
		msg := fl.Message
		if msg == "" {
			msg = "API rate limit exceeded for installation ID 1."
		}
		return reply{status: status, header: h, body: errorBody(msg, rateDoc+"#about-rate-limits", status)}

	case SecondaryRateLimit:
		if status == 0 {
			status = http.StatusForbidden
		}
		if fl.RetryAfter > 0 {
			secs := int64((fl.RetryAfter + time.Second - 1) / time.Second)
			h.Set("Retry-After", strconv.FormatInt(secs, 10))
		}
		f.mu.Lock()
		rl := f.st.spend(now, limit)
		f.mu.Unlock()
		rl.set(h, limit)
		msg := fl.Message
		if msg == "" {
			msg = "You have exceeded a secondary rate limit. Please wait a few minutes before you try again. " +
				"If you reach out to GitHub Support for help, please include the request ID FAKE:0000:000000."
		}
		return reply{status: status, header: h, body: errorBody(msg, rateDoc+"#about-secondary-rate-limits", status)}
	}

	if status == 0 {
		status = http.StatusInternalServerError
	}
	msg := fl.Message
	doc := docFor(p)
	if msg == "" {
		switch {
		case status == http.StatusForbidden:
			msg = "Resource not accessible by integration"
		case status == http.StatusNotFound:
			msg = "Not Found"
		case status == http.StatusUnauthorized:
			msg = "Bad credentials"
		case status == http.StatusUnprocessableEntity:
			msg = "Validation Failed"
		case status >= 500:
			msg = "Server Error"
			if status != http.StatusInternalServerError {
				msg = http.StatusText(status)
			}
		default:
			msg = http.StatusText(status)
		}
	}
	return reply{status: status, header: h, body: errorBody(msg, doc, status)}
}
