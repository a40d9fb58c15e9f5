package recorder

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/immune-cd/immune/internal/ghapi"
	"github.com/immune-cd/immune/internal/sha"
)

// What immune writes to GitHub for people, beside its records: a comment on
// the merged pull requests of a rolled-back commit, and one tracking issue
// per environment while its line is stopped. Both are found again by a
// hidden marker, so that a re-run edits rather than adds.

// StoppedLabel marks the tracking issue of a stopped line.
const StoppedLabel = "immune:stopped"

// stoppedLabel's color and description, when immune creates it.
const (
	stoppedColor       = "b60205"
	stoppedDescription = "immune: the line is stopped until the fix is deployed"
)

// Bounds on what one rollback looks at and writes.
const (
	// MaxBlameCommits is how many commits of a push (the newest) are
	// looked up for their pull request: one API call each.
	MaxBlameCommits = 20
	// MaxBlamePulls is how many pull requests are told.
	MaxBlamePulls = 10
	// maxStoppedIssues is how many open issues with the label are read to
	// find the environment's.
	maxStoppedIssues = 100
)

// CommentMarker is the hidden first line of the comment on a pull request
// about commit's regression on environment.
func CommentMarker(environment, commit string) string {
	return fmt.Sprintf("<!-- immune:regression environment=%q sha=%s -->", environment, strings.ToLower(commit))
}

// IssueMarker is the hidden first line of an environment's tracking issue.
func IssueMarker(environment string) string {
	return fmt.Sprintf("<!-- immune:stopped environment=%q -->", environment)
}

// PeopleGitHub is what People needs of GitHub. *ghapi.Client implements
// it.
type PeopleGitHub interface {
	PullRequestsForCommit(ctx context.Context, commit string) ([]ghapi.PullRequest, error)
	CompareCommits(ctx context.Context, base, head string) (ghapi.Comparison, error)
	CommitAuthor(ctx context.Context, commit string) (ghapi.CommitInfo, error)
	IssueComments(ctx context.Context, number int) ([]ghapi.IssueComment, error)
	CreateIssueComment(ctx context.Context, number int, body, perm string) (ghapi.IssueComment, error)
	EditIssueComment(ctx context.Context, id int64, body, perm string) (ghapi.IssueComment, error)
	OpenIssues(ctx context.Context, label string, limit int, perm string) ([]ghapi.Issue, error)
	CreateIssue(ctx context.Context, title, body string, labels []string) (ghapi.Issue, error)
	EditIssue(ctx context.Context, number int, e ghapi.IssueEdit) (ghapi.Issue, error)
	EnsureLabel(ctx context.Context, name, color, description string) (bool, error)
}

// People writes and reads what immune tells people. Like the Recorder, it
// never fails a run: a call GitHub refuses for want of a permission is
// remembered once per permission (Denied) and later calls that need it are
// skipped; any other failure is logged and listed (Failed). It is safe for
// use from another goroutine than the run's, so that nothing it waits for
// delays a rollback.
type People struct {
	gh     PeopleGitHub
	env    string
	logf   func(format string, args ...any)
	budget time.Duration // per call, as the Recorder's

	mu       sync.Mutex
	alsoDown []func() bool     // other signs that GitHub was given up on
	denied   map[string]string // permission → what it kept from being done
	order    []string          // permissions in the order denied
	failed   []string
	down     error
}

// People returns the writer of what people are told, nil when there is no
// GitHub (or it cannot do what People needs). logf receives its log lines
// (nil: the Recorder's); it must be safe to call from another goroutine
// when People is used from one.
func (r *Recorder) People(logf func(format string, args ...any)) *People {
	gh, ok := r.o.GitHub.(PeopleGitHub)
	if !ok || r.o.GitHub == nil {
		return nil
	}
	if logf == nil {
		logf = r.o.Logf
	}
	return &People{gh: gh, env: r.o.Environment, logf: logf, budget: r.o.CallBudget, denied: map[string]string{}}
}

// ShareDown makes People give up on GitHub when rec has: what the run's
// own records found out spares people a call budget each.
func (p *People) ShareDown(rec *Recorder) {
	if p == nil || rec == nil {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	p.alsoDown = append(p.alsoDown, rec.Down)
}

// Denial is a permission GitHub refused, and what it kept from being done.
type Denial struct {
	Permission string
	What       string
}

// Denied lists the permissions GitHub refused, once each, in order.
func (p *People) Denied() []Denial {
	if p == nil {
		return nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []Denial
	for _, perm := range p.order {
		out = append(out, Denial{Permission: perm, What: p.denied[perm]})
	}
	return out
}

// Failed lists what could not be done for another reason.
func (p *People) Failed() []string {
	if p == nil {
		return nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]string(nil), p.failed...)
}

// call runs fn, within the call budget, unless perm was refused before or
// GitHub is down; what names the call for people. It returns false when fn
// did not succeed. A call cut short by the budget marks GitHub down, as the
// Recorder does.
func (p *People) call(ctx context.Context, what, perm string, fn func(ctx context.Context) error) bool {
	p.mu.Lock()
	_, refused := p.denied[perm]
	down := p.down
	others := p.alsoDown
	p.mu.Unlock()
	for _, given := range others {
		if given() {
			down = errors.New("GitHub was given up on by the run's records")
		}
	}
	if refused || down != nil || ctx.Err() != nil {
		if down != nil && !refused {
			p.mu.Lock()
			p.failed = append(p.failed, what+" (skipped: GitHub unreachable)")
			p.mu.Unlock()
		}
		return false
	}
	cctx, cancel := context.WithTimeout(ctx, p.budget)
	defer cancel()
	err := fn(cctx)
	if err == nil {
		return true
	}
	if errors.Is(cctx.Err(), context.DeadlineExceeded) && ctx.Err() == nil {
		err = fmt.Errorf("GitHub did not answer within %s: %w", p.budget, err)
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	var pe *ghapi.PermissionError
	var unavailable *ghapi.UnavailableError
	var limited *ghapi.RateLimitError
	switch {
	case errors.As(err, &pe) && perm != "":
		if _, seen := p.denied[perm]; !seen {
			p.denied[perm] = what
			p.order = append(p.order, perm)
		}
		p.logf("GitHub: could not %s: %v", what, err)
		return false
	case errors.As(err, &unavailable) || errors.As(err, &limited) || errors.Is(err, context.DeadlineExceeded):
		p.down = err
	}
	p.failed = append(p.failed, fmt.Sprintf("%s: %v", what, err))
	p.logf("GitHub: could not %s: %v", what, err)
	return false
}

// Person is who wrote a commit or opened a pull request.
type Person struct {
	Login string // GitHub account, "" when unknown
	Name  string // git author name, when there is no account
}

// Blame is who to tell about a regressed commit: the merged pull requests
// between the previous good commit and it.
type Blame struct {
	// Author of the regressed commit: who opened its pull request, else
	// who wrote it.
	Author Person
	// Pulls are the merged pull requests, the regressed commit's first.
	Pulls []ghapi.PullRequest
	// BadPull is the number of the regressed commit's own pull request, 0
	// when it came without one.
	BadPull int
	// Commits counts the commits between the previous good commit and the
	// regressed one (1 when unknown); Examined how many were looked up.
	Commits, Examined int
	// Capped is true when there were more commits or pull requests than
	// were looked at or told.
	Capped bool
}

// Blame finds the merged pull requests of the commits between good (the
// previous good commit, "" when unknown) and bad, newest first, within
// MaxBlameCommits commits and MaxBlamePulls pull requests.
func (p *People) Blame(ctx context.Context, good, bad string) Blame {
	b := Blame{Commits: 1}
	commits := []ghapi.CommitInfo{{SHA: bad}}
	if good != "" && !sha.Same(good, bad) {
		var cmp ghapi.Comparison
		if p.call(ctx, fmt.Sprintf("compare %s...%s", sha.Short(good), sha.Short(bad)), "", func(ctx context.Context) (err error) {
			cmp, err = p.gh.CompareCommits(ctx, good, bad)
			return err
		}) && len(cmp.Commits) > 0 && cmp.Status != "behind" {
			commits = commits[:0]
			for i := len(cmp.Commits) - 1; i >= 0; i-- {
				commits = append(commits, cmp.Commits[i])
			}
			b.Commits = max(cmp.TotalCommits, len(cmp.Commits))
			if !sha.Same(commits[0].SHA, bad) {
				// The newest commit of a comparison is its head.
				commits = append([]ghapi.CommitInfo{{SHA: bad}}, commits...)
			}
		}
	}
	if len(commits) > MaxBlameCommits {
		commits, b.Capped = commits[:MaxBlameCommits], true
	}
	b.Capped = b.Capped || b.Commits > len(commits)
	seen := map[int]bool{}
	for i, c := range commits {
		if ctx.Err() != nil {
			break
		}
		b.Examined++
		var prs []ghapi.PullRequest
		if !p.call(ctx, "find the pull request of "+sha.Short(c.SHA), "", func(ctx context.Context) (err error) {
			prs, err = p.gh.PullRequestsForCommit(ctx, c.SHA)
			return err
		}) {
			continue
		}
		for _, pr := range prs {
			if !pr.Merged || seen[pr.Number] {
				continue
			}
			if i == 0 && b.BadPull == 0 {
				b.BadPull = pr.Number
				b.Author = Person{Login: pr.Author}
			}
			if len(b.Pulls) >= MaxBlamePulls {
				b.Capped = true
				continue
			}
			seen[pr.Number] = true
			b.Pulls = append(b.Pulls, pr)
		}
	}
	if b.Author == (Person{}) {
		c := commits[0]
		if c.AuthorLogin == "" && c.AuthorName == "" {
			_ = p.call(ctx, "read the author of "+sha.Short(bad), "", func(ctx context.Context) (err error) {
				c, err = p.gh.CommitAuthor(ctx, bad)
				return err
			})
		}
		b.Author = Person{Login: c.AuthorLogin, Name: c.AuthorName}
	}
	return b
}

// Comment writes body, under the hidden marker, as the one comment on pull
// request pr about commit: it edits the comment a previous run left, or
// adds it. It returns the comment's link, "" when it could not.
func (p *People) Comment(ctx context.Context, pr int, commit, body string) string {
	marker := CommentMarker(p.env, commit)
	body = marker + "\n" + body
	var existing []ghapi.IssueComment
	if !p.call(ctx, fmt.Sprintf("read the comments of #%d", pr), ghapi.PullsWrite, func(ctx context.Context) (err error) {
		existing, err = p.gh.IssueComments(ctx, pr)
		return err
	}) {
		return ""
	}
	var c ghapi.IssueComment
	for _, e := range existing {
		if strings.HasPrefix(e.Body, marker) {
			if e.Body == body {
				return e.HTMLURL
			}
			if p.call(ctx, fmt.Sprintf("update the comment on #%d", pr), ghapi.PullsWrite, func(ctx context.Context) (err error) {
				c, err = p.gh.EditIssueComment(ctx, e.ID, body, ghapi.PullsWrite)
				return err
			}) {
				return c.HTMLURL
			}
			return ""
		}
	}
	if p.call(ctx, fmt.Sprintf("comment on #%d", pr), ghapi.PullsWrite, func(ctx context.Context) (err error) {
		c, err = p.gh.CreateIssueComment(ctx, pr, body, ghapi.PullsWrite)
		return err
	}) {
		return c.HTMLURL
	}
	return ""
}

// StoppedIssue finds the environment's open tracking issue. perm is the
// permission to name should GitHub refuse (issues: read for the gate).
func (p *People) StoppedIssue(ctx context.Context, perm string) (ghapi.Issue, bool) {
	var open []ghapi.Issue
	if !p.call(ctx, "find the tracking issue of "+p.env, perm, func(ctx context.Context) (err error) {
		open, err = p.gh.OpenIssues(ctx, StoppedLabel, maxStoppedIssues, perm)
		return err
	}) {
		return ghapi.Issue{}, false
	}
	marker := IssueMarker(p.env)
	i := slices.IndexFunc(open, func(is ghapi.Issue) bool { return strings.HasPrefix(is.Body, marker) })
	if i < 0 {
		return ghapi.Issue{}, false
	}
	return open[i], true
}

// Stopped opens the environment's tracking issue with title and body, or,
// when one is open, updates it and adds update as a comment (so that its
// watchers hear of the further rollback). opened says which; ok is false
// when GitHub could not be written.
func (p *People) Stopped(ctx context.Context, title, body, update string) (is ghapi.Issue, opened, ok bool) {
	const perm = ghapi.IssuesWrite
	body = IssueMarker(p.env) + "\n" + body
	existing, found := p.StoppedIssue(ctx, perm)
	if p.refused(perm) {
		return ghapi.Issue{}, false, false
	}
	if found {
		ok = p.call(ctx, fmt.Sprintf("update the tracking issue #%d", existing.Number), perm, func(ctx context.Context) (err error) {
			is, err = p.gh.EditIssue(ctx, existing.Number, ghapi.IssueEdit{Title: &title, Body: &body})
			return err
		})
		if ok && update != "" {
			p.call(ctx, fmt.Sprintf("comment on the tracking issue #%d", existing.Number), perm, func(ctx context.Context) error {
				_, err := p.gh.CreateIssueComment(ctx, existing.Number, update, perm)
				return err
			})
		}
		return is, false, ok
	}
	if !p.call(ctx, fmt.Sprintf("create the label %q", StoppedLabel), perm, func(ctx context.Context) error {
		_, err := p.gh.EnsureLabel(ctx, StoppedLabel, stoppedColor, stoppedDescription)
		return err
	}) {
		return ghapi.Issue{}, false, false
	}
	ok = p.call(ctx, "open the tracking issue of "+p.env, perm, func(ctx context.Context) (err error) {
		is, err = p.gh.CreateIssue(ctx, title, body, []string{StoppedLabel})
		return err
	})
	return is, ok, ok
}

// Clear closes the environment's open tracking issue with comment; closed
// is false when there was none (or it could not be closed).
func (p *People) Clear(ctx context.Context, comment string) (is ghapi.Issue, closed bool) {
	const perm = ghapi.IssuesWrite
	existing, found := p.StoppedIssue(ctx, perm)
	if !found {
		return ghapi.Issue{}, false
	}
	if !p.call(ctx, fmt.Sprintf("comment on the tracking issue #%d", existing.Number), perm, func(ctx context.Context) error {
		_, err := p.gh.CreateIssueComment(ctx, existing.Number, comment, perm)
		return err
	}) {
		return existing, false
	}
	state, reason := "closed", "completed"
	closed = p.call(ctx, fmt.Sprintf("close the tracking issue #%d", existing.Number), perm, func(ctx context.Context) (err error) {
		is, err = p.gh.EditIssue(ctx, existing.Number, ghapi.IssueEdit{State: &state, StateReason: &reason})
		return err
	})
	return is, closed
}

func (p *People) refused(perm string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	_, ok := p.denied[perm]
	return ok
}

// LineBefore reads whether the line was stopped just before deployment id
// was created: from the deployments older than it. A healthy deploy that
// follows a stopped line is the recovery people hear of.
func (r *Recorder) LineBefore(ctx context.Context, id int64) (Line, error) {
	var history []ghapi.Deployment
	err := r.walk(ctx, fmt.Sprintf("read the deployments of %s before %d", r.env(), id), notAJobs, func(d *ghapi.Deployment, status func(*ghapi.Deployment) error) (bool, error) {
		if d.ID >= id {
			return true, nil
		}
		if len(history) == 0 {
			if err := status(d); err != nil {
				return false, err
			}
		}
		history = append(history, *d)
		_, ours := PayloadOf(history[0])
		return Task(history[0].Task) == TaskRollback && !ours && sha.Same(d.SHA, history[0].SHA), nil
	})
	if err != nil {
		return Line{}, err
	}
	return LineOf(history), nil
}
