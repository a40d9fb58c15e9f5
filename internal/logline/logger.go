package logline

import (
	"fmt"
	"io"

	"github.com/sethvargo/go-githubactions"
)

// Logger writes the run's log: workflow commands under GitHub Actions,
// plain lines in a terminal. Every line goes through Escape, so
// that no text from a health answer, an input, a file or GitHub can start a
// workflow command of its own; immune's own commands (groups, annotations)
// are written by the actions library, which escapes their data.
type Logger struct {
	GHA   *githubactions.Action
	W     io.Writer
	Plain bool
}

func (l *Logger) Printf(format string, args ...any) {
	fmt.Fprintln(l.W, Escape(fmt.Sprintf(format, args...)))
}

// Group opens a group; output written through the returned writer is
// escaped line by line, and EndGroup ends its last line first.
func (l *Logger) Group(title string) {
	if l.Plain {
		fmt.Fprintf(l.W, "── %s\n", Escape(title))
		return
	}
	l.GHA.Group(title)
}

func (l *Logger) EndGroup() {
	if !l.Plain {
		l.GHA.EndGroup()
	}
}

// Error prints an error annotation with a title.
func (l *Logger) Error(title, msg string) {
	if l.Plain {
		fmt.Fprintf(l.W, "error: %s: %s\n", Escape(title), Escape(msg))
		return
	}
	l.GHA.WithFieldsMap(map[string]string{"title": title}).Errorf("%s", msg)
}

// Warning prints a warning annotation.
func (l *Logger) Warning(title, msg string) {
	if l.Plain {
		fmt.Fprintf(l.W, "warning: %s: %s\n", Escape(title), Escape(msg))
		return
	}
	l.GHA.WithFieldsMap(map[string]string{"title": title}).Warningf("%s", msg)
}
