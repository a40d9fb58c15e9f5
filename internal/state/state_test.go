package state

import (
	"os"
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
	if _, err := f.LastGood("production", ""); err == nil || !strings.Contains(err.Error(), "is not valid JSON") {
		t.Errorf("LastGood() = %v, want an error naming the file", err)
	}
	if err := f.Record("production", Entry{SHA: "a"}); err == nil {
		t.Error("Record() overwrote a corrupt file")
	}
}
