package logline

import (
	"bytes"
	"strings"
	"testing"
)

// isCommand reports whether the runner would parse line as a workflow
// command: after leading whitespace it starts with "::", or it holds "##["
// (ActionCommand.TryParseV2 and TryParse in actions/runner).
func isCommand(line string) bool {
	return strings.HasPrefix(strings.TrimSpace(line), "::") || strings.Contains(line, "##[")
}

func TestEscape(t *testing.T) {
	t.Parallel()
	tests := []struct{ in, want string }{
		{"version x", "version x"},
		{"::add-mask::x", neutral + "::add-mask::x"},
		{"   ::error::forged", neutral + "   ::error::forged"},
		{"x\n::stop-commands::y", `x\n::stop-commands::y`},
		{"a ##[error]forged", "a " + legacy + "error]forged"},
		{"ok :: not a command", "ok :: not a command"},
	}
	for _, tt := range tests {
		if got := Escape(tt.in); got != tt.want {
			t.Errorf("Escape(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestWriter(t *testing.T) {
	t.Parallel()
	var out bytes.Buffer
	w := NewWriter(&out)
	for _, chunk := range []string{"deploying\n::add-", "mask::secret\n", "  ##[group]x\n", "done, no newline"} {
		w.Write([]byte(chunk))
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	out.WriteString("::endgroup::\n")
	lines := strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n")
	want := []string{"deploying", neutral + "::add-mask::secret", "  " + legacy + "group]x", "done, no newline", "::endgroup::"}
	if strings.Join(lines, "|") != strings.Join(want, "|") {
		t.Errorf("lines = %q, want %q", lines, want)
	}
}

func FuzzEscape(f *testing.F) {
	for _, s := range []string{"::add-mask::x", "x\r\n::error::y", " \t::stop-commands::t", "##[set-output name=a]b", "\u00a0::warning::z", "ok"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		for _, line := range strings.Split(Escape(s), "\n") {
			if isCommand(line) {
				t.Fatalf("Escape(%q) leaves a command: %q", s, line)
			}
		}
		var out bytes.Buffer
		w := NewWriter(&out)
		w.Write([]byte(s))
		w.Close()
		for _, line := range strings.Split(strings.TrimSuffix(out.String(), "\n"), "\n") {
			if isCommand(line) {
				t.Fatalf("Writer(%q) leaves a command: %q", s, line)
			}
		}
		if s != "" && !strings.HasSuffix(out.String(), "\n") {
			t.Fatalf("Writer(%q) left the last line open", s)
		}
	})
}
