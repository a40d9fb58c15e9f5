package promql

import (
	"fmt"
	"strings"
)

// CheckSelector reports whether s is a plain series selector:
// an optional metric name and an optional {…} of label matchers, nothing
// else. Counters are read raw and their increase is computed per series, so a
// function (rate, increase, sum), an operator, a range [5m], offset or @
// would hide the resets and the series this needs to see.
func CheckSelector(s string) error {
	l := lexer{s: s}
	l.space()
	name := l.ident(true)
	l.space()
	matchers := 0
	if l.peek() == '{' {
		l.i++
		for {
			l.space()
			if l.peek() == '}' {
				l.i++
				break
			}
			if matchers > 0 {
				if l.peek() != ',' {
					return l.unexpected("a , or } between label matchers")
				}
				l.i++
				l.space()
				if l.peek() == '}' {
					l.i++
					break
				}
			}
			if l.ident(false) == "" {
				return l.unexpected("a label name")
			}
			l.space()
			if !l.operator() {
				return l.unexpected("=, !=, =~ or !~ after the label name")
			}
			l.space()
			if err := l.str(); err != nil {
				return err
			}
			matchers++
		}
		l.space()
	}
	if name == "" && matchers == 0 {
		return l.unexpected("a metric name or {label matchers}")
	}
	if l.i < len(l.s) {
		return l.unexpected("the end of the selector")
	}
	return nil
}

type lexer struct {
	s string
	i int
}

func (l *lexer) peek() byte {
	if l.i < len(l.s) {
		return l.s[l.i]
	}
	return 0
}

// space skips white space and comments.
func (l *lexer) space() {
	for l.i < len(l.s) {
		switch l.s[l.i] {
		case ' ', '\t', '\r', '\n':
			l.i++
		case '#':
			if nl := strings.IndexByte(l.s[l.i:], '\n'); nl >= 0 {
				l.i += nl + 1
			} else {
				l.i = len(l.s)
			}
		default:
			return
		}
	}
}

// ident reads a metric name (colons allowed) or a label name.
func (l *lexer) ident(metric bool) string {
	start := l.i
	for l.i < len(l.s) {
		c := l.s[l.i]
		letter := c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || metric && c == ':'
		if !letter && (l.i == start || c < '0' || c > '9') {
			break
		}
		l.i++
	}
	return l.s[start:l.i]
}

func (l *lexer) operator() bool {
	for _, op := range []string{"=~", "!~", "!=", "="} {
		if strings.HasPrefix(l.s[l.i:], op) {
			l.i += len(op)
			return true
		}
	}
	return false
}

// str reads a quoted string.
func (l *lexer) str() error {
	q := l.peek()
	if q != '"' && q != '\'' && q != '`' {
		return l.unexpected("a quoted label value")
	}
	start := l.i
	for l.i++; l.i < len(l.s); l.i++ {
		switch c := l.s[l.i]; {
		case c == q:
			l.i++
			return nil
		case c == '\\' && q != '`':
			l.i++
		case c == '\n' && q != '`':
			l.i = len(l.s)
		}
	}
	l.i = start
	return fmt.Errorf("the string at offset %d is not closed", start)
}

func (l *lexer) unexpected(want string) error {
	if l.i >= len(l.s) {
		return fmt.Errorf("expected %s, found the end; write a series selector like http_requests_total{job=\"shop\",code=~\"5..\"}, not an expression", want)
	}
	rest := l.s[l.i:]
	if len(rest) > 20 {
		rest = rest[:20] + "…"
	}
	return fmt.Errorf("expected %s at offset %d, found %q; write a series selector like http_requests_total{job=\"shop\",code=~\"5..\"}, not an expression (immune computes the increase itself)", want, l.i, rest)
}
