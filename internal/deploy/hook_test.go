package deploy

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/immune-cd/immune/internal/clock"
	"github.com/immune-cd/immune/internal/notify"
)

const (
	hookSecret = "hook-signing-key-42"
	hookToken  = "srv-d3pl0yT0k3n"
)

// receiver is a deploy hook: it verifies each request's signature, records
// the deliveries by idempotency key, and answers from a script (503, 503,
// 202, ...); past the script it answers 202.
type receiver struct {
	t       *testing.T
	mu      sync.Mutex
	answers []int
	got     []delivery
	srv     *httptest.Server
	hold    chan struct{} // when set, requests wait on it
}

type delivery struct {
	key, event string
	signed     bool
	body       HookBody
}

func newReceiver(t *testing.T, answers ...int) *receiver {
	r := &receiver{t: t, answers: answers}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		raw, _ := io.ReadAll(req.Body)
		if r.hold != nil {
			<-r.hold
		}
		d := delivery{key: req.Header.Get("Idempotency-Key"), event: req.Header.Get("X-Immune-Event"),
			signed: notify.Verify(hookSecret, raw, req.Header.Get("X-Immune-Signature-256"))}
		if req.Header.Get("X-Immune-Delivery") != d.key || req.Header.Get("Content-Type") != "application/json" || req.URL.Path != "/deploy/"+hookToken {
			t.Errorf("request headers %v, path %s", req.Header, req.URL.Path)
		}
		dec := json.NewDecoder(strings.NewReader(string(raw)))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&d.body); err != nil {
			t.Errorf("body %s: %v", raw, err)
		}
		r.mu.Lock()
		r.got = append(r.got, d)
		status := http.StatusAccepted
		if len(r.answers) > 0 {
			status, r.answers = r.answers[0], r.answers[1:]
		}
		r.mu.Unlock()
		w.WriteHeader(status)
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) url() string { return r.srv.URL + "/deploy/" + hookToken + "?key=" + hookToken }

func (r *receiver) deliveries() []delivery {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]delivery(nil), r.got...)
}

func (r *receiver) hook(out io.Writer) *Hook {
	return &Hook{URL: r.url(), Secret: hookSecret, Clock: clock.NewStep(time.Now()), Timeout: time.Minute, Output: out}
}

func TestHookDeliversASignedDeploy(t *testing.T) {
	t.Parallel()
	r := newReceiver(t)
	out := &syncBuffer{}
	req := Request{SHA: newSHA, PreviousSHA: oldSHA, Environment: "production", Reason: ReasonRollback, Stage: "canary"}
	if err := r.hook(out).Deploy(context.Background(), req); err != nil {
		t.Fatal(err)
	}
	got := r.deliveries()
	want := HookBody{SHA: newSHA, PreviousSHA: oldSHA, Environment: "production", Reason: "rollback", Stage: "canary"}
	if len(got) != 1 || !got[0].signed || got[0].body != want || got[0].event != "deploy" || !strings.HasPrefix(got[0].key, "immune-") {
		t.Errorf("delivered %+v", got)
	}
	if strings.Contains(out.String(), hookToken) || !strings.Contains(out.String(), "The deploy hook answered 202 Accepted.") {
		t.Errorf("log:\n%s", out)
	}
}

func TestHookRetriesWithTheSameKey(t *testing.T) {
	t.Parallel()
	r := newReceiver(t, 503, 500)
	out := &syncBuffer{}
	if err := r.hook(out).Deploy(context.Background(), deployReq()); err != nil {
		t.Fatal(err)
	}
	got := r.deliveries()
	if len(got) != 3 || got[0].key != got[1].key || got[1].key != got[2].key {
		t.Fatalf("deliveries %+v", got)
	}
	for _, d := range got {
		if !d.signed {
			t.Error("a retry is not signed")
		}
	}
	if !strings.Contains(out.String(), "retrying in 1s with the same idempotency key") || strings.Contains(out.String(), hookToken) {
		t.Errorf("log:\n%s", out)
	}
	// Another deploy is another key.
	if err := r.hook(out).Deploy(context.Background(), deployReq()); err != nil {
		t.Fatal(err)
	}
	if got := r.deliveries(); got[3].key == got[0].key {
		t.Error("two deploys share an idempotency key")
	}
}

func TestHookFailures(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name       string
		answers    []int
		attempts   int
		want       string
		notStarted bool
	}{
		{"refused", []int{403}, 1, "the deploy hook answered 403 Forbidden (nothing was started)", true},
		{"a redirect is not followed", []int{302}, 1, "a redirect, which is not followed", true},
		{"5xx every time", []int{502, 502, 502, 502}, 4, "the deploy hook answered 502 Bad Gateway (4 attempts within 1m0s); the hook may have taken the deploy all the same", false},
		{"refused after a 5xx", []int{500, 409}, 2, "the deploy hook answered 409 Conflict", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r := newReceiver(t, tt.answers...)
			err := r.hook(io.Discard).Deploy(context.Background(), deployReq())
			if err == nil || !strings.Contains(err.Error(), tt.want) || strings.Contains(err.Error(), hookToken) || strings.Contains(err.Error(), "127.0.0.1") {
				t.Errorf("got %v, want %q", err, tt.want)
			}
			if errors.Is(err, ErrNotStarted) != tt.notStarted {
				t.Errorf("ErrNotStarted %v, want %v", errors.Is(err, ErrNotStarted), tt.notStarted)
			}
			if n := len(r.deliveries()); n != tt.attempts {
				t.Errorf("%d attempts, want %d", n, tt.attempts)
			}
		})
	}
}

func TestHookUnreachableHidesTheURL(t *testing.T) {
	t.Parallel()
	r := newReceiver(t)
	u := r.url()
	r.srv.Close()
	h := &Hook{URL: u, Secret: hookSecret, Clock: clock.NewStep(time.Now()), Timeout: time.Minute, Attempts: 2}
	err := h.Deploy(context.Background(), deployReq())
	if err == nil || strings.Contains(err.Error(), hookToken) || strings.Contains(err.Error(), "127.0.0.1") || !strings.Contains(err.Error(), "the deploy hook did not answer") {
		t.Errorf("got %v", err)
	}
}

func TestHookCancelled(t *testing.T) {
	t.Parallel()
	r := newReceiver(t)
	r.hold = make(chan struct{})
	defer close(r.hold)
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(50*time.Millisecond, cancel)
	err := r.hook(io.Discard).Deploy(ctx, deployReq())
	if err == nil || !strings.Contains(err.Error(), "cancelled (context canceled) after 1 attempt") || !strings.Contains(err.Error(), "may have taken the deploy") {
		t.Errorf("got %v", err)
	}
}

// A hook that does not answer in time is tried again with the same key.
func TestHookAttemptTimeout(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var keys []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		// Read whole, the request's context ends when the client hangs up.
		_, _ = io.ReadAll(req.Body)
		mu.Lock()
		keys = append(keys, req.Header.Get("Idempotency-Key"))
		first := len(keys) == 1
		mu.Unlock()
		if first {
			<-req.Context().Done() // hangs until the client gives up
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()
	h := &Hook{URL: srv.URL, Clock: clock.NewStep(time.Now()), Timeout: time.Minute, AttemptTimeout: 100 * time.Millisecond}
	err := h.Deploy(context.Background(), deployReq())
	mu.Lock()
	defer mu.Unlock()
	if err != nil || len(keys) != 2 || keys[0] != keys[1] {
		t.Errorf("got %v, keys %v", err, keys)
	}
}
