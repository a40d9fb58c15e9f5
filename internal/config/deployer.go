package config

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/immune-cd/immune/internal/run"
)

// commandInputs are the inputs of the command deployer.
var commandInputs = []string{"deploy-command", "rollback-command", "canary-command", "canary-rollback-command"}

// workflowFile is a workflow's file name; a workflow id is a number.
var workflowFile = regexp.MustCompile(`^[A-Za-z0-9._-]+\.ya?ml$|^[1-9][0-9]*$`)

// deployer picks how the run deploys, exactly one of command, workflow and
// hook, and checks what goes with the chosen one. With a workflow or a
// hook, that one does every step (deploy, rollback, the canary and its
// removal), told apart by reason and stage: a command beside it is
// refused, never silently ignored.
func (p *parser) deployer(c *Config, env Env) {
	c.DeployWorkflow = strings.TrimPrefix(p.str("deploy-workflow"), ".github/workflows/")
	c.DeployHook = p.str("deploy-hook")
	c.DeployHookSecret = p.str("deploy-hook-secret")
	if c.Mode != run.ModeDeploy && c.Mode != run.ModeRollback {
		// The other modes deploy nothing; what is set here is reported
		// as unused.
		return
	}

	var commands []string
	for _, name := range commandInputs {
		if p.str(name) != "" {
			commands = append(commands, name)
		}
	}
	oneOf := fmt.Sprintf("a run deploys through exactly one of %s, %s and %s", p.in("deploy-command"), p.in("deploy-workflow"), p.in("deploy-hook"))
	switch {
	case c.DeployWorkflow != "" && c.DeployHook != "":
		p.fail("deploy-hook", "set with "+p.in("deploy-workflow")+": "+oneOf)
	case c.DeployWorkflow != "":
		c.Deployer = run.ByWorkflow
	case c.DeployHook != "":
		c.Deployer = run.ByHook
	default:
		c.Deployer = run.ByCommand
	}
	if c.Deployer != run.ByCommand {
		other := p.in("deploy-" + string(c.Deployer))
		for _, name := range commands {
			p.fail(name, fmt.Sprintf("set with %s, which does every step (deploy, rollback, the canary and its removal), told apart by its reason and stage: %s; remove %s",
				other, oneOf, p.in(name)))
		}
		c.DeployCommand, c.RollbackCommand, c.CanaryRollbackCommand = "", "", ""
	}

	ref := p.str("deploy-workflow-ref")
	switch {
	case c.DeployWorkflow == "" && ref != "":
		p.fail("deploy-workflow-ref", "set without "+p.in("deploy-workflow"))
	case c.DeployWorkflow != "":
		if !workflowFile.MatchString(c.DeployWorkflow) {
			p.failValue("deploy-workflow", "expected the file name of a workflow in .github/workflows, such as deploy.yml, or a workflow's id")
		}
		source := p.in("deploy-workflow-ref")
		if ref == "" {
			ref, source = env.Ref, "GITHUB_REF"
		}
		switch {
		case ref == "":
			p.fail("deploy-workflow-ref", "GITHUB_REF is not set: name the branch or tag whose "+p.in("deploy-workflow")+" to run")
		case strings.HasPrefix(ref, "refs/pull/"):
			p.fail("deploy-workflow-ref", fmt.Sprintf("%s is %s, a pull request's ref, which a workflow cannot be dispatched on: name a branch or tag", source, ref))
		case strings.ContainsAny(ref, " \t\n~^:?*[\\") || strings.Contains(ref, ".."):
			p.failValue("deploy-workflow-ref", "expected a branch or tag name")
		}
		c.DeployWorkflowRef = ref
		if c.Token == "" && c.Deployer == run.ByWorkflow {
			p.fail("github-token", p.in("deploy-workflow")+" is dispatched through GitHub's API: pass a token with actions: write (usually ${{ github.token }} and permissions: actions: write)")
		}
	}

	switch {
	case c.DeployHook != "":
		if _, err := ParseURLs(c.DeployHook); err != nil || strings.ContainsAny(c.DeployHook, ", \n") {
			p.fail("deploy-hook", "expected one absolute http:// or https:// URL (the value is not shown: it is a secret)")
		}
	case c.DeployHookSecret != "":
		p.fail("deploy-hook-secret", "is set but "+p.in("deploy-hook")+" is empty: there is nothing to sign")
	}
}

// canaryName names what turned the canary on, for messages.
func (p *parser) canaryName() string {
	if p.str("canary-command") != "" {
		return p.in("canary-command")
	}
	return p.in("canary") + ": true"
}
