package config

import (
	"strings"
	"testing"
)

func FuzzParseStatusSet(f *testing.F) {
	for _, s := range []string{"200-299", "200,204,300-302", "418", "", "200-", "-", "1-999", "299-200", " 200 ,\n301"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		set, err := ParseStatusSet(s)
		if err != nil {
			return
		}
		// A parsed set prints back to an equivalent set.
		again, err := ParseStatusSet(set.String())
		if err != nil {
			t.Fatalf("String() %q does not parse: %v", set.String(), err)
		}
		for code := 100; code <= 599; code++ {
			if set.Contains(code) != again.Contains(code) {
				t.Fatalf("round trip of %q changes %d", s, code)
			}
		}
		for _, r := range set {
			if r.Lo < 100 || r.Hi > 599 || r.Lo > r.Hi {
				t.Fatalf("bad range %+v from %q", r, s)
			}
		}
	})
}

func FuzzParseHeaders(f *testing.F) {
	for _, s := range []string{"Authorization: Bearer x", "A: b\nC: d", "bad", ":x", "X:", "X: a:b", "Host: evil", "X: a\rb"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		hs, err := ParseHeaders(s)
		if err != nil {
			// Errors never quote header values.
			for _, line := range strings.Split(s, "\n") {
				if _, v, ok := strings.Cut(line, ":"); ok && len(strings.TrimSpace(v)) > 12 && strings.Contains(err.Error(), strings.TrimSpace(v)) {
					t.Fatalf("error %q quotes a value", err)
				}
			}
			return
		}
		for _, h := range hs {
			if h.Name == "" || h.Value == "" || !validHeaderName(h.Name) || strings.ContainsAny(h.Value, "\r\n\x00") {
				t.Fatalf("bad header %q from %q", h, s)
			}
		}
	})
}

func FuzzParseURLs(f *testing.F) {
	for _, s := range []string{"http://a/h", "http://a/h,https://b/h", "x", "http://u:p@a/"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		urls, err := ParseURLs(s)
		if err != nil {
			return
		}
		for _, u := range urls {
			if strings.ContainsAny(u, ",\n") || !strings.HasPrefix(u, "http") {
				t.Fatalf("bad URL %q from %q", u, s)
			}
		}
	})
}
