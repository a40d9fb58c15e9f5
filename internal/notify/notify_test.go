package notify

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/immune-cd/immune/internal/clock"
)

const secret = "s3cret-webhook-key"

// receiver is a webhook receiver that verifies signatures and records what
// it got, answering with the statuses given (the last one repeats).
type receiver struct {
	mu       sync.Mutex
	got      []Event
	attempts []string // "<event> <delivery>"
	bad      int      // requests with a wrong signature
	statuses []int
	hang     chan struct{}
	srv      *httptest.Server
}

func newReceiver(t *testing.T, statuses ...int) *receiver {
	r := &receiver{statuses: statuses}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		r.attempts = append(r.attempts, req.Header.Get("X-Immune-Event")+" "+req.Header.Get("X-Immune-Delivery"))
		status := http.StatusOK
		if len(r.statuses) > 0 {
			status = r.statuses[0]
			if len(r.statuses) > 1 {
				r.statuses = r.statuses[1:]
			}
		}
		if !Verify(secret, body, req.Header.Get(SignatureHeader)) || req.Header.Get("Content-Type") != "application/json" {
			r.bad++
		}
		hang := r.hang
		r.mu.Unlock()
		if hang != nil {
			select {
			case <-hang:
			case <-req.Context().Done():
				return
			}
		}
		if status == http.StatusOK {
			var e Event
			if err := json.Unmarshal(body, &e); err == nil {
				r.mu.Lock()
				r.got = append(r.got, e)
				r.mu.Unlock()
			}
		}
		w.WriteHeader(status)
	}))
	t.Cleanup(func() {
		if r.hang != nil {
			select {
			case <-r.hang:
			default:
				close(r.hang)
			}
		}
		r.srv.Close()
	})
	return r
}

func (r *receiver) events() (got []Kind, attempts []string, bad int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, e := range r.got {
		got = append(got, e.Event)
	}
	return got, append([]string(nil), r.attempts...), r.bad
}

func start(r *receiver, timeout time.Duration) *Notifier {
	return Start(Options{URL: r.srv.URL + "/hooks/T000/B000/XXXX", Secret: secret, Client: r.srv.Client(),
		Clock: clock.NewStep(time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)), Timeout: timeout, UserAgent: "immune/test"})
}

func TestDeliversInOrderSigned(t *testing.T) {
	r := newReceiver(t)
	n := start(r, 5*time.Second)
	for _, k := range []Kind{Regressed, RolledBack, Recovered} {
		n.Send(Event{Event: k, Text: string(k), Environment: "production", SHA: strings.Repeat("a", 40)})
	}
	delivered, failures := n.Close(10 * time.Second)
	got, _, bad := r.events()
	if strings.Join(kinds(got), ",") != "regressed,rolled-back,recovered" || len(delivered) != 3 || len(failures) != 0 || bad != 0 {
		t.Errorf("got %v, delivered %v, failures %v, %d bad signatures", got, delivered, failures, bad)
	}
	if r.got[0].Time.IsZero() || r.got[0].Text != "regressed" {
		t.Errorf("event: %+v", r.got[0])
	}
}

// An event's reason and text from outside are bounded: a version of
// 70,000 characters does not make a 70 kB message.
func TestOutsideTextIsBounded(t *testing.T) {
	r := newReceiver(t)
	n := start(r, 5*time.Second)
	long := strings.Repeat("v", 70_000)
	n.Send(Event{Event: Regressed, Text: "regressed: " + long, Reason: long, Environment: "production"})
	n.Close(10 * time.Second)
	if len(r.got) != 1 || utf8.RuneCountInString(r.got[0].Reason) != MaxReason || utf8.RuneCountInString(r.got[0].Text) != MaxText ||
		!strings.HasSuffix(r.got[0].Reason, "…") {
		t.Fatalf("got %d events, reason of %d characters, text of %d", len(r.got), utf8.RuneCountInString(r.got[0].Reason), utf8.RuneCountInString(r.got[0].Text))
	}
}

func kinds(ks []Kind) []string {
	var out []string
	for _, k := range ks {
		out = append(out, string(k))
	}
	return out
}

func TestSignatureIsGitHubs(t *testing.T) {
	// The example of GitHub's "Validating webhook deliveries": secret "It's
	// a Secret to Everybody", payload "Hello, World!".
	const want = "sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
	if got := Sign("It's a Secret to Everybody", []byte("Hello, World!")); got != want {
		t.Errorf("Sign = %s, want %s", got, want)
	}
	if !Verify("It's a Secret to Everybody", []byte("Hello, World!"), want) || Verify("other", []byte("Hello, World!"), want) {
		t.Error("Verify")
	}
}

// A receiver that answers 500 gets three attempts of the same delivery,
// then the later events are not tried.
func TestServerErrorsAreRetriedThenGivenUp(t *testing.T) {
	r := newReceiver(t, 500)
	n := start(r, 5*time.Second)
	n.Send(Event{Event: Regressed})
	n.Send(Event{Event: RolledBack})
	delivered, failures := n.Close(10 * time.Second)
	_, attempts, _ := r.events()
	if len(attempts) != 3 || attempts[0] != attempts[2] || len(delivered) != 0 {
		t.Fatalf("attempts %v, delivered %v", attempts, delivered)
	}
	if len(failures) != 2 || !strings.Contains(failures[0], "500 Internal Server Error (3 attempts within 5s)") || !strings.Contains(failures[1], "not sent, the webhook failed before") {
		t.Errorf("failures: %q", failures)
	}
	for _, f := range failures {
		if strings.Contains(f, "/hooks/") || strings.Contains(f, "127.0.0.1") {
			t.Errorf("the webhook URL leaks: %s", f)
		}
	}
}

func TestClientErrorsAreNotRetried(t *testing.T) {
	r := newReceiver(t, 404)
	n := start(r, 5*time.Second)
	n.Send(Event{Event: Regressed})
	_, failures := n.Close(5 * time.Second)
	if _, attempts, _ := r.events(); len(attempts) != 1 || len(failures) != 1 || !strings.Contains(failures[0], "404") {
		t.Errorf("attempts %v, failures %v", attempts, failures)
	}
}

func TestRetryThenSuccess(t *testing.T) {
	r := newReceiver(t, 503, 200)
	n := start(r, 5*time.Second)
	n.Send(Event{Event: Recovered})
	delivered, failures := n.Close(5 * time.Second)
	if len(delivered) != 1 || len(failures) != 0 {
		t.Errorf("delivered %v, failures %v", delivered, failures)
	}
}

// A receiver that hangs costs one timeout: Send never blocks, and Close
// returns once the event's time is up.
func TestHangingReceiverCostsOneTimeout(t *testing.T) {
	r := newReceiver(t)
	r.hang = make(chan struct{})
	n := start(r, 300*time.Millisecond)
	began := time.Now()
	n.Send(Event{Event: Regressed})
	n.Send(Event{Event: RolledBack})
	if d := time.Since(began); d > 100*time.Millisecond {
		t.Errorf("Send blocked for %s", d)
	}
	_, failures := n.Close(5 * time.Second)
	if len(failures) != 2 || !strings.Contains(failures[0], "timed out (1 attempt within 300ms)") {
		t.Errorf("failures: %q", failures)
	}
	if _, attempts, _ := r.events(); len(attempts) == 0 || strings.HasPrefix(attempts[len(attempts)-1], "rolled-back") {
		t.Errorf("attempts: %v", attempts)
	}
}

// Close gives up on what is still in flight when its wait is over.
func TestCloseIsBounded(t *testing.T) {
	r := newReceiver(t)
	r.hang = make(chan struct{})
	n := start(r, time.Minute)
	n.Send(Event{Event: Regressed})
	delivered, failures := n.Close(200 * time.Millisecond)
	if len(delivered) != 0 || len(failures) != 1 || !strings.Contains(failures[0], "regressed") {
		t.Errorf("delivered %v, failures %q", delivered, failures)
	}
	n.Send(Event{Event: Recovered}) // after Close: noted, not sent
}

func TestRedirectsAreNotFollowed(t *testing.T) {
	target := newReceiver(t)
	redirect := httptest.NewServer(http.RedirectHandler(target.srv.URL, http.StatusFound))
	t.Cleanup(redirect.Close)
	n := Start(Options{URL: redirect.URL, Timeout: 2 * time.Second})
	n.Send(Event{Event: Regressed})
	_, failures := n.Close(3 * time.Second)
	if _, attempts, _ := target.events(); len(attempts) != 0 || len(failures) != 1 || !strings.Contains(failures[0], "redirect") {
		t.Errorf("attempts at the target %v, failures %v", attempts, failures)
	}
}

func TestUnreachableReceiverDoesNotLeakTheURL(t *testing.T) {
	srv := httptest.NewServer(http.NotFoundHandler())
	url := srv.URL + "/hooks/secret-token"
	srv.Close()
	n := Start(Options{URL: url, Timeout: 2 * time.Second, Clock: clock.NewStep(time.Now())})
	n.Send(Event{Event: Regressed})
	_, failures := n.Close(5 * time.Second)
	if len(failures) != 1 || strings.Contains(failures[0], "secret-token") || strings.Contains(failures[0], "127.0.0.1") {
		t.Errorf("failures: %q", failures)
	}
}
