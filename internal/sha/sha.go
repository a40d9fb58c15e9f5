// Package sha is the one place that knows what a commit id looks like: how
// to validate one (full or abbreviated), compare two, and shorten one for
// people. Every package that handles commit ids uses it.
package sha

import (
	"regexp"
	"strings"
)

// Lengths of commit ids.
const (
	// MinAbbrev is the shortest abbreviation accepted anywhere (git's
	// default).
	MinAbbrev = 7
	// Full is the length of a SHA-1 commit id; GitHub's commit statuses
	// need exactly this.
	Full = 40
	// FullSHA256 is the length of a SHA-256 commit id.
	FullSHA256 = 64
)

// IsHex reports whether s is non-empty and made of hexadecimal digits only.
func IsHex(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
			return false
		}
	}
	return true
}

// IsFull reports whether s is a complete commit id: 40 (or 64) hex digits.
func IsFull(s string) bool { return (len(s) == Full || len(s) == FullSHA256) && IsHex(s) }

// IsAbbrev reports whether s is a commit id or an abbreviation of one: 7
// to 40 (or 64) hex digits.
func IsAbbrev(s string) bool {
	return (len(s) >= MinAbbrev && len(s) <= Full || len(s) == FullSHA256) && IsHex(s)
}

// IsZero reports whether s is the all-zero id git and GitHub use for "no
// commit" (a new branch's before, a deleted branch's after).
func IsZero(s string) bool { return s != "" && strings.Trim(s, "0") == "" }

// Short abbreviates a commit id to 7 characters for display; anything that
// is not a commit id is returned unchanged.
func Short(s string) string {
	if len(s) > MinAbbrev && IsHex(s) {
		return s[:MinAbbrev]
	}
	return s
}

// Same reports whether a and b name the same commit: equal ignoring case,
// or one an abbreviation (a prefix of at least 7 characters) of the other.
// Surrounding space is ignored, since versions read from health endpoints
// often carry a newline.
func Same(a, b string) bool {
	a, b = strings.ToLower(strings.TrimSpace(a)), strings.ToLower(strings.TrimSpace(b))
	if len(a) > len(b) {
		a, b = b, a
	}
	switch {
	case a == "":
		return false
	case a == b:
		return true
	case len(a) < MinAbbrev:
		return false
	}
	return strings.HasPrefix(b, a)
}

var refPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._/+-]{0,254}$`)

// IsRef reports whether s looks like a commit id or a ref name (a branch or
// a tag). It is loose on purpose, since CLI users deploy tags too; such a
// value only ever reaches a deploy command as an environment variable, and
// it can never hold a newline or start a workflow command.
func IsRef(s string) bool { return refPattern.MatchString(s) }
