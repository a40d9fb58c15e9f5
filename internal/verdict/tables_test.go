package verdict

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The README's benchmark tables come from this package's tests, seeded so
// that every run gives the same numbers:
//
//	testdata/quality.txt  one URL: the engine beside other deploy tools' rules (quality_test.go)
//	testdata/fleet.txt    the same at 10 and 100 URLs, one bad URL and all bad (quality_test.go)
//	testdata/counts.txt   counts of real traffic, beside Argo Rollouts and Flagger (counts_test.go)
//	testdata/cost.txt     a 100-URL watch of an hour on a stepped clock (cost_test.go)
//
// By default (as in CI) each runs a short version and checks loose forms
// of its targets. The full tables, compared with the golden files, are
//
//	go test ./internal/verdict -run Table -v -tables.full
//
// and -tables.update rewrites the golden files for review.
var (
	tablesFull   = flag.Bool("tables.full", false, "run the benchmark tables at full size and compare them with testdata/")
	tablesUpdate = flag.Bool("tables.update", false, "with -tables.full, rewrite the golden tables in testdata/")
)

// tidy trims trailing spaces from every line of a rendered table.
func tidy(table string) string {
	lines := strings.Split(strings.TrimSpace(table), "\n")
	for i, line := range lines {
		lines[i] = strings.TrimRight(line, " ")
	}
	return strings.Join(lines, "\n") + "\n"
}

// goldenTable compares a full-size table with testdata/name, or rewrites
// it with -tables.update. Short runs are not compared.
func goldenTable(t *testing.T, name, table string) {
	t.Helper()
	if !*tablesFull {
		return
	}
	path := filepath.Join("testdata", name)
	if *tablesUpdate {
		if err := os.WriteFile(path, []byte(table), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	golden, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(golden, []byte(table)) {
		t.Errorf("the table differs from %s; if the change is intended, rerun with -tables.update and review the diff", path)
	}
}
