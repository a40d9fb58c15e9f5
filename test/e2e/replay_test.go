package e2e

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// `immune replay` from the binary: recorded looks judged offline, one line
// per file, the exit code saying whether every file was healthy.
func TestReplay(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	csv := func(name string, rate func(look int) int) {
		var b strings.Builder
		b.WriteString("t,requests,errors\n")
		for i := 1; i <= 40; i++ {
			fmt.Fprintf(&b, "%d,250,%d\n", 15*i, rate(i))
		}
		if err := os.WriteFile(filepath.Join(dir, name), []byte(b.String()), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	csv("steady.csv", func(int) int { return 1 })
	csv("late.csv", func(i int) int { return map[bool]int{true: 1, false: 25}[i <= 20] })

	code, out := cliRun(t, dir, "replay", "--max-error-rate=1%", "--json", "steady.csv", "late.csv")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if code != 1 || len(lines) != 2 {
		t.Fatalf("exit %d, want 1 with a line per file\n%s", code, out)
	}
	var steady, late struct {
		File, Verdict, Reason string
		T                     float64
		Look                  int
	}
	if json.Unmarshal([]byte(lines[0]), &steady) != nil || json.Unmarshal([]byte(lines[1]), &late) != nil {
		t.Fatalf("not JSON lines:\n%s", out)
	}
	if steady.File != "steady.csv" || steady.Verdict != "healthy" || steady.Look != 40 {
		t.Errorf("steady: %+v", steady)
	}
	if late.File != "late.csv" || late.Verdict != "regressed" || late.Look <= 20 || late.T != float64(15*late.Look) || !strings.HasPrefix(late.Reason, "on metric late, ") {
		t.Errorf("late: %+v", late)
	}

	if code, out := cliRun(t, dir, "replay", "--max-error-rate=1%", "steady.csv"); code != 0 || !strings.HasPrefix(out, "steady.csv: healthy at t=600s (look 40): ") {
		t.Errorf("exit %d, want 0\n%s", code, out)
	}
	os.WriteFile(filepath.Join(dir, "bad.csv"), []byte("t,requests,errors\n15,250,1\n30,ten,1\n"), 0o644)
	if code, out := cliRun(t, dir, "replay", "bad.csv"); code != 2 || !strings.Contains(out, `bad.csv:3: requests: "ten" is not a whole number`) {
		t.Errorf("exit %d, want 2 naming the file and line\n%s", code, out)
	}
}
