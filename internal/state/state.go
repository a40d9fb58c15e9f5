// Package state remembers, per environment, the commits deployed and their
// verdicts in a small JSON file. It is the memory of runs without GitHub
// records (the CLI, other CI systems, self-hosted runners).
package state

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"github.com/immune-cd/immune/internal/run"
)

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
	e := doc.Environments[env]
	if e == nil {
		return "", nil
	}
	for i := len(e.History) - 1; i >= 0; i-- {
		if h := e.History[i]; h.Verdict == run.Healthy && h.SHA != exclude {
			return h.SHA, nil
		}
	}
	return "", nil
}

// Record appends an entry for env and writes the file atomically.
func (f *File) Record(env string, entry Entry) error {
	doc, err := f.read()
	if err != nil {
		return err
	}
	e := doc.Environments[env]
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
	doc := &document{Version: 1, Environments: map[string]*environment{}}
	data, err := os.ReadFile(f.Path)
	if errors.Is(err, fs.ErrNotExist) {
		return doc, nil
	}
	if err != nil {
		return nil, fmt.Errorf("read state file: %w", err)
	}
	if err := json.Unmarshal(data, doc); err != nil {
		return nil, fmt.Errorf("state file %s is not valid JSON: %w", f.Path, err)
	}
	if doc.Environments == nil {
		doc.Environments = map[string]*environment{}
	}
	return doc, nil
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
	if e := doc.Environments[env]; e != nil && len(e.History) > 0 {
		return e.History[len(e.History)-1].SHA, nil
	}
	return "", nil
}
