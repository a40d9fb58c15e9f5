// Command immune deploys every commit, watches its health, and rolls back
// what regresses. It runs as a container GitHub Action and as a CLI.
package main

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"os/signal"
	"syscall"

	"github.com/immune-cd/immune/internal/action"
	"github.com/immune-cd/immune/internal/cli"
	"github.com/immune-cd/immune/internal/clock"
	"github.com/immune-cd/immune/internal/ghapi"
	"github.com/immune-cd/immune/internal/recorder"
)

func main() {
	// A cancelled job (SIGTERM, SIGINT), a closed terminal (SIGHUP) and a
	// closed pipe on stdout (SIGPIPE: `immune deploy ... | head`) all stop
	// the run the same way: what runs is stopped, the records are closed.
	// Without this, SIGPIPE would kill the process mid-deploy.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM, syscall.SIGHUP, syscall.SIGPIPE)
	defer stop()
	exe, _ := os.Executable()
	httpClient := &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone()}
	cmd := &cli.Command{
		Args:       os.Args[1:],
		Getenv:     os.Getenv,
		Environ:    os.Environ(),
		Stdout:     os.Stdout,
		Stderr:     os.Stderr,
		HTTP:       httpClient,
		Clock:      clock.Real{},
		Executable: exe,
		NewGitHub: func(token string) (recorder.GitHub, error) {
			return ghapi.New(ghapi.Options{
				HTTPClient: httpClient,
				APIURL:     os.Getenv("GITHUB_API_URL"),
				Token:      token,
				Repository: os.Getenv("GITHUB_REPOSITORY"),
				UserAgent:  "immune/" + action.Version,
				Logf:       func(format string, args ...any) { fmt.Fprintf(os.Stdout, "GitHub: "+format+"\n", args...) },
			})
		},
	}
	code := cmd.Main(ctx)
	stop()
	os.Exit(code)
}
