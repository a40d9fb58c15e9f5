package config

import (
	"errors"
	"strings"
	"testing"
	"time"
)

// canary is a deploy-mode configuration with a canary that passes.
func canary() map[string]string {
	in := valid()
	in["canary-command"] = "./deploy.sh --canary"
	in["canary-health-url"] = "http://127.0.0.1:8081/health"
	return in
}

func TestParseCanary(t *testing.T) {
	t.Parallel()
	c, err := Parse(inputs(canary()), env)
	if err != nil {
		t.Fatal(err)
	}
	if c.CanaryCommand != "./deploy.sh --canary" || c.CanaryRollbackCommand != "./deploy.sh" || c.CanaryDuration != 5*time.Minute ||
		c.CanaryPromoteEarly || len(c.CanaryHealthURLs) != 1 || len(c.HealthURLs) != 1 || len(c.Warnings) != 0 {
		t.Errorf("config = %+v", c)
	}
	in := canary()
	in["canary-rollback-command"] = "./remove-canary.sh"
	in["rollback-command"] = "./rollback.sh"
	in["canary-promote-early"] = "true"
	in["canary-duration"] = "90s"
	c, err = Parse(inputs(in), env)
	if err != nil || c.CanaryRollbackCommand != "./remove-canary.sh" || !c.CanaryPromoteEarly || c.CanaryDuration != 90*time.Second {
		t.Errorf("config = %+v, %v", c, err)
	}
	// Without its own, the canary's removal is the rollback command.
	delete(in, "canary-rollback-command")
	if c, err := Parse(inputs(in), env); err != nil || c.CanaryRollbackCommand != "./rollback.sh" {
		t.Errorf("canary-rollback-command = %q, %v", c.CanaryRollbackCommand, err)
	}
	// A canary judged by rate metrics alone needs no canary-health-url.
	in = valid()
	in["canary-command"] = "./deploy.sh --canary"
	in["prometheus-url"] = "http://127.0.0.1:9090"
	in["metrics"] = "- name: errors\n  errors: 'http_requests_total{track=\"${TRACK}\",code=~\"5..\"}'\n  total: 'http_requests_total{track=\"${TRACK}\"}'\n- name: p99\n  query: 'histogram_quantile(0.99, rate(h_bucket{track=\"${TRACK}\"}[1m]))'\n  max: 0.5\n- name: up\n  query: 'min(up)'\n  min: 1"
	if _, err := Parse(inputs(in), env); err != nil {
		t.Errorf("metrics with ${TRACK}: %v", err)
	}
}

func TestParseCanaryInvalid(t *testing.T) {
	t.Parallel()
	rate := "- name: errors\n  errors: 'http_requests_total{code=~\"5..\"}'\n  total: 'http_requests_total'"
	tracked := "- name: errors\n  errors: 'http_requests_total{track=\"${TRACK}\",code=~\"5..\"}'\n  total: 'http_requests_total{track=\"${TRACK}\"}'"
	tests := []struct {
		name string
		set  map[string]string
		base func() map[string]string
		want string
	}{
		{"canary inputs without canary-command", map[string]string{"canary-health-url": "http://127.0.0.1:8081/h"}, valid,
			"input canary-health-url: set without canary-command"},
		{"early promotion without canary-command", map[string]string{"canary-promote-early": "true"}, valid,
			"input canary-promote-early: set without canary-command"},
		{"a canary's duration without canary-command", map[string]string{"canary-duration": "1m"}, valid,
			"input canary-duration: set without canary-command"},
		{"a canary's removal without canary-command", map[string]string{"canary-rollback-command": "x"}, valid,
			"input canary-rollback-command: set without canary-command"},
		{"no way to judge the canary", map[string]string{"canary-health-url": ""}, canary,
			"input canary-health-url: canary-command needs a way to judge the canary against the control"},
		{"no control", map[string]string{"health-url": ""}, canary,
			"input health-url: a canary is judged against the control: set health-url to the stable fleet's URLs"},
		{"the canary is the control", map[string]string{"canary-health-url": "http://127.0.0.1:8080/health"}, canary,
			"input canary-health-url: http://127.0.0.1:8080/health is also in health-url"},
		{"a canary shorter than an interval", map[string]string{"canary-duration": "1s"}, canary,
			"input canary-duration: 1s is shorter than interval (5s)"},
		{"a bad canary duration", map[string]string{"canary-duration": "0s"}, canary,
			`input canary-duration: got "0s": expected a duration above zero`},
		{"a bad canary URL", map[string]string{"canary-health-url": "canary:8081"}, canary,
			`input canary-health-url: "canary:8081" is not an absolute http:// or https:// URL`},
		{"a bad promote-early", map[string]string{"canary-promote-early": "soon"}, canary,
			`input canary-promote-early: "soon" is not true or false`},
		{"too many canary probes", map[string]string{"canary-duration": "168h", "interval": "100ms", "timeout": "100ms"}, canary,
			"input canary-duration: 168h0m0s at an interval of 100ms is 6048000 probes per URL"},
		{"${TRACK} without a canary", map[string]string{"prometheus-url": "http://127.0.0.1:9090", "metrics": tracked}, valid,
			`input metrics: "errors" uses ${TRACK}, which only a canary deploy fills in`},
		{"a canary's rate metric without ${TRACK}", map[string]string{"prometheus-url": "http://127.0.0.1:9090", "metrics": rate}, canary,
			`input metrics: "errors": with canary-command, a rate metric must tell the canary from the stable fleet: use ${TRACK} in both errors and total`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			in := tt.base()
			for k, v := range tt.set {
				in[k] = v
			}
			_, err := Parse(inputs(in), env)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("Parse() = %v\nwant an error containing %q", err, tt.want)
			}
			var ie *InputError
			if !errors.As(err, &ie) {
				t.Errorf("error %T is not an *InputError", err)
			}
		})
	}
}

// In the modes that deploy no canary, its inputs are unused: a warning,
// never silence; ${TRACK} is refused there.
func TestCanaryInputsInOtherModes(t *testing.T) {
	t.Parallel()
	in := canary()
	in["mode"] = "watch"
	c, err := Parse(inputs(in), env)
	if err != nil {
		t.Fatal(err)
	}
	if got := strings.Join(c.Warnings, "; "); !strings.Contains(got, "input canary-command is set but not used in watch mode") ||
		!strings.Contains(got, "input canary-health-url is set but not used in watch mode") {
		t.Errorf("warnings = %q", got)
	}
}
