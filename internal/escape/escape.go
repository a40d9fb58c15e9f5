// Package escape keeps text that immune does not control from changing
// what people read where immune writes for them: health answers, versions,
// git author names, reasons, error texts, Prometheus text and URLs put into
// the Markdown of the job summary, the pull-request comments and the
// tracking issue (Markdown, Code, LinkURL), into an issue's title (Title),
// or into a chat message (Slack). Each makes the text one line that shows
// as it was written, mentions no one (@user, @org/team, @channel) and
// references no issue (#12, GH-12), and caps its length. The log's
// workflow commands are package logline's.
package escape

import (
	"regexp"
	"strings"
	"unicode/utf8"
)

// ZWJ is the zero-width joiner put after an "@", a "#" or a "GH" that
// would start a mention or a reference: invisible, and enough for GitHub
// (and chats) not to link, notify or cross-reference.
const ZWJ = "\u200d"

// Markdown returns s as literal inline text for GitHub-flavoured Markdown,
// safe in a paragraph, a table cell, a list item, a blockquote or a
// heading: on one line (line breaks become spaces), with no HTML (< and >
// as entities), no character reference (an & that would start one as
// &amp;), no Markdown syntax (\ ` * _ ~ [ ] | backslash-escaped, $
// as an entity so that it opens no math, and a block marker it starts with
// or ends with escaped), no mention or reference, and at most limit characters of s
// (ending in "…" when cut; limit <= 0: no cap). GitHub shows it as s read.
func Markdown(s string, limit int) string {
	s = Line(s, limit)
	// A heading drops a run of # that ends it.
	closing := len(strings.TrimRight(s, "#"))
	var b strings.Builder
	b.Grow(len(s) + len(s)/8)
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == '#' && i >= closing:
			b.WriteString("\\#")
			i += n
			b.WriteString(joiner(s, i))
			continue
		}
		switch r {
		case '&':
			if entity.MatchString(s[i:]) {
				b.WriteString("&amp;") // shown as written, not as what it names
			} else {
				b.WriteByte('&') // as in a URL's query, which GitHub links
			}
		case '<':
			b.WriteString("&lt;")
		case '>':
			b.WriteString("&gt;")
		case '$':
			b.WriteString("&#36;")
		case '\\', '`', '*', '_', '~', '[', ']', '|':
			b.WriteByte('\\')
			b.WriteRune(r)
		default:
			if i == 0 && (r == '#' || r == '+' || r == '-' || r == '=') {
				b.WriteByte('\\') // no heading, list or rule
			}
			b.WriteRune(r)
			if i == 0 && r >= '0' && r <= '9' {
				// "1. x" and "1) x" open an ordered list.
				j := i + n
				for j < len(s) && s[j] >= '0' && s[j] <= '9' {
					j++
				}
				b.WriteString(s[i+n : j])
				if j < len(s) && (s[j] == '.' || s[j] == ')') {
					b.WriteByte('\\')
				}
				n = j - i
			}
		}
		i += n
		b.WriteString(joiner(s, i))
	}
	return b.String()
}

// entity is what Markdown would read as a character reference.
var entity = regexp.MustCompile(`^&(?:#[0-9]{1,7}|#[xX][0-9a-fA-F]{1,6}|[A-Za-z][A-Za-z0-9]{0,31});`)

// Code returns s as an inline code span (a version, a label, a name) on one
// line, at most limit characters of s. A code span mentions no one and holds
// no Markdown; only a "|" would still end a table cell inside one, so text
// holding one is returned as Markdown text instead, which shows it right
// both inside a table and outside.
func Code(s string, limit int) string {
	s = Line(s, limit)
	if s == "" {
		return ""
	}
	if strings.Contains(s, "|") {
		return Markdown(s, 0)
	}
	// The fence is one backtick longer than the longest run inside.
	longest, run := 0, 0
	for i := 0; i < len(s); i++ {
		if s[i] == '`' {
			run++
			longest = max(longest, run)
		} else {
			run = 0
		}
	}
	fence := strings.Repeat("`", longest+1)
	if strings.HasPrefix(s, "`") || strings.HasSuffix(s, "`") {
		s = " " + s + " " // CommonMark strips one space each side
	}
	return fence + s + fence
}

// LinkURL returns u for a Markdown link's destination: an absolute http or
// https URL with the characters that would end the destination or the link
// percent-encoded, or "" for anything else (so that the caller shows the
// text without a link).
func LinkURL(u string) string {
	low := strings.ToLower(u)
	if !strings.HasPrefix(low, "https://") && !strings.HasPrefix(low, "http://") {
		return ""
	}
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(u); i++ {
		c := u[i]
		if c <= ' ' || c >= 0x7f || strings.IndexByte("()<>\"'`\\|[]", c) >= 0 {
			b.WriteByte('%')
			b.WriteByte(hex[c>>4])
			b.WriteByte(hex[c&15])
			continue
		}
		b.WriteByte(c)
	}
	return b.String()
}

// Title returns s for an issue's title, which GitHub shows as plain text:
// one line, no mention or reference, at most limit characters of s.
func Title(s string, limit int) string {
	s = Line(s, limit)
	var b strings.Builder
	for i := 0; i < len(s); {
		_, n := utf8.DecodeRuneInString(s[i:])
		b.WriteString(s[i : i+n])
		i += n
		b.WriteString(joiner(s, i))
	}
	return b.String()
}

// Slack returns s for the text of a chat message as Slack reads it: one
// line, &, < and > as the entities Slack requires (so that no <!channel>,
// <@U123> or <url|label> can be made), no mention (@channel, @here,
// @everyone: chats that copy Slack's webhooks read those too), at most limit
// characters of s.
func Slack(s string, limit int) string {
	s = Line(s, limit)
	var b strings.Builder
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		switch r {
		case '&':
			b.WriteString("&amp;")
		case '<':
			b.WriteString("&lt;")
		case '>':
			b.WriteString("&gt;")
		default:
			b.WriteString(s[i : i+n])
		}
		i += n
		if i > 0 && s[i-1] == '@' && i < len(s) && isWordStart(s[i]) {
			b.WriteString(ZWJ)
		}
	}
	return b.String()
}

// login is a GitHub account's name: letters, digits and single hyphens,
// at most 39 characters; an app's bot account ends in "[bot]".
var login = regexp.MustCompile(`^[A-Za-z0-9](?:-?[A-Za-z0-9]){0,38}(?:\[bot\])?$`)

// IsLogin reports whether s is a GitHub login, which "@" + s mentions and
// nothing more.
func IsLogin(s string) bool { return login.MatchString(s) }

// Line returns s on one line, cut to at most limit characters (limit <= 0: not
// cut), ending in "…" when cut: invalid UTF-8 is replaced, line breaks
// and tabs become spaces, other control and bidirectional formatting
// characters (which can make text read differently from what it is) are
// dropped, and the ends are trimmed.
func Line(s string, limit int) string {
	s = strings.ToValidUTF8(s, "\ufffd")
	var b strings.Builder
	b.Grow(len(s))
	for _, r := range s {
		switch {
		case r == '\n' || r == '\r' || r == '\t' || r == '\v' || r == '\f' || r == 0x85 || r == 0x2028 || r == 0x2029:
			b.WriteByte(' ')
		case r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0),
			r >= 0x202a && r <= 0x202e, r >= 0x2066 && r <= 0x2069, r == 0x200e || r == 0x200f || r == 0x061c:
			// dropped
		default:
			b.WriteRune(r)
		}
	}
	s = strings.TrimSpace(b.String())
	return Clip(s, limit)
}

// Clip shortens s to at most n characters, ending it with "…" when cut
// (n <= 0: not cut).
func Clip(s string, n int) string {
	if n <= 0 || utf8.RuneCountInString(s) <= n {
		return s
	}
	cut, i := 0, 0
	for i = range s {
		if cut == n-1 {
			break
		}
		cut++
	}
	return strings.TrimRight(s[:i], " ") + "…"
}

// joiner is what goes at byte i of s, between what came before and what
// follows, so that no mention or reference starts there: a ZWJ after an
// "@" or a "#" that a name or a number follows, and after a "GH" that
// "-" and a number follow.
func joiner(s string, i int) string {
	if i == 0 || i >= len(s) {
		return ""
	}
	switch prev := s[i-1]; {
	case prev == '@' && isWordStart(s[i]):
		return ZWJ
	case prev == '#' && s[i] >= '0' && s[i] <= '9':
		return ZWJ
	case (prev == 'h' || prev == 'H') && i >= 2 && (s[i-2] == 'g' || s[i-2] == 'G') &&
		s[i] == '-' && i+1 < len(s) && s[i+1] >= '0' && s[i+1] <= '9':
		return ZWJ
	}
	return ""
}

func isWordStart(c byte) bool {
	return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}
