package metrics

// The HTTP side: one query with its retries, what a failure means, and the
// headers (secrets) that go with every request.

import (
	"context"
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
		for _, w := range warnings {
			res.notes = append(res.notes, "Prometheus warning: "+s.redact(w))
		}
		for _, i := range infos {
			res.notes = append(res.notes, "Prometheus info: "+s.redact(i))
		}
		for _, n := range res.notes {
			s.logOnce(m, n)
		}
		if err == nil && value == nil {
			err = errors.New("the answer holds no result")
		}
		if err == nil {
			return res
		}
		retry := retryable(err, *status)
		res.err = errors.New(s.redact(describe(err, *status)))
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

// logOnce logs a note the first time the metric produces it.
func (s *Source) logOnce(m *metric, note string) {
	// Concurrent queries of one metric run one after the other, so the map
	// is only ever touched by one goroutine at a time.
	if !m.logged[note] {
		m.logged[note] = true
		s.log(fmt.Sprintf("metric %q: %s", m.name, note))
	}
}

// retryable reports whether a retry can cure err.
func retryable(err error, status int) bool {
	switch {
	case status == 0:
		return true // no answer: refused, reset, timed out
	case status >= 500, status == http.StatusTooManyRequests, status == http.StatusRequestTimeout:
		return true
	}
	return false
}

// describe turns a failed query into a sentence that says what to check.
func describe(err error, status int) string {
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
	case perr.Type == v1.ErrBadData || perr.Type == v1.ErrExec:
		return "Prometheus rejected the query: " + perr.Msg
	case status == http.StatusUnauthorized || status == http.StatusForbidden:
		return fmt.Sprintf("HTTP %d: Prometheus refused the credentials; check prometheus-headers", status)
	case status == http.StatusNotFound:
		return "HTTP 404: no query API here; prometheus-url is the server's base URL, without /api/v1"
	case status >= 300:
		msg := fmt.Sprintf("HTTP %d", status)
		if d := strings.TrimSpace(perr.Detail); d != "" {
			if len(d) > 200 {
				d = d[:200] + "…"
			}
			msg += ": " + d
		} else if perr.Msg != "" {
			msg += ": " + perr.Msg
		}
		return msg
	case perr.Type == v1.ErrBadResponse:
		return "the answer is not Prometheus's query API (" + perr.Msg + "); check prometheus-url"
	}
	return string(perr.Type) + ": " + perr.Msg
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
		return fmt.Errorf("redirected to %s://%s; set prometheus-url to the server that answers", req.URL.Scheme, req.URL.Host)
	}
	return nil
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
