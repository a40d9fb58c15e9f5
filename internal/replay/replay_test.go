package replay

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// trace builds a trace of looks every 15 s: each row is requests, errors
// and, for a canary, the control's.
func trace(name string, rows ...[]int64) *Trace {
	tr := &Trace{Name: name}
	for i, r := range rows {
		l := Look{Line: i + 2, T: float64(15 * (i + 1)), Requests: r[0], Errors: r[1]}
		if len(r) == 4 {
			tr.Canary = true
			l.ControlRequests, l.ControlErrors = r[2], r[3]
		}
		tr.Looks = append(tr.Looks, l)
	}
	return tr
}

// steady is n looks of the same counts.
func steady(n int, row ...int64) [][]int64 {
	rows := make([][]int64, n)
	for i := range rows {
		rows[i] = row
	}
	return rows
}

func opts() Options {
	return Options{MaxErrorRate: 0.01, Confidence: 0.99, MinRequests: 20, StartupTimeout: 60e9}
}

func TestJudge(t *testing.T) {
	t.Parallel()
	regression := append(steady(20, 250, 1), steady(20, 250, 25)...)
	incident := append(append(steady(8, 25, 0, 225, 2), steady(20, 25, 3, 225, 27)...), steady(12, 25, 0, 225, 2)...)
	tests := []struct {
		name       string
		tr         *Trace
		o          func(*Options)
		verdict    string
		looks      [2]int // the deciding look lies within
		reasonHas  string
		reasonLead string
	}{
		{"a rate that jumps tenfold is a regression", trace("jump.csv", regression...), nil,
			Regressed, [2]int{21, 30}, "the failure rate is above the allowed 1% with 99% confidence", "on metric jump, "},
		{"a steady rate under the limit is healthy at the end", trace("fine.csv", steady(240, 250, 1)...), nil,
			Healthy, [2]int{240, 240}, "within the allowed 1%", "metric fine: 240 of 60000 requests failed"},
		{"too few requests cannot clear it", trace("quiet.csv", steady(4, 4, 0)...), nil,
			Inconclusive, [2]int{4, 4}, "fewer than min-requests (20)", ""},
		{"no data for longer than the startup grace cannot clear it", &Trace{Name: "late.csv", Looks: []Look{
			{T: 15, NoData: true}, {T: 30, NoData: true}, {T: 45, NoData: true}, {T: 60, NoData: true}, {T: 75, NoData: true},
			{T: 90, Requests: 500}, {T: 105, Requests: 500}}}, nil,
			Inconclusive, [2]int{7, 7}, "had no data for the first 1m30s of the watch", ""},
		{"a watch that lasted longer than its looks went without data at its end", trace("short.csv", steady(8, 250, 1)...),
			func(o *Options) { o.Duration = 600e9 }, Inconclusive, [2]int{8, 8}, "had no data for the last 8m0s", ""},
		{"a canary in a shared incident is no worse than its control", trace("shared.csv", incident...), nil,
			Healthy, [2]int{40, 40}, "the canary 60 of 1000 requests failed (6%), the control 580 of 9000 (6.44%)", ""},
		{"a canary far worse than its control regresses", trace("bad-canary.csv", steady(40, 25, 5, 225, 2)...), nil,
			Regressed, [2]int{1, 40}, "the canary's failure rate is more than 1 point above the control's", "on metric bad-canary, "},
		{"a clean canary is promoted early when asked", trace("clean.csv", steady(240, 100, 0, 900, 9)...),
			func(o *Options) { o.PromoteEarly = true }, Healthy, [2]int{1, 239}, "the canary is no worse than the control", ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			o := opts()
			if tc.o != nil {
				tc.o(&o)
			}
			r := Judge(tc.tr, o)
			if r.Verdict != tc.verdict || r.Look < tc.looks[0] || r.Look > tc.looks[1] || !strings.Contains(r.Reason, tc.reasonHas) || !strings.HasPrefix(r.Reason, tc.reasonLead) {
				t.Errorf("%+v\nwant %s at a look within %v, the reason starting %q and saying %q", r, tc.verdict, tc.looks, tc.reasonLead, tc.reasonHas)
			}
			if want := tc.tr.Looks[r.Look-1].T; r.Verdict == Regressed && r.T != want {
				t.Errorf("t = %v, want the deciding look's %v", r.T, want)
			}
		})
	}
}

// write writes a trace's CSV into dir.
func write(t *testing.T, dir, name string, tr *Trace) string {
	t.Helper()
	var b strings.Builder
	b.WriteString("t,requests,errors")
	if tr.Canary {
		b.WriteString(",control_requests,control_errors")
	}
	b.WriteString("\n")
	for _, l := range tr.Looks {
		fmt.Fprintf(&b, "%v,%d,%d", l.T, l.Requests, l.Errors)
		if tr.Canary {
			fmt.Fprintf(&b, ",%d,%d", l.ControlRequests, l.ControlErrors)
		}
		b.WriteString("\n")
	}
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func run(args ...string) (code int, stdout, stderr string) {
	var out, errs bytes.Buffer
	code = Main(context.Background(), args, &out, &errs)
	return code, out.String(), errs.String()
}

func TestMain(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	fine := write(t, dir, "fine.csv", trace("", steady(40, 250, 1)...))
	jump := write(t, dir, "jump.csv", trace("", append(steady(20, 250, 1), steady(20, 250, 25)...)...))
	broken := filepath.Join(dir, "broken.csv")
	os.WriteFile(broken, []byte("t,requests,errors\n15,250,1\n30,250,300\n"), 0o644)

	t.Run("every file healthy", func(t *testing.T) {
		code, out, errs := run("--max-error-rate=1%", fine)
		if code != ExitHealthy || !strings.HasPrefix(out, fine+": healthy at t=600s (look 40): metric fine: 40 of 10000 requests failed (0.4%)") || errs != "" {
			t.Errorf("exit %d\n%s%s", code, out, errs)
		}
	})
	t.Run("one line per file, in order, flags anywhere", func(t *testing.T) {
		code, out, _ := run(jump, "--max-error-rate", "1%", fine, "--json")
		lines := strings.Split(strings.TrimSpace(out), "\n")
		if code != ExitNot || len(lines) != 2 {
			t.Fatalf("exit %d\n%s", code, out)
		}
		var got []Result
		for _, line := range lines {
			var r map[string]any
			if err := json.Unmarshal([]byte(line), &r); err != nil || len(r) != 5 {
				t.Fatalf("%q: %v", line, err)
			}
			var res Result
			json.Unmarshal([]byte(line), &res)
			got = append(got, res)
		}
		if got[0].File != jump || got[0].Verdict != Regressed || got[0].Look <= 20 || got[0].T != float64(15*got[0].Look) ||
			got[1].File != fine || got[1].Verdict != Healthy || got[1].Look != 40 {
			t.Errorf("%+v", got)
		}
	})
	t.Run("a bad file is named with its line, the others still judged", func(t *testing.T) {
		code, out, errs := run("--max-error-rate=1%", broken, fine)
		if code != ExitBadInput || !strings.Contains(errs, broken+":3: errors: 300 errors of 250 requests") || !strings.HasPrefix(out, fine+": healthy") {
			t.Errorf("exit %d\n%s%s", code, out, errs)
		}
	})
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--max-error-rate=5", fine}, `--max-error-rate: "5" is not a percentage like 5% or a fraction like 0.05`},
		{[]string{"--confidence=40%", fine}, `--confidence: got "40%": expected a confidence above 50%`},
		{[]string{"--min-requests=0", fine}, `--min-requests: got "0": expected a whole number of at least 1`},
		{[]string{"--interval=0s", fine}, `--interval: got "0s": expected a positive duration`},
		{[]string{"--max-latency=1s", fine}, "flag provided but not defined: -max-latency"},
		{nil, "no files given"},
		{[]string{filepath.Join(dir, "missing.csv")}, "missing.csv: no such file or directory"},
	} {
		code, out, errs := run(tc.args...)
		if code != ExitBadInput || out != "" || !strings.Contains(errs, tc.want) {
			t.Errorf("%q: exit %d\n%s%s\nwant exit 2 and %q", tc.args, code, out, errs, tc.want)
		}
	}
}
