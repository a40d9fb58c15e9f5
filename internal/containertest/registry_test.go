//go:build containertest

package containertest

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"
)

// registry is Debian's docker-registry (the CNCF distribution registry) on
// 127.0.0.1, behind a proxy in this process that counts the bytes it serves,
// so that a test knows how many bytes a pull took.
type registry struct {
	Host             string // host:port of the proxy, the registry's address for clients
	served, received atomic.Int64
}

func (l *lab) startRegistry() *registry {
	l.t.Helper()
	port := freePort(l.t)
	dir := filepath.Join(l.work, "registry")
	conf := filepath.Join(dir, "config.yml")
	l.writeFile(conf, fmt.Sprintf(`version: 0.1
log:
  level: warn
  accesslog:
    disabled: true
storage:
  filesystem:
    rootdirectory: %s
http:
  addr: 127.0.0.1:%d
  relativeurls: true
`, filepath.Join(dir, "data"), port))
	logf, err := os.Create(filepath.Join(dir, "registry.log"))
	if err != nil {
		l.t.Fatal(err)
	}
	cmd := exec.Command("docker-registry", "serve", conf)
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		l.t.Fatal(err)
	}
	l.t.Cleanup(func() {
		cmd.Process.Kill()
		cmd.Wait()
		logf.Close()
	})
	target := &url.URL{Scheme: "http", Host: fmt.Sprintf("127.0.0.1:%d", port)}
	deadline := time.Now().Add(20 * time.Second)
	for {
		resp, err := http.Get(target.String() + "/v2/")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				break
			}
		}
		if time.Now().After(deadline) {
			data, _ := os.ReadFile(logf.Name())
			l.t.Fatalf("docker-registry did not answer on %s: %v\n%s", target, err, data)
		}
		time.Sleep(50 * time.Millisecond)
	}
	r := &registry{}
	proxy := httputil.NewSingleHostReverseProxy(target)
	director := proxy.Director
	proxy.Director = func(req *http.Request) {
		director(req)
		if req.Body != nil {
			req.Body = &countingBody{ReadCloser: req.Body, n: &r.received}
		}
	}
	proxy.ModifyResponse = func(resp *http.Response) error {
		resp.Body = &countingBody{ReadCloser: resp.Body, n: &r.served}
		return nil
	}
	srv := httptest.NewServer(proxy)
	l.t.Cleanup(srv.Close)
	r.Host = strings.TrimPrefix(srv.URL, "http://")
	l.t.Logf("docker-registry on %s, counted through %s", target.Host, r.Host)
	return r
}

// Served returns the bytes served (pulled) since the last call.
func (r *registry) Served() int64 { return r.served.Swap(0) }

// Received returns the bytes received (pushed) since the last call.
func (r *registry) Received() int64 { return r.received.Swap(0) }

type countingBody struct {
	io.ReadCloser
	n *atomic.Int64
}

func (b *countingBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.n.Add(int64(n))
	return n, err
}

func freePort(t interface{ Fatal(...any) }) int {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// storage is an image storage of its own, empty at first: what a runner
// starts from.
type storage struct {
	Root, RunRoot string
}

// Flags are podman's and buildah's global flags for this storage.
func (s storage) Flags() []string { return []string{"--root", s.Root, "--runroot", s.RunRoot} }

func (l *lab) emptyStorage(name string) storage {
	l.t.Helper()
	// podman refuses a runroot longer than 50 characters.
	runroot, err := os.MkdirTemp("/run", "ict-")
	if err != nil {
		l.t.Fatal(err)
	}
	s := storage{Root: filepath.Join(l.work, "storage-"+name), RunRoot: runroot}
	l.t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		l.run(ctx, "podman", append(s.Flags(), "rmi", "--all", "--force")...)
		os.RemoveAll(s.Root)
		os.RemoveAll(s.RunRoot)
	})
	return s
}
