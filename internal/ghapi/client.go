// Package ghapi records immune's work in GitHub (deployments, deployment
// statuses, commit statuses), reads back what it decides on (deployment
// history, commits, pull request labels and commits), and dispatches,
// follows and cancels the runs of a deploy workflow, through go-github, over
// a transport that retries GitHub's transient failures within a bounded wait.
//
// Every error names the operation, and reads well in a workflow log: a
// missing permission is a *PermissionError naming the permissions: entry to
// add, a rate limit that outlasts the allowed wait is a *RateLimitError, and
// GitHub staying unavailable through every retry is an *UnavailableError.
// The token never appears in an error or log text.
package ghapi

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/go-github/v60/github"
	"golang.org/x/oauth2"

	"github.com/immune-cd/immune/internal/redact"
)

// Defaults for Options.
const (
	DefaultAPIURL         = "https://api.github.com"
	DefaultMaxRetries     = 4
	DefaultMaxWait        = 60 * time.Second
	DefaultAttemptTimeout = 20 * time.Second

	// MaxDescriptionLength is GitHub's limit for status descriptions, in
	// characters; longer descriptions are truncated.
	MaxDescriptionLength = 140
)

// Options configures a Client.
type Options struct {
	// HTTPClient supplies the base transport (tests inject one), its
	// Timeout and redirect policy; oauth2 and the retrying transport wrap
	// its Transport. Nil means http.DefaultTransport. Its Timeout, if any,
	// bounds a whole call, retries and waits included.
	HTTPClient *http.Client
	// APIURL is the REST API root, as in GITHUB_API_URL: empty or
	// https://api.github.com for github.com, https://HOST/api/v3 for GitHub
	// Enterprise Server. It is used as given (a trailing slash is added).
	APIURL string
	// Token authenticates every request (as "Authorization: Bearer").
	Token string
	// Repository is "owner/name", as in GITHUB_REPOSITORY.
	Repository string

	// Sleep waits between retries. Default: a timer that honours ctx.
	Sleep func(ctx context.Context, d time.Duration) error
	// Now is the clock used to compute rate limit waits. Default time.Now.
	Now func() time.Time
	// MaxRetries is how many times a request is retried after a transient
	// failure. 0 means DefaultMaxRetries; negative disables retries.
	MaxRetries int
	// MaxWait caps the total time spent waiting for one request: backoff
	// sleeps plus rate limit waits. A rate limit that lifts later fails at
	// once. 0 means DefaultMaxWait.
	MaxWait time.Duration
	// AttemptTimeout bounds each attempt. 0 means DefaultAttemptTimeout.
	AttemptTimeout time.Duration
	// Logf, if set, receives one line per retry or rate limit wait.
	Logf func(format string, args ...any)
	// UserAgent overrides the User-Agent header.
	UserAgent string
}

// Client talks to one repository's GitHub API. It is safe for concurrent
// use.
type Client struct {
	owner, repo string
	baseURL     *url.URL
	uploadURL   *url.URL
	http        *http.Client
	userAgent   string
	redact      func(string) string // hides the token
	now         func() time.Time
	maxWait     time.Duration
	maxRetries  int
	sleep       func(context.Context, time.Duration) error
	logf        func(format string, args ...any)
}

// New returns a Client for o.Repository.
func New(o Options) (*Client, error) {
	if strings.TrimSpace(o.Token) == "" {
		return nil, errors.New("no GitHub token: pass one (usually ${{ github.token }}) to the action")
	}
	owner, repo, ok := strings.Cut(o.Repository, "/")
	if !ok || owner == "" || repo == "" || strings.Contains(repo, "/") {
		return nil, fmt.Errorf("invalid repository %q: want owner/name, as in GITHUB_REPOSITORY", o.Repository)
	}
	base, upload, err := apiURLs(o.APIURL)
	if err != nil {
		return nil, err
	}
	if o.Sleep == nil {
		o.Sleep = sleep
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	switch {
	case o.MaxRetries == 0:
		o.MaxRetries = DefaultMaxRetries
	case o.MaxRetries < 0:
		o.MaxRetries = 0
	}
	if o.MaxWait <= 0 {
		o.MaxWait = DefaultMaxWait
	}
	if o.AttemptTimeout <= 0 {
		o.AttemptTimeout = DefaultAttemptTimeout
	}
	if o.UserAgent == "" {
		o.UserAgent = "immune (+https://github.com/immune-cd/immune)"
	}

	hc := &http.Client{}
	var baseRT http.RoundTripper = http.DefaultTransport
	if o.HTTPClient != nil {
		if o.HTTPClient.Transport != nil {
			baseRT = o.HTTPClient.Transport
		}
		hc.Timeout = o.HTTPClient.Timeout
		hc.CheckRedirect = o.HTTPClient.CheckRedirect
	}
	hc.Transport = &retryTransport{
		base: &oauth2.Transport{
			Source: oauth2.StaticTokenSource(&oauth2.Token{AccessToken: o.Token, TokenType: "Bearer"}),
			Base:   baseRT,
		},
		sleep:          o.Sleep,
		now:            o.Now,
		logf:           o.Logf,
		maxRetries:     o.MaxRetries,
		maxWait:        o.MaxWait,
		attemptTimeout: o.AttemptTimeout,
	}
	return &Client{
		owner:      owner,
		repo:       repo,
		baseURL:    base,
		uploadURL:  upload,
		http:       hc,
		userAgent:  o.UserAgent,
		redact:     redact.Values([]string{o.Token}),
		now:        o.Now,
		maxWait:    o.MaxWait,
		maxRetries: o.MaxRetries,
		sleep:      o.Sleep,
		logf: func(format string, args ...any) {
			if o.Logf != nil {
				o.Logf(format, args...)
			}
		},
	}, nil
}

// apiURLs derives go-github's base and upload URLs from GITHUB_API_URL.
func apiURLs(raw string) (base, upload *url.URL, err error) {
	raw = strings.TrimSpace(raw)
	if raw == "" {
		raw = DefaultAPIURL
	}
	u, err := url.Parse(raw)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return nil, nil, fmt.Errorf("invalid GitHub API URL %q: want e.g. https://api.github.com or https://HOST/api/v3", raw)
	}
	if u.User != nil {
		return nil, nil, errors.New("invalid GitHub API URL: it must not contain credentials")
	}
	u.RawQuery, u.Fragment = "", ""
	u.Path = strings.TrimRight(u.Path, "/") + "/"
	u.RawPath = ""

	if strings.EqualFold(u.Host, "api.github.com") {
		up, _ := url.Parse("https://uploads.github.com/")
		return u, up, nil
	}
	up := &url.URL{Scheme: u.Scheme, Host: u.Host, Path: "/api/uploads/"}
	if strings.HasSuffix(u.Path, "/api/v3/") || strings.HasPrefix(strings.ToLower(u.Host), "api.") {
		// GitHub Enterprise Server (or a GHE.com api. host): let go-github
		// apply its enterprise conventions.
		c, err := github.NewClient(nil).WithEnterpriseURLs(u.String(), up.String())
		if err != nil {
			return nil, nil, fmt.Errorf("invalid GitHub API URL %q: %w", raw, err)
		}
		return c.BaseURL, c.UploadURL, nil
	}
	// Any other root (a proxy, a test server) is used exactly as given:
	// go-github's enterprise helper would append /api/v3 to it.
	return u, up, nil
}

// gh returns a go-github client for one request. go-github remembers rate
// limit resets per client and then refuses requests on its own wall clock
// without asking GitHub; a fresh (cheap) client per request keeps the
// retrying transport, on the injected clock, the only judge of rate limits.
func (c *Client) gh() *github.Client {
	g := github.NewClient(c.http)
	b, u := *c.baseURL, *c.uploadURL
	g.BaseURL, g.UploadURL = &b, &u
	g.UserAgent = c.userAgent
	return g
}

// Repository returns "owner/name".
func (c *Client) Repository() string { return c.owner + "/" + c.repo }

// wrap classifies and redacts an error, and adds the operation's context.
func (c *Client) wrap(err error, a access, format string, args ...any) error {
	if err == nil {
		return nil
	}
	err = c.classify(a, err)
	return c.hide(fmt.Errorf(format+": %w", append(args, err)...))
}

func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// TruncateDescription shortens s to GitHub's 140-character limit for
// status descriptions, ending it with "…" when cut.
func TruncateDescription(s string) string {
	if utf8.RuneCountInString(s) <= MaxDescriptionLength {
		return s
	}
	r := []rune(s)
	return strings.TrimRight(string(r[:MaxDescriptionLength-1]), " ") + "…"
}
