// Package notify tells a chat webhook what happened to a deploy: one small
// JSON document per event (regressed, rolled-back, rollback-failed,
// recovered, would-roll-back) with a Slack-compatible "text" and structured fields, signed
// like GitHub signs its webhooks (X-Immune-Signature-256: sha256=<HMAC-SHA256
// of the body, keyed with the secret>).
//
// Events are delivered in order by one goroutine in the background, so that
// nothing a run does waits for the webhook: a rollback starts while the
// "regressed" event is still on its way. Each event gets at most Timeout,
// retries included (at most three attempts, on connection errors, timeouts,
// 408, 429 and 5xx). Once an event could not be delivered, the later ones
// are not tried: a broken receiver costs one Timeout, not one per event. At
// the end of the run, Close waits a bounded time for what is still queued.
// A failure never changes a run's verdict; it is reported, without the
// webhook's URL, which is a secret.
package notify

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/immune-cd/immune/internal/clock"
	"github.com/immune-cd/immune/internal/escape"
)

// Kind is what happened.
type Kind string

// The events.
const (
	Regressed      Kind = "regressed"
	RolledBack     Kind = "rolled-back"
	RollbackFailed Kind = "rollback-failed"
	Recovered      Kind = "recovered"
	// WouldRollBack: a run in shadow mode found a regression it would
	// have rolled back (or a canary it would have removed), and did not.
	WouldRollBack Kind = "would-roll-back"
)

// SignatureHeader carries the body's signature when a secret is set.
const SignatureHeader = "X-Immune-Signature-256"

// Event is the JSON document a webhook receives.
type Event struct {
	// Text is the message for people, as Slack's incoming webhooks (and
	// the chats that copy them) show it.
	Text  string `json:"text"`
	Event Kind   `json:"event"`
	// Repository is owner/name; Environment the environment.
	Repository  string `json:"repository,omitempty"`
	Environment string `json:"environment"`
	// SHA is the commit the event is about: the one that regressed (or
	// that a rollback by hand replaced), or, for recovered, the healthy
	// one. RunningSHA is what the environment runs now (or was being
	// restored to, for rollback-failed).
	SHA        string `json:"sha"`
	RunningSHA string `json:"running_sha,omitempty"`
	// Author is the GitHub login of the regressed commit's author;
	// PullRequests the numbers of the merged pull requests told.
	Author       string `json:"author,omitempty"`
	PullRequests []int  `json:"pull_requests,omitempty"`
	Reason       string `json:"reason,omitempty"`
	// Manual is true for a rollback made by hand.
	Manual   bool      `json:"manual,omitempty"`
	RunURL   string    `json:"run_url,omitempty"`
	IssueURL string    `json:"issue_url,omitempty"`
	Time     time.Time `json:"time"`
}

// Options configures a Notifier.
type Options struct {
	URL    string
	Secret string // signs the body when set
	// Client sends the requests; its redirects are not followed (a
	// webhook that redirects is misconfigured, and a POST would turn into
	// a GET). Nil: a client on http.DefaultTransport.
	Client *http.Client
	// Clock times the waits between attempts and stamps events.
	Clock clock.Clock
	// Timeout bounds the delivery of one event, retries included.
	Timeout time.Duration
	// Attempts per event; default 3.
	Attempts  int
	UserAgent string
	// Logf receives a line per failed attempt.
	Logf func(format string, args ...any)
}

// queueSize bounds the events waiting; a run sends at most three.
const queueSize = 16

// Bounds on an event's text from outside, in characters: the reason (a
// health answer's version can be megabytes) and the text for people.
const (
	MaxReason = 1000
	MaxText   = 4000
)

// Notifier delivers events in the background, in order.
type Notifier struct {
	o      Options
	queue  chan Event
	done   chan struct{}
	ctx    context.Context
	cancel context.CancelFunc

	mu        sync.Mutex
	delivered []Kind
	failures  []string
	broken    bool
	closed    bool
}

// Start starts a Notifier's delivery goroutine.
func Start(o Options) *Notifier {
	if o.Attempts <= 0 {
		o.Attempts = 3
	}
	if o.Timeout <= 0 {
		o.Timeout = 10 * time.Second
	}
	if o.Clock == nil {
		o.Clock = clock.Real{}
	}
	if o.Logf == nil {
		o.Logf = func(string, ...any) {}
	}
	base := o.Client
	if base == nil {
		base = &http.Client{}
	}
	client := *base
	client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	o.Client = &client
	n := &Notifier{o: o, queue: make(chan Event, queueSize), done: make(chan struct{})}
	n.ctx, n.cancel = context.WithCancel(context.Background())
	go n.loop()
	return n
}

// Send queues an event and returns at once. Its reason and text are cut to
// MaxReason and MaxText characters.
func (n *Notifier) Send(e Event) {
	e.Reason, e.Text = escape.Clip(e.Reason, MaxReason), escape.Clip(e.Text, MaxText)
	if e.Time.IsZero() {
		e.Time = n.o.Clock.Now().UTC()
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed {
		n.failures = append(n.failures, fmt.Sprintf("%s: not sent, the run was over", e.Event))
		return
	}
	select {
	case n.queue <- e:
	default:
		n.failures = append(n.failures, fmt.Sprintf("%s: not sent, %d events were already waiting", e.Event, queueSize))
	}
}

// Close stops taking events and waits at most wait for the queued ones;
// what is still in flight then is abandoned. It reports the events
// delivered and what failed.
func (n *Notifier) Close(wait time.Duration) (delivered []Kind, failures []string) {
	n.mu.Lock()
	if !n.closed {
		n.closed = true
		close(n.queue)
	}
	n.mu.Unlock()
	// Real time: deliveries are real requests.
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-n.done:
	case <-t.C:
		n.cancel()
		<-n.done
	}
	n.cancel()
	n.mu.Lock()
	defer n.mu.Unlock()
	return append([]Kind(nil), n.delivered...), append([]string(nil), n.failures...)
}

func (n *Notifier) loop() {
	defer close(n.done)
	for e := range n.queue {
		n.mu.Lock()
		broken := n.broken
		n.mu.Unlock()
		if n.ctx.Err() != nil {
			n.fail(fmt.Sprintf("%s: not delivered before the end of the run", e.Event))
			continue
		}
		if broken {
			n.fail(fmt.Sprintf("%s: not sent, the webhook failed before", e.Event))
			continue
		}
		if err := n.deliver(e); err != nil {
			n.mu.Lock()
			n.broken = true
			n.mu.Unlock()
			n.fail(fmt.Sprintf("%s: %v", e.Event, err))
			continue
		}
		n.mu.Lock()
		n.delivered = append(n.delivered, e.Event)
		n.mu.Unlock()
	}
}

func (n *Notifier) fail(msg string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.failures = append(n.failures, msg)
}

// Sign is the signature header's value for body.
func Sign(secret string, body []byte) string {
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write(body)
	return "sha256=" + hex.EncodeToString(mac.Sum(nil))
}

// Verify reports whether signature is body's under secret, in constant
// time, as a receiver checks it.
func Verify(secret string, body []byte, signature string) bool {
	return hmac.Equal([]byte(Sign(secret, body)), []byte(signature))
}

// deliver posts one event within the Timeout, retrying what may pass on
// another try.
func (n *Notifier) deliver(e Event) error {
	body, err := json.Marshal(e)
	if err != nil {
		return fmt.Errorf("cannot encode the event: %w", err)
	}
	ctx, cancel := context.WithTimeout(n.ctx, n.o.Timeout)
	defer cancel()
	delivery := newDeliveryID()
	backoff := 500 * time.Millisecond
	var last error
	made := 0
	for attempt := 1; attempt <= n.o.Attempts; attempt++ {
		if attempt > 1 {
			select {
			case <-n.o.Clock.After(backoff):
			case <-ctx.Done():
				return gaveUp(last, made, n.o.Timeout)
			}
			backoff *= 2
		}
		made++
		retry, wait, err := n.post(ctx, e.Event, delivery, body)
		if err == nil {
			return nil
		}
		last = err
		n.o.Logf("webhook: %s, attempt %d of %d: %v", e.Event, attempt, n.o.Attempts, err)
		if !retry {
			return err
		}
		if wait > backoff {
			backoff = wait
		}
		if ctx.Err() != nil {
			break
		}
	}
	return gaveUp(last, made, n.o.Timeout)
}

// gaveUp says why an event was not delivered.
func gaveUp(last error, attempts int, timeout time.Duration) error {
	s := "s"
	if attempts == 1 {
		s = ""
	}
	return fmt.Errorf("%v (%d attempt%s within %s)", last, attempts, s, timeout)
}

// post sends one attempt; retry says whether another may succeed, and wait
// how long the receiver asked to wait (Retry-After).
func (n *Notifier) post(ctx context.Context, kind Kind, delivery string, body []byte) (retry bool, wait time.Duration, err error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, n.o.URL, bytes.NewReader(body))
	if err != nil {
		return false, 0, errors.New("the webhook URL is not a valid URL")
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Immune-Event", string(kind))
	req.Header.Set("X-Immune-Delivery", delivery)
	if n.o.UserAgent != "" {
		req.Header.Set("User-Agent", n.o.UserAgent)
	}
	if n.o.Secret != "" {
		req.Header.Set(SignatureHeader, Sign(n.o.Secret, body))
	}
	resp, err := n.o.Client.Do(req)
	if err != nil {
		return true, 0, errors.New("the webhook did not answer: " + WithoutURL(err))
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	switch s := resp.StatusCode; {
	case s >= 200 && s < 300:
		return false, 0, nil
	case s >= 300 && s < 400:
		return false, 0, fmt.Errorf("the webhook answered %d %s, a redirect, which is not followed; use the final URL", s, http.StatusText(s))
	case s == http.StatusRequestTimeout || s == http.StatusTooManyRequests || s >= 500:
		if secs, err := strconv.Atoi(resp.Header.Get("Retry-After")); err == nil && secs > 0 {
			wait = time.Duration(secs) * time.Second
		}
		return true, wait, fmt.Errorf("the webhook answered %d %s", s, http.StatusText(s))
	default:
		return false, 0, fmt.Errorf("the webhook answered %d %s", s, http.StatusText(s))
	}
}

// WithoutURL is a request error's text without the request URL, which
// holds a webhook's (or a deploy hook's) secret token: what happened, and
// no host, port or path.
func WithoutURL(err error) string {
	var ue *url.Error
	if errors.As(err, &ue) {
		err = ue.Err
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() || errors.Is(err, context.DeadlineExceeded) {
		return "timed out"
	}
	if errors.Is(err, context.Canceled) {
		return "cancelled"
	}
	// Network errors name the host and port; say what happened only.
	var dns *net.DNSError
	if errors.As(err, &dns) {
		return "cannot resolve the webhook's host"
	}
	var op *net.OpError
	if errors.As(err, &op) && op.Err != nil {
		inner := op.Err
		for errors.Unwrap(inner) != nil {
			inner = errors.Unwrap(inner)
		}
		return op.Op + ": " + inner.Error()
	}
	msg := err.Error()
	if i := strings.Index(msg, "://"); i >= 0 {
		return "connection failed"
	}
	return msg
}

// newDeliveryID is a random id, the same for every attempt of an event, so
// that a receiver can drop a retry it already took.
func newDeliveryID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
