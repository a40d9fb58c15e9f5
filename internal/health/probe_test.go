package health

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/immune-cd/immune/internal/clock"
)

func accept2xx(code int) bool { return code >= 200 && code < 300 }

func TestProbe(t *testing.T) {
	t.Parallel()
	mux := http.NewServeMux()
	mux.HandleFunc("/ok", func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer t0ken" {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		w.Header().Set("X-Version", "abcdef1")
		fmt.Fprint(w, `{"status":"ok","build":{"sha":"abcdef1234567"},"items":[{"v":7}]}`)
	})
	mux.HandleFunc("/long-version", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, `{"version":%q}`, strings.Repeat("v", 70_000))
	})
	mux.HandleFunc("/down", func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusServiceUnavailable) })
	mux.HandleFunc("/moved", func(w http.ResponseWriter, r *http.Request) { http.Redirect(w, r, "/ok", http.StatusFound) })
	mux.HandleFunc("/slow", func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-time.After(2 * time.Second):
		case <-r.Context().Done():
		}
	})
	mux.HandleFunc("/big", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprint(w, strings.Repeat("x", MaxBody)+"TAIL")
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)

	tests := []struct {
		name      string
		path      string
		body      string
		version   VersionSource
		want      string
		failed    bool
		errSubstr string
		status    int
		version2  string
		match     bool
	}{
		{name: "healthy", path: "/ok", status: 200, match: true},
		{name: "bad status", path: "/down", status: 503, failed: true, errSubstr: "status 503 is not an expected status"},
		{name: "redirect is not followed", path: "/moved", status: 302, failed: true, errSubstr: "status 302"},
		{name: "timeout", path: "/slow", failed: true, errSubstr: "no answer within 100ms"},
		{name: "body matches", path: "/ok", body: `"status":"ok"`, status: 200, match: true},
		{name: "body does not match", path: "/ok", body: `"status":"green"`, status: 200, failed: true, errSubstr: `body does not match "status":"green"`},
		{name: "body read up to 1 MiB", path: "/big", body: "TAIL", status: 200, failed: true, errSubstr: "body does not match"},
		{name: "version in a header", path: "/ok", version: VersionSource{"header", "X-Version"}, want: "abcdef1234567890", status: 200, version2: "abcdef1", match: true},
		{name: "version by json path", path: "/ok", version: VersionSource{"json", "build.sha"}, want: "abcdef1", status: 200, version2: "abcdef1234567", match: true},
		{name: "json path into an array", path: "/ok", version: VersionSource{"json", "items.0.v"}, want: "1234567", status: 200, version2: "7", match: false},
		{name: "version in the body", path: "/ok", version: VersionSource{Kind: "body"}, want: "abcdef1234567890", status: 200, version2: "abcdef1", match: true},
		{name: "other version in the body", path: "/ok", version: VersionSource{Kind: "body"}, want: "7654321fedcba", status: 200, match: false},
		{name: "a version past MaxVersion is cut", path: "/long-version", version: VersionSource{"json", "version"}, want: "abcdef1", status: 200,
			version2: strings.Repeat("v", MaxVersion-1) + "…", match: false},
		{name: "connection refused", path: "refused", failed: true, errSubstr: "connection refused"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			p := &Prober{
				Client:  NoRedirects(srv.Client()),
				Clock:   clock.Real{},
				Timeout: 100 * time.Millisecond,
				Header:  http.Header{"Authorization": {"Bearer t0ken"}},
				Accept:  accept2xx,
				Version: tt.version,
			}
			if tt.body != "" {
				p.Body = regexp.MustCompile(tt.body)
			}
			url := srv.URL + tt.path
			if tt.path == "refused" {
				url = "http://127.0.0.1:1/health"
			}
			got := p.Probe(context.Background(), url, tt.want)
			if got.Failed != tt.failed || got.Status != tt.status || !strings.Contains(got.Error, tt.errSubstr) {
				t.Errorf("Probe() = failed %v status %d error %q; want failed %v status %d error containing %q", got.Failed, got.Status, got.Error, tt.failed, tt.status, tt.errSubstr)
			}
			if tt.version.Kind != "" && (got.Version != tt.version2 || got.VersionMatch != tt.match) {
				t.Errorf("version = %q match %v, want %q match %v", got.Version, got.VersionMatch, tt.version2, tt.match)
			}
			if strings.Contains(got.Error, "t0ken") {
				t.Errorf("error leaks the header: %q", got.Error)
			}
		})
	}
}
