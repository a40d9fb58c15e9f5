package cli

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/immune-cd/immune/internal/action"
	"github.com/immune-cd/immune/internal/clock"
)

// TestCommandMain runs the front door in process, as main does: the
// arguments, the environment, the exit code and what is written.
func TestCommandMain(t *testing.T) {
	t.Parallel()
	healthy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.Write([]byte("ok")) }))
	t.Cleanup(healthy.Close)
	tests := []struct {
		name   string
		args   []string
		env    map[string]string
		code   int
		stdout string // a part of each, "" for anything
		stderr string
	}{
		{"version", []string{"version"}, nil, action.ExitOK, "immune ", ""},
		{"help", []string{"help"}, nil, action.ExitOK, "immune deploy [flags]", ""},
		{"an unknown command", []string{"deploi"}, nil, action.ExitConfig, "", `unknown command "deploi"`},
		{"an unknown act of the demo", []string{"demo", "dance"}, nil, action.ExitConfig, "", `unknown act "dance"`},
		{"a mistyped flag", []string{"watch", "--helth-url", healthy.URL}, nil, action.ExitConfig, "", "helth-url"},
		{"an argument that is not a flag", []string{"watch", "now"}, nil, action.ExitConfig, "", `unexpected argument "now"`},
		{"invalid input, named", []string{"watch", "--health-url", "ftp://x", "--duration", "1s"}, nil, action.ExitConfig, "", "health-url"},
		{"the action without inputs", nil, map[string]string{"GITHUB_ACTIONS": "true"}, action.ExitConfig, "Invalid input", ""},
		{"--shadow alone is shadow: true (watch mode does not read it, and says so)", []string{"watch", "--shadow", "--health-url", healthy.URL, "--duration", "1s", "--interval", "100ms", "--startup-timeout", "1s"},
			nil, action.ExitOK, "--shadow is set but not used in watch mode", ""},
		{"a yes-or-no flag takes a value too", []string{"watch", "--shadow=maybe", "--health-url", healthy.URL}, nil, action.ExitConfig, "", `--shadow: "maybe" is not true or false`},
		{"a boolean flag alone is true", []string{"deploy", "--sha", "abc1234", "--health-url", healthy.URL, "--deploy-command", "true", "--bisect"}, nil,
			action.ExitConfig, "", "--bisect: each step of a bisection deploys a commit to the canary, and there is no canary: pass --canary-command"},
		{"a boolean flag set false", []string{"deploy", "--sha", "abc1234", "--health-url", healthy.URL, "--deploy-command", "true", "--bisect=false", "--bisect-timeout=2h"}, nil,
			action.ExitConfig, "", "--bisect-timeout: set without --bisect; pass --bisect"},
		{"a healthy watch", []string{"watch", "--health-url", healthy.URL, "--duration", "1s", "--interval", "100ms", "--startup-timeout", "1s"},
			nil, action.ExitOK, "healthy", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			env := map[string]string{"GITHUB_WORKSPACE": t.TempDir()}
			for k, v := range tt.env {
				env[k] = v
			}
			var stdout, stderr bytes.Buffer
			c := &Command{
				Args:   tt.args,
				Getenv: func(k string) string { return env[k] },
				Stdout: &stdout, Stderr: &stderr,
				HTTP:  healthy.Client(),
				Clock: clock.Real{},
			}
			code := c.Main(context.Background())
			if code != tt.code || !strings.Contains(stdout.String(), tt.stdout) || !strings.Contains(stderr.String(), tt.stderr) {
				t.Errorf("exit %d, want %d\nstdout:\n%s\nstderr:\n%s", code, tt.code, stdout.String(), stderr.String())
			}
		})
	}
}
