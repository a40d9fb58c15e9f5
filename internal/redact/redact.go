// Package redact hides secrets before text is shown anywhere: known secret
// values that text from outside echoes back (Values), whole, in another
// letter case or cut short, and the secrets a URL
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

// MinFragment is the shortest part of a secret that Values hides on its
// own: a proxy or a log that cuts a token short still shows its start or
// its end.
const MinFragment = 8

// Values returns a function that replaces the given secrets in a text by
// Mask, for text from outside (an error body, a warning) that may echo a
// secret back: each secret whatever the letter case of its ASCII letters
// (a proxy that lowercases what it echoes), and a part of one that starts
// or ends it, of at least MinFragment characters (one that truncates it;
// not for a secret holding a space, such as a header's value).
// Where hidden parts meet or overlap, they are hidden as one. Values
// shorter than 4 characters are left alone, since masking them would
// garble the text without hiding anything.
func Values(secrets []string) func(string) string {
	var keep []string
	for _, s := range secrets {
		if len(s) >= 4 {
			keep = append(keep, FoldASCII(s))
		}
	}
	if len(keep) == 0 {
		return func(text string) string { return text }
	}
	return func(text string) string {
		folded := FoldASCII(text)
		var spans [][2]int
		for _, s := range keep {
			spans = append(spans, find(folded, s)...)
		}
		if len(spans) == 0 {
			return text
		}
		sort.Slice(spans, func(i, j int) bool { return spans[i][0] < spans[j][0] })
		var b strings.Builder
		at := 0
		for i := 0; i < len(spans); {
			start, end := spans[i][0], spans[i][1]
			for i++; i < len(spans) && spans[i][0] <= end; i++ {
				end = max(end, spans[i][1])
			}
			b.WriteString(text[at:start])
			b.WriteString(Mask)
			at = end
		}
		b.WriteString(text[at:])
		return b.String()
	}
}

// find returns where text (folded) holds secret (folded), or a part of it
// of at least MinFragment bytes that starts or ends it: the byte ranges to
// hide.
func find(text, secret string) [][2]int {
	n := min(len(secret), MinFragment)
	if strings.ContainsAny(secret, " \t") {
		// A header's value ("Bearer xyz") is hidden whole; its credential
		// is a secret of its own, whose parts are looked for.
		n = len(secret)
	}
	var spans [][2]int
	// Parts that start the secret (the whole secret among them).
	head := secret[:n]
	for from := 0; ; {
		i := strings.Index(text[from:], head)
		if i < 0 {
			break
		}
		i += from
		j := n
		for j < len(secret) && i+j < len(text) && text[i+j] == secret[j] {
			j++
		}
		spans = append(spans, [2]int{i, i + j})
		from = i + 1
	}
	// Parts that end it.
	tail := secret[len(secret)-n:]
	for from := 0; ; {
		i := strings.Index(text[from:], tail)
		if i < 0 {
			break
		}
		i += from
		end, j := i+n, len(secret)-n
		start := i
		for j > 0 && start > 0 && text[start-1] == secret[j-1] {
			start--
			j--
		}
		spans = append(spans, [2]int{start, end})
		from = i + 1
	}
	return spans
}

// FoldASCII lowers ASCII letters only, so that byte offsets stay those of
// the original text: a match found in the folded text is at the same place
// in the original (here, a secret echoed in another letter case; in
// package recorder, immune's marker in a body).
func FoldASCII(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}
