// Package version says which build of immune is running: the release tag
// stamped in at build time, else what the Go toolchain recorded in the binary
// (the module version of `go install ...@v1.2.3`, or the commit of a local
// build), else "devel".
//
// Release builds stamp the tag with the linker:
//
//	go build -ldflags "-X github.com/immune-cd/immune/internal/version.stamped=v1.2.3"
//
// (the Dockerfile does this from its VERSION build argument).
package version

import "runtime/debug"

// stamped is set by the linker (-ldflags -X) and never written at run time:
// -X can only set a package-level string variable.
var stamped string

// String returns the version of this build, e.g. "v1.2.3",
// "v1.2.4-0.20260101120000-abcdef123456", "devel+abcdef123456-dirty" or
// "devel".
func String() string {
	info, _ := debug.ReadBuildInfo() // nil when the binary has none
	return resolve(stamped, info)
}

// resolve picks the version from what the linker stamped and the build
// information (nil when the binary has none).
func resolve(stamped string, info *debug.BuildInfo) string {
	if stamped != "" {
		return stamped
	}
	if info == nil {
		return "devel"
	}
	// "(devel)" is what a build of the main module from its source tree
	// says when the toolchain recorded no version for it.
	if v := info.Main.Version; v != "" && v != "(devel)" {
		return v
	}
	var revision, modified string
	for _, s := range info.Settings {
		switch s.Key {
		case "vcs.revision":
			revision = s.Value
		case "vcs.modified":
			modified = s.Value
		}
	}
	if revision == "" {
		return "devel"
	}
	if len(revision) > 12 {
		revision = revision[:12]
	}
	v := "devel+" + revision
	if modified == "true" {
		v += "-dirty"
	}
	return v
}
