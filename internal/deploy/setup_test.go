package deploy

import (
	"testing"

	"github.com/immune-cd/immune/internal/config"
	"github.com/immune-cd/immune/internal/run"
)

// Each step of a command deployer runs its own command.
func TestCommandFor(t *testing.T) {
	t.Parallel()
	cfg := &config.Config{DeployCommand: "deploy", RollbackCommand: "rollback", CanaryCommand: "canary", CanaryRollbackCommand: "remove-canary"}
	tests := []struct {
		reason, stage, want string
	}{
		{ReasonDeploy, string(run.StageFull), "deploy"},
		{ReasonRollback, string(run.StageFull), "rollback"},
		{ReasonDeploy, string(run.StageCanary), "canary"},
		{ReasonRollback, string(run.StageCanary), "remove-canary"},
		{"bisect", string(run.StageCanary), "canary"},
	}
	for _, tt := range tests {
		if got := CommandFor(cfg, Request{Reason: tt.reason, Stage: tt.stage}); got != tt.want {
			t.Errorf("%s at stage %s: %q, want %q", tt.reason, tt.stage, got, tt.want)
		}
	}
}
