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

// FuzzInputCredentials: a credential in a health-url, valid URL or not,
// never reaches the error that rejects it, nor the error of any input.
func FuzzInputCredentials(f *testing.F) {
	f.Add("http", "user", "pa/ss#?", "host", "/h")
	f.Add("htp", "", "tok", "h st", "?x")
	const marker = "S3CR3T"
	f.Fuzz(func(t *testing.T, scheme, user, pre, host, path string) {
		if strings.Contains(scheme+user+host+path, marker) || strings.ContainsAny(pre, "&;,\n") {
			return // a comma or newline would split the URL in two inputs
		}
		secret := pre + marker
		for _, raw := range []string{
			scheme + "://" + user + ":" + secret + "@" + host + path,
			scheme + "://" + secret + "@" + host + path,
			scheme + "://" + host + path + "?token=" + secret,
		} {
			in := map[string]string{"mode": "deploy", "deploy-command": "true", "health-url": raw}
			_, err := Parse(func(name string) string { return in[name] }, Env{EventName: "push", SHA: "4d8b3f2e1c0a9b8c7d6e5f4a3b2c1d0e9f8a7b6c", Workspace: "/w"})
			if err != nil && strings.Contains(err.Error(), marker) {
				t.Fatalf("health-url %q: the error shows the credential: %v", raw, err)
			}
		}
	})
}
