// Package config turns the action's inputs (or the CLI's flags, which carry
// the same names) into a validated Config. Every problem is found before
// anything is deployed, and each one names the input and what was expected.
package config

import "strings"

// Input describes one input of action.yml. The same table drives the CLI's
// flags, the defaults applied when an input is absent, and a test that keeps
// action.yml in step with the code.
type Input struct {
	Name        string
	Default     string
	Description string
	// Secret inputs are masked in the log and never echoed in errors.
	Secret bool
	// HeaderList inputs hold "Name: value" lines whose values are the
	// secrets.
	HeaderList bool
}

// Inputs lists every input in the order action.yml declares them.
var Inputs = []Input{
	{Name: "mode", Default: "auto", Description: "What to do: auto, deploy, watch, rollback, gate, backtest or stats. auto picks by event: push deploys, workflow_dispatch rolls back, pull_request, pull_request_target and merge_group run the gate. backtest replays the environment's last deploys against these metrics inputs and says what they would have decided; stats writes the environment's delivery record. Both write the job summary and a JSON report, and deploy nothing."},
	{Name: "environment", Default: "production", Description: "Name of the environment deployed to (GitHub deployment environment, IMMUNE_ENVIRONMENT for the command)."},
	{Name: "environment-url", Default: "", Description: "URL of the deployed environment, recorded on the GitHub deployment statuses."},
	{Name: "sha", Default: "", Description: "Commit to deploy (default: GITHUB_SHA). In watch mode, the commit watched (needed only with expect-version). In rollback mode, the commit to roll back to (7 to 40 hex characters; default: the last good deployment before the current one)."},
	{Name: "previous-sha", Default: "", Description: "Explicit rollback target. Default, in order: the last successful GitHub deployment of the environment, the state file, the push event's before."},
	{Name: "reason", Default: "", Description: "Why a manual rollback is done; recorded on the deployment and in the summary."},
	{Name: "github-token", Default: "${{ github.token }}", Description: "Token for GitHub deployments, deployment statuses and commit statuses (needs deployments: write and statuses: write), and, when granted pull-requests: write and issues: write, the comment on a rolled-back pull request and the tracking issue of a stopped line. Empty: nothing is recorded in GitHub and the state file is the only memory.", Secret: true},
	{Name: "deploy-command", Default: "", Description: "Shell command that deploys IMMUNE_SHA (run with /bin/sh -c in GITHUB_WORKSPACE). Gets IMMUNE_SHA, IMMUNE_PREVIOUS_SHA, IMMUNE_ENVIRONMENT, IMMUNE_REASON (deploy, rollback, or bisect for a step of a bisection) and IMMUNE_STAGE (full; canary for the canary's commands). A run deploys through exactly one of deploy-command, deploy-workflow and deploy-hook."},
	{Name: "rollback-command", Default: "", Description: "Shell command that rolls back to IMMUNE_SHA (default: the deploy command, run with IMMUNE_REASON=rollback)."},
	{Name: "canary-command", Default: "", Description: "Shell command that deploys IMMUNE_SHA to a subset of the environment first, with IMMUNE_STAGE=canary. The canary is then judged against the rest of the fleet (the control, health-url) for canary-duration, and only if it is no worse does deploy-command run, with IMMUNE_STAGE=full (the whole fleet, the canary included). Empty: no canary."},
	{Name: "canary-rollback-command", Default: "", Description: "Shell command that removes a canary that regressed, run with IMMUNE_STAGE=canary, IMMUNE_REASON=rollback and IMMUNE_SHA the stable build (empty when unknown). Default: rollback-command, run that way."},
	{Name: "canary", Default: "false", Description: "Deploy a canary first (IMMUNE_STAGE=canary, or stage canary for deploy-workflow and deploy-hook), judged against the control as canary-command's is. Setting canary-command turns it on too; with canary: true and no canary-command, deploy-command deploys the canary."},
	{Name: "canary-health-url", Default: "", Description: "The canary's health URLs (newline- or comma-separated), probed in the same rounds as health-url, which is then the control: the stable fleet it is compared with."},
	{Name: "canary-duration", Default: "5m", Description: "How long the canary is judged against the control when nothing goes wrong. A regression ends it as soon as it is certain."},
	{Name: "canary-promote-early", Default: "false", Description: "Promote the canary before canary-duration once it is, with the required confidence, no worse than the control plus max-error-rate (and max-latency's allowance)."},
	{Name: "bisect", Default: "false", Description: "When a deploy of more than one commit regresses and is rolled back (at the canary or after the whole fleet's deploy), find the first bad commit between the rollback target and sha (GitHub's comparison, or the workspace's git history, in first-parent order): each step deploys the middle commit to the canary (canary-command, or the deploy workflow or hook, with IMMUNE_REASON=bisect), judges it against the control as a canary is judged, and removes it; at most ⌈log₂ N⌉ steps within bisect-timeout. Then the newest good commit ships to the whole fleet with the normal deploy and watch, the comment goes to the culprit's pull request only, and the line stays stopped for the culprit. Needs a canary (or bisect-production) and a deploy that can deploy any commit."},
	{Name: "bisect-production", Default: "false", Description: "Let bisect run without a canary: each step deploys its commit to the whole fleet (deploy-command with IMMUNE_REASON=bisect), watches it as a deploy is watched, then rolls back to the rollback target. A step on a bad commit regresses production for everyone until it is caught: read the README's \"Bisection\" first."},
	{Name: "bisect-timeout", Default: "1h", Description: "Longest a bisection may take. A step starts only while the time left holds a whole step (canary-duration, or duration with bisect-production, and the slowest step's commands so far); when it runs out the search stops where it stands: the newest commit found good ships, and no culprit is named."},
	{Name: "deploy-workflow", Default: "", Description: "Deploy by dispatching this workflow of the repository (a file in .github/workflows such as deploy.yml, or its id) instead of running deploy-command: every deploy, rollback and canary step dispatches it with the inputs sha, previous-sha, environment, reason (deploy, rollback, or bisect for a step of a bisection), stage (canary or full) and dispatch-id (show it in the workflow's run-name), links the run in the log and the summary, and waits for it: conclusion success is deployed, anything else a failed deploy. Needs actions: write."},
	{Name: "deploy-workflow-ref", Default: "", Description: "Branch or tag whose version of deploy-workflow runs (default: the ref this run deploys from, GITHUB_REF)."},
	{Name: "deploy-hook", Default: "", Description: "Deploy by POSTing {sha, previous_sha, environment, reason, stage} as JSON to this URL (a deploy hook of Render, Vercel, Netlify or a service of yours) instead of running deploy-command, for every deploy, rollback and canary step; a 2xx answer is success, a 5xx is retried with the same Idempotency-Key. Hooks deploy asynchronously: set expect-version so the watch waits for the new build. Pass it from secrets.", Secret: true},
	{Name: "deploy-hook-secret", Default: "", Description: "Key that signs each deploy-hook body as X-Immune-Signature-256: sha256=<HMAC-SHA256 of the body>, as notify-secret signs the webhook's. Empty: unsigned.", Secret: true},
	{Name: "deploy-timeout", Default: "10m", Description: "Longest a deploy or rollback may take: a command past it has its whole process group killed, a deploy-workflow run is cancelled, deploy-hook stops retrying; the deploy counts as failed."},
	{Name: "health-url", Default: "", Description: "One or more health URLs (newline- or comma-separated); each is probed every interval, on a schedule of its own."},
	{Name: "interval", Default: "", Description: "Time between two probes of a URL, and between two looks at the metrics (Go duration: 250ms, 5s, 2m), shorter than duration (default: 5s, or a tenth of duration when that is shorter). Several URLs are probed in turn, spread over the interval."},
	{Name: "timeout", Default: "", Description: "Timeout of one probe request, and of one Prometheus query, at most interval (default: 2s, or interval when that is shorter)."},
	{Name: "duration", Default: "5m", Description: "How long the new build is watched when nothing goes wrong. A regression ends the watch as soon as it is certain."},
	{Name: "startup-timeout", Default: "", Description: "Grace period for the new build to come up: failures before its first healthy answer do not count, and no healthy answer within it is a regression. A metric without data for longer than this (and two intervals) at the start or the end of the watch makes the run inconclusive. Default: 60s, or half of duration when that is shorter."},
	{Name: "expect-status", Default: "200-299", Description: "HTTP statuses that count as healthy: codes and ranges, e.g. 200,204,300-302."},
	{Name: "expect-body", Default: "", Description: "RE2 regular expression the response body must match (at most 1 MiB is read)."},
	{Name: "expect-version", Default: "", Description: "How to tell which build answered: body (the SHA, full or 7+ characters, appears in the body), header:<Name>, or json:<dot.path>. Answers from the old build during startup-timeout are \"not yet live\"; after the new build answered, any other version is a failure. Empty: off."},
	{Name: "headers", Default: "", Description: "Extra request headers, one \"Name: value\" per line. Pass values from secrets: the runner prints with: values before the action starts and masks only those from secrets; immune masks them from then on.", Secret: true, HeaderList: true},
	{Name: "prometheus-url", Default: "", Description: "Base URL of a server that speaks Prometheus's HTTP query API (Prometheus, Thanos, Mimir, VictoriaMetrics), without /api/v1. Required with metrics."},
	{Name: "prometheus-headers", Default: "", Description: "Headers sent with every Prometheus query, one \"Name: value\" per line (a bearer token, a tenant id such as X-Scope-OrgID). Pass values from secrets: the runner prints with: values before the action starts and masks only those from secrets; immune masks them from then on.", Secret: true, HeaderList: true},
	{Name: "metrics", Default: "", Description: "YAML list of metrics to judge, read from prometheus-url every interval. Each entry has a name and either errors and total (PromQL selectors of counters; optional max-error-rate, default the input) or query (an instant PromQL query) with max and/or min and optional consecutive (default 3); shadow: true trials a metric: judged and shown, never regressing the build. ${SHA}, ${PREVIOUS_SHA} and ${ENVIRONMENT} are filled in, quoted, inside label values, and with canary-command ${TRACK} (canary or stable; a rate metric must use it). With metrics, health-url is optional."},
	{Name: "min-requests", Default: "20", Description: "Fewest requests a rate metric must see over the whole watch to clear the build; with fewer, the verdict is inconclusive (no rollback, not recorded as good)."},
	{Name: "max-error-rate", Default: "5%", Description: "Highest acceptable share of failed probes, and of errors in a rate metric without its own max-error-rate (e.g. 5% or 0.05). Against a baseline or a control (a canary): the allowed increase in points over production's or the control's rate."},
	{Name: "consecutive-failures", Default: "3", Description: "This many failures in a row on one URL are a regression at once (not in a canary's watch, which judges the canary against its control)."},
	{Name: "max-latency", Default: "", Description: "Highest acceptable latency at latency-percentile (Go duration, e.g. 300ms). Empty: latency is not judged."},
	{Name: "latency-percentile", Default: "95", Description: "Percentile that max-latency applies to (e.g. 95, 99)."},
	{Name: "confidence", Default: "99%", Description: "How sure the error-rate and latency tests must be before calling a regression. At 99%, a build that truly meets the limits is rolled back in at most about 1% of watches."},
	{Name: "baseline-duration", Default: "0s", Description: "Probe the current production (and read its rate metrics) for this long before deploying and judge the new build against it. 0s: off (absolute limits only)."},
	{Name: "max-latency-increase", Default: "1.5", Description: "With a baseline: highest acceptable factor between the new build's latency at latency-percentile and the baseline's."},
	{Name: "auto-rollback", Default: "true", Description: "Roll back to the previous SHA when the new build regresses."},
	{Name: "shadow", Default: "false", Description: "Shadow mode, to watch what immune would do before it acts (deploy mode): everything is judged as usual, but nothing is rolled back (a canary that regresses is promoted as if it passed), the job does not fail for a verdict (exit 0), nobody is told on pull requests or in a tracking issue and the gate stays clear. The deployment stays success and the commit status never failure, their descriptions starting with \"shadow: would have rolled back at +T\"; the webhook hears would-roll-back; the outputs carry the verdict reached and shadow: true. A metric can be trialled alone with shadow: true in its metrics entry."},
	{Name: "rollback-duration", Default: "1m", Description: "How long the rollback is watched to confirm it is healthy."},
	{Name: "lock-timeout", Default: "15m", Description: "Longest a deploy or rollback waits while another run of immune is deploying to the same environment (its GitHub deployment is queued or in progress). Past it the run ends with verdict skipped and deploys nothing. 0s: do not wait."},
	{Name: "state-file", Default: ".immune/state.json", Description: "File (relative to the workspace) that remembers the last healthy SHA when no GitHub token is available."},
	{Name: "fix-label", Default: "immune:fix", Description: "A pull request with this label passes the gate while the line is stopped; the comments on a rolled-back pull request and the tracking issue name it."},
	{Name: "notify-webhook", Default: "", Description: "Chat webhook (Slack-compatible: a JSON body with a text field, and structured fields) told of each regressed, rolled-back, rollback-failed and recovered event (would-roll-back in shadow mode). Pass it from secrets. Empty: off.", Secret: true},
	{Name: "notify-secret", Default: "", Description: "Key that signs each webhook body as X-Immune-Signature-256: sha256=<HMAC-SHA256 of the body>, the way GitHub signs webhooks. Empty: unsigned.", Secret: true},
	{Name: "notify-timeout", Default: "10s", Description: "Longest the delivery of one webhook event may take, retries included (at most 3 attempts). Events go out in the background, so a slow webhook never delays a rollback; at its end the run waits at most this long for the last ones."},
	{Name: "backtest-deployments", Default: "10", Description: "How many of immune's last deploys of the environment backtest mode replays (from GitHub's deployments; GitHub's job deployments and those made by hand are skipped)."},
	{Name: "stats-period", Default: "30d", Description: "How far back stats mode reads the environment's history: days (30d) or a duration (12h)."},
}

// Outputs lists every output of action.yml with its description.
var Outputs = []Input{
	{Name: "verdict", Description: "healthy, regressed, rolled-back or rollback-failed (deploy and watch modes); rolled-back or rollback-failed (rollback mode); clear, stopped or fix-allowed (gate mode); inconclusive (any mode but gate) when the watch could not judge the build and nothing regressed it: a metric without data for longer than startup-timeout, or a rate metric with fewer than min-requests requests (exit 1; nothing is rolled back for it, save a canary, which is removed; nothing is recorded as healthy); cancelled when the job was cancelled (what ran was stopped; nothing is recorded as healthy); skipped when there was nothing to deploy (a push that deleted its branch or tag) or another run held the environment past lock-timeout."},
	{Name: "stage", Description: "How far a deploy went: canary when the run ended with the new build on the canary subset at most (it regressed there, was cancelled there, or never started), full once deploy-command ran for the whole fleet; always full without canary-command. Empty in other modes."},
	{Name: "sha", Description: "The commit that was deployed, watched or rolled back to."},
	{Name: "previous-sha", Description: "The rollback target that was used, or would have been."},
	{Name: "rolled-back", Description: "true when a rollback was deployed, else false."},
	{Name: "error-rate", Description: "Share of failed probes of the new build, as a decimal fraction (e.g. 0.0312); of the canary's when the run ended at stage canary."},
	{Name: "latency-p95-ms", Description: "95th percentile latency of the new build's answered probes, in milliseconds (the canary's at stage canary)."},
	{Name: "probes", Description: "Number of probes of the new build that were judged (the canary's at stage canary)."},
	{Name: "detected-after", Description: "Seconds from the start of the watch (the canary's watch at stage canary) to the regression verdict (e.g. 0.84); empty when healthy."},
	{Name: "report", Description: "Path of the JSON report of the run (every probe, the verdict and its reason), relative to the workspace when inside it; in backtest and stats modes, of the backtest's or the record's JSON (the only output those modes set)."},
	{Name: "deployment-id", Description: "ID of the GitHub deployment created for the commit (empty without a token)."},
	{Name: "shadow", Description: "true when the run was in shadow mode (the shadow input): verdict is what immune reached, and nothing was acted on (rolled-back is false); else false."},
	{Name: "culprit-sha", Description: "With bisect, the commit that broke production: the first bad commit the bisection named, or sha when the batch was that one commit. Empty otherwise, and when a step could not decide (the suspects are in the summary and the report)."},
	{Name: "shipped-sha", Description: "The commit this run shipped to the whole fleet and watched healthy: sha when it was healthy, or, with bisect, the newest good commit of a batch that regressed. Empty when nothing new shipped."},
}

// SecretValues returns every value that must be masked in the log: each
// line of a secret input and, for header lists, each header's value and the
// credential after its scheme ("Bearer xyz": also "xyz").
func SecretValues(get Getter) []string {
	var secrets []string
	for _, in := range Inputs {
		if !in.Secret {
			continue
		}
		for _, line := range strings.Split(get(in.Name), "\n") {
			line = strings.TrimSpace(line)
			if in.HeaderList {
				_, line, _ = strings.Cut(line, ":")
				line = strings.TrimSpace(line)
				if _, cred, ok := strings.Cut(line, " "); ok && strings.TrimSpace(cred) != "" {
					secrets = append(secrets, line)
					line = strings.TrimSpace(cred)
				}
			}
			if line != "" {
				secrets = append(secrets, line)
			}
		}
	}
	return secrets
}

// Lookup returns the input named name.
func Lookup(name string) (Input, bool) {
	for _, in := range Inputs {
		if in.Name == name {
			return in, true
		}
	}
	return Input{}, false
}
