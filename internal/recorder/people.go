package recorder

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/immune-cd/immune/internal/ghapi"
	"github.com/immune-cd/immune/internal/redact"
	"github.com/immune-cd/immune/internal/sha"
)

// What immune writes to GitHub for people, beside its records: a comment on
// the merged pull requests of a rolled-back commit, and one tracking issue
// per environment while its line is stopped. Both are found again by what
// only immune can claim: their author, the token's identity (see
// identity), and a hidden marker; not by a label people can remove (or
// GitHub can drop), nor by where the marker sits (people add notes above
// it). So a re-run edits rather than adds, and a comment someone else
// wrote with immune's marker is left alone. A create whose answer is lost
// looks for what GitHub made before it tries again, so that nothing is
// written twice.

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

// learn notes who immune's deployments are created by: the token's
// identity, which GitHub writes immune's issues and comments under too. A
// deployment this run created settles it (own); until then, the newest of
// immune's deployments read in the history stands for it.
func (r *Recorder) learn(login string, own bool) {
	if login == "" {
		return
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if own || r.me == "" {
		r.me = login
	}
}

// identity is the login GitHub writes immune's records under, learnt from
// the deployments this run created or read (see learn), or else read from
// the newest of immune's deployments; "" when there is none.
func (r *Recorder) identity(ctx context.Context) string {
	r.mu.Lock()
	me := r.me
	r.mu.Unlock()
	if me != "" || r.Down() {
		return me
	}
	r.learnName(ctx)
	_ = r.tell(ctx, "read which account immune writes as", "", func(ctx context.Context, gh GitHub) error {
		return gh.WalkDeployments(ctx, r.env(), HistoryLimit, func(d *ghapi.Deployment) (bool, error) {
			if OriginOf(*d) == Ours && d.Creator != "" {
				r.learn(d.Creator, false)
				return false, nil
			}
			return true, nil
		})
	})
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.me
}

// mine reports whether author is immune: the token's identity me when it
// is known; else an app's bot account ("…[bot]", as GITHUB_TOKEN's
// github-actions[bot]), which no person can be.
func mine(author, me string) bool {
	if me != "" {
		return strings.EqualFold(author, me)
	}
	return strings.HasSuffix(author, "[bot]")
}

// indexMarker is where body holds marker, -1 if nowhere, in any letter case
// of ASCII: environments that differ only in letter case are one
// environment, as they are to GitHub (see StatusContext).
func indexMarker(body, marker string) int {
	return strings.Index(redact.FoldASCII(body), redact.FoldASCII(marker))
}

// Tell queues work for the pull requests' comments: it runs after the work
// queued there before it, on a goroutine of its own, and its context ends
// when the run gives up waiting (FinishTelling).
func (r *Recorder) Tell(work func(ctx context.Context)) {
	if r.Enabled() {
		r.people.add(work)
	}
}

// TellLine queues work for the tracking issue, as Tell does, in a lane of
// its own: comments on many pull requests never hold up the issue that
// stops the line.
func (r *Recorder) TellLine(work func(ctx context.Context)) {
	if r.Enabled() {
		r.line.add(work)
	}
}

// FinishTelling waits, at most wait in all (real time: the lanes make
// real requests), for what people are told: the tracking issue's lane
// (line) and the comments' (comments). A lane not done by then is given
// up: its work may still be running, and nothing more of it should be
// read.
func (r *Recorder) FinishTelling(wait time.Duration) (line, comments bool) {
	ctx, cancel := context.WithTimeout(context.Background(), wait)
	defer cancel()
	line, _ = r.line.wait(ctx)
	comments, _ = r.people.wait(ctx)
	r.line.cancel()
	r.people.cancel()
	return line, comments
}

// tell runs fn for people (see calls.do); it reports whether fn succeeded.
// perm is the permission to name should GitHub refuse it.
func (r *Recorder) tell(ctx context.Context, what, perm string, fn func(context.Context, GitHub) error) bool {
	return r.c.do(ctx, forPeople, what, perm, fn) == nil
}

// Denial is a permission GitHub refused, and what it kept from being done.
type Denial struct {
	Permission string
	What       string
}

// Denied lists the permissions GitHub refused, once each, in order.
func (r *Recorder) Denied() []Denial {
	r.c.mu.Lock()
	defer r.c.mu.Unlock()
	var out []Denial
	for _, perm := range r.c.order {
		out = append(out, Denial{Permission: perm, What: r.c.denied[perm]})
	}
	return out
}

// notTell lists something people were not told, found without a failed
// call, and logs it.
func (r *Recorder) notTell(what string) {
	r.c.mu.Lock()
	r.c.notTold = append(r.c.notTold, what)
	r.c.mu.Unlock()
	r.o.TellLogf("GitHub: could not %s", what)
}

// NotTold lists what people could not be told, for another reason than a
// refused permission.
func (r *Recorder) NotTold() []string {
	r.c.mu.Lock()
	defer r.c.mu.Unlock()
	return append([]string(nil), r.c.notTold...)
}

func (r *Recorder) refused(perm string) bool {
	r.c.mu.Lock()
	defer r.c.mu.Unlock()
	_, ok := r.c.denied[perm]
	return ok
}

// Issue is an issue immune wrote.
type Issue struct {
	Number int
	Title  string
	State  string // open or closed
	URL    string
}

func issueOf(is ghapi.Issue) Issue {
	return Issue{Number: is.Number, Title: is.Title, State: is.State, URL: is.HTMLURL}
}

// PullRequest is a merged pull request told about a regression.
type PullRequest struct {
	Number int
	Title  string
	URL    string
	// Author is the login of who opened it; MergeCommitSHA the commit its
	// merge made on the base branch.
	Author         string
	MergeCommitSHA string
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
	Pulls []PullRequest
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
func (r *Recorder) Blame(ctx context.Context, good, bad string) Blame {
	b := Blame{Commits: 1}
	commits := []ghapi.CommitInfo{{SHA: bad}}
	if good != "" && !sha.Same(good, bad) {
		var cmp ghapi.Comparison
		if r.tell(ctx, fmt.Sprintf("compare %s...%s", sha.Short(good), sha.Short(bad)), "", func(ctx context.Context, gh GitHub) (err error) {
			cmp, err = gh.CompareCommits(ctx, good, bad)
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
		if !r.tell(ctx, "find the pull request of "+sha.Short(c.SHA), "", func(ctx context.Context, gh GitHub) (err error) {
			prs, err = gh.PullRequestsForCommit(ctx, c.SHA)
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
			b.Pulls = append(b.Pulls, PullRequest{Number: pr.Number, Title: pr.Title, URL: pr.HTMLURL, Author: pr.Author, MergeCommitSHA: pr.MergeCommitSHA})
		}
	}
	if b.Author == (Person{}) {
		c := commits[0]
		if c.AuthorLogin == "" && c.AuthorName == "" {
			_ = r.tell(ctx, "read the author of "+sha.Short(bad), "", func(ctx context.Context, gh GitHub) (err error) {
				c, err = gh.CommitAuthor(ctx, bad)
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
func (r *Recorder) Comment(ctx context.Context, pr int, commit, body string) string {
	marker := CommentMarker(r.env(), commit)
	body = marker + "\n" + body
	me := r.identity(ctx)
	ours := func(c ghapi.IssueComment) bool { return mine(c.Author, me) && indexMarker(c.Body, marker) == 0 }
	var existing []ghapi.IssueComment
	if !r.tell(ctx, fmt.Sprintf("read the comments of #%d", pr), ghapi.PullsWrite, func(ctx context.Context, gh GitHub) (err error) {
		existing, err = gh.IssueComments(ctx, pr)
		return err
	}) {
		return ""
	}
	var c ghapi.IssueComment
	for _, e := range existing {
		if ours(e) {
			if e.Body == body {
				return e.HTMLURL
			}
			if r.tell(ctx, fmt.Sprintf("update the comment on #%d", pr), ghapi.PullsWrite, func(ctx context.Context, gh GitHub) (err error) {
				c, err = gh.EditIssueComment(ctx, e.ID, body, ghapi.PullsWrite)
				return err
			}) {
				return c.HTMLURL
			}
			return ""
		}
	}
	if r.tell(ctx, fmt.Sprintf("comment on #%d", pr), ghapi.PullsWrite, func(ctx context.Context, gh GitHub) (err error) {
		c, err = gh.CreateIssueComment(ctx, pr, body, ghapi.PullsWrite, ours)
		return err
	}) {
		return c.HTMLURL
	}
	return ""
}

// TrackingIssue finds the environment's open tracking issue, for the gate
// (which needs issues: read).
func (r *Recorder) TrackingIssue(ctx context.Context) (Issue, bool) {
	is, ok := r.stoppedIssue(ctx, ghapi.IssuesRead)
	return issueOf(is), ok
}

// stoppedIssue finds the environment's open tracking issue. perm is the
// permission to name should GitHub refuse.
func (r *Recorder) stoppedIssue(ctx context.Context, perm string) (ghapi.Issue, bool) {
	me := r.identity(ctx)
	var open []ghapi.Issue
	if !r.tell(ctx, "find the tracking issue of "+r.env(), perm, func(ctx context.Context, gh GitHub) (err error) {
		if me != "" {
			open, err = gh.OpenIssuesBy(ctx, me, maxStoppedIssues, perm)
		} else {
			open, err = gh.OpenIssues(ctx, StoppedLabel, maxStoppedIssues, perm)
		}
		return err
	}) {
		return ghapi.Issue{}, false
	}
	marker := IssueMarker(r.env())
	i := slices.IndexFunc(open, func(is ghapi.Issue) bool { return mine(is.Author, me) && indexMarker(is.Body, marker) >= 0 })
	if i < 0 {
		return ghapi.Issue{}, false
	}
	return open[i], true
}

// StopLine opens the environment's tracking issue with title and body, or,
// when one is open, updates it and adds update as a comment (so that its
// watchers hear of the further rollback). opened says which; ok is false
// when GitHub could not be written.
func (r *Recorder) StopLine(ctx context.Context, title, body, update string) (is Issue, opened, ok bool) {
	const perm = ghapi.IssuesWrite
	marker := IssueMarker(r.env())
	body = marker + "\n" + body
	existing, found := r.stoppedIssue(ctx, perm)
	if r.refused(perm) {
		return Issue{}, false, false
	}
	me := r.identity(ctx)
	if found {
		// What people wrote above the marker (triage notes) stays.
		body = existing.Body[:indexMarker(existing.Body, marker)] + body
		ok = r.tell(ctx, fmt.Sprintf("update the tracking issue #%d", existing.Number), perm, func(ctx context.Context, gh GitHub) error {
			got, err := gh.EditIssue(ctx, existing.Number, ghapi.IssueEdit{Title: &title, Body: &body})
			is = issueOf(got)
			return err
		})
		if ok && update != "" {
			r.tell(ctx, fmt.Sprintf("comment on the tracking issue #%d", existing.Number), perm, func(ctx context.Context, gh GitHub) error {
				_, err := gh.CreateIssueComment(ctx, existing.Number, update, perm, func(c ghapi.IssueComment) bool {
					return mine(c.Author, me) && c.Body == update
				})
				return err
			})
		}
		return is, false, ok
	}
	if !r.tell(ctx, fmt.Sprintf("create the label %q", StoppedLabel), perm, func(ctx context.Context, gh GitHub) error {
		_, err := gh.EnsureLabel(ctx, StoppedLabel, stoppedColor, stoppedDescription)
		return err
	}) {
		return Issue{}, false, false
	}
	var got ghapi.Issue
	ok = r.tell(ctx, "open the tracking issue of "+r.env(), perm, func(ctx context.Context, gh GitHub) (err error) {
		got, err = gh.CreateIssue(ctx, title, body, []string{StoppedLabel}, func(is ghapi.Issue) bool {
			return mine(is.Author, me) && indexMarker(is.Body, marker) >= 0
		})
		return err
	})
	if ok && !slices.ContainsFunc(got.Labels, func(l string) bool { return strings.EqualFold(l, StoppedLabel) }) {
		// GitHub drops the labels of a user without push access, and says
		// nothing: the issue is found by its author and marker all the same.
		r.notTell(fmt.Sprintf("label the tracking issue #%d %q: GitHub dropped the label (only accounts with push access can label issues); the issue is found again by its author and marker", got.Number, StoppedLabel))
	}
	return issueOf(got), ok, ok
}

// ClearLine closes the environment's open tracking issue with comment; closed
// is false when there was none (or it could not be closed).
func (r *Recorder) ClearLine(ctx context.Context, comment string) (is Issue, closed bool) {
	const perm = ghapi.IssuesWrite
	existing, found := r.stoppedIssue(ctx, perm)
	if !found {
		return Issue{}, false
	}
	me := r.identity(ctx)
	if !r.tell(ctx, fmt.Sprintf("comment on the tracking issue #%d", existing.Number), perm, func(ctx context.Context, gh GitHub) error {
		_, err := gh.CreateIssueComment(ctx, existing.Number, comment, perm, func(c ghapi.IssueComment) bool {
			return mine(c.Author, me) && c.Body == comment
		})
		return err
	}) {
		return issueOf(existing), false
	}
	state, reason := "closed", "completed"
	closed = r.tell(ctx, fmt.Sprintf("close the tracking issue #%d", existing.Number), perm, func(ctx context.Context, gh GitHub) error {
		got, err := gh.EditIssue(ctx, existing.Number, ghapi.IssueEdit{State: &state, StateReason: &reason})
		is = issueOf(got)
		return err
	})
	return is, closed
}

// LineBefore reads whether the line was stopped just before deployment id
// was created: from the deployments older than it. A healthy deploy that
// follows a stopped line is the recovery people hear of.
func (r *Recorder) LineBefore(ctx context.Context, id int64) (Line, error) {
	return r.lineBefore(ctx, fmt.Sprintf("read the deployments of %s before %d", r.env(), id), id)
}
