package ghapi

import (
	"context"
	"crypto/sha1"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/immune-cd/immune/internal/testkit/githubfake"
)

const testToken = "ghs_S3cretT0kenValue42"

// commitID is a deterministic commit id whose prefixes are unique.
func commitID(n int) string {
	h := sha1.Sum([]byte("commit " + strconv.Itoa(n)))
	return hex.EncodeToString(h[:])
}

// clock is a fake clock shared by the fake GitHub and the client: Sleep
// records the wait and advances time instead of waiting.
type clock struct {
	mu     sync.Mutex
	now    time.Time
	sleeps []time.Duration
}

func newClock() *clock { return &clock{now: time.Date(2024, 5, 1, 12, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) Sleep(ctx context.Context, d time.Duration) error {
	c.mu.Lock()
	c.sleeps = append(c.sleeps, d)
	c.now = c.now.Add(d)
	c.mu.Unlock()
	return ctx.Err()
}

func (c *clock) Sleeps() []time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]time.Duration(nil), c.sleeps...)
}

type env struct {
	fake       *githubfake.Server
	clock      *clock
	client     *Client
	logs       *logBuffer
	deployment int64 // a seeded deployment, for tests that need one
}

type logBuffer struct {
	mu    sync.Mutex
	lines []string
}

func (l *logBuffer) Logf(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, fmt.Sprintf(format, args...))
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.lines, "\n")
}

// setup starts a fake GitHub and a client for it on a shared fake clock.
// tweak may adjust the client options.
func setup(t *testing.T, fo githubfake.Options, tweak func(*Options)) *env {
	t.Helper()
	clk := newClock()
	if fo.Token == "" {
		fo.Token = testToken
	}
	if fo.Now == nil {
		fo.Now = clk.Now
	}
	f := githubfake.Start(t, fo)
	logs := &logBuffer{}
	o := Options{
		HTTPClient:     f.Client(),
		APIURL:         f.URL(),
		Token:          testToken,
		Repository:     f.Repository(),
		Sleep:          clk.Sleep,
		Now:            clk.Now,
		Logf:           logs.Logf,
		AttemptTimeout: 5 * time.Second,
	}
	if tweak != nil {
		tweak(&o)
	}
	c, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	return &env{fake: f, clock: clk, client: c, logs: logs}
}

// count returns how many calls matched method and a path (suffix after
// /repos/octo-org/shop).
func (e *env) count(method, rest string) int {
	return e.fake.CallCount(method, "/repos/octo-org/shop"+rest)
}

func ctx(t *testing.T) context.Context {
	t.Helper()
	c, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return c
}

// ctx0 is a background context for calls that cannot wait (the clock is
// fake).
func ctx0() context.Context { return context.Background() }
