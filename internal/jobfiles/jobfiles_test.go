package jobfiles

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestWriteOutputsMultiline(t *testing.T) {
	t.Parallel()
	p := filepath.Join(t.TempDir(), "out")
	if err := WriteOutputs(p, []Output{{"report", ".immune/stats.json"}, {"reason", "a\nb"}}); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(p)
	lines := strings.Split(strings.TrimSpace(string(data)), "\n")
	if len(lines) != 7 || !strings.HasPrefix(lines[0], "report<<ghadelimiter_") || lines[1] != ".immune/stats.json" || lines[4] != "a" || lines[5] != "b" {
		t.Errorf("GITHUB_OUTPUT:\n%s", data)
	}
}

func TestAppendSummaryCutAtTheLimit(t *testing.T) {
	t.Parallel()
	p := filepath.Join(t.TempDir(), "summary")
	if err := AppendSummary(p, strings.Repeat("x", MaxSummary+10), "see the report."); err != nil {
		t.Fatal(err)
	}
	data, _ := os.ReadFile(p)
	if len(data) > MaxSummary || !strings.HasSuffix(string(data), "see the report.\n") {
		t.Errorf("%d bytes, ending %q", len(data), data[len(data)-40:])
	}
}

func TestWriteAtomicReplaces(t *testing.T) {
	t.Parallel()
	p := filepath.Join(t.TempDir(), "dir", "r.json")
	for _, v := range []string{"{}", `{"a":1}`} {
		if err := WriteAtomic(p, []byte(v)); err != nil {
			t.Fatal(err)
		}
	}
	data, _ := os.ReadFile(p)
	entries, _ := os.ReadDir(filepath.Dir(p))
	if string(data) != `{"a":1}` || len(entries) != 1 {
		t.Errorf("%q, %d files", data, len(entries))
	}
}
