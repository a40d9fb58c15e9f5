package escape

import (
	"bytes"
	"html"
	"regexp"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/yuin/goldmark"
	"github.com/yuin/goldmark/extension"
)

// The text of issue 21: a health answer's version and a git author that
// tried to mention two teams, close a <details>, add a heading, open a
// fence and hide the rest in an HTML comment.
const (
	hostileVersion = "<!channel> @octo-org/everyone\n\n</details>\n\n# Hijacked heading\n\n```\n<!-- hidden"
	hostileAuthor  = "Mallory @octo-org/security <!-- x"
)

func TestMarkdown(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		in    string
		limit int
		want  string
	}{
		{"plain text, 5% of 12", 0, "plain text, 5% of 12"},
		{hostileVersion, 0, "&lt;!channel&gt; @\u200docto-org/everyone  &lt;/details&gt;  # Hijacked heading  \\`\\`\\` &lt;!-- hidden"},
		{hostileAuthor, 0, "Mallory @\u200docto-org/security &lt;!-- x"},
		{"# heading", 0, "\\# heading"},
		{"- item", 0, "\\- item"},
		{"12. item", 0, "12\\. item"},
		{"1) item", 0, "1\\) item"},
		{"12 items", 0, "12 items"},
		{"?a=1&b=2 &amp; &#64;x &#x40; &copy;", 0, "?a=1&b=2 &amp;amp; &amp;#\u200d64;x &amp;#x40; &amp;copy;"},
		{"a | b", 0, "a \\| b"},
		{"*em* _em_ ~del~ [link](http://x) \\", 0, "\\*em\\* \\_em\\_ \\~del\\~ \\[link\\](http://x) \\\\"},
		{"$x^2$ costs $5", 0, "&#36;x^2&#36; costs &#36;5"},
		{"fixes #12 and GH-13, see octo-org/shop#14", 0, "fixes #\u200d12 and GH\u200d-13, see octo-org/shop#\u200d14"},
		{"mail a@b.c", 0, "mail a@\u200db.c"},
		{"ends with ##", 0, "ends with \\#\\#"},
		{"\u202eevil\u202c", 0, "evil"},
		{"  spaced\tout\r\n", 0, "spaced out"},
		{"0123456789", 5, "0123…"},
		{strings.Repeat("x", 70_000), 100, strings.Repeat("x", 99) + "…"},
	} {
		if got := Markdown(tt.in, tt.limit); got != tt.want {
			t.Errorf("Markdown(%q, %d)\n got %q\nwant %q", tt.in, tt.limit, got, tt.want)
		}
	}
}

func TestCode(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct{ in, want string }{
		{"immune:fix", "`immune:fix`"},
		{"a`b", "``a`b``"},
		{"`a``", "``` `a`` ```"},
		{"x|y", "x\\|y"},
		{"@octo-org/team\n<b>", "`@octo-org/team <b>`"},
		{"", ""},
	} {
		if got := Code(tt.in, 0); got != tt.want {
			t.Errorf("Code(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestSlack(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct {
		in    string
		limit int
		want  string
	}{
		{"http://shop/health?a=1&b=2 answered 500", 0, "http://shop/health?a=1&amp;b=2 answered 500"},
		{"<!channel> <@U123> <http://evil|click> @here", 0, "&lt;!channel&gt; &lt;@\u200dU123&gt; &lt;http://evil|click&gt; @\u200dhere"},
		{hostileVersion, 20, "&lt;!channel&gt; @\u200docto-or…"},
	} {
		if got := Slack(tt.in, tt.limit); got != tt.want {
			t.Errorf("Slack(%q, %d)\n got %q\nwant %q", tt.in, tt.limit, got, tt.want)
		}
	}
}

func TestTitleAndLogin(t *testing.T) {
	t.Parallel()
	if got := Title("stopped: 4d8b3f2 by "+hostileAuthor+"\n# x", 60); got != "stopped: 4d8b3f2 by Mallory @\u200docto-org/security <!-- x # x" {
		t.Errorf("Title = %q", got)
	}
	for login, ok := range map[string]bool{"monalisa": true, "hubot": true, "github-actions[bot]": true, "a-b-c": true,
		"octo-org/team": false, "-x": false, "x--y": false, "x-": false, "": false, "a b": false, strings.Repeat("a", 40): false} {
		if IsLogin(login) != ok {
			t.Errorf("IsLogin(%q) = %v", login, !ok)
		}
	}
	if got := LinkURL("https://github.com/o/r/actions/runs/1?a=(b)"); got != "https://github.com/o/r/actions/runs/1?a=%28b%29" {
		t.Errorf("LinkURL = %q", got)
	}
	for _, bad := range []string{"javascript:alert(1)", "//evil", "data:text/html,x", ""} {
		if got := LinkURL(bad); got != "" {
			t.Errorf("LinkURL(%q) = %q, want no link", bad, got)
		}
	}
}

// gfm renders Markdown as GitHub does in kind: CommonMark with GitHub's
// tables, strikethrough, task lists and autolinks.
var gfm = goldmark.New(goldmark.WithExtensions(extension.GFM))

func render(t *testing.T, md string) string {
	var b bytes.Buffer
	if err := gfm.Convert([]byte(md), &b); err != nil {
		t.Fatal(err)
	}
	return b.String()
}

// inline is rendered inline text: characters and entities, and the links
// GitHub makes of bare URLs, but no other element.
var (
	inline = regexp.MustCompile(`^(?:[^<]|<a href="[^"<>]*">[^<]*</a>)*$`)
	// What would mention, or reference an issue: an @ before a name, a #
	// before a number, GH- before a number.
	mention = regexp.MustCompile(`@[A-Za-z0-9]|#[0-9]|(?i:gh-[0-9])`)
)

// links are the links GitHub makes of bare URLs, with their text.
var links = regexp.MustCompile(`<a href="[^"<>]*">([^<]*)</a>`)

// plain is the text of rendered inline HTML. A bare URL is linked from the
// Markdown source as written, entities and all (GitHub's autolinks are
// made so too), so the text of a link shows what an entity in a URL
// stands for only once more unescaped: a blemish in a rare URL, not a
// change of structure.
func plain(h string) string {
	h = links.ReplaceAllStringFunc(h, func(a string) string {
		return html.UnescapeString(links.FindStringSubmatch(a)[1])
	})
	return strings.ReplaceAll(html.UnescapeString(h), ZWJ, "")
}

// outsideLinks is rendered inline HTML without its links, as text: what
// GitHub looks for mentions and references in.
func outsideLinks(h string) string {
	return html.UnescapeString(links.ReplaceAllString(h, " "))
}

// checkRendered: in every place immune puts outside text (a paragraph, a
// line of its own, a table cell, a list item, a blockquote, a heading),
// Markdown's output renders as that one element, holding only text that
// reads as the input does, on one line, mentioning no one.
func checkRendered(t *testing.T, s string, limit int) {
	out := Markdown(s, limit)
	if strings.ContainsAny(out, "\r\n") {
		t.Fatalf("Markdown(%q) spans lines: %q", s, out)
	}
	want := strings.ReplaceAll(Line(s, limit), ZWJ, "")
	if limit > 0 && utf8.RuneCountInString(Line(s, limit)) > limit {
		t.Fatalf("Markdown(%q, %d) keeps more than %d characters", s, limit, limit)
	}
	for _, c := range []struct {
		name         string
		md           string
		open, close_ string
		around       [2]string
	}{
		{"paragraph", "Why: " + out + " (see the run)", "<p>", "</p>\n", [2]string{"Why: ", " (see the run)"}},
		{"line", out, "<p>", "</p>\n", [2]string{}},
		{"table cell", "| | |\n|---|---|\n| Why | " + out + " |\n",
			"<table>\n<thead>\n<tr>\n<th></th>\n<th></th>\n</tr>\n</thead>\n<tbody>\n<tr>\n<td>Why</td>\n<td>", "</td>\n</tr>\n</tbody>\n</table>\n", [2]string{}},
		{"list item", "- " + out, "<ul>\n<li>", "</li>\n</ul>\n", [2]string{}},
		{"blockquote", "> " + out, "<blockquote>\n<p>", "</p>\n</blockquote>\n", [2]string{}},
		{"heading", "### ⏪ " + out, "<h3>⏪ ", "</h3>\n", [2]string{}},
	} {
		got := render(t, c.md)
		if want == "" && (c.name == "line" || c.name == "list item" || c.name == "blockquote" || c.name == "heading") {
			continue // nothing to show; the element may be empty or absent
		}
		if want == "" && c.name == "table cell" {
			c.close_ = "<td></td>\n</tr>\n</tbody>\n</table>\n"
			c.open = strings.TrimSuffix(c.open, "<td>")
		}
		if !strings.HasPrefix(got, c.open) || !strings.HasSuffix(got, c.close_) || len(got) < len(c.open)+len(c.close_) {
			t.Fatalf("%s: Markdown(%q) = %q renders as %q, not one %s", c.name, s, out, got, c.name)
		}
		body := got[len(c.open) : len(got)-len(c.close_)]
		if !inline.MatchString(body) {
			t.Fatalf("%s: Markdown(%q) = %q renders elements: %q", c.name, s, out, body)
		}
		text := plain(body)
		if m := mention.FindString(outsideLinks(body)); m != "" {
			t.Fatalf("%s: Markdown(%q) = %q still mentions or references (%q)", c.name, s, out, m)
		}
		if exp := c.around[0] + want + c.around[1]; text != exp {
			t.Fatalf("%s: Markdown(%q) = %q reads\n%q, want\n%q", c.name, s, out, text, exp)
		}
	}
}

func FuzzMarkdown(f *testing.F) {
	for _, s := range []string{hostileVersion, hostileAuthor, "# h", "1. x", "a | b", "www.example.com/a?b=1&c=2", "`x`",
		"<b>", "&amp;", "\\", "@x", "#1", "GH-1", "$a$", "~~x~~", "[x](y)", "![i](u)", "a #", "- [ ] task", "> q",
		"    code", "***", "___", "a  b", "http://a<b", "<http://x>", "x\u2028y", "İ@x"} {
		f.Add(s, uint8(0))
	}
	f.Fuzz(func(t *testing.T, s string, limit uint8) {
		checkRendered(t, s, int(limit))
	})
}

// FuzzSlack: the text has no < or >, every & starts one of the three
// entities Slack reads, it mentions no one, and it reads as the input.
func FuzzSlack(f *testing.F) {
	for _, s := range []string{hostileVersion, "<!channel>", "a&b", "&amp;", "@here", "<@U1|x>"} {
		f.Add(s, uint8(0))
	}
	entity := regexp.MustCompile(`&(?:amp|lt|gt);`)
	f.Fuzz(func(t *testing.T, s string, limit uint8) {
		out := Slack(s, int(limit))
		if strings.ContainsAny(out, "<>\r\n") || strings.Contains(entity.ReplaceAllString(out, ""), "&") {
			t.Fatalf("Slack(%q) = %q", s, out)
		}
		if regexp.MustCompile(`@[A-Za-z0-9]`).MatchString(out) {
			t.Fatalf("Slack(%q) = %q mentions", s, out)
		}
		back := strings.NewReplacer("&lt;", "<", "&gt;", ">", "&amp;", "&", ZWJ, "").Replace(out)
		if want := strings.ReplaceAll(Line(s, int(limit)), ZWJ, ""); back != want {
			t.Fatalf("Slack(%q) = %q reads %q, want %q", s, out, back, want)
		}
	})
}
