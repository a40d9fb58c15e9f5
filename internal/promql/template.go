// Package promql handles the PromQL text a user writes in the metrics input:
// the ${NAME} placeholders immune fills in, quoted so that no value can change
// the query's meaning, and the check that a counter selector is a plain
// series selector. It does not parse PromQL beyond strings, comments and
// selectors; Prometheus itself judges the rest.
package promql

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"unicode/utf8"
)

// The placeholders immune fills in.
const (
	SHA         = "SHA"
	PreviousSHA = "PREVIOUS_SHA"
	Environment = "ENVIRONMENT"
	Track       = "TRACK"
)

// Names lists every placeholder name, in the order the README documents them.
var Names = []string{SHA, PreviousSHA, Environment, Track}

// Vars holds the values of the placeholders for one query run.
type Vars struct {
	SHA         string
	PreviousSHA string
	Environment string
	// Track is "canary" or "stable" when a canary is judged.
	Track string
}

func (v Vars) lookup(name string) (string, bool) {
	switch name {
	case SHA:
		return v.SHA, true
	case PreviousSHA:
		return v.PreviousSHA, true
	case Environment:
		return v.Environment, true
	case Track:
		return v.Track, true
	}
	return "", false
}

// Template is a query whose placeholders have been located.
type Template struct {
	text  string
	holes []hole
}

// hole is one ${NAME} inside a quoted string.
type hole struct {
	start, end int // byte offsets of "${NAME}" in text
	name       string
	quote      byte // '"' or '\''
	regex      bool // the string is the right side of =~ or !~
}

var placeholderName = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// Parse locates the placeholders of query. A placeholder must sit inside a
// double- or single-quoted string (a label matcher's value): spliced anywhere
// else, a value could rewrite the query, and inside a backtick string it
// could not be escaped. Placeholders in comments are left alone. Unknown
// names are an error.
func Parse(query string) (Template, error) {
	t := Template{text: query}
	i := 0
	for i < len(query) {
		switch c := query[i]; c {
		case '#':
			// A comment runs to the end of the line.
			nl := strings.IndexByte(query[i:], '\n')
			if nl < 0 {
				return t, nil
			}
			i += nl + 1
		case '"', '\'':
			regex := afterRegexOperator(query[:i])
			j := i + 1
			for ; j < len(query) && query[j] != c; j++ {
				switch query[j] {
				case '\\':
					j++ // the escaped character cannot end the string
				case '\n':
					return t, fmt.Errorf("a string opened at offset %d runs past the end of the line", i)
				case '$':
					h, err := placeholderAt(query, j)
					if err != nil {
						return t, err
					}
					if h.name != "" {
						h.quote, h.regex = c, regex
						t.holes = append(t.holes, h)
						j = h.end - 1
					}
				}
			}
			if j >= len(query) {
				return t, fmt.Errorf("a string opened at offset %d is not closed", i)
			}
			i = j + 1
		case '`':
			end := strings.IndexByte(query[i+1:], '`')
			if end < 0 {
				return t, fmt.Errorf("a string opened at offset %d is not closed", i)
			}
			raw := query[i+1 : i+1+end]
			if k := strings.Index(raw, "${"); k >= 0 {
				h, err := placeholderAt(query, i+1+k)
				if err != nil {
					return t, err
				}
				return t, fmt.Errorf("${%s} is inside a backtick string, where its value cannot be escaped; use double quotes", h.name)
			}
			i += end + 2
		case '$':
			h, err := placeholderAt(query, i)
			if err != nil {
				return t, err
			}
			if h.name != "" {
				return t, fmt.Errorf("${%s} must be inside a quoted label value, like version=\"${%s}\"", h.name, h.name)
			}
			i++
		default:
			i++
		}
	}
	return t, nil
}

// placeholderAt reads the placeholder starting at s[i] == '$'. A '$' not
// followed by '{' is not a placeholder (h.name is empty).
func placeholderAt(s string, i int) (hole, error) {
	if !strings.HasPrefix(s[i:], "${") {
		return hole{}, nil
	}
	end := strings.IndexByte(s[i:], '}')
	if end < 0 {
		return hole{}, fmt.Errorf("placeholder at offset %d has no closing }", i)
	}
	name := s[i+2 : i+end]
	if !placeholderName.MatchString(name) {
		return hole{}, fmt.Errorf("%q is not a placeholder; placeholders are %s", clip(s[i:i+end+1]), list())
	}
	if _, ok := (Vars{}).lookup(name); !ok {
		return hole{}, fmt.Errorf("unknown placeholder ${%s}; placeholders are %s", name, list())
	}
	return hole{start: i, end: i + end + 1, name: name}, nil
}

func list() string {
	parts := make([]string, len(Names))
	for i, n := range Names {
		parts[i] = "${" + n + "}"
	}
	return strings.Join(parts, ", ")
}

func clip(s string) string {
	if len(s) > 40 {
		return s[:40] + "…"
	}
	return s
}

// afterRegexOperator reports whether the text before a string ends with a
// regular-expression matcher (=~ or !~), ignoring spaces.
func afterRegexOperator(before string) bool {
	before = strings.TrimRight(before, " \t\r\n")
	return strings.HasSuffix(before, "=~") || strings.HasSuffix(before, "!~")
}

// Names returns the placeholder names the query uses, each once, in order.
func (t Template) Names() []string {
	var names []string
	seen := map[string]bool{}
	for _, h := range t.holes {
		if !seen[h.name] {
			seen[h.name] = true
			names = append(names, h.name)
		}
	}
	return names
}

// String returns the query as written, placeholders included.
func (t Template) String() string { return t.text }

// Expand fills in the placeholders. A value is escaped for the string it sits
// in, and inside a regular-expression matcher it is also quoted so that it
// matches literally: the label value must equal it, whatever characters it
// holds. An empty value is an error, since version="" would match every
// series without the label.
func (t Template) Expand(v Vars) (string, error) {
	var b strings.Builder
	last := 0
	for _, h := range t.holes {
		value, _ := v.lookup(h.name)
		if value == "" {
			return "", fmt.Errorf("${%s} has no value in this run", h.name)
		}
		if h.regex {
			value = regexp.QuoteMeta(value)
		}
		b.WriteString(t.text[last:h.start])
		b.WriteString(Escape(value, h.quote))
		last = h.end
	}
	b.WriteString(t.text[last:])
	return b.String(), nil
}

// Escape returns s escaped to sit between two quote characters (either '"'
// or '\”) of a PromQL string, which follows Go's escape rules: PromQL reads
// it back as exactly s.
func Escape(s string, quote byte) string {
	var b strings.Builder
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case r == rune(quote) || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case strconv.IsPrint(r):
			b.WriteRune(r)
		default:
			// Control and other unprintable characters: Go's own escapes,
			// which never contain a quote character.
			q := strconv.QuoteRune(r)
			b.WriteString(q[1 : len(q)-1])
		}
		i += size
	}
	return b.String()
}
