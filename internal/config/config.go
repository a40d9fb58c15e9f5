package config

import (
	"errors"
	"fmt"
	"github.com/immune-cd/immune/internal/run"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/immune-cd/immune/internal/promql"
	"github.com/immune-cd/immune/internal/redact"
	"github.com/immune-cd/immune/internal/sha"
)

// DefaultTimeout is a probe's timeout when the timeout input is empty,
// unless interval is shorter.
const DefaultTimeout = 2 * time.Second

// DefaultInterval is the time between probes when the interval input is
// empty, or a tenth of duration when that is shorter.
const DefaultInterval = 5 * time.Second

// DefaultStartupTimeout is the startup grace when the startup-timeout
// input is empty, or half of duration when that is shorter.
const DefaultStartupTimeout = time.Minute

// Env is what the runner tells about the run, beyond the inputs.
type Env struct {
	EventName string // GITHUB_EVENT_NAME
	SHA       string // GITHUB_SHA
	Ref       string // GITHUB_REF: deploy-workflow-ref's default
	Workspace string // GITHUB_WORKSPACE, or the working directory outside Actions
	// Flags says the inputs came as command-line flags (--name=value):
	// errors then name them as flags.
	Flags bool
}

// Config is the validated configuration of one run.
type Config struct {
	Mode           run.Mode
	Environment    string
	EnvironmentURL string
	SHA            string
	PreviousSHA    string
	Reason         string
	Token          string

	// Deployer is how this run deploys (deploy and rollback modes; empty
	// in the others). The commands are set with run.ByCommand only.
	Deployer        run.Deployer
	DeployCommand   string
	RollbackCommand string
	DeployTimeout   time.Duration

	// DeployWorkflow is the workflow dispatched for each step (a file name
	// or an id), on DeployWorkflowRef (a branch or tag).
	DeployWorkflow    string
	DeployWorkflowRef string
	// DeployHook is the URL POSTed for each step; DeployHookSecret signs
	// the bodies.
	DeployHook       string
	DeployHookSecret string

	// A canary (Canary): the deployer puts the build on a subset first
	// (stage canary), judged against the control (HealthURLs) through
	// CanaryHealthURLs for CanaryDuration. With run.ByCommand,
	// CanaryCommand deploys it (deploy-command when only canary: true is
	// set) and CanaryRollbackCommand, never empty then, removes it.
	Canary                bool
	CanaryCommand         string
	CanaryRollbackCommand string
	CanaryHealthURLs      []string
	CanaryDuration        time.Duration
	CanaryPromoteEarly    bool

	// Bisect finds the first bad commit of a batch that regressed, on the
	// canary, or on the whole fleet with BisectProduction, within
	// BisectTimeout.
	Bisect           bool
	BisectProduction bool
	BisectTimeout    time.Duration

	HealthURLs     []string
	Interval       time.Duration
	Timeout        time.Duration
	Duration       time.Duration
	StartupTimeout time.Duration
	ExpectStatus   StatusSet
	ExpectBody     *regexp.Regexp
	ExpectVersion  VersionSource
	Headers        []Header

	PrometheusURL     string
	PrometheusHeaders []Header
	Metrics           []Metric
	MinRequests       int

	MaxErrorRate        float64
	ConsecutiveFailures int
	MaxLatency          time.Duration
	LatencyPercentile   float64
	Confidence          float64
	BaselineDuration    time.Duration
	MaxLatencyIncrease  float64

	AutoRollback bool
	// Shadow: judge as usual, act on nothing (see the shadow input).
	Shadow           bool
	RollbackDuration time.Duration
	LockTimeout      time.Duration
	StateFile        string // absolute path
	FixLabel         string
	Workspace        string

	// NotifyWebhook, when set, is told of each event; NotifySecret signs
	// the bodies; NotifyTimeout bounds one event's delivery.
	NotifyWebhook string
	NotifySecret  string
	NotifyTimeout time.Duration

	// BacktestDeployments is how many deploys a backtest replays;
	// StatsPeriod how far back the stats read.
	BacktestDeployments int
	StatsPeriod         time.Duration

	// Warnings name inputs that were set but mean nothing in this mode.
	Warnings []string
	// Flags: the inputs came as command-line flags.
	Flags bool
}

// Input names an input as its user gave it: "--sha" on the command line,
// "the sha input" in a workflow.
func (c *Config) Input(name string) string {
	if c.Flags {
		return "--" + name
	}
	return "the " + name + " input"
}

// InputError is a problem with one input.
type InputError struct {
	Name   string
	Reason string
	// Flag: the input came as a command-line flag.
	Flag bool
}

func (e *InputError) Error() string {
	if e.Flag {
		return fmt.Sprintf("--%s: %s", e.Name, e.Reason)
	}
	return fmt.Sprintf("input %s: %s", e.Name, e.Reason)
}

// Getter returns the raw value of an input, "" when it is not set.
type Getter func(name string) string

// Parse reads every input through get, applies the defaults of absent
// inputs, and validates the result. All problems are reported at once.
func Parse(get Getter, env Env) (*Config, error) {
	p := parser{get: get, flags: env.Flags}
	c := &Config{Workspace: env.Workspace, Flags: env.Flags}

	c.Mode = p.mode(env.EventName)
	c.Environment = p.str("environment")
	if c.Environment == "" {
		p.fail("environment", "expected a name")
	} else if err := checkEnvironment(c.Environment); err != nil {
		p.failValue("environment", err.Error())
	}
	c.EnvironmentURL = p.str("environment-url")
	if c.EnvironmentURL != "" {
		if _, err := ParseURLs(c.EnvironmentURL); err != nil || strings.ContainsAny(c.EnvironmentURL, ",\n") {
			p.fail("environment-url", "expected one absolute http:// or https:// URL")
		}
	}
	c.Token = p.str("github-token")
	c.Reason = p.str("reason")

	c.DeployCommand = p.str("deploy-command")
	c.RollbackCommand = p.str("rollback-command")
	if c.RollbackCommand == "" {
		c.RollbackCommand = c.DeployCommand
	}
	c.DeployTimeout = p.positiveDuration("deploy-timeout")
	c.CanaryCommand = p.str("canary-command")
	c.Canary = p.bool("canary") || c.CanaryCommand != ""
	c.CanaryRollbackCommand = p.str("canary-rollback-command")
	p.deployer(c, env)
	if c.Deployer == run.ByCommand && c.Canary && c.CanaryCommand == "" {
		c.CanaryCommand = c.DeployCommand
	}
	if c.CanaryRollbackCommand == "" && c.CanaryCommand != "" {
		c.CanaryRollbackCommand = c.RollbackCommand
	}
	c.CanaryHealthURLs = p.urls("canary-health-url")
	c.CanaryDuration = p.positiveDuration("canary-duration")
	c.CanaryPromoteEarly = p.bool("canary-promote-early")
	c.Bisect = p.bool("bisect")
	c.BisectProduction = p.bool("bisect-production")
	c.BisectTimeout = p.positiveDuration("bisect-timeout")

	c.HealthURLs = p.urls("health-url")
	// What is not set follows duration: a short watch probes more often
	// and gives the build less time to come up.
	c.Duration = p.positiveDuration("duration")
	if p.str("interval") == "" {
		c.Interval = DefaultInterval
		if c.Duration > 0 {
			c.Interval = min(DefaultInterval, c.Duration/10)
		}
	} else {
		c.Interval = p.positiveDuration("interval")
	}
	if p.str("timeout") == "" {
		c.Timeout = min(DefaultTimeout, c.Interval)
	} else {
		c.Timeout = p.positiveDuration("timeout")
	}
	if p.str("startup-timeout") == "" {
		c.StartupTimeout = min(DefaultStartupTimeout, c.Duration/2)
	} else {
		c.StartupTimeout = p.duration("startup-timeout")
	}
	c.ExpectStatus = p.statuses("expect-status")
	c.ExpectBody = p.regexp("expect-body")
	c.ExpectVersion = p.versionSource("expect-version")
	c.Headers = p.headers("headers")

	c.MaxErrorRate = p.fraction("max-error-rate")
	if c.MaxErrorRate <= 0 || c.MaxErrorRate >= 1 {
		p.failValue("max-error-rate", "expected a rate above 0% and below 100%")
	}
	c.PrometheusURL = p.prometheusURL("prometheus-url")
	c.PrometheusHeaders = p.headers("prometheus-headers")
	for _, h := range c.PrometheusHeaders {
		if h.Name == "Content-Type" {
			p.fail("prometheus-headers", "header Content-Type cannot be set; the query API's is fixed")
		}
	}
	c.Metrics = p.metrics("metrics", c.MaxErrorRate)
	c.MinRequests = p.positiveInt("min-requests")
	c.ConsecutiveFailures = p.positiveInt("consecutive-failures")
	if s := p.str("max-latency"); s != "" {
		c.MaxLatency = p.positiveDuration("max-latency")
	}
	c.LatencyPercentile = p.percentile("latency-percentile")
	c.Confidence = p.fraction("confidence")
	if c.Confidence <= 0.5 || c.Confidence > 0.9999 {
		p.failValue("confidence", "expected a confidence above 50% and at most 99.99%")
	}
	c.BaselineDuration = p.duration("baseline-duration")
	c.MaxLatencyIncrease = p.float("max-latency-increase")
	if c.MaxLatencyIncrease < 1 {
		p.failValue("max-latency-increase", "expected a factor of at least 1, like 1.5")
	}

	c.AutoRollback = p.bool("auto-rollback")
	c.Shadow = p.bool("shadow")
	c.RollbackDuration = p.positiveDuration("rollback-duration")
	c.LockTimeout = p.duration("lock-timeout")
	c.StateFile = p.str("state-file")
	if c.StateFile == "" {
		p.fail("state-file", "expected a file path")
	} else if !filepath.IsAbs(c.StateFile) {
		c.StateFile = filepath.Join(env.Workspace, c.StateFile)
	}
	c.FixLabel = p.str("fix-label")
	c.NotifyWebhook = p.str("notify-webhook")
	if c.NotifyWebhook != "" {
		if _, err := ParseURLs(c.NotifyWebhook); err != nil || strings.ContainsAny(c.NotifyWebhook, ", \n") {
			p.fail("notify-webhook", "expected one absolute http:// or https:// URL (the value is not shown: it is a secret)")
		}
	}
	c.NotifySecret = p.str("notify-secret")
	if c.NotifySecret != "" && c.NotifyWebhook == "" {
		p.fail("notify-secret", "is set but notify-webhook is empty: there is nothing to sign")
	}
	c.NotifyTimeout = p.positiveDuration("notify-timeout")
	c.BacktestDeployments = p.positiveInt("backtest-deployments")
	if c.BacktestDeployments > MaxBacktestDeployments && !p.failed("backtest-deployments") {
		p.failValue("backtest-deployments", fmt.Sprintf("expected at most %d", MaxBacktestDeployments))
	}
	c.StatsPeriod = p.period("stats-period")

	c.SHA = p.str("sha")
	if c.SHA == "" && c.Mode != run.ModeRollback {
		c.SHA = env.SHA
	}
	c.PreviousSHA = p.str("previous-sha")

	p.checkMode(c)
	if err := errors.Join(p.errs...); err != nil {
		return nil, err
	}
	c.Warnings = p.unused(c.Mode)
	if len(c.Metrics) > 0 && !hasRate(c.Metrics) && p.set("min-requests") {
		c.Warnings = append(c.Warnings, fmt.Sprintf("%s is set but no metric is a rate metric (errors and total)", map[bool]string{true: "--min-requests", false: "input min-requests"}[p.flags]))
	}
	return c, nil
}

// checkMode checks what each mode needs, and how the timings fit together.
func (p *parser) checkMode(c *Config) {
	if c.Mode == run.ModeDeploy {
		p.checkCanary(c)
		p.checkBisect(c)
	}
	if c.Mode == run.ModeBacktest || c.Mode == run.ModeStats {
		p.checkHindsight(c)
	}
	needsSignal := c.Mode == run.ModeDeploy || c.Mode == run.ModeWatch || c.Mode == run.ModeRollback
	if needsSignal && len(c.HealthURLs) == 0 && len(c.Metrics) == 0 && !p.failed("health-url") && !p.failed("metrics") {
		p.fail("health-url", fmt.Sprintf("%s mode needs a signal to watch: %s, %s, or both", c.Mode, p.setIt("health-url"), p.in("metrics")))
	}
	if needsSignal && len(c.HealthURLs) == 0 && len(c.Metrics) > 0 && allShadow(c.Metrics) && !p.failed("metrics") {
		p.fail("metrics", fmt.Sprintf("every metric is a shadow one, so nothing would judge the build: %s, a metric without shadow, or %s to trial the whole configuration",
			p.setIt("health-url"), p.in("shadow")))
	}
	if needsSignal {
		p.checkMetrics(c)
	}
	if c.Deployer == run.ByCommand || c.Deployer == "" {
		if (c.Mode == run.ModeDeploy || c.Mode == run.ModeRollback) && c.RollbackCommand == "" {
			if c.Mode == run.ModeDeploy {
				p.fail("deploy-command", "a command is required in deploy mode (or deploy through "+p.in("deploy-workflow")+" or "+p.in("deploy-hook")+")")
			} else {
				p.fail("rollback-command", "a "+p.in("rollback-command")+" or "+p.in("deploy-command")+" is required in rollback mode (or "+p.in("deploy-workflow")+" or "+p.in("deploy-hook")+")")
			}
		}
		if c.Mode == run.ModeDeploy && c.DeployCommand == "" && c.RollbackCommand != "" {
			p.fail("deploy-command", "a command is required in deploy mode (or deploy through "+p.in("deploy-workflow")+" or "+p.in("deploy-hook")+")")
		}
	}
	switch c.Mode {
	case run.ModeDeploy, run.ModeWatch:
		switch {
		case c.SHA == "" && c.Mode == run.ModeDeploy:
			p.fail("sha", "no commit to deploy: "+p.setIt("sha")+" or run where GITHUB_SHA is set")
		case c.SHA == "" && c.ExpectVersion.Kind != "":
			p.fail("sha", p.in("expect-version")+" needs the version to expect: "+p.setIt("sha")+" or run where GITHUB_SHA is set")
		case c.SHA != "" && !sha.IsRef(c.SHA):
			p.failValue("sha", "expected a commit SHA or ref name")
		}
	case run.ModeRollback:
		if c.SHA != "" && !sha.IsAbbrev(c.SHA) {
			p.failValue("sha", "expected a commit SHA of 7 to 40 hex characters")
		}
	}
	if c.PreviousSHA != "" {
		if !sha.IsRef(c.PreviousSHA) {
			p.failValue("previous-sha", "expected a commit SHA or ref name")
		} else if c.PreviousSHA == c.SHA {
			p.failValue("previous-sha", "is the same commit as sha; rolling back to it would change nothing")
		}
	}
	if c.Mode == run.ModeGate && c.FixLabel == "" {
		p.fail("fix-label", "expected a label name")
	}
	if c.Mode == run.ModeGate && c.Token == "" {
		p.fail("github-token", "gate mode reads the environment's deployments from GitHub and needs a token")
	}
	if c.Interval > 0 && c.Timeout > c.Interval {
		p.fail("timeout", fmt.Sprintf("%s is longer than %s (%s); a probe must end before the same URL's next one is due", c.Timeout, p.in("interval"), c.Interval))
	}
	if c.Duration > 0 && c.Interval >= c.Duration {
		p.fail("interval", fmt.Sprintf("%s is not shorter than %s (%s): the watch would judge a single probe; shorten %s or lengthen %s",
			c.Interval, p.in("duration"), c.Duration, p.in("interval"), p.in("duration")))
	}
	if c.StartupTimeout > c.Duration && c.Duration > 0 {
		p.fail("startup-timeout", fmt.Sprintf("%s is longer than %s (%s); shorten it, or leave it unset for half of %s", c.StartupTimeout, p.in("duration"), c.Duration, p.in("duration")))
	}
	for _, w := range []struct {
		name string
		d    time.Duration
	}{{"duration", c.Duration}, {"rollback-duration", c.RollbackDuration}, {"baseline-duration", c.BaselineDuration}, {"canary-duration", c.CanaryDuration}} {
		if c.Interval > 0 && w.d/c.Interval > MaxProbesPerURL && !p.failed(w.name) {
			p.fail(w.name, fmt.Sprintf("%s at an interval of %s is %d probes per URL; at most %d are allowed (11½ days at 1s): lengthen %s or shorten %s",
				w.d, c.Interval, w.d/c.Interval, MaxProbesPerURL, p.in("interval"), p.in(w.name)))
		}
	}
	if c.BaselineDuration > 0 && c.BaselineDuration < c.Interval {
		p.fail("baseline-duration", fmt.Sprintf("%s is shorter than %s (%s); the baseline would have no probes", c.BaselineDuration, p.in("interval"), c.Interval))
	}
}

// checkCanary checks the canary's inputs (deploy mode): a canary needs a
// way to be told apart from the control, and canary inputs mean nothing
// without canary-command.
func (p *parser) checkCanary(c *Config) {
	if !c.Canary {
		for _, name := range []string{"canary-rollback-command", "canary-health-url", "canary-duration", "canary-promote-early"} {
			if p.set(name) && !p.failed(name) {
				p.fail(name, "set without "+p.in("canary-command")+" or "+p.in("canary")+": true; "+p.setIt("canary-command")+" or "+p.in("canary")+" to deploy a canary first, or remove "+p.in(name))
			}
		}
		return
	}
	switch {
	case len(c.CanaryHealthURLs) > 0 && len(c.HealthURLs) == 0 && !p.failed("health-url"):
		p.fail("health-url", "a canary is judged against the control: "+p.setIt("health-url")+" to the stable fleet's URLs, probed in the same rounds as "+p.in("canary-health-url"))
	case len(c.CanaryHealthURLs) == 0 && !hasRate(c.Metrics) && !p.failed("canary-health-url") && !p.failed("metrics"):
		p.fail("canary-health-url", p.canaryName()+" needs a way to judge the canary against the control: "+p.setIt("canary-health-url")+" (and "+p.in("health-url")+" for the stable fleet), or rate metrics that use ${TRACK}")
	}
	for _, cu := range c.CanaryHealthURLs {
		for _, u := range c.HealthURLs {
			if cu == u && !p.failed("canary-health-url") {
				p.fail("canary-health-url", fmt.Sprintf("%s is also in health-url; the canary must be compared with other servers (the stable fleet)", redact.URL(u)))
			}
		}
	}
	if c.Interval > 0 && c.CanaryDuration > 0 && c.Interval > c.CanaryDuration && !p.failed("canary-duration") {
		p.fail("canary-duration", fmt.Sprintf("%s is shorter than interval (%s); the canary would not be probed twice", c.CanaryDuration, c.Interval))
	}
}

// checkBisect checks the bisection's inputs (deploy mode): a step goes to
// the canary, or to the whole fleet only when asked for in so many words;
// it follows a rollback; and its inputs mean nothing without bisect.
func (p *parser) checkBisect(c *Config) {
	// yes says how to turn a yes-or-no input on: "set bisect: true",
	// "pass --bisect".
	yes := func(name string) string {
		if p.flags {
			return "pass --" + name
		}
		return "set " + name + ": true"
	}
	if !c.Bisect {
		for _, name := range []string{"bisect-production", "bisect-timeout"} {
			if p.set(name) && !p.failed(name) {
				p.fail(name, "set without "+p.in("bisect")+"; "+yes("bisect")+" to bisect a batch that regresses, or remove "+p.in(name))
			}
		}
		return
	}
	step, stepName := c.CanaryDuration, "canary-duration"
	switch {
	case !c.Canary && !c.BisectProduction:
		p.fail("bisect", fmt.Sprintf("each step of a bisection deploys a commit to the canary, and there is no canary: %s (with %s), "+
			"or %s to deploy each step to the whole fleet, which regresses production for everyone whenever a step lands on a bad commit",
			p.setIt("canary-command"), p.in("canary-health-url"), yes("bisect-production")))
	case c.Canary && c.BisectProduction:
		p.fail("bisect-production", "set with a canary: the steps go to the canary; remove "+p.in("bisect-production"))
	case c.BisectProduction:
		step, stepName = c.Duration, "duration"
	}
	switch {
	case c.Shadow && !p.failed("bisect"):
		p.fail("bisect", "shadow mode rolls nothing back, so there is no batch to bisect after a rollback; remove "+p.in("bisect")+" or "+p.in("shadow"))
	case !c.AutoRollback && !p.failed("bisect"):
		p.fail("bisect", fmt.Sprintf("a bisection follows the rollback of a batch that regressed, and %s is false: nothing would be rolled back; %s or remove %s",
			p.in("auto-rollback"), yes("auto-rollback"), p.in("bisect")))
	}
	if step > 0 && c.BisectTimeout > 0 && c.BisectTimeout < step && !p.failed("bisect-timeout") {
		p.fail("bisect-timeout", fmt.Sprintf("%s is shorter than %s (%s), the length of one step; no step would fit", c.BisectTimeout, p.in(stepName), step))
	}
}

// checkHindsight checks what backtest and stats modes need: GitHub's
// history, and for a backtest, metrics to replay.
func (p *parser) checkHindsight(c *Config) {
	if c.Token == "" {
		p.fail("github-token", fmt.Sprintf("%s mode reads the environment's deployments from GitHub and needs a token", c.Mode))
	}
	if c.Mode != run.ModeBacktest {
		return
	}
	if len(c.Metrics) == 0 && !p.failed("metrics") {
		p.fail("metrics", "backtest mode replays metrics from Prometheus (health probes are kept nowhere to be replayed): "+p.setIt("metrics")+" and "+p.in("prometheus-url"))
	}
	p.checkMetrics(c)
}

// checkMetrics checks that the metric inputs fit together.
func (p *parser) checkMetrics(c *Config) {
	switch {
	case len(c.Metrics) > 0 && c.PrometheusURL == "" && !p.failed("prometheus-url"):
		p.fail("prometheus-url", "required with metrics: the base URL of the Prometheus query API to read them from")
	case len(c.Metrics) == 0 && c.PrometheusURL != "" && !p.failed("metrics"):
		p.fail("prometheus-url", "set, but "+p.in("metrics")+" lists nothing to read; add metrics or remove "+p.in("prometheus-url"))
	}
	if len(c.PrometheusHeaders) > 0 && c.PrometheusURL == "" && !p.failed("prometheus-url") {
		p.fail("prometheus-headers", "set without "+p.in("prometheus-url"))
	}
	for _, m := range c.Metrics {
		switch {
		case c.Mode == run.ModeWatch && c.SHA == "" && m.Uses(promql.SHA) && !p.failed("sha"):
			p.fail("sha", fmt.Sprintf("metric %q reads ${SHA}: %s, the commit whose metrics the watch reads", m.Name, p.setIt("sha")))
		case c.Mode == run.ModeWatch && m.Uses(promql.PreviousSHA):
			p.fail("metrics", fmt.Sprintf("metric %q reads ${PREVIOUS_SHA}, which watch mode has no value for", m.Name))
		}
	}
	if c.Mode == run.ModeDeploy && c.BaselineDuration > 0 && hasRate(c.Metrics) && c.BaselineDuration < 2*c.Interval && !p.failed("baseline-duration") {
		p.fail("baseline-duration", fmt.Sprintf("%s is less than two intervals (%s); a rate metric's first look is a starting point, so its baseline needs at least two",
			c.BaselineDuration, 2*c.Interval))
	}
	// ${TRACK} tells the canary's series from the stable fleet's: it means
	// something only in a canary deploy, and there a rate metric without it
	// would compare the fleet with itself.
	canary := (c.Mode == run.ModeDeploy || c.Mode == run.ModeBacktest) && c.Canary
	for _, m := range c.Metrics {
		switch {
		case !canary && m.UsesTrack():
			p.mark("metrics")
			p.errs = append(p.errs, &InputError{Name: "metrics", Reason: fmt.Sprintf("%q uses ${TRACK}, which only a canary deploy fills in (deploy mode with %s or %s: true)", m.Name, p.in("canary-command"), p.in("canary")), Flag: p.flags})
		case canary && m.Kind == MetricRate && (!usesTrack(m.Errors) || !usesTrack(m.Total)):
			p.mark("metrics")
			p.errs = append(p.errs, &InputError{Name: "metrics", Reason: fmt.Sprintf("%q: with %s, a rate metric must tell the canary from the stable fleet: use ${TRACK} in both errors and total (e.g. track=\"${TRACK}\")", m.Name, p.canaryName()), Flag: p.flags})
		}
	}
}

// modeInputs lists, per mode, the inputs that mode reads. Inputs set to a
// non-default value outside this list produce a warning, so nothing a user
// configured is silently ignored.
var modeInputs = map[run.Mode][]string{
	run.ModeDeploy:   {"environment", "environment-url", "sha", "previous-sha", "github-token", "deploy-command", "rollback-command", "deploy-workflow", "deploy-workflow-ref", "deploy-hook", "deploy-hook-secret", "canary", "canary-command", "canary-rollback-command", "canary-health-url", "canary-duration", "canary-promote-early", "bisect", "bisect-production", "bisect-timeout", "deploy-timeout", "health-url", "interval", "timeout", "duration", "startup-timeout", "expect-status", "expect-body", "expect-version", "headers", "prometheus-url", "prometheus-headers", "metrics", "min-requests", "max-error-rate", "consecutive-failures", "max-latency", "latency-percentile", "confidence", "baseline-duration", "max-latency-increase", "auto-rollback", "shadow", "rollback-duration", "lock-timeout", "state-file", "fix-label", "notify-webhook", "notify-secret", "notify-timeout"},
	run.ModeWatch:    {"environment", "sha", "github-token", "health-url", "interval", "timeout", "duration", "startup-timeout", "expect-status", "expect-body", "expect-version", "headers", "prometheus-url", "prometheus-headers", "metrics", "min-requests", "max-error-rate", "consecutive-failures", "max-latency", "latency-percentile", "confidence", "state-file", "notify-webhook", "notify-secret", "notify-timeout"},
	run.ModeRollback: {"environment", "environment-url", "sha", "reason", "github-token", "deploy-command", "rollback-command", "deploy-workflow", "deploy-workflow-ref", "deploy-hook", "deploy-hook-secret", "deploy-timeout", "health-url", "interval", "timeout", "duration", "startup-timeout", "expect-status", "expect-body", "expect-version", "headers", "prometheus-url", "prometheus-headers", "metrics", "min-requests", "max-error-rate", "consecutive-failures", "max-latency", "latency-percentile", "confidence", "lock-timeout", "state-file", "fix-label", "notify-webhook", "notify-secret", "notify-timeout"},
	run.ModeGate:     {"environment", "github-token", "fix-label"},
	// A backtest takes the inputs of a deploy that judge its metrics, so
	// that a deploy's configuration can be backtested as it is.
	run.ModeBacktest: {"environment", "github-token", "canary", "canary-command", "deploy-timeout", "health-url", "interval", "timeout", "duration", "startup-timeout", "prometheus-url", "prometheus-headers", "metrics", "min-requests", "max-error-rate", "confidence", "baseline-duration", "backtest-deployments"},
	run.ModeStats:    {"environment", "github-token", "stats-period"},
}

type parser struct {
	get   Getter
	flags bool // the inputs are command-line flags
	errs  []error
	seen  map[string]bool // inputs that failed, so each is reported once
}

func (p *parser) raw(name string) string {
	in, ok := Lookup(name)
	if !ok {
		panic("config: unknown input " + name)
	}
	if v := strings.TrimSpace(p.get(name)); v != "" {
		return v
	}
	if strings.HasPrefix(in.Default, "${{") {
		// An expression only the runner can evaluate; outside Actions it means unset.
		return ""
	}
	return in.Default
}

func (p *parser) str(name string) string { return p.raw(name) }

// in names an input as its user gives it: "--sha" on the command line,
// "sha" in a workflow's with:.
func (p *parser) in(name string) string {
	if p.flags {
		return "--" + name
	}
	return name
}

// setIt says how to give an input a value: "pass --sha", "set sha".
func (p *parser) setIt(name string) string {
	if p.flags {
		return "pass --" + name
	}
	return "set " + name
}

func (p *parser) fail(name, reason string) {
	if p.seen[name] {
		return
	}
	p.mark(name)
	p.errs = append(p.errs, &InputError{Name: name, Reason: reason, Flag: p.flags})
}

// mark records that name failed, so later checks do not pile on.
func (p *parser) mark(name string) {
	if p.seen == nil {
		p.seen = map[string]bool{}
	}
	p.seen[name] = true
}

func (p *parser) failed(name string) bool { return p.seen[name] }

// failValue reports a problem and quotes the value, unless the input is secret.
func (p *parser) failValue(name, reason string) {
	if p.failed(name) {
		return
	}
	if in, _ := Lookup(name); !in.Secret {
		reason = fmt.Sprintf("got %q: %s", p.raw(name), reason)
	}
	p.fail(name, reason)
}

func (p *parser) wrap(name string, err error) {
	p.fail(name, err.Error())
}

func (p *parser) mode(event string) run.Mode {
	m := run.Mode(strings.ToLower(p.str("mode")))
	switch m {
	case run.ModeDeploy, run.ModeWatch, run.ModeRollback, run.ModeGate, run.ModeBacktest, run.ModeStats:
		return m
	case run.ModeAuto:
		switch event {
		case "push":
			return run.ModeDeploy
		case "workflow_dispatch":
			return run.ModeRollback
		case "pull_request", "pull_request_target", "merge_group":
			return run.ModeGate
		case "":
			p.fail("mode", "auto needs GITHUB_EVENT_NAME to pick a mode; set mode to deploy, watch, rollback or gate")
		default:
			p.fail("mode", fmt.Sprintf("auto cannot pick a mode for the %q event (it handles push, workflow_dispatch, pull_request, pull_request_target and merge_group); set mode to deploy, watch, rollback or gate", event))
		}
		return run.ModeAuto
	}
	p.failValue("mode", "expected auto, deploy, watch, rollback, gate, backtest or stats")
	return run.ModeAuto
}

// maxDuration bounds each duration input: far beyond any real use, and
// short of what overflows a count of probes or a timer.
var maxDuration = map[string]time.Duration{
	"deploy-timeout":    24 * time.Hour,
	"interval":          time.Hour,
	"timeout":           10 * time.Minute,
	"duration":          7 * 24 * time.Hour,
	"startup-timeout":   7 * 24 * time.Hour,
	"baseline-duration": 7 * 24 * time.Hour,
	"rollback-duration": 7 * 24 * time.Hour,
	"lock-timeout":      24 * time.Hour,
	"bisect-timeout":    7 * 24 * time.Hour,
	"notify-timeout":    5 * time.Minute, // the end of the run waits this long
}

// MaxProbesPerURL bounds one watch: 11½ days of probes once a second.
const MaxProbesPerURL = 1_000_000

func (p *parser) duration(name string) time.Duration {
	d, err := ParseDuration(p.raw(name))
	if err != nil {
		p.wrap(name, err)
		return 0
	}
	if limit, ok := maxDuration[name]; ok && d > limit {
		p.failValue(name, fmt.Sprintf("expected at most %s", limit))
		return 0
	}
	return d
}

func (p *parser) positiveDuration(name string) time.Duration {
	d := p.duration(name)
	if d == 0 && !p.failed(name) {
		p.failValue(name, "expected a duration above zero")
	}
	return d
}

// MaxBacktestDeployments bounds backtest-deployments: each deploy costs
// range queries and a read of its statuses.
const MaxBacktestDeployments = 100

// MaxStatsPeriod bounds stats-period.
const MaxStatsPeriod = 366 * 24 * time.Hour

func (p *parser) period(name string) time.Duration {
	d, err := ParsePeriod(p.raw(name))
	switch {
	case err != nil:
		p.wrap(name, err)
	case d <= 0:
		p.failValue(name, "expected a period above zero")
	case d > MaxStatsPeriod:
		p.failValue(name, "expected at most 366d")
	}
	return d
}

func (p *parser) positiveInt(name string) int {
	n, err := strconv.Atoi(p.raw(name))
	if err != nil || n < 1 {
		p.failValue(name, "expected a whole number of at least 1")
	}
	return n
}

func (p *parser) float(name string) float64 {
	v, err := strconv.ParseFloat(p.raw(name), 64)
	if err != nil {
		p.failValue(name, "expected a number")
	}
	return v
}

func (p *parser) fraction(name string) float64 {
	v, err := ParseFraction(p.raw(name))
	if err != nil {
		p.wrap(name, err)
	}
	return v
}

func (p *parser) percentile(name string) float64 {
	v, err := ParsePercentile(p.raw(name))
	if err != nil {
		p.wrap(name, err)
	}
	return v
}

func (p *parser) bool(name string) bool {
	v, err := ParseBool(p.raw(name))
	if err != nil {
		p.wrap(name, err)
	}
	return v
}

func (p *parser) urls(name string) []string {
	v, err := ParseURLs(p.raw(name))
	if err != nil {
		p.wrap(name, err)
	}
	return v
}

func (p *parser) statuses(name string) StatusSet {
	v, err := ParseStatusSet(p.raw(name))
	if err != nil {
		p.wrap(name, fmt.Errorf("%w; expected codes and ranges like 200,204,300-302", err))
	}
	return v
}

func (p *parser) regexp(name string) *regexp.Regexp {
	s := p.raw(name)
	if s == "" {
		return nil
	}
	re, err := regexp.Compile(s)
	if err != nil {
		p.fail(name, fmt.Sprintf("expected an RE2 regular expression: %v", err))
	}
	return re
}

func (p *parser) versionSource(name string) VersionSource {
	v, err := ParseVersionSource(p.raw(name))
	if err != nil {
		p.wrap(name, err)
	}
	return v
}

func (p *parser) prometheusURL(name string) string {
	v, err := ParsePrometheusURL(p.raw(name))
	if err != nil {
		p.wrap(name, err)
	}
	return v
}

// metrics parses the metrics input; every entry's problems are reported.
func (p *parser) metrics(name string, maxErrorRate float64) []Metric {
	v, errs := ParseMetrics(p.raw(name), maxErrorRate)
	for _, err := range errs {
		p.errs = append(p.errs, &InputError{Name: name, Reason: err.Error(), Flag: p.flags})
	}
	if len(errs) > 0 {
		p.mark(name)
	}
	return v
}

// set reports whether an input was given a value other than its default.
func (p *parser) set(name string) bool {
	in, _ := Lookup(name)
	v := strings.TrimSpace(p.get(name))
	return v != "" && v != in.Default
}

func allShadow(ms []Metric) bool {
	for _, m := range ms {
		if !m.Shadow {
			return false
		}
	}
	return true
}

func hasRate(ms []Metric) bool {
	for _, m := range ms {
		if m.Kind == MetricRate {
			return true
		}
	}
	return false
}

func (p *parser) headers(name string) []Header {
	v, err := ParseHeaders(p.raw(name))
	if err != nil {
		p.wrap(name, err)
	}
	return v
}

// unused lists warnings for inputs set to something other than their default
// that mode does not read.
func (p *parser) unused(mode run.Mode) []string {
	used := map[string]bool{"mode": true}
	for _, name := range modeInputs[mode] {
		used[name] = true
	}
	var warnings []string
	for _, in := range Inputs {
		if used[in.Name] {
			continue
		}
		v := strings.TrimSpace(p.get(in.Name))
		if v != "" && v != in.Default {
			what := "input " + in.Name
			if p.flags {
				what = "--" + in.Name
			}
			warnings = append(warnings, fmt.Sprintf("%s is set but not used in %s mode", what, mode))
		}
	}
	return warnings
}

// MaxEnvironment is the longest environment name: immune's commit status
// context, immune/<environment>, must fit GitHub's limit of 255 characters.
const MaxEnvironment = maxContext - len(contextPrefix)

const (
	maxContext    = 255
	contextPrefix = "immune/"
)

// checkEnvironment says what is wrong with an environment name, or nil.
func checkEnvironment(environment string) error {
	if n := utf8.RuneCountInString(environment); n > MaxEnvironment {
		return fmt.Errorf("expected at most %d characters, so that the commit status context %q fits GitHub's limit of %d (got %d characters)",
			MaxEnvironment, contextPrefix+"…", maxContext, n)
	}
	if strings.ContainsAny(environment, "\r\n") {
		return fmt.Errorf("expected a name on one line")
	}
	return nil
}
