package config

import (
	"strings"
	"testing"
	"time"
)

func TestParseBisect(t *testing.T) {
	t.Parallel()
	in := canary()
	in["bisect"] = "true"
	c, err := Parse(inputs(in), env)
	if err != nil || !c.Bisect || c.BisectProduction || c.BisectTimeout != time.Hour || len(c.Warnings) != 0 {
		t.Fatalf("config = %+v, %v", c, err)
	}
	in = valid()
	in["bisect"] = "true"
	in["bisect-production"] = "true"
	in["bisect-timeout"] = "30m"
	c, err = Parse(inputs(in), env)
	if err != nil || !c.BisectProduction || c.BisectTimeout != 30*time.Minute {
		t.Errorf("production bisection: %+v, %v", c, err)
	}
}

// A bisection without a canary is refused before anything is deployed,
// unless production bisection is asked for; its inputs mean nothing
// without it.
func TestParseBisectInvalid(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		base func() map[string]string
		set  map[string]string
		want string
	}{
		{"no canary", valid, map[string]string{"bisect": "true"}, "input bisect: each step of a bisection deploys a commit to the canary, and there is no canary: set canary-command"},
		{"production bisection with a canary", canary, map[string]string{"bisect": "true", "bisect-production": "true"}, "input bisect-production: set with a canary"},
		{"no rollback", canary, map[string]string{"bisect": "true", "auto-rollback": "false"}, "input bisect: a bisection follows the rollback"},
		{"a timeout shorter than a step", canary, map[string]string{"bisect": "true", "bisect-timeout": "1m"}, "input bisect-timeout: 1m0s is shorter than canary-duration (5m0s)"},
		{"a timeout shorter than a production step", valid, map[string]string{"bisect": "true", "bisect-production": "true", "bisect-timeout": "1m"}, "input bisect-timeout: 1m0s is shorter than duration (5m0s)"},
		{"production without bisect", valid, map[string]string{"bisect-production": "true"}, "input bisect-production: set without bisect"},
		{"a timeout without bisect", canary, map[string]string{"bisect-timeout": "2h"}, "input bisect-timeout: set without bisect"},
		{"not a boolean", canary, map[string]string{"bisect": "maybe"}, "input bisect:"},
		{"shadow", canary, map[string]string{"bisect": "true", "shadow": "true"}, "input bisect: shadow mode rolls nothing back"},
		{"no timeout", canary, map[string]string{"bisect": "true", "bisect-timeout": "0s"}, "input bisect-timeout: got \"0s\": expected a duration above zero"},
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
				t.Errorf("error %v, want %q", err, tt.want)
			}
		})
	}
	// Outside deploy mode it is an unused input, warned about.
	in := valid()
	in["mode"] = "watch"
	in["deploy-command"] = ""
	in["bisect"] = "true"
	if c, err := Parse(inputs(in), env); err != nil || len(c.Warnings) != 1 || c.Warnings[0] != "input bisect is set but not used in watch mode" {
		t.Errorf("watch mode: %v, %v", c, err)
	}
}
