package e2e

// What people read when the text immune passes on is hostile: a health
// answer's version and a git author's name that try to mention teams,
// break out of a table, open a fence, close a <details>, hide the rest in
// an HTML comment, ping a chat channel, or are 70,000 characters long.

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"

	"github.com/yuin/goldmark"
	"github.com/yuin/goldmark/ast"
	"github.com/yuin/goldmark/extension"
	east "github.com/yuin/goldmark/extension/ast"
	"github.com/yuin/goldmark/text"

	"github.com/immune-cd/immune/internal/testkit/githubfake"
	"github.com/immune-cd/immune/internal/testkit/testservice"
)

// Issue 21's reproduction.
const (
	hostileVersion = "<!channel> @octo-org/everyone\n\n</details>\n\n# Hijacked heading\n\n```\n<!-- hidden"
	hostileAuthor  = "Mallory @octo-org/security <!-- x"
)

// shape is what GitHub's Markdown makes of a document: its headings, HTML
// (blocks and inline), fenced blocks' info strings, table rows' cell
// counts, the text of its last block, and its text outside code and links,
// where mentions are found.
type shape struct {
	headings, html, fences []string
	cells                  []int
	last, words            string
}

func outline(t *testing.T, md string) shape {
	t.Helper()
	src := []byte(md)
	doc := goldmark.New(goldmark.WithExtensions(extension.GFM)).Parser().Parse(text.NewReader(src))
	var s shape
	plain := func(n ast.Node) string {
		var b strings.Builder
		_ = ast.Walk(n, func(c ast.Node, entering bool) (ast.WalkStatus, error) {
			if t, ok := c.(*ast.Text); ok && entering {
				b.Write(t.Segment.Value(src))
			}
			return ast.WalkContinue, nil
		})
		return b.String()
	}
	var words strings.Builder
	err := ast.Walk(doc, func(n ast.Node, entering bool) (ast.WalkStatus, error) {
		if !entering {
			return ast.WalkContinue, nil
		}
		switch n := n.(type) {
		case *ast.Heading:
			s.headings = append(s.headings, strings.Repeat("#", n.Level)+" "+plain(n))
		case *ast.HTMLBlock:
			var b strings.Builder
			for i := 0; i < n.Lines().Len(); i++ {
				seg := n.Lines().At(i)
				b.Write(seg.Value(src))
			}
			s.html = append(s.html, strings.TrimSpace(b.String()))
		case *ast.RawHTML:
			var b strings.Builder
			for i := 0; i < n.Segments.Len(); i++ {
				seg := n.Segments.At(i)
				b.Write(seg.Value(src))
			}
			s.html = append(s.html, b.String())
		case *ast.FencedCodeBlock:
			s.fences = append(s.fences, string(n.Language(src)))
			return ast.WalkSkipChildren, nil
		case *ast.CodeSpan, *ast.Link, *ast.AutoLink:
			return ast.WalkSkipChildren, nil
		case *east.TableRow, *east.TableHeader:
			s.cells = append(s.cells, n.ChildCount())
		case *ast.Text:
			words.Write(n.Segment.Value(src))
			words.WriteByte(' ')
		}
		return ast.WalkContinue, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	s.words = words.String()
	if last := doc.LastChild(); last != nil {
		s.last = plain(last)
	}
	return s
}

// mentionRE finds what GitHub mentions: @login or @org/team after a
// character that is not a word's.
var mentionRE = regexp.MustCompile(`(?:^|[^\w` + "`" + `])@([A-Za-z0-9][\w-]*(?:/[\w-]+)?)`)

func mentioned(words string) []string {
	var out []string
	for _, m := range mentionRE.FindAllStringSubmatch(words, -1) {
		out = append(out, m[1])
	}
	return out
}

// hostileService answers as the scripted service, except that the new
// build's health answers carry version.
func hostileService(t *testing.T, version string) (*testservice.Service, string) {
	svc := testservice.New(nil, shaGood)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/health" && svc.Current() == shaNew {
			w.Header().Set("Content-Type", "application/json")
			_ = json.NewEncoder(w).Encode(map[string]string{"status": "ok", "version": version})
			return
		}
		svc.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	return svc, srv.URL
}

// The injected version and author of issue 21 produce a tracking issue, a
// pull-request comment, a job summary and chat messages that mention no
// one, make no Slack command and keep their structure; a version of
// 70,000 characters still opens the tracking issue (GitHub refuses a body
// past 65,536 characters, and so does the fake).
func TestHostileTextTellsNoOne(t *testing.T) {
	t.Parallel()
	for name, version := range map[string]string{"hostile": hostileVersion, "70,000 characters": hostileVersion + strings.Repeat("v", 70_000)} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			f := githubfake.Start(t, githubfake.Options{Owner: "octo-org", Repo: "shop", Token: token})
			f.AddCommit(shaOlder, "Checkout: show the tax line")
			f.AddCommit(shaGood, "Search: faster facets")
			f.AddPull(githubfake.PullRequest{Number: 11, Title: "Search: cache facets", Author: "hubot", Merged: true, MergeCommitSHA: shaMerge11,
				Commits: []githubfake.Commit{{SHA: "a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0a0", Message: "cache facets"}}})
			f.AddAuthoredCommit(githubfake.Commit{SHA: shaNew, Message: "Checkout: cache the tax table", AuthorName: hostileAuthor})
			seedOurs(f, "production", "deploy", shaGood, nil, "in_progress", "success")
			h := newHook(t)
			svc, url := hostileService(t, version)

			res := newActionRun(t, "push", fast(url, h.inputs(map[string]string{"expect-version": "json:version"}))).useGitHub(f).exec()
			if res.code != 1 || res.outputs["verdict"] != "rolled-back" || svc.Current() != shaGood {
				t.Fatalf("exit %d, verdict %s, service runs %s\n%s", res.code, res.outputs["verdict"], svc.Current(), res.log)
			}
			issues := f.Issues()
			if len(issues) != 1 {
				t.Fatalf("%d tracking issues, want 1\n%s", len(issues), res.log)
			}
			is := issues[0]
			if m := mentioned(is.Title); len(m) > 0 || strings.ContainsAny(is.Title, "\n") {
				t.Errorf("issue title %q mentions %v", is.Title, m)
			}
			body := outline(t, is.Body)
			if len(body.html) == 0 || !strings.HasPrefix(body.html[0], "<!-- immune:stopped") {
				t.Errorf("issue HTML: %q", body.html)
			}
			if !strings.HasPrefix(body.last, "immune keeps this issue up to date") {
				t.Errorf("the issue's last block is %q: something swallowed the end", body.last)
			}
			comments := ours(f, 11)
			if len(comments) != 1 {
				t.Fatalf("%d comments on #11, want 1\n%s", len(comments), res.log)
			}
			comment := outline(t, comments[0].Body)
			if len(comment.headings) == 0 || !strings.HasPrefix(comment.headings[0], "### ⏪ 4d8b3f2 regressed on production") {
				t.Errorf("comment headings: %q", comment.headings)
			}
			if len(comment.html) == 0 || !strings.HasPrefix(comment.html[0], "<!-- immune:regression") {
				t.Errorf("comment HTML: %q", comment.html)
			}
			if !strings.HasPrefix(comment.last, "Posted by immune") {
				t.Errorf("the comment's last block is %q: something swallowed the end", comment.last)
			}
			summary := outline(t, res.summary)
			for doc, s := range map[string]shape{"issue": body, "comment": comment, "summary": summary} {
				// immune's own layout may change; what the hostile text
				// tried may not show: a heading of its own, an HTML
				// comment or a tag left open or closed.
				for _, h := range s.headings {
					if strings.Contains(h, "Hijacked") || strings.HasPrefix(h, "# ") {
						t.Errorf("the %s has the heading %q", doc, h)
					}
				}
				tags := map[string]int{}
				for i, h := range s.html {
					if strings.HasPrefix(h, "<!--") && i > 0 || strings.HasPrefix(h, "<!--") && doc == "summary" {
						t.Errorf("the %s has the HTML comment %q", doc, h)
					}
					if m := regexp.MustCompile(`^<(/?)([a-z]+)`).FindStringSubmatch(h); m != nil {
						tags[m[2]] += map[string]int{"": 1, "/": -1}[m[1]]
					}
				}
				for tag, open := range tags {
					if open != 0 {
						t.Errorf("the %s leaves <%s> unbalanced (%+d): %q", doc, tag, open, s.html)
					}
				}
				for _, m := range mentioned(s.words) {
					if m != "hubot" {
						t.Errorf("the %s mentions @%s", doc, m)
					}
				}
				for _, fence := range s.fences {
					if fence != "mermaid" {
						t.Errorf("the %s has a %q fence", doc, fence)
					}
				}
				for _, n := range s.cells {
					if n != 2 && doc != "summary" {
						t.Errorf("the %s has a table row of %d cells", doc, n)
					}
				}
			}
			if got := h.kinds(); got != "regressed → rolled-back" || h.bad != 0 {
				t.Errorf("webhook heard %q", got)
			}
			h.mu.Lock()
			for _, e := range h.events {
				chat := e["text"].(string)
				if strings.ContainsAny(chat, "<>\n") || len(mentioned(chat)) > 0 || len(chat) > 4000 {
					t.Errorf("chat text %q", chat)
				}
				if e["event"] == "regressed" && !strings.Contains(chat, "&lt;!channel&gt;") {
					t.Errorf("the regressed chat text lost what the version said: %q", chat)
				}
			}
			h.mu.Unlock()
			t.Logf("issue #%d: %s\n%s\ncomment:\n%s", is.Number, is.Title, is.Body, comments[0].Body)
		})
	}
}
