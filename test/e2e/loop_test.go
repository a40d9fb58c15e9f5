package e2e

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/immune-cd/immune/internal/testkit/testservice"
)

// fast are short timings so a whole deploy, watch and rollback takes a
// few seconds. A probe may take up to the interval (timeout), which leaves
// room for a loaded machine.
func fast(url string, extra map[string]string) map[string]string {
	in := map[string]string{
		"mode":              "auto",
		"health-url":        url + "/health",
		"deploy-command":    deployVia(url),
		"interval":          "100ms",
		"timeout":           "100ms",
		"duration":          "2s",
		"startup-timeout":   "400ms",
		"rollback-duration": "500ms",
		"github-token":      "",
	}
	for k, v := range extra {
		in[k] = v
	}
	return in
}

func TestLoop(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name        string
		script      map[string]testservice.Behaviour
		inputs      map[string]string
		wantCode    int
		wantVerdict string
		wantServing string
		wantDeploys []string
		wantReason  string
		detected    bool // detected-after is set
	}{
		{
			name:        "healthy deploy",
			wantCode:    0,
			wantVerdict: "healthy",
			wantServing: shaNew,
			wantDeploys: []string{shaNew},
			wantReason:  "",
		},
		{
			name:        "crash after deploy",
			script:      map[string]testservice.Behaviour{shaNew: {FailRate: 1, FailStatus: 503}},
			wantCode:    1,
			wantVerdict: "rolled-back",
			wantServing: shaGood,
			wantDeploys: []string{shaNew, shaGood},
			wantReason:  "no healthy answer from",
			detected:    true,
		},
		{
			name:        "crash after it went live",
			script:      map[string]testservice.Behaviour{shaNew: {FailRate: 1, FailStatus: 503}},
			inputs:      map[string]string{"startup-timeout": "0s"},
			wantCode:    1,
			wantVerdict: "rolled-back",
			wantServing: shaGood,
			wantDeploys: []string{shaNew, shaGood},
			wantReason:  "3 probes in a row failed",
			detected:    true,
		},
		{
			name:        "partial failures",
			script:      map[string]testservice.Behaviour{shaNew: {FailRate: 0.3}},
			wantCode:    1,
			wantVerdict: "rolled-back",
			wantServing: shaGood,
			wantDeploys: []string{shaNew, shaGood},
			wantReason:  "probes failed",
			detected:    true,
		},
		{
			name:        "latency regression",
			script:      map[string]testservice.Behaviour{shaNew: {LatencyMS: 1, SlowRate: 0.5, SlowMS: 60}},
			inputs:      map[string]string{"max-latency": "40ms", "interval": "100ms", "timeout": "100ms"},
			wantCode:    1,
			wantVerdict: "rolled-back",
			wantServing: shaGood,
			wantDeploys: []string{shaNew, shaGood},
			wantReason:  "latency",
			detected:    true,
		},
		{
			name:        "never becomes healthy",
			script:      map[string]testservice.Behaviour{shaNew: {Hang: true}},
			inputs:      map[string]string{"timeout": "40ms"},
			wantCode:    1,
			wantVerdict: "rolled-back",
			wantServing: shaGood,
			wantDeploys: []string{shaNew, shaGood},
			wantReason:  "no healthy answer from",
			detected:    true,
		},
		{
			name:        "deploy command fails",
			inputs:      map[string]string{"deploy-command": "echo 'migration 0042 failed' >&2; exit 4", "rollback-command": "DEPLOY"},
			wantCode:    1,
			wantVerdict: "rolled-back",
			wantServing: shaGood,
			wantDeploys: []string{shaGood},
			wantReason:  "the deploy command failed: command exited with status 4",
		},
		{
			name:        "deploy command hangs past its timeout",
			inputs:      map[string]string{"deploy-command": "sleep 30", "deploy-timeout": "300ms", "rollback-command": "DEPLOY"},
			wantCode:    1,
			wantVerdict: "rolled-back",
			wantServing: shaGood,
			wantDeploys: []string{shaGood},
			wantReason:  "command did not finish within 300ms; its process group was killed",
		},
		{
			name:        "rollback command fails",
			script:      map[string]testservice.Behaviour{shaNew: {FailRate: 1}},
			inputs:      map[string]string{"rollback-command": "exit 1"},
			wantCode:    1,
			wantVerdict: "rollback-failed",
			wantServing: shaNew,
			wantDeploys: []string{shaNew},
			wantReason:  "no healthy answer from",
			detected:    true,
		},
		{
			name:        "rollback stays unhealthy",
			script:      map[string]testservice.Behaviour{shaNew: {FailRate: 1}, shaGood: {FailRate: 1}},
			wantCode:    1,
			wantVerdict: "rollback-failed",
			wantServing: shaGood,
			wantDeploys: []string{shaNew, shaGood},
			wantReason:  "no healthy answer from",
			detected:    true,
		},
		{
			name:        "auto-rollback off",
			script:      map[string]testservice.Behaviour{shaNew: {FailRate: 1}},
			inputs:      map[string]string{"auto-rollback": "false"},
			wantCode:    1,
			wantVerdict: "regressed",
			wantServing: shaNew,
			wantDeploys: []string{shaNew},
			wantReason:  "no healthy answer from",
			detected:    true,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			svc, url := service(t, tt.script, shaGood)
			inputs := fast(url, tt.inputs)
			if inputs["rollback-command"] == "DEPLOY" {
				inputs["rollback-command"] = deployVia(url)
			}
			run := newActionRun(t, "push", inputs)
			res := run.exec()
			if res.code != tt.wantCode {
				t.Fatalf("exit code = %d, want %d\n%s", res.code, tt.wantCode, res.log)
			}
			o := res.outputs
			if o["verdict"] != tt.wantVerdict {
				t.Errorf("verdict = %q, want %q", o["verdict"], tt.wantVerdict)
			}
			if o["sha"] != shaNew || o["previous-sha"] != shaGood {
				t.Errorf("sha, previous-sha = %q, %q; want %q, %q", o["sha"], o["previous-sha"], shaNew, shaGood)
			}
			if want := strconv.FormatBool(tt.wantVerdict == "rolled-back" || tt.wantVerdict == "rollback-failed"); o["rolled-back"] != want {
				t.Errorf("rolled-back = %q, want %s", o["rolled-back"], want)
			}
			if got := svc.Current(); got != tt.wantServing {
				t.Errorf("service runs %s, want %s", got, tt.wantServing)
			}
			if got := strings.Join(svc.Deploys(), ","); got != strings.Join(tt.wantDeploys, ",") {
				t.Errorf("deploys = %s, want %s", got, strings.Join(tt.wantDeploys, ","))
			}
			if (o["detected-after"] != "") != tt.detected {
				t.Errorf("detected-after = %q, want set: %v", o["detected-after"], tt.detected)
			}
			if reason, _ := res.report["reason"].(string); !strings.Contains(reason, tt.wantReason) {
				t.Errorf("reason = %q, want it to contain %q", reason, tt.wantReason)
			}
			for _, name := range []string{"error-rate", "latency-p95-ms", "probes", "report"} {
				if _, ok := o[name]; !ok {
					t.Errorf("output %s is missing", name)
				}
			}
			if !strings.Contains(res.summary, "immune:") {
				t.Errorf("summary has no headline:\n%s", res.summary)
			}
			if tt.wantVerdict != "healthy" && !strings.Contains(res.log, "::error title=") {
				t.Errorf("log has no error annotation:\n%s", res.log)
			}
			t.Logf("%s: exit %d, verdict %s, detected after %ss, probes %s, error rate %s", tt.name, res.code, o["verdict"], o["detected-after"], o["probes"], o["error-rate"])
		})
	}
}

// TestStateFileIsTheMemory: a healthy deploy is remembered, and the next
// regression rolls back to it rather than to the push event's before.
func TestStateFileIsTheMemory(t *testing.T) {
	t.Parallel()
	svc, url := service(t, map[string]testservice.Behaviour{shaNew: {FailRate: 1}}, "")
	state := filepath.Join(t.TempDir(), "state.json")

	first := newActionRun(t, "push", fast(url, map[string]string{"state-file": state}))
	first.env["GITHUB_SHA"] = shaOlder
	if res := first.exec(); res.code != 0 {
		t.Fatalf("first deploy: exit %d\n%s", res.code, res.log)
	}
	second := newActionRun(t, "push", fast(url, map[string]string{"state-file": state}))
	res := second.exec()
	if res.code != 1 || res.outputs["previous-sha"] != shaOlder || res.outputs["verdict"] != "rolled-back" {
		t.Fatalf("second deploy: exit %d, previous-sha %s, verdict %s; want 1, %s, rolled-back\n%s", res.code, res.outputs["previous-sha"], res.outputs["verdict"], shaOlder, res.log)
	}
	if !strings.Contains(res.log, "(from the state file)") {
		t.Errorf("log does not say where the target came from:\n%s", res.log)
	}
	if got := svc.Current(); got != shaOlder {
		t.Errorf("service runs %s, want %s", got, shaOlder)
	}
	data, err := os.ReadFile(state)
	if err != nil || !strings.Contains(string(data), `"last_good": "`+shaOlder+`"`) {
		t.Errorf("state file = %s, %v", data, err)
	}
}

func TestNothingToRollBackTo(t *testing.T) {
	t.Parallel()
	_, url := service(t, map[string]testservice.Behaviour{shaNew: {FailRate: 1}}, "")
	run := newActionRun(t, "push", fast(url, nil))
	os.Remove(run.env["GITHUB_EVENT_PATH"]) // no event: no before
	res := run.exec()
	if res.code != 1 || res.outputs["verdict"] != "regressed" || res.outputs["previous-sha"] != "" {
		t.Fatalf("exit %d, verdict %q, previous-sha %q; want 1, regressed, empty", res.code, res.outputs["verdict"], res.outputs["previous-sha"])
	}
	if !strings.Contains(res.log, "nothing was rolled back: no previous-sha input") {
		t.Errorf("log does not say why nothing was rolled back:\n%s", res.log)
	}
}

// TestInvalidInput: every invalid input ends with exit 2, a message naming
// the input, and nothing deployed.
func TestInvalidInput(t *testing.T) {
	t.Parallel()
	tests := []struct {
		input, value, want string
	}{
		{"mode", "yolo", "input mode: got \"yolo\": expected auto, deploy, watch, rollback, gate, backtest or stats"},
		{"health-url", "", "input health-url: deploy mode needs a signal to watch: set health-url, metrics, or both"},
		{"health-url", "127.0.0.1/health", "is not an absolute http:// or https:// URL"},
		{"deploy-command", "", "input deploy-command: a command is required in deploy mode"},
		{"interval", "fast", "input interval:"},
		{"timeout", "0s", "input timeout:"},
		{"timeout", "1s", "input timeout: 1s is longer than interval (100ms); a probe must end before the same URL's next one is due"},
		{"duration", "1", "input duration:"},
		{"startup-timeout", "3s", "input startup-timeout: 3s is longer than duration (2s)"},
		{"deploy-timeout", "soon", "input deploy-timeout:"},
		{"expect-status", "2xx", "input expect-status:"},
		{"expect-body", "[", "input expect-body:"},
		{"expect-version", "sha", "input expect-version:"},
		{"headers", "X-Api-Key s3cr3t-key-value", "input headers: line 1 is not of the form"},
		{"max-error-rate", "five", "input max-error-rate:"},
		{"consecutive-failures", "-1", "input consecutive-failures:"},
		{"max-latency", "1 second", "input max-latency:"},
		{"latency-percentile", "0", "input latency-percentile:"},
		{"confidence", "101%", "input confidence:"},
		{"baseline-duration", "10ms", "input baseline-duration:"},
		{"max-latency-increase", "x", "input max-latency-increase:"},
		{"auto-rollback", "on", "input auto-rollback:"},
		{"rollback-duration", "0s", "input rollback-duration:"},
		{"sha", "main branch", "input sha:"},
		{"previous-sha", "$(id)", "input previous-sha:"},
		{"environment-url", "not a url", "input environment-url:"},
		{"prometheus-url", "prometheus:9090", `input prometheus-url: "prometheus:9090" is not an absolute http:// or https:// URL`},
		{"prometheus-headers", "Authorization Bearer s3cr3t-token-value", "input prometheus-headers: line 1 is not of the form"},
		{"metrics", "- name: latency\n  query: up", `input metrics: entry 1 ("latency"): needs max or min`},
		{"min-requests", "0", "input min-requests:"},
		{"state-file", "", ""}, // empty means the default
	}
	for _, tt := range tests {
		t.Run(tt.input, func(t *testing.T) {
			t.Parallel()
			svc, url := service(t, nil, shaGood)
			marker := filepath.Join(t.TempDir(), "deployed")
			in := fast(url, map[string]string{"deploy-command": "touch " + marker + "; " + deployVia(url)})
			in[tt.input] = tt.value
			res := newActionRun(t, "push", in).exec()
			if tt.want == "" {
				if res.code != 0 {
					t.Fatalf("exit %d, want 0\n%s", res.code, res.log)
				}
				return
			}
			if res.code != 2 {
				t.Fatalf("exit code = %d, want 2\n%s", res.code, res.log)
			}
			if !strings.Contains(res.log, tt.want) {
				t.Errorf("log does not contain %q:\n%s", tt.want, res.log)
			}
			if strings.Contains(res.log, "s3cr3t") {
				t.Errorf("log leaks a header value:\n%s", res.log)
			}
			if _, err := os.Stat(marker); err == nil || len(svc.Deploys()) > 0 {
				t.Error("something was deployed despite invalid input")
			}
		})
	}
}

func TestUnknownEvent(t *testing.T) {
	t.Parallel()
	_, url := service(t, nil, shaGood)
	res := newActionRun(t, "schedule", fast(url, nil)).exec()
	if res.code != 2 || !strings.Contains(res.log, `auto cannot pick a mode for the \"schedule\" event`) && !strings.Contains(res.log, `auto cannot pick a mode for the "schedule" event`) {
		t.Fatalf("exit %d, want 2 with a message about the event\n%s", res.code, res.log)
	}
}
