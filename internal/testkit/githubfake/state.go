package githubfake

import (
	"fmt"
	"sort"
	"strings"
	"time"
)

// Commit is a commit the fake knows.
type Commit struct {
	SHA     string
	Message string
	// Author is the login of the GitHub user who wrote it; "" leaves the
	// documented example's octocat. AuthorName is the git author's name
	// (default: the login, or the example's).
	Author     string
	AuthorName string
	// Date is when it was authored and committed; zero leaves the
	// documented example's.
	Date time.Time
}

// Deployment is a deployment held by the fake.
type Deployment struct {
	ID                    int64
	SHA                   string
	Ref                   string
	Task                  string
	Environment           string
	OriginalEnvironment   string
	Description           string
	Creator               string // login
	Payload               any    // as sent (object or string); {} by default
	ProductionEnvironment bool
	TransientEnvironment  bool
	CreatedAt             time.Time
	UpdatedAt             time.Time
	// Job marks the deployments GitHub Actions makes for jobs (StartJob).
	Job bool
}

// DeploymentStatus is a deployment status held by the fake.
type DeploymentStatus struct {
	ID             int64
	DeploymentID   int64
	State          string
	Description    string
	Environment    string
	EnvironmentURL string
	LogURL         string
	Creator        string
	CreatedAt      time.Time
}

// CommitStatus is a commit status held by the fake.
type CommitStatus struct {
	ID          int64
	SHA         string
	State       string
	Context     string
	Description string
	TargetURL   string
	Creator     string
	CreatedAt   time.Time
}

// PullRequest is a pull request held by the fake.
type PullRequest struct {
	Number  int
	Title   string
	State   string // "open" (default) or "closed"
	Merged  bool
	HeadSHA string
	HeadRef string // default "feature-<number>"
	BaseRef string // default "main"
	Labels  []string
	Commits []Commit
	// Author is the login of the user who opened it (default: the
	// repository's owner).
	Author string
	// MergeCommitSHA is, for a merged pull request, the commit the merge
	// put on the default branch (a merge or squash commit). Merged without
	// one, the pull request's own commits land on the default branch, as a
	// rebase merge does.
	MergeCommitSHA string
	// MergeParents makes MergeCommitSHA a merge commit, as GitHub's
	// "Create a merge commit" makes it: its parents are the default
	// branch's commit before it and the pull request's head, so the pull
	// request's commits are reachable from the default branch (a
	// comparison lists them). Without it, it is a squash commit with one
	// parent.
	MergeParents bool
}

// deploymentStates are the states GitHub accepts for a deployment status.
func deploymentStates() []string {
	return []string{"error", "failure", "inactive", "in_progress", "queued", "pending", "success"}
}

// commitStates are the states GitHub accepts for a commit status.
func commitStates() []string { return []string{"error", "failure", "pending", "success"} }

type state struct {
	calls      []Call
	down       bool
	faults     []*activeFault
	rate       rateWindow
	requestSeq int

	nextDeployment, nextDeploymentStatus, nextCommitStatus int64

	environments    []*Environment // in the order made
	nextEnvironment int64

	commits []Commit // in the order added
	// mainline is the default branch: commits added by AddCommit (and
	// every other seeding call but AddPull), merge commits of merged pull
	// requests, in the order they landed. Commits that only belong to an
	// unmerged pull request's branch are known, but not on it.
	mainline       []string
	onMain         map[string]int // index in mainline
	branches       map[string]string
	deployments    []*Deployment // in creation order
	depStatuses    map[int64][]*DeploymentStatus
	commitStatuses map[string][]*CommitStatus // by full SHA, in creation order
	pulls          map[int]*PullRequest

	workflows             []*Workflow      // in the order added
	runs                  []*WorkflowRun   // in creation order
	runCancel             map[int64]func() // runs still going
	nextWorkflow, nextRun int64

	issues                   map[int]*Issue
	comments                 []*IssueComment // in creation order
	labels                   map[string]*Label
	nextComment, nextIssueID int64
}

func newState() state {
	// Distinct id ranges make it obvious when one kind of id is used for
	// another.
	return state{
		nextDeployment:       1_000_001,
		nextDeploymentStatus: 2_000_001,
		nextCommitStatus:     3_000_001,
		nextEnvironment:      8_000_001,
		branches:             map[string]string{},
		depStatuses:          map[int64][]*DeploymentStatus{},
		commitStatuses:       map[string][]*CommitStatus{},
		pulls:                map[int]*PullRequest{},
		onMain:               map[string]int{},
		issues:               map[int]*Issue{},
		labels:               map[string]*Label{},
		nextComment:          4_000_001,
		nextIssueID:          5_000_001,
		nextWorkflow:         6_000_001,
		nextRun:              7_000_001,
		runCancel:            map[int64]func(){},
	}
}

// AddCommit makes a commit known, so that refs resolve to it, and puts it
// on the default branch. Commits are chained in the order added (each
// one's parent is the previous one).
func (f *Server) AddCommit(sha, message string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.st.addCommit(sha, message)
}

// AddAuthoredCommit is AddCommit with the commit's author and date.
func (f *Server) AddAuthoredCommit(c Commit) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.st.addFull(c, true)
}

// addCommit makes a commit known; a new one goes on the default branch.
func (s *state) addCommit(sha, message string) Commit {
	return s.addFull(Commit{SHA: sha, Message: message}, true)
}

// addFull makes a commit known, keeping what is known of it; a new one goes
// on the default branch when main is true.
func (s *state) addFull(in Commit, main bool) Commit {
	sha, message := in.SHA, in.Message
	sha = strings.ToLower(sha)
	if !isHex(sha) || len(sha) != 40 {
		panic(fmt.Sprintf("githubfake: AddCommit needs a full 40-hex SHA, got %q", sha))
	}
	for i, c := range s.commits {
		if c.SHA == sha {
			if message != "" {
				s.commits[i].Message = message
			}
			if in.Author != "" {
				s.commits[i].Author = in.Author
			}
			if in.AuthorName != "" {
				s.commits[i].AuthorName = in.AuthorName
			}
			if !in.Date.IsZero() {
				s.commits[i].Date = in.Date
			}
			return s.commits[i]
		}
	}
	c := Commit{SHA: sha, Message: message, Author: in.Author, AuthorName: in.AuthorName, Date: in.Date}
	s.commits = append(s.commits, c)
	if main {
		s.toMain(sha)
	}
	return c
}

// toMain puts a known commit on the default branch, once.
func (s *state) toMain(sha string) {
	if _, ok := s.onMain[sha]; ok {
		return
	}
	s.onMain[sha] = len(s.mainline)
	s.mainline = append(s.mainline, sha)
}

// AddBranch makes a branch (or tag) name resolve to a known commit.
func (f *Server) AddBranch(name, sha string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := f.st.addCommit(sha, "")
	f.st.branches[name] = c.SHA
}

// AddDeployment records a deployment as history; seed oldest first, since
// ids grow in the order deployments are added. CreatedAt defaults to the
// fake's clock, Task to "deploy", Environment to "production", Ref to SHA,
// Creator to the fake's login; ProductionEnvironment is forced true for the
// "production" environment, as GitHub defaults it. The commit becomes known
// if it was not. No status is attached; see AddDeploymentStatus.
func (f *Server) AddDeployment(d Deployment) Deployment {
	f.mu.Lock()
	defer f.mu.Unlock()
	if d.SHA == "" {
		panic("githubfake: AddDeployment needs a SHA")
	}
	c := f.st.addCommit(d.SHA, "")
	d.SHA = c.SHA
	if d.Task == "" {
		d.Task = "deploy"
	}
	if d.Environment == "" {
		d.Environment = "production"
	}
	if d.OriginalEnvironment == "" {
		d.OriginalEnvironment = d.Environment
	}
	if d.Environment == "production" {
		d.ProductionEnvironment = true
	}
	if d.Ref == "" {
		d.Ref = d.SHA
	}
	if d.Creator == "" {
		d.Creator = f.opts.Login
	}
	if d.Payload == nil {
		d.Payload = map[string]any{}
	}
	if d.CreatedAt.IsZero() {
		d.CreatedAt = f.now()
	}
	if d.UpdatedAt.IsZero() {
		d.UpdatedAt = d.CreatedAt
	}
	return *f.st.insertDeployment(d)
}

func (s *state) insertDeployment(d Deployment) *Deployment {
	s.ensureEnvironment(d.Environment, d.CreatedAt)
	d.ID = s.nextDeployment
	s.nextDeployment++
	p := &d
	s.deployments = append(s.deployments, p)
	return p
}

// AddDeploymentStatus appends a status to a deployment's history. State is
// required; CreatedAt defaults to the fake's clock, Environment to the
// deployment's, Creator to the fake's login. Unlike the API it does not
// inactivate earlier deployments. It panics for an unknown deployment.
func (f *Server) AddDeploymentStatus(deploymentID int64, s DeploymentStatus) DeploymentStatus {
	f.mu.Lock()
	defer f.mu.Unlock()
	d := f.st.deployment(deploymentID)
	if d == nil {
		panic(fmt.Sprintf("githubfake: AddDeploymentStatus: no deployment %d", deploymentID))
	}
	if !contains(deploymentStates(), s.State) {
		panic(fmt.Sprintf("githubfake: AddDeploymentStatus: invalid state %q", s.State))
	}
	if s.CreatedAt.IsZero() {
		s.CreatedAt = f.now()
	}
	if s.Environment == "" {
		s.Environment = d.Environment
	}
	if s.Creator == "" {
		s.Creator = f.opts.Login
	}
	return *f.st.insertDeploymentStatus(d, s)
}

func (s *state) insertDeploymentStatus(d *Deployment, ds DeploymentStatus) *DeploymentStatus {
	ds.ID = s.nextDeploymentStatus
	s.nextDeploymentStatus++
	ds.DeploymentID = d.ID
	p := &ds
	s.depStatuses[d.ID] = append(s.depStatuses[d.ID], p)
	if ds.CreatedAt.After(d.UpdatedAt) {
		d.UpdatedAt = ds.CreatedAt
	}
	return p
}

// Job is a job deployment: the deployment GitHub Actions makes when a job
// that names `environment:` starts.
type Job struct {
	f  *Server
	ID int64
}

// StartJob does what GitHub Actions does when a job that names
// `environment:` starts: it creates a deployment in that environment of the
// run's commit with ref = the branch or tag the run is for (not the SHA),
// task "deploy", an empty payload and no description, created on behalf of
// the user who started the run (actor), and gives it the statuses queued
// then in_progress. The job's outcome finishes it (see Job.Finish).
func (f *Server) StartJob(environment, ref, sha, actor string) Job {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := f.st.addCommit(sha, "")
	if _, ok := f.st.branches[ref]; !ok {
		f.st.branches[ref] = c.SHA
	}
	now := f.now()
	d := f.st.insertDeployment(Deployment{
		SHA: c.SHA, Ref: ref, Task: "deploy", Environment: environment, OriginalEnvironment: environment,
		Creator: actor, Payload: map[string]any{}, ProductionEnvironment: environment == "production",
		CreatedAt: now, UpdatedAt: now, Job: true,
	})
	for _, st := range []string{"queued", "in_progress"} {
		f.st.insertDeploymentStatus(d, DeploymentStatus{State: st, Environment: environment, Creator: actor, CreatedAt: now})
	}
	return Job{f: f, ID: d.ID}
}

// Finish ends the job as GitHub does: its deployment gets a success status
// (with auto_inactive, which marks earlier successful deployments of the
// environment inactive) when the job succeeded, and failure when it failed
// or was cancelled; the job's own status, not the build's.
func (j Job) Finish(succeeded bool) {
	j.f.mu.Lock()
	defer j.f.mu.Unlock()
	d := j.f.st.deployment(j.ID)
	now := j.f.now()
	state := "failure"
	if succeeded {
		state = "success"
	}
	j.f.st.insertDeploymentStatus(d, DeploymentStatus{State: state, Environment: d.Environment, Creator: d.Creator, CreatedAt: now})
	if succeeded {
		j.f.st.inactivatePrior(d, d.Creator, now)
	}
}

// SeedDeployment is a shorthand for AddDeployment followed by one
// AddDeploymentStatus per state, in order (the last one is the latest).
func (f *Server) SeedDeployment(environment, sha string, states ...string) Deployment {
	d := f.AddDeployment(Deployment{SHA: sha, Environment: environment})
	for _, st := range states {
		f.AddDeploymentStatus(d.ID, DeploymentStatus{State: st})
	}
	return d
}

// AddCommitStatus records a commit status as history. The commit becomes
// known if it was not. Context defaults to "default".
func (f *Server) AddCommitStatus(s CommitStatus) CommitStatus {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := f.st.addCommit(s.SHA, "")
	s.SHA = c.SHA
	if !contains(commitStates(), s.State) {
		panic(fmt.Sprintf("githubfake: AddCommitStatus: invalid state %q", s.State))
	}
	if s.Context == "" {
		s.Context = "default"
	}
	if s.Creator == "" {
		s.Creator = f.opts.Login
	}
	if s.CreatedAt.IsZero() {
		s.CreatedAt = f.now()
	}
	return *f.st.insertCommitStatus(s)
}

func (s *state) insertCommitStatus(cs CommitStatus) *CommitStatus {
	cs.ID = s.nextCommitStatus
	s.nextCommitStatus++
	p := &cs
	s.commitStatuses[cs.SHA] = append(s.commitStatuses[cs.SHA], p)
	return p
}

// AddPullRequest records a pull request whose head is headSHA, with labels
// and commits (oldest first). Every commit, and the head, become known.
func (f *Server) AddPullRequest(number int, headSHA string, labels []string, commits []Commit) {
	f.AddPull(PullRequest{Number: number, HeadSHA: headSHA, Labels: labels, Commits: commits})
}

// AddPull records a pull request with every field under the test's control.
func (f *Server) AddPull(pr PullRequest) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if pr.Number <= 0 {
		panic("githubfake: AddPull needs a positive number")
	}
	// A pull request's own commits are on its branch, not on the default
	// branch (unless they were there already).
	for i, c := range pr.Commits {
		pr.Commits[i] = f.st.addFull(c, false)
	}
	if pr.HeadSHA == "" && len(pr.Commits) > 0 {
		pr.HeadSHA = pr.Commits[len(pr.Commits)-1].SHA
	}
	if pr.HeadSHA == "" {
		pr.HeadSHA = pr.MergeCommitSHA
	}
	pr.HeadSHA = f.st.addFull(Commit{SHA: pr.HeadSHA}, false).SHA
	if pr.Merged {
		pr.State = "closed"
		if pr.MergeCommitSHA != "" {
			pr.MergeCommitSHA = f.st.addCommit(pr.MergeCommitSHA, "").SHA
			f.st.toMain(pr.MergeCommitSHA)
		} else {
			for _, c := range pr.Commits {
				f.st.toMain(c.SHA)
			}
			f.st.toMain(pr.HeadSHA)
		}
	}
	if pr.Author == "" {
		pr.Author = f.opts.Owner
	}
	for _, l := range pr.Labels {
		f.st.label(l)
	}
	if pr.State == "" {
		pr.State = "open"
	}
	if pr.HeadRef == "" {
		pr.HeadRef = fmt.Sprintf("feature-%d", pr.Number)
	}
	if pr.BaseRef == "" {
		pr.BaseRef = "main"
	}
	if pr.Title == "" {
		pr.Title = fmt.Sprintf("Pull request #%d", pr.Number)
	}
	pr.Labels = append([]string(nil), pr.Labels...)
	pr.Commits = append([]Commit(nil), pr.Commits...)
	f.st.pulls[pr.Number] = &pr
}

// SetPullRequestLabels replaces a pull request's labels.
func (f *Server) SetPullRequestLabels(number int, labels []string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	pr, ok := f.st.pulls[number]
	if !ok {
		panic(fmt.Sprintf("githubfake: SetPullRequestLabels: no pull request #%d", number))
	}
	pr.Labels = append([]string(nil), labels...)
	for _, l := range labels {
		f.st.label(l)
	}
}

// Deployments returns every deployment in creation order (oldest first;
// the API lists newest first).
func (f *Server) Deployments() []Deployment {
	f.mu.Lock()
	defer f.mu.Unlock()
	return values(f.st.deployments)
}

// Deployment returns one deployment.
func (f *Server) Deployment(id int64) (Deployment, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if d := f.st.deployment(id); d != nil {
		return *d, true
	}
	return Deployment{}, false
}

// DeploymentStatuses returns a deployment's statuses in creation order
// (oldest first; the API lists newest first).
func (f *Server) DeploymentStatuses(id int64) []DeploymentStatus {
	f.mu.Lock()
	defer f.mu.Unlock()
	return values(f.st.depStatuses[id])
}

// LatestDeploymentState returns the state of a deployment's latest status,
// or "" when it has none.
func (f *Server) LatestDeploymentState(id int64) string {
	f.mu.Lock()
	defer f.mu.Unlock()
	ss := f.st.depStatuses[id]
	if len(ss) == 0 {
		return ""
	}
	return ss[len(ss)-1].State
}

// CommitStatuses returns the statuses of a commit in creation order. sha may
// be any ref the fake resolves.
func (f *Server) CommitStatuses(sha string) []CommitStatus {
	f.mu.Lock()
	defer f.mu.Unlock()
	full, ok := f.st.resolve(sha)
	if !ok {
		full = strings.ToLower(sha)
	}
	return values(f.st.commitStatuses[full])
}

// values copies what ps point to, in order: a snapshot the caller may keep
// while the fake goes on.
func values[T any](ps []*T) []T {
	out := make([]T, 0, len(ps))
	for _, p := range ps {
		out = append(out, *p)
	}
	return out
}

func (s *state) deployment(id int64) *Deployment {
	return byID(s.deployments, id, func(d *Deployment) int64 { return d.ID })
}

// byID finds the one of list with id, nil when there is none; list holds
// them in creation order, so by id.
func byID[T any](list []*T, id int64, idOf func(*T) int64) *T {
	i := sort.Search(len(list), func(i int) bool { return idOf(list[i]) >= id })
	if i < len(list) && idOf(list[i]) == id {
		return list[i]
	}
	return nil
}

func (s *state) latestDeploymentStatus(id int64) *DeploymentStatus {
	ss := s.depStatuses[id]
	if len(ss) == 0 {
		return nil
	}
	return ss[len(ss)-1]
}

// resolve turns a ref into a known commit's full SHA: a full SHA, a unique
// prefix of at least 7 hex digits, or a branch added with AddBranch
// (optionally spelled "heads/x" or "refs/heads/x").
func (s *state) resolve(ref string) (string, bool) {
	if sha, ok := s.branches[ref]; ok {
		return sha, true
	}
	for _, p := range []string{"refs/heads/", "heads/", "refs/tags/", "tags/"} {
		if name, ok := strings.CutPrefix(ref, p); ok {
			if sha, ok := s.branches[name]; ok {
				return sha, true
			}
		}
	}
	ref = strings.ToLower(ref)
	if len(ref) < 7 || len(ref) > 40 || !isHex(ref) {
		return "", false
	}
	found := ""
	for _, c := range s.commits {
		if strings.HasPrefix(c.SHA, ref) {
			if found != "" && found != c.SHA {
				return "", false // ambiguous
			}
			found = c.SHA
		}
	}
	return found, found != ""
}

func (s *state) commit(sha string) (Commit, int) {
	for i, c := range s.commits {
		if c.SHA == sha {
			return c, i
		}
	}
	return Commit{}, -1
}

func isHex(s string) bool {
	for _, r := range s {
		if (r < '0' || r > '9') && (r < 'a' || r > 'f') && (r < 'A' || r > 'F') {
			return false
		}
	}
	return s != ""
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}
