// Command immune deploys every commit, watches its health, and rolls back
// what regresses. It runs as a container GitHub Action and as a CLI.
package main

import (
	"context"
	"net/http"
	"os"
	"os/signal"
	"syscall"

	"github.com/immune-cd/immune/internal/cli"
	"github.com/immune-cd/immune/internal/clock"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	exe, _ := os.Executable()
	cmd := &cli.Command{
		Args:       os.Args[1:],
		Getenv:     os.Getenv,
		Environ:    os.Environ(),
		Stdout:     os.Stdout,
		Stderr:     os.Stderr,
		HTTP:       &http.Client{Transport: http.DefaultTransport.(*http.Transport).Clone()},
		Clock:      clock.Real{},
		Executable: exe,
	}
	code := cmd.Main(ctx)
	stop()
	os.Exit(code)
}
