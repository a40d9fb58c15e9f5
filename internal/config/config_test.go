package config

import (
	"errors"
	"github.com/immune-cd/immune/internal/run"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"gopkg.in/yaml.v3"
)

// inputs returns a Getter over m.
func inputs(m map[string]string) Getter {
	return func(name string) string { return m[name] }
}

// valid is a deploy-mode configuration that passes.
func valid() map[string]string {
	return map[string]string{
		"mode":           "deploy",
		"deploy-command": "./deploy.sh",
		"health-url":     "http://127.0.0.1:8080/health",
	}
}

var env = Env{EventName: "push", SHA: "0123456789abcdef0123456789abcdef01234567", Workspace: "/work"}

func TestParseDefaults(t *testing.T) {
	t.Parallel()
	c, err := Parse(inputs(valid()), env)
	if err != nil {
		t.Fatal(err)
	}
	checks := []struct {
		name      string
		got, want any
	}{
		{"mode", c.Mode, run.ModeDeploy},
		{"environment", c.Environment, "production"},
		{"sha", c.SHA, env.SHA},
		{"rollback-command", c.RollbackCommand, "./deploy.sh"},
		{"deploy-timeout", c.DeployTimeout, 10 * time.Minute},
		{"interval", c.Interval, 5 * time.Second},
		{"timeout", c.Timeout, 2 * time.Second},
		{"duration", c.Duration, 5 * time.Minute},
		{"startup-timeout", c.StartupTimeout, 60 * time.Second},
		{"expect-status", c.ExpectStatus.String(), "200-299"},
		{"max-error-rate", c.MaxErrorRate, 0.05},
		{"consecutive-failures", c.ConsecutiveFailures, 3},
		{"max-latency", c.MaxLatency, time.Duration(0)},
		{"latency-percentile", c.LatencyPercentile, 95.0},
		{"confidence", c.Confidence, 0.99},
		{"baseline-duration", c.BaselineDuration, time.Duration(0)},
		{"max-latency-increase", c.MaxLatencyIncrease, 1.5},
		{"auto-rollback", c.AutoRollback, true},
		{"rollback-duration", c.RollbackDuration, time.Minute},
		{"state-file", c.StateFile, filepath.Join("/work", ".immune/state.json")},
		{"token (expression default means unset)", c.Token, ""},
		{"fix-label", c.FixLabel, "immune:fix"},
		{"notify-webhook", c.NotifyWebhook, ""},
		{"notify-timeout", c.NotifyTimeout, 10 * time.Second},
	}
	for _, ch := range checks {
		if ch.got != ch.want {
			t.Errorf("%s = %v, want %v", ch.name, ch.got, ch.want)
		}
	}
	if len(c.Warnings) != 0 {
		t.Errorf("warnings = %q, want none", c.Warnings)
	}
}

func TestParseAutoMode(t *testing.T) {
	t.Parallel()
	tests := []struct {
		event string
		want  run.Mode
		err   string
	}{
		{"push", run.ModeDeploy, ""},
		{"workflow_dispatch", run.ModeRollback, ""},
		{"pull_request", run.ModeGate, ""},
		{"pull_request_target", run.ModeGate, ""},
		{"merge_group", run.ModeGate, ""},
		{"schedule", "", `input mode: auto cannot pick a mode for the "schedule" event`},
		{"", "", "input mode: auto needs GITHUB_EVENT_NAME"},
	}
	for _, tt := range tests {
		t.Run(tt.event, func(t *testing.T) {
			in := valid()
			delete(in, "mode")
			in["github-token"] = "ghs_x"
			e := env
			e.EventName = tt.event
			c, err := Parse(inputs(in), e)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("Parse() error = %v, want it to contain %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if c.Mode != tt.want {
				t.Errorf("mode = %s, want %s", c.Mode, tt.want)
			}
		})
	}
}

// TestDefaultTimeout: without a timeout input, a probe gets 2s, or the
// interval when that is shorter; a timeout set longer is refused above.
func TestDefaultTimeout(t *testing.T) {
	t.Parallel()
	for interval, want := range map[string]time.Duration{"5s": 2 * time.Second, "2s": 2 * time.Second, "100ms": 100 * time.Millisecond} {
		in := valid()
		in["interval"] = interval
		c, err := Parse(inputs(in), env)
		if err != nil || c.Timeout != want {
			t.Errorf("interval %s: timeout %v (%v), want %v", interval, c.Timeout, err, want)
		}
	}
}

// TestTimingsFollowDuration: interval and startup-timeout, when not set,
// follow duration (a tenth and a half of it, at most 5s and 60s), so that
// a short watch needs no other input; what is set is kept.
func TestTimingsFollowDuration(t *testing.T) {
	t.Parallel()
	tests := []struct {
		duration, interval, startup string
		wantInterval, wantStartup   time.Duration
	}{
		{"5m", "", "", 5 * time.Second, time.Minute},
		{"5s", "", "", 500 * time.Millisecond, 2500 * time.Millisecond},
		{"30s", "", "", 3 * time.Second, 15 * time.Second},
		{"1h", "", "", 5 * time.Second, time.Minute},
		{"5s", "1s", "", time.Second, 2500 * time.Millisecond},
		{"5s", "", "4s", 500 * time.Millisecond, 4 * time.Second},
	}
	for _, tt := range tests {
		in := valid()
		in["duration"], in["interval"], in["startup-timeout"] = tt.duration, tt.interval, tt.startup
		c, err := Parse(inputs(in), env)
		if err != nil || c.Interval != tt.wantInterval || c.StartupTimeout != tt.wantStartup {
			t.Errorf("duration %s, interval %q, startup-timeout %q: interval %v, startup %v (%v); want %v, %v",
				tt.duration, tt.interval, tt.startup, c.Interval, c.StartupTimeout, err, tt.wantInterval, tt.wantStartup)
		}
	}
}

func TestParseInvalid(t *testing.T) {
	t.Parallel()
	tests := []struct {
		input, value string
		want         string // the error must name the input and say this
	}{
		{"mode", "ship-it", `input mode: got "ship-it": expected auto, deploy, watch, rollback, gate, backtest or stats`},
		{"environment", "", ""}, // empty means default
		{"health-url", "", "input health-url: deploy mode needs a signal to watch: set health-url, metrics, or both"},
		{"health-url", "localhost:8080/health", `input health-url: "localhost:8080/health" is not an absolute http:// or https:// URL`},
		{"health-url", "ftp://x/health", "is not an absolute http:// or https:// URL"},
		{"health-url", "http://a/h, http://a/h", `"http://a/h" is listed twice`},
		{"health-url", "http://user:secret@a/h", `"http://REDACTED@a/h" carries credentials`},
		{"deploy-command", "", "input deploy-command: a command is required in deploy mode"},
		{"interval", "5", `input interval: "5" is not a duration like 250ms, 5s or 2m`},
		{"interval", "0s", `input interval: got "0s": expected a duration above zero`},
		{"interval", "10m", "input interval: 10m0s is not shorter than duration (5m0s): the watch would judge a single probe"},
		{"interval", "5m", "input interval: 5m0s is not shorter than duration (5m0s)"},
		{"timeout", "-1s", `input timeout: "-1s" is negative`},
		{"timeout", "6s", "input timeout: 6s is longer than interval (5s); a probe must end before the same URL's next one is due"},
		{"duration", "forever", `input duration: "forever" is not a duration`},
		{"startup-timeout", "6m", "input startup-timeout: 6m0s is longer than duration (5m0s)"},
		{"deploy-timeout", "0", `input deploy-timeout: got "0": expected a duration above zero`},
		{"expect-status", "200-", `input expect-status: "" is not an HTTP status code (100-599); expected codes and ranges like 200,204,300-302`},
		{"expect-status", "299-200", `range "299-200" runs backwards`},
		{"expect-status", "ok", `"ok" is not an HTTP status code`},
		{"expect-status", "600", `"600" is not an HTTP status code`},
		{"expect-body", "(", "input expect-body: expected an RE2 regular expression"},
		{"expect-version", "xml:/version", `input expect-version: "xml:/version" is not body, header:<Name> or json:<dot.path>`},
		{"expect-version", "json:", "is not body, header:<Name> or json:<dot.path>"},
		{"headers", "Authorization Bearer abc", `input headers: line 1 is not of the form "Name: value"`},
		{"headers", "X-Key:", "input headers: line 1: header X-Key has an empty value"},
		{"headers", "Bad Name: v", `input headers: line 1: "Bad Name" is not a valid header name`},
		{"max-error-rate", "5", `input max-error-rate: "5" is not a percentage like 5% or a fraction like 0.05`},
		{"max-error-rate", "0%", `input max-error-rate: got "0%": expected a rate above 0% and below 100%`},
		{"max-error-rate", "150%", "is not a percentage"},
		{"consecutive-failures", "0", `input consecutive-failures: got "0": expected a whole number of at least 1`},
		{"consecutive-failures", "three", "expected a whole number of at least 1"},
		{"max-latency", "fast", `input max-latency: "fast" is not a duration`},
		{"latency-percentile", "100", `input latency-percentile: "100" is not a percentile between 0 and 100`},
		{"confidence", "40%", `input confidence: got "40%": expected a confidence above 50% and at most 99.99%`},
		{"baseline-duration", "1s", "input baseline-duration: 1s is shorter than interval (5s)"},
		{"max-latency-increase", "0.5", `input max-latency-increase: got "0.5": expected a factor of at least 1`},
		{"auto-rollback", "yes", `input auto-rollback: "yes" is not true or false`},
		{"rollback-duration", "0s", `input rollback-duration: got "0s": expected a duration above zero`},
		{"sha", "not a sha!", `input sha: got "not a sha!": expected a commit SHA or ref name`},
		{"previous-sha", env.SHA, "input previous-sha: got \"" + env.SHA + "\": is the same commit as sha"},
		{"environment-url", "prod", "input environment-url: expected one absolute http:// or https:// URL"},
		{"environment", strings.Repeat("e", 249), `expected at most 248 characters, so that the commit status context "immune/…" fits GitHub's limit of 255 (got 249 characters)`},
		{"lock-timeout", "soon", `input lock-timeout: "soon" is not a duration`},
		{"duration", "2562047h47m16s", `input duration: got "2562047h47m16s": expected at most 168h0m0s`},
		{"duration", "100000h", `input duration: got "100000h": expected at most 168h0m0s`},
		{"deploy-timeout", "25h", `input deploy-timeout: got "25h": expected at most 24h0m0s`},
		{"notify-webhook", "hooks.slack.com/services/T0/B0/secret", "input notify-webhook: expected one absolute http:// or https:// URL (the value is not shown: it is a secret)"},
		{"notify-webhook", "https://hooks.example.com/a, https://hooks.example.com/b", "input notify-webhook: expected one absolute"},
		{"notify-secret", "key", "input notify-secret: is set but notify-webhook is empty"},
		{"notify-timeout", "0s", `input notify-timeout: got "0s": expected a duration above zero`},
		{"notify-timeout", "1h", `input notify-timeout: got "1h": expected at most 5m0s`},
	}
	for _, tt := range tests {
		t.Run(tt.input+"="+tt.value, func(t *testing.T) {
			t.Parallel()
			in := valid()
			in[tt.input] = tt.value
			_, err := Parse(inputs(in), env)
			if tt.want == "" {
				if err != nil {
					t.Fatalf("Parse() = %v, want no error", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Parse() succeeded, want error %q", tt.want)
			}
			if !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Parse() error = %q\nwant it to contain %q", err, tt.want)
			}
			var ie *InputError
			if !errors.As(err, &ie) {
				t.Errorf("error %T is not an *InputError", err)
			}
		})
	}
}

func TestParseReportsEveryProblem(t *testing.T) {
	t.Parallel()
	in := valid()
	in["interval"] = "soon"
	in["max-error-rate"] = "lots"
	in["auto-rollback"] = "maybe"
	_, err := Parse(inputs(in), env)
	if err == nil {
		t.Fatal("Parse() succeeded")
	}
	for _, name := range []string{"interval", "max-error-rate", "auto-rollback"} {
		if !strings.Contains(err.Error(), "input "+name+":") {
			t.Errorf("error does not name %s: %v", name, err)
		}
	}
}

func TestParseNeverEchoesSecrets(t *testing.T) {
	t.Parallel()
	in := valid()
	in["headers"] = "Authorization: Bearer s3cr3t-value\nX-Broken s3cr3t-value"
	in["github-token"] = "ghs_s3cr3t"
	in["notify-webhook"] = "hooks.example.com/s3cr3t"
	in["notify-secret"] = "s3cr3t"
	_, err := Parse(inputs(in), env)
	if err == nil {
		t.Fatal("Parse() succeeded")
	}
	if strings.Contains(err.Error(), "s3cr3t") {
		t.Errorf("error leaks a secret: %v", err)
	}
}

func TestParseModes(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		in   map[string]string
		env  Env
		err  string
		warn string
	}{
		{name: "watch needs no command", in: map[string]string{"mode": "watch", "health-url": "http://a/h"}, env: env},
		{name: "watch warns about the deploy command", in: map[string]string{"mode": "watch", "health-url": "http://a/h", "deploy-command": "x"}, env: env, warn: "input deploy-command is set but not used in watch mode"},
		{name: "gate needs no health URL", in: map[string]string{"mode": "gate", "github-token": "t"}, env: env},
		{name: "gate needs a token", in: map[string]string{"mode": "gate"}, env: env, err: "input github-token: gate mode reads the environment's deployments"},
		{name: "gate warns about the webhook", in: map[string]string{"mode": "gate", "github-token": "t", "notify-webhook": "https://hooks.example.com/x"}, env: env, warn: "input notify-webhook is set but not used in gate mode"},
		{name: "deploy reads the fix label", in: map[string]string{"mode": "deploy", "deploy-command": "x", "health-url": "http://a/h", "fix-label": "hotfix"}, env: env},
		{name: "rollback takes a short sha", in: map[string]string{"mode": "rollback", "deploy-command": "x", "health-url": "http://a/h", "sha": "0123abc"}, env: env},
		{name: "rollback refuses a non-hex sha", in: map[string]string{"mode": "rollback", "deploy-command": "x", "health-url": "http://a/h", "sha": "main"}, env: env, err: "expected a commit SHA of 7 to 40 hex characters"},
		{name: "rollback does not default sha to GITHUB_SHA", in: map[string]string{"mode": "rollback", "deploy-command": "x", "health-url": "http://a/h"}, env: env},
		{name: "rollback needs a command", in: map[string]string{"mode": "rollback", "health-url": "http://a/h"}, env: env, err: "input rollback-command: a rollback-command or deploy-command is required"},
		{name: "deploy needs a sha", in: valid(), env: Env{EventName: "push"}, err: "input sha: no commit to deploy"},
		{name: "watch needs no sha", in: map[string]string{"mode": "watch", "health-url": "http://a/h"}, env: Env{}},
		{name: "watch for a version needs a sha", in: map[string]string{"mode": "watch", "health-url": "http://a/h", "expect-version": "header:X-Version"}, env: Env{}, err: "input sha: expect-version needs the version to expect"},
		{name: "deploy with only a rollback command", in: map[string]string{"mode": "deploy", "rollback-command": "x", "health-url": "http://a/h"}, env: env, err: "input deploy-command: a command is required in deploy mode"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, err := Parse(inputs(tt.in), tt.env)
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("Parse() error = %v, want %q", err, tt.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := strings.Join(c.Warnings, "\n"); tt.warn != "" && !strings.Contains(got, tt.warn) || tt.warn == "" && got != "" {
				t.Errorf("warnings = %q, want %q", got, tt.warn)
			}
			if tt.in["mode"] == "rollback" && c.SHA != tt.in["sha"] {
				t.Errorf("sha = %q, want %q", c.SHA, tt.in["sha"])
			}
		})
	}
}

func TestParseStatusSet(t *testing.T) {
	t.Parallel()
	set, err := ParseStatusSet("200, 204,300-302\n418")
	if err != nil {
		t.Fatal(err)
	}
	for code, want := range map[int]bool{200: true, 201: false, 204: true, 299: false, 300: true, 301: true, 302: true, 303: false, 418: true, 500: false} {
		if got := set.Contains(code); got != want {
			t.Errorf("Contains(%d) = %v, want %v", code, got, want)
		}
	}
	if got := set.String(); got != "200,204,300-302,418" {
		t.Errorf("String() = %q", got)
	}
}

func TestParseHeaders(t *testing.T) {
	t.Parallel()
	got, err := ParseHeaders("authorization: Bearer abc:def\n\n  X-Tenant :  blue  \n")
	if err != nil {
		t.Fatal(err)
	}
	want := []Header{{"Authorization", "Bearer abc:def"}, {"X-Tenant", "blue"}}
	if len(got) != len(want) || got[0] != want[0] || got[1] != want[1] {
		t.Errorf("ParseHeaders() = %q, want %q", got, want)
	}
}

func TestParseFraction(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]float64{"5%": 0.05, "0.05": 0.05, " 2.5 % ": 0.025, "1": 1, "100%": 1} {
		got, err := ParseFraction(in)
		if err != nil || got != want {
			t.Errorf("ParseFraction(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
}

func TestParseVersionSource(t *testing.T) {
	t.Parallel()
	for in, want := range map[string]VersionSource{
		"":                  {},
		"body":              {Kind: "body"},
		"header:x-version":  {Kind: "header", Arg: "X-Version"},
		"json:build.sha":    {Kind: "json", Arg: "build.sha"},
		" JSON: items.0.v ": {Kind: "json", Arg: "items.0.v"},
	} {
		got, err := ParseVersionSource(in)
		if err != nil || got != want {
			t.Errorf("ParseVersionSource(%q) = %+v, %v; want %+v", in, got, err, want)
		}
	}
}

// TestActionYAML keeps action.yml and the Inputs table in step: names,
// order, defaults and descriptions.
func TestActionYAML(t *testing.T) {
	t.Parallel()
	data, err := os.ReadFile("../../action.yml")
	if err != nil {
		t.Fatal(err)
	}
	var meta struct {
		Name     string `yaml:"name"`
		Branding struct{ Icon, Color string }
		Inputs   yaml.Node `yaml:"inputs"`
		Outputs  yaml.Node `yaml:"outputs"`
		Runs     struct {
			Using, Image string
		}
	}
	if err := yaml.Unmarshal(data, &meta); err != nil {
		t.Fatal(err)
	}
	if meta.Runs.Using != "docker" || meta.Runs.Image != "Dockerfile" {
		t.Errorf("runs = %+v, want using docker, image Dockerfile", meta.Runs)
	}
	if meta.Branding.Icon == "" || meta.Branding.Color == "" {
		t.Error("action.yml has no branding")
	}
	check := func(kind string, node yaml.Node, want []Input, withDefault bool) {
		if len(node.Content) != 2*len(want) {
			t.Fatalf("action.yml has %d %s, the code %d", len(node.Content)/2, kind, len(want))
		}
		for i, in := range want {
			var got struct {
				Description string  `yaml:"description"`
				Default     *string `yaml:"default"`
			}
			if err := node.Content[2*i+1].Decode(&got); err != nil {
				t.Fatal(err)
			}
			if name := node.Content[2*i].Value; name != in.Name {
				t.Errorf("%s %d is %q in action.yml, %q in the code", kind, i, name, in.Name)
			}
			if got.Description != in.Description {
				t.Errorf("%s %s: description differs:\n yml: %s\ngo:  %s", kind, in.Name, got.Description, in.Description)
			}
			if withDefault && (got.Default == nil || *got.Default != in.Default) {
				t.Errorf("input %s: default in action.yml is %v, the code %q", in.Name, got.Default, in.Default)
			}
		}
	}
	check("inputs", meta.Inputs, Inputs, true)
	check("outputs", meta.Outputs, Outputs, false)
}

// Probes per watch are bounded, whatever the two durations are.
func TestProbesPerWatchBounded(t *testing.T) {
	t.Parallel()
	in := valid()
	in["duration"], in["interval"] = "168h", "1ms"
	_, err := Parse(inputs(in), env)
	if err == nil || !strings.Contains(err.Error(), "input duration: 168h0m0s at an interval of 1ms is 604800000 probes per URL; at most 1000000 are allowed") {
		t.Errorf("Parse() = %v", err)
	}
	in["duration"], in["interval"] = "168h", "1s"
	if _, err := Parse(inputs(in), env); err != nil {
		t.Errorf("a week at 1s: %v", err)
	}
}

func TestCheckEnvironment(t *testing.T) {
	t.Parallel()
	if err := checkEnvironment(strings.Repeat("e", 248)); err != nil {
		t.Errorf("248 characters: %v", err)
	}
	if err := checkEnvironment(strings.Repeat("e", 249)); err == nil || !strings.Contains(err.Error(), "at most 248 characters") {
		t.Errorf("249 characters: %v", err)
	}
	if err := checkEnvironment("prod\nx"); err == nil {
		t.Error("a newline was accepted")
	}
}
