package containertest

import (
	"bufio"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// DebianMirror is where the machine's apt gets a Debian release from. The
// container test builds the image's base from it, so that the test names no
// mirror host of its own and works wherever apt works.
type DebianMirror struct {
	Suite    string // e.g. bookworm
	Archive  string // URI serving Suite (and Suite-updates), e.g. http://deb.debian.org/debian
	Security string // URI serving Suite-security; empty when apt has none
}

// AptSourceFiles lists the files apt reads its sources from in dir
// (/etc/apt/sources.list.d): *.list and *.sources, as apt does; other names
// (such as foo.list.disabled) are ignored.
func AptSourceFiles(dir string) ([]string, error) {
	entries, err := os.ReadDir(dir)
	if err != nil {
		return nil, err
	}
	var files []string
	for _, e := range entries {
		if !e.Type().IsRegular() {
			continue
		}
		if n := e.Name(); strings.HasSuffix(n, ".list") || strings.HasSuffix(n, ".sources") {
			files = append(files, filepath.Join(dir, n))
		}
	}
	return files, nil
}

// aptSource is one enabled source: a URI and the suites and components it
// serves, for binary packages (deb).
type aptSource struct {
	URI        string
	Suites     []string
	Components []string
}

// MirrorFromAptSources finds, among the sources in files (deb822 .sources and
// one-line .list files), the URIs that serve suite with its main component,
// and suite-security.
func MirrorFromAptSources(files []string, suite string) (DebianMirror, error) {
	var sources []aptSource
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			return DebianMirror{}, err
		}
		var parsed []aptSource
		if strings.HasSuffix(f, ".sources") {
			parsed, err = parseDeb822(string(data))
		} else {
			parsed, err = parseOneLine(string(data))
		}
		if err != nil {
			return DebianMirror{}, fmt.Errorf("%s: %w", f, err)
		}
		sources = append(sources, parsed...)
	}
	m := DebianMirror{Suite: suite}
	for _, s := range sources {
		if !slices.Contains(s.Components, "main") {
			continue
		}
		if m.Archive == "" && slices.Contains(s.Suites, suite) {
			m.Archive = s.URI
		}
		if m.Security == "" && slices.Contains(s.Suites, suite+"-security") {
			m.Security = s.URI
		}
	}
	if m.Archive == "" {
		return m, fmt.Errorf("no apt source in %s serves %s main", strings.Join(files, ", "), suite)
	}
	return m, nil
}

// parseDeb822 reads a .sources file: paragraphs of Field: value lines
// (continuation lines start with a space), # comments.
func parseDeb822(text string) ([]aptSource, error) {
	var out []aptSource
	var para []map[string]string
	cur := map[string]string{}
	last := ""
	flush := func() {
		if len(cur) > 0 {
			para = append(para, cur)
		}
		cur, last = map[string]string{}, ""
	}
	sc := bufio.NewScanner(strings.NewReader(text))
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "#"):
		case strings.TrimSpace(line) == "":
			flush()
		case line[0] == ' ' || line[0] == '\t':
			if last == "" {
				return nil, fmt.Errorf("continuation line %q without a field", line)
			}
			cur[last] += " " + strings.TrimSpace(line)
		default:
			k, v, ok := strings.Cut(line, ":")
			if !ok {
				return nil, fmt.Errorf("line %q is not Field: value", line)
			}
			last = strings.ToLower(strings.TrimSpace(k))
			cur[last] = strings.TrimSpace(v)
		}
	}
	flush()
	for _, p := range para {
		if strings.EqualFold(p["enabled"], "no") || !slices.Contains(strings.Fields(p["types"]), "deb") {
			continue
		}
		for _, uri := range strings.Fields(p["uris"]) {
			out = append(out, aptSource{URI: strings.TrimSuffix(uri, "/"), Suites: strings.Fields(p["suites"]), Components: strings.Fields(p["components"])})
		}
	}
	return out, sc.Err()
}

// parseOneLine reads a .list file: "deb [options] URI suite component...".
func parseOneLine(text string) ([]aptSource, error) {
	var out []aptSource
	sc := bufio.NewScanner(strings.NewReader(text))
	for sc.Scan() {
		line, _, _ := strings.Cut(sc.Text(), "#")
		f := strings.Fields(line)
		if len(f) == 0 || f[0] != "deb" {
			continue
		}
		f = f[1:]
		if len(f) > 0 && strings.HasPrefix(f[0], "[") {
			for len(f) > 0 && !strings.HasSuffix(f[0], "]") {
				f = f[1:]
			}
			if len(f) > 0 {
				f = f[1:]
			}
		}
		if len(f) < 2 {
			return nil, fmt.Errorf("line %q has no URI and suite", sc.Text())
		}
		out = append(out, aptSource{URI: strings.TrimSuffix(f[0], "/"), Suites: []string{f[1]}, Components: f[2:]})
	}
	return out, sc.Err()
}
