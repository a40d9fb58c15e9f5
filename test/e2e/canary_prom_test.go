package e2e

import (
	"fmt"
	"strings"
	"testing"

	"github.com/immune-cd/immune/internal/testkit/promtest"
)

// A canary judged by real traffic: two services instrumented with
// client_golang (the stable fleet and the canary, their series labelled
// track="stable" and track="canary"), scraped by a real Prometheus, read
// with ${TRACK} in the selectors.

// promTracks starts both tracks on shaGood under load, each version
// serving as scripted, and returns the metrics that read them.
func promTracks(t *testing.T, script map[string]promtest.Behaviour) (stable, canary *promtest.Service, metricsYAML string) {
	t.Helper()
	app := fmt.Sprintf("shop-%s", t.Name())
	app = strings.NewReplacer("/", "-", " ", "-").Replace(app)
	labels := map[string]string{"app": app}
	stable = promService(t, 90, script, promtest.ServiceOptions{Track: "stable", Labels: labels})
	canary = promService(t, 60, script, promtest.ServiceOptions{Track: "canary", Labels: labels})
	metricsYAML = fmt.Sprintf(`- name: http-errors
  errors: http_requests_total{app="%s",track="${TRACK}",code=~"5.."}
  total: http_requests_total{app="%s",track="${TRACK}"}
  max-error-rate: 1%%
`, app, app)
	return stable, canary, metricsYAML
}

// promStagedDeploy deploys by IMMUNE_STAGE through the services' admin
// endpoints.
func promStagedDeploy(stable, canary *promtest.Service) string {
	return `case "$IMMUNE_STAGE" in
canary) curl -fsS -X POST "` + canary.URL + `/deploy?sha=$IMMUNE_SHA" ;;
full) curl -fsS -X POST "` + stable.URL + `/deploy?sha=$IMMUNE_SHA" && curl -fsS -X POST "` + canary.URL + `/deploy?sha=$IMMUNE_SHA" ;;
*) exit 9 ;;
esac`
}

func TestCanaryRealPrometheus(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		script  map[string]promtest.Behaviour
		code    int
		verdict string
		stage   string
		canary  string // canary-duration: a regression ends it early
	}{
		{"a canary failing 10× the control's rate is removed", map[string]promtest.Behaviour{shaGood: {ErrorShare: 0.005}, shaNew: {ErrorShare: 0.1}}, 1, "rolled-back", "canary", "20s"},
		{"a good canary goes to everyone", map[string]promtest.Behaviour{shaGood: {ErrorShare: 0.005}, shaNew: {ErrorShare: 0.005}}, 0, "healthy", "full", "6s"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			stable, canary, metricsYAML := promTracks(t, tt.script)
			deploy := promStagedDeploy(stable, canary)
			in := metricRun(stable, prom.Get(t).URL, metricsYAML, map[string]string{
				"canary-command": deploy, "deploy-command": deploy, "canary-duration": tt.canary, "duration": "4s",
			})
			res := newActionRun(t, "push", in).exec()
			if res.code != tt.code || res.outputs["verdict"] != tt.verdict || res.outputs["stage"] != tt.stage {
				t.Fatalf("exit %d, verdict %q, stage %q\n%s", res.code, res.outputs["verdict"], res.outputs["stage"], res.log)
			}
			if tt.stage == "canary" {
				if len(stable.Deploys()) != 0 || canary.Version() != shaGood {
					t.Errorf("stable deploys %v, canary runs %s", stable.Deploys(), canary.Version())
				}
				if reason, _ := res.report["reason"].(string); !strings.Contains(reason, "on metric http-errors, the canary failed") {
					t.Errorf("reason %q", reason)
				}
			} else if stable.Version() != shaNew || canary.Version() != shaNew {
				t.Errorf("stable runs %s, canary %s", stable.Version(), canary.Version())
			}
			// The canary's counts are the canary service's, the control's the
			// stable one's: ${TRACK} told them apart.
			c, _ := res.report["canary"].(map[string]any)
			cw, _ := c["watch"].(map[string]any)
			ctl, _ := c["control"].(map[string]any)
			cm, _ := cw["metrics"].([]any)
			sm, _ := ctl["metrics"].([]any)
			if len(cm) != 1 || len(sm) != 1 {
				t.Fatalf("the report's canary metrics: %v / %v", cm, sm)
			}
			cr, sr := cm[0].(map[string]any)["requests"].(float64), sm[0].(map[string]any)["requests"].(float64)
			if cr <= 0 || sr <= 0 || cr > float64(canary.Truth(shaNew).Requests) || sr > float64(stable.Truth(shaGood).Requests) {
				t.Errorf("counted %v canary and %v control requests; served %+v and %+v", cr, sr, canary.Truth(shaNew), stable.Truth(shaGood))
			}
			t.Logf("%s: %s", tt.name, res.report["reason"])
		})
	}
}
