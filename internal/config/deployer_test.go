package config

import (
	"strings"
	"testing"

	"github.com/immune-cd/immune/internal/run"
)

// deployWith is a deploy-mode configuration without a command, plus set.
func deployWith(set map[string]string) map[string]string {
	in := valid()
	delete(in, "deploy-command")
	in["github-token"] = "ghs_token"
	for k, v := range set {
		in[k] = v
	}
	return in
}

var refEnv = Env{EventName: "push", SHA: env.SHA, Ref: "refs/heads/main", Workspace: "/work"}

func TestDeployers(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		in    map[string]string
		env   Env
		check func(t *testing.T, c *Config)
	}{
		{"a command", valid(), env, func(t *testing.T, c *Config) {
			if c.Deployer != run.ByCommand || c.DeployCommand != "./deploy.sh" || c.RollbackCommand != "./deploy.sh" || c.Canary || c.CanaryRollbackCommand != "" {
				t.Errorf("%+v", c)
			}
		}},
		{"a workflow on the ref deployed from", deployWith(map[string]string{"deploy-workflow": "deploy.yml"}), refEnv, func(t *testing.T, c *Config) {
			if c.Deployer != run.ByWorkflow || c.DeployWorkflow != "deploy.yml" || c.DeployWorkflowRef != "refs/heads/main" || c.DeployCommand != "" || c.RollbackCommand != "" {
				t.Errorf("%+v", c)
			}
		}},
		{"a workflow by path, on a tag", deployWith(map[string]string{"deploy-workflow": ".github/workflows/deploy.yaml", "deploy-workflow-ref": "v1.2"}), refEnv, func(t *testing.T, c *Config) {
			if c.DeployWorkflow != "deploy.yaml" || c.DeployWorkflowRef != "v1.2" {
				t.Errorf("%+v", c)
			}
		}},
		{"a workflow by id", deployWith(map[string]string{"deploy-workflow": "161335"}), refEnv, func(t *testing.T, c *Config) {
			if c.DeployWorkflow != "161335" {
				t.Errorf("%+v", c)
			}
		}},
		{"a hook", deployWith(map[string]string{"deploy-hook": "https://api.render.com/deploy/srv-x?key=y", "deploy-hook-secret": "k"}), env, func(t *testing.T, c *Config) {
			if c.Deployer != run.ByHook || c.DeployHook != "https://api.render.com/deploy/srv-x?key=y" || c.DeployHookSecret != "k" || c.RollbackCommand != "" {
				t.Errorf("%+v", c)
			}
		}},
		{"a hook rolls back by hand", map[string]string{"mode": "rollback", "health-url": "http://a/h", "deploy-hook": "https://hooks.example/d"}, env, func(t *testing.T, c *Config) {
			if c.Deployer != run.ByHook {
				t.Errorf("%+v", c)
			}
		}},
		{"a workflow's canary", deployWith(map[string]string{"deploy-workflow": "deploy.yml", "canary": "true", "canary-health-url": "http://127.0.0.1:8081/h"}), refEnv, func(t *testing.T, c *Config) {
			if !c.Canary || c.CanaryCommand != "" || c.CanaryRollbackCommand != "" {
				t.Errorf("%+v", c)
			}
		}},
		{"canary: true with a command", func() map[string]string {
			in := valid()
			in["canary"], in["canary-health-url"], in["rollback-command"] = "true", "http://127.0.0.1:8081/h", "./rollback.sh"
			return in
		}(), env, func(t *testing.T, c *Config) {
			if !c.Canary || c.CanaryCommand != "./deploy.sh" || c.CanaryRollbackCommand != "./rollback.sh" {
				t.Errorf("%+v", c)
			}
		}},
		{"watch mode deploys nothing", map[string]string{"mode": "watch", "health-url": "http://a/h", "deploy-workflow": "deploy.yml", "deploy-hook": "https://x/y"}, env, func(t *testing.T, c *Config) {
			if c.Deployer != "" || len(c.Warnings) != 2 {
				t.Errorf("%+v", c)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, err := Parse(inputs(tt.in), tt.env)
			if err != nil {
				t.Fatal(err)
			}
			tt.check(t, c)
		})
	}
}

func TestDeployersRefused(t *testing.T) {
	t.Parallel()
	const hook = "https://api.render.com/deploy/srv-x?key=s3cret"
	tests := []struct {
		name string
		in   map[string]string
		env  Env
		want []string
	}{
		{"a command and a workflow", deployWith(map[string]string{"deploy-command": "./d.sh", "deploy-workflow": "deploy.yml"}), refEnv,
			[]string{"input deploy-command: set with deploy-workflow, which does every step (deploy, rollback, the canary and its removal), told apart by its reason and stage: a run deploys through exactly one of deploy-command, deploy-workflow and deploy-hook; remove deploy-command"}},
		{"a hook and the canary's commands", deployWith(map[string]string{"deploy-hook": hook, "canary-command": "./c.sh", "canary-rollback-command": "./r.sh", "canary-health-url": "http://127.0.0.1:8081/h"}), env,
			[]string{"input canary-command: set with deploy-hook", "input canary-rollback-command: set with deploy-hook"}},
		{"a workflow and a hook", deployWith(map[string]string{"deploy-workflow": "deploy.yml", "deploy-hook": hook}), refEnv,
			[]string{"input deploy-hook: set with deploy-workflow: a run deploys through exactly one of deploy-command, deploy-workflow and deploy-hook"}},
		{"rollback mode, a command and a hook", map[string]string{"mode": "rollback", "health-url": "http://a/h", "rollback-command": "./r.sh", "deploy-hook": hook}, env,
			[]string{"input rollback-command: set with deploy-hook"}},
		{"no deployer", deployWith(nil), env, []string{"input deploy-command: a command is required in deploy mode (or deploy through deploy-workflow or deploy-hook)"}},
		{"a workflow path elsewhere", deployWith(map[string]string{"deploy-workflow": "ci/deploy.yml"}), refEnv,
			[]string{`input deploy-workflow: got "ci/deploy.yml": expected the file name of a workflow in .github/workflows, such as deploy.yml, or a workflow's id`}},
		{"a workflow without GITHUB_REF", deployWith(map[string]string{"deploy-workflow": "deploy.yml"}), env,
			[]string{"input deploy-workflow-ref: GITHUB_REF is not set: name the branch or tag whose deploy-workflow to run"}},
		{"a workflow on a pull request's ref", deployWith(map[string]string{"deploy-workflow": "deploy.yml"}), Env{EventName: "push", SHA: env.SHA, Ref: "refs/pull/3/merge"},
			[]string{"input deploy-workflow-ref: GITHUB_REF is refs/pull/3/merge, a pull request's ref, which a workflow cannot be dispatched on: name a branch or tag"}},
		{"a ref that is no ref", deployWith(map[string]string{"deploy-workflow": "deploy.yml", "deploy-workflow-ref": "main..next"}), refEnv,
			[]string{`input deploy-workflow-ref: got "main..next": expected a branch or tag name`}},
		{"a workflow without a token", func() map[string]string {
			in := deployWith(map[string]string{"deploy-workflow": "deploy.yml"})
			delete(in, "github-token")
			return in
		}(), refEnv, []string{"input github-token: deploy-workflow is dispatched through GitHub's API: pass a token with actions: write"}},
		{"a ref without a workflow", map[string]string{"mode": "deploy", "deploy-command": "./d.sh", "health-url": "http://a/h", "deploy-workflow-ref": "main"}, refEnv,
			[]string{"input deploy-workflow-ref: set without deploy-workflow"}},
		{"a hook that is no URL", deployWith(map[string]string{"deploy-hook": "render:s3cret"}), env,
			[]string{"input deploy-hook: expected one absolute http:// or https:// URL (the value is not shown: it is a secret)"}},
		{"a hook secret without a hook", map[string]string{"mode": "deploy", "deploy-command": "./d.sh", "health-url": "http://a/h", "deploy-hook-secret": "s3cret"}, env,
			[]string{"input deploy-hook-secret: is set but deploy-hook is empty: there is nothing to sign"}},
		{"canary inputs without a canary", deployWith(map[string]string{"deploy-workflow": "deploy.yml", "canary-health-url": "http://127.0.0.1:8081/h"}), refEnv,
			[]string{"input canary-health-url: set without canary-command or canary: true"}},
		{"a workflow's canary without a way to judge it", deployWith(map[string]string{"deploy-workflow": "deploy.yml", "canary": "true"}), refEnv,
			[]string{"input canary-health-url: canary: true needs a way to judge the canary against the control"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := Parse(inputs(tt.in), tt.env)
			if err == nil {
				t.Fatal("accepted")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q:\n%v", w, err)
				}
			}
			if strings.Contains(err.Error(), "s3cret") {
				t.Errorf("a secret in the error: %v", err)
			}
		})
	}
}
