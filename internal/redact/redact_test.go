package redact

import (
	"strings"
	"testing"
)

func TestURL(t *testing.T) {
	t.Parallel()
	tests := []struct{ in, want string }{
		{"https://shop.example.com/healthz", "https://shop.example.com/healthz"},
		{"http://TOKEN@host/healthz", "http://REDACTED@host/healthz"},
		{"http://user:secret@host:8080/h", "http://REDACTED@host:8080/h"},
		{"http://user%3Asecret@host/h", "http://REDACTED@host/h"},
		{"https://host/h?token=abc&region=eu", "https://host/h?token=REDACTED&region=REDACTED"},
		{"https://host/h?abc123", "https://host/h?REDACTED"},
		{"https://host/h#access_token=x", "https://host/h#REDACTED"},
		// Does not parse: still redacted by shape.
		{"http://us er:sec ret@host/h?token=abc", "http://REDACTED@host/h?token=REDACTED"},
		{"http://user:secret@[::1/h", "http://REDACTED@[::1/h"},
		{"user:secret@host", "REDACTED@host"},
		{"ht!tp://x:y@host?k=v", "ht!tp://REDACTED@host?k=REDACTED"},
		{"http://user:abc/de+f==@host/h", "http://REDACTED@host/h"},
		{"http://host/users/@me", "http://REDACTED@me"},
	}
	for _, tt := range tests {
		if got := URL(tt.in); got != tt.want {
			t.Errorf("URL(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// FuzzURL: whatever the URL looks like, a secret placed in its user info,
// a query value or the fragment never shows. Each secret carries a marker
// around which it may hold anything (delimiters included); the marker must
// not show.
func FuzzURL(f *testing.F) {
	f.Add("http", "host", "user", "s3", "cret", "/p")
	f.Add("h t", "ho@st", "u:v", "pa/ss?#", "x y@", "?#")
	const marker = "S3CR3T"
	f.Fuzz(func(t *testing.T, scheme, host, user, pre, post, path string) {
		if strings.Contains(scheme+"|"+host+"|"+user+"|"+path, marker) || strings.Contains(pre+post, marker) {
			return
		}
		// "&" and ";" separate query parameters, whose keys are shown: a
		// value is taken to end there.
		if strings.ContainsAny(pre+post, "&;") {
			return
		}
		secret, value := pre+marker+post, post+marker+pre
		for _, raw := range []string{
			scheme + "://" + user + ":" + secret + "@" + host + path,
			scheme + "://" + secret + "@" + host + path,
			scheme + "://" + host + path + "?token=" + value,
			scheme + "://" + host + path + "?a=1&token=" + value + "#" + secret,
			secret + "@" + host + path,
		} {
			if out := URL(raw); strings.Contains(out, marker) {
				t.Fatalf("URL(%q) = %q shows the secret", raw, out)
			}
		}
	})
}

func TestValues(t *testing.T) {
	t.Parallel()
	hide := Values([]string{"Bearer s3cr3t-token", "s3cr3t-token", "abc", "tenant-7"})
	got := hide("got Authorization: Bearer s3cr3t-token, token s3cr3t-token, tenant tenant-7, abc kept")
	want := "got Authorization: REDACTED, token REDACTED, tenant REDACTED, abc kept"
	if got != want {
		t.Errorf("Values() = %q, want %q", got, want)
	}
	if got := Values(nil)("nothing to hide"); got != "nothing to hide" {
		t.Errorf("Values(nil) = %q", got)
	}
}

// A proxy that echoes the token lowercased, uppercased or cut short does
// not get it past: the whole secret whatever its letter case, and a part
// of at least MinFragment characters that starts or ends it.
func TestValuesEchoedByAProxy(t *testing.T) {
	t.Parallel()
	const token = "ghs_16C7e42F292c6912E7710c838347Ae178B4a"
	hide := Values([]string{token, "Bearer " + token})
	for _, tt := range []struct{ in, want string }{
		{"invalid token " + strings.ToLower(token), "invalid token REDACTED"},
		{"INVALID TOKEN " + strings.ToUpper(token) + ".", "INVALID TOKEN REDACTED."},
		{"token ghs_16C7e42F29… rejected", "token REDACTED… rejected"},
		{"token ghs_16c7e42f rejected", "token REDACTED rejected"},
		{"token …2c6912E7710c838347ae178b4a rejected", "token …REDACTED rejected"},
		{"cut " + token[:20] + "..." + token[30:], "cut REDACTED...REDACTED"},
		{"twice " + token + token, "twice REDACTED"},
		{"authorization: bearer " + strings.ToLower(token), "authorization: REDACTED"},
		// Shorter than a fragment, or not a part of its ends: kept.
		{"ghs_16C a prefix", "ghs_16C a prefix"},
		{"middle 6912E7710c83 kept", "middle 6912E7710c83 kept"},
		{"Bearer somebody else", "Bearer somebody else"},
		{"non-ASCII stays put: İstanbul " + token, "non-ASCII stays put: İstanbul REDACTED"},
	} {
		if got := hide(tt.in); got != tt.want {
			t.Errorf("hide(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// FuzzValues: whatever surrounds it, a secret (in any letter case) and
// its start and end of MinFragment characters never show.
func FuzzValues(f *testing.F) {
	f.Add("before ", " after", "ghs_16C7e42F292c6912E7710c838347Ae178B4a", uint8(0))
	f.Add("İ", "ghs", "abcdefghij", uint8(3))
	f.Fuzz(func(t *testing.T, before, after, secret string, how uint8) {
		if len(secret) < MinFragment || strings.ContainsAny(secret, " \t") {
			return
		}
		var echoed string
		switch how % 4 {
		case 0:
			echoed = secret
		case 1:
			echoed = FoldASCII(secret)
		case 2:
			echoed = secret[:MinFragment]
		case 3:
			b := []byte(secret[len(secret)-MinFragment:])
			for i, c := range b {
				if 'a' <= c && c <= 'z' {
					b[i] = c - 'a' + 'A'
				}
			}
			echoed = string(b)
		}
		out := Values([]string{secret})(before + echoed + after)
		if strings.Contains(FoldASCII(out), FoldASCII(echoed)) {
			t.Fatalf("Values(%q) shows %q in %q", secret, echoed, out)
		}
	})
}
