// Package logline keeps text that immune does not control from issuing
// GitHub Actions workflow commands. The runner treats a line of a step's
// output as a command when, after leading whitespace, it starts with "::"
// (add-mask, error, stop-commands, ...), and, in the legacy form, when
// "##[" appears anywhere in it. Health answers, versions, inputs, state
// files and the deploy command's output can hold either; every line immune
// prints goes through Escape or through a Writer.
package logline

import (
	"bytes"
	"io"
	"strings"
	"sync"
)

// neutral is put before a line that would start a command: a visible,
// harmless character that is not whitespace (the runner trims whitespace
// before it looks for "::").
const neutral = "·"

// legacy is what "##[" becomes: the same text to a reader, no command to
// the runner.
const legacy = "##\u2060["

// Escape makes one line of log text safe: line breaks inside it become the
// two characters \n (so a value cannot start a line of its own), a line
// that would start with "::" gets a neutral first character, and "##["
// loses its meaning.
func Escape(s string) string {
	if strings.ContainsAny(s, "\r\n") {
		s = strings.NewReplacer("\r\n", `\n`, "\n", `\n`, "\r", `\r`).Replace(s)
	}
	return escapeLine(s)
}

func escapeLine(s string) string {
	if strings.Contains(s, "##[") {
		s = strings.ReplaceAll(s, "##[", legacy)
	}
	if strings.HasPrefix(strings.TrimLeft(s, " \t\v\f\u00a0\u0085\ufeff\u200b"), "::") || strings.HasPrefix(strings.TrimSpace(s), "::") {
		s = neutral + s
	}
	return s
}

// Writer escapes a stream of lines, such as a command's output, line by
// line, and remembers whether the last line ended, so that Close can end
// it: output without a final newline would otherwise swallow the next
// workflow command immune prints (an ::endgroup:: on the same line is no
// command). It is safe for concurrent use by a command's stdout and
// stderr.
type Writer struct {
	mu      sync.Mutex
	w       io.Writer
	partial []byte // the unfinished last line
	err     error
}

// NewWriter returns a Writer writing to w.
func NewWriter(w io.Writer) *Writer { return &Writer{w: w} }

// Write escapes complete lines as they come and keeps an unfinished one
// for later.
func (lw *Writer) Write(p []byte) (int, error) {
	lw.mu.Lock()
	defer lw.mu.Unlock()
	data := append(lw.partial, p...)
	var out bytes.Buffer
	for {
		i := bytes.IndexByte(data, '\n')
		if i < 0 {
			break
		}
		line := strings.TrimSuffix(string(data[:i]), "\r")
		out.WriteString(escapeLine(line))
		out.WriteByte('\n')
		data = data[i+1:]
	}
	lw.partial = append([]byte(nil), data...)
	if len(lw.partial) > 64<<10 {
		// A very long line is written in parts; each part is escaped.
		out.WriteString(escapeLine(string(lw.partial)))
		out.WriteByte('\n')
		lw.partial = nil
	}
	if out.Len() > 0 && lw.err == nil {
		_, lw.err = lw.w.Write(out.Bytes())
	}
	// A broken log must not fail the command that writes to it.
	return len(p), nil
}

// Close writes an unfinished last line, ended. It does not close the
// underlying writer.
func (lw *Writer) Close() error {
	lw.mu.Lock()
	defer lw.mu.Unlock()
	if len(lw.partial) > 0 && lw.err == nil {
		_, lw.err = io.WriteString(lw.w, escapeLine(string(lw.partial))+"\n")
	}
	lw.partial = nil
	return lw.err
}

// BestEffort wraps the log's destination so that a write that fails (a
// closed pipe, a full disk) is dropped instead of failing: the log is worth
// less than the run, and the actions library panics on a failed write.
func BestEffort(w io.Writer) io.Writer { return bestEffort{w} }

type bestEffort struct{ w io.Writer }

func (b bestEffort) Write(p []byte) (int, error) {
	_, _ = b.w.Write(p)
	return len(p), nil
}
