package ghapi

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/google/go-github/v60/github"
)

// ErrNoSuchCommit is wrapped by ResolveCommit's error when GitHub does not
// know the commit.
var ErrNoSuchCommit = errors.New("no such commit")

// PermissionError reports that the token may not do what was asked: GitHub
// answered 403, or 404 where that is how GitHub hides a repository from a
// token without access.
type PermissionError struct {
	Op         string // what was attempted, e.g. "create deployment"
	Permission string // what the workflow must grant, e.g. "deployments: write"
	Status     int    // 403 or 404
	Message    string // GitHub's message
	Repository string // owner/name
}

func (e *PermissionError) Error() string {
	if e.Status == http.StatusNotFound {
		return fmt.Sprintf("GitHub answered 404 Not Found: %s does not exist or is not visible to the token; "+
			"if the repository is right, add %q to the permissions: block of the workflow or job",
			e.Repository, e.Permission)
	}
	msg := e.Message
	if msg == "" {
		msg = http.StatusText(e.Status)
	}
	return fmt.Sprintf("GitHub answered %d %s: the token lacks the %q permission on %s; "+
		"add %q to the permissions: block of the workflow or job", e.Status, msg, e.Permission, e.Repository, e.Permission)
}

// RateLimitError reports that GitHub's rate limit keeps a request from
// being served within the wait immune allows (Options.MaxWait), or still
// after every retry.
type RateLimitError struct {
	Secondary bool          // GitHub's secondary (abuse) limit rather than the hourly quota
	Status    int           // 403 or 429; 0 when a successful answer used up the quota
	Message   string        // GitHub's message, if it gave one
	Reset     time.Time     // when GitHub accepts requests again
	Wait      time.Duration // how long that was from the moment immune gave up
	MaxWait   time.Duration // the wait immune allows for one request
	Attempts  int           // requests sent for this call (0: refused before sending)
	exhausted bool          // gave up after the last retry, not because of the wait
}

func (e *RateLimitError) Error() string {
	kind := "rate limit"
	if e.Secondary {
		kind = "secondary rate limit"
	}
	var b strings.Builder
	if e.exhausted {
		attempts := "attempts"
		if e.Attempts == 1 {
			attempts = "attempt"
		}
		fmt.Fprintf(&b, "GitHub API %s still exceeded after %d %s", kind, e.Attempts, attempts)
	} else {
		fmt.Fprintf(&b, "GitHub API %s exceeded until %s (%s from now), longer than the %s immune waits for GitHub",
			kind, e.Reset.UTC().Format(time.RFC3339), e.Wait.Round(time.Second), e.MaxWait)
	}
	if e.Message != "" {
		fmt.Fprintf(&b, " (GitHub: %s)", e.Message)
	}
	b.WriteString("; re-run the job once the limit has reset")
	return b.String()
}

// UnavailableError reports that GitHub did not answer successfully after
// every retry: server errors, timeouts or connection failures.
type UnavailableError struct {
	Attempts int
	Status   int    // the last HTTP status; 0 when there was no answer
	Message  string // GitHub's message for the last answer
	Err      error  // the last connection error, if there was no answer
}

func (e *UnavailableError) Error() string {
	last := ""
	switch {
	case e.Status != 0 && e.Message != "" && e.Message != http.StatusText(e.Status):
		last = fmt.Sprintf("%d %s: %s", e.Status, http.StatusText(e.Status), e.Message)
	case e.Status != 0:
		last = fmt.Sprintf("%d %s", e.Status, http.StatusText(e.Status))
	case e.Err != nil:
		last = e.Err.Error()
	default:
		last = "no answer"
	}
	return fmt.Sprintf("GitHub API unavailable after %d attempts: %s", e.Attempts, last)
}

func (e *UnavailableError) Unwrap() error { return e.Err }

// APIError is any other error answer from GitHub.
type APIError struct {
	Status  int
	Message string   // GitHub's message
	Details []string // GitHub's validation errors, if any
	Hint    string   // what the answer likely means, if known
	err     error
}

func (e *APIError) Error() string {
	var b strings.Builder
	fmt.Fprintf(&b, "GitHub answered %d %s", e.Status, http.StatusText(e.Status))
	if e.Message != "" && e.Message != http.StatusText(e.Status) {
		fmt.Fprintf(&b, ": %s", strings.Join(strings.Fields(e.Message), " "))
	}
	if len(e.Details) > 0 {
		fmt.Fprintf(&b, " (%s)", strings.Join(e.Details, "; "))
	}
	if e.Status == http.StatusUnauthorized {
		b.WriteString("; the token is missing, invalid or expired")
	}
	if e.Hint != "" {
		b.WriteString(": ")
		b.WriteString(e.Hint)
	}
	return b.String()
}

func (e *APIError) Unwrap() error { return e.err }

// redactedError hides the token should it ever appear in an error text,
// as GitHub or a proxy in front of it may echo it: whole, in another
// letter case or cut short (see redact.Values).
type redactedError struct {
	msg string
	err error
}

func (e *redactedError) Error() string { return e.msg }
func (e *redactedError) Unwrap() error { return e.err }

// hide returns err with the token hidden from its text.
func (c *Client) hide(err error) error {
	if err == nil {
		return nil
	}
	msg := err.Error()
	if hidden := c.redact(msg); hidden != msg {
		return &redactedError{msg: hidden, err: err}
	}
	return err
}

// access says which permission an operation needs and what GitHub's 404
// means for it.
type access struct {
	op         string
	permission string
	notFound   bool   // on a repository-level endpoint: the token cannot see the repository
	item       string // on an item's endpoint, e.g. "pull request #9": the item may not exist
}

// classify turns what go-github returned into one of this package's errors.
func (c *Client) classify(a access, err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	var rl *RateLimitError
	if errors.As(err, &rl) {
		return rl
	}
	var ue *UnavailableError
	if errors.As(err, &ue) {
		return ue
	}
	// go-github's own rate limit errors: only seen if an answer reached it
	// with the limit exceeded, which the transport normally prevents.
	var grl *github.RateLimitError
	if errors.As(err, &grl) {
		reset := grl.Rate.Reset.Time
		return &RateLimitError{Status: statusOf(grl.Response), Message: grl.Message, Reset: reset,
			Wait: reset.Sub(c.now()), MaxWait: c.maxWait, Attempts: 1, exhausted: true}
	}
	var gab *github.AbuseRateLimitError
	if errors.As(err, &gab) {
		e := &RateLimitError{Secondary: true, Status: statusOf(gab.Response), Message: gab.Message,
			MaxWait: c.maxWait, Attempts: 1, exhausted: true}
		if gab.RetryAfter != nil {
			e.Wait = *gab.RetryAfter
			e.Reset = c.now().Add(e.Wait)
		}
		return e
	}
	var ger *github.ErrorResponse
	if errors.As(err, &ger) {
		status := statusOf(ger.Response)
		switch {
		case status == http.StatusForbidden,
			status == http.StatusNotFound && a.notFound:
			return &PermissionError{Op: a.op, Permission: a.permission, Status: status,
				Message: ger.Message, Repository: c.Repository()}
		}
		e := apiError(ger)
		if status == http.StatusNotFound && a.item != "" {
			e.Hint = fmt.Sprintf("%s does not exist in %s, or the token cannot see it (it needs %q)",
				a.item, c.Repository(), a.permission)
		}
		return e
	}
	var uerr *url.Error
	if errors.As(err, &uerr) && uerr.Err != nil {
		return fmt.Errorf("%s %s: %w", uerr.Op, sanitizeURL(uerr.URL), uerr.Err)
	}
	return err
}

func apiError(ger *github.ErrorResponse) *APIError {
	e := &APIError{Status: statusOf(ger.Response), Message: ger.Message, err: ger}
	for _, d := range ger.Errors {
		switch {
		case d.Message != "":
			e.Details = append(e.Details, d.Message)
		case d.Field != "":
			e.Details = append(e.Details, fmt.Sprintf("%s %s", d.Field, d.Code))
		}
	}
	return e
}

func statusOf(r *http.Response) int {
	if r == nil {
		return 0
	}
	return r.StatusCode
}

// sanitizeURL drops the query and any credentials from a URL for messages.
func sanitizeURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "request"
	}
	u.User = nil
	u.RawQuery = ""
	return u.String()
}
