package report

import (
	"regexp"
	"sort"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/yuin/goldmark"
	"github.com/yuin/goldmark/ast"
	"github.com/yuin/goldmark/extension"
	"github.com/yuin/goldmark/text"
)

// Issue 21's hostile text: a health answer's version and a git author that
// tried to mention two teams, close a <details>, add a heading, open a
// fence that swallows the rest and hide it in an HTML comment; and chat's
// own ways to ping everyone.
const (
	hostileVersion = "<!channel> @octo-org/everyone\n\n</details>\n\n# Hijacked heading\n\n```\n<!-- hidden"
	hostileAuthor  = "Mallory @octo-org/security <!-- x"
)

// hostile is a story whose every piece from outside is hostile.
func hostile(s Story, reason string) Story {
	s.Reason = "3 of 12 probes failed: answered by version " + reason + ", expected 4d8b3f2 | http://shop/health?a=1&b=2"
	s.Blame.Author = Person{Name: hostileAuthor}
	if s.RollbackWatch != nil {
		w := *s.RollbackWatch
		w.Reason = "answered by version " + reason
		s.RollbackWatch = &w
	}
	s.RollbackError = "exit 1: " + reason
	s.NotRolledBack = reason
	return s
}

// outline is a document's structure as GitHub-flavoured Markdown parses
// it: its blocks and inline elements, without their text; and its text,
// where mentions would be found.
func outline(t *testing.T, md string) (shape []string, words string) {
	t.Helper()
	p := goldmark.New(goldmark.WithExtensions(extension.GFM)).Parser()
	src := []byte(md)
	doc := p.Parse(text.NewReader(src))
	var b strings.Builder
	err := ast.Walk(doc, func(n ast.Node, entering bool) (ast.WalkStatus, error) {
		if !entering {
			return ast.WalkContinue, nil
		}
		switch n := n.(type) {
		case *ast.Text:
			b.Write(n.Segment.Value(src))
			b.WriteByte(' ')
			return ast.WalkContinue, nil
		case *ast.String:
			b.Write(n.Value)
			return ast.WalkContinue, nil
		case *ast.CodeSpan, *ast.FencedCodeBlock, *ast.Link, *ast.AutoLink:
			// Code and links mention no one.
			shape = append(shape, n.Kind().String())
			return ast.WalkSkipChildren, nil
		case *ast.Heading:
			shape = append(shape, n.Kind().String()+strings.Repeat("#", n.Level))
		default:
			shape = append(shape, n.Kind().String())
		}
		return ast.WalkContinue, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return shape, b.String()
}

// mentions lists what GitHub would mention in text: @login or @org/team
// after a character that is not a word's.
var mentionRE = regexp.MustCompile(`(?:^|[^\w` + "`" + `])@([A-Za-z0-9][\w-]*(?:/[\w-]+)?)`)

func mentions(words string) []string {
	var out []string
	for _, m := range mentionRE.FindAllStringSubmatch(words, -1) {
		out = append(out, m[1])
	}
	sort.Strings(out)
	return out
}

// Hostile text in every outside piece keeps each document's structure
// (the same blocks and elements as the same story with plain text),
// mentions only the people immune tells, and the chat text makes no Slack
// command; a 70,000-character version keeps each body within GitHub's
// 65,536 characters.
func TestHostileTextKeepsTheStructure(t *testing.T) {
	ss := stories()
	for _, name := range []string{"rolled-back", "rollback-failed", "not-rolled-back", "manual", "push-of-three", "bisect-stopped"} {
		t.Run(name, func(t *testing.T) {
			plain := hostile(ss[name], "v1.2.3")
			plain.Blame.Author = Person{Name: "Mallory"}
			evil := hostile(ss[name], hostileVersion)
			pr := Pull{Number: 12, Author: "monalisa", MergeCommitSHA: newSHA}
			for doc, render := range map[string]func(Story) string{
				"comment":      func(s Story) string { return PullComment(s, pr) },
				"issue":        IssueBody,
				"issue update": IssueUpdate,
			} {
				want, _ := outline(t, render(plain))
				got, words := outline(t, render(evil))
				if strings.Join(got, " ") != strings.Join(want, " ") {
					t.Errorf("%s: the structure changed:\n got %v\nwant %v\n%s", doc, got, want, render(evil))
				}
				for _, m := range mentions(words) {
					if m != "monalisa" && m != "hubot" {
						t.Errorf("%s mentions @%s:\n%s", doc, m, render(evil))
					}
				}
			}
			title := IssueTitle(evil)
			if len(mentions(title)) != 0 || strings.ContainsAny(title, "\n") {
				t.Errorf("issue title %q", title)
			}
			chat := ChatText(evil)
			if strings.ContainsAny(chat, "<>\n") || len(mentions(chat)) > 1 || strings.Contains(chat, "&b=2") {
				t.Errorf("chat text %q", chat)
			}

			long := hostile(ss[name], strings.Repeat("9", 70_000))
			for doc, body := range map[string]string{"comment": PullComment(long, pr), "issue": IssueBody(long), "update": IssueUpdate(long)} {
				if n := utf8.RuneCountInString(body); n > 20_000 {
					t.Errorf("%s with a 70,000-character version: %d characters", doc, n)
				}
			}
			if n := utf8.RuneCountInString(IssueTitle(long)); n > maxTitle {
				t.Errorf("title of %d characters", n)
			}
		})
	}
}

// The job summary keeps its structure with the same hostile text in the
// reason, the notes and the warnings.
func TestHostileTextInTheSummary(t *testing.T) {
	for _, name := range []string{"rolled-back", "rollback-failed", "gate-stopped", "workflow-not-started"} {
		make := func(v string) string {
			r := *runs()[name]
			r.Reason = "answered by version " + v
			r.Notes = append(r.Notes, "the webhook heard: "+v)
			r.Warnings = append(r.Warnings, "GitHub could not comment: "+v)
			if r.Rollback != nil {
				step := *r.Rollback
				step.Error = v
				r.Rollback = &step
			}
			if r.Deploy != nil && r.Deploy.Error != "" {
				step := *r.Deploy
				step.Error = v // what GitHub or the hook answered
				r.Deploy = &step
			}
			return Summary(&r)
		}
		want, _ := outline(t, make("v1.2.3"))
		got, words := outline(t, make(hostileVersion))
		if strings.Join(got, " ") != strings.Join(want, " ") {
			t.Errorf("%s: the structure changed:\n got %v\nwant %v\n%s", name, got, want, make(hostileVersion))
		}
		if m := mentions(words); len(m) > 0 {
			t.Errorf("%s: mentions %v", name, m)
		}
	}
}

// Issue 22: the chat text is escaped as Slack documents: a health URL
// with & and a reason with <!channel> are shown, not obeyed.
func TestChatTextEscapedAsSlackDocuments(t *testing.T) {
	s := stories()["rolling-back"]
	s.Reason = "http://shop.example.com/health?a=1&b=2 answered <!channel> <@U024BE7LH> @here"
	s.Repository, s.Environment = "octo-org/shop", "prod & <eu>"
	got := ChatText(s)
	want := "❌ octo-org/shop: `4d8b3f2` by @monalisa (#12) regressed on prod &amp; &lt;eu&gt;: " +
		"http://shop.example.com/health?a=1&amp;b=2 answered &lt;!channel&gt; &lt;@\u200dU024BE7LH&gt; @\u200dhere. Run: " + runURL
	if got != want {
		t.Errorf("ChatText\n got %q\nwant %q", got, want)
	}
}
