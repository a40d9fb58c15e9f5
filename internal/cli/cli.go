// Package cli is the program's front door. Without arguments it is the
// GitHub Action and reads INPUT_* variables; with a subcommand it is a CLI
// whose flags carry the inputs' names. Either way it loads the configuration
// and hands it to the action package.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/sethvargo/go-githubactions"

	"github.com/immune-cd/immune/internal/action"
	"github.com/immune-cd/immune/internal/clock"
	"github.com/immune-cd/immune/internal/config"
	"github.com/immune-cd/immune/internal/demo"
	"github.com/immune-cd/immune/internal/deploy"
	"github.com/immune-cd/immune/internal/hindsight"
	"github.com/immune-cd/immune/internal/logline"
	"github.com/immune-cd/immune/internal/recorder"
	"github.com/immune-cd/immune/internal/replay"
	"github.com/immune-cd/immune/internal/run"
	"github.com/immune-cd/immune/internal/version"
)

// Command is one invocation of the program.
type Command struct {
	Args    []string // without the program name
	Getenv  func(string) string
	Environ []string
	Stdout  io.Writer
	Stderr  io.Writer
	HTTP    *http.Client
	Clock   clock.Clock
	// Executable is the path of this program, for the demo's deploy command.
	Executable string
	// NewGitHub builds the GitHub API client for a token, the API's URL
	// and the repository (owner/name); log receives its lines.
	NewGitHub func(token, apiURL, repository string, log io.Writer) (GitHub, error)
}

// GitHub is what a run needs of GitHub's API: it keeps the run's records,
// and dispatches and follows the deploy workflow's runs (*ghapi.Client
// does both).
type GitHub interface {
	recorder.GitHub
	deploy.WorkflowAPI
}

const usage = `immune: deploy a commit, watch its health, roll back what regresses.

Usage:
  immune                      run as a GitHub Action (inputs from INPUT_* variables)
  immune deploy [flags]       deploy --sha, watch it, roll back on regression
  immune watch [flags]        watch what is deployed, no deploy
  immune rollback [flags]     roll back to --sha (or the last good deploy)
  immune gate [flags]         pass or fail a pull request while the line is stopped
  immune replay [flags] FILE... judge recorded looks (CSV) offline with the live judge
  immune backtest [flags]     what these metrics flags would have decided on the last deploys
  immune stats [flags]        the environment's record: deploys a day, failure rate, restore and lead times
  immune demo                 a local demo: a good deploy, a bad one, detection and rollback; then a canary
  immune demo canary          the canary act alone: a shared outage is not blamed, a bad canary is removed
  immune version

Flags carry the action's input names, e.g. --health-url, --deploy-command, --duration.
Run 'immune deploy -h' to list them with their defaults. backtest and stats print
Markdown, or JSON with --json.
`

// Main runs the command and returns the exit code. A panic, a bug of
// immune's, ends it with ExitError and a message rather than a stack trace
// (the action package recovers its own run and still publishes).
func (c *Command) Main(ctx context.Context) (code int) {
	// The log is best effort: a closed stdout (| head) must not stop a
	// deploy halfway.
	c.Stdout, c.Stderr = logline.BestEffort(c.Stdout), logline.BestEffort(c.Stderr)
	defer func() {
		if p := recover(); p != nil {
			fmt.Fprintf(c.Stderr, "immune: internal error: %v\n", p)
			code = action.ExitError
		}
	}()
	if len(c.Args) == 0 {
		return c.runAction(ctx)
	}
	switch sub := c.Args[0]; sub {
	case "deploy", "watch", "rollback", "gate", "backtest", "stats":
		return c.runCLI(ctx, run.Mode(sub), c.Args[1:])
	case "replay":
		return replay.Main(ctx, c.Args[1:], c.Stdout, c.Stderr)
	case "demo":
		o := demo.Options{Stdout: c.Stdout, HTTP: c.HTTP, Executable: c.Executable, Environ: c.Environ}
		switch act := strings.Join(c.Args[1:], " "); act {
		case "":
			return demo.Run(ctx, o)
		case "canary":
			return demo.Canary(ctx, o)
		default:
			fmt.Fprintf(c.Stderr, "immune demo: unknown act %q (the acts: none for all of them, or canary)\n", act)
			return action.ExitConfig
		}
	case "version", "--version":
		fmt.Fprintf(c.Stdout, "immune %s\n", version.String())
		return action.ExitOK
	case "help", "-h", "--help":
		fmt.Fprint(c.Stdout, usage)
		return action.ExitOK
	default:
		fmt.Fprintf(c.Stderr, "immune: unknown command %q%s\nRun 'immune help' for the commands.\n", sub,
			didYouMean(sub, []string{"deploy", "watch", "rollback", "gate", "backtest", "stats", "replay", "demo", "version", "help"}, ""))
		return action.ExitConfig
	}
}

// runAction runs as a container action: inputs come from INPUT_* variables.
func (c *Command) runAction(ctx context.Context) int {
	gha := githubactions.New(githubactions.WithGetenv(c.Getenv), githubactions.WithWriter(c.Stdout))
	return c.run(ctx, gha, gha.GetInput, false, false)
}

// runCLI runs with flags named like the inputs.
func (c *Command) runCLI(ctx context.Context, mode run.Mode, args []string) int {
	fs := flag.NewFlagSet("immune "+string(mode), flag.ContinueOnError)
	// A mistake gets a short answer below; -h gets the flags.
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	values := map[string]*string{}
	var names []string
	for _, in := range config.Inputs {
		if in.Name == "mode" {
			continue
		}
		desc := in.Description
		if in.Default != "" && !strings.HasPrefix(in.Default, "${{") {
			desc += fmt.Sprintf(" (default %q)", in.Default)
		}
		if in.Default == "true" || in.Default == "false" {
			// A yes-or-no input is a flag of its own: --shadow is
			// --shadow=true.
			v := &boolInput{}
			fs.Var(v, in.Name, desc)
			values[in.Name] = &v.value
		} else {
			values[in.Name] = fs.String(in.Name, "", desc)
		}
		names = append(names, in.Name)
	}
	var asJSON *bool
	if mode == run.ModeBacktest || mode == run.ModeStats {
		asJSON = fs.Bool("json", false, "print the JSON report instead of the Markdown summary")
	}
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			fmt.Fprintf(c.Stdout, "Usage: immune %s [flags]\n\nThe flags carry the action's input names:\n", mode)
			fs.SetOutput(c.Stdout)
			fs.PrintDefaults()
			return action.ExitOK
		}
		fmt.Fprintf(c.Stderr, "immune %s: %s\nRun 'immune %s -h' for its flags.\n", mode, flagError(err, names), mode)
		return action.ExitConfig
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(c.Stderr, "immune %s: unexpected argument %q (flags take the form --name=value)\n", mode, fs.Arg(0))
		return action.ExitConfig
	}
	get := func(name string) string {
		if name == "mode" {
			return string(mode)
		}
		v := *values[name]
		if name == "github-token" && v == "" {
			v = c.Getenv("GITHUB_TOKEN")
		}
		return v
	}
	gha := githubactions.New(githubactions.WithGetenv(c.Getenv), githubactions.WithWriter(c.Stdout))
	return c.run(ctx, gha, get, true, asJSON != nil && *asJSON)
}

// flagError says what was wrong with the command line, in one line.
func flagError(err error, names []string) string {
	msg := err.Error()
	if name, ok := strings.CutPrefix(msg, "flag provided but not defined: -"); ok {
		name = strings.TrimLeft(name, "-")
		return fmt.Sprintf("unknown flag --%s%s", name, didYouMean(name, names, "--"))
	}
	if name, ok := strings.CutPrefix(msg, "flag needs an argument: -"); ok {
		name = strings.TrimLeft(name, "-")
		return fmt.Sprintf("--%s needs a value: --%s=VALUE", name, name)
	}
	return msg
}

// didYouMean suggests the closest of names to a mistyped word: a name
// it starts or ends, or one at most a third of its letters away.
func didYouMean(word string, names []string, prefix string) string {
	best, bestDist := "", (len(word)+1)/3+1
	for _, n := range names {
		d := editDistance(word, n)
		if d < bestDist || (best == "" && len(word) >= 3 && (strings.HasPrefix(n, word) || strings.HasSuffix(n, word))) {
			best, bestDist = n, min(d, bestDist)
		}
	}
	if best == "" {
		return ""
	}
	return fmt.Sprintf("; did you mean %s%s?", prefix, best)
}

// editDistance is the Levenshtein distance between a and b.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur := make([]int, len(b)+1)
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev = cur
	}
	return prev[len(b)]
}

// run loads the configuration and runs; flags says the inputs came from
// the command line, so that errors name them as flags.
func (c *Command) run(ctx context.Context, gha *githubactions.Action, get config.Getter, flags, asJSON bool) int {
	plain := c.Getenv("GITHUB_ACTIONS") != "true"
	if !plain {
		// Secrets are masked before anything else is logged.
		maskSecrets(gha, get)
	}
	workspace := c.Getenv("GITHUB_WORKSPACE")
	if workspace == "" {
		workspace, _ = os.Getwd()
	}
	cfg, err := config.Parse(get, config.Env{
		EventName: c.Getenv("GITHUB_EVENT_NAME"),
		SHA:       c.Getenv("GITHUB_SHA"),
		Ref:       c.Getenv("GITHUB_REF"),
		Workspace: workspace,
		Flags:     flags,
	})
	if err != nil {
		for _, line := range strings.Split(err.Error(), "\n") {
			if plain {
				fmt.Fprintf(c.Stderr, "immune: %s\n", line)
			} else {
				gha.WithFieldsMap(map[string]string{"title": "Invalid input"}).Errorf("%s", line)
			}
		}
		return action.ExitConfig
	}
	if cfg.Mode == run.ModeBacktest || cfg.Mode == run.ModeStats {
		return c.runHindsight(ctx, cfg, plain, asJSON)
	}
	var (
		gh        recorder.GitHub
		workflows deploy.WorkflowAPI
	)
	if cfg.Token != "" && c.NewGitHub != nil {
		client, err := c.NewGitHub(cfg.Token, c.Getenv("GITHUB_API_URL"), c.Getenv("GITHUB_REPOSITORY"), c.Stdout)
		if err != nil {
			fmt.Fprintf(c.Stdout, "GitHub: %v; nothing will be recorded in GitHub\n", err)
		} else {
			gh, workflows = client, client
		}
	}
	return action.Run(ctx, action.Deps{
		GitHub:      gh,
		Workflows:   workflows,
		GHA:         gha,
		Getenv:      c.Getenv,
		Stdout:      c.Stdout,
		HTTP:        c.HTTP,
		Clock:       c.Clock,
		Environ:     c.Environ,
		Plain:       plain,
		Grace:       5 * time.Second,
		CancelGrace: 2 * time.Second,
	}, cfg)
}

// boolInput is the flag of a yes-or-no input: given alone it is "true";
// with a value, the value is the input's, which config checks.
type boolInput struct{ value string }

func (b *boolInput) String() string     { return b.value }
func (b *boolInput) Set(v string) error { b.value = v; return nil }
func (b *boolInput) IsBoolFlag() bool   { return true }

// runHindsight runs backtest or stats mode.
func (c *Command) runHindsight(ctx context.Context, cfg *config.Config, plain, asJSON bool) int {
	d := hindsight.Deps{HTTP: c.HTTP, Clock: c.Clock, Getenv: c.Getenv, Stdout: c.Stdout, Log: c.Stdout, Plain: plain, JSON: asJSON}
	if plain {
		d.Log = c.Stderr
	}
	if c.NewGitHub != nil {
		client, err := c.NewGitHub(cfg.Token, c.Getenv("GITHUB_API_URL"), c.Getenv("GITHUB_REPOSITORY"), d.Log)
		if err != nil {
			fmt.Fprintf(c.Stderr, "immune %s: GitHub: %v\n", cfg.Mode, err)
			return action.ExitConfig
		}
		d.GitHub = client
	}
	err := hindsight.Run(ctx, d, cfg)
	var pe *hindsight.PublishError
	switch {
	case err == nil:
		return action.ExitOK
	case errors.As(err, &pe):
		fmt.Fprintf(c.Stderr, "immune %s: %v\n", cfg.Mode, err)
		return action.ExitPublish
	}
	fmt.Fprintf(c.Stderr, "immune %s: %v\n", cfg.Mode, err)
	return action.ExitError
}

// maskSecrets registers every secret value with the runner's log masking.
func maskSecrets(gha *githubactions.Action, get config.Getter) {
	for _, secret := range config.SecretValues(get) {
		gha.AddMask(secret)
	}
}
