package main

import (
	"flag"
	"fmt"
	"os"
	"strings"
	"testing"

	"github.com/immune-cd/immune/internal/config"
)

var updateREADME = flag.Bool("update-readme", false, "rewrite README.md's input and output tables")

// referenceTables renders the README's tables of inputs and outputs from the
// same table that drives action.yml and the CLI.
func referenceTables() string {
	var b strings.Builder
	b.WriteString("| Input | Default | What it does |\n|---|---|---|\n")
	for _, in := range config.Inputs {
		def := "—"
		if in.Default != "" {
			def = "`" + in.Default + "`"
		}
		fmt.Fprintf(&b, "| `%s` | %s | %s |\n", in.Name, def, strings.ReplaceAll(in.Description, "|", `\|`))
	}
	b.WriteString("\n| Output | What it holds |\n|---|---|\n")
	for _, out := range config.Outputs {
		fmt.Fprintf(&b, "| `%s` | %s |\n", out.Name, strings.ReplaceAll(out.Description, "|", `\|`))
	}
	return b.String()
}

// TestREADMETables keeps README.md's reference tables in step with the code.
// Run `go test -run TestREADMETables -update-readme .` after changing an input.
func TestREADMETables(t *testing.T) {
	const begin, end = "<!-- reference:begin -->\n", "<!-- reference:end -->"
	data, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	readme := string(data)
	i, j := strings.Index(readme, begin), strings.Index(readme, end)
	if i < 0 || j < i {
		t.Fatalf("README.md has no %q ... %q block", begin, end)
	}
	want := referenceTables()
	if got := readme[i+len(begin) : j]; got != want {
		if *updateREADME {
			readme = readme[:i+len(begin)] + want + readme[j:]
			if err := os.WriteFile("README.md", []byte(readme), 0o644); err != nil {
				t.Fatal(err)
			}
			return
		}
		t.Errorf("README.md's tables are out of date; run go test -run TestREADMETables -update-readme .")
	}
}

// TestREADMEWorkflows: every example workflow in testdata/workflows (which
// CI lints with actionlint) and the benchmark tables appear in README.md
// verbatim.
func TestREADMEWorkflows(t *testing.T) {
	data, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"quality.txt", "fleet.txt", "counts.txt", "traffic.txt", "cost.txt", "canary.txt"} {
		table, err := os.ReadFile("internal/verdict/testdata/" + name)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(data), "```text\n"+string(table)+"```") {
			t.Errorf("README.md does not show internal/verdict/testdata/%s verbatim", name)
		}
	}
	for _, name := range []string{"deploy.yml", "deploy-metrics.yml", "rollback.yml", "gate.yml", "waves.yml", "gate-waves.yml", "adopt.yml", "deploy-workflow.yml", "ship.yml", "deploy-hook.yml"} {
		wf, err := os.ReadFile("testdata/workflows/" + name)
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(data), "```yaml\n"+string(wf)+"```") {
			t.Errorf("README.md does not show testdata/workflows/%s verbatim", name)
		}
	}
}

// TestREADMEAdoption: the adoption section shows what shadow mode, the
// backtest and the stats render, as the report package's golden files
// have them (regenerated with go test ./internal/report -update).
func TestREADMEAdoption(t *testing.T) {
	data, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	readme := string(data)
	read := func(name string) string {
		b, err := os.ReadFile("internal/report/testdata/" + name)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	for _, name := range []string{"summary-shadow.md", "backtest-week.md", "stats-fifty.md"} {
		if !strings.Contains(readme, "</summary>\n\n"+read(name)+"\n</details>") {
			t.Errorf("README.md does not show internal/report/testdata/%s verbatim", name)
		}
	}
	if !strings.Contains(readme, "```text\n"+read("outputs-shadow.txt")+"```") {
		t.Error("README.md does not show internal/report/testdata/outputs-shadow.txt verbatim")
	}
	for _, line := range strings.Split(read("chat.txt"), "\n") {
		if text, ok := strings.CutPrefix(line, "would-roll-back: "); ok && !strings.Contains(readme, "> "+text+"\n") {
			t.Error("README.md does not show the would-roll-back chat text of internal/report/testdata/chat.txt")
		}
	}
}
