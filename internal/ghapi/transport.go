package ghapi

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// retryTransport sits under go-github and retries what GitHub documents as
// transient: 5xx answers, timeouts and connection failures with exponential
// backoff, and rate limits by waiting for their reset. It never waits more
// than maxWait in total for one request; a rate limit that lifts later fails
// at once with a *RateLimitError. Giving up returns an error (never the
// failed answer), so go-github never records an exhausted limit and
// short-circuits later requests on its own wall clock: this transport is the
// only place rate limits are decided, on the injected clock.
type retryTransport struct {
	base           http.RoundTripper
	sleep          func(context.Context, time.Duration) error
	now            func() time.Time
	logf           func(format string, args ...any)
	maxRetries     int
	maxWait        time.Duration
	attemptTimeout time.Duration

	mu   sync.Mutex
	gate limitGate // a rate limit known from an earlier answer
}

// limitGate is a rate limit in force: no request before until.
type limitGate struct {
	until     time.Time
	secondary bool
	status    int
	message   string
}

const (
	firstBackoff = time.Second
	maxBackoff   = 30 * time.Second
	// resetSlack is added to X-RateLimit-Reset against clock skew.
	resetSlack = time.Second
	// secondaryDefault is GitHub's advice for a secondary rate limit that
	// names no time: wait at least a minute.
	secondaryDefault = time.Minute
	maxErrorBody     = 1 << 20
)

// noRetries marks a request's context: after a failure GitHub may have
// acted on, the transport leaves retrying to the caller, who knows how to
// retry it safely.
type noRetries struct{}

func withoutRetries(ctx context.Context) context.Context {
	return context.WithValue(ctx, noRetries{}, true)
}

// MaxAnswer bounds the body of an answer from GitHub; a larger one is an
// error rather than memory spent.
const MaxAnswer = 16 << 20

func (t *retryTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	ctx := req.Context()
	getBody, err := replayable(req)
	if err != nil {
		return nil, err
	}
	// A request marked withoutRetries is not retried after a failure that
	// GitHub may have acted on (a 5xx, a lost answer); a rate limit, which
	// GitHub answers before acting, is still waited out.
	maxRetries := t.maxRetries
	if ctx.Value(noRetries{}) != nil {
		maxRetries = 0
	}
	var slept time.Duration
	for attempt := 1; ; attempt++ {
		// Honour a rate limit known from an earlier answer before sending.
		if g, wait := t.pending(); wait > 0 {
			if slept+wait > t.maxWait {
				return nil, g.err(wait, t.maxWait, attempt-1)
			}
			t.log("GitHub API %s rate limit: waiting %s before %s %s", kindOf(g.secondary), wait.Round(time.Second), req.Method, req.URL.Path)
			if err := t.sleep(ctx, wait); err != nil {
				return nil, err
			}
			slept += wait
		}

		resp, err := t.send(ctx, req, getBody)
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			if attempt > maxRetries {
				return nil, &UnavailableError{Attempts: attempt, Err: err}
			}
			wait := backoff(attempt)
			if slept+wait > t.maxWait {
				return nil, &UnavailableError{Attempts: attempt, Err: err}
			}
			t.log("GitHub API request %s %s failed (%v); retrying in %s (attempt %d of %d)",
				req.Method, req.URL.Path, err, wait, attempt+1, maxRetries+1)
			if err := t.sleep(ctx, wait); err != nil {
				return nil, err
			}
			slept += wait
			continue
		}

		switch v := t.judge(resp); v.kind {
		case verdictDone:
			return resp, nil

		case verdictRateLimited:
			discard(resp)
			t.block(v.gate)
			if attempt > t.maxRetries {
				e := v.gate.err(v.gate.until.Sub(t.now()), t.maxWait, attempt)
				e.exhausted = true
				return nil, e
			}
			// The wait happens at the top of the loop, within the budget.

		case verdictTransient:
			discard(resp)
			wait := max(backoff(attempt), v.retryAfter)
			if attempt > maxRetries || slept+wait > t.maxWait {
				return nil, &UnavailableError{Attempts: attempt, Status: v.status, Message: v.message}
			}
			t.log("GitHub API answered %d to %s %s; retrying in %s (attempt %d of %d)",
				v.status, req.Method, req.URL.Path, wait, attempt+1, maxRetries+1)
			if err := t.sleep(ctx, wait); err != nil {
				return nil, err
			}
			slept += wait
		}
	}
}

func kindOf(secondary bool) string {
	if secondary {
		return "secondary"
	}
	return "primary"
}

// backoff is the wait after the given failed attempt: 1s, 2s, 4s, 8s ...
// up to 30s.
func backoff(attempt int) time.Duration {
	d := firstBackoff
	for i := 1; i < attempt && d < maxBackoff; i++ {
		d *= 2
	}
	return min(d, maxBackoff)
}

func (t *retryTransport) log(format string, args ...any) {
	if t.logf != nil {
		t.logf(format, args...)
	}
}

// replayable returns a function that yields a fresh copy of the request
// body for each attempt, buffering it if the request cannot do that itself.
func replayable(req *http.Request) (func() (io.ReadCloser, error), error) {
	if req.Body == nil || req.Body == http.NoBody {
		return nil, nil
	}
	if req.GetBody != nil {
		_ = req.Body.Close()
		return req.GetBody, nil
	}
	b, err := io.ReadAll(req.Body)
	_ = req.Body.Close()
	if err != nil {
		return nil, fmt.Errorf("buffer request body: %w", err)
	}
	return func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(b)), nil }, nil
}

// send makes one attempt, bounded by attemptTimeout.
func (t *retryTransport) send(ctx context.Context, req *http.Request, getBody func() (io.ReadCloser, error)) (*http.Response, error) {
	actx, cancel := context.WithTimeout(ctx, t.attemptTimeout)
	r := req.Clone(actx)
	if getBody != nil {
		body, err := getBody()
		if err != nil {
			cancel()
			return nil, fmt.Errorf("replay request body: %w", err)
		}
		r.Body = body
	}
	resp, err := t.base.RoundTrip(r)
	if err != nil {
		cancel()
		if errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
			return nil, fmt.Errorf("no answer within %s", t.attemptTimeout)
		}
		return nil, err
	}
	resp.Body = &cancelOnClose{ReadCloser: &capped{ReadCloser: resp.Body, left: MaxAnswer, what: req.Method + " " + req.URL.Path}, cancel: cancel}
	return resp, nil
}

// capped fails a read past its limit.
type capped struct {
	io.ReadCloser
	left int64
	what string
}

func (c *capped) Read(p []byte) (int, error) {
	if c.left <= 0 {
		return 0, fmt.Errorf("GitHub's answer to %s is larger than %d MiB", c.what, MaxAnswer>>20)
	}
	if int64(len(p)) > c.left {
		p = p[:c.left]
	}
	n, err := c.ReadCloser.Read(p)
	c.left -= int64(n)
	return n, err
}

type cancelOnClose struct {
	io.ReadCloser
	cancel context.CancelFunc
}

func (c *cancelOnClose) Close() error {
	err := c.ReadCloser.Close()
	c.cancel()
	return err
}

func discard(resp *http.Response) {
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxErrorBody))
	_ = resp.Body.Close()
}

type verdictKind int

const (
	verdictDone verdictKind = iota
	verdictRateLimited
	verdictTransient
)

type verdict struct {
	kind       verdictKind
	status     int
	message    string
	retryAfter time.Duration
	gate       limitGate
}

// judge decides what an answer means, following GitHub's documentation on
// rate limits: a 403 or 429 with Retry-After is a secondary limit lifting
// after that many seconds; one with X-RateLimit-Remaining: 0 lifts at
// X-RateLimit-Reset; a secondary limit naming no time lifts after a minute.
func (t *retryTransport) judge(resp *http.Response) verdict {
	now := t.now()
	status := resp.StatusCode
	h := resp.Header

	switch {
	case status >= 500:
		return verdict{kind: verdictTransient, status: status, message: errorMessage(peek(resp)),
			retryAfter: retryAfter(h, now)}

	case status == http.StatusForbidden || status == http.StatusTooManyRequests:
		body := peek(resp)
		msg := errorMessage(body)
		g := limitGate{status: status, message: msg}
		switch {
		case h.Get("Retry-After") != "":
			g.secondary = true
			g.until = now.Add(retryAfter(h, now))
		case h.Get("X-RateLimit-Remaining") == "0":
			g.until = resetTime(h, now)
		case status == http.StatusTooManyRequests || isSecondary(body):
			g.secondary = true
			g.until = now.Add(secondaryDefault)
		default:
			t.observe(h, now)
			return verdict{kind: verdictDone}
		}
		return verdict{kind: verdictRateLimited, status: status, message: msg, gate: g}
	}

	t.observe(h, now)
	return verdict{kind: verdictDone}
}

// observe remembers a quota that this answer used up, so the next request
// waits for the reset instead of being refused, and forgets a limit that
// has evidently lifted.
func (t *retryTransport) observe(h http.Header, now time.Time) {
	if h.Get("X-RateLimit-Remaining") == "0" && h.Get("X-RateLimit-Reset") != "" {
		t.block(limitGate{until: resetTime(h, now)})
		return
	}
	t.mu.Lock()
	t.gate = limitGate{}
	t.mu.Unlock()
}

func (t *retryTransport) block(g limitGate) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if g.until.After(t.gate.until) {
		t.gate = g
	}
}

func (t *retryTransport) pending() (limitGate, time.Duration) {
	t.mu.Lock()
	g := t.gate
	t.mu.Unlock()
	if g.until.IsZero() {
		return g, 0
	}
	return g, g.until.Sub(t.now())
}

func (g limitGate) err(wait, maxWait time.Duration, attempts int) *RateLimitError {
	return &RateLimitError{
		Secondary: g.secondary,
		Status:    g.status,
		Message:   g.message,
		Reset:     g.until,
		Wait:      max(wait, 0),
		MaxWait:   maxWait,
		Attempts:  attempts,
	}
}

// resetTime reads X-RateLimit-Reset (Unix seconds), plus slack for clock
// skew; a reset already past (or missing) means "shortly".
func resetTime(h http.Header, now time.Time) time.Time {
	secs, err := strconv.ParseInt(h.Get("X-RateLimit-Reset"), 10, 64)
	if err != nil {
		return now.Add(secondaryDefault)
	}
	reset := time.Unix(secs, 0).Add(resetSlack)
	if !reset.After(now) {
		return now.Add(resetSlack)
	}
	return reset
}

// retryAfter reads Retry-After, in seconds or as an HTTP date.
func retryAfter(h http.Header, now time.Time) time.Duration {
	v := strings.TrimSpace(h.Get("Retry-After"))
	if v == "" {
		return 0
	}
	if secs, err := strconv.Atoi(v); err == nil {
		return time.Duration(max(secs, 0)) * time.Second
	}
	if at, err := http.ParseTime(v); err == nil && at.After(now) {
		return at.Sub(now)
	}
	return 0
}

// peek reads an error answer's body and puts it back for go-github.
func peek(resp *http.Response) []byte {
	b, _ := io.ReadAll(io.LimitReader(resp.Body, maxErrorBody))
	_ = resp.Body.Close()
	resp.Body = io.NopCloser(bytes.NewReader(b))
	return b
}

type errorDoc struct {
	Message          string `json:"message"`
	DocumentationURL string `json:"documentation_url"`
}

func errorMessage(body []byte) string {
	var d errorDoc
	if json.Unmarshal(body, &d) == nil {
		return d.Message
	}
	return ""
}

func isSecondary(body []byte) bool {
	var d errorDoc
	_ = json.Unmarshal(body, &d)
	m := strings.ToLower(d.Message)
	u := strings.ToLower(d.DocumentationURL)
	return strings.Contains(m, "secondary rate limit") || strings.Contains(m, "abuse detection") ||
		strings.Contains(u, "secondary-rate-limits") || strings.Contains(u, "abuse-rate-limits")
}
