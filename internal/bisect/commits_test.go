package bisect

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

func TestFirstParent(t *testing.T) {
	t.Parallel()
	// main: b ← m1 ← m2 (merge of the branch f1 ← f2) ← m3; f1's parent b.
	listing := []Commit{
		{SHA: "f1", Parents: []string{"b"}},
		{SHA: "m1", Parents: []string{"b"}},
		{SHA: "f2", Parents: []string{"f1"}},
		{SHA: "m2", Parents: []string{"m1", "f2"}},
		{SHA: "m3", Parents: []string{"m2"}},
	}
	got, err := FirstParent("b", "m3", listing)
	if err != nil || strings.Join(got, " ") != "m1 m2 m3" {
		t.Errorf("FirstParent = %v, %v; want m1 m2 m3", got, err)
	}
	if got, err := FirstParent("m3", "m3", nil); err != nil || len(got) != 0 {
		t.Errorf("same commit: %v, %v", got, err)
	}
	// f1 is an ancestor of m3, but not on its first-parent line.
	if _, err := FirstParent("f1", "m3", listing[1:]); !errors.Is(err, ErrNotOnLine) {
		t.Errorf("base off the line: %v", err)
	}
	if _, err := FirstParent("b", "zz", listing); err == nil {
		t.Error("a listing without the head")
	}
	loop := []Commit{{SHA: "a", Parents: []string{"c"}}, {SHA: "c", Parents: []string{"a"}}}
	if _, err := FirstParent("b", "a", loop); err == nil {
		t.Error("a loop")
	}
}

// gitRepo makes a real repository: c0 on main, then c1, a merge of a
// branch (f1, f2) as c2, c3 and c4.
func gitRepo(t *testing.T) (dir string, commits map[string]string) {
	t.Helper()
	dir = t.TempDir()
	git := func(args ...string) string {
		t.Helper()
		cmd := exec.Command("git", args...)
		cmd.Dir = dir
		cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@example.com", "GIT_COMMITTER_NAME=t", "GIT_COMMITTER_EMAIL=t@example.com",
			"GIT_CONFIG_GLOBAL=/dev/null", "GIT_CONFIG_NOSYSTEM=1")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
		return strings.TrimSpace(string(out))
	}
	commits = map[string]string{}
	commit := func(name string) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(name), 0o644); err != nil {
			t.Fatal(err)
		}
		git("add", name)
		git("commit", "-q", "-m", name)
		commits[name] = git("rev-parse", "HEAD")
	}
	git("init", "-q", "-b", "main")
	commit("c0")
	commit("c1")
	git("checkout", "-q", "-b", "feature")
	commit("f1")
	commit("f2")
	git("checkout", "-q", "main")
	git("merge", "-q", "--no-ff", "-m", "c2", "feature")
	commits["c2"] = git("rev-parse", "HEAD")
	commit("c3")
	commit("c4")
	return dir, commits
}

func TestFromGit(t *testing.T) {
	t.Parallel()
	dir, c := gitRepo(t)
	ctx := context.Background()
	batch, good, err := FromGit(ctx, ExecGit, dir, c["c0"][:9], c["c4"])
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{c["c1"], c["c2"], c["c3"], c["c4"]}; strings.Join(batch, " ") != strings.Join(want, " ") || good != c["c0"] {
		t.Errorf("batch %v, good %s; want %v (the merge stands for f1 and f2)", batch, good, want)
	}
	if _, _, err := FromGit(ctx, ExecGit, dir, c["f1"], c["c4"]); !errors.Is(err, ErrNotOnLine) {
		t.Errorf("a base off the first-parent line: %v", err)
	}
	if _, _, err := FromGit(ctx, ExecGit, dir, "0123456789abcdef0123456789abcdef01234567", c["c4"]); err == nil || !strings.Contains(err.Error(), "fetch-depth: 0") {
		t.Errorf("a base the history lacks: %v", err)
	}
	if _, _, err := FromGit(ctx, ExecGit, t.TempDir(), c["c0"], c["c4"]); err == nil {
		t.Error("no repository")
	}
	if _, _, err := FromGit(ctx, ExecGit, dir, "--all", c["c4"]); err == nil {
		t.Error("an option as a commit")
	}
}
