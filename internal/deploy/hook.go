package deploy

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"time"

	"github.com/immune-cd/immune/internal/clock"
	"github.com/immune-cd/immune/internal/notify"
	"github.com/immune-cd/immune/internal/sha"
)

// Headers of a deploy hook's request. IdempotencyKeyHeader is the same for
// every attempt of one deploy, so that a receiver that got a request whose
// answer was lost can tell the retry from a new deploy; the delivery
// header carries it too, as the webhook's does.
const (
	IdempotencyKeyHeader = "Idempotency-Key"
	HookEventHeader      = "X-Immune-Event"
	HookDeliveryHeader   = "X-Immune-Delivery"
)

// HookEvent is the X-Immune-Event of a deploy hook's request.
const HookEvent = "deploy"

// Defaults of Hook.
const (
	// DefaultHookAttempts bounds the attempts of one deploy through a hook.
	DefaultHookAttempts = 4
	// DefaultHookAttemptTimeout bounds one attempt: a hook takes a deploy
	// and answers; it does not wait for the deploy.
	DefaultHookAttemptTimeout = 30 * time.Second
)

// HookBody is the JSON document a deploy hook receives.
type HookBody struct {
	SHA         string `json:"sha"`
	PreviousSHA string `json:"previous_sha"`
	Environment string `json:"environment"`
	Reason      string `json:"reason"`
	Stage       string `json:"stage"`
}

// Hook deploys by POSTing the request to a deploy hook (Render, Vercel,
// Netlify, a service of the user's), signed like immune's webhook
// (X-Immune-Signature-256: sha256=<HMAC-SHA256 of the body>) when a secret
// is set. A 2xx answer is success: the hook took the deploy, which such
// platforms then carry out on their own (expect-version tells when the
// new build answers). A 5xx, 408 or 429 answer, or none, is retried with
// the same idempotency key, at most Attempts times within Timeout; any
// other answer fails at once. The URL is a secret: no error or line shows
// it.
type Hook struct {
	URL     string
	Secret  string
	Client  *http.Client // its redirects are not followed; nil: a client on http.DefaultTransport
	Clock   clock.Clock
	Timeout time.Duration // all attempts together
	// Attempts; default DefaultHookAttempts. AttemptTimeout bounds each;
	// default DefaultHookAttemptTimeout.
	Attempts       int
	AttemptTimeout time.Duration
	UserAgent      string
	Output         io.Writer
	// NewID makes idempotency keys; default random.
	NewID func() string
}

// Deploy delivers the request to the hook.
func (h *Hook) Deploy(ctx context.Context, req Request) error {
	attempts := h.Attempts
	if attempts <= 0 {
		attempts = DefaultHookAttempts
	}
	clk := h.Clock
	if clk == nil {
		clk = clock.Real{}
	}
	out := h.Output
	if out == nil {
		out = io.Discard
	}
	newID := h.NewID
	if newID == nil {
		newID = NewDispatchID
	}
	client := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	if h.Client != nil {
		client.Transport, client.Timeout = h.Client.Transport, h.Client.Timeout
	}
	stage := req.Stage
	if stage == "" {
		stage = "full"
	}
	body, err := json.Marshal(HookBody{SHA: req.SHA, PreviousSHA: req.PreviousSHA, Environment: req.Environment, Reason: req.Reason, Stage: stage})
	if err != nil {
		return fmt.Errorf("encode the deploy hook's body: %w", err)
	}
	key := newID()
	if h.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, h.Timeout)
		defer cancel()
	}
	fmt.Fprintf(out, "Calling the deploy hook: %s %s (stage %s), idempotency key %s.\n", req.Reason, sha.Short(req.SHA), stage, key)

	backoff := time.Second
	var last error
	delivered := false // an attempt may have reached the hook
	for attempt := 1; attempt <= attempts; attempt++ {
		if attempt > 1 {
			fmt.Fprintf(out, "Deploy hook, attempt %d of %d failed: %v; retrying in %s with the same idempotency key.\n", attempt-1, attempts, last, backoff)
			select {
			case <-ctx.Done():
				return h.gaveUp(ctx, last, attempt-1, delivered)
			case <-clk.After(backoff):
			}
			backoff *= 2
		}
		status, wait, err := h.post(ctx, client, body, key)
		if err == nil {
			fmt.Fprintf(out, "The deploy hook answered %d %s.\n", status, http.StatusText(status))
			return nil
		}
		last = err
		var retry *retryable
		if !errors.As(err, &retry) {
			if status != 0 && !delivered {
				return fmt.Errorf("%w (%w)", err, ErrNotStarted)
			}
			return err
		}
		delivered = delivered || retry.delivered
		backoff = max(backoff, wait)
		if ctx.Err() != nil {
			return h.gaveUp(ctx, last, attempt, delivered)
		}
	}
	return h.gaveUp(ctx, last, attempts, delivered)
}

// retryable is a failure another attempt may cure; delivered says whether
// the hook may have acted on the request.
type retryable struct {
	err       error
	delivered bool
}

func (r *retryable) Error() string { return r.err.Error() }

// post makes one attempt. It returns the answer's status (0 when there was
// none), and how long the hook asked to wait (Retry-After).
func (h *Hook) post(ctx context.Context, client *http.Client, body []byte, key string) (int, time.Duration, error) {
	limit := h.AttemptTimeout
	if limit <= 0 {
		limit = DefaultHookAttemptTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, h.URL, bytes.NewReader(body))
	if err != nil {
		return 0, 0, errors.New("the deploy hook's URL is not a valid URL")
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set(HookEventHeader, HookEvent)
	req.Header.Set(IdempotencyKeyHeader, key)
	req.Header.Set(HookDeliveryHeader, key)
	if h.UserAgent != "" {
		req.Header.Set("User-Agent", h.UserAgent)
	}
	if h.Secret != "" {
		req.Header.Set(notify.SignatureHeader, notify.Sign(h.Secret, body))
	}
	resp, err := client.Do(req)
	if err != nil {
		return 0, 0, &retryable{err: errors.New("the deploy hook did not answer: " + notify.WithoutURL(err)), delivered: true}
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	s := resp.StatusCode
	switch {
	case s >= 200 && s < 300:
		return s, 0, nil
	case s >= 300 && s < 400:
		return s, 0, fmt.Errorf("the deploy hook answered %d %s, a redirect, which is not followed; use the final URL", s, http.StatusText(s))
	case s == http.StatusRequestTimeout || s == http.StatusTooManyRequests || s >= 500:
		var wait time.Duration
		if secs, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && secs > 0 {
			wait = time.Duration(secs) * time.Second
		}
		return s, wait, &retryable{err: fmt.Errorf("the deploy hook answered %d %s", s, http.StatusText(s)), delivered: s >= 500}
	}
	return s, 0, fmt.Errorf("the deploy hook answered %d %s", s, http.StatusText(s))
}

func (h *Hook) gaveUp(ctx context.Context, last error, attempts int, delivered bool) error {
	s := "s"
	if attempts == 1 {
		s = ""
	}
	why := fmt.Sprintf("%v (%d attempt%s within %s)", last, attempts, s, h.Timeout)
	if ctx.Err() != nil && !errors.Is(ctx.Err(), context.DeadlineExceeded) {
		why = fmt.Sprintf("cancelled (%v) after %d attempt%s: %v", context.Cause(ctx), attempts, s, last)
	}
	if delivered {
		return fmt.Errorf("%s; the hook may have taken the deploy all the same", why)
	}
	return errors.New(why)
}
