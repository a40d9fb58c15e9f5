package containertest

import (
	"os"
	"path/filepath"
	"testing"
)

func TestMirrorFromAptSources(t *testing.T) {
	write := func(t *testing.T, files map[string]string) string {
		dir := t.TempDir()
		for name, text := range files {
			if err := os.WriteFile(filepath.Join(dir, name), []byte(text), 0o644); err != nil {
				t.Fatal(err)
			}
		}
		return dir
	}
	const deb822 = `Types: deb
# a comment
URIs: http://mirror.example/debian/
Suites: bookworm bookworm-updates
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg

Types: deb deb-src
URIs: http://security.example/debian-security
Suites: bookworm-security
Components: main contrib
`
	tests := []struct {
		name    string
		files   map[string]string
		want    DebianMirror
		wantErr bool
	}{
		{name: "deb822", files: map[string]string{"debian.sources": deb822},
			want: DebianMirror{Suite: "bookworm", Archive: "http://mirror.example/debian", Security: "http://security.example/debian-security"}},
		{name: "one-line", files: map[string]string{"debian.list": "# mirror\ndeb [arch=amd64 signed-by=/k.gpg] http://one.example/debian bookworm main\ndeb-src http://src.example/debian bookworm main\ndeb http://one.example/debian-security bookworm-security main non-free\n"},
			want: DebianMirror{Suite: "bookworm", Archive: "http://one.example/debian", Security: "http://one.example/debian-security"}},
		{name: "files apt ignores and sources without main", files: map[string]string{
			"debian.sources":             deb822,
			"aaa.list.disabled-by-farm":  "deb http://ignored.example/debian bookworm main\n",
			"aab.list":                   "deb http://contrib-only.example/debian bookworm contrib\n",
			"aac.sources":                "Types: deb\nURIs: http://off.example/debian\nSuites: bookworm\nComponents: main\nEnabled: no\n",
			"nodesource.sources.disable": "Types: deb\nURIs: https://deb.nodesource.com/node_20.x\nSuites: nodistro\nComponents: main\n",
		},
			want: DebianMirror{Suite: "bookworm", Archive: "http://mirror.example/debian", Security: "http://security.example/debian-security"}},
		{name: "no security source", files: map[string]string{"debian.list": "deb http://one.example/debian bookworm main\n"},
			want: DebianMirror{Suite: "bookworm", Archive: "http://one.example/debian"}},
		{name: "another release only", files: map[string]string{"debian.list": "deb http://one.example/debian trixie main\n"}, wantErr: true},
		{name: "broken deb822", files: map[string]string{"x.sources": "Types deb\n"}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			files, err := AptSourceFiles(write(t, tt.files))
			if err != nil {
				t.Fatal(err)
			}
			got, err := MirrorFromAptSources(files, "bookworm")
			if (err != nil) != tt.wantErr {
				t.Fatalf("err = %v, want error %v", err, tt.wantErr)
			}
			if !tt.wantErr && got != tt.want {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

// TestThisMachinesMirror: the machine the tests run on has a Debian bookworm
// source (the container test builds its base images from it).
func TestThisMachinesMirror(t *testing.T) {
	files, err := AptSourceFiles("/etc/apt/sources.list.d")
	if err != nil {
		t.Skipf("no apt configuration here: %v", err)
	}
	m, err := MirrorFromAptSources(files, "bookworm")
	if err != nil {
		t.Skipf("not a Debian bookworm machine: %v", err)
	}
	t.Logf("apt's bookworm mirror: %+v", m)
}
