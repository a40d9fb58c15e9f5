package watch

import (
	"fmt"
	"github.com/immune-cd/immune/internal/redact"
	"net"
	"net/url"
	"strings"

	"github.com/immune-cd/immune/internal/metrics"
	"github.com/immune-cd/immune/internal/pct"
	"github.com/immune-cd/immune/internal/report"
)

// Healthy says in a few words how a watch went, for GitHub's
// 140-character descriptions: "0 of 60 probes failed, p95 120ms".
func Healthy(w *report.Watch) string {
	if w == nil {
		return ""
	}
	percentile := w.Stats.Percentile
	if percentile == 0 {
		percentile = 95
	}
	var parts []string
	if w.Stats.Probes > 0 || len(w.Metrics) == 0 {
		parts = append(parts, fmt.Sprintf("%d of %d probes failed, p%s %s", w.Stats.Failed, w.Stats.Probes, trimFloat(percentile), report.FormatDuration(w.Stats.AtPercentile)))
	}
	for _, m := range w.Metrics {
		if m.Kind == metrics.KindRate {
			parts = append(parts, fmt.Sprintf("%s %d of %d failed", m.Name, m.Errors, m.Requests))
		} else if m.Worst != nil {
			parts = append(parts, fmt.Sprintf("%s at worst %.4g", m.Name, *m.Worst))
		}
	}
	return strings.Join(parts, "; ")
}

// WarnIfDegraded flags a healthy build whose numbers are above the limits,
// but not with the confidence needed to roll back.
func (w *Watcher) WarnIfDegraded(rw *report.Watch) {
	var why []string
	if rw.Stats.ErrorRate > w.cfg.MaxErrorRate {
		why = append(why, fmt.Sprintf("%d of %d probes failed (%s), above the allowed %s", rw.Stats.Failed, rw.Stats.Probes, pct.Of(rw.Stats.ErrorRate, 1), pct.Of(w.cfg.MaxErrorRate, 1)))
	}
	if e := rw.Evidence; e != nil && e.MaxLatency > 0 && e.Latency > e.MaxLatency {
		why = append(why, fmt.Sprintf("p%s latency %s is above the allowed %s", trimFloat(e.Percentile),
			report.FormatDuration(e.Latency), report.FormatDuration(e.MaxLatency)))
	}
	for _, m := range rw.Metrics {
		switch {
		case m.Kind == metrics.KindRate && m.Judged == "absolute" && m.ErrorRate > m.Allowed:
			why = append(why, fmt.Sprintf("metric %s: %d of %d requests failed (%s), above the allowed %s", m.Name, m.Errors, m.Requests, pct.Of(m.ErrorRate, 1), pct.Of(m.Allowed, 1)))
		case m.Kind == metrics.KindThreshold && m.OutOfBounds > 0:
			why = append(why, fmt.Sprintf("metric %s was out of bounds in %d looks, never %d in a row", m.Name, m.OutOfBounds, m.Consecutive))
		}
	}
	if len(why) > 0 {
		w.d.Log.Warn("Degraded but passing", strings.Join(why, "; ")+"; not enough evidence to call it a regression")
	}
}

// WarnLoopback warns when a health URL points at the loopback interface
// while the run is a container action: there, localhost is the action's
// own container, not the runner's host or the job's services.
func (w *Watcher) WarnLoopback() {
	if w.cfg.Workspace != "/github/workspace" {
		return
	}
	for _, u := range append(append([]string{}, w.cfg.HealthURLs...), w.cfg.CanaryHealthURLs...) {
		parsed, err := url.Parse(u)
		if err != nil {
			continue
		}
		host := parsed.Hostname()
		if ip := net.ParseIP(host); host == "localhost" || strings.HasSuffix(host, ".localhost") || ip != nil && ip.IsLoopback() {
			w.d.Log.Warn("Health URL on loopback", fmt.Sprintf("%s points at this container itself: a container action has its own network, "+
				"so localhost is not the runner's host. Use the job's services: name or the host's address (see the README's \"Secrets and networking\").", redact.URL(u)))
			return
		}
	}
}
