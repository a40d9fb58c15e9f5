package action

import (
	"fmt"
	"io"

	"github.com/sethvargo/go-githubactions"
)

// logger writes the run's log: workflow commands under GitHub Actions,
// plain lines in a terminal.
type logger struct {
	gha   *githubactions.Action
	w     io.Writer
	plain bool
}

func (l *logger) Printf(format string, args ...any) {
	fmt.Fprintf(l.w, format+"\n", args...)
}

func (l *logger) Group(title string) {
	if l.plain {
		fmt.Fprintf(l.w, "── %s\n", title)
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
		fmt.Fprintf(l.w, "error: %s: %s\n", title, msg)
		return
	}
	l.gha.WithFieldsMap(map[string]string{"title": title}).Errorf("%s", msg)
}

// Warning prints a warning annotation.
func (l *logger) Warning(title, msg string) {
	if l.plain {
		fmt.Fprintf(l.w, "warning: %s: %s\n", title, msg)
		return
	}
	l.gha.WithFieldsMap(map[string]string{"title": title}).Warningf("%s", msg)
}
