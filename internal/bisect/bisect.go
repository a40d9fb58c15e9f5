// Package bisect finds the first bad commit of a batch that regressed: the
// commits between the last good one and the head, in first-parent order,
// searched by halves. It decides which commit a step tries and what the
// batch's verdicts so far make of it; deploying and judging a step is the
// caller's. It also reads a batch's commits from the two places that know
// them: a comparison GitHub made (FirstParent) and the workspace's git
// history (Git).
package bisect

import (
	"fmt"
	"math/bits"
)

// Result is what one step made of its commit.
type Result int

// The results of a step.
const (
	// Good: the commit was judged no worse than the control.
	Good Result = iota
	// Bad: the commit regressed.
	Bad
	// Undecided: the step could not judge the commit (inconclusive,
	// cancelled, or its command failed before it ran).
	Undecided
)

func (r Result) String() string {
	switch r {
	case Good:
		return "good"
	case Bad:
		return "bad"
	}
	return "undecided"
}

// Step is one step of a search: the commit tried and its result.
type Step struct {
	SHA    string
	Index  int // in the batch, 0 for the oldest
	Result Result
}

// Search is the search over one batch. The batch is the commits after the
// last good one, oldest first; its last, the head, is known bad (it
// regressed). The culprit is the first bad commit, on the assumption that
// every commit after a bad one is bad too (a commit carries the ones before
// it).
type Search struct {
	batch []string
	// lo is the index of the newest commit known good (-1: none of the
	// batch, only the last good commit before it); hi the index of the
	// oldest known bad.
	lo, hi int
	steps  []Step
	// stopped: a step could not decide, and the search ended there.
	stopped bool
}

// New starts a search over batch (oldest first, the head last and known
// bad). A batch of one needs no step.
func New(batch []string) *Search {
	return &Search{batch: append([]string(nil), batch...), lo: -1, hi: len(batch) - 1}
}

// MaxSteps is the most steps a search over n commits takes: ⌈log₂ n⌉.
func MaxSteps(n int) int {
	if n <= 1 {
		return 0
	}
	return bits.Len(uint(n - 1))
}

// Batch returns the batch, oldest first.
func (s *Search) Batch() []string { return s.batch }

// Done reports whether the search is over: the culprit is known, or a step
// could not decide.
func (s *Search) Done() bool { return s.stopped || s.hi-s.lo <= 1 }

// Next is the commit the next step tries: the middle of what is still in
// doubt. ok is false when the search is done.
func (s *Search) Next() (index int, commit string, ok bool) {
	if s.Done() {
		return 0, "", false
	}
	mid := s.lo + (s.hi-s.lo)/2
	return mid, s.batch[mid], true
}

// Record records the result of the step that tried index, which must be
// the one Next returned.
func (s *Search) Record(index int, r Result) error {
	if want, _, ok := s.Next(); !ok || index != want {
		return fmt.Errorf("bisect: step %d recorded, but the search tries %d next", index, want)
	}
	s.steps = append(s.steps, Step{SHA: s.batch[index], Index: index, Result: r})
	switch r {
	case Good:
		s.lo = index
	case Bad:
		s.hi = index
	default:
		s.stopped = true
	}
	return nil
}

// Stop ends the search where it stands (out of time, or cancelled).
func (s *Search) Stop() { s.stopped = true }

// Steps returns the steps so far, in order.
func (s *Search) Steps() []Step { return s.steps }

// Culprit is the first bad commit, once the search found it; "" while it
// is in doubt or when a step could not decide.
func (s *Search) Culprit() string {
	if s.hi-s.lo > 1 {
		return ""
	}
	return s.batch[s.hi]
}

// Good is the newest commit of the batch known good: what can ship. ""
// when no commit of the batch is (the culprit is its first).
func (s *Search) Good() string {
	if s.lo < 0 {
		return ""
	}
	return s.batch[s.lo]
}

// Suspects are the commits still in doubt, oldest first: the culprit alone
// once found; those between the newest good and the oldest bad when a step
// could not decide.
func (s *Search) Suspects() []string { return s.batch[s.lo+1 : s.hi+1] }

// OldestBad is the oldest commit seen to regress.
func (s *Search) OldestBad() string { return s.batch[s.hi] }
