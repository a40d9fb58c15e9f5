package testservice

import (
	"encoding/json"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"sync"
)

// Tracks is the scripted service run as a canary deploy sees it: two
// tracks, the stable fleet and a canary subset, each running a commit of its
// own and answering under its own path (/stable/health, /canary/health,
// /stable/deploy?sha=..., ...) as its build is scripted to. Both depend on
// the same downstream: POST /outage?fail_rate=0.4 makes that share of both
// tracks' health requests fail (503, spread evenly per track) until it is
// set back to 0, as a shared incident would; with &seed=N each request
// fails at random at that rate instead, each track drawing from its own
// generator seeded with N (a real incident does not fail both tracks in
// step).
type Tracks struct {
	Stable, Canary *Service

	mu     sync.Mutex
	outage float64
	n      map[string]int        // health requests per track during outages
	rng    map[string]*rand.Rand // per track, for a seeded outage
}

// NewTracks returns both tracks running current.
func NewTracks(script map[string]Behaviour, current string) *Tracks {
	return &Tracks{Stable: New(script, current), Canary: New(script, current), n: map[string]int{}}
}

// Outage returns the share of requests the shared downstream fails now.
func (t *Tracks) Outage() float64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.outage
}

// ServeHTTP routes /stable/... and /canary/... to the tracks, and serves
// POST /outage.
func (t *Tracks) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.URL.Path == "/outage" {
		rate, err := strconv.ParseFloat(r.URL.Query().Get("fail_rate"), 64)
		seed, serr := uint64(0), error(nil)
		if s := r.URL.Query().Get("seed"); s != "" {
			seed, serr = strconv.ParseUint(s, 10, 64)
		}
		if r.Method != http.MethodPost || err != nil || serr != nil || rate < 0 || rate > 1 {
			http.Error(w, `{"error":"POST /outage?fail_rate=<0..1>[&seed=<n>]"}`, http.StatusBadRequest)
			return
		}
		t.mu.Lock()
		t.outage, t.rng = rate, nil
		if r.URL.Query().Has("seed") {
			t.rng = map[string]*rand.Rand{"stable": rand.New(rand.NewPCG(seed, 1)), "canary": rand.New(rand.NewPCG(seed, 2))}
		}
		t.mu.Unlock()
		json.NewEncoder(w).Encode(map[string]float64{"fail_rate": rate})
		return
	}
	name, rest, _ := strings.Cut(strings.TrimPrefix(r.URL.Path, "/"), "/")
	svc := map[string]*Service{"stable": t.Stable, "canary": t.Canary}[name]
	if svc == nil {
		http.NotFound(w, r)
		return
	}
	if rest == "health" {
		t.mu.Lock()
		n := t.n[name]
		failed := t.outage > 0 && hits(n, t.outage)
		if t.rng != nil {
			failed = t.outage > 0 && t.rng[name].Float64() < t.outage
		}
		if t.outage > 0 {
			t.n[name]++
		}
		t.mu.Unlock()
		if failed {
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("X-Version", svc.Current())
			w.WriteHeader(http.StatusServiceUnavailable)
			json.NewEncoder(w).Encode(map[string]string{"status": "error", "error": "downstream unavailable", "version": svc.Current()})
			return
		}
	}
	r2 := r.Clone(r.Context())
	r2.URL.Path = "/" + rest
	svc.ServeHTTP(w, r2)
}
