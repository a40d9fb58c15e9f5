// Package clock lets code that waits be driven by a fake clock in tests.
package clock

import (
	"sync"
	"time"
)

// Clock tells the time and waits.
type Clock interface {
	Now() time.Time
	// After waits for d, like time.After.
	After(d time.Duration) <-chan time.Time
}

// Real is the system clock.
type Real struct{}

// Now returns time.Now().
func (Real) Now() time.Time { return time.Now() }

// After returns time.After(d).
func (Real) After(d time.Duration) <-chan time.Time { return time.After(d) }

// Step is a fake clock for tests: time stands still until someone waits,
// and every wait returns at once after moving the clock forward by its
// length. A watch of five minutes then runs in microseconds, in order.
type Step struct {
	mu  sync.Mutex
	now time.Time
}

// NewStep returns a Step clock starting at start.
func NewStep(start time.Time) *Step { return &Step{now: start} }

// Now returns the fake time.
func (s *Step) Now() time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.now
}

// Advance moves the fake time forward by d.
func (s *Step) Advance(d time.Duration) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.now = s.now.Add(d)
}

// After advances the clock by d and returns a channel that has already fired.
func (s *Step) After(d time.Duration) <-chan time.Time {
	s.Advance(d)
	ch := make(chan time.Time, 1)
	ch <- s.Now()
	return ch
}
