// Package health probes health endpoints and runs the watch: each URL
// probed on a schedule of its own, with the grace period of a build that is
// still starting. It measures and classifies; judging the numbers is left
// to the caller.
package health

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/immune-cd/immune/internal/clock"
	"github.com/immune-cd/immune/internal/escape"
	"github.com/immune-cd/immune/internal/sha"
)

// MaxBody is how much of a response body is read and matched.
const MaxBody = 1 << 20

// MaxVersion is how much of the version an answer carries is kept, in
// characters: a version is a SHA or a release name, and a longer one (a
// broken or hostile answer) would fill the report and every reason.
const MaxVersion = 100

// Probe is the result of one request to one health URL.
type Probe struct {
	Time    time.Time     `json:"time"`
	Round   int           `json:"round"`
	URL     string        `json:"url"`
	Status  int           `json:"status,omitempty"`
	Latency time.Duration `json:"latency_ns"`
	// Version is the version the answer carried, when expect-version is set.
	Version string `json:"version,omitempty"`
	// VersionMatch reports whether Version is the build being watched.
	VersionMatch bool `json:"-"`
	// Answered is false when no HTTP answer came (timeout, refused, ...).
	Answered bool `json:"answered"`
	Failed   bool `json:"failed"`
	// Error says why the probe failed, or why it did not count.
	Error string `json:"error,omitempty"`
	// Phase is "startup" for probes before the build answered healthy
	// (not judged), else "live".
	Phase string `json:"phase"`
}

// Phases of a probe.
const (
	PhaseStartup = "startup"
	PhaseLive    = "live"
)

// VersionSource says where the version of the answering build is found.
type VersionSource struct {
	Kind string // "body", "header" or "json"; "" when off
	Arg  string // header name or dot path
}

// Prober sends one health request and classifies the answer.
type Prober struct {
	Client  *http.Client
	Clock   clock.Clock
	Timeout time.Duration
	Header  http.Header
	// Accept reports whether a status code is healthy.
	Accept func(status int) bool
	// Body, when set, must match the body.
	Body *regexp.Regexp
	// Version, when set, is read from each answer and compared with the
	// expected version passed to Probe.
	Version VersionSource
	// UserAgent identifies the prober.
	UserAgent string
}

// Probe requests url once. want is the version expected to answer (used only
// when p.Version is set).
func (p *Prober) Probe(ctx context.Context, url, want string) Probe {
	start := p.Clock.Now()
	pr := Probe{Time: start, URL: url, VersionMatch: true}
	ctx, cancel := context.WithTimeout(ctx, p.Timeout)
	defer cancel()

	body, resp, err := p.get(ctx, url)
	pr.Latency = p.Clock.Now().Sub(start)
	if resp != nil {
		pr.Answered = true
		pr.Status = resp.StatusCode
	}
	switch {
	case err != nil && resp == nil:
		pr.Failed, pr.Error = true, describeError(ctx, err, p.Timeout)
		return pr
	case err != nil:
		pr.Failed, pr.Error = true, fmt.Sprintf("status %d, then reading the body failed: %s", resp.StatusCode, describeError(ctx, err, p.Timeout))
		return pr
	}
	if p.Version.Kind != "" {
		pr.Version, pr.VersionMatch = readVersion(p.Version, resp.Header, body, want)
		pr.Version = escape.Clip(pr.Version, MaxVersion)
	}
	switch {
	case !p.Accept(resp.StatusCode):
		pr.Failed, pr.Error = true, fmt.Sprintf("status %d is not an expected status", resp.StatusCode)
	case p.Body != nil && !p.Body.Match(body):
		pr.Failed, pr.Error = true, fmt.Sprintf("body does not match %s", p.Body)
	}
	return pr
}

func (p *Prober) get(ctx context.Context, url string) ([]byte, *http.Response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return nil, nil, err
	}
	for name, values := range p.Header {
		req.Header[name] = values
	}
	if p.UserAgent != "" && req.Header.Get("User-Agent") == "" {
		req.Header.Set("User-Agent", p.UserAgent)
	}
	resp, err := p.Client.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, MaxBody))
	if err == nil {
		// Drain a little more so the connection can be reused.
		_, _ = io.CopyN(io.Discard, resp.Body, 64<<10)
	}
	return body, resp, err
}

// NoRedirects returns a copy of c that hands redirects back to the caller,
// so that expect-status can see 3xx answers.
func NoRedirects(c *http.Client) *http.Client {
	cc := *c
	cc.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return &cc
}

// describeError turns a transport error into words for the log. It never
// includes request headers.
func describeError(ctx context.Context, err error, timeout time.Duration) string {
	var netErr net.Error
	switch {
	case errors.Is(ctx.Err(), context.DeadlineExceeded), errors.As(err, &netErr) && netErr.Timeout():
		return fmt.Sprintf("no answer within %s", timeout)
	case errors.Is(err, context.Canceled):
		return "cancelled"
	}
	var opErr *net.OpError
	if errors.As(err, &opErr) {
		return opErr.Err.Error()
	}
	var urlErr interface{ Unwrap() error }
	if errors.As(err, &urlErr) && urlErr.Unwrap() != nil {
		return urlErr.Unwrap().Error()
	}
	return err.Error()
}

// readVersion finds the version an answer carries and whether it is want.
func readVersion(src VersionSource, header http.Header, body []byte, want string) (string, bool) {
	switch src.Kind {
	case "body":
		// The body has no field for the version; it either names want or not.
		if short := sha.Short(want); short != "" && bytes.Contains(body, []byte(short)) {
			return short, true
		}
		return "", false
	case "header":
		v := strings.TrimSpace(header.Get(src.Arg))
		return v, sha.Same(v, want)
	case "json":
		v := jsonPath(body, src.Arg)
		return v, sha.Same(v, want)
	}
	return "", true
}

// jsonPath reads a dot path ("build.sha", "items.0.version") from a JSON body.
func jsonPath(body []byte, path string) string {
	var v any
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	if err := dec.Decode(&v); err != nil {
		return ""
	}
	for _, key := range strings.Split(path, ".") {
		switch node := v.(type) {
		case map[string]any:
			v = node[key]
		case []any:
			i, err := strconv.Atoi(key)
			if err != nil || i < 0 || i >= len(node) {
				return ""
			}
			v = node[i]
		default:
			return ""
		}
	}
	switch leaf := v.(type) {
	case string:
		return leaf
	case json.Number:
		return leaf.String()
	case bool:
		return strconv.FormatBool(leaf)
	}
	return ""
}
