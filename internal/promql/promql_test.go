package promql

import (
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// unquote reads a PromQL string body the way Prometheus does
// (prometheus/util/strutil.Unquote: Go's escapes, any length in any quote).
func unquote(body string, quote byte) (string, error) {
	var b strings.Builder
	for len(body) > 0 {
		r, multibyte, rest, err := strconv.UnquoteChar(body, quote)
		if err != nil {
			return "", err
		}
		if r < 0x80 || !multibyte {
			b.WriteByte(byte(r))
		} else {
			b.WriteRune(r)
		}
		body = rest
	}
	return b.String(), nil
}

func TestEscapeRoundTrips(t *testing.T) {
	t.Parallel()
	values := []string{
		"abc", `a"b`, `a'b`, `a\b`, "a\nb", "tab\there", `prod"} or vector(1) or {x="`, `\"`, `\\'`,
		"ünïcødé", "\x00\x7f", "\xff\xfe", "a\u2028b", "${SHA}", "`", "}", "#not a comment",
	}
	for _, v := range values {
		for _, q := range []byte{'"', '\''} {
			esc := Escape(v, q)
			if strings.ContainsRune(esc, '\n') {
				t.Errorf("Escape(%q, %c) = %q holds a raw newline", v, q, esc)
			}
			got, err := unquote(esc, q)
			if err != nil || got != v {
				t.Errorf("Escape(%q, %c) = %q, which PromQL reads as %q (%v)", v, q, esc, got, err)
			}
		}
	}
}

func FuzzEscape(f *testing.F) {
	for _, s := range []string{"", `"`, `'`, `\`, "\n", "\xff", "ok"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		for _, q := range []byte{'"', '\''} {
			esc := Escape(s, q)
			got, err := unquote(esc, q)
			if err != nil || got != s {
				t.Fatalf("Escape(%q, %c) = %q reads back as %q (%v)", s, q, esc, got, err)
			}
			// An escaped value never closes its string early.
			for i := 0; i < len(esc); i++ {
				if esc[i] == '\\' {
					i++
					continue
				}
				if esc[i] == q || esc[i] == '\n' {
					t.Fatalf("Escape(%q, %c) = %q ends the string at %d", s, q, esc, i)
				}
			}
		}
	})
}

func TestExpand(t *testing.T) {
	t.Parallel()
	vars := Vars{SHA: "4d8b3f2", PreviousSHA: "9f2c1e7", Environment: `prod"} or vector(1) #`, Track: "canary"}
	tests := []struct {
		query, want string
	}{
		{`http_requests_total{version="${SHA}"}`, `http_requests_total{version="4d8b3f2"}`},
		{`x{v='${PREVIOUS_SHA}'}`, `x{v='9f2c1e7'}`},
		{`x{env="${ENVIRONMENT}"}`, `x{env="prod\"} or vector(1) #"}`},
		{`x{env='${ENVIRONMENT}'}`, `x{env='prod"} or vector(1) #'}`},
		{`x{env=~"${ENVIRONMENT}|staging"}`, `x{env=~"prod\"\\} or vector\\(1\\) #|staging"}`},
		{`x{env !~ '${ENVIRONMENT}'}`, `x{env !~ 'prod"\\} or vector\\(1\\) #'}`},
		{`x{v="${SHA}-${TRACK}"} # ${NOT_EXPANDED} in a comment`, `x{v="4d8b3f2-canary"} # ${NOT_EXPANDED} in a comment`},
		{`sum(rate(x{v="$notaplaceholder"}[1m])) * $5`, `sum(rate(x{v="$notaplaceholder"}[1m])) * $5`},
		{`x{a="\"${SHA}\""}`, `x{a="\"4d8b3f2\""}`},
	}
	for _, tt := range tests {
		tmpl, err := Parse(tt.query)
		if err != nil {
			t.Errorf("Parse(%q): %v", tt.query, err)
			continue
		}
		got, err := tmpl.Expand(vars)
		if err != nil || got != tt.want {
			t.Errorf("Expand(%q) = %q, %v\nwant %q", tt.query, got, err, tt.want)
		}
	}
}

// TestExpandRegexMatchesLiterally: inside =~, a value with regex
// metacharacters matches itself and nothing else.
func TestExpandRegexMatchesLiterally(t *testing.T) {
	t.Parallel()
	for _, env := range []string{"prod.eu+1", "a|b", "(x)", `back\slash`, "[z]*"} {
		tmpl, err := Parse(`x{env=~"${ENVIRONMENT}"}`)
		if err != nil {
			t.Fatal(err)
		}
		q, err := tmpl.Expand(Vars{Environment: env})
		if err != nil {
			t.Fatal(err)
		}
		body := strings.TrimSuffix(strings.TrimPrefix(q, `x{env=~"`), `"}`)
		pattern, err := unquote(body, '"')
		if err != nil {
			t.Fatal(err)
		}
		// Prometheus anchors label regexes.
		re := regexp.MustCompile("^(?:" + pattern + ")$")
		if !re.MatchString(env) {
			t.Errorf("%q: pattern %q does not match the value", env, pattern)
		}
		for _, other := range []string{"prodXeu1", "a", "b", "x", `backslash`, "z", ""} {
			if other != env && re.MatchString(other) {
				t.Errorf("%q: pattern %q also matches %q", env, pattern, other)
			}
		}
	}
}

func TestParseErrors(t *testing.T) {
	t.Parallel()
	tests := []struct{ query, want string }{
		{`x{v="${sha}"}`, "unknown placeholder ${sha}; placeholders are ${SHA}, ${PREVIOUS_SHA}, ${ENVIRONMENT}, ${TRACK}"},
		{`x{v="${BUILD}"}`, "unknown placeholder ${BUILD}"},
		{`x{v="${SHA"}`, `"${SHA\"}" is not a placeholder`},
		{`x{v="${SHA"`, "placeholder at offset 5 has no closing }"},
		{`x{v="${S H A}"}`, `"${S H A}" is not a placeholder`},
		{`x{v=${SHA}}`, `${SHA} must be inside a quoted label value, like version="${SHA}"`},
		{"x{v=`${SHA}`}", "${SHA} is inside a backtick string, where its value cannot be escaped"},
		{`x{v="${SHA}}`, "is not closed"},
		{"x{v=\"a\nb\"}", "runs past the end of the line"},
		{`x{v='\'}`, "is not closed"},
	}
	for _, tt := range tests {
		_, err := Parse(tt.query)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Parse(%q) = %v, want an error containing %q", tt.query, err, tt.want)
		}
	}
}

func TestExpandRefusesEmptyValues(t *testing.T) {
	t.Parallel()
	tmpl, err := Parse(`x{version="${PREVIOUS_SHA}"}`)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tmpl.Expand(Vars{SHA: "abc"}); err == nil || !strings.Contains(err.Error(), "${PREVIOUS_SHA} has no value") {
		t.Errorf("Expand() error = %v", err)
	}
	if got := tmpl.Names(); len(got) != 1 || got[0] != PreviousSHA {
		t.Errorf("Names() = %q", got)
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{`x{v="${SHA}"}`, "`${SHA}`", `"${`, `'\`, "# ${X}\n", `$`, `{a=~"${ENVIRONMENT}"}`} {
		f.Add(s, `va"l'ue\`)
	}
	f.Fuzz(func(t *testing.T, query, value string) {
		tmpl, err := Parse(query)
		if err != nil {
			return
		}
		if value == "" {
			value = "v"
		}
		out, err := tmpl.Expand(Vars{SHA: value, PreviousSHA: value, Environment: value, Track: value})
		if err != nil {
			t.Fatalf("Expand after a clean Parse of %q: %v", query, err)
		}
		// Expansion only rewrites the inside of strings: the expanded
		// query parses again with the same string structure and no holes.
		again, err := Parse(strings.ReplaceAll(out, "${", "$_{"))
		if err != nil {
			t.Fatalf("expanded %q → %q no longer parses: %v", query, out, err)
		}
		if len(again.holes) != 0 {
			t.Fatalf("expanded query %q still has placeholders", out)
		}
	})
}

func TestCheckSelector(t *testing.T) {
	t.Parallel()
	good := []string{
		`http_requests_total`,
		`http_requests_total{job="shop",version="${SHA}",code=~"5.."}`,
		`http_requests_total{ job = "shop" , }`,
		`{__name__="http_requests_total", job='shop'}`,
		"ns:requests:total{a=`raw`}",
		"x{a!=\"b\", c!~\"d\"} # trailing comment",
	}
	for _, s := range good {
		if err := CheckSelector(s); err != nil {
			t.Errorf("CheckSelector(%q) = %v, want nil", s, err)
		}
	}
	bad := []struct{ s, want string }{
		{`rate(http_requests_total[1m])`, `expected the end of the selector at offset 4, found "(http_requests_total…"`},
		{`sum(x)`, "immune computes the increase itself"},
		{`x[5m]`, `found "[5m]"`},
		{`x offset 5m`, `found "offset 5m"`},
		{`x{a="b"} + y`, `found "+ y"`},
		{`x{a="b"`, "expected a , or } between label matchers, found the end"},
		{`x{a}`, "expected =, !=, =~ or !~ after the label name"},
		{`x{a=b}`, "expected a quoted label value"},
		{`x{a="b`, "is not closed"},
		{``, "expected a metric name or {label matchers}, found the end"},
		{`{}`, "expected a metric name or {label matchers}"},
		{`1`, "expected a metric name"},
	}
	for _, tt := range bad {
		err := CheckSelector(tt.s)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("CheckSelector(%q) = %v, want an error containing %q", tt.s, err, tt.want)
		}
	}
}
