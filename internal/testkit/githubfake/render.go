package githubfake

import (
	"bytes"
	"crypto/sha1"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"
)

// templateNames are the documented example resources in testdata/github.
func templateNames() []string {
	return []string{
		"user", "repository", "deployment", "deployment_status", "status",
		"combined_status", "commit", "pull_request", "pull_request_simple", "label",
		"issue", "issue_comment", "comparison", "environment",
		"workflow", "workflow_run", "workflow_dispatch_response",
	}
}

type templates struct {
	raw map[string][]byte
}

func loadTemplates(dir string) (*templates, error) {
	if dir == "" {
		d, err := findTemplateDir()
		if err != nil {
			return nil, err
		}
		dir = d
	}
	t := &templates{raw: map[string][]byte{}}
	for _, name := range templateNames() {
		b, err := os.ReadFile(filepath.Join(dir, name+".json"))
		if err != nil {
			return nil, fmt.Errorf("load template %s: %w", name, err)
		}
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			return nil, fmt.Errorf("load template %s: %w", name, err)
		}
		t.raw[name] = b
	}
	return t, nil
}

// findTemplateDir looks for testdata/github in the module, walking up from
// the working directory (tests run in their package directory) and then
// from this source file.
func findTemplateDir() (string, error) {
	var starts []string
	if wd, err := os.Getwd(); err == nil {
		starts = append(starts, wd)
	}
	if _, file, _, ok := runtime.Caller(0); ok {
		starts = append(starts, filepath.Dir(file))
	}
	for _, dir := range starts {
		for {
			cand := filepath.Join(dir, "testdata", "github")
			if _, err := os.Stat(filepath.Join(cand, "deployment.json")); err == nil {
				return cand, nil
			}
			if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
				break // module root reached
			}
			parent := filepath.Dir(dir)
			if parent == dir {
				break
			}
			dir = parent
		}
	}
	return "", errors.New("cannot find testdata/github with the JSON templates; set Options.TemplateDir")
}

// get returns a fresh copy of a template.
func (t *templates) get(name string) map[string]any {
	var m map[string]any
	dec := json.NewDecoder(bytes.NewReader(t.raw[name]))
	dec.UseNumber()
	if err := dec.Decode(&m); err != nil {
		panic("githubfake: template " + name + ": " + err.Error())
	}
	return m
}

// urls of the fake, used to rewrite the templates' api.github.com links.
func (f *Server) apiRoot() string  { return f.srv.URL + f.opts.PathPrefix }
func (f *Server) webRoot() string  { return f.srv.URL }
func (f *Server) repoAPI() string  { return f.apiRoot() + "/repos/" + f.opts.Owner + "/" + f.opts.Repo }
func (f *Server) repoWeb() string  { return f.webRoot() + "/" + f.opts.Owner + "/" + f.opts.Repo }
func (f *Server) fullName() string { return f.opts.Owner + "/" + f.opts.Repo }

// rewrite points every documented example link at the fake.
func (f *Server) rewrite(v any) any {
	switch x := v.(type) {
	case map[string]any:
		for k, e := range x {
			x[k] = f.rewrite(e)
		}
		return x
	case []any:
		for i, e := range x {
			x[i] = f.rewrite(e)
		}
		return x
	case string:
		for _, r := range [][2]string{
			{"https://api.github.com/repos/octocat/Hello-World", f.repoAPI()},
			{"https://api.github.com/repos/octocat/example", f.repoAPI()},
			{"https://api.github.com/repos/octo-org/octo-repo", f.repoAPI()},
			{"https://api.github.com", f.apiRoot()},
			{"https://github.com/octocat/Hello-World", f.repoWeb()},
			{"https://github.com/octocat/example", f.repoWeb()},
			{"https://github.com/octo-org/octo-repo", f.repoWeb()},
			{"https://github.com", f.webRoot()},
		} {
			if strings.HasPrefix(x, r[0]) {
				return r[1] + strings.TrimPrefix(x, r[0])
			}
		}
		return x
	}
	return v
}

func (f *Server) tmpl(name string) map[string]any {
	m, _ := f.rewrite(f.tpl.get(name)).(map[string]any)
	return m
}

// nodeID builds a global node id the way GitHub's legacy ids look, e.g.
// "MDEwOkRlcGxveW1lbnQx" for Deployment 1.
func nodeID(typ string, id any) string {
	return base64.StdEncoding.EncodeToString([]byte(fmt.Sprintf("0%d:%s%v", len(typ), typ, id)))
}

func ts(t time.Time) string { return t.UTC().Format(time.RFC3339) }

func nullable(s string) any {
	if s == "" {
		return nil
	}
	return s
}

func hash32(s string) uint32 {
	h := fnv.New32a()
	_, _ = h.Write([]byte(s))
	return h.Sum32()
}

func userID(login string) int64 {
	if login == "github-actions[bot]" {
		return 41898282 // the real id of the bot behind GITHUB_TOKEN
	}
	return int64(hash32(login)%90_000_000) + 10_000_000
}

func (f *Server) user(login string, typ string) map[string]any {
	u := f.tpl.get("user")
	esc := url.PathEscape(login)
	for k, v := range u {
		s, ok := v.(string)
		if !ok {
			continue
		}
		s = strings.Replace(s, "https://api.github.com/users/octocat", f.apiRoot()+"/users/"+esc, 1)
		s = strings.Replace(s, "https://github.com/octocat", f.webRoot()+"/"+esc, 1)
		u[k] = s
	}
	u = f.rewrite(u).(map[string]any)
	id := userID(login)
	u["login"] = login
	u["id"] = id
	if typ == "" {
		typ = "User"
		if strings.HasSuffix(login, "[bot]") {
			typ = "Bot"
		}
	}
	u["type"] = typ
	u["node_id"] = nodeID(typ, id)
	return u
}

func (f *Server) repository() map[string]any {
	r := f.tmpl("repository")
	r["name"] = f.opts.Repo
	r["full_name"] = f.fullName()
	r["owner"] = f.user(f.opts.Owner, "Organization")
	id := int64(hash32(f.fullName())%900_000_000) + 100_000_000
	r["id"] = id
	r["node_id"] = nodeID("Repository", id)
	r["description"] = nil
	return r
}

func (f *Server) renderDeployment(d *Deployment) map[string]any {
	m := f.tmpl("deployment")
	u := f.repoAPI() + "/deployments/" + strconv.FormatInt(d.ID, 10)
	m["url"] = u
	m["id"] = d.ID
	m["node_id"] = nodeID("Deployment", d.ID)
	m["sha"] = d.SHA
	m["ref"] = d.Ref
	m["task"] = d.Task
	m["payload"] = d.Payload
	m["original_environment"] = d.OriginalEnvironment
	m["environment"] = d.Environment
	m["description"] = d.Description
	if d.Job {
		m["description"] = nil // GitHub sets none on the deployments it makes for jobs
	}
	m["creator"] = f.user(d.Creator, "")
	m["created_at"] = ts(d.CreatedAt)
	m["updated_at"] = ts(d.UpdatedAt)
	m["statuses_url"] = u + "/statuses"
	m["repository_url"] = f.repoAPI()
	m["transient_environment"] = d.TransientEnvironment
	m["production_environment"] = d.ProductionEnvironment
	return m
}

func (f *Server) renderDeploymentStatus(s *DeploymentStatus) map[string]any {
	m := f.tmpl("deployment_status")
	du := f.repoAPI() + "/deployments/" + strconv.FormatInt(s.DeploymentID, 10)
	m["url"] = du + "/statuses/" + strconv.FormatInt(s.ID, 10)
	m["id"] = s.ID
	m["node_id"] = nodeID("DeploymentStatus", s.ID)
	m["state"] = s.State
	m["creator"] = f.user(s.Creator, "")
	m["description"] = s.Description
	m["environment"] = s.Environment
	m["target_url"] = s.LogURL
	m["log_url"] = s.LogURL
	m["environment_url"] = s.EnvironmentURL
	m["created_at"] = ts(s.CreatedAt)
	m["updated_at"] = ts(s.CreatedAt)
	m["deployment_url"] = du
	m["repository_url"] = f.repoAPI()
	return m
}

func (f *Server) renderCommitStatus(s *CommitStatus, withCreator bool) map[string]any {
	m := f.tmpl("status")
	creator := f.user(s.Creator, "")
	m["url"] = f.repoAPI() + "/statuses/" + s.SHA
	m["avatar_url"] = creator["avatar_url"]
	m["id"] = s.ID
	m["node_id"] = nodeID("Status", s.ID)
	m["state"] = s.State
	m["description"] = nullable(s.Description)
	m["target_url"] = nullable(s.TargetURL)
	m["context"] = s.Context
	m["created_at"] = ts(s.CreatedAt)
	m["updated_at"] = ts(s.CreatedAt)
	if withCreator {
		m["creator"] = creator
	} else {
		delete(m, "creator")
	}
	return m
}

// treeSHA derives a stable, fake tree id for a commit.
func treeSHA(sha string) string {
	h := sha1.Sum([]byte("tree " + sha))
	return hex.EncodeToString(h[:])
}

func (f *Server) renderCommit(c Commit, parent string, full bool) map[string]any {
	var ps []string
	if parent != "" {
		ps = append(ps, parent)
	}
	return f.renderCommitOf(c, ps, full)
}

// renderCommitOf renders a commit with its parents, the first one first.
func (f *Server) renderCommitOf(c Commit, parentSHAs []string, full bool) map[string]any {
	const exampleSHA = "6dcb09b5b57875f334f61aebed695e2e4193db5e"
	m := f.tmpl("commit")
	var fix func(v any) any
	fix = func(v any) any {
		switch x := v.(type) {
		case map[string]any:
			for k, e := range x {
				x[k] = fix(e)
			}
		case []any:
			for i, e := range x {
				x[i] = fix(e)
			}
		case string:
			return strings.ReplaceAll(x, exampleSHA, c.SHA)
		}
		return v
	}
	m = fix(m).(map[string]any)
	m["sha"] = c.SHA
	m["node_id"] = nodeID("Commit", c.SHA)
	if inner, ok := m["commit"].(map[string]any); ok {
		inner["message"] = c.Message
		if tree, ok := inner["tree"].(map[string]any); ok {
			t := treeSHA(c.SHA)
			tree["sha"] = t
			tree["url"] = f.repoAPI() + "/git/trees/" + t
		}
	}
	parents := []any{}
	for _, parent := range parentSHAs {
		parents = append(parents, map[string]any{
			"url":      f.repoAPI() + "/commits/" + parent,
			"sha":      parent,
			"html_url": f.repoWeb() + "/commit/" + parent,
		})
	}
	m["parents"] = parents
	if c.Author != "" || c.AuthorName != "" {
		name := c.AuthorName
		if name == "" {
			name = c.Author
		}
		var author any // a git author GitHub cannot link to an account
		email := strings.ReplaceAll(strings.ToLower(name), " ", ".") + "@example.com"
		if c.Author != "" {
			author = f.user(c.Author, "")
			email = c.Author + "@users.noreply.github.com"
		}
		m["author"], m["committer"] = author, author
		if inner, ok := m["commit"].(map[string]any); ok {
			for _, k := range []string{"author", "committer"} {
				if who, ok := inner[k].(map[string]any); ok {
					who["name"], who["email"] = name, email
				}
			}
		}
	}
	if !c.Date.IsZero() {
		if inner, ok := m["commit"].(map[string]any); ok {
			for _, k := range []string{"author", "committer"} {
				if who, ok := inner[k].(map[string]any); ok {
					who["date"] = ts(c.Date)
				}
			}
		}
	}
	if !full {
		delete(m, "stats")
		delete(m, "files")
	}
	return m
}

func labelID(name string) int64 { return int64(hash32("label:"+name)%900_000_000) + 100_000_000 }

func (f *Server) renderLabel(name string) map[string]any {
	m := f.tmpl("label")
	id := labelID(name)
	m["id"] = id
	m["node_id"] = nodeID("Label", id)
	m["url"] = f.repoAPI() + "/labels/" + url.PathEscape(name)
	m["name"] = name
	m["description"] = nil
	m["color"] = fmt.Sprintf("%06x", hash32("color:"+name)&0xFFFFFF)
	if l := f.st.findLabel(name); l != nil {
		m["name"], m["color"] = l.Name, l.Color
		m["description"] = nullable(l.Description)
	}
	m["default"] = false
	return m
}

// renderPull renders a pull request in full, as "get a pull request"
// answers it.
func (f *Server) renderPull(pr *PullRequest, baseSHA string) map[string]any {
	m := f.renderPullSimple(pr, baseSHA)
	full := f.tmpl("pull_request")
	for k, v := range m {
		full[k] = v
	}
	full["merged"] = pr.Merged
	full["commits"] = len(pr.Commits)
	return full
}

// renderPullSimple renders a pull request in GitHub's simple shape, as the
// lists answer it ("list pull requests associated with a commit"): no
// merged, mergeable, commits or other counts; merged_at tells a merged one.
func (f *Server) renderPullSimple(pr *PullRequest, baseSHA string) map[string]any {
	m := f.tmpl("pull_request_simple")
	n := strconv.Itoa(pr.Number)
	api, web := f.repoAPI(), f.repoWeb()
	id := int64(hash32("pull:"+n)%900_000_000) + 100_000_000
	m["url"] = api + "/pulls/" + n
	m["id"] = id
	m["node_id"] = nodeID("PullRequest", id)
	m["html_url"] = web + "/pull/" + n
	m["diff_url"] = web + "/pull/" + n + ".diff"
	m["patch_url"] = web + "/pull/" + n + ".patch"
	m["issue_url"] = api + "/issues/" + n
	m["commits_url"] = api + "/pulls/" + n + "/commits"
	m["review_comments_url"] = api + "/pulls/" + n + "/comments"
	m["comments_url"] = api + "/issues/" + n + "/comments"
	m["statuses_url"] = api + "/statuses/" + pr.HeadSHA
	m["number"] = pr.Number
	m["state"] = pr.State
	m["title"] = pr.Title
	m["body"] = nil
	owner := f.user(f.opts.Owner, "Organization")
	m["user"] = owner
	if !strings.EqualFold(pr.Author, f.opts.Owner) {
		m["user"] = f.user(pr.Author, "")
	}
	labels := []any{}
	for _, l := range pr.Labels {
		labels = append(labels, f.renderLabel(l))
	}
	m["labels"] = labels
	m["merge_commit_sha"] = nullable(pr.MergeCommitSHA)
	repo := f.repository()
	m["head"] = map[string]any{
		"label": f.opts.Owner + ":" + pr.HeadRef, "ref": pr.HeadRef, "sha": pr.HeadSHA,
		"user": owner, "repo": repo,
	}
	m["base"] = map[string]any{
		"label": f.opts.Owner + ":" + pr.BaseRef, "ref": pr.BaseRef, "sha": baseSHA,
		"user": owner, "repo": repo,
	}
	m["_links"] = map[string]any{
		"self":            map[string]any{"href": api + "/pulls/" + n},
		"html":            map[string]any{"href": web + "/pull/" + n},
		"issue":           map[string]any{"href": api + "/issues/" + n},
		"comments":        map[string]any{"href": api + "/issues/" + n + "/comments"},
		"review_comments": map[string]any{"href": api + "/pulls/" + n + "/comments"},
		"review_comment":  map[string]any{"href": api + "/pulls/comments{/number}"},
		"commits":         map[string]any{"href": api + "/pulls/" + n + "/commits"},
		"statuses":        map[string]any{"href": api + "/statuses/" + pr.HeadSHA},
	}
	if pr.State == "closed" {
		m["closed_at"] = m["updated_at"]
		if pr.Merged {
			m["merged_at"] = m["updated_at"]
		}
	}
	return m
}
