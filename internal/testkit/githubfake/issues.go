package githubfake

import (
	"fmt"
	"net/http"
	"sort"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"
)

const (
	docIssues        = "https://docs.github.com/rest/issues/issues"
	docIssueComments = "https://docs.github.com/rest/issues/comments"
	docCompare       = "https://docs.github.com/rest/commits/commits#compare-two-commits"

	// maxTextBody is GitHub's limit on an issue's or a comment's body, in
	// characters.
	maxTextBody = 65536
	// maxCompareCommits is how many commits a comparison lists when it is
	// not paged.
	maxCompareCommits = 250
	// defaultLabelColor is the color GitHub gives a label it creates
	// because an issue named it (github/docs#35718).
	defaultLabelColor = "ededed"
)

// Issue is an issue held by the fake. Issues and pull requests share one
// sequence of numbers, as on GitHub.
type Issue struct {
	Number      int
	Title       string
	Body        string
	State       string // open or closed
	StateReason string // completed, not_planned, reopened or ""
	Labels      []string
	Author      string // login; default the fake's Login
	CreatedAt   time.Time
	UpdatedAt   time.Time
	ClosedAt    time.Time
	ClosedBy    string
}

// IssueComment is a comment on an issue or a pull request's conversation.
type IssueComment struct {
	ID        int64
	Number    int // of the issue or pull request
	Body      string
	Author    string
	CreatedAt time.Time
	UpdatedAt time.Time
}

// Label is a repository label.
type Label struct {
	Name        string
	Color       string
	Description string
}

// AddIssue records an issue as history; Number 0 takes the next free
// number. Its labels become repository labels.
func (f *Server) AddIssue(is Issue) Issue {
	f.mu.Lock()
	defer f.mu.Unlock()
	if is.Number == 0 {
		is.Number = f.st.nextNumber()
	}
	if is.State == "" {
		is.State = "open"
	}
	if is.Author == "" {
		is.Author = f.opts.Login
	}
	if is.CreatedAt.IsZero() {
		is.CreatedAt = f.now()
	}
	if is.UpdatedAt.IsZero() {
		is.UpdatedAt = is.CreatedAt
	}
	for _, l := range is.Labels {
		f.st.label(l)
	}
	is.Labels = append([]string(nil), is.Labels...)
	f.st.issues[is.Number] = &is
	return is
}

// UpdateIssue changes an issue as a person would in GitHub's web page
// (remove a label, add notes to the body); it panics for an unknown issue.
func (f *Server) UpdateIssue(number int, change func(*Issue)) {
	f.mu.Lock()
	defer f.mu.Unlock()
	is, ok := f.st.issues[number]
	if !ok {
		panic(fmt.Sprintf("githubfake: UpdateIssue: no issue #%d", number))
	}
	change(is)
	for _, l := range is.Labels {
		f.st.label(l)
	}
	is.UpdatedAt = f.now()
}

// Issues returns every issue (not pull requests), by number.
func (f *Server) Issues() []Issue {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []Issue
	for _, is := range f.st.issues {
		c := *is
		c.Labels = append([]string(nil), is.Labels...)
		out = append(out, c)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Number < out[j].Number })
	return out
}

// Comments returns the comments on an issue or pull request, oldest first.
func (f *Server) Comments(number int) []IssueComment {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []IssueComment
	for _, c := range f.st.comments {
		if c.Number == number {
			out = append(out, *c)
		}
	}
	return out
}

// AddComment records a comment as history.
func (f *Server) AddComment(c IssueComment) IssueComment {
	f.mu.Lock()
	defer f.mu.Unlock()
	if c.Author == "" {
		c.Author = f.opts.Login
	}
	if c.CreatedAt.IsZero() {
		c.CreatedAt = f.now()
	}
	if c.UpdatedAt.IsZero() {
		c.UpdatedAt = c.CreatedAt
	}
	return *f.st.insertComment(c)
}

// Labels returns the repository's labels, by name.
func (f *Server) Labels() []Label {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []Label
	for _, l := range f.st.labels {
		out = append(out, *l)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

func (s *state) nextNumber() int {
	n := 0
	for k := range s.pulls {
		n = max(n, k)
	}
	for k := range s.issues {
		n = max(n, k)
	}
	return n + 1
}

func (s *state) insertComment(c IssueComment) *IssueComment {
	c.ID = s.nextComment
	s.nextComment++
	p := &c
	s.comments = append(s.comments, p)
	return p
}

// label returns the repository label called name (names are matched
// case-insensitively), creating it with GitHub's default color when an
// issue or pull request names one that does not exist.
func (s *state) label(name string) *Label {
	if l := s.findLabel(name); l != nil {
		return l
	}
	l := &Label{Name: name, Color: defaultLabelColor}
	s.labels[strings.ToLower(name)] = l
	return l
}

func (s *state) findLabel(name string) *Label {
	return s.labels[strings.ToLower(name)]
}

// isPull reports whether number is a pull request's.
func (s *state) isPull(number int) bool {
	_, ok := s.pulls[number]
	return ok
}

// issuePerm is the permission an issue endpoint needs on number: on a pull
// request's conversation, issues or pull-requests; on an issue, issues.
func issuePerm(level string) func(s *state, p params) string {
	return func(s *state, p params) string {
		if s.isPull(p.n) {
			return "issues:" + level + "|pull-requests:" + level
		}
		return "issues:" + level
	}
}

// commentPerm is the permission to change comment p.id: that of its issue
// or pull request.
func commentPerm(s *state, p params) string {
	for _, c := range s.comments {
		if c.ID == p.id && s.isPull(c.Number) {
			return "issues:write|pull-requests:write"
		}
	}
	return "issues:write"
}

// issueView is an issue, or a pull request seen through the issues
// endpoints.
type issueView struct {
	*Issue
	pull bool
}

func (s *state) issueView(n int) (issueView, bool) {
	if is, ok := s.issues[n]; ok {
		return issueView{Issue: is}, true
	}
	if pr, ok := s.pulls[n]; ok {
		return issueView{Issue: &Issue{Number: pr.Number, Title: pr.Title, State: pr.State, Labels: pr.Labels, Author: pr.Author}, pull: true}, true
	}
	return issueView{}, false
}

func (f *Server) listIssues(req *apiRequest, _ params, _ time.Time) reply {
	doc := docIssues + "#list-repository-issues"
	q := req.query
	state := q.Get("state")
	if state == "" {
		state = "open"
	}
	if rep, ok := checkEnum(doc, "state", state, []string{"open", "closed", "all"}); !ok {
		return rep
	}
	direction := q.Get("direction")
	if direction == "" {
		direction = "desc"
	}
	if rep, ok := checkEnum(doc, "direction", direction, []string{"asc", "desc"}); !ok {
		return rep
	}
	var want []string
	for _, l := range strings.Split(q.Get("labels"), ",") {
		if l = strings.TrimSpace(l); l != "" {
			want = append(want, l)
		}
	}
	var all []issueView
	for n := range f.st.issues {
		v, _ := f.st.issueView(n)
		all = append(all, v)
	}
	for n := range f.st.pulls {
		v, _ := f.st.issueView(n)
		all = append(all, v)
	}
	var match []issueView
	for _, v := range all {
		if state != "all" && v.State != state {
			continue
		}
		if c := q.Get("creator"); c != "" && !strings.EqualFold(v.Author, c) {
			continue
		}
		if !hasLabels(v.Labels, want) {
			continue
		}
		match = append(match, v)
	}
	// Sorted by creation; the number orders them as creation does.
	sort.Slice(match, func(i, j int) bool {
		if direction == "asc" {
			return match[i].Number < match[j].Number
		}
		return match[i].Number > match[j].Number
	})
	return listed(req, match, func(v issueView) any { return f.renderIssue(v) })
}

// hasLabels reports whether have holds every label of want, as the issues
// list's labels filter requires.
func hasLabels(have, want []string) bool {
	for _, w := range want {
		found := false
		for _, h := range have {
			found = found || strings.EqualFold(h, w)
		}
		if !found {
			return false
		}
	}
	return true
}

func tooLongBody(doc, resource, body string) (reply, bool) {
	if utf8.RuneCountInString(body) <= maxTextBody {
		return reply{}, false
	}
	return validationFailed(doc, resource, "body", "custom", fmt.Sprintf("body is too long (maximum is %d characters)", maxTextBody)), true
}

// labelNames reads a labels array: names, or objects with a name.
func labelNames(v any) ([]string, bool) {
	arr, ok := v.([]any)
	if !ok {
		return nil, false
	}
	var out []string
	for _, e := range arr {
		switch x := e.(type) {
		case string:
			out = append(out, x)
		case map[string]any:
			name, ok := x["name"].(string)
			if !ok {
				return nil, false
			}
			out = append(out, name)
		default:
			return nil, false
		}
	}
	return out, true
}

func (f *Server) createIssue(req *apiRequest, _ params, now time.Time) reply {
	doc := docIssues + "#create-an-issue"
	b := req.body
	if rep, ok := checkFields(doc, b, fieldCheck{"body", "string-or-null"}); !ok {
		return rep
	}
	title, ok := b["title"].(string)
	if !ok {
		if _, present := b["title"]; present {
			return invalid(doc, "For 'properties/title', the value is not a string or integer.")
		}
		return invalid(doc, `"title" wasn't supplied.`)
	}
	if strings.TrimSpace(title) == "" {
		return validationFailed(doc, "Issue", "title", "missing_field", "")
	}
	if rep, bad := tooLongBody(doc, "Issue", str(b, "body")); bad {
		return rep
	}
	var labels []string
	if v, ok := b["labels"]; ok {
		names, good := labelNames(v)
		if !good {
			return invalid(doc, "For 'properties/labels', the value is not an array of strings or objects.")
		}
		for _, n := range names {
			if !f.opts.NoPushAccess { // "Labels are silently dropped otherwise."
				labels = append(labels, f.st.label(n).Name)
			}
		}
	}
	is := &Issue{
		Number: f.st.nextNumber(), Title: title, Body: str(b, "body"), State: "open",
		Labels: labels, Author: f.opts.Login, CreatedAt: now, UpdatedAt: now,
	}
	f.st.issues[is.Number] = is
	return created(f.renderIssue(issueView{Issue: is}))
}

func (f *Server) getIssue(_ *apiRequest, p params, _ time.Time) reply {
	v, ok := f.st.issueView(p.n)
	if !ok {
		return notFound(docIssues + "#get-an-issue")
	}
	return reply{status: http.StatusOK, body: f.renderIssue(v)}
}

func (f *Server) editIssue(req *apiRequest, p params, now time.Time) reply {
	doc := docIssues + "#update-an-issue"
	v, ok := f.st.issueView(p.n)
	if !ok {
		return notFound(doc)
	}
	b := req.body
	if rep, ok := checkFields(doc, b, fieldCheck{"body", "string-or-null"}, fieldCheck{"state", "string"}, fieldCheck{"state_reason", "string-or-null"}); !ok {
		return rep
	}
	state := str(b, "state")
	if state != "" {
		if rep, ok := checkEnum(doc, "state", state, []string{"open", "closed"}); !ok {
			return rep
		}
	}
	reason := str(b, "state_reason")
	if reason != "" {
		if rep, ok := checkEnum(doc, "state_reason", reason, []string{"completed", "not_planned", "reopened"}); !ok {
			return rep
		}
	}
	if rep, bad := tooLongBody(doc, "Issue", str(b, "body")); bad {
		return rep
	}
	var labels []string
	lv, setLabels := b["labels"]
	setLabels = setLabels && !f.opts.NoPushAccess // silently dropped
	if setLabels {
		names, good := labelNames(lv)
		if !good {
			return invalid(doc, "For 'properties/labels', the value is not an array of strings or objects.")
		}
		for _, n := range names {
			labels = append(labels, f.st.label(n).Name)
		}
	}
	if v.pull {
		pr := f.st.pulls[p.n]
		if t, ok := b["title"].(string); ok {
			pr.Title = t
		}
		if state != "" && !pr.Merged {
			pr.State = state
		}
		if setLabels {
			pr.Labels = labels
		}
		v, _ = f.st.issueView(p.n)
		return reply{status: http.StatusOK, body: f.renderIssue(v)}
	}
	is := v.Issue
	if t, ok := b["title"].(string); ok {
		is.Title = t
	}
	if _, ok := b["body"]; ok {
		is.Body = str(b, "body")
	}
	if setLabels {
		is.Labels = labels
	}
	switch {
	case state == "closed" && is.State != "closed":
		is.State, is.ClosedAt, is.ClosedBy = "closed", now, f.opts.Login
		is.StateReason = "completed"
	case state == "open" && is.State != "open":
		is.State, is.ClosedAt, is.ClosedBy = "open", time.Time{}, ""
		is.StateReason = "reopened"
	}
	if reason != "" {
		is.StateReason = reason
	}
	is.UpdatedAt = now
	return reply{status: http.StatusOK, body: f.renderIssue(v)}
}

func (f *Server) listComments(req *apiRequest, p params, _ time.Time) reply {
	if _, ok := f.st.issueView(p.n); !ok {
		return notFound(docIssueComments + "#list-issue-comments")
	}
	var cs []*IssueComment
	for _, c := range f.st.comments {
		if c.Number == p.n {
			cs = append(cs, c)
		}
	}
	return listed(req, cs, func(c *IssueComment) any { return f.renderComment(c) })
}

func (f *Server) createComment(req *apiRequest, p params, now time.Time) reply {
	doc := docIssueComments + "#create-an-issue-comment"
	if _, ok := f.st.issueView(p.n); !ok {
		return notFound(doc)
	}
	body, ok := req.body["body"].(string)
	if !ok {
		return invalid(doc, `"body" wasn't supplied.`)
	}
	if rep, bad := tooLongBody(doc, "IssueComment", body); bad {
		return rep
	}
	c := f.st.insertComment(IssueComment{Number: p.n, Body: body, Author: f.opts.Login, CreatedAt: now, UpdatedAt: now})
	if is, ok := f.st.issues[p.n]; ok {
		is.UpdatedAt = now
	}
	return created(f.renderComment(c))
}

func (f *Server) editComment(req *apiRequest, p params, now time.Time) reply {
	doc := docIssueComments + "#update-an-issue-comment"
	var c *IssueComment
	for _, x := range f.st.comments {
		if x.ID == p.id {
			c = x
		}
	}
	if c == nil {
		return notFound(doc)
	}
	body, ok := req.body["body"].(string)
	if !ok {
		return invalid(doc, `"body" wasn't supplied.`)
	}
	if rep, bad := tooLongBody(doc, "IssueComment", body); bad {
		return rep
	}
	c.Body, c.UpdatedAt = body, now
	return reply{status: http.StatusOK, body: f.renderComment(c)}
}

func (f *Server) getLabel(_ *apiRequest, p params, _ time.Time) reply {
	return one(f.st.findLabel(p.name), docLabels+"#get-a-label", func(l *Label) map[string]any { return f.renderLabel(l.Name) })
}

func (f *Server) createLabel(req *apiRequest, _ params, _ time.Time) reply {
	doc := docLabels + "#create-a-label"
	b := req.body
	if rep, ok := checkFields(doc, b, fieldCheck{"name", "string"}, fieldCheck{"color", "string"}, fieldCheck{"description", "string"}); !ok {
		return rep
	}
	name, ok := b["name"].(string)
	if !ok {
		return invalid(doc, `"name" wasn't supplied.`)
	}
	color := strings.TrimPrefix(str(b, "color"), "#")
	if color == "" {
		color = defaultLabelColor
	}
	if len(color) != 6 || !isHex(color) {
		return validationFailed(doc, "Label", "color", "invalid", "")
	}
	if f.st.findLabel(name) != nil {
		return validationFailed(doc, "Label", "name", "already_exists", "")
	}
	f.st.labels[strings.ToLower(name)] = &Label{Name: name, Color: strings.ToLower(color), Description: str(b, "description")}
	return created(f.renderLabel(name))
}

// ancestry lists the commits reachable from a known commit, oldest first:
// the default branch up to it, or, for a pull request's branch commit, the
// default branch up to the pull request's base and the branch up to it.
func (s *state) ancestry(sha string) []string {
	if i, ok := s.onMain[sha]; ok {
		merges := s.mergeCommits()
		if len(merges) == 0 {
			return s.mainline[:i+1]
		}
		// A merge commit brings its pull request's commits in before
		// it.
		var out []string
		seen := map[string]bool{}
		for _, m := range s.mainline[:i+1] {
			if pr := merges[m]; pr != nil {
				for _, c := range s.branchOf(pr) {
					if _, onMain := s.onMain[c]; !onMain && !seen[c] {
						seen[c] = true
						out = append(out, c)
					}
				}
			}
			out = append(out, m)
		}
		return out
	}
	for _, pr := range s.pulls {
		var branch []string
		for _, c := range pr.Commits {
			branch = append(branch, c.SHA)
			if c.SHA == sha {
				break
			}
		}
		if len(branch) == 0 || branch[len(branch)-1] != sha {
			if pr.HeadSHA != sha {
				continue
			}
			branch = append(branch, sha)
		}
		var out []string
		if b, ok := s.onMain[s.prBase(pr)]; ok {
			out = append(out, s.mainline[:b+1]...)
		}
		return append(out, branch...)
	}
	return []string{sha}
}

// mergeCommits are the merge commits with two parents (MergeParents), by
// SHA, with their pull requests.
func (s *state) mergeCommits() map[string]*PullRequest {
	m := map[string]*PullRequest{}
	for _, pr := range s.pulls {
		if pr.Merged && pr.MergeParents && pr.MergeCommitSHA != "" {
			m[pr.MergeCommitSHA] = pr
		}
	}
	return m
}

// branchOf is a pull request's branch: its commits, or its head.
func (s *state) branchOf(pr *PullRequest) []string {
	var out []string
	for _, c := range pr.Commits {
		out = append(out, c.SHA)
	}
	if len(out) == 0 || out[len(out)-1] != pr.HeadSHA {
		out = append(out, pr.HeadSHA)
	}
	return out
}

// parents are a known commit's parents, the first one first: on the
// default branch, the commit before it (and, for a merge commit, the pull
// request's head); on a branch, the commit before it there.
func (s *state) parents(sha string) []string {
	if i, ok := s.onMain[sha]; ok {
		var ps []string
		if i > 0 {
			ps = append(ps, s.mainline[i-1])
		}
		if pr := s.mergeCommits()[sha]; pr != nil {
			ps = append(ps, pr.HeadSHA)
		}
		return ps
	}
	if anc := s.ancestry(sha); len(anc) > 1 {
		return []string{anc[len(anc)-2]}
	}
	return nil
}

// prBase is the default-branch commit a pull request's branch starts from:
// the newest default-branch commit added before its first commit.
func (s *state) prBase(pr *PullRequest) string {
	first := pr.HeadSHA
	if len(pr.Commits) > 0 {
		first = pr.Commits[0].SHA
	}
	_, at := s.commit(first)
	base := ""
	for _, c := range s.commits[:max(at, 0)] {
		if _, ok := s.onMain[c.SHA]; ok {
			base = c.SHA
		}
	}
	return base
}

// compare answers "compare two commits" as git log base..head does, in
// chronological order. Unpaged, it lists at most 250 commits, the last one
// being the newest of the comparison.
func (f *Server) compare(req *apiRequest, p params, _ time.Time) reply {
	baseRef, headRef, ok := strings.Cut(p.ref, "...")
	if !ok {
		return notFound(docCompare)
	}
	base, ok1 := f.st.resolve(baseRef)
	head, ok2 := f.st.resolve(headRef)
	if !ok1 || !ok2 {
		return notFound(docCompare)
	}
	ofBase, ofHead := f.st.ancestry(base), f.st.ancestry(head)
	inBase, inHead := map[string]bool{}, map[string]bool{}
	for _, c := range ofBase {
		inBase[c] = true
	}
	for _, c := range ofHead {
		inHead[c] = true
	}
	var ahead []string
	mergeBase := ""
	for _, c := range ofHead {
		if inBase[c] {
			mergeBase = c
		} else {
			ahead = append(ahead, c)
		}
	}
	behind := 0
	for _, c := range ofBase {
		if !inHead[c] {
			behind++
		}
	}
	status := "diverged"
	switch {
	case len(ahead) == 0 && behind == 0:
		status = "identical"
	case behind == 0:
		status = "ahead"
	case len(ahead) == 0:
		status = "behind"
	}
	list := ahead
	var h http.Header
	if req.query.Has("per_page") || req.query.Has("page") {
		var lo, hi int
		lo, hi, h = page(req, len(ahead))
		list = ahead[lo:hi]
	} else if len(list) > maxCompareCommits {
		list = list[len(list)-maxCompareCommits:]
	}
	commits := []any{}
	for _, c := range list {
		commits = append(commits, f.renderCommitSHA(c, false))
	}
	if mergeBase == "" {
		mergeBase = base
	}
	m := f.tmpl("comparison")
	api, web := f.repoAPI(), f.repoWeb()
	m["url"] = api + "/compare/" + baseRef + "..." + headRef
	m["html_url"] = web + "/compare/" + baseRef + "..." + headRef
	m["permalink_url"] = web + "/compare/" + f.opts.Owner + ":" + base + "..." + f.opts.Owner + ":" + head
	m["diff_url"] = m["html_url"].(string) + ".diff"
	m["patch_url"] = m["html_url"].(string) + ".patch"
	m["base_commit"] = f.renderCommitSHA(base, false)
	m["merge_base_commit"] = f.renderCommitSHA(mergeBase, false)
	m["status"] = status
	m["ahead_by"] = len(ahead)
	m["behind_by"] = behind
	m["total_commits"] = len(ahead)
	m["commits"] = commits
	m["files"] = []any{}
	return reply{status: http.StatusOK, body: m, header: h}
}

// renderCommitSHA renders a known commit with its parents.
func (f *Server) renderCommitSHA(sha string, full bool) map[string]any {
	c, _ := f.st.commit(sha)
	return f.renderCommitOf(c, f.st.parents(sha), full)
}

func (f *Server) renderIssue(v issueView) map[string]any {
	m := f.tmpl("issue")
	n := strconv.Itoa(v.Number)
	api, web := f.repoAPI(), f.repoWeb()
	id := int64(hash32("issue:"+n)%900_000_000) + 100_000_000
	m["id"] = id
	m["node_id"] = nodeID("Issue", id)
	m["url"] = api + "/issues/" + n
	m["repository_url"] = api
	m["labels_url"] = api + "/issues/" + n + "/labels{/name}"
	m["comments_url"] = api + "/issues/" + n + "/comments"
	m["events_url"] = api + "/issues/" + n + "/events"
	m["html_url"] = web + "/issues/" + n
	m["number"] = v.Number
	m["state"] = v.State
	m["title"] = v.Title
	m["body"] = nullable(v.Body)
	m["user"] = f.user(v.Author, "")
	labels := []any{}
	for _, l := range v.Labels {
		labels = append(labels, f.renderLabel(l))
	}
	m["labels"] = labels
	m["assignee"] = nil
	m["assignees"] = []any{}
	m["milestone"] = nil
	m["locked"] = false
	m["active_lock_reason"] = nil
	comments := 0
	for _, c := range f.st.comments {
		if c.Number == v.Number {
			comments++
		}
	}
	m["comments"] = comments
	m["author_association"] = "NONE"
	if strings.EqualFold(v.Author, f.opts.Owner) {
		m["author_association"] = "OWNER"
	}
	m["state_reason"] = nullable(v.StateReason)
	m["closed_by"] = nil
	m["closed_at"] = nil
	if v.State == "closed" && !v.ClosedAt.IsZero() {
		m["closed_at"] = ts(v.ClosedAt)
		if v.ClosedBy != "" {
			m["closed_by"] = f.user(v.ClosedBy, "")
		}
	}
	createdAt, updatedAt := v.CreatedAt, v.UpdatedAt
	if v.pull {
		m["html_url"] = web + "/pull/" + n
		m["pull_request"] = map[string]any{
			"url": api + "/pulls/" + n, "html_url": web + "/pull/" + n,
			"diff_url": web + "/pull/" + n + ".diff", "patch_url": web + "/pull/" + n + ".patch",
		}
		createdAt, updatedAt = f.now(), f.now()
	} else {
		delete(m, "pull_request")
	}
	m["created_at"] = ts(createdAt)
	m["updated_at"] = ts(updatedAt)
	return m
}

func (f *Server) renderComment(c *IssueComment) map[string]any {
	m := f.tmpl("issue_comment")
	n := strconv.Itoa(c.Number)
	id := strconv.FormatInt(c.ID, 10)
	kind := "issues"
	if f.st.isPull(c.Number) {
		kind = "pull"
	}
	m["id"] = c.ID
	m["node_id"] = nodeID("IssueComment", c.ID)
	m["url"] = f.repoAPI() + "/issues/comments/" + id
	m["html_url"] = f.repoWeb() + "/" + kind + "/" + n + "#issuecomment-" + id
	m["body"] = c.Body
	m["user"] = f.user(c.Author, "")
	m["created_at"] = ts(c.CreatedAt)
	m["updated_at"] = ts(c.UpdatedAt)
	m["issue_url"] = f.repoAPI() + "/issues/" + n
	m["author_association"] = "NONE"
	return m
}
