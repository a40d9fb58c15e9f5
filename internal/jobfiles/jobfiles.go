// Package jobfiles writes what a step leaves for the job: step outputs
// (GITHUB_OUTPUT, in the runner's multi-line form with a delimiter no value
// holds), the job summary (GITHUB_STEP_SUMMARY, cut at GitHub's limit), and
// a JSON report written atomically. The files are written here rather than
// by the actions library, which panics on a write error; every error is
// returned.
package jobfiles

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// MaxSummary is GitHub's limit on a step summary.
const MaxSummary = 1 << 20

// Output is one step output.
type Output struct{ Name, Value string }

// WriteOutputs appends outputs to a GITHUB_OUTPUT file.
func WriteOutputs(path string, outputs []Output) error {
	var b strings.Builder
	for _, o := range outputs {
		delim := delimiter()
		for strings.Contains(o.Value, delim) {
			delim = delimiter()
		}
		fmt.Fprintf(&b, "%s<<%s\n%s\n%s\n", o.Name, delim, o.Value, delim)
	}
	return appendFile(path, []byte(b.String()))
}

func delimiter() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return "ghadelimiter_" + hex.EncodeToString(b[:])
}

// AppendSummary appends markdown to a GITHUB_STEP_SUMMARY file, cut at
// GitHub's limit with a line that says where the rest is.
func AppendSummary(path, markdown, rest string) error {
	if len(markdown) > MaxSummary {
		markdown = markdown[:MaxSummary-200] + "\n\n… the summary was cut at GitHub's limit of 1 MiB; " + rest + "\n"
	}
	return appendFile(path, []byte(markdown))
}

// appendFile appends data in one write.
func appendFile(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		return err
	}
	_, werr := f.Write(data)
	cerr := f.Close()
	return errors.Join(werr, cerr)
}

// WriteAtomic writes data to path through a temporary file beside it,
// renamed over it, so that a full disk leaves the old file or none, never
// a truncated one.
func WriteAtomic(path string, data []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+"-*")
	if err != nil {
		return err
	}
	_, werr := tmp.Write(data)
	serr := tmp.Sync()
	cerr := tmp.Close()
	if err := errors.Join(werr, serr, cerr); err != nil {
		os.Remove(tmp.Name())
		return err
	}
	if err := os.Chmod(tmp.Name(), 0o644); err != nil {
		os.Remove(tmp.Name())
		return err
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		os.Remove(tmp.Name())
		return err
	}
	return nil
}
