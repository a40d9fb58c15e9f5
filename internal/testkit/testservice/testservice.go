// Package testservice is a real HTTP service whose behaviour per deployed
// commit is scripted, for end-to-end tests of the action. Deploy commands
// switch its version through an admin endpoint, as a real deploy would, and
// its health endpoint then answers as that build is scripted to.
package testservice

import (
	"encoding/json"
	"fmt"
	"net/http"
	"sync"
	"time"
)

// Behaviour scripts how one build answers /health.
type Behaviour struct {
	// FailRate is the share of requests answered with FailStatus, spread
	// evenly and deterministically (30% fails requests 3, 6, 10, ...).
	FailRate   float64 `json:"fail_rate,omitempty"`
	FailStatus int     `json:"fail_status,omitempty"` // default 500
	// LatencyMS delays every answer; SlowRate of them by SlowMS instead.
	LatencyMS int     `json:"latency_ms,omitempty"`
	SlowRate  float64 `json:"slow_rate,omitempty"`
	SlowMS    int     `json:"slow_ms,omitempty"`
	// OldVersionMS keeps answering as the previous build for this long after
	// the deploy, like a rollout still in progress.
	OldVersionMS int `json:"old_version_ms,omitempty"`
	// FlipBackAfter answers as the previous build again after this many
	// answers of its own (a bad instance coming back into rotation).
	FlipBackAfter int `json:"flip_back_after,omitempty"`
	// Hang never answers.
	Hang bool `json:"hang,omitempty"`
}

// Service is the scripted service. The zero value is not usable; use New.
type Service struct {
	mu         sync.Mutex
	script     map[string]Behaviour
	current    string
	previous   string
	deployedAt time.Time
	requests   int // health requests since the last deploy
	probed     int // health requests in all
	own        int // answers given as the current build
	deploys    []string
	now        func() time.Time
	sleep      func(time.Duration)
}

// New returns a service that runs current and answers by script.
func New(script map[string]Behaviour, current string) *Service {
	return &Service{script: script, current: current, now: time.Now, sleep: time.Sleep}
}

// Current returns the deployed commit.
func (s *Service) Current() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.current
}

// Probed returns how many health requests the service has had.
func (s *Service) Probed() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.probed
}

// Deploys returns every commit deployed through /deploy, in order.
func (s *Service) Deploys() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.deploys...)
}

// Deploy switches the running build.
func (s *Service) Deploy(sha string) (previous string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	previous = s.current
	s.previous, s.current = s.current, sha
	s.deployedAt = s.now()
	s.requests, s.own = 0, 0
	s.deploys = append(s.deploys, sha)
	return previous
}

// ServeHTTP serves /health, POST /deploy?sha=... and /current.
func (s *Service) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	switch r.URL.Path {
	case "/deploy":
		if r.Method != http.MethodPost || r.URL.Query().Get("sha") == "" {
			http.Error(w, `{"error":"POST /deploy?sha=<sha>"}`, http.StatusBadRequest)
			return
		}
		sha := r.URL.Query().Get("sha")
		prev := s.Deploy(sha)
		json.NewEncoder(w).Encode(map[string]string{"deployed": sha, "previous": prev})
	case "/current":
		json.NewEncoder(w).Encode(map[string]string{"sha": s.Current()})
	case "/health":
		s.health(w, r)
	default:
		http.NotFound(w, r)
	}
}

func (s *Service) health(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.probed++
	version, b := s.current, s.script[s.current]
	if b.OldVersionMS > 0 && s.now().Sub(s.deployedAt) < time.Duration(b.OldVersionMS)*time.Millisecond {
		version = s.previous
	}
	if b.FlipBackAfter > 0 && s.own >= b.FlipBackAfter {
		version = s.previous
	}
	n := s.requests
	s.requests++
	if version == s.current {
		s.own++
	}
	s.mu.Unlock()

	if version != s.current {
		// The old build answers, healthy, as it did.
		b = s.script[version]
		b.FailRate, b.Hang = 0, false
	}
	if b.Hang {
		<-r.Context().Done()
		return
	}
	delay := b.LatencyMS
	if hits(n, b.SlowRate) {
		delay = b.SlowMS
	}
	if delay > 0 {
		s.sleep(time.Duration(delay) * time.Millisecond)
	}
	w.Header().Set("X-Version", version)
	if version == "" {
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprint(w, `{"status":"nothing deployed"}`)
		return
	}
	if hits(n, b.FailRate) {
		status := b.FailStatus
		if status == 0 {
			status = http.StatusInternalServerError
		}
		w.WriteHeader(status)
		json.NewEncoder(w).Encode(map[string]string{"status": "error", "version": version})
		return
	}
	json.NewEncoder(w).Encode(map[string]string{"status": "ok", "version": version})
}

// hits spreads a rate evenly over requests: request n is hit when the
// running count of hits steps up at n.
func hits(n int, rate float64) bool {
	if rate <= 0 {
		return false
	}
	if rate >= 1 {
		return true
	}
	return int(float64(n+1)*rate) > int(float64(n)*rate)
}
