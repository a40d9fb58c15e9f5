package action

import (
	"fmt"
	"io"

	"github.com/sethvargo/go-githubactions"

	"github.com/immune-cd/immune/internal/logline"
)

// logger writes the run's log: workflow commands under GitHub Actions,
// plain lines in a terminal. Every line goes through logline.Escape, so
// that no text from a health answer, an input, a file or GitHub can start a
// workflow command of its own; immune's own commands (groups, annotations)
// are written by the actions library, which escapes their data.
type logger struct {
	gha   *githubactions.Action
	w     io.Writer
	plain bool
}

func (l *logger) Printf(format string, args ...any) {
	fmt.Fprintln(l.w, logline.Escape(fmt.Sprintf(format, args...)))
}

// Group opens a group; output written through the returned writer is
// escaped line by line, and EndGroup ends its last line first.
func (l *logger) Group(title string) {
	if l.plain {
		fmt.Fprintf(l.w, "── %s\n", logline.Escape(title))
		return
	}
	l.gha.Group(title)
}

func (l *logger) EndGroup() {
	if !l.plain {
		l.gha.EndGroup()
	}
}

// Error prints an error annotation with a title.
func (l *logger) Error(title, msg string) {
	if l.plain {
		fmt.Fprintf(l.w, "error: %s: %s\n", logline.Escape(title), logline.Escape(msg))
		return
	}
	l.gha.WithFieldsMap(map[string]string{"title": title}).Errorf("%s", msg)
}

// Warning prints a warning annotation.
func (l *logger) Warning(title, msg string) {
	if l.plain {
		fmt.Fprintf(l.w, "warning: %s: %s\n", logline.Escape(title), logline.Escape(msg))
		return
	}
	l.gha.WithFieldsMap(map[string]string{"title": title}).Warningf("%s", msg)
}
