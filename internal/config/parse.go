package config

import (
	"fmt"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/immune-cd/immune/internal/redact"
)

// StatusSet is a set of HTTP status codes written as codes and ranges,
// e.g. "200,204,300-302".
type StatusSet []StatusRange

// StatusRange is an inclusive range of status codes.
type StatusRange struct{ Lo, Hi int }

// Contains reports whether code is in the set.
func (s StatusSet) Contains(code int) bool {
	for _, r := range s {
		if code >= r.Lo && code <= r.Hi {
			return true
		}
	}
	return false
}

func (s StatusSet) String() string {
	parts := make([]string, len(s))
	for i, r := range s {
		if r.Lo == r.Hi {
			parts[i] = strconv.Itoa(r.Lo)
		} else {
			parts[i] = fmt.Sprintf("%d-%d", r.Lo, r.Hi)
		}
	}
	return strings.Join(parts, ",")
}

// ParseStatusSet parses a list of status codes and ranges.
func ParseStatusSet(s string) (StatusSet, error) {
	var set StatusSet
	for _, item := range splitList(s) {
		lo, hi, isRange := strings.Cut(item, "-")
		from, err := parseStatus(lo)
		if err != nil {
			return nil, err
		}
		to := from
		if isRange {
			if to, err = parseStatus(hi); err != nil {
				return nil, err
			}
			if to < from {
				return nil, fmt.Errorf("range %q runs backwards", item)
			}
		}
		set = append(set, StatusRange{Lo: from, Hi: to})
	}
	if len(set) == 0 {
		return nil, fmt.Errorf("no status codes given")
	}
	return set, nil
}

func parseStatus(s string) (int, error) {
	s = strings.TrimSpace(s)
	code, err := strconv.Atoi(s)
	if err != nil || code < 100 || code > 599 {
		return 0, fmt.Errorf("%q is not an HTTP status code (100-599)", s)
	}
	return code, nil
}

// Header is one extra request header.
type Header struct{ Name, Value string }

// ParseHeaders parses newline-separated "Name: value" lines. Errors never
// quote a value, since values are often secrets.
func ParseHeaders(s string) ([]Header, error) {
	var headers []Header
	for i, line := range strings.Split(s, "\n") {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		name, value, ok := strings.Cut(line, ":")
		name = strings.TrimSpace(name)
		value = strings.TrimSpace(value)
		if !ok || name == "" {
			return nil, fmt.Errorf("line %d is not of the form \"Name: value\"", i+1)
		}
		if !validHeaderName(name) {
			return nil, fmt.Errorf("line %d: %q is not a valid header name", i+1, name)
		}
		if value == "" {
			return nil, fmt.Errorf("line %d: header %s has an empty value", i+1, name)
		}
		if strings.ContainsAny(value, "\r\x00") {
			return nil, fmt.Errorf("line %d: header %s has a control character in its value", i+1, name)
		}
		if strings.EqualFold(name, "Host") || strings.EqualFold(name, "Content-Length") {
			return nil, fmt.Errorf("line %d: header %s cannot be set", i+1, name)
		}
		headers = append(headers, Header{Name: http.CanonicalHeaderKey(name), Value: value})
	}
	return headers, nil
}

func validHeaderName(name string) bool {
	for _, r := range name {
		switch {
		case r >= 'a' && r <= 'z', r >= 'A' && r <= 'Z', r >= '0' && r <= '9':
		case strings.ContainsRune("!#$%&'*+-.^_`|~", r):
		default:
			return false
		}
	}
	return true
}

// ParseURLs parses newline- or comma-separated absolute http(s) URLs.
func ParseURLs(s string) ([]string, error) {
	var urls []string
	seen := map[string]bool{}
	for _, item := range splitList(s) {
		// Errors quote the URL redacted: it may carry credentials, and an
		// invalid one most of all.
		u, err := url.Parse(item)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			return nil, fmt.Errorf("%q is not an absolute http:// or https:// URL", redact.URL(item))
		}
		if u.User != nil {
			return nil, fmt.Errorf("%q carries credentials in the URL; pass them in headers, from secrets", redact.URL(item))
		}
		if seen[item] {
			return nil, fmt.Errorf("%q is listed twice", redact.URL(item))
		}
		seen[item] = true
		urls = append(urls, item)
	}
	return urls, nil
}

// splitList splits on newlines and commas and drops empty items.
func splitList(s string) []string {
	var items []string
	for _, item := range strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == '\n' }) {
		if item = strings.TrimSpace(item); item != "" {
			items = append(items, item)
		}
	}
	return items
}

// ParseDuration parses Go's duration syntax and rejects negative values.
func ParseDuration(s string) (time.Duration, error) {
	d, err := time.ParseDuration(strings.TrimSpace(s))
	if err != nil {
		return 0, fmt.Errorf("%q is not a duration like 250ms, 5s or 2m", s)
	}
	if d < 0 {
		return 0, fmt.Errorf("%q is negative", s)
	}
	return d, nil
}

// ParsePeriod parses a period: days ("30d") or a Go duration ("12h").
func ParsePeriod(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	if n, ok := strings.CutSuffix(s, "d"); ok {
		days, err := strconv.Atoi(n)
		if err != nil || days < 0 {
			return 0, fmt.Errorf("%q is not a number of days like 30d", s)
		}
		return time.Duration(days) * 24 * time.Hour, nil
	}
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 {
		return 0, fmt.Errorf("%q is not a period like 30d or 12h", s)
	}
	return d, nil
}

// ParseFraction parses "5%" or "0.05" into 0.05. A bare number above 1 is
// refused because "5" could mean 5% or 500%.
func ParseFraction(s string) (float64, error) {
	s = strings.TrimSpace(s)
	bad := fmt.Errorf("%q is not a percentage like 5%% or a fraction like 0.05", s)
	if num, ok := strings.CutSuffix(s, "%"); ok {
		v, err := strconv.ParseFloat(strings.TrimSpace(num), 64)
		if err != nil || math.IsNaN(v) || v < 0 || v > 100 {
			return 0, bad
		}
		return v / 100, nil
	}
	v, err := strconv.ParseFloat(s, 64)
	if err != nil || math.IsNaN(v) || v < 0 || v > 1 {
		return 0, bad
	}
	return v, nil
}

// ParsePercentile parses "95", "99.9", "95%" or "p95".
func ParsePercentile(s string) (float64, error) {
	t := strings.TrimSuffix(strings.TrimPrefix(strings.ToLower(strings.TrimSpace(s)), "p"), "%")
	v, err := strconv.ParseFloat(t, 64)
	if err != nil || math.IsNaN(v) || v <= 0 || v >= 100 {
		return 0, fmt.Errorf("%q is not a percentile between 0 and 100 like 95 or 99.9", s)
	}
	return v, nil
}

// ParseBool accepts the YAML 1.2 booleans GitHub passes: true and false.
func ParseBool(s string) (bool, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "true":
		return true, nil
	case "false":
		return false, nil
	}
	return false, fmt.Errorf("%q is not true or false", s)
}

// VersionSource says where a probe finds the version of the build that
// answered.
type VersionSource struct {
	Kind string // "body", "header" or "json"; "" when off
	Arg  string // header name or dot path
}

// ParseVersionSource parses "body", "header:<Name>" or "json:<dot.path>".
func ParseVersionSource(s string) (VersionSource, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return VersionSource{}, nil
	}
	kind, arg, _ := strings.Cut(s, ":")
	kind = strings.ToLower(strings.TrimSpace(kind))
	arg = strings.TrimSpace(arg)
	switch {
	case kind == "body" && arg == "":
		return VersionSource{Kind: "body"}, nil
	case kind == "header" && arg != "" && validHeaderName(arg):
		return VersionSource{Kind: "header", Arg: http.CanonicalHeaderKey(arg)}, nil
	case kind == "json" && arg != "" && !strings.Contains(arg, "..") && !strings.HasPrefix(arg, ".") && !strings.HasSuffix(arg, "."):
		return VersionSource{Kind: "json", Arg: arg}, nil
	}
	return VersionSource{}, fmt.Errorf("%q is not body, header:<Name> or json:<dot.path>", s)
}
