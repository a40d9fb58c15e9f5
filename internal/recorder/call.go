package recorder

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/immune-cd/immune/internal/ghapi"
)

// purpose says whom a call to GitHub serves, which decides how its failure
// is reported: a record or a read of the history (listed as missing at the
// end of the run), or something people are told (listed as not told).
type purpose int

const (
	forRecords purpose = iota
	forPeople
	// forBetterReads is a read the run does without, at some cost it
	// logs: its failure is listed nowhere else.
	forBetterReads
)

// calls is the one path every call to GitHub takes, for the records and for
// people alike: each call gets the call budget, retries included; a call cut
// short by the budget, an outage or a rate limit gives GitHub up for the
// rest of the run, so that a slow GitHub costs one budget, not one per
// call; a permission GitHub refuses is remembered once and the calls that
// need it are skipped.
type calls struct {
	gh             GitHub
	budget         time.Duration
	logf, tellLogf func(format string, args ...any)

	mu      sync.Mutex
	down    error             // set once GitHub proved unreachable or too slow
	denied  map[string]string // permission → what it kept from being done
	order   []string          // permissions in the order denied
	missing []string          // records not written, history not read
	notTold []string          // what people could not be told
}

// do runs fn against GitHub within the call budget. what names the call
// for the log ("create the deployment"); perm is the optional permission
// to name should GitHub refuse it ("" for the records, whose permissions
// are not optional).
func (c *calls) do(ctx context.Context, p purpose, what, perm string, fn func(context.Context, GitHub) error) error {
	if c.gh == nil {
		return ErrDisabled
	}
	c.mu.Lock()
	_, refused := c.denied[perm]
	down := c.down
	switch {
	case perm != "" && refused:
		// Said once, when it was refused.
	case down != nil && p == forRecords:
		c.missing = append(c.missing, what+" (skipped: GitHub unreachable)")
	case down != nil && p == forPeople:
		c.notTold = append(c.notTold, what+" (skipped: GitHub unreachable)")
	}
	c.mu.Unlock()
	switch {
	case perm != "" && refused:
		return errRefused
	case down != nil:
		return down
	case p == forPeople && ctx.Err() != nil:
		// The run gave up on telling people: nothing more is tried.
		return ctx.Err()
	}
	logf := c.logf
	if p == forPeople {
		logf = c.tellLogf
	}
	cctx, cancel := context.WithTimeout(ctx, c.budget)
	defer cancel()
	err := fn(cctx, c.gh)
	if err == nil {
		return nil
	}
	slow := errors.Is(cctx.Err(), context.DeadlineExceeded) && ctx.Err() == nil
	if slow {
		err = fmt.Errorf("GitHub did not answer within %s: %w", c.budget, err)
	}
	var pe *ghapi.PermissionError
	var unavailable *ghapi.UnavailableError
	var limited *ghapi.RateLimitError
	c.mu.Lock()
	switch {
	case perm != "" && errors.As(err, &pe):
		if _, seen := c.denied[perm]; !seen {
			c.denied[perm] = what
			c.order = append(c.order, perm)
		}
		c.mu.Unlock()
		logf("GitHub: could not %s: %v", what, err)
		return err
	case slow || errors.As(err, &unavailable) || errors.As(err, &limited):
		c.down = err
	}
	switch p {
	case forRecords:
		c.missing = append(c.missing, what)
	case forPeople:
		c.notTold = append(c.notTold, fmt.Sprintf("%s: %v", what, err))
	}
	c.mu.Unlock()
	logf("GitHub: could not %s: %v", what, err)
	return err
}

// errRefused is returned for a call skipped because GitHub refused its
// permission before.
var errRefused = errors.New("permission refused earlier in the run")

// note lists something that could not be recorded without a call.
func (c *calls) note(what string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.missing = append(c.missing, what)
}

// lane runs work in order on one goroutine of its own, so that nothing it
// waits for (GitHub) ever holds up a deploy or a rollback. The records and
// what people are told each have a lane: a slow comment never delays a
// deployment status.
type lane struct {
	ctx    context.Context // ended when the run gives the lane up
	cancel context.CancelFunc

	mu      sync.Mutex
	queue   []func(context.Context)
	working bool
	idle    *sync.Cond // signalled when the queue is empty and no work runs
}

func newLane() *lane {
	l := &lane{}
	l.ctx, l.cancel = context.WithCancel(context.Background())
	l.idle = sync.NewCond(&l.mu)
	return l
}

// add queues work and starts the worker if it sleeps.
func (l *lane) add(work func(context.Context)) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.queue = append(l.queue, work)
	if !l.working {
		l.working = true
		go l.work()
	}
}

func (l *lane) work() {
	l.mu.Lock()
	for len(l.queue) > 0 {
		w := l.queue[0]
		l.queue = l.queue[1:]
		l.mu.Unlock()
		if l.ctx.Err() == nil {
			w(l.ctx)
		}
		l.mu.Lock()
	}
	l.working = false
	l.idle.Broadcast()
	l.mu.Unlock()
}

// wait waits until the lane has done all its work (true), or ctx ends
// (false, with the number of pieces of work still queued).
func (l *lane) wait(ctx context.Context) (done bool, queued int) {
	finished := make(chan struct{})
	go func() {
		l.mu.Lock()
		for l.working {
			l.idle.Wait()
		}
		l.mu.Unlock()
		close(finished)
	}()
	select {
	case <-finished:
		return true, 0
	case <-ctx.Done():
		l.mu.Lock()
		defer l.mu.Unlock()
		return false, len(l.queue)
	}
}
