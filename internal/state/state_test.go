package state

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/immune-cd/immune/internal/run"
)

func TestLastGood(t *testing.T) {
	t.Parallel()
	f := &File{Path: filepath.Join(t.TempDir(), "nested", "state.json")}
	if sha, err := f.LastGood("production", ""); err != nil || sha != "" {
		t.Fatalf("LastGood() on a missing file = %q, %v; want empty, nil", sha, err)
	}
	at := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	for _, e := range []struct {
		env, sha string
		verdict  run.Verdict
	}{
		{"production", "aaa", run.Healthy},
		{"production", "bbb", run.Healthy},
		{"staging", "ccc", run.Healthy},
		{"production", "ddd", run.Regressed},
	} {
		if err := f.Record(e.env, Entry{SHA: e.sha, Verdict: e.verdict, At: at}); err != nil {
			t.Fatal(err)
		}
	}
	tests := []struct{ env, exclude, want string }{
		{"production", "", "bbb"},
		{"production", "ddd", "bbb"},
		{"production", "bbb", "aaa"}, // redeploying bbb: roll back to what came before
		{"staging", "", "ccc"},
		{"staging", "ccc", ""},
		{"qa", "", ""},
	}
	for _, tt := range tests {
		if got, err := f.LastGood(tt.env, tt.exclude); err != nil || got != tt.want {
			t.Errorf("LastGood(%s, %q) = %q, %v; want %q", tt.env, tt.exclude, got, err, tt.want)
		}
	}
	// No temporary files are left behind.
	entries, _ := os.ReadDir(filepath.Dir(f.Path))
	if len(entries) != 1 {
		t.Errorf("directory holds %d files, want only the state file", len(entries))
	}
}

func TestHistoryIsBounded(t *testing.T) {
	t.Parallel()
	f := &File{Path: filepath.Join(t.TempDir(), "state.json")}
	for i := 0; i < historyLimit+10; i++ {
		if err := f.Record("production", Entry{SHA: strings.Repeat("a", i+1), Verdict: run.Healthy}); err != nil {
			t.Fatal(err)
		}
	}
	doc, err := f.read()
	if err != nil {
		t.Fatal(err)
	}
	if n := len(doc.Environments["production"].History); n != historyLimit {
		t.Errorf("history holds %d entries, want %d", n, historyLimit)
	}
}

func TestCorruptFile(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "state.json")
	if err := os.WriteFile(path, []byte("{not json"), 0o644); err != nil {
		t.Fatal(err)
	}
	f := &File{Path: path}
	if _, err := f.LastGood("production", ""); err == nil || !strings.Contains(err.Error(), path+": not an immune state file") {
		t.Errorf("LastGood() = %v, want an error naming the file", err)
	}
	if err := f.Record("production", Entry{SHA: "a"}); err == nil {
		t.Error("Record() overwrote a corrupt file")
	}
}

// A file that is not immune's is refused and left exactly as it was.
func TestSomeoneElsesFile(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "package.json")
	body := []byte(`{"name": "shop", "version": "1.0.0", "scripts": {}}` + "\n")
	if err := os.WriteFile(path, body, 0o600); err != nil {
		t.Fatal(err)
	}
	f := &File{Path: path}
	if err := f.Check(); !errors.Is(err, ErrNotOurs) {
		t.Errorf("Check() = %v, want ErrNotOurs", err)
	}
	if err := f.Record("production", Entry{SHA: "abc1234", Verdict: run.Healthy}); !errors.Is(err, ErrNotOurs) {
		t.Errorf("Record() = %v, want ErrNotOurs", err)
	}
	got, _ := os.ReadFile(path)
	info, _ := os.Stat(path)
	if string(got) != string(body) || info.Mode().Perm() != 0o600 {
		t.Errorf("the file was changed: %q, mode %v", got, info.Mode().Perm())
	}
}

// A state file written before the kind marker is still read, and gets it.
func TestLegacyFile(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "state.json")
	legacy := `{"version": 1, "environments": {"production": {"last_good": "aaaaaaa", "history": [{"sha": "aaaaaaa", "verdict": "healthy", "at": "2026-11-25T12:00:00Z"}]}}}`
	os.WriteFile(path, []byte(legacy), 0o644)
	f := &File{Path: path}
	if got, err := f.LastGood("production", ""); err != nil || got != "aaaaaaa" {
		t.Fatalf("LastGood() = %q, %v", got, err)
	}
	if err := f.Record("production", Entry{SHA: "bbbbbbb", Verdict: run.Healthy}); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(path)
	if !strings.Contains(string(data), `"kind": "immune-state"`) {
		t.Errorf("no kind marker:\n%s", data)
	}
}

// Only commit ids and ref names are taken from the file.
func TestHostileEntries(t *testing.T) {
	t.Parallel()
	path := filepath.Join(t.TempDir(), "state.json")
	os.WriteFile(path, []byte(`{"kind": "immune-state", "version": 1, "environments": {"production": {"history": [
		{"sha": "aaaaaaa", "verdict": "healthy"},
		{"sha": "x\n::stop-commands::y", "verdict": "healthy"}]}}}`), 0o644)
	f := &File{Path: path}
	if got, err := f.LastGood("production", ""); err != nil || got != "aaaaaaa" {
		t.Errorf("LastGood() = %q, %v", got, err)
	}
	if got, err := f.Current("production"); err != nil || got != "aaaaaaa" {
		t.Errorf("Current() = %q, %v", got, err)
	}
}

// Eight runs sharing one state file keep all eight records. The runs are
// processes, as on a self-hosted runner: this test binary, started again.
func TestConcurrentRuns(t *testing.T) {
	if path := os.Getenv("STATE_TEST_RECORD"); path != "" {
		f := &File{Path: path}
		for i := 0; i < 5; i++ {
			if err := f.Record("production", Entry{SHA: os.Getenv("STATE_TEST_SHA"), Verdict: run.Healthy}); err != nil {
				fmt.Fprintln(os.Stderr, err)
				os.Exit(1)
			}
		}
		os.Exit(0)
	}
	t.Parallel()
	path := filepath.Join(t.TempDir(), "state.json")
	var cmds []*exec.Cmd
	for i := 0; i < 8; i++ {
		cmd := exec.Command(os.Args[0], "-test.run=^TestConcurrentRuns$")
		cmd.Env = append(os.Environ(), "STATE_TEST_RECORD="+path, fmt.Sprintf("STATE_TEST_SHA=%07d", i))
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		cmds = append(cmds, cmd)
	}
	for _, cmd := range cmds {
		if err := cmd.Wait(); err != nil {
			t.Fatal(err)
		}
	}
	doc, err := (&File{Path: path}).read()
	if err != nil {
		t.Fatal(err)
	}
	if n := len(doc.Environments["production"].History); n != 40 {
		t.Errorf("%d of 40 records kept", n)
	}
}

// Environments that differ only in letter case are one, as they are to
// GitHub: "Production" reads and extends what "production" recorded.
func TestEnvironmentsIgnoreLetterCase(t *testing.T) {
	t.Parallel()
	f := &File{Path: filepath.Join(t.TempDir(), "state.json")}
	at := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	if err := f.Record("production", Entry{SHA: "aaa", Verdict: run.Healthy, At: at}); err != nil {
		t.Fatal(err)
	}
	if err := f.Record("Production", Entry{SHA: "bbb", Verdict: run.Regressed, At: at}); err != nil {
		t.Fatal(err)
	}
	if got, err := f.LastGood("PRODUCTION", ""); err != nil || got != "aaa" {
		t.Errorf("LastGood = %q, %v; want aaa", got, err)
	}
	if got, err := f.Current("production"); err != nil || got != "bbb" {
		t.Errorf("Current = %q, %v; want bbb, recorded as Production", got, err)
	}
}
