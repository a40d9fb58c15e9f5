// Package state remembers, per environment, the commits deployed and their
// verdicts in a small JSON file. It is the memory of runs without GitHub
// records (the CLI, other CI systems, self-hosted runners).
//
// The file says what it is ("kind": "immune-state"); a file that is not
// one is refused, never rewritten. Runs that share it take an advisory lock
// (flock on its directory) around each read-modify-write, and the file is
// replaced in one rename, so readers never see half of it.
package state

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/immune-cd/immune/internal/run"
	"github.com/immune-cd/immune/internal/sha"
)

// Kind marks immune's state files.
const Kind = "immune-state"

// ErrNotOurs is returned for a file that is not an immune state file.
var ErrNotOurs = errors.New("not an immune state file")

// historyLimit bounds the entries kept per environment.
const historyLimit = 50

// Entry is one recorded deploy.
type Entry struct {
	SHA     string      `json:"sha"`
	Verdict run.Verdict `json:"verdict"`
	At      time.Time   `json:"at"`
}

type environment struct {
	LastGood string  `json:"last_good,omitempty"`
	History  []Entry `json:"history"`
}

type document struct {
	Kind         string                  `json:"kind"`
	Version      int                     `json:"version"`
	Environments map[string]*environment `json:"environments"`
}

// File is the state file.
type File struct {
	Path string
}

// LastGood returns the newest commit recorded healthy in env other than
// exclude, or "" when there is none (also when the file does not exist).
func (f *File) LastGood(env, exclude string) (string, error) {
	doc, err := f.read()
	if err != nil {
		return "", err
	}
	e := doc.environment(env)
	if e == nil {
		return "", nil
	}
	for i := len(e.History) - 1; i >= 0; i-- {
		// The file is anyone's to edit: only commit ids and ref names are
		// taken from it, like the sha inputs.
		if h := e.History[i]; h.Verdict == run.Healthy && h.SHA != exclude && sha.IsRef(h.SHA) {
			return h.SHA, nil
		}
	}
	return "", nil
}

// environment is env's entry. Environments that differ only in letter case
// are one, as they are to GitHub (one environment, one commit status
// context): the entry of another spelling is env's when env has none.
func (d *document) environment(env string) *environment {
	if e := d.Environments[env]; e != nil {
		return e
	}
	for name, e := range d.Environments {
		if strings.EqualFold(name, env) {
			return e
		}
	}
	return nil
}

// Check reports whether the file can be used: it does not exist yet, or
// it is an immune state file. It wraps ErrNotOurs otherwise.
func (f *File) Check() error {
	_, err := f.read()
	return err
}

// Record appends an entry for env and writes the file atomically, under
// the lock.
func (f *File) Record(env string, entry Entry) error {
	unlock, err := f.lock()
	if err != nil {
		return err
	}
	defer unlock()
	doc, err := f.read()
	if err != nil {
		return err
	}
	e := doc.environment(env)
	if e == nil {
		e = &environment{}
		doc.Environments[env] = e
	}
	e.History = append(e.History, entry)
	if len(e.History) > historyLimit {
		e.History = e.History[len(e.History)-historyLimit:]
	}
	if entry.Verdict == run.Healthy {
		e.LastGood = entry.SHA
	}
	return f.write(doc)
}

func (f *File) read() (*document, error) {
	doc := &document{Kind: Kind, Version: 1, Environments: map[string]*environment{}}
	data, err := os.ReadFile(f.Path)
	if errors.Is(err, fs.ErrNotExist) {
		return doc, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read state file: %w", err)
	}
	// Strict: a file with other fields (a package.json, say) is someone
	// else's. Files written before the kind marker existed have version 1
	// and environments only.
	found := &document{}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(found); err != nil || found.Version != 1 || found.Kind != Kind && (found.Kind != "" || found.Environments == nil) {
		return nil, fmt.Errorf("%s: %w (it has no \"kind\": %q); immune never rewrites a file it did not write: point state-file at another path", f.Path, ErrNotOurs, Kind)
	}
	found.Kind = Kind
	if found.Environments == nil {
		found.Environments = map[string]*environment{}
	}
	return found, nil
}

// lock takes the advisory lock, waiting for other runs. It locks the
// directory that holds the file, since the file itself is replaced by a
// rename on every write (a lock on it would be a lock on the old file).
func (f *File) lock() (unlock func(), err error) {
	if err := os.MkdirAll(filepath.Dir(f.Path), 0o755); err != nil {
		return nil, fmt.Errorf("lock state file: %w", err)
	}
	lf, err := os.Open(filepath.Dir(f.Path))
	if err != nil {
		return nil, fmt.Errorf("lock state file: %w", err)
	}
	for {
		err = syscall.Flock(int(lf.Fd()), syscall.LOCK_EX)
		if !errors.Is(err, syscall.EINTR) {
			break
		}
	}
	if err != nil {
		lf.Close()
		return nil, fmt.Errorf("lock state file: %w", err)
	}
	return func() {
		_ = syscall.Flock(int(lf.Fd()), syscall.LOCK_UN)
		lf.Close()
	}, nil
}

// write replaces the file in one rename, so a crash never leaves half a file.
func (f *File) write(doc *document) error {
	data, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		return err
	}
	dir := filepath.Dir(f.Path)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("write state file: %w", err)
	}
	tmp, err := os.CreateTemp(dir, ".state-*.json")
	if err != nil {
		return fmt.Errorf("write state file: %w", err)
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(append(data, '\n')); err != nil {
		tmp.Close()
		return fmt.Errorf("write state file: %w", err)
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return fmt.Errorf("write state file: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("write state file: %w", err)
	}
	if err := os.Rename(tmp.Name(), f.Path); err != nil {
		return fmt.Errorf("write state file: %w", err)
	}
	return nil
}

// Current returns the newest commit recorded for env, whatever its verdict:
// what the environment runs now, as far as this file knows.
func (f *File) Current(env string) (string, error) {
	doc, err := f.read()
	if err != nil {
		return "", err
	}
	if e := doc.environment(env); e != nil {
		for i := len(e.History) - 1; i >= 0; i-- {
			if c := e.History[i].SHA; sha.IsRef(c) {
				return c, nil
			}
		}
	}
	return "", nil
}
