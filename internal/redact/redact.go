// Package redact hides secrets before text is shown anywhere: known secret
// values that text from outside echoes back (Values), and the secrets a URL
// can carry (URL): its user info (http://TOKEN@host, http://user:secret@host) and
// the values of its query (?token=...), and its fragment. It works on text
// that does not parse as a URL too, since an invalid URL is exactly what an
// error message quotes.
package redact

import (
	"sort"
	"strings"
)

// Mask replaces a secret.
const Mask = "REDACTED"

// URL returns s with its user info, query values and fragment replaced by
// Mask. Scheme, host, port and path stay, so that a person can still tell
// which URL it is. It goes by the text's shape, not by a URL parser, so
// that what a parser would read as a host and port (a password holding an
// unescaped "/", "#" or "?") is hidden too.
func URL(s string) string {
	prefix, rest := "", s
	if i := strings.Index(rest, "://"); i >= 0 {
		prefix, rest = rest[:i+3], rest[i+3:]
	} else if strings.HasPrefix(rest, "//") {
		prefix, rest = "//", rest[2:]
	}
	// The user info ends at an @. Passwords and tokens hold "/", "?" and
	// "#" unescaped often enough (base64) that no delimiter can be trusted
	// to end the authority first: everything up to the last @ is hidden.
	// An @ in a path or a query value costs the host its display, never a
	// secret.
	if at := strings.LastIndex(rest, "@"); at >= 0 {
		if strings.ContainsAny(rest[:at], "?#") {
			// A query or fragment before the @: what follows it may be
			// the rest of a value. Nothing of it is shown.
			return prefix + Mask
		}
		rest = Mask + rest[at:]
	}
	if i := strings.Index(rest, "#"); i >= 0 {
		rest = rest[:i+1] + Mask
	}
	if i := strings.Index(rest, "?"); i >= 0 {
		rest = rest[:i+1] + query(rest[i+1:])
	}
	return prefix + rest
}

// query keeps the keys of a query and hides its values; a part without a
// key is hidden whole.
func query(q string) string {
	frag := ""
	if i := strings.Index(q, "#"); i >= 0 {
		q, frag = q[:i], q[i:]
	}
	parts := strings.FieldsFunc(q, func(r rune) bool { return r == '&' || r == ';' })
	for i, p := range parts {
		if k, _, ok := strings.Cut(p, "="); ok {
			parts[i] = k + "=" + Mask
		} else {
			parts[i] = Mask
		}
	}
	return strings.Join(parts, "&") + frag
}

// Values returns a function that replaces every occurrence of the given
// secrets in a text by Mask, for text from outside (an error body, a
// warning) that may echo a secret back. Longer secrets are replaced first,
// so a value goes whole before a part of it; values shorter than 4
// characters are left alone, since masking them would garble the text
// without hiding anything.
func Values(secrets []string) func(string) string {
	var keep []string
	for _, s := range secrets {
		if len(s) >= 4 {
			keep = append(keep, s)
		}
	}
	sort.Slice(keep, func(i, j int) bool { return len(keep[i]) > len(keep[j]) })
	return func(text string) string {
		for _, s := range keep {
			text = strings.ReplaceAll(text, s, Mask)
		}
		return text
	}
}
