package target

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/immune-cd/immune/internal/config"
	"github.com/immune-cd/immune/internal/recorder"
	"github.com/immune-cd/immune/internal/run"
	"github.com/immune-cd/immune/internal/state"
)

const (
	shaNew    = "4d8b3f2e1c0a9b8c7d6e5f4a3b2c1d0e9f8a7b6c"
	shaGood   = "9f2c1e7a3b4d5c6e7f8091a2b3c4d5e6f7081920"
	shaOlder  = "1a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d"
	shaBefore = "5e6f7a8b9c0d1e2f3a4b5c6d7e8f9a0b1c2d3e4f"
)

// records is immune's GitHub history as the choice reads it.
type records struct {
	enabled        bool
	good, current  string // "" when none
	goodErr, curEr error
	excluded       string // what LastGood was asked to exclude
}

func (r *records) Enabled() bool { return r.enabled }

func (r *records) LastGood(_ context.Context, exclude string) (recorder.Deployment, bool, error) {
	r.excluded = exclude
	return recorder.Deployment{ID: 1000001, SHA: r.good}, r.good != "", r.goodErr
}

func (r *records) Current(context.Context) (recorder.Deployment, bool, error) {
	return recorder.Deployment{ID: 1000002, SHA: r.current}, r.current != "", r.curEr
}

// stateFile writes a state file whose environment production ran good
// (healthy) and then bad (regressed); "" for no file.
func stateFile(t *testing.T, good, bad string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "state.json")
	if good == "" {
		return path
	}
	f := &state.File{Path: path}
	at := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	for i, e := range []state.Entry{{SHA: good, Verdict: run.Healthy}, {SHA: bad, Verdict: run.Regressed}} {
		if e.SHA == "" {
			continue
		}
		e.At = at.Add(time.Duration(i) * time.Minute)
		if err := f.Record("production", e); err != nil {
			t.Fatal(err)
		}
	}
	return path
}

// The rollback target of a deploy comes from the first source that knows
// one, in the order the README gives.
func TestRollback(t *testing.T) {
	tests := []struct {
		name           string
		previous       string
		rec            records
		stateGood      string
		before         string
		commit, source string
	}{
		{"the input first", shaOlder, records{enabled: true, good: shaGood}, shaGood, shaBefore, shaOlder, "the previous-sha input"},
		{"then GitHub", "", records{enabled: true, good: shaGood}, shaOlder, shaBefore, shaGood, "GitHub deployment 1000001"},
		{"then the state file", "", records{enabled: true, goodErr: errors.New("GitHub is down")}, shaOlder, shaBefore, shaOlder, "the state file"},
		{"then the push's before", "", records{}, "", shaBefore, shaBefore, "the push event's before"},
		{"a before that is the build itself is none", "", records{}, "", shaNew, "", ""},
		{"nothing known", "", records{}, "", "", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := &config.Config{SHA: shaNew, PreviousSHA: tt.previous, Environment: "production", StateFile: stateFile(t, tt.stateGood, "")}
			var warned []string
			f := Finder{Config: cfg, Records: &tt.rec, Before: tt.before, Warn: func(title, msg string) { warned = append(warned, title) }}
			commit, source := f.Rollback(context.Background())
			if commit != tt.commit || source != tt.source || len(warned) != 0 {
				t.Errorf("Rollback = %q from %q (warned %v), want %q from %q", commit, source, warned, tt.commit, tt.source)
			}
			if tt.previous == "" && tt.rec.excluded != shaNew {
				t.Errorf("LastGood excluded %q, want the build itself", tt.rec.excluded)
			}
		})
	}
	// A state file that is not immune's is said, and the choice goes on.
	path := filepath.Join(t.TempDir(), "state.json")
	if err := os.WriteFile(path, []byte(`{"kind":"something else"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	var warned []string
	f := Finder{Config: &config.Config{SHA: shaNew, Environment: "production", StateFile: path}, Records: &records{},
		Before: shaBefore, Warn: func(title, msg string) { warned = append(warned, title+": "+msg) }}
	if commit, _ := f.Rollback(context.Background()); commit != shaBefore || len(warned) != 1 {
		t.Errorf("Rollback = %q, warned %q", commit, warned)
	}
}

// A rollback by hand: the sha input, resolved and not what runs; else one
// step behind what runs.
func TestManual(t *testing.T) {
	resolve := func(_ context.Context, want string) (string, error) {
		if strings.HasPrefix(shaOlder, want) {
			return shaOlder, nil
		}
		return "", errors.New("input sha: " + want + " is not a commit of octo-org/shop")
	}
	tests := []struct {
		name           string
		want           string
		rec            records
		stateGood      string
		current        string
		commit, source string
		err            string
	}{
		{"a short sha through GitHub", "1a2b3c4", records{enabled: true}, "", shaNew, shaOlder, "the sha input", ""},
		{"not a commit", "abcdef0", records{enabled: true}, "", shaNew, "", "", "is not a commit of octo-org/shop"},
		{"what already runs", shaOlder, records{enabled: true}, "", shaOlder, "", "", "production already runs " + shaOlder + "; nothing to roll back"},
		{"a short sha without GitHub", "1a2b3c4", records{}, "", shaNew, "", "", "without a github-token only a full 40-character SHA can be used"},
		{"a full sha without GitHub", shaOlder, records{}, "", shaNew, shaOlder, "the sha input", ""},
		{"one step behind, from GitHub", "", records{enabled: true, good: shaGood}, "", shaNew, shaGood, "GitHub deployment 1000001, the last healthy one of another commit than 4d8b3f2", ""},
		{"what runs unknown", "", records{enabled: true, good: shaGood}, "", "", shaGood, "GitHub deployment 1000001, the last healthy one of another commit than an unknown build", ""},
		{"GitHub unreadable", "", records{enabled: true, goodErr: errors.New("GitHub is down")}, shaGood, shaNew, "", "", "cannot read the deployments of production to pick a target: GitHub is down; pass the sha input"},
		{"from the state file", "", records{}, shaGood, shaNew, shaGood, "the state file", ""},
		{"nothing healthy before", "", records{enabled: true}, "", shaNew, "", "", "no earlier healthy deployment of production to roll back to; pass the sha input"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := &config.Config{SHA: tt.want, Environment: "production", StateFile: stateFile(t, tt.stateGood, "")}
			f := Finder{Config: cfg, Records: &tt.rec, Resolve: resolve}
			commit, source, err := f.Manual(context.Background(), tt.current)
			if commit != tt.commit || source != tt.source || (err == nil) != (tt.err == "") || err != nil && !strings.Contains(err.Error(), tt.err) {
				t.Errorf("Manual = %q from %q, %v; want %q from %q, error %q", commit, source, err, tt.commit, tt.source, tt.err)
			}
		})
	}
}

// What runs now: immune's newest deployment that ran, else the state
// file's newest entry; a failed read matters only without the sha input.
func TestCurrent(t *testing.T) {
	down := errors.New("GitHub is down")
	tests := []struct {
		name, want string
		rec        records
		bad        string // the state file's newest entry
		current    string
		err        string
	}{
		{"from GitHub", "", records{enabled: true, current: shaNew}, shaOlder, shaNew, ""},
		{"GitHub knows none: the state file", "", records{enabled: true}, shaOlder, shaOlder, ""},
		{"without GitHub: the state file", "", records{}, shaOlder, shaOlder, ""},
		{"GitHub down, no sha input", "", records{enabled: true, curEr: down}, shaOlder, "", "cannot find what production runs, so cannot pick the commit one step back: GitHub is down; pass the sha input"},
		{"GitHub down, a sha input", shaGood, records{enabled: true, curEr: down}, shaOlder, "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := &config.Config{SHA: tt.want, Environment: "production", StateFile: stateFile(t, shaGood, tt.bad)}
			got, err := Finder{Config: cfg, Records: &tt.rec}.Current(context.Background())
			if got != tt.current || (err == nil) != (tt.err == "") || err != nil && err.Error() != tt.err {
				t.Errorf("Current = %q, %v; want %q, error %q", got, err, tt.current, tt.err)
			}
		})
	}
}
