package metrics

// The HTTP side: one query with its retries, what a failure means, and the
// headers (secrets) that go with every request.

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/prometheus/client_golang/api"
	v1 "github.com/prometheus/client_golang/api/prometheus/v1"
	"github.com/prometheus/common/model"

	"github.com/immune-cd/immune/internal/redact"
)

// result is the outcome of one query, retries included.
type result struct {
	value    model.Value
	notes    []string
	attempts int
	err      error  // secrets removed
	noData   NoData // when err != nil
}

// Bounds on what Prometheus's notes put in a reading and the log.
const (
	maxNoteBytes   = 500 // one warning or info
	maxNotes       = 5   // per answer
	maxLoggedNotes = 100 // distinct notes logged per metric
)

// query runs q, retrying what a retry can cure, and surfaces Prometheus's
// warnings and infos. ts zero means the server's current time.
func (s *Source) query(ctx context.Context, m *metric, q string, ts time.Time) result {
	return s.send(ctx, m, func(ctx context.Context) (model.Value, v1.Warnings, v1.Infos, error) {
		return s.api.Query(ctx, q, ts, v1.WithTimeout(s.timeout))
	})
}

// queryRange runs q as a range query, as query runs an instant one.
func (s *Source) queryRange(ctx context.Context, m *metric, q string, r v1.Range) result {
	return s.send(ctx, m, func(ctx context.Context) (model.Value, v1.Warnings, v1.Infos, error) {
		return s.api.QueryRange(ctx, q, r, v1.WithTimeout(s.timeout))
	})
}

// send makes one request, retrying what a retry can cure, and surfaces
// Prometheus's warnings and infos.
func (s *Source) send(ctx context.Context, m *metric, do func(context.Context) (model.Value, v1.Warnings, v1.Infos, error)) result {
	wait := s.backoff
	for attempt := 1; ; attempt++ {
		status := new(int)
		actx, cancel := context.WithTimeout(context.WithValue(ctx, statusKey{}, status), s.timeout)
		value, warnings, infos, err := do(actx)
		cancel()
		res := result{value: value, attempts: attempt}
		res.notes = s.notes(warnings, infos)
		if err == nil && value == nil {
			err = errors.New("the answer holds no result")
		}
		if err == nil {
			return res
		}
		retry := retryable(err, *status)
		res.err = errors.New(s.redact(s.describe(err, *status)))
		res.noData = NoDataQueryError
		if retry {
			res.noData = NoDataUnreachable
		}
		if ctx.Err() != nil {
			res.noData = NoDataUnreachable
			res.err = fmt.Errorf("the look ended before Prometheus answered (%v)", res.err)
			return res
		}
		if !retry || attempt >= s.tries {
			return res
		}
		if !m.quiet {
			s.log(fmt.Sprintf("metric %q: attempt %d of %d failed: %v; retrying in %s", m.name, attempt, s.tries, res.err, wait))
		}
		select {
		case <-ctx.Done():
			res.err = fmt.Errorf("the look ended before a retry (%v)", res.err)
			return res
		case <-s.clock.After(wait):
		}
		wait *= 2
	}
}

// notes turns an answer's warnings and infos into notes, secrets removed,
// each clipped, at most maxNotes of them.
func (s *Source) notes(warnings v1.Warnings, infos v1.Infos) []string {
	var notes []string
	more := 0
	add := func(kind, text string) {
		if len(notes) >= maxNotes {
			more++
			return
		}
		notes = append(notes, clip(s.redact(kind+text), maxNoteBytes))
	}
	for _, w := range warnings {
		add("Prometheus warning: ", w)
	}
	for _, i := range infos {
		add("Prometheus info: ", i)
	}
	if more > 0 {
		notes = append(notes, fmt.Sprintf("Prometheus sent %d more warnings and infos, not shown", more))
	}
	return notes
}

// logOnce logs a note the first time the metric produces it, up to
// maxLoggedNotes distinct notes (the readings keep them all).
func (s *Source) logOnce(m *metric, note string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.logged[note] {
		return
	}
	switch n := len(m.logged); {
	case n < maxLoggedNotes:
		s.log(fmt.Sprintf("metric %q: %s", m.name, note))
	case n == maxLoggedNotes:
		s.log(fmt.Sprintf("metric %q: more notes than the log shows; the report's looks keep them", m.name))
	default:
		return
	}
	m.logged[note] = true
}

// retryable reports whether a retry can cure err: no answer, or an answer
// cut short (a stalled body, a timeout), HTTP 5xx, 408 and 429, and a query
// the server timed out. Not: a server that is not the one configured (a TLS
// certificate the runner does not trust, a redirect to another host), an
// answer past the bound, and any other answer.
func retryable(err error, status int) bool {
	var perr *v1.Error
	switch {
	case misconfigured(err) != "", errors.Is(err, errTooLarge):
		return false
	case errors.Is(err, context.DeadlineExceeded), errors.Is(err, io.ErrUnexpectedEOF), errors.Is(err, io.EOF):
		return true
	case errors.As(err, &perr) && (perr.Type == v1.ErrTimeout || perr.Type == v1.ErrCanceled || timedOut(perr.Msg)):
		return true
	case status == 0:
		return true // no answer: refused, reset, timed out
	case status >= 500, status == http.StatusTooManyRequests, status == http.StatusRequestTimeout:
		return true
	}
	return false
}

// timedOut reports whether an error message says that the query timed out
// (Prometheus answers 503 "timeout"; some servers 422 "query timed out").
func timedOut(msg string) bool {
	msg = strings.ToLower(msg)
	return strings.Contains(msg, "timed out") || strings.Contains(msg, "timeout") || strings.Contains(msg, "deadline exceeded")
}

// misconfigured says how err shows that prometheus-url does not lead to the
// server it should: a certificate the runner cannot verify, a server that
// does not speak TLS, a redirect to another host. "" otherwise. No retry
// cures these, and no deploy should go ahead on them.
func misconfigured(err error) string {
	var (
		unknown  x509.UnknownAuthorityError
		host     x509.HostnameError
		invalid  x509.CertificateInvalidError
		verify   *tls.CertificateVerificationError
		record   tls.RecordHeaderError
		redirect *redirectError
	)
	switch {
	case errors.As(err, &redirect):
		return redirect.Error()
	case errors.As(err, &unknown), errors.As(err, &host), errors.As(err, &invalid), errors.As(err, &verify):
		return "the server's TLS certificate cannot be verified (" + certReason(err) + "); give prometheus-url a certificate the runner trusts"
	case errors.As(err, &record):
		return "the server does not speak TLS; check prometheus-url's scheme (http:// or https://)"
	case strings.Contains(err.Error(), "server gave HTTP response to HTTPS client"):
		return "the server answered HTTP to an https:// URL; check prometheus-url's scheme"
	}
	return ""
}

// certReason is the x509 error's own words.
func certReason(err error) string {
	var uerr *url.Error
	if errors.As(err, &uerr) {
		err = uerr.Err
	}
	msg := err.Error()
	if _, after, ok := strings.Cut(msg, "tls: failed to verify certificate: "); ok {
		msg = after
	}
	return msg
}

// describe turns a failed query into a sentence that says what to check.
func (s *Source) describe(err error, status int) string {
	if why := misconfigured(err); why != "" {
		return why
	}
	if errors.Is(err, errTooLarge) {
		return fmt.Sprintf("the answer is larger than %s, the most a look reads; select fewer series", bytesText(s.maxAnswer))
	}
	var perr *v1.Error
	if !errors.As(err, &perr) {
		var uerr *url.Error
		switch {
		case errors.Is(err, context.DeadlineExceeded):
			return "no answer within the request timeout"
		case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
			return "the connection closed before an answer"
		case errors.As(err, &uerr):
			return uerr.Err.Error()
		}
		return err.Error()
	}
	switch {
	case perr.Type == v1.ErrTimeout || perr.Type == v1.ErrCanceled || timedOut(perr.Msg):
		return "Prometheus gave up on the query: " + clip(perr.Msg, 200)
	case perr.Type == v1.ErrBadData || perr.Type == v1.ErrExec:
		return "Prometheus rejected the query: " + clip(perr.Msg, 500)
	case status == http.StatusUnauthorized || status == http.StatusForbidden:
		return fmt.Sprintf("HTTP %d: Prometheus refused the credentials; check prometheus-headers", status)
	case status == http.StatusNotFound:
		return "HTTP 404: no query API here; prometheus-url is the server's base URL, without /api/v1"
	case status >= 300:
		msg := fmt.Sprintf("HTTP %d", status)
		if d := strings.TrimSpace(perr.Detail); d != "" {
			msg += ": " + clip(d, 200)
		} else if perr.Msg != "" {
			msg += ": " + clip(perr.Msg, 200)
		}
		return msg
	case perr.Type == v1.ErrBadResponse:
		return "the answer is not Prometheus's query API (" + clip(perr.Msg, 200) + "); check prometheus-url"
	}
	return string(perr.Type) + ": " + clip(perr.Msg, 500)
}

// bytesText says a size in MiB or KiB.
func bytesText(n int64) string {
	if n >= 1<<20 && n%(1<<20) == 0 {
		return fmt.Sprintf("%d MiB", n>>20)
	}
	if n >= 1<<10 {
		return fmt.Sprintf("%d KiB", n>>10)
	}
	return fmt.Sprintf("%d bytes", n)
}

// errTooLarge: an answer went past the bound on what a look reads.
var errTooLarge = errors.New("answer too large")

// capped bounds every answer's body: reading past max fails with
// errTooLarge, and the connection is dropped, so memory stays bounded
// whatever the server sends.
type capped struct {
	next http.RoundTripper
	max  int64
}

func (c capped) RoundTrip(req *http.Request) (*http.Response, error) {
	next := c.next
	if next == nil {
		next = http.DefaultTransport
	}
	resp, err := next.RoundTrip(req)
	if err != nil {
		return resp, err
	}
	if resp.ContentLength > c.max {
		resp.Body.Close()
		return nil, errTooLarge
	}
	resp.Body = &cappedBody{ReadCloser: resp.Body, left: c.max + 1} // one byte past max is too large
	return resp, nil
}

type cappedBody struct {
	io.ReadCloser
	left int64
}

func (b *cappedBody) Read(p []byte) (int, error) {
	if b.left <= 0 {
		return 0, errTooLarge
	}
	if int64(len(p)) > b.left {
		p = p[:b.left]
	}
	n, err := b.ReadCloser.Read(p)
	b.left -= int64(n)
	if b.left <= 0 {
		return n, errTooLarge
	}
	return n, err
}

type statusKey struct{}

// withHeader adds the configured headers to every request and records the
// response's status code for the retry decision.
type withHeader struct {
	api.Client
	header http.Header
}

func (w withHeader) Do(ctx context.Context, req *http.Request) (*http.Response, []byte, error) {
	for name, values := range w.header {
		req.Header[name] = values
	}
	resp, body, err := w.Client.Do(ctx, req)
	if p, ok := ctx.Value(statusKey{}).(*int); ok && resp != nil {
		*p = resp.StatusCode
	}
	return resp, body, err
}

// sameHostRedirects follows redirects only to the same scheme and host, so
// the headers (secrets) never reach another server.
func sameHostRedirects(req *http.Request, via []*http.Request) error {
	if len(via) >= 5 {
		return errors.New("too many redirects")
	}
	if req.URL.Scheme != via[0].URL.Scheme || req.URL.Host != via[0].URL.Host {
		return &redirectError{to: req.URL.Scheme + "://" + req.URL.Host}
	}
	return nil
}

// redirectError is a redirect to another server, refused: the headers
// (secrets) would go with it.
type redirectError struct{ to string }

func (e *redirectError) Error() string {
	return "redirected to " + e.to + ", another server; set prometheus-url to the server that answers"
}

// redactor returns a function that removes every header value from a
// message, and the credential after a scheme ("Bearer xyz": also "xyz").
func redactor(h http.Header) func(string) string {
	var secrets []string
	for _, values := range h {
		for _, v := range values {
			v = strings.TrimSpace(v)
			secrets = append(secrets, v)
			if _, cred, ok := strings.Cut(v, " "); ok {
				secrets = append(secrets, strings.TrimSpace(cred))
			}
		}
	}
	return redact.Values(secrets)
}
