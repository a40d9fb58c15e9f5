package e2e

import (
	"strings"
	"testing"

	"github.com/immune-cd/immune/internal/testkit/testservice"
)

// TestVersionAware: with expect-version, answers from the old build while
// the rollout runs are "not yet live", and the old build coming back after
// the new one answered is a failure.
func TestVersionAware(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name        string
		source      string
		behaviour   testservice.Behaviour
		wantCode    int
		wantVerdict string
		wantLog     string
	}{
		{name: "old build answers for a while (json)", source: "json:version", behaviour: testservice.Behaviour{OldVersionMS: 250}, wantCode: 0, wantVerdict: "healthy",
			wantLog: "not yet live: answered by version " + shaGood},
		{name: "old build answers for a while (header)", source: "header:X-Version", behaviour: testservice.Behaviour{OldVersionMS: 250}, wantCode: 0, wantVerdict: "healthy",
			wantLog: "not yet live: answered by version " + shaGood},
		{name: "old build answers for a while (body)", source: "body", behaviour: testservice.Behaviour{OldVersionMS: 250}, wantCode: 0, wantVerdict: "healthy",
			wantLog: "not yet live: answered by version (unknown)"},
		{name: "old build comes back after going live", source: "json:version", behaviour: testservice.Behaviour{FlipBackAfter: 4}, wantCode: 1, wantVerdict: "rolled-back",
			wantLog: "answered by version " + shaGood + ", expected " + shaNew},
		{name: "new build never answers", source: "json:version", behaviour: testservice.Behaviour{OldVersionMS: 60000}, wantCode: 1, wantVerdict: "rolled-back",
			wantLog: "no healthy answer from"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, url := service(t, map[string]testservice.Behaviour{shaNew: tt.behaviour}, shaGood)
			res := newActionRun(t, "push", fast(url, map[string]string{"expect-version": tt.source})).exec()
			if res.code != tt.wantCode || res.outputs["verdict"] != tt.wantVerdict {
				t.Fatalf("exit %d, verdict %q; want %d, %q\n%s", res.code, res.outputs["verdict"], tt.wantCode, tt.wantVerdict, res.log)
			}
			if !strings.Contains(res.log, tt.wantLog) {
				t.Errorf("log lacks %q:\n%s", tt.wantLog, res.log)
			}
			// The report shows the version each probe saw.
			watch, _ := res.report["watch"].(map[string]any)
			probes, _ := watch["probes"].([]any)
			seen := map[string]bool{}
			for _, p := range probes {
				if v, _ := p.(map[string]any)["version"].(string); v != "" {
					seen[v] = true
				}
			}
			if tt.source != "body" && tt.wantCode == 0 && !seen[shaNew] {
				t.Errorf("report shows versions %v, want %s among them", seen, shaNew)
			}
			t.Logf("%s: exit %d, verdict %s, detected after %q", tt.name, res.code, res.outputs["verdict"], res.outputs["detected-after"])
		})
	}
}

// TestBaseline: production is probed before the deploy and the new build
// is judged against it.
func TestBaseline(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name        string
		script      map[string]testservice.Behaviour
		wantCode    int
		wantVerdict string
		wantLog     string
		extra       map[string]string
	}{
		{name: "production already failing: the fix goes ahead on absolute limits", script: map[string]testservice.Behaviour{shaGood: {FailRate: 1, FailStatus: 502}},
			wantCode: 0, wantVerdict: "healthy", wantLog: "::warning title=Production was already unhealthy::production was already unhealthy before the deploy"},
		{name: "as good as production", script: map[string]testservice.Behaviour{shaGood: {LatencyMS: 20}, shaNew: {LatencyMS: 20}},
			wantCode: 0, wantVerdict: "healthy", wantLog: "The new build is judged against it."},
		// Half the new build's answers take a quarter of a second more:
		// slower than 1.5× production even where a loaded machine slows
		// production's answers too, and within the probes' timeout.
		{name: "much slower than production", script: map[string]testservice.Behaviour{shaGood: {LatencyMS: 20}, shaNew: {LatencyMS: 20, SlowRate: 0.5, SlowMS: 250}},
			wantCode: 1, wantVerdict: "rolled-back", wantLog: "the p95 latency is",
			extra: map[string]string{"interval": "400ms", "timeout": "400ms", "duration": "8s", "startup-timeout": "1s", "baseline-duration": "3s", "rollback-duration": "1s"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, url := service(t, tt.script, shaGood)
			in := map[string]string{"baseline-duration": "1s"}
			for k, v := range tt.extra {
				in[k] = v
			}
			res := newActionRun(t, "push", fast(url, in)).exec()
			if res.code != tt.wantCode || res.outputs["verdict"] != tt.wantVerdict {
				t.Fatalf("exit %d, verdict %q; want %d, %q\n%s", res.code, res.outputs["verdict"], tt.wantCode, tt.wantVerdict, res.log)
			}
			if !strings.Contains(res.log, tt.wantLog) {
				t.Errorf("log lacks %q:\n%s", tt.wantLog, res.log)
			}
			if res.report["baseline"] == nil {
				t.Error("the report has no baseline")
			}
			t.Logf("%s: exit %d, verdict %s; reason: %v", tt.name, res.code, res.outputs["verdict"], res.report["reason"])
		})
	}
}

// TestSeveralURLs: one bad instance is a regression even when the others
// hide it in the overall numbers.
func TestSeveralURLs(t *testing.T) {
	t.Parallel()
	_, good := service(t, nil, shaGood)
	_, bad := service(t, map[string]testservice.Behaviour{shaNew: {FailRate: 0.5}}, shaGood)
	in := fast(good, map[string]string{
		"health-url":     good + "/health\n" + bad + "/health, " + good + "/health?region=eu",
		"deploy-command": deployVia(good) + " && " + deployVia(bad),
	})
	res := newActionRun(t, "push", in).exec()
	if res.code != 1 || res.outputs["verdict"] != "rolled-back" {
		t.Fatalf("exit %d, verdict %q\n%s", res.code, res.outputs["verdict"], res.log)
	}
	if reason, _ := res.report["reason"].(string); !strings.Contains(reason, bad+"/health") {
		t.Errorf("reason %q does not name the bad instance", reason)
	}
}
