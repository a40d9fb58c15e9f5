package backtest

import (
	"testing"
	"time"

	"github.com/immune-cd/immune/internal/history"
	"github.com/immune-cd/immune/internal/metrics"
)

func TestPlan(t *testing.T) {
	t0 := time.Date(2024, 5, 6, 9, 0, 0, 0, time.UTC)
	at := func(m int) time.Time { return t0.Add(time.Duration(m) * time.Minute) }
	dep := func(id int64, kind history.Kind, start int, o history.Outcome) history.Deployment {
		d := history.Deployment{ID: id, SHA: "abcdef1", Kind: kind, Created: at(start), Started: at(start), Outcome: o}
		if o != history.Running {
			d.Ended = at(start + 5)
		}
		return d
	}
	notRan := dep(4, history.KindDeploy, 100, history.NotDeployed)
	notRan.Started = time.Time{}
	h := history.Read{Deployments: []history.Deployment{
		dep(1, history.KindDeploy, 0, history.Healthy),
		dep(2, history.KindDeploy, 60, history.Failed),
		dep(3, history.KindRollback, 62, history.Healthy),
		notRan,
		dep(5, history.KindCanary, 110, history.Healthy),
		dep(6, history.KindDeploy, 120, history.Healthy),
		dep(7, history.KindDeploy, 200, history.Running),
	}}
	s := Settings{Duration: 15 * time.Minute, DeployTimeout: 5 * time.Minute}
	cases := Plan(h, 3, s, at(205))
	if len(cases) != 3 {
		t.Fatalf("%d cases, want the last 3 deploys that ran", len(cases))
	}
	tests := []struct {
		id     int64
		end    time.Time
		cut    *Cut
		skip   string
		reason string
	}{
		{2, at(62), &Cut{By: "rollback", ID: 3, After: 2 * time.Minute}, "", "cut by its rollback"},
		{6, at(140), nil, "", "a full watch after a deploy command of up to 5 minutes: the running deploy starts after it"},
		{7, at(205), &Cut{By: CutByNow, After: 5 * time.Minute}, "still running", "running: not replayed, and never past now"},
	}
	for i, tt := range tests {
		c := cases[i]
		if c.Deployment.ID != tt.id || !c.Limit.Equal(tt.end) || c.Skip != tt.skip || (c.Cut == nil) != (tt.cut == nil) || c.Cut != nil && *c.Cut != *tt.cut {
			t.Errorf("%s: case %+v (cut %+v), want deployment %d ending %s, cut %+v, skip %q", tt.reason, c, c.Cut, tt.id, tt.end, tt.cut, tt.skip)
		}
	}
}

func TestSteps(t *testing.T) {
	for _, tt := range []struct {
		d, interval time.Duration
		want        int
	}{{15 * time.Minute, 30 * time.Second, 30}, {10*time.Minute + time.Second, 30 * time.Second, 21}, {0, time.Second, 0}, {time.Second, 30 * time.Second, 1}} {
		if got := steps(tt.d, tt.interval); got != tt.want {
			t.Errorf("steps(%s, %s) = %d, want %d", tt.d, tt.interval, got, tt.want)
		}
	}
}

func TestServing(t *testing.T) {
	t0 := time.Date(2024, 5, 6, 9, 0, 0, 0, time.UTC)
	looks := func(firstData int) []metrics.Look {
		var ls []metrics.Look
		for k := 0; k < 10; k++ {
			r := metrics.Reading{Metric: "e", Kind: metrics.KindRate, NoData: metrics.NoDataEmpty}
			if firstData >= 0 && k >= firstData {
				r.NoData = ""
			}
			ls = append(ls, metrics.Look{At: t0.Add(time.Duration(k) * 30 * time.Second), Readings: []metrics.Reading{r}})
		}
		return ls
	}
	for _, tt := range []struct {
		firstData int
		timeout   time.Duration
		want      time.Duration
	}{
		{0, 10 * time.Minute, 0},
		{3, 10 * time.Minute, 90 * time.Second},
		{3, time.Minute, 0},       // data came later than a deploy command may run: the start, judged as live
		{-1, 10 * time.Minute, 0}, // never any data
	} {
		if got := serving(looks(tt.firstData), t0, tt.timeout).Sub(t0); got != tt.want {
			t.Errorf("first data at look %d, deploy-timeout %s: serving at +%s, want +%s", tt.firstData, tt.timeout, got, tt.want)
		}
	}
}
