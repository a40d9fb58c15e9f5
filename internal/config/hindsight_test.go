package config

import (
	"github.com/immune-cd/immune/internal/run"
	"strings"
	"testing"
	"time"
)

func TestBacktestAndStatsModes(t *testing.T) {
	t.Parallel()
	metrics := "- name: http-errors\n  errors: http_requests_total{code=~\"5..\",version=\"${SHA}\"}\n  total: http_requests_total{version=\"${SHA}\"}\n"
	tests := []struct {
		name     string
		in       map[string]string
		errs     []string
		warnings []string
		check    func(t *testing.T, c *Config)
	}{
		{
			name: "a backtest takes a deploy's metrics inputs; the deploy's command is not used, and it says so",
			in: map[string]string{"mode": "backtest", "github-token": "t", "metrics": metrics, "prometheus-url": "http://127.0.0.1:9090",
				"deploy-command": "./deploy.sh", "backtest-deployments": "20", "interval": "30s", "duration": "15m"},
			warnings: []string{"input deploy-command is set but not used in backtest mode"},
			check: func(t *testing.T, c *Config) {
				if c.Mode != run.ModeBacktest || c.BacktestDeployments != 20 || c.Interval != 30*time.Second || c.Duration != 15*time.Minute || len(c.Metrics) != 1 {
					t.Errorf("config %+v", c)
				}
			},
		},
		{
			name: "a backtest needs a token and metrics",
			in:   map[string]string{"mode": "backtest", "health-url": "http://127.0.0.1:8080/health"},
			errs: []string{"input github-token: backtest mode reads the environment's deployments from GitHub and needs a token", "input metrics: backtest mode replays metrics from Prometheus"},
		},
		{
			name: "a backtest's metrics need Prometheus",
			in:   map[string]string{"mode": "backtest", "github-token": "t", "metrics": metrics},
			errs: []string{"input prometheus-url: required with metrics"},
		},
		{
			name: "a backtest of a canary deploy reads the stable track",
			in: map[string]string{"mode": "backtest", "github-token": "t", "prometheus-url": "http://127.0.0.1:9090", "canary-command": "./canary.sh",
				"metrics": "- name: e\n  errors: x{track=\"${TRACK}\",code=\"500\"}\n  total: x{track=\"${TRACK}\"}\n"},
		},
		{
			name:  "stats over 90 days",
			in:    map[string]string{"mode": "stats", "github-token": "t", "stats-period": "90d"},
			check: func(t *testing.T, c *Config) { checkEq(t, c.StatsPeriod, 90*24*time.Hour) },
		},
		{
			name:  "stats over 12 hours, by default 30 days",
			in:    map[string]string{"mode": "stats", "github-token": "t", "stats-period": "12h"},
			check: func(t *testing.T, c *Config) { checkEq(t, c.StatsPeriod, 12*time.Hour) },
		},
		{
			name: "bad periods and counts",
			in:   map[string]string{"mode": "stats", "stats-period": "a month", "backtest-deployments": "1000"},
			errs: []string{`input stats-period: "a month" is not a period like 30d or 12h`, `input backtest-deployments: got "1000": expected at most 100`, "input github-token: stats mode reads"},
		},
		{
			name: "a period too long",
			in:   map[string]string{"mode": "stats", "github-token": "t", "stats-period": "400d"},
			errs: []string{`input stats-period: got "400d": expected at most 366d`},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Parse(inputs(tt.in), env)
			for _, want := range tt.errs {
				if err == nil || !strings.Contains(err.Error(), want) {
					t.Errorf("error %v, want it to contain %q", err, want)
				}
			}
			if len(tt.errs) > 0 {
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if strings.Join(c.Warnings, "\n") != strings.Join(tt.warnings, "\n") {
				t.Errorf("warnings %q, want %q", c.Warnings, tt.warnings)
			}
			if tt.check != nil {
				tt.check(t, c)
			}
		})
	}
	if c, err := Parse(inputs(map[string]string{"mode": "stats", "github-token": "t"}), env); err != nil || c.StatsPeriod != 30*24*time.Hour || c.BacktestDeployments != 10 {
		t.Errorf("defaults: %v, %v", c, err)
	}
}

func checkEq[T comparable](t *testing.T, got, want T) {
	t.Helper()
	if got != want {
		t.Errorf("got %v, want %v", got, want)
	}
}
