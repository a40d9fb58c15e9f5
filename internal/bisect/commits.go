package bisect

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os/exec"
	"strings"

	"github.com/immune-cd/immune/internal/sha"
)

// MaxBatch bounds the commits a search is run over: past it the batch is
// rolled back whole, as without bisect. Ten steps at most.
const MaxBatch = 1024

// Commit is a commit of a listing, with its parents (the first one first).
type Commit struct {
	SHA     string
	Parents []string
}

// ErrNotOnLine is returned when the last good commit is not on the head's
// first-parent line: the batch is not a run of commits that landed one
// after the other on the branch.
var ErrNotOnLine = errors.New("the last good commit is not on the head's first-parent line")

// FirstParent returns the batch between base (the last good commit,
// excluded) and head (included), oldest first, following each commit's
// first parent from head back to base: the commits as they landed on the
// branch, merge commits standing for their pull requests' commits. listing
// holds the commits of base..head in any order (a comparison's, a git
// log's); a commit the walk needs that it lacks is an error.
func FirstParent(base, head string, listing []Commit) ([]string, error) {
	if sha.Same(base, head) {
		return nil, nil
	}
	byID := make(map[string]Commit, len(listing))
	for _, c := range listing {
		byID[strings.ToLower(c.SHA)] = c
	}
	var line []string
	cur := strings.ToLower(head)
	for {
		c, ok := byID[cur]
		switch {
		case !ok && len(line) == 0:
			return nil, fmt.Errorf("the listing of %s..%s lacks the head", sha.Short(base), sha.Short(head))
		case !ok:
			return nil, fmt.Errorf("%w (it reaches %s, which is neither in %s..%s nor %s)", ErrNotOnLine, sha.Short(cur), sha.Short(base), sha.Short(head), sha.Short(base))
		case len(line) >= len(listing):
			return nil, fmt.Errorf("the listing of %s..%s loops", sha.Short(base), sha.Short(head))
		}
		line = append(line, c.SHA)
		if len(c.Parents) == 0 {
			return nil, fmt.Errorf("%w (%s has no parent)", ErrNotOnLine, sha.Short(c.SHA))
		}
		if sha.Same(c.Parents[0], base) {
			break
		}
		cur = strings.ToLower(c.Parents[0])
	}
	for i, j := 0, len(line)-1; i < j; i, j = i+1, j-1 {
		line[i], line[j] = line[j], line[i]
	}
	return line, nil
}

// Git runs git with args in dir and returns its standard output; an exit
// other than 0 is an error that carries its standard error.
type Git func(ctx context.Context, dir string, args ...string) ([]byte, error)

// ExecGit runs the real git from PATH. The workspace of a container action
// belongs to another user than the container's, which git refuses without
// safe.directory.
func ExecGit(ctx context.Context, dir string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, "git", append([]string{"-c", "safe.directory=" + dir}, args...)...)
	cmd.Dir = dir
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(stderr.String())
		if len(msg) > 300 {
			msg = msg[:300] + "…"
		}
		if msg != "" {
			return nil, fmt.Errorf("git %s: %w: %s", args[0], err, msg)
		}
		return nil, fmt.Errorf("git %s: %w", args[0], err)
	}
	return stdout.Bytes(), nil
}

// FromGit lists the batch between base and head from the git history of
// the repository in dir (a checkout with the history: fetch-depth: 0). Both
// may be short SHAs or refs; the batch holds full SHAs, and so does good,
// the full SHA of base.
func FromGit(ctx context.Context, git Git, dir, base, head string) (batch []string, good string, err error) {
	full := func(ref string) (string, error) {
		out, err := git(ctx, dir, "rev-parse", "--verify", "--quiet", "--end-of-options", ref+"^{commit}")
		if err != nil {
			return "", fmt.Errorf("%s is not a commit of the workspace's history (a checkout needs fetch-depth: 0): %w", ref, err)
		}
		return strings.TrimSpace(string(out)), nil
	}
	if strings.HasPrefix(base, "-") || strings.HasPrefix(head, "-") {
		return nil, "", fmt.Errorf("%q..%q: not commits", base, head)
	}
	if good, err = full(base); err != nil {
		return nil, "", err
	}
	bad, err := full(head)
	if err != nil {
		return nil, "", err
	}
	out, err := git(ctx, dir, "log", "--first-parent", "--format=%H %P", fmt.Sprintf("--max-count=%d", MaxBatch+1), good+".."+bad, "--")
	if err != nil {
		return nil, "", err
	}
	var listing []Commit
	for _, line := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 {
			continue
		}
		listing = append(listing, Commit{SHA: f[0], Parents: f[1:]})
	}
	if len(listing) > MaxBatch {
		return nil, "", fmt.Errorf("%s..%s holds more than %d commits", sha.Short(good), sha.Short(bad), MaxBatch)
	}
	batch, err = FirstParent(good, bad, listing)
	return batch, good, err
}

// Comparer reads a batch from GitHub: the commits after good up to head,
// oldest first, in first-parent order (nil when GitHub is not in use).
type Comparer func(ctx context.Context, good, head string) ([]string, error)

// Read reads the batch between good and head: from GitHub's comparison,
// else from the workspace's git history in dir. It returns the batch, the
// last good commit (the one git's history names, when read there), and
// where it was read.
func Read(ctx context.Context, compare Comparer, git Git, dir, good, head string) (batch []string, base, source string, err error) {
	var errs []error
	if compare != nil {
		batch, err = compare(ctx, good, head)
		if err == nil {
			return batch, good, "GitHub's comparison", nil
		}
		errs = append(errs, fmt.Errorf("GitHub: %w", err))
	}
	batch, base, err = FromGit(ctx, git, dir, good, head)
	if err == nil {
		if len(batch) > 0 && !sha.Same(batch[len(batch)-1], head) && sha.IsFull(head) {
			return nil, "", "", fmt.Errorf("the workspace's history ends at %s, not %s", sha.Short(batch[len(batch)-1]), sha.Short(head))
		}
		return batch, base, "the workspace's git history", nil
	}
	errs = append(errs, fmt.Errorf("the workspace's git history: %w", err))
	return nil, "", "", errors.Join(errs...)
}
