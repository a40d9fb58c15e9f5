// Command immune deploys every commit, watches its health, and rolls back
// what regresses. It runs as a container GitHub Action and as a CLI.
package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/signal"
	"syscall"

	"github.com/immune-cd/immune/internal/cli"
	"github.com/immune-cd/immune/internal/clock"
	"github.com/immune-cd/immune/internal/ghapi"
	"github.com/immune-cd/immune/internal/version"
)

func main() {
	// A cancelled job (SIGTERM, SIGINT) and a closed terminal (SIGHUP) stop
	// the run: what runs is stopped, the records are closed.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM, syscall.SIGHUP)
	// A closed pipe on stdout (`immune deploy ... | head`) would otherwise
	// kill the process mid-deploy. Caught (not ignored, which children
	// would inherit), it only makes writes to the log fail: the run
	// finishes, deploy, watch, rollback and records, unseen.
	pipe := make(chan os.Signal, 1)
	signal.Notify(pipe, syscall.SIGPIPE)
	go func() {
		for range pipe {
		}
	}()
	defer stop()
	exe, _ := os.Executable()
	transport := http.DefaultTransport.(*http.Transport).Clone()
	// Keep a connection to each health URL between its probes, however
	// many URLs a watch has (the default keeps 100 in all, 2 per host).
	transport.MaxIdleConns = 0
	transport.MaxIdleConnsPerHost = 8
	httpClient := &http.Client{Transport: transport}
	cmd := &cli.Command{
		Args:       os.Args[1:],
		Getenv:     os.Getenv,
		Environ:    os.Environ(),
		Stdout:     os.Stdout,
		Stderr:     os.Stderr,
		HTTP:       httpClient,
		Clock:      clock.Real{},
		Executable: exe,
		NewGitHub: func(token, apiURL, repository string, log io.Writer) (cli.GitHub, error) {
			return ghapi.New(ghapi.Options{
				HTTPClient: httpClient,
				APIURL:     apiURL,
				Token:      token,
				Repository: repository,
				UserAgent:  "immune/" + version.String(),
				Logf:       func(format string, args ...any) { fmt.Fprintf(log, "GitHub: "+format+"\n", args...) },
			})
		},
	}
	code := cmd.Main(ctx)
	stop()
	os.Exit(code)
}
