package faultproxy

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestFaults(t *testing.T) {
	t.Parallel()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, strings.Repeat("x", 1000)) }))
	defer srv.Close()
	p := Start(t, strings.TrimPrefix(srv.URL, "http://"))
	get := func(timeout time.Duration) (int, time.Duration, error) {
		c := &http.Client{Timeout: timeout, Transport: &http.Transport{DisableKeepAlives: true}}
		start := time.Now()
		resp, err := c.Get("http://" + p.Addr() + "/")
		if err != nil {
			return 0, time.Since(start), err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return len(b), time.Since(start), err
	}
	if n, _, err := get(5 * time.Second); err != nil || n != 1000 {
		t.Fatalf("clean: %d bytes, %v", n, err)
	}
	p.Set(Faults{Latency: 200 * time.Millisecond})
	if n, took, err := get(5 * time.Second); err != nil || n != 1000 || took < 200*time.Millisecond {
		t.Errorf("latency: %d bytes in %s, %v", n, took, err)
	}
	p.Set(Faults{Reset: true})
	if _, _, err := get(5 * time.Second); err == nil {
		t.Error("reset: no error")
	}
	p.Set(Faults{Blackhole: true})
	if _, took, err := get(300 * time.Millisecond); err == nil || took < 300*time.Millisecond {
		t.Errorf("blackhole: %v after %s", err, took)
	}
	p.Set(Faults{BytesPerSecond: 2000})
	if n, took, err := get(5 * time.Second); err != nil || n != 1000 || took < 300*time.Millisecond {
		t.Errorf("slow: %d bytes in %s, %v", n, took, err)
	}
}
